//! Shared setup: a real nats-server (testkit), cluster-sim over HTTPS, executors run in
//! process exactly as `main` runs them, and polling helpers with generous deadlines.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use cluster_sim::{ClusterConfig, Sim, SimConfig};
use gitfleet_bus::{Bucket, Bus, partition, subject_token};
use gitfleet_engine::ResourceRef;
use gitfleet_messages::{
    CLUSTER_PARTITIONS, DIFF_WORKERS, Fencing, Live, LiveRequest, Operation, Reply, SyncOperation,
};
use gitfleet_model::{Cluster, Redacted, TRACKING_ANNOTATION};
use serde_json::{Value, json};
use sync_executor::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn sim(clusters: usize) -> Sim {
    Sim::start(SimConfig {
        clusters,
        tls: true,
        cluster: ClusterConfig {
            ready_delay: Duration::from_millis(200),
            ..ClusterConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

pub fn test_config(member: &str) -> Config {
    let mut c = Config::new(member);
    c.member_ttl = Duration::from_secs(2);
    c.lease_ttl = Duration::from_secs(2);
    c.wave_delay = Duration::ZERO;
    c.wave_timeout = Duration::from_secs(60);
    c.request_timeout = Duration::from_secs(5);
    c.request_attempts = 2;
    c.retry_backoff = Duration::from_millis(100);
    c.cache_wait = Duration::from_secs(3);
    c.cluster_wait = Duration::from_secs(20);
    c
}

pub struct Executor {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<sync_executor::Result<()>>,
}

impl Executor {
    pub fn start(bus: &Bus, config: Config) -> Executor {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(sync_executor::run(config, bus.clone(), shutdown.clone()));
        Executor { shutdown, task }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("executor stops in time")
            .expect("executor task")
            .expect("executor ends cleanly");
    }
}

/// The registration of sim cluster `i` under `name`, trusting the sim's CA.
pub fn cluster_spec(sim: &Sim, i: usize, name: &str) -> Cluster {
    let mut c = Cluster {
        server: sim.url(i),
        name: name.to_string(),
        ..Cluster::default()
    };
    c.config.bearer_token = Some(Redacted::new(sim.cluster(i).token.clone()));
    c.config.tls_client_config.ca_data =
        base64::engine::general_purpose::STANDARD.encode(sim.ca_pem().expect("tls sim"));
    c
}

pub async fn register(bus: &Bus, sim: &Sim, i: usize, name: &str) {
    let kv = bus.kv(Bucket::Clusters).await.unwrap();
    let spec = cluster_spec(sim, i, name);
    kv.put(
        subject_token(name),
        Bytes::from(serde_json::to_vec(&spec).unwrap()),
    )
    .await
    .unwrap();
}

/// Marks `obj` as `app`'s, as the diff worker does before sending it.
pub fn tracked(app: &str, mut obj: Value) -> Value {
    let r = ResourceRef::from_object(&obj);
    obj["metadata"]["annotations"][TRACKING_ANNOTATION] = Value::String(format!(
        "{app}:{}/{}:{}/{}",
        r.group, r.kind, r.namespace, r.name
    ));
    obj
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub fn config_map(ns: &str, name: &str, wave: Option<i32>) -> Value {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}});
    if let Some(w) = wave {
        cm["metadata"]["annotations"] = json!({"argocd.argoproj.io/sync-wave": w.to_string()});
    }
    cm
}

pub fn deployment(ns: &str, name: &str, wave: Option<i32>) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}});
    if let Some(w) = wave {
        d["metadata"]["annotations"] = json!({"argocd.argoproj.io/sync-wave": w.to_string()});
    }
    d
}

pub fn op(id: &str, app: &str, cluster: &str, desired: Vec<Value>) -> SyncOperation {
    SyncOperation {
        id: id.to_string(),
        app: app.to_string(),
        cluster: cluster.to_string(),
        revision: "0123456789abcdef".to_string(),
        desired: desired.into_iter().map(|o| tracked(app, o)).collect(),
        source: None,
        destination_namespace: String::new(),
        sync_options: Default::default(),
        prune: false,
        dry_run: false,
        resources: Vec::new(),
        fencing: Fencing {
            group: DIFF_WORKERS.to_string(),
            partition: 0,
            revision: 0,
        },
        initiated_by: "test".to_string(),
        requested_at: "2026-01-01T00:00:00Z".to_string(),
        retry: None,
        deleting: false,
        managed_namespace_metadata: None,
        project: None,
        held: Vec::new(),
        ignore_differences: Vec::new(),
        self_heal_attempts: 0,
        prune_confirmed: false,
    }
}

pub async fn enqueue(bus: &Bus, op: &SyncOperation) {
    let subject = bus
        .topology
        .sync_subject(partition(&op.cluster, CLUSTER_PARTITIONS));
    bus.js
        .publish(subject, Bytes::from(serde_json::to_vec(op).unwrap()))
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Waits for operation `id` of `app` to complete and returns it.
pub async fn completed(bus: &Bus, app: &str, id: &str) -> Operation {
    let kv = bus.kv(Bucket::Operations).await.unwrap();
    eventually(90, &format!("operation {id} of {app} to complete"), || {
        let kv = kv.clone();
        async move {
            let entry = kv.get(subject_token(app)).await.ok()??;
            let op: Operation = serde_json::from_slice(&entry).ok()?;
            (op.id == id && op.phase.is_completed()).then_some(op)
        }
    })
    .await
}

pub async fn sync(bus: &Bus, op: &SyncOperation) -> Operation {
    enqueue(bus, op).await;
    completed(bus, &op.app, &op.id).await
}

pub async fn live(bus: &Bus, app: &str, cluster: &str) -> Reply<Live> {
    let subject = bus.topology.live_request_subject(cluster);
    let req = serde_json::to_vec(&LiveRequest {
        app: app.to_string(),
        cluster: cluster.to_string(),
        server_side_diff: Vec::new(),
        fresh_dry_runs: false,
        resource_tree: false,
    })
    .unwrap();
    // The executor may not have subscribed yet: retry until someone answers.
    eventually(60, "an answer to the live request", || {
        let (bus, subject, req) = (bus.clone(), subject.clone(), req.clone());
        async move {
            let msg = tokio::time::timeout(
                Duration::from_secs(15),
                bus.client.request(subject, req.into()),
            )
            .await
            .ok()?
            .ok()?;
            let body = bus.read_payload(&msg).await.ok()?;
            serde_json::from_slice(&body).ok()
        }
    })
    .await
}

/// A kube client for sim cluster `i`, through the executor's own client builder.
pub fn kube_client(sim: &Sim, i: usize) -> kube::Client {
    sync_executor::client::build(
        "test",
        &cluster_spec(sim, i, "test"),
        "test",
        std::sync::Arc::new(sync_executor::limiter::RateLimiter::new(0.0, 0)),
    )
    .expect("client")
}

pub async fn get(client: &kube::Client, path: &str) -> Option<Value> {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    client.request::<Value>(req).await.ok()
}
