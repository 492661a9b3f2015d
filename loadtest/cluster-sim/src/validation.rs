//! Structural checks the API server makes on every write: required identity fields and,
//! with `fieldValidation=Strict`, unknown fields (from a compact schema of the built-in
//! kinds, or a CRD's `openAPIV3Schema`).

use serde_json::Value;

use crate::resources::ResourceType;

/// The shape of a field's value, as far as strict validation cares.
#[derive(Clone, Copy)]
enum F {
    /// Not checked further (scalars, or structures the schema leaves open).
    Any,
    /// An object of the named type.
    Obj(&'static str),
    /// A list of objects of the named type.
    List(&'static str),
}

use F::{Any, List, Obj};

type Fields = &'static [(&'static str, F)];

const TYPES: &[(&str, Fields)] = &[
    (
        "ObjectMeta",
        &[
            ("name", Any),
            ("generateName", Any),
            ("namespace", Any),
            ("labels", Any),
            ("annotations", Any),
            ("uid", Any),
            ("resourceVersion", Any),
            ("generation", Any),
            ("creationTimestamp", Any),
            ("deletionTimestamp", Any),
            ("deletionGracePeriodSeconds", Any),
            ("ownerReferences", Any),
            ("finalizers", Any),
            ("managedFields", Any),
            ("selfLink", Any),
        ],
    ),
    (
        "Deployment",
        &[("spec", Obj("DeploymentSpec")), ("status", Any)],
    ),
    (
        "DeploymentSpec",
        &[
            ("replicas", Any),
            ("selector", Any),
            ("template", Obj("PodTemplateSpec")),
            ("strategy", Any),
            ("minReadySeconds", Any),
            ("revisionHistoryLimit", Any),
            ("paused", Any),
            ("progressDeadlineSeconds", Any),
        ],
    ),
    (
        "ReplicaSet",
        &[("spec", Obj("ReplicaSetSpec")), ("status", Any)],
    ),
    (
        "ReplicaSetSpec",
        &[
            ("replicas", Any),
            ("selector", Any),
            ("template", Obj("PodTemplateSpec")),
            ("minReadySeconds", Any),
        ],
    ),
    (
        "StatefulSet",
        &[("spec", Obj("StatefulSetSpec")), ("status", Any)],
    ),
    (
        "StatefulSetSpec",
        &[
            ("replicas", Any),
            ("selector", Any),
            ("template", Obj("PodTemplateSpec")),
            ("serviceName", Any),
            ("volumeClaimTemplates", Any),
            ("podManagementPolicy", Any),
            ("updateStrategy", Any),
            ("revisionHistoryLimit", Any),
            ("minReadySeconds", Any),
            ("persistentVolumeClaimRetentionPolicy", Any),
            ("ordinals", Any),
        ],
    ),
    (
        "DaemonSet",
        &[("spec", Obj("DaemonSetSpec")), ("status", Any)],
    ),
    (
        "DaemonSetSpec",
        &[
            ("selector", Any),
            ("template", Obj("PodTemplateSpec")),
            ("updateStrategy", Any),
            ("minReadySeconds", Any),
            ("revisionHistoryLimit", Any),
        ],
    ),
    ("Job", &[("spec", Obj("JobSpec")), ("status", Any)]),
    (
        "JobSpec",
        &[
            ("parallelism", Any),
            ("completions", Any),
            ("activeDeadlineSeconds", Any),
            ("backoffLimit", Any),
            ("backoffLimitPerIndex", Any),
            ("maxFailedIndexes", Any),
            ("selector", Any),
            ("manualSelector", Any),
            ("template", Obj("PodTemplateSpec")),
            ("ttlSecondsAfterFinished", Any),
            ("completionMode", Any),
            ("suspend", Any),
            ("podFailurePolicy", Any),
            ("podReplacementPolicy", Any),
            ("successPolicy", Any),
            ("managedBy", Any),
        ],
    ),
    ("CronJob", &[("spec", Any), ("status", Any)]),
    (
        "PodTemplateSpec",
        &[("metadata", Obj("ObjectMeta")), ("spec", Obj("PodSpec"))],
    ),
    ("Pod", &[("spec", Obj("PodSpec")), ("status", Any)]),
    (
        "PodSpec",
        &[
            ("containers", List("Container")),
            ("initContainers", List("Container")),
            ("ephemeralContainers", Any),
            ("volumes", Any),
            ("restartPolicy", Any),
            ("terminationGracePeriodSeconds", Any),
            ("activeDeadlineSeconds", Any),
            ("dnsPolicy", Any),
            ("nodeSelector", Any),
            ("serviceAccountName", Any),
            ("serviceAccount", Any),
            ("automountServiceAccountToken", Any),
            ("nodeName", Any),
            ("hostNetwork", Any),
            ("hostPID", Any),
            ("hostIPC", Any),
            ("shareProcessNamespace", Any),
            ("securityContext", Any),
            ("imagePullSecrets", Any),
            ("hostname", Any),
            ("subdomain", Any),
            ("affinity", Any),
            ("schedulerName", Any),
            ("tolerations", Any),
            ("hostAliases", Any),
            ("priorityClassName", Any),
            ("priority", Any),
            ("dnsConfig", Any),
            ("readinessGates", Any),
            ("runtimeClassName", Any),
            ("enableServiceLinks", Any),
            ("preemptionPolicy", Any),
            ("overhead", Any),
            ("topologySpreadConstraints", Any),
            ("setHostnameAsFQDN", Any),
            ("os", Any),
            ("hostUsers", Any),
            ("schedulingGates", Any),
            ("resourceClaims", Any),
            ("resources", Any),
        ],
    ),
    (
        "Container",
        &[
            ("name", Any),
            ("image", Any),
            ("command", Any),
            ("args", Any),
            ("workingDir", Any),
            ("ports", Any),
            ("envFrom", Any),
            ("env", Any),
            ("resources", Any),
            ("resizePolicy", Any),
            ("restartPolicy", Any),
            ("volumeMounts", Any),
            ("volumeDevices", Any),
            ("livenessProbe", Any),
            ("readinessProbe", Any),
            ("startupProbe", Any),
            ("lifecycle", Any),
            ("terminationMessagePath", Any),
            ("terminationMessagePolicy", Any),
            ("imagePullPolicy", Any),
            ("securityContext", Any),
            ("stdin", Any),
            ("stdinOnce", Any),
            ("tty", Any),
            ("restartPolicyRules", Any),
        ],
    ),
    ("Service", &[("spec", Obj("ServiceSpec")), ("status", Any)]),
    (
        "ServiceSpec",
        &[
            ("ports", Any),
            ("selector", Any),
            ("clusterIP", Any),
            ("clusterIPs", Any),
            ("type", Any),
            ("externalIPs", Any),
            ("sessionAffinity", Any),
            ("loadBalancerIP", Any),
            ("loadBalancerSourceRanges", Any),
            ("externalName", Any),
            ("externalTrafficPolicy", Any),
            ("healthCheckNodePort", Any),
            ("publishNotReadyAddresses", Any),
            ("sessionAffinityConfig", Any),
            ("ipFamilies", Any),
            ("ipFamilyPolicy", Any),
            ("allocateLoadBalancerNodePorts", Any),
            ("loadBalancerClass", Any),
            ("internalTrafficPolicy", Any),
            ("trafficDistribution", Any),
        ],
    ),
    (
        "ConfigMap",
        &[("data", Any), ("binaryData", Any), ("immutable", Any)],
    ),
    (
        "Secret",
        &[
            ("data", Any),
            ("stringData", Any),
            ("type", Any),
            ("immutable", Any),
        ],
    ),
    ("Namespace", &[("spec", Any), ("status", Any)]),
    (
        "ServiceAccount",
        &[
            ("secrets", Any),
            ("imagePullSecrets", Any),
            ("automountServiceAccountToken", Any),
        ],
    ),
    ("Role", &[("rules", Any)]),
    ("ClusterRole", &[("rules", Any), ("aggregationRule", Any)]),
    ("RoleBinding", &[("subjects", Any), ("roleRef", Any)]),
    ("ClusterRoleBinding", &[("subjects", Any), ("roleRef", Any)]),
    ("Endpoints", &[("subsets", Any)]),
    (
        "Event",
        &[
            ("involvedObject", Any),
            ("reason", Any),
            ("message", Any),
            ("source", Any),
            ("firstTimestamp", Any),
            ("lastTimestamp", Any),
            ("count", Any),
            ("type", Any),
            ("eventTime", Any),
            ("series", Any),
            ("action", Any),
            ("related", Any),
            ("reportingComponent", Any),
            ("reportingInstance", Any),
        ],
    ),
];

fn fields_of(ty: &str) -> Option<Fields> {
    TYPES.iter().find(|(n, _)| *n == ty).map(|(_, f)| *f)
}

/// The first unknown field of `obj`, as a dotted path (`spec.template.spec.containers[0].foo`).
pub fn unknown_field(rt: &ResourceType, obj: &Value) -> Option<String> {
    let map = obj.as_object()?;
    for (k, v) in map {
        let path = k.clone();
        match k.as_str() {
            "apiVersion" | "kind" => continue,
            "metadata" => {
                if let Some(p) = check_builtin("ObjectMeta", v, &path) {
                    return Some(p);
                }
                continue;
            }
            _ => {}
        }
        if rt.builtin {
            // Kinds without a schema here are accepted whole (their top level included).
            let fields = fields_of(&rt.kind)?;
            match fields.iter().find(|(n, _)| n == k) {
                None => return Some(path),
                Some((_, f)) => {
                    if let Some(p) = check_field(*f, v, &path) {
                        return Some(p);
                    }
                }
            }
        } else if let Some(schema) = &rt.schema {
            let props = &schema["properties"];
            if props.is_object() && schema["x-kubernetes-preserve-unknown-fields"] != true {
                match props.get(k) {
                    None => return Some(path),
                    Some(s) => {
                        if let Some(p) = check_openapi(s, v, &path) {
                            return Some(p);
                        }
                    }
                }
            }
        }
    }
    None
}

fn check_field(f: F, v: &Value, path: &str) -> Option<String> {
    match f {
        Any => None,
        Obj(ty) => check_builtin(ty, v, path),
        List(ty) => v
            .as_array()?
            .iter()
            .enumerate()
            .find_map(|(i, item)| check_builtin(ty, item, &format!("{path}[{i}]"))),
    }
}

fn check_builtin(ty: &str, v: &Value, path: &str) -> Option<String> {
    let (Some(fields), Some(map)) = (fields_of(ty), v.as_object()) else {
        return None;
    };
    for (k, child) in map {
        let p = format!("{path}.{k}");
        match fields.iter().find(|(n, _)| n == k) {
            None => return Some(p),
            Some((_, f)) => {
                if let Some(bad) = check_field(*f, child, &p) {
                    return Some(bad);
                }
            }
        }
    }
    None
}

fn check_openapi(schema: &Value, v: &Value, path: &str) -> Option<String> {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return None;
    }
    match v {
        Value::Object(map) => {
            let props = schema["properties"].as_object()?;
            for (k, child) in map {
                let p = format!("{path}.{k}");
                match props.get(k) {
                    None if schema["additionalProperties"].is_null() => return Some(p),
                    None => {}
                    Some(s) => {
                        if let Some(bad) = check_openapi(s, child, &p) {
                            return Some(bad);
                        }
                    }
                }
            }
            None
        }
        Value::Array(items) => {
            let s = &schema["items"];
            items
                .iter()
                .enumerate()
                .find_map(|(i, item)| check_openapi(s, item, &format!("{path}[{i}]")))
        }
        _ => None,
    }
}

/// A DNS-1123 subdomain, as object names of most kinds must be.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_at_depth() {
        let reg = Registry::builtin();
        let rt = reg.find("apps", "v1", "deployments").unwrap();
        let ok = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "i"}]}}}});
        assert_eq!(unknown_field(rt, &ok), None);
        let bad = json!({"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "a", "imag": "i"}]}}}});
        assert_eq!(
            unknown_field(rt, &bad).as_deref(),
            Some("spec.template.spec.containers[0].imag")
        );
        let bad_meta = json!({"metadata": {"name": "x", "lables": {}}});
        assert_eq!(
            unknown_field(rt, &bad_meta).as_deref(),
            Some("metadata.lables")
        );
    }

    #[test]
    fn dns_subdomains() {
        assert!(is_dns_subdomain("web-1.example"));
        assert!(!is_dns_subdomain("Web"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain(""));
    }
}
