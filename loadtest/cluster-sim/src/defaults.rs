//! The defaults the real API server fills in on write (what `kubectl get -o yaml` shows
//! beyond what was applied), so diffs against live objects look as they do on a cluster.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Value::Object(m) = obj
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.into(), v);
    }
}

fn child<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    if !obj[key].is_object() {
        obj[key] = Value::Object(Map::new());
    }
    &mut obj[key]
}

fn pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                container(c);
            }
        }
    }
}

fn container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("");
    let tag_is_latest = {
        let last = image.rsplit('/').next().unwrap_or("");
        !last.contains(':') && !image.contains('@') || last.ends_with(":latest")
    };
    set_default(
        c,
        "imagePullPolicy",
        json!(if tag_is_latest {
            "Always"
        } else {
            "IfNotPresent"
        }),
    );
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
        }
    }
}

fn template(spec: &mut Value) {
    let t = child(spec, "template");
    pod_spec(child(t, "spec"));
}

/// Fills defaults for built-in kinds; `cluster_ip` is used for Services that need one.
pub fn apply(kind: &str, obj: &mut Value, cluster_ip: impl FnOnce() -> String) {
    match kind {
        "Deployment" => {
            let spec = child(obj, "spec");
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
            template(spec);
        }
        "ReplicaSet" => {
            let spec = child(obj, "spec");
            set_default(spec, "replicas", json!(1));
            template(spec);
        }
        "StatefulSet" => {
            let spec = child(obj, "spec");
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            template(spec);
        }
        "DaemonSet" => {
            let spec = child(obj, "spec");
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            template(spec);
        }
        "Job" => {
            let spec = child(obj, "spec");
            set_default(spec, "completions", json!(1));
            set_default(spec, "parallelism", json!(1));
            set_default(spec, "backoffLimit", json!(6));
            set_default(spec, "completionMode", json!("NonIndexed"));
            set_default(spec, "suspend", json!(false));
            template(spec);
        }
        "CronJob" => {
            let spec = child(obj, "spec");
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "successfulJobsHistoryLimit", json!(3));
            set_default(spec, "failedJobsHistoryLimit", json!(1));
            let jt = child(child(spec, "jobTemplate"), "spec");
            template(jt);
        }
        "Pod" => {
            pod_spec(child(obj, "spec"));
            set_default(child(obj, "status"), "phase", json!("Pending"));
        }
        "Service" => {
            let spec = child(obj, "spec");
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            if spec["type"] != "ExternalName" {
                if spec["clusterIP"].as_str() != Some("None") {
                    set_default(spec, "clusterIP", json!(cluster_ip()));
                }
                let ip = spec["clusterIP"].clone();
                set_default(spec, "clusterIPs", json!([ip]));
                set_default(spec, "ipFamilies", json!(["IPv4"]));
                set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, "protocol", json!("TCP"));
                    let port = p["port"].clone();
                    set_default(p, "targetPort", port);
                }
            }
            set_default(obj, "status", json!({"loadBalancer": {}}));
        }
        "Namespace" => {
            let name = obj["metadata"]["name"].clone();
            let labels = child(child(obj, "metadata"), "labels");
            set_default(labels, "kubernetes.io/metadata.name", name);
            set_default(child(obj, "spec"), "finalizers", json!(["kubernetes"]));
            set_default(child(obj, "status"), "phase", json!("Active"));
        }
        "Secret" => {
            set_default(obj, "type", json!("Opaque"));
            fold_string_data(obj);
        }
        "PersistentVolumeClaim" => {
            let spec = child(obj, "spec");
            set_default(spec, "volumeMode", json!("Filesystem"));
            set_default(child(obj, "status"), "phase", json!("Pending"));
        }
        _ => {}
    }
}

/// `stringData` is write-only: the server moves it into `data` as base64.
fn fold_string_data(obj: &mut Value) {
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    let data = child(obj, "data");
    for (k, v) in sd {
        data[k] = json!(STANDARD.encode(v.as_str().unwrap_or("")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_add_no_null_fields() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx"}]}}}});
        apply("Deployment", &mut d, String::new);
        assert!(!d.to_string().contains("null"), "{d}");
    }

    #[test]
    fn deployment_gets_the_api_server_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}}});
        apply("Deployment", &mut d, String::new);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn secret_string_data_becomes_base64_data() {
        let mut s = json!({"stringData": {"a": "hello", "b": "hi"}});
        apply("Secret", &mut s, String::new);
        assert_eq!(s["data"]["a"], "aGVsbG8=");
        assert_eq!(s["data"]["b"], "aGk=");
        assert!(s.get("stringData").is_none());
    }
}
