//! The live cache of one cluster: one watch per served kind, objects indexed by the app
//! part of their `argocd.argoproj.io/tracking-id`, plus the names of every namespace.
//!
//! Only tracked objects are kept (and namespace names): that is what live requests,
//! pruning and health waits read, and it keeps memory proportional to what gitfleet
//! manages rather than to everything a cluster runs. Changes of tracked objects are
//! reported per app (see [`LiveCache::changes`]), for the `LiveChanged` routing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use gitfleet_bus::Backoff;
use gitfleet_engine::ResourceRef;
use gitfleet_engine::tracking::tracking_id;
use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Kinds never watched: high churn and never deployed by an app (Argo CD's default
/// resource exclusions, plus events).
const EXCLUDED: [(&str, &str); 6] = [
    ("", "Event"),
    ("events.k8s.io", "Event"),
    ("", "Endpoints"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("coordination.k8s.io", "Lease"),
    ("", "ComponentStatus"),
];

/// Identity of an object in the cache: group, kind, namespace, name.
pub type ObjKey = (String, String, String, String);

pub fn key_of(r: &ResourceRef) -> ObjKey {
    (
        r.group.clone(),
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
    )
}

/// A served kind, as discovery describes it.
#[derive(Clone, Debug)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

pub struct LiveCache {
    cluster: String,
    inner: RwLock<Inner>,
    /// Bumped whenever readiness or errors change, for waiters.
    state: watch::Sender<u64>,
    changes: mpsc::UnboundedSender<String>,
    /// Asks the cache task to run discovery now (an apply met an unknown kind).
    rediscover: Notify,
}

#[derive(Default)]
struct Inner {
    objects: HashMap<ObjKey, Value>,
    by_app: HashMap<String, BTreeSet<ObjKey>>,
    namespaces: BTreeSet<String>,
    kinds: HashMap<(String, String), Kind>,
    discovered: bool,
    /// Watched kinds that have not finished their first list.
    listing: BTreeSet<(String, String)>,
    /// The latest error of discovery or of each kind's watch, cleared by its next success.
    errors: BTreeMap<String, String>,
}

impl LiveCache {
    /// A cache and the receiver of the apps whose tracked objects change.
    pub fn new(cluster: &str) -> (Arc<LiveCache>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cache = LiveCache {
            cluster: cluster.to_string(),
            inner: RwLock::new(Inner::default()),
            state: watch::channel(0).0,
            changes: tx,
            rediscover: Notify::new(),
        };
        (Arc::new(cache), rx)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.state.send_modify(|n| *n += 1);
    }

    /// Discovered and every watched kind listed once.
    pub fn is_ready(&self) -> bool {
        let inner = self.read();
        inner.discovered && inner.listing.is_empty()
    }

    /// Why the cluster cannot be listed right now, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let inner = self.read();
        if let Some((what, err)) = inner.errors.iter().next() {
            return Some(format!("{what}: {err}"));
        }
        if !inner.discovered {
            return Some("discovery has not completed".to_string());
        }
        if let Some((g, k)) = inner.listing.iter().next() {
            return Some(format!("listing {} has not completed", group_kind(g, k)));
        }
        None
    }

    /// Waits until the cache is ready and error-free; `Err` with the reason at the deadline.
    pub async fn wait_ready(&self, wait: Duration) -> Result<(), String> {
        let mut rx = self.state.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.is_ready() && self.read().errors.is_empty() {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return match self.problem() {
                        Some(p) => Err(p),
                        None => Ok(()),
                    };
                }
            }
        }
    }

    /// The objects tracked by `app` (the app part of the tracking id, exactly).
    pub fn app_objects(&self, app: &str) -> Vec<Value> {
        let inner = self.read();
        inner
            .by_app
            .get(app)
            .into_iter()
            .flatten()
            .filter_map(|k| inner.objects.get(k).cloned())
            .collect()
    }

    pub fn get(&self, key: &ObjKey) -> Option<Value> {
        self.read().objects.get(key).cloned()
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.read().namespaces.iter().cloned().collect()
    }

    pub fn has_namespace(&self, ns: &str) -> bool {
        self.read().namespaces.contains(ns)
    }

    /// Whether `group`/`kind` is namespaced, by discovery; `None` when not served.
    pub fn scope(&self, group: &str, kind: &str) -> Option<bool> {
        self.read()
            .kinds
            .get(&(group.to_string(), kind.to_string()))
            .map(|k| k.namespaced)
    }

    pub fn kind(&self, group: &str, kind: &str) -> Option<Kind> {
        self.read()
            .kinds
            .get(&(group.to_string(), kind.to_string()))
            .cloned()
    }

    /// Every namespaced kind the cache watches.
    pub fn namespaced_kinds(&self) -> Vec<Kind> {
        self.read()
            .kinds
            .values()
            .filter(|k| k.namespaced)
            .cloned()
            .collect()
    }

    /// Asks for a discovery run now, e.g. after a sync created a CRD.
    pub fn request_rediscovery(&self) {
        self.rediscover.notify_one();
    }

    /// Records an object the executor just wrote, so its own next read sees it even
    /// before the watch delivers it.
    pub fn record_write(&self, obj: Value) {
        let r = ResourceRef::from_object(&obj);
        let mut inner = self.write();
        let changed = upsert(&mut inner, key_of(&r), obj, true);
        drop(inner);
        self.notify(changed);
    }

    /// Forgets an object the executor just deleted.
    pub fn record_delete(&self, key: &ObjKey) {
        let mut inner = self.write();
        let changed = remove(&mut inner, key);
        drop(inner);
        self.notify(changed);
    }

    fn notify(&self, apps: Vec<String>) {
        for app in apps {
            let _ = self.changes.send(app);
        }
    }

    fn set_error(&self, what: String, err: Option<String>) {
        let mut inner = self.write();
        let changed = match err {
            Some(e) => inner.errors.insert(what, e.clone()).as_ref() != Some(&e),
            None => inner.errors.remove(&what).is_some(),
        };
        drop(inner);
        if changed {
            self.bump();
        }
    }

    /// Keeps the cache filled until `cancel`: discovery, then a watch per kind; kinds that
    /// appear later (new CRDs) are picked up on rediscovery.
    pub async fn run(
        self: Arc<Self>,
        client: kube::Client,
        every: Duration,
        cancel: CancellationToken,
    ) {
        let mut watching: BTreeSet<(String, String)> = BTreeSet::new();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        loop {
            let next = match discover(&client).await {
                Ok(kinds) => {
                    backoff.reset();
                    self.set_error("discovery".into(), None);
                    let mut new = Vec::new();
                    {
                        let mut inner = self.write();
                        for (gk, (kind, caps)) in &kinds {
                            inner.kinds.insert(gk.clone(), kind.clone());
                            let listable = caps.supports_operation(verbs::LIST)
                                && caps.supports_operation(verbs::WATCH);
                            if listable
                                && !EXCLUDED.contains(&(gk.0.as_str(), gk.1.as_str()))
                                && !watching.contains(gk)
                            {
                                watching.insert(gk.clone());
                                inner.listing.insert(gk.clone());
                                new.push(kind.clone());
                            }
                        }
                        inner.discovered = true;
                    }
                    self.bump();
                    for kind in new {
                        tracing::debug!(cluster = %self.cluster, kind = %kind.resource.kind, group = %kind.resource.group, "watching kind");
                        tokio::spawn(
                            self.clone()
                                .watch_kind(client.clone(), kind, cancel.clone()),
                        );
                    }
                    every
                }
                Err(err) => {
                    tracing::warn!(cluster = %self.cluster, error = %err, "discovery failed");
                    self.set_error("discovery".into(), Some(err));
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(next) => {}
                _ = self.rediscover.notified() => {}
            }
        }
    }

    async fn watch_kind(
        self: Arc<Self>,
        client: kube::Client,
        kind: Kind,
        cancel: CancellationToken,
    ) {
        let api: Api<DynamicObject> = Api::all_with(client, &kind.resource);
        let gk = (kind.resource.group.clone(), kind.resource.kind.clone());
        let what = format!("watching {}", group_kind(&gk.0, &gk.1));
        let api_version = kind.resource.api_version.clone();
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        // Objects of the list in progress; a relist replaces the kind's objects wholesale,
        // so deletions missed while disconnected are noticed.
        let mut relist: Option<HashMap<ObjKey, Value>> = None;
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                e = stream.next() => e,
            };
            let Some(event) = event else { return };
            let event = match event {
                Ok(e) => e,
                Err(err) => {
                    tracing::debug!(cluster = %self.cluster, kind = %gk.1, error = %err, "watch failed");
                    self.set_error(what.clone(), Some(gitfleet_messages::error_chain(&err)));
                    continue;
                }
            };
            self.set_error(what.clone(), None);
            match event {
                watcher::Event::Init => relist = Some(HashMap::new()),
                watcher::Event::InitApply(obj) => {
                    let value = to_value(obj, &api_version, &gk.1);
                    let key = key_of(&ResourceRef::from_object(&value));
                    relist.get_or_insert_with(HashMap::new).insert(key, value);
                }
                watcher::Event::InitDone => {
                    let fresh = relist.take().unwrap_or_default();
                    let mut inner = self.write();
                    let mut changed = Vec::new();
                    let gone: Vec<ObjKey> = inner
                        .objects
                        .keys()
                        .filter(|k| k.0 == gk.0 && k.1 == gk.1 && !fresh.contains_key(*k))
                        .cloned()
                        .collect();
                    if gk.0.is_empty() && gk.1 == "Namespace" {
                        inner.namespaces = fresh.keys().map(|k| k.3.clone()).collect();
                    }
                    for k in gone {
                        changed.extend(remove(&mut inner, &k));
                    }
                    for (k, v) in fresh {
                        changed.extend(upsert(&mut inner, k, v, false));
                    }
                    let done = inner.listing.remove(&gk);
                    drop(inner);
                    self.notify(changed);
                    if done {
                        self.bump();
                    }
                }
                watcher::Event::Apply(obj) => {
                    let value = to_value(obj, &api_version, &gk.1);
                    let key = key_of(&ResourceRef::from_object(&value));
                    let mut inner = self.write();
                    if gk.0.is_empty() && gk.1 == "Namespace" {
                        inner.namespaces.insert(key.3.clone());
                    }
                    let changed = upsert(&mut inner, key, value, false);
                    drop(inner);
                    self.notify(changed);
                }
                watcher::Event::Delete(obj) => {
                    let value = to_value(obj, &api_version, &gk.1);
                    let key = key_of(&ResourceRef::from_object(&value));
                    let mut inner = self.write();
                    if gk.0.is_empty() && gk.1 == "Namespace" {
                        inner.namespaces.remove(&key.3);
                    }
                    let changed = remove(&mut inner, &key);
                    drop(inner);
                    self.notify(changed);
                }
            }
        }
    }
}

fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

fn to_value(obj: DynamicObject, api_version: &str, kind: &str) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        // Lists leave apiVersion and kind out of their items.
        m.entry("apiVersion")
            .or_insert_with(|| Value::String(api_version.to_string()));
        m.entry("kind")
            .or_insert_with(|| Value::String(kind.to_string()));
        if m.get("apiVersion")
            .is_some_and(|a| a.as_str().is_none_or(str::is_empty))
        {
            m.insert("apiVersion".into(), Value::String(api_version.to_string()));
        }
        if m.get("kind")
            .is_some_and(|a| a.as_str().is_none_or(str::is_empty))
        {
            m.insert("kind".into(), Value::String(kind.to_string()));
        }
    }
    v
}

fn app_of(obj: &Value) -> Option<String> {
    tracking_id(obj).map(|t| t.app)
}

fn resource_version(obj: &Value) -> Option<u64> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())
}

/// Stores `value` under `key` if tracked (dropping it if no longer tracked); returns
/// the apps whose objects changed. A local write never replaces a newer watched copy.
fn upsert(inner: &mut Inner, key: ObjKey, value: Value, local: bool) -> Vec<String> {
    let old_app = inner.objects.get(&key).and_then(app_of);
    if local
        && let (Some(old), Some(new)) = (
            inner.objects.get(&key).and_then(resource_version),
            resource_version(&value),
        )
        && new < old
    {
        return Vec::new();
    }
    let new_app = app_of(&value);
    if let Some(old) = &old_app
        && new_app.as_ref() != Some(old)
        && let Some(set) = inner.by_app.get_mut(old)
    {
        set.remove(&key);
        if set.is_empty() {
            inner.by_app.remove(old);
        }
    }
    match &new_app {
        Some(app) => {
            if inner.objects.get(&key) == Some(&value) {
                return Vec::new();
            }
            inner
                .by_app
                .entry(app.clone())
                .or_default()
                .insert(key.clone());
            inner.objects.insert(key, value);
        }
        None => {
            inner.objects.remove(&key);
        }
    }
    let mut apps: Vec<String> = old_app.into_iter().chain(new_app).collect();
    apps.dedup();
    apps
}

fn remove(inner: &mut Inner, key: &ObjKey) -> Vec<String> {
    let Some(old) = inner.objects.remove(key) else {
        return Vec::new();
    };
    let app = app_of(&old);
    if let Some(app) = &app
        && let Some(set) = inner.by_app.get_mut(app)
    {
        set.remove(key);
        if set.is_empty() {
            inner.by_app.remove(app);
        }
    }
    app.into_iter().collect()
}

/// Every served kind at its preferred version.
async fn discover(
    client: &kube::Client,
) -> Result<BTreeMap<(String, String), (Kind, ApiCapabilities)>, String> {
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => d,
        Err(_) => Discovery::new(client.clone())
            .run()
            .await
            .map_err(|err| gitfleet_messages::error_chain(&err))?,
    };
    let mut kinds = BTreeMap::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            // Subresources (`pods/status`) are listed by some servers as resources.
            if ar.plural.contains('/') {
                continue;
            }
            let kind = Kind {
                namespaced: caps.scope == Scope::Namespaced,
                resource: ar.clone(),
            };
            kinds.insert((ar.group.clone(), ar.kind.clone()), (kind, caps));
        }
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str, app: Option<&str>, rv: &str) -> Value {
        let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}});
        if let Some(app) = app {
            v["metadata"]["annotations"] = json!({
                gitfleet_model::TRACKING_ANNOTATION: format!("{app}:/ConfigMap:ns/{name}")
            });
        }
        v
    }

    #[test]
    fn index_follows_the_tracking_app() {
        let mut inner = Inner::default();
        let k = key_of(&ResourceRef::from_object(&cm("a", None, "1")));
        assert!(upsert(&mut inner, k.clone(), cm("a", None, "1"), false).is_empty());
        assert_eq!(
            upsert(&mut inner, k.clone(), cm("a", Some("x"), "2"), false),
            vec!["x"]
        );
        assert_eq!(
            upsert(&mut inner, k.clone(), cm("a", Some("y"), "3"), false),
            vec!["x", "y"]
        );
        assert!(!inner.by_app.contains_key("x"));
        // A local write older than what the watch delivered is ignored.
        assert!(upsert(&mut inner, k.clone(), cm("a", Some("z"), "2"), true).is_empty());
        assert_eq!(remove(&mut inner, &k), vec!["y"]);
        assert!(inner.by_app.is_empty() && inner.objects.is_empty());
    }
}
