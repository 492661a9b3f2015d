//! Kubernetes' protobuf encoding: every supported kind survives JSON -> protobuf -> JSON,
//! and over HTTP a protobuf body is decoded, a protobuf answer is given when Accept
//! prefers it, and bad or unsupported bodies get a Status and change nothing.

use cluster_sim::protobuf::{self, MEDIA_TYPE};
use cluster_sim::{Sim, SimConfig};
use proptest::prelude::*;
use serde_json::{Value, json};

const TS: &str = "2024-05-06T07:08:09Z";

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "ns", "uid": "0b6a3a4e-1111-2222-3333-444455556666",
        "resourceVersion": "42", "generation": 3, "creationTimestamp": TS,
        "labels": {"app": name, "empty": ""}, "annotations": {"note": "a b"},
        "finalizers": ["example.com/f"],
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
            "uid": "u-1", "controller": true, "blockOwnerDeletion": false}],
        "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
            "time": TS, "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]})
}

fn pod_spec() -> Value {
    json!({"containers": [{"name": "c", "image": "nginx:1.25", "command": ["sh", "-c", "sleep 1"],
            "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
            "env": [{"name": "A", "value": "a"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}}],
            "envFrom": [{"secretRef": {"name": "sec"}, "prefix": "S_"}],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "1"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": 80}},
            "securityContext": {"runAsUser": 0, "privileged": false}}],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}}],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": false, "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]})
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()})
}

/// One realistic object of every supported kind, with the special JSON forms in play.
fn fixtures() -> Vec<Value> {
    let selector = json!({"matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]});
    let cond = json!({"type": "Ready", "status": "True", "lastTransitionTime": TS, "reason": "R", "message": "m"});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("ns"),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm"),
            "data": {"a": "b", "empty": "", "multi": "x\ny\n"}, "binaryData": {"bin": "AAEC"}, "immutable": false}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("s"), "type": "Opaque",
            "data": {"k": "dg==", "e": ""}, "stringData": {"plain": "text"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("svc"),
            "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"], "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "named", "port": 443, "targetPort": "https"}], "sessionAffinity": "None",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
            "status": {"loadBalancer": {}}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("sa"),
            "automountServiceAccountToken": false, "secrets": [{"name": "tok"}], "imagePullSecrets": [{"name": "reg"}]}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("pvc"),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("pod"), "spec": pod_spec(),
            "status": {"phase": "Running", "podIP": "10.0.0.5", "startTime": TS, "conditions": [cond],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "nginx:1.25",
                    "imageID": "", "started": true, "state": {"running": {"startedAt": TS}},
                    "lastState": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": TS}}}]}}),
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("ep"),
            "subsets": [{"addresses": [{"ip": "10.0.0.5", "targetRef": {"kind": "Pod", "name": "pod"}}],
                "ports": [{"port": 80, "protocol": "TCP"}]}]}),
        json!({"apiVersion": "v1", "kind": "Event", "metadata": meta("ev"),
            "involvedObject": {"kind": "Pod", "name": "pod", "namespace": "ns"}, "reason": "Started",
            "message": "started", "type": "Normal", "count": 2, "firstTimestamp": TS, "lastTimestamp": TS,
            "eventTime": "2024-05-06T07:08:09.123456Z", "source": {"component": "kubelet"},
            "reportingComponent": "kubelet", "reportingInstance": "node-1"}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
            "spec": {"replicas": 0, "selector": selector, "template": template(),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                "availableReplicas": 2, "conditions": [{"type": "Available", "status": "True",
                    "lastUpdateTime": TS, "lastTransitionTime": TS, "reason": "MinimumReplicasAvailable"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("rs"),
            "spec": {"replicas": 2, "selector": selector, "template": template()},
            "status": {"replicas": 2, "fullyLabeledReplicas": 2}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("db"),
            "spec": {"replicas": 1, "serviceName": "db", "selector": selector, "template": template(),
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("ds"),
            "spec": {"selector": selector, "template": template(),
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}}},
            "status": {"desiredNumberScheduled": 3, "numberReady": 3}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("j"),
            "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1, "suspend": false,
                "ttlSecondsAfterFinished": 100, "template": {"metadata": {}, "spec":
                    {"containers": [{"name": "j", "image": "busybox"}], "restartPolicy": "Never"}}},
            "status": {"startTime": TS, "completionTime": TS, "succeeded": 1,
                "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": TS}]}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("cj"),
            "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 0,
                "jobTemplate": {"metadata": {}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}],
                    "restartPolicy": "OnFailure"}}}}},
            "status": {"lastScheduleTime": TS, "active": [{"kind": "Job", "name": "cj-1"}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("ing"),
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}],
                "rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("np"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                "ports": [{"protocol": "TCP", "port": 80}, {"port": "http"}]}]}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("r"),
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("rb"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta("cr"),
            "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta("crb"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]}),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta("pdb"),
            "spec": {"minAvailable": "50%", "selector": selector},
            "status": {"currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2, "disruptionsAllowed": 1}}),
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta("hpa"),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5, "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2, "lastScaleTime": TS}}),
    ]
}

/// The paths where two JSON values differ, for readable failures.
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => diff(l, r, &p, out),
                    (l, r) => out.push(format!("{p}: {l:?} != {r:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                diff(l, r, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

#[track_caller]
fn assert_same(got: &Value, want: &Value, what: &str) {
    let mut d = Vec::new();
    diff(got, want, "", &mut d);
    d.dedup();
    assert!(
        d.is_empty(),
        "{what} changed on the way through protobuf:\n{}",
        d.join("\n")
    );
}

#[track_caller]
fn round_trip(obj: &Value) -> Value {
    let bytes = protobuf::encode(obj).unwrap_or_else(|| panic!("{} encodes", obj["kind"]));
    assert!(bytes.starts_with(b"k8s\0"));
    protobuf::decode(&bytes).unwrap_or_else(|e| panic!("{} decodes: {}", obj["kind"], e.message))
}

#[test]
fn every_supported_kind_round_trips() {
    let objects = fixtures();
    for (g, v, k) in protobuf::SUPPORTED {
        let api_version = if g.is_empty() {
            v.to_string()
        } else {
            format!("{g}/{v}")
        };
        let obj = objects
            .iter()
            .find(|o| o["kind"] == *k && o["apiVersion"] == api_version.as_str())
            .unwrap_or_else(|| panic!("no fixture for {api_version} {k}"));
        assert_same(&round_trip(obj), obj, k);
        // Its list, items without apiVersion/kind (protobuf items carry none).
        let mut item = obj.clone();
        item.as_object_mut().unwrap().remove("kind");
        item.as_object_mut().unwrap().remove("apiVersion");
        let list = json!({"apiVersion": api_version, "kind": format!("{k}List"),
            "metadata": {"resourceVersion": "77", "continue": "abc"}, "items": [item.clone(), item]});
        assert_same(&round_trip(&list), &list, &format!("{k}List"));
    }
    let status = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": "configmaps \"x\" not found", "reason": "NotFound",
        "details": {"name": "x", "kind": "configmaps", "causes": [{"reason": "FieldValueInvalid", "message": "m", "field": "spec"}]},
        "code": 404});
    assert_eq!(round_trip(&status), status);
    let opts = json!({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
        "gracePeriodSeconds": 0, "preconditions": {"uid": "u"}});
    assert_eq!(round_trip(&opts), opts);
    // Kinds without a message stay JSON.
    assert!(protobuf::encode(&json!({"apiVersion": "example.com/v1", "kind": "Widget"})).is_none());
    assert!(
        protobuf::encode(
            &json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"})
        )
        .is_none()
    );
}

fn label_map() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    prop::collection::btree_map("[a-z][a-z0-9./-]{0,20}", "\\PC{0,30}", 0..5)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn int_or_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i32..100_000).prop_map(Value::from),
        "[0-9]{1,3}%".prop_map(Value::String),
        "[a-z]{1,15}".prop_map(Value::String),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_objects_round_trip(
        name in "[a-z][a-z0-9-]{0,30}",
        labels in label_map(),
        data in label_map(),
        replicas in prop::option::of(0i32..1000),
        surge in int_or_string(),
        port in int_or_string(),
        cpu in "[1-9][0-9]{0,3}(m|)",
        mem in "[1-9][0-9]{0,3}(Mi|Gi|k|)",
        secs in 1i64..4_000_000_000,
        micros in 0u32..1_000_000,
        bytes in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        use base64::Engine as _;
        let time = chrono::DateTime::from_timestamp(secs, micros * 1000).unwrap();
        let mut metadata = json!({"name": name, "creationTimestamp": time.format("%Y-%m-%dT%H:%M:%SZ").to_string()});
        if !labels.is_empty() {
            metadata["labels"] = Value::Object(labels.clone());
        }
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata.clone(),
            "binaryData": {"b": base64::engine::general_purpose::STANDARD.encode(&bytes)}});
        if !data.is_empty() {
            cm["data"] = Value::Object(data.clone());
        }
        prop_assert_eq!(round_trip(&cm), cm);

        let mut spec = json!({"selector": {"matchLabels": {"app": name}},
            "strategy": {"rollingUpdate": {"maxSurge": surge}},
            "template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": cpu, "memory": mem}},
                "readinessProbe": {"httpGet": {"port": port}}}]}}});
        if let Some(r) = replicas {
            spec["replicas"] = json!(r);
        }
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec});
        prop_assert_eq!(round_trip(&dep), dep);

        let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "eventTime": time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()});
        prop_assert_eq!(round_trip(&ev), ev);
    }
}

// ---- over HTTP ----

struct Http {
    base: String,
    token: String,
    c: reqwest::Client,
}

struct Reply {
    code: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Http {
    async fn new() -> (Sim, Http) {
        let sim = Sim::start(SimConfig::default()).await.unwrap();
        let h = Http {
            base: sim.url(0),
            token: sim.cluster(0).token.clone(),
            c: reqwest::Client::new(),
        };
        (sim, h)
    }

    async fn send(&self, method: &str, path: &str, ct: &str, accept: &str, body: Vec<u8>) -> Reply {
        let r = self
            .c
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", ct)
            .header("accept", accept)
            .body(body)
            .send()
            .await
            .expect("request sent");
        Reply {
            code: r.status().as_u16(),
            content_type: r
                .headers()
                .get("content-type")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string(),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }
}

const PB_FIRST: &str = "application/vnd.kubernetes.protobuf,application/json";

#[track_caller]
fn assert_status(r: &Reply, code: u16, reason: &str, part: &str) {
    assert_eq!(r.code, code, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["code"], code);
    assert_eq!(v["reason"], reason, "{v}");
    assert!(v["message"].as_str().unwrap().contains(part), "{v}");
}

#[tokio::test]
async fn protobuf_bodies_and_answers() {
    let (_sim, h) = Http::new().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pb"}, "data": {"a": "b"}});
    let body = protobuf::encode(&cm).unwrap();
    let path = "/api/v1/namespaces/default/configmaps";
    let r = h.send("POST", path, MEDIA_TYPE, PB_FIRST, body).await;
    assert_eq!(r.code, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, MEDIA_TYPE);
    let created = protobuf::decode(&r.body).unwrap();
    assert_eq!(created["data"]["a"], "b");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(created["metadata"]["resourceVersion"].is_string());

    // Read back over JSON: the same object.
    let r = h
        .send("GET", &format!("{path}/pb"), "", "application/json", vec![])
        .await;
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.json()["data"], json!({"a": "b"}));
    assert_eq!(r.json()["metadata"]["uid"], created["metadata"]["uid"]);

    // A list in protobuf.
    let r = h.send("GET", path, "", PB_FIRST, vec![]).await;
    assert_eq!(r.content_type, MEDIA_TYPE);
    let list = protobuf::decode(&r.body).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["metadata"]["name"] == "pb")
    );
    assert!(list["metadata"]["resourceVersion"].is_string());

    // An update in protobuf, answered in JSON when JSON comes first.
    let mut changed = created.clone();
    changed["data"]["a"] = json!("c");
    let r = h
        .send(
            "PUT",
            &format!("{path}/pb"),
            MEDIA_TYPE,
            "application/json",
            protobuf::encode(&changed).unwrap(),
        )
        .await;
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.json()["data"]["a"], "c");

    // A protobuf DeleteOptions; the answer (the object) in protobuf.
    let opts =
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"});
    let r = h
        .send(
            "DELETE",
            &format!("{path}/pb"),
            MEDIA_TYPE,
            PB_FIRST,
            protobuf::encode(&opts).unwrap(),
        )
        .await;
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, MEDIA_TYPE);
    let r = h
        .send("GET", &format!("{path}/pb"), "", PB_FIRST, vec![])
        .await;
    // Errors are Status in JSON, which client-go reads by the content type.
    assert_status(&r, 404, "NotFound", "not found");
}

#[tokio::test]
async fn corrupt_protobuf_is_400_and_changes_nothing() {
    let (_sim, h) = Http::new().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"},
        "data": {"a": "a long enough value to cut in half"}});
    let good = protobuf::encode(&cm).unwrap();
    let mut flipped = good.clone();
    // Field 2 of Unknown (raw) claims more bytes than there are.
    let at = flipped.len() / 2;
    flipped.truncate(at);
    let mut garbage = b"k8s\0".to_vec();
    garbage.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for body in [
        flipped,
        good[..good.len() - 3].to_vec(),
        garbage,
        good[4..].to_vec(), // no magic
    ] {
        let r = h.send("POST", path, MEDIA_TYPE, PB_FIRST, body).await;
        assert_status(&r, 400, "BadRequest", "protobuf");
    }
    let r = h
        .send(
            "GET",
            &format!("{path}/bad"),
            "",
            "application/json",
            vec![],
        )
        .await;
    assert_eq!(r.code, 404, "nothing was created");
}

#[tokio::test]
async fn custom_resources_stay_json() {
    let (_sim, h) = Http::new().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let r = h
        .send(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "application/json",
            PB_FIRST,
            serde_json::to_vec(&crd).unwrap(),
        )
        .await;
    assert_eq!(r.code, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.content_type, "application/json",
        "a CRD is answered in JSON"
    );
    let path = "/apis/example.com/v1/namespaces/default/widgets";

    // A protobuf body of a custom kind: 415, nothing created.
    let body = protobuf::envelope("example.com/v1", "Widget", b"\x0a\x03\x0a\x01w");
    let r = h.send("POST", path, MEDIA_TYPE, PB_FIRST, body).await;
    assert_status(&r, 415, "UnsupportedMediaType", "Widget");
    let r = h
        .send("GET", &format!("{path}/w"), "", "application/json", vec![])
        .await;
    assert_eq!(r.code, 404);

    // JSON in, JSON out even with protobuf first in Accept; 406 when only protobuf is allowed.
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"x": 1}});
    let r = h
        .send(
            "POST",
            path,
            "application/json",
            PB_FIRST,
            serde_json::to_vec(&w).unwrap(),
        )
        .await;
    assert_eq!(r.code, 201);
    assert_eq!(r.content_type, "application/json");
    let r = h
        .send("GET", &format!("{path}/w"), "", PB_FIRST, vec![])
        .await;
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.json()["spec"]["x"], 1);
    let r = h
        .send("GET", &format!("{path}/w"), "", MEDIA_TYPE, vec![])
        .await;
    assert_status(&r, 406, "NotAcceptable", "application/json");
    let r = h
        .send(
            "GET",
            "/api/v1/namespaces/default/configmaps",
            "",
            "application/cbor",
            vec![],
        )
        .await;
    assert_status(&r, 406, "NotAcceptable", "protobuf");
    // A write whose answer cannot be given is refused before it runs.
    let w2 = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}});
    let r = h
        .send(
            "POST",
            path,
            "application/json",
            MEDIA_TYPE,
            serde_json::to_vec(&w2).unwrap(),
        )
        .await;
    assert_eq!(r.code, 406);
    let r = h
        .send("GET", &format!("{path}/w2"), "", "application/json", vec![])
        .await;
    assert_eq!(r.code, 404);

    // A custom resource's watch is answered in JSON when Accept allows it.
    let r =
        h.c.get(format!("{}{path}?watch=true&timeoutSeconds=1", h.base))
            .bearer_auth(&h.token)
            .header("accept", PB_FIRST)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
}

// ---- watch streams ----

/// A varint at `*i`.
fn varint(b: &[u8], i: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// A message's fields as (number, bytes), read by hand (not by the emulator's code):
/// WatchEvent and RawExtension have only length-delimited fields.
fn fields(b: &[u8]) -> Vec<(u64, &[u8])> {
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        let tag = varint(b, &mut i);
        assert_eq!(tag & 7, 2, "a length-delimited field");
        let n = usize::try_from(varint(b, &mut i)).unwrap();
        out.push((tag >> 3, &b[i..i + n]));
        i += n;
    }
    out
}

fn field(b: &[u8], n: u64) -> &[u8] {
    fields(b)
        .into_iter()
        .find(|(f, _)| *f == n)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("field {n} is missing"))
}

/// One frame (without its length) as (type, object): a bare `meta.v1.WatchEvent`, as
/// upstream's raw stream serializer writes it, whose `object.raw` is the object's own
/// wire form (magic + `runtime.Unknown`).
fn watch_event(frame: &[u8]) -> (String, Value) {
    assert!(!frame.starts_with(b"k8s\0"), "frames are bare WatchEvents");
    let ty = String::from_utf8(field(frame, 1).to_vec()).unwrap();
    let raw = field(field(frame, 2), 1);
    assert!(
        raw.starts_with(b"k8s\0"),
        "the object is in the full wire form"
    );
    (ty, protobuf::decode(raw).unwrap())
}

struct Frames {
    content_type: String,
    r: reqwest::Response,
    buf: Vec<u8>,
}

impl Frames {
    async fn open(h: &Http, query: &str, accept: &str) -> Frames {
        let r =
            h.c.get(format!("{}{query}", h.base))
                .bearer_auth(&h.token)
                .header("accept", accept)
                .send()
                .await
                .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        Frames {
            content_type: r.headers()["content-type"].to_str().unwrap().to_string(),
            r,
            buf: Vec::new(),
        }
    }

    /// The next event; `None` when the stream ends.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if self.buf.len() >= 4 {
                let n =
                    usize::try_from(u32::from_be_bytes(self.buf[..4].try_into().unwrap())).unwrap();
                if self.buf.len() >= 4 + n {
                    let frame: Vec<u8> = self.buf.drain(..4 + n).skip(4).collect();
                    return Some(watch_event(&frame));
                }
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), self.r.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()?;
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// The next event that is not a bookmark.
    async fn change(&mut self) -> (String, Value) {
        loop {
            let e = self.next().await.expect("the watch goes on");
            if e.0 != "BOOKMARK" {
                return e;
            }
        }
    }
}

const WATCH_ACCEPT: &str = "application/vnd.kubernetes.protobuf;stream=watch";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_stream_protobuf_frames() {
    let sim = Sim::start(SimConfig {
        cluster: cluster_sim::ClusterConfig {
            controllers: false,
            bookmark_interval: std::time::Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let h = Http {
        base: sim.url(0),
        token: sim.cluster(0).token.clone(),
        c: reqwest::Client::new(),
    };
    let path = "/api/v1/namespaces/default/configmaps";
    let cm = |name: &str, v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": v}});
    let json_body = |v: &Value| serde_json::to_vec(v).unwrap();
    let r = h
        .send(
            "POST",
            path,
            "application/json",
            "application/json",
            json_body(&cm("a", "1")),
        )
        .await;
    assert_eq!(r.code, 201);

    // client-go's watch Accept: the initial state, then every change, then bookmarks.
    let mut w = Frames::open(
        &h,
        &format!("{path}?watch=true&allowWatchBookmarks=true"),
        WATCH_ACCEPT,
    )
    .await;
    assert_eq!(w.content_type, protobuf::WATCH_CONTENT_TYPE);
    let (ty, a) = w.change().await;
    assert_eq!(ty, "ADDED");
    assert_eq!(
        (&a["apiVersion"], &a["kind"]),
        (&json!("v1"), &json!("ConfigMap"))
    );
    assert_eq!(a["metadata"]["name"], "a");
    assert_eq!(a["data"]["v"], "1");
    assert!(a["metadata"]["uid"].is_string());

    let r = h
        .send(
            "POST",
            path,
            MEDIA_TYPE,
            PB_FIRST,
            protobuf::encode(&cm("b", "x")).unwrap(),
        )
        .await;
    assert_eq!(r.code, 201);
    let (ty, b) = w.change().await;
    assert_eq!(
        (ty.as_str(), &b["metadata"]["name"], &b["data"]["v"]),
        ("ADDED", &json!("b"), &json!("x"))
    );
    let r = h
        .send(
            "PATCH",
            &format!("{path}/a"),
            "application/merge-patch+json",
            "application/json",
            br#"{"data":{"v":"2"}}"#.to_vec(),
        )
        .await;
    assert_eq!(r.code, 200);
    let (ty, a2) = w.change().await;
    assert_eq!(
        (ty.as_str(), &a2["metadata"]["name"], &a2["data"]["v"]),
        ("MODIFIED", &json!("a"), &json!("2"))
    );
    assert_ne!(
        a2["metadata"]["resourceVersion"],
        a["metadata"]["resourceVersion"]
    );
    let r = h
        .send(
            "DELETE",
            &format!("{path}/b"),
            "",
            "application/json",
            vec![],
        )
        .await;
    assert_eq!(r.code, 200);
    let (ty, gone) = w.change().await;
    assert_eq!(
        (ty.as_str(), &gone["metadata"]["name"]),
        ("DELETED", &json!("b"))
    );
    let deleted_rv: u64 = gone["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // An idle watch gets a bookmark: the kind with only metadata.resourceVersion.
    let (ty, mark) = w.next().await.unwrap();
    assert_eq!(ty, "BOOKMARK");
    assert_eq!(mark["kind"], "ConfigMap");
    let mark_rv: u64 = mark["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(mark_rv >= deleted_rv, "{mark}");
    assert!(mark["metadata"].get("name").is_none(), "{mark}");

    // WatchList, with the plain media type: the initial state, closed by its bookmark.
    let mut wl = Frames::open(
        &h,
        &format!("{path}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
        MEDIA_TYPE,
    )
    .await;
    assert_eq!(wl.content_type, protobuf::WATCH_CONTENT_TYPE);
    let (ty, a3) = wl.next().await.unwrap();
    assert_eq!((ty.as_str(), &a3["data"]["v"]), ("ADDED", &json!("2")));
    let (ty, end) = wl.next().await.unwrap();
    assert_eq!(ty, "BOOKMARK");
    assert_eq!(
        end["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // Compaction: open watches get an in-stream 410 Status and end; resuming gets it too.
    sim.cluster(0).compact();
    let (ty, st) = w.change().await;
    assert_eq!(ty, "ERROR");
    assert_eq!(
        (&st["kind"], &st["code"], &st["reason"]),
        (&json!("Status"), &json!(410), &json!("Expired"))
    );
    assert!(w.next().await.is_none(), "the watch ends after its error");
    let mut old = Frames::open(
        &h,
        &format!("{path}?watch=true&resourceVersion={deleted_rv}"),
        WATCH_ACCEPT,
    )
    .await;
    let (ty, st) = old.next().await.unwrap();
    assert_eq!(ty, "ERROR");
    assert_eq!(
        (&st["code"], &st["reason"]),
        (&json!(410), &json!("Expired"))
    );

    // JSON watches are unchanged.
    let r =
        h.c.get(format!("{}{path}?watch=true&timeoutSeconds=1", h.base))
            .bearer_auth(&h.token)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&first["type"], &first["object"]["metadata"]["name"]),
        (&json!("ADDED"), &json!("a"))
    );
}
