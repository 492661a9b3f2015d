//! The simulated controllers drive every workload kind to the status a real cluster
//! reports, so Argo CD's health rules (gitfleet's engine) judge them as they would on a
//! real cluster: Healthy when asked to succeed, Degraded when asked to fail.

use std::time::Duration;

use cluster_sim::{ClusterConfig, Sim, SimConfig};
use gitfleet_engine::health;
use serde_json::{Value, json};

fn pod_spec(outcome: Option<&str>, restart: &str) -> Value {
    let mut meta = json!({"labels": {"app": "x"}});
    if let Some(o) = outcome {
        meta["annotations"] = json!({"sim.gitfleet.dev/outcome": o});
    }
    json!({"metadata": meta, "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox:1.36"}]}})
}

fn workloads() -> Vec<(&'static str, Value, &'static str)> {
    let sel = json!({"matchLabels": {"app": "x"}});
    vec![
        (
            "/apis/apps/v1/namespaces/w/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ok"},
            "spec": {"replicas": 2, "selector": sel, "template": pod_spec(None, "Always")}}),
            "Healthy",
        ),
        (
            "/apis/apps/v1/namespaces/w/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "crashing"},
            "spec": {"progressDeadlineSeconds": 1, "selector": sel, "template": pod_spec(Some("crashloop"), "Always")}}),
            "Degraded",
        ),
        (
            "/apis/apps/v1/namespaces/w/statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": sel, "template": pod_spec(None, "Always")}}),
            "Healthy",
        ),
        (
            "/apis/apps/v1/namespaces/w/daemonsets",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": sel, "template": pod_spec(None, "Always")}}),
            "Healthy",
        ),
        (
            "/apis/apps/v1/namespaces/w/replicasets",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "bare-rs"},
            "spec": {"replicas": 1, "selector": sel, "template": pod_spec(None, "Always")}}),
            "Healthy",
        ),
        (
            "/apis/batch/v1/namespaces/w/jobs",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
            "spec": {"template": pod_spec(None, "Never")}}),
            "Healthy",
        ),
        (
            "/apis/batch/v1/namespaces/w/jobs",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "broken",
            "annotations": {"sim.gitfleet.dev/outcome": "fail"}}, "spec": {"backoffLimit": 0, "template": pod_spec(None, "Never")}}),
            "Degraded",
        ),
        (
            "/api/v1/namespaces/w/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}),
            "Healthy",
        ),
        (
            "/api/v1/namespaces/w/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crashpod",
            "annotations": {"sim.gitfleet.dev/outcome": "crashloop"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}),
            "Degraded",
        ),
        (
            "/api/v1/namespaces/w/persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
            "Healthy",
        ),
        (
            "/api/v1/namespaces/w/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}}),
            "Healthy",
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/w/ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
            "spec": {"rules": [{"host": "x.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "lb", "port": {"number": 80}}}}]}}]}}),
            "Healthy",
        ),
        (
            "/apis/autoscaling/v2/namespaces/w/horizontalpodautoscalers",
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "hpa"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ok"}, "minReplicas": 1, "maxReplicas": 3}}),
            "Healthy",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_reaches_the_health_argo_cd_would_compute() {
    let sim = Sim::start(SimConfig {
        cluster: ClusterConfig {
            ready_delay: Duration::from_millis(100),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let base = sim.url(0);
    let post = |path: String, body: Value| {
        let http = http.clone();
        async move {
            let r = http.post(path).json(&body).send().await.unwrap();
            let code = r.status();
            assert!(code.is_success(), "{}", r.text().await.unwrap());
        }
    };
    post(
        format!("{base}/api/v1/namespaces"),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}}),
    )
    .await;
    let items = workloads();
    for (path, body, _) in &items {
        post(format!("{base}{path}"), body.clone()).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut wrong = Vec::new();
        for (path, body, want) in &items {
            let name = body["metadata"]["name"].as_str().unwrap();
            let live: Value = http
                .get(format!("{base}{path}/{name}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let got = health::assess(&live).map(|h| (h.status.to_string(), h.message));
            if got.as_ref().map(|g| g.0.as_str()) != Some(*want) {
                wrong.push(format!(
                    "{} {name}: want {want}, got {got:?}",
                    body["kind"].as_str().unwrap()
                ));
            }
        }
        if wrong.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not converged:\n{}",
            wrong.join("\n")
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Deployments made their ReplicaSets and Pods, owned and labelled as a real cluster does.
    let pods: Value = http
        .get(format!(
            "{base}/api/v1/namespaces/w/pods?labelSelector=app%3Dx"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let owners: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["ownerReferences"][0]["kind"].as_str())
        .collect();
    for kind in ["ReplicaSet", "StatefulSet", "DaemonSet", "Job"] {
        assert!(
            owners.contains(&kind),
            "no pod owned by a {kind}: {owners:?}"
        );
    }
}
