//! The kinds a simulated cluster serves: the built-in table, plus whatever its
//! CustomResourceDefinitions add while they exist.

use std::sync::Arc;

use serde_json::Value;

/// One served resource (one version of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    /// Built-in kinds take strategic merge patch; custom resources do not.
    pub builtin: bool,
    /// The CRD's `openAPIV3Schema` for this version, used by `fieldValidation=Strict`.
    pub schema: Option<Value>,
    /// Where the `/scale` subresource reads and writes, when the kind has one.
    pub scale: Option<ScalePaths>,
    /// A CRD version's `additionalPrinterColumns`, for server-side printing.
    pub printer_columns: Vec<Value>,
}

/// The `/scale` subresource's view of an object: JSON paths (`.spec.replicas`) of the
/// desired and observed replica counts and of the label selector. A built-in kind's
/// selector is a `LabelSelector` object, a custom resource's is already a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

impl ScalePaths {
    fn workload() -> Self {
        ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".spec.selector".into()),
        }
    }
}

impl ResourceType {
    /// `deployments.apps`, or `configmaps` for the core group: how Status messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage identity: the same objects are seen through every version of a group/plural.
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }
}

/// A resource independent of version: where its objects live in the store.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ResourceKey {
    pub group: String,
    pub plural: String,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        status,
    }
}

const BUILTINS: &[Builtin] = &[
    b("", "v1", "Namespace", "namespaces", false, &["ns"], true),
    b("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
    b("", "v1", "Secret", "secrets", true, &[], false),
    b("", "v1", "Service", "services", true, &["svc"], true),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
    ),
    b("", "v1", "Pod", "pods", true, &["po"], true),
    b(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        true,
    ),
    b("", "v1", "Endpoints", "endpoints", true, &["ep"], false),
    b("", "v1", "Event", "events", true, &["ev"], false),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
    ),
    b(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        true,
    ),
    b(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
    ),
    b("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], true),
    b("batch", "v1", "Job", "jobs", true, &[], true),
    b("batch", "v1", "CronJob", "cronjobs", true, &["cj"], true),
    b(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
    ),
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        true,
    ),
    b(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        true,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
    ),
];

/// Kinds kubectl lists under `kubectl get all`.
const CATEGORY_ALL: &[&str] = &[
    "pods",
    "services",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
];

/// What one cluster serves right now. Cheap to clone: built-ins are shared.
#[derive(Debug, Clone)]
pub struct Registry {
    pub types: Arc<Vec<ResourceType>>,
}

impl Registry {
    pub fn builtin() -> Self {
        Registry {
            types: Arc::new(builtin_types()),
        }
    }

    /// Built-ins plus one type per served version of each established CRD.
    pub fn with_crds<'a>(crds: impl Iterator<Item = &'a Value>) -> Self {
        let mut types = builtin_types();
        for crd in crds {
            if crd["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            types.extend(crd_types(crd));
        }
        Registry {
            types: Arc::new(types),
        }
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn find_key(&self, key: &ResourceKey) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == key.group && t.plural == key.plural)
    }

    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    pub fn group_versions(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter() {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, vs)) if !vs.contains(&t.version) => vs.push(t.version.clone()),
                Some(_) => {}
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.version == version)
    }
}

fn builtin_types() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|b| ResourceType {
            group: b.group.into(),
            version: b.version.into(),
            kind: b.kind.into(),
            plural: b.plural.into(),
            singular: b.kind.to_lowercase(),
            namespaced: b.namespaced,
            short_names: b.short.iter().map(|s| s.to_string()).collect(),
            categories: if CATEGORY_ALL.contains(&b.plural) {
                vec!["all".into()]
            } else {
                vec![]
            },
            status_subresource: b.status,
            builtin: true,
            schema: None,
            scale: matches!(b.kind, "Deployment" | "ReplicaSet" | "StatefulSet")
                .then(ScalePaths::workload),
            printer_columns: Vec::new(),
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn crd_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let (Some(group), Some(kind), Some(plural)) = (
        spec["group"].as_str(),
        names["kind"].as_str(),
        names["plural"].as_str(),
    ) else {
        return vec![];
    };
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let Some(versions) = spec["versions"].as_array() else {
        return vec![];
    };
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            Some(ResourceType {
                group: group.into(),
                version: v["name"].as_str()?.into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: singular.clone(),
                namespaced,
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status_subresource: v["subresources"]["status"].is_object(),
                builtin: false,
                schema: v["schema"]["openAPIV3Schema"]
                    .as_object()
                    .map(|_| v["schema"]["openAPIV3Schema"].clone()),
                scale: v["subresources"]["scale"].as_object().and_then(|s| {
                    Some(ScalePaths {
                        spec_replicas: s.get("specReplicasPath")?.as_str()?.into(),
                        status_replicas: s.get("statusReplicasPath")?.as_str()?.into(),
                        label_selector: s
                            .get("labelSelectorPath")
                            .and_then(Value::as_str)
                            .map(String::from),
                    })
                }),
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            })
        })
        .collect()
}
