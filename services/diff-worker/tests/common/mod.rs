//! A real nats-server, a diff worker under test, and scripted peers (git-watcher,
//! renderer, the executor's live answers) subscribed on the request subjects.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::Store;
use futures::StreamExt;
use gitfleet_bus::{Bucket, Bus, StreamName, subject_token, testkit};
use gitfleet_messages::{
    IN_CLUSTER, Live, LiveRequest, RenderRequest, Rendered, Reply, ResolveRequest, Resolved,
    SyncOperation,
};
use gitfleet_model::{
    Application, ApplicationSource, ApplicationStatus, Automated, Destination, ObjectMeta,
    SyncPolicy,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const REPO: &str = "https://git.example.com/fleet.git";
pub const DEADLINE: Duration = Duration::from_secs(30);

/// What the scripted peers answer; tests change it as they go.
#[derive(Default)]
pub struct Script {
    /// revision -> commit; a missing revision is an error.
    pub commits: HashMap<String, String>,
    /// path -> manifests or the renderer's error.
    pub manifests: HashMap<String, Result<Vec<Value>, String>>,
    /// app -> live resources or the executor's error; missing = none.
    pub live: HashMap<String, Result<Vec<Value>, String>>,
}

pub struct Peers {
    pub script: Mutex<Script>,
    pub renders: AtomicUsize,
    pub live_requests: AtomicUsize,
    pub resolves: AtomicUsize,
}

impl Peers {
    pub fn set_commit(&self, revision: &str, commit: &str) {
        self.script
            .lock()
            .unwrap()
            .commits
            .insert(revision.into(), commit.into());
    }
    pub fn set_manifests(&self, path: &str, m: Result<Vec<Value>, String>) {
        self.script.lock().unwrap().manifests.insert(path.into(), m);
    }
    pub fn set_live(&self, app: &str, l: Result<Vec<Value>, String>) {
        self.script.lock().unwrap().live.insert(app.into(), l);
    }
    pub fn renders(&self) -> usize {
        self.renders.load(Ordering::SeqCst)
    }
    pub fn live_requests(&self) -> usize {
        self.live_requests.load(Ordering::SeqCst)
    }
    pub fn resolves(&self) -> usize {
        self.resolves.load(Ordering::SeqCst)
    }
}

/// Starts the scripted peers on `bus`; they answer until the test ends.
pub async fn start_peers(bus: &Bus) -> Arc<Peers> {
    let peers = Arc::new(Peers {
        script: Mutex::new(Script::default()),
        renders: AtomicUsize::new(0),
        live_requests: AtomicUsize::new(0),
        resolves: AtomicUsize::new(0),
    });
    peers.set_commit("HEAD", "c1");
    let p = peers.clone();
    respond(
        bus,
        bus.topology.git_resolve_subject(),
        move |r: ResolveRequest| {
            p.resolves.fetch_add(1, Ordering::SeqCst);
            let script = p.script.lock().unwrap();
            match script.commits.get(&r.revision) {
                Some(c) => Ok(Resolved { commit: c.clone() }),
                None => Err(format!(
                    "revision \"{}\" not found in {}",
                    r.revision, r.repo
                )),
            }
        },
    )
    .await;
    let p = peers.clone();
    respond(
        bus,
        bus.topology.render_subject(),
        move |r: RenderRequest| {
            p.renders.fetch_add(1, Ordering::SeqCst);
            let script = p.script.lock().unwrap();
            match script.manifests.get(&r.source.path) {
                Some(Ok(m)) => Ok(Rendered {
                    manifests: m.clone(),
                    inputs: vec![],
                }),
                Some(Err(e)) => Err(e.clone()),
                None => Err(format!("path {} not found", r.source.path)),
            }
        },
    )
    .await;
    let p = peers.clone();
    respond(
        bus,
        bus.topology.live_request_subject(IN_CLUSTER),
        move |r: LiveRequest| {
            p.live_requests.fetch_add(1, Ordering::SeqCst);
            let script = p.script.lock().unwrap();
            match script.live.get(&r.app) {
                Some(Ok(l)) => Ok(Live {
                    resources: l.clone(),
                    namespaces: vec![],
                    predicted: vec![],
                    tree: vec![],
                }),
                Some(Err(e)) => Err(e.clone()),
                None => Ok(Live {
                    resources: vec![],
                    namespaces: vec![],
                    predicted: vec![],
                    tree: vec![],
                }),
            }
        },
    )
    .await;
    bus.client.flush().await.unwrap();
    peers
}

async fn respond<Req, Resp, F>(bus: &Bus, subject: String, answer: F)
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Result<Resp, String> + Send + 'static,
{
    let mut sub = bus.client.subscribe(subject).await.unwrap();
    let client = bus.client.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let reply: Reply<Resp> = match serde_json::from_slice::<Req>(&msg.payload) {
                // Scripted failures are the peer's own answers; their code does not matter here.
                Ok(req) => answer(req)
                    .map_err(gitfleet_messages::ServiceError::invalid)
                    .into(),
                Err(e) => Reply::Error(gitfleet_messages::ServiceError::invalid(e.to_string())),
            };
            if let Some(to) = msg.reply {
                let _ = client
                    .publish(to, serde_json::to_vec(&reply).unwrap().into())
                    .await;
            }
        }
    });
}

/// A fresh prefix on the shared server, topology ensured.
pub async fn bus() -> Bus {
    testkit::bus().await
}

/// Another connection under the same prefix, as a second process would have.
pub async fn connect_like(bus: &Bus) -> Bus {
    let client = async_nats::connect(testkit::shared().url()).await.unwrap();
    Bus::new(client, bus.topology.clone())
}

pub fn config(member: &str) -> diff_worker::Config {
    let mut c = diff_worker::Config::new(member);
    c.member_ttl = Duration::from_secs(2);
    c.lease_ttl = Duration::from_secs(2);
    // Long enough that only the triggers under test cause reconciliations.
    c.refresh_interval = Duration::from_secs(300);
    c.refresh_jitter = Duration::ZERO;
    c.request_timeout = Duration::from_secs(3);
    c.render_timeout = Duration::from_secs(3);
    c
}

pub struct Worker {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<diff_worker::Result<()>>,
}

pub fn start_worker(bus: &Bus, config: diff_worker::Config) -> Worker {
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(diff_worker::run(config, bus.clone(), shutdown.clone()));
    Worker { shutdown, handle }
}

pub fn app(name: &str, path: &str) -> Application {
    Application {
        metadata: ObjectMeta {
            namespace: "argocd".into(),
            ..ObjectMeta::named(name)
        },
        spec: gitfleet_model::ApplicationSpec {
            source: Some(ApplicationSource {
                repo_url: REPO.into(),
                path: path.into(),
                target_revision: "HEAD".into(),
                ..ApplicationSource::default()
            }),
            destination: Destination {
                server: "https://kubernetes.default.svc".into(),
                namespace: "web".into(),
                ..Destination::default()
            },
            ..Default::default()
        },
        ..Application::default()
    }
}

pub fn automated(mut app: Application, self_heal: bool) -> Application {
    app.spec.sync_policy = Some(SyncPolicy {
        automated: Some(Automated {
            self_heal,
            prune: true,
            ..Automated::default()
        }),
        ..SyncPolicy::default()
    });
    app
}

pub fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}})
}

/// `manifests` as they are live after a sync of `app`.
pub fn as_live(app: &Application, manifests: &[Value]) -> Vec<Value> {
    gitfleet_engine::app::prepare_desired(manifests, app, "argocd")
}

pub async fn kv(bus: &Bus, bucket: Bucket) -> Store {
    bus.kv(bucket).await.unwrap()
}

pub async fn put_app(bus: &Bus, app: &Application) {
    kv(bus, Bucket::Applications)
        .await
        .put(
            subject_token(&app.metadata.name),
            serde_json::to_vec(app).unwrap().into(),
        )
        .await
        .unwrap();
}

pub async fn put_json<T: Serialize>(bus: &Bus, bucket: Bucket, name: &str, value: &T) {
    kv(bus, bucket)
        .await
        .put(
            subject_token(name),
            serde_json::to_vec(value).unwrap().into(),
        )
        .await
        .unwrap();
}

pub async fn status(bus: &Bus, app: &str) -> Option<ApplicationStatus> {
    let body = kv(bus, Bucket::AppStatus)
        .await
        .get(subject_token(app))
        .await
        .unwrap()?;
    Some(serde_json::from_slice(&body).unwrap())
}

/// Polls until `pred` holds for the app's status, or panics after [`DEADLINE`] showing
/// the last status seen.
pub async fn wait_status(
    bus: &Bus,
    app: &str,
    what: &str,
    pred: impl Fn(&ApplicationStatus) -> bool,
) -> ApplicationStatus {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let s = status(bus, app).await;
        if let Some(s) = &s
            && pred(s)
        {
            return s.clone();
        }
        if tokio::time::Instant::now() > deadline {
            panic!("app {app}: {what} not reached; last status {s:#?}");
        }
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `cond` holds, or panics after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} not reached");
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn sync_of(s: &ApplicationStatus) -> (String, String) {
    let sync = s.sync.clone().unwrap_or_default();
    (sync.status.to_string(), sync.revision)
}

pub fn health_of(s: &ApplicationStatus) -> String {
    s.health.clone().unwrap_or_default().status.to_string()
}

/// Every sync operation on the work queue (nothing consumes it in these tests).
pub async fn sync_ops(bus: &Bus) -> Vec<SyncOperation> {
    let stream = bus
        .js
        .get_stream(bus.topology.stream(StreamName::SyncWork))
        .await
        .unwrap();
    let info = stream.get_info().await.unwrap();
    let mut ops = Vec::new();
    if info.state.messages == 0 {
        return ops;
    }
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            ops.push(serde_json::from_slice(&m.payload).unwrap());
        }
    }
    ops
}

pub async fn publish<T: Serialize>(bus: &Bus, subject: String, value: &T) {
    bus.client
        .publish(subject, serde_json::to_vec(value).unwrap().into())
        .await
        .unwrap();
    bus.client.flush().await.unwrap();
}

/// What the git watcher publishes when `HEAD` of [`REPO`] moves from `from` to `to`
/// (`changed`: the paths the commits touched; `None` = unknown, every app is touched).
pub async fn revision_moved(bus: &Bus, from: &str, to: &str, changed: Option<&[&str]>) {
    let event = gitfleet_messages::RevisionEvent {
        repo: REPO.into(),
        target_revision: "HEAD".into(),
        from: Some(from.into()),
        to: to.into(),
        changed_paths: changed.map(|paths| paths.iter().map(|p| (*p).to_owned()).collect()),
    };
    bus.js
        .publish(
            bus.topology.revision_subject(REPO),
            serde_json::to_vec(&event).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}
