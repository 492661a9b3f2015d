//! What the API server adds is not drift (issue 13 acceptance 1): each built-in kind's
//! manifest, server-side applied to the emulator as a sync applies it, read back with the
//! server's defaults, status, managedFields and metadata, compares Synced with the engine's
//! diff; and a real change to each is still seen.

use std::time::Duration;

use cluster_sim::{ClusterConfig, Sim, SimConfig};
use gitfleet_engine::diff::{DiffOptions, FIELD_MANAGER, compare};
use gitfleet_model::SyncStatusCode;
use serde_json::{Value, json};

/// (collection path, manifest, a field to change and its new value).
fn manifests() -> Vec<(&'static str, Value, &'static str, Value)> {
    let pod_spec = json!({"containers": [{"name": "app", "image": "nginx:1.25",
        "ports": [{"containerPort": 80}],
        "resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"},
                      "limits": {"cpu": "2", "memory": "2Gi"}}}]});
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": pod_spec});
    vec![
        (
            "/api/v1/namespaces/w/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"k": "v"}}),
            "/data/k",
            json!("changed"),
        ),
        (
            "/api/v1/namespaces/w/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                "stringData": {"password": "hunter2"}}),
            "/stringData/password",
            json!("hunter3"),
        ),
        (
            "/api/v1/namespaces/w/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            "/spec/ports/0/port",
            json!(81),
        ),
        (
            "/api/v1/namespaces/w/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
                "automountServiceAccountToken": false}),
            "/automountServiceAccountToken",
            json!(true),
        ),
        (
            "/api/v1/namespaces/w/persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pvc"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}),
            "/spec/resources/requests/storage",
            json!("2Gi"),
        ),
        (
            "/api/v1/namespaces/w/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "y"}},
                "spec": pod_spec.clone()}),
            "/metadata/labels/app",
            json!("z"),
        ),
        (
            "/apis/apps/v1/namespaces/w/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}},
                         "template": template.clone()}}),
            "/spec/replicas",
            json!(3),
        ),
        (
            "/apis/apps/v1/namespaces/w/statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ss"},
                "spec": {"replicas": 1, "serviceName": "svc",
                         "selector": {"matchLabels": {"app": "x"}}, "template": template.clone()}}),
            "/spec/replicas",
            json!(2),
        ),
        (
            "/apis/apps/v1/namespaces/w/daemonsets",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
                "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template.clone()}}),
            "/spec/template/spec/containers/0/image",
            json!("nginx:1.26"),
        ),
        (
            "/apis/batch/v1/namespaces/w/jobs",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                "spec": {"backoffLimit": 2, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "run", "image": "busybox"}]}}}}),
            "/spec/backoffLimit",
            json!(3),
        ),
        (
            "/apis/batch/v1/namespaces/w/cronjobs",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
                "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{"name": "run", "image": "busybox"}]}}}}}}),
            "/spec/schedule",
            json!("*/10 * * * *"),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/w/ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ing"},
                "spec": {"rules": [{"host": "x.example.com", "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "svc", "port": {"number": 80}}}}]}}]}}),
            "/spec/rules/0/host",
            json!("y.example.com"),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/w/roles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            "/rules/0/verbs",
            json!(["get", "list"]),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/w/rolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}),
            "/subjects/0/name",
            json!("other"),
        ),
        (
            "/apis/autoscaling/v2/namespaces/w/horizontalpodautoscalers",
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "hpa"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                         "minReplicas": 1, "maxReplicas": 5}}),
            "/spec/maxReplicas",
            json!(6),
        ),
        (
            "/apis/policy/v1/namespaces/w/poddisruptionbudgets",
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "x"}}}}),
            "/spec/minAvailable",
            json!(2),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/w/networkpolicies",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
                "spec": {"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Ingress"]}}),
            "/spec/podSelector/matchLabels/app",
            json!("y"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_api_server_adds_is_not_drift_for_each_builtin_kind() {
    let sim = Sim::start(SimConfig {
        cluster: ClusterConfig {
            ready_delay: Duration::from_millis(50),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let base = sim.url(0);
    let r = http
        .post(format!("{base}/api/v1/namespaces"))
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut problems = Vec::new();
    for (collection, manifest, field, changed) in manifests() {
        let name = manifest["metadata"]["name"].as_str().unwrap().to_owned();
        let kind = manifest["kind"].as_str().unwrap().to_owned();
        let url = format!("{base}{collection}/{name}?fieldManager={FIELD_MANAGER}&force=true");
        let r = http
            .patch(&url)
            .header("content-type", "application/apply-patch+yaml")
            .body(manifest.to_string())
            .send()
            .await
            .unwrap();
        if !r.status().is_success() {
            problems.push(format!("{kind}: apply answered {}", r.status()));
            continue;
        }
        let live: Value = http
            .get(format!("{base}{collection}/{name}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The server did add things: metadata it sets, managed fields, defaults.
        assert!(live["metadata"]["uid"].is_string(), "{kind}: {live:#}");
        assert!(
            live["metadata"]["managedFields"].is_array(),
            "{kind}: {live:#}"
        );
        match kind.as_str() {
            "Service" => assert_eq!(live["spec"]["ports"][0]["protocol"], "TCP", "{live:#}"),
            "Deployment" => assert!(live["spec"]["strategy"].is_object(), "{live:#}"),
            "Secret" => assert!(live["data"]["password"].is_string(), "{live:#}"),
            _ => {}
        }
        let verdict = compare(&manifest, Some(&live), &DiffOptions::default()).unwrap();
        if verdict.sync != SyncStatusCode::Synced {
            problems.push(format!("{kind}: not Synced: {:?}", verdict.changes));
        }
        // A real change is still a difference.
        let mut edited = manifest.clone();
        *edited
            .pointer_mut(field)
            .unwrap_or_else(|| panic!("{kind}: no {field} in the manifest")) = changed;
        let verdict = compare(&edited, Some(&live), &DiffOptions::default()).unwrap();
        if verdict.sync != SyncStatusCode::OutOfSync {
            problems.push(format!("{kind}: a change of {field} was not seen"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
