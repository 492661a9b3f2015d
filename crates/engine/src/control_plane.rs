//! App of Apps: the Argo CD objects in an app's manifests that are for the control plane
//! (Application, AppProject, ApplicationSet in the control-plane namespace on the
//! in-cluster destination), which gitfleet keeps as its own objects instead of applying
//! them to a cluster, and how a stored one looks as a live object to the comparison and
//! to a sync.
//!
//! A sync writes the whole document (spec, labels, annotations, finalizers): what the
//! manifest no longer says is removed, as a `kubectl replace` would. The live object
//! therefore claims every field of what the parent wrote as the sync's field manager, so
//! the diff reports a field the manifest dropped, as it does for a cluster object under
//! server-side apply.

use gitfleet_model::{AppProject, Application, ApplicationSet, ApplicationStatus};
use serde_json::{Map, Value, json};

use crate::ResourceRef;
use crate::diff::FIELD_MANAGER;

/// The API group of every control-plane kind.
pub const GROUP: &str = "argoproj.io";

/// The kinds gitfleet keeps itself when an app's manifests hold them for the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ControlPlaneKind {
    Application,
    AppProject,
    ApplicationSet,
}

impl ControlPlaneKind {
    pub const ALL: [ControlPlaneKind; 3] = [
        ControlPlaneKind::Application,
        ControlPlaneKind::AppProject,
        ControlPlaneKind::ApplicationSet,
    ];

    /// The kind of `group`/`kind`, if it is one of them.
    pub fn of(group: &str, kind: &str) -> Option<Self> {
        if group != GROUP {
            return None;
        }
        Self::ALL.into_iter().find(|k| k.kind() == kind)
    }

    pub fn kind(self) -> &'static str {
        match self {
            ControlPlaneKind::Application => "Application",
            ControlPlaneKind::AppProject => "AppProject",
            ControlPlaneKind::ApplicationSet => "ApplicationSet",
        }
    }
}

/// The control-plane kind of `r` when an app whose destination is the in-cluster one
/// (`in_cluster`) holds it in the control-plane namespace; `None` for every object that
/// goes to a cluster (an Application in another namespace included, as Argo CD would apply
/// it there and no controller would read it).
pub fn kind_of(r: &ResourceRef, in_cluster: bool, control_ns: &str) -> Option<ControlPlaneKind> {
    if !in_cluster || r.namespace != control_ns {
        return None;
    }
    ControlPlaneKind::of(&r.group, &r.kind)
}

/// A desired control-plane object, read and validated as the gateway reads one created by
/// hand.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    Application(Box<Application>),
    AppProject(Box<AppProject>),
    ApplicationSet(Box<ApplicationSet>),
}

impl Registration {
    pub fn name(&self) -> &str {
        match self {
            Registration::Application(a) => &a.metadata.name,
            Registration::AppProject(p) => &p.metadata.name,
            Registration::ApplicationSet(s) => &s.metadata.name,
        }
    }
}

/// Server-owned metadata a manifest must not carry into the stored document.
const SERVER_FIELDS: [&str; 7] = [
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "selfLink",
];

/// Reads a desired object (`kind` from [`kind_of`]) as the document to store; the error
/// names the object and every field that is wrong.
pub fn registration(kind: ControlPlaneKind, desired: &Value) -> Result<Registration, String> {
    let mut doc = desired.clone();
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in SERVER_FIELDS {
                meta.remove(field);
            }
        }
    }
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let shown = format!("{} {name:?}", kind.kind());
    let read = |e: serde_json::Error| format!("{shown}: {e}");
    let invalid = |e: gitfleet_model::ValidationErrors| format!("{shown}: {e}");
    Ok(match kind {
        ControlPlaneKind::Application => {
            let app: Application = serde_json::from_value(doc).map_err(read)?;
            app.validate().map_err(invalid)?;
            Registration::Application(Box::new(app))
        }
        ControlPlaneKind::AppProject => {
            let project: AppProject = serde_json::from_value(doc).map_err(read)?;
            project.validate().map_err(invalid)?;
            Registration::AppProject(Box::new(project))
        }
        ControlPlaneKind::ApplicationSet => {
            let set: ApplicationSet = serde_json::from_value(doc).map_err(read)?;
            set.validate().map_err(invalid)?;
            Registration::ApplicationSet(Box::new(set))
        }
    })
}

/// A stored control-plane document as the live object a comparison and a sync read: in
/// the control-plane namespace; an Application with its `app-status` entry as `status`
/// (what the Application health check reads); and, when `written_by_sync` (the document
/// carries the tracking annotation of the app comparing it), every field it holds claimed
/// by the sync's field manager.
pub fn live_object(
    stored: &Value,
    status: Option<&ApplicationStatus>,
    control_ns: &str,
    written_by_sync: bool,
) -> Value {
    let mut live = stored.clone();
    let Some(obj) = live.as_object_mut() else {
        return live;
    };
    obj.remove("status");
    let owned = written_by_sync.then(|| fields_v1(&Value::Object(obj.clone())));
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if ns.is_empty() {
            meta.insert("namespace".into(), Value::String(control_ns.to_owned()));
        }
        if let Some(fields) = owned {
            meta.insert(
                "managedFields".into(),
                json!([{
                    "manager": FIELD_MANAGER,
                    "operation": "Apply",
                    "apiVersion": format!("{GROUP}/v1alpha1"),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields,
                }]),
            );
        }
    }
    if let Some(status) = status.and_then(|s| serde_json::to_value(s).ok()) {
        obj.insert("status".into(), status);
    }
    live
}

/// The `fieldsV1` trie of every field a sync writes: spec, labels, annotations and
/// finalizers, maps by field and anything else (lists, scalars) whole.
fn fields_v1(doc: &Value) -> Value {
    fn trie(v: &Value) -> Value {
        match v {
            Value::Object(m) if !m.is_empty() => {
                Value::Object(m.iter().map(|(k, v)| (format!("f:{k}"), trie(v))).collect())
            }
            _ => json!({}),
        }
    }
    let mut root = Map::new();
    if let Some(spec) = doc.get("spec") {
        root.insert("f:spec".into(), trie(spec));
    }
    let mut meta = Map::new();
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = doc.pointer(&format!("/metadata/{field}")) {
            meta.insert(format!("f:{field}"), trie(v));
        }
    }
    if !meta.is_empty() {
        root.insert("f:metadata".into(), Value::Object(meta));
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{compare, prepare_desired};
    use gitfleet_model::{HealthStatus, HealthStatusCode, SyncStatusCode};

    fn root() -> Application {
        serde_json::from_value(json!({
            "metadata": {"name": "root", "namespace": "argocd"},
            "spec": {
                "project": "default",
                "source": {"repoURL": "https://git.example/config", "path": "apps"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "argocd"},
            },
        }))
        .unwrap()
    }

    fn child_manifest(path: &str) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "api"},
            "spec": {
                "project": "default",
                "source": {"repoURL": "https://git.example/config", "path": path},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "api"},
                "syncPolicy": {"automated": {"prune": true}},
            },
        })
    }

    /// What a sync stores for `desired`, as the bucket holds it.
    fn stored(desired: &Value) -> Value {
        let Registration::Application(app) =
            registration(ControlPlaneKind::Application, desired).unwrap()
        else {
            panic!("not an application");
        };
        serde_json::to_value(app).unwrap()
    }

    #[test]
    fn only_argo_kinds_in_the_control_namespace_of_in_cluster_are_kept_by_gitfleet() {
        let r = |group: &str, kind: &str, ns: &str| ResourceRef {
            group: group.into(),
            version: "v1alpha1".into(),
            kind: kind.into(),
            namespace: ns.into(),
            name: "x".into(),
        };
        for kind in ControlPlaneKind::ALL {
            assert_eq!(
                kind_of(&r(GROUP, kind.kind(), "argocd"), true, "argocd"),
                Some(kind)
            );
        }
        assert_eq!(
            kind_of(&r(GROUP, "Application", "argocd"), false, "argocd"),
            None
        );
        assert_eq!(
            kind_of(&r(GROUP, "Application", "team"), true, "argocd"),
            None
        );
        assert_eq!(
            kind_of(&r(GROUP, "Rollout", "argocd"), true, "argocd"),
            None
        );
        assert_eq!(kind_of(&r("", "ConfigMap", "argocd"), true, "argocd"), None);
    }

    #[test]
    fn a_registered_child_compares_synced_and_a_changed_or_dropped_field_out_of_sync() {
        let root = root();
        let desired = prepare_desired(&[child_manifest("services/api")], &root, "argocd");
        // Not registered yet: missing.
        let c = compare(&root, &desired, &[]);
        assert_eq!(c.sync, SyncStatusCode::OutOfSync);

        let live = live_object(&stored(&desired[0]), None, "argocd", true);
        let c = compare(&root, &desired, std::slice::from_ref(&live));
        assert_eq!(c.sync, SyncStatusCode::Synced, "{:?}", c.resources);

        // The manifest changes a field.
        let changed = prepare_desired(&[child_manifest("services/api-v2")], &root, "argocd");
        assert_eq!(
            compare(&root, &changed, std::slice::from_ref(&live)).sync,
            SyncStatusCode::OutOfSync
        );
        // The manifest drops a field the sync wrote.
        let mut dropped = child_manifest("services/api");
        dropped["spec"]
            .as_object_mut()
            .unwrap()
            .remove("syncPolicy");
        let dropped = prepare_desired(&[dropped], &root, "argocd");
        assert_eq!(
            compare(&root, &dropped, std::slice::from_ref(&live)).sync,
            SyncStatusCode::OutOfSync
        );
        // A child the parent no longer holds is to be pruned.
        let c = compare(&root, &[], std::slice::from_ref(&live));
        assert!(c.resources[0].requires_pruning);
    }

    #[test]
    fn the_live_child_carries_its_own_health_for_the_application_check() {
        let root = root();
        let desired = prepare_desired(&[child_manifest("services/api")], &root, "argocd");
        let status = ApplicationStatus {
            health: Some(HealthStatus {
                status: HealthStatusCode::Degraded,
                message: "crash loop".into(),
                ..HealthStatus::default()
            }),
            ..ApplicationStatus::default()
        };
        let live = live_object(&stored(&desired[0]), Some(&status), "argocd", true);
        let checks = crate::health::Checks::all();
        let c =
            crate::app::compare_with(&root, &desired, std::slice::from_ref(&live), &checks, &[]);
        assert_eq!(c.health, HealthStatusCode::Degraded);
        assert_eq!(c.sync, SyncStatusCode::Synced, "status is not compared");
        // Off by default, as Argo CD: the parent does not follow its children.
        let c = compare(&root, &desired, std::slice::from_ref(&live));
        assert_eq!(c.health, HealthStatusCode::Healthy);
    }

    #[test]
    fn a_bad_child_is_refused_with_its_name_and_field() {
        let mut bad = child_manifest("services/api");
        bad["spec"]["destination"] = json!({});
        let err = registration(ControlPlaneKind::Application, &bad).unwrap_err();
        assert!(err.starts_with("Application \"api\": "), "{err}");
        assert!(err.contains("destination"), "{err}");
        let mut wrong = child_manifest("services/api");
        wrong["spec"]["source"] = json!("not a map");
        let err = registration(ControlPlaneKind::Application, &wrong).unwrap_err();
        assert!(err.starts_with("Application \"api\": "), "{err}");
    }
}
