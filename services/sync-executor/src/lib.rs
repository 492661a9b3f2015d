//! gitfleet's sync executor: owns clusters, keeps a watch-based live cache of each, answers
//! live-state requests from it, routes live changes to the owning diff worker, and runs
//! sync operations from the durable work queue.
//!
//! - Clusters come from KV `clusters` (values: `gitfleet_model::Cluster` JSON). A cluster
//!   belongs to partition `partition(name, CLUSTER_PARTITIONS)`; partitions are owned by
//!   lease ([`gitfleet_bus::Membership`], group `sync-executors`). An owned cluster gets a
//!   [`cluster::ClusterRuntime`]: client, cache, live-request subscription
//!   (`<p>.live-request.<cluster token>`, queue group `sync-executors`), change routing
//!   (`LiveChanged` on `<p>.live.<app partition>`, debounced per app) and a scheduler.
//! - Operations: one durable pull consumer per owned partition on stream `sync-work`
//!   (see [`queue`]). Results go to KV `operations` (key: subject token of the app) and
//!   `AppEvent`s to `<p>.event.<app>`; the message is acked after both.
//! - The cache keeps only tracked objects and namespace names (see [`cache`]); it is
//!   eventually consistent, and the executor's own writes are recorded in it at once so a
//!   following sync of the same app plans against them.

pub mod actions;
pub mod cache;
pub mod client;
pub mod cluster;
pub mod config;
pub mod dry_run;
pub mod error;
pub mod executor;
pub mod journal;
pub mod limiter;
pub mod live;
pub mod queue;
pub mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use gitfleet_bus::async_nats::jetstream::kv;
use gitfleet_bus::control_plane::{ControlPlane, SETTINGS_CONFIG_MAP, checks_of};
use gitfleet_bus::{Bucket, Bus, Membership, MembershipConfig, Owned, partition, token_to_name};
use gitfleet_messages::{CLUSTER_PARTITIONS, SYNC_EXECUTORS};
use gitfleet_model::Cluster;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use error::{Error, Result};

use crate::cluster::ClusterRuntime;
use crate::queue::Shared;

/// Runs the executor until `shutdown`, then hands its partitions over at once.
pub async fn run(config: Config, bus: Bus, shutdown: CancellationToken) -> Result<()> {
    // RespectIgnoreDifferences may name jqPathExpressions: the helper evaluates them.
    gitfleet_jq::install();
    if config.member_id.is_empty() {
        return Err(Error::Config("member id must not be empty".to_string()));
    }
    let operations = bus.kv(Bucket::Operations).await?;
    let clusters_kv = bus.kv(Bucket::Clusters).await?;
    let membership = Membership::start(
        &bus,
        MembershipConfig::new(SYNC_EXECUTORS, config.member_id.clone(), CLUSTER_PARTITIONS)
            .with_ttls(config.member_ttl, config.lease_ttl),
    )
    .await?;
    let work = shutdown.child_token();
    let shared = Arc::new(Shared::new(
        bus.clone(),
        config.clone(),
        operations,
        work.clone(),
    ));
    let mut owned_rx = membership.subscribe();
    let mut fleet = Fleet {
        shared: shared.clone(),
        known: BTreeMap::new(),
        owned: Owned::new(),
        consumers: HashMap::new(),
        cancel: work.clone(),
    };
    tracing::info!(member = %config.member_id, "sync executor started");

    tokio::spawn(follow_health_checks(
        bus.clone(),
        config.clone(),
        shutdown.clone(),
    ));
    let mut watch = open_watch(&clusters_kv, &shutdown).await?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = owned_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                fleet.owned = owned_rx.borrow_and_update().clone();
                fleet.reconcile();
            }
            entry = watch.next() => match entry {
                Some(Ok(entry)) => {
                    fleet.apply(&entry);
                    // Apply what is queued before reconciling, so a burst of keys is one pass.
                    while let Some(Some(Ok(entry))) = futures::FutureExt::now_or_never(watch.next()) {
                        fleet.apply(&entry);
                    }
                    fleet.reconcile();
                }
                other => {
                    tracing::warn!(error = ?other.map(|r| r.err()), "clusters watch ended, reopening");
                    watch = open_watch(&clusters_kv, &shutdown).await?;
                }
            },
        }
    }
    work.cancel();
    fleet.stop_all();
    membership.shutdown().await;
    tracing::info!(member = %config.member_id, "sync executor stopped");
    Ok(())
}

/// Keeps `config.health_checks` as `argocd-cm` says (read once, then from each change the
/// watch brings), so a sync does not read `argocd-cm` itself; while the watch is down the
/// cell is empty and each sync reads it.
async fn follow_health_checks(bus: Bus, config: Config, shutdown: CancellationToken) {
    let cell = config.health_checks.clone();
    let set = |checks: Option<gitfleet_engine::health::Checks>| {
        *cell.write().unwrap_or_else(|e| e.into_inner()) = checks;
    };
    let control_plane = ControlPlane::new(&bus, &config.control_plane_namespace);
    let mut backoff = gitfleet_bus::Backoff::reopen();
    while !shutdown.is_cancelled() {
        let watch = match bus.kv(Bucket::Settings).await {
            Ok(store) => store.watch(SETTINGS_CONFIG_MAP).await.ok(),
            Err(_) => None,
        };
        if let Some(mut watch) = watch {
            // Read once the watch is open: no change can fall between the two.
            if let Ok(checks) = control_plane.checks(&config.health_library).await {
                set(Some(checks));
            }
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    entry = watch.next() => match entry {
                        Some(Ok(entry)) => match control_plane.argocd_cm_of(&entry) {
                            Ok(data) => set(Some(checks_of(&data, &config.health_library))),
                            Err(_) => break,
                        },
                        _ => break,
                    },
                }
            }
        }
        set(None);
        tracing::warn!("watching {SETTINGS_CONFIG_MAP} for health checks failed, retrying");
        backoff.wait(&shutdown).await;
    }
}

async fn open_watch(store: &kv::Store, shutdown: &CancellationToken) -> Result<kv::Watch> {
    let mut backoff = gitfleet_bus::Backoff::reopen();
    loop {
        match store.watch_with_history(">").await {
            Ok(w) => return Ok(w),
            Err(err) if shutdown.is_cancelled() => {
                return Err(Error::Watch {
                    bucket: store.name.clone(),
                    source: err.into(),
                });
            }
            Err(err) => {
                tracing::warn!(bucket = %store.name, error = %err, "watching clusters failed, retrying");
                backoff.wait(shutdown).await;
            }
        }
    }
}

/// Which clusters exist, which partitions are ours, and what runs for them.
struct Fleet {
    shared: Arc<Shared>,
    known: BTreeMap<String, Cluster>,
    owned: Owned,
    consumers: HashMap<u32, CancellationToken>,
    cancel: CancellationToken,
}

impl Fleet {
    fn apply(&mut self, entry: &kv::Entry) {
        let Some(key_name) = token_to_name(&entry.key) else {
            tracing::warn!(key = %entry.key, "ignoring cluster key that is not a subject token");
            return;
        };
        if entry.operation != kv::Operation::Put {
            self.known.remove(&key_name);
            return;
        }
        match self
            .shared
            .bus
            .decode_document::<Cluster>(Bucket::Clusters, &entry.key, &entry.value)
        {
            Ok(cluster) => {
                self.known.insert(key_name, cluster);
            }
            Err(err) => {
                tracing::warn!(cluster = %key_name, error = %err, "ignoring undecodable cluster");
                self.known.remove(&key_name);
            }
        }
    }

    fn reconcile(&mut self) {
        // Consumers follow partitions.
        self.consumers.retain(|p, cancel| {
            let keep = self.owned.contains_key(p);
            if !keep {
                cancel.cancel();
            }
            keep
        });
        for p in self.owned.keys() {
            self.consumers.entry(*p).or_insert_with(|| {
                let cancel = self.cancel.child_token();
                tokio::spawn(queue::consume(self.shared.clone(), *p, cancel.clone()));
                cancel
            });
        }
        // Runtimes follow owned, registered clusters and their registration.
        let mut changed = false;
        let mut clusters = self
            .shared
            .clusters
            .write()
            .unwrap_or_else(|e| e.into_inner());
        clusters.retain(|name, rt| {
            let keep = self
                .owned
                .contains_key(&partition(name, CLUSTER_PARTITIONS))
                && self.known.get(name) == Some(&rt.spec);
            if !keep {
                rt.stop();
                changed = true;
            }
            keep
        });
        for (name, spec) in &self.known {
            if self
                .owned
                .contains_key(&partition(name, CLUSTER_PARTITIONS))
                && !clusters.contains_key(name)
            {
                let rt =
                    ClusterRuntime::start(self.shared.clone(), name, spec.clone(), &self.cancel);
                clusters.insert(name.clone(), rt);
                changed = true;
            }
        }
        drop(clusters);
        if changed {
            self.shared.clusters_version.send_modify(|v| *v += 1);
        }
    }

    fn stop_all(&mut self) {
        for (_, cancel) in self.consumers.drain() {
            cancel.cancel();
        }
        let mut clusters = self
            .shared
            .clusters
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for (_, rt) in clusters.drain() {
            rt.stop();
        }
    }
}
