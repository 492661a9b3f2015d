//! Every app, its status and its operation in memory, followed through KV watches, so
//! `app list` filters and pages without reading the buckets: its cost follows the page,
//! not the fleet.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use gitfleet_bus::async_nats::jetstream::kv;
use gitfleet_bus::{Bucket, Bus, token_to_name};
use gitfleet_messages::Operation;
use gitfleet_model::{Application, ApplicationStatus};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

#[derive(Default, Clone)]
struct Entry {
    app: Option<Arc<Application>>,
    status: Option<Arc<ApplicationStatus>>,
    operation: Option<Arc<Operation>>,
}

/// The buckets followed, in the order of [`Followed::applied`].
const BUCKETS: [Bucket; 3] = [Bucket::Applications, Bucket::AppStatus, Bucket::Operations];

/// The index; cheap to clone.
#[derive(Clone)]
pub struct AppIndex {
    entries: Arc<RwLock<BTreeMap<String, Entry>>>,
    followed: Arc<Followed>,
    stores: Vec<kv::Store>,
}

/// How far each bucket has been applied: the last revision (stream sequence) seen.
#[derive(Default)]
struct Followed {
    applied: [AtomicU64; 3],
    moved: Notify,
}

/// One page of a listing: the apps (status and operation state filled in) and the name
/// to continue after, when more may follow.
pub struct Page {
    pub apps: Vec<Application>,
    pub next: Option<String>,
}

impl AppIndex {
    /// Every app's dependencies (`gitfleet.dev/depends-on`), for the cycle check of a
    /// create.
    pub fn dependencies(&self) -> std::collections::HashMap<String, Vec<String>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(name, e)| {
                let deps = gitfleet_engine::depends::depends_on(e.app.as_ref()?);
                (!deps.is_empty()).then(|| (name.clone(), deps))
            })
            .collect()
    }

    /// Starts following the applications, app-status and operations buckets until
    /// `shutdown`.
    pub async fn start(bus: &Bus, shutdown: CancellationToken) -> Result<AppIndex> {
        let entries = Arc::new(RwLock::new(BTreeMap::new()));
        let followed = Arc::new(Followed::default());
        let mut stores = Vec::new();
        for (i, bucket) in BUCKETS.into_iter().enumerate() {
            let store = bus.kv(bucket).await?;
            stores.push(store.clone());
            tokio::spawn(follow(
                store,
                i,
                entries.clone(),
                followed.clone(),
                shutdown.clone(),
            ));
        }
        Ok(AppIndex {
            entries,
            followed,
            stores,
        })
    }

    /// Waits until the index has applied every write the buckets held when called, so a
    /// listing sees what was written before it (the caller's own `app create` among
    /// them): three small stream-info calls, however large the fleet.
    pub async fn catch_up(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        // The three asked at once: one round trip, not three.
        let lasts = futures::future::try_join_all(self.stores.iter().map(|store| async move {
            // `stream.get_info` asks the server; a store's `status()` is the info of when
            // the handle was opened, which would make the index look caught up already.
            store
                .stream
                .get_info()
                .await
                .map(|info| info.state.last_sequence)
                .map_err(|e| Error::Unavailable(format!("reading kv {}: {e}", store.name)))
        }))
        .await?;
        for (i, (store, last)) in self.stores.iter().zip(lasts).enumerate() {
            loop {
                // Registered before the check, so a notification in between is not lost.
                let moved = self.followed.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if self.followed.applied[i].load(Ordering::Acquire) >= last {
                    break;
                }
                if tokio::time::timeout_at(deadline, moved).await.is_err() {
                    return Err(Error::Unavailable(format!(
                        "the application index has not caught up with kv {} yet",
                        store.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Up to `limit` apps after `after` (by name) for which `keep` holds and `visible`
    /// answers true, in name order. `keep` is checked under the index's lock (it must be
    /// cheap: filters); `visible` (RBAC, async) only on the apps `keep` let through, a
    /// batch at a time, so a page costs the decisions it needs.
    pub async fn page<K, V, F>(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: K,
        mut visible: V,
    ) -> Result<Page>
    where
        K: Fn(&Application, Option<&ApplicationStatus>) -> bool,
        V: FnMut(Application) -> F,
        F: std::future::Future<Output = Result<Option<Application>>>,
    {
        self.catch_up().await?;
        let limit = if limit == 0 { usize::MAX } else { limit };
        let batch = limit.saturating_add(1).min(1000);
        let mut apps = Vec::new();
        let mut cursor = after.map(str::to_owned);
        loop {
            let candidates = self.candidates(cursor.as_deref(), batch, &keep);
            let exhausted = candidates.len() < batch;
            for app in candidates {
                cursor = Some(app.metadata.name.clone());
                if let Some(app) = visible(app).await? {
                    if apps.len() == limit {
                        // One more exists: the page is full and has a successor.
                        let next = apps.last().map(|a: &Application| a.metadata.name.clone());
                        return Ok(Page { apps, next });
                    }
                    apps.push(app);
                }
            }
            if exhausted {
                return Ok(Page { apps, next: None });
            }
        }
    }

    /// The next `n` apps after `after` that `keep` lets through, with their status.
    fn candidates(
        &self,
        after: Option<&str>,
        n: usize,
        keep: &impl Fn(&Application, Option<&ApplicationStatus>) -> bool,
    ) -> Vec<Application> {
        use std::ops::Bound::{Excluded, Unbounded};
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let start = match after {
            Some(name) => Excluded(name.to_owned()),
            None => Unbounded,
        };
        let mut out = Vec::new();
        for entry in entries.range((start, Unbounded)).map(|(_, e)| e) {
            let Some(app) = &entry.app else { continue };
            // Filters read the shared entry; only what they keep is copied.
            if !keep(app, entry.status.as_deref()) {
                continue;
            }
            let mut app = Application::clone(app);
            let mut status = entry.status.as_deref().cloned();
            if let Some(op) = &entry.operation {
                status
                    .get_or_insert_with(ApplicationStatus::default)
                    .operation_state = Some(op.to_operation_state());
            }
            app.status = status;
            out.push(app);
            if out.len() == n {
                break;
            }
        }
        out
    }
}

/// Applies bucket `i`'s entries to the index, reopening the watch when it ends.
async fn follow(
    store: kv::Store,
    i: usize,
    entries: Arc<RwLock<BTreeMap<String, Entry>>>,
    followed: Arc<Followed>,
    shutdown: CancellationToken,
) {
    let mut backoff = gitfleet_bus::Backoff::reopen();
    loop {
        let watch = store.watch_with_history(">").await;
        let mut watch = match watch {
            Ok(w) => w,
            Err(err) => {
                tracing::warn!(bucket = %store.name, error = %err, "watching for the app index failed, retrying");
                backoff.wait(&shutdown).await;
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = watch.next() => next,
            };
            let Some(Ok(entry)) = next else { break };
            apply(&entries, BUCKETS[i], &entry);
            followed.applied[i].fetch_max(entry.revision, Ordering::AcqRel);
            followed.moved.notify_waiters();
        }
        tracing::warn!(bucket = %store.name, "the app index's watch ended, reopening");
        backoff.wait(&shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

fn apply(entries: &RwLock<BTreeMap<String, Entry>>, bucket: Bucket, entry: &kv::Entry) {
    let Some(name) = token_to_name(&entry.key) else {
        return;
    };
    let put = entry.operation == kv::Operation::Put;
    let mut map = entries.write().unwrap_or_else(|e| e.into_inner());
    let slot = map.entry(name.clone()).or_default();
    match bucket {
        Bucket::Applications => {
            slot.app = put
                .then(|| serde_json::from_slice::<Application>(&entry.value).ok())
                .flatten()
                .map(Arc::new)
        }
        Bucket::AppStatus => {
            slot.status = put
                .then(|| serde_json::from_slice::<ApplicationStatus>(&entry.value).ok())
                .flatten()
                .map(Arc::new)
        }
        _ => {
            slot.operation = put
                .then(|| serde_json::from_slice::<Operation>(&entry.value).ok())
                .flatten()
                .map(Arc::new)
        }
    }
    if slot.app.is_none() && slot.status.is_none() && slot.operation.is_none() {
        map.remove(&name);
    }
}
