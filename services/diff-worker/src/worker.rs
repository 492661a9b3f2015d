//! The diff worker's event loop: holds partition leases, knows every app and cluster, and
//! turns the triggers (partition gained, app changed, commit, live change, refresh request,
//! periodic refresh, sync request) into at most one running reconciliation per app.
//!
//! One task owns all per-app state; reconciliations run as tasks of their own (bounded by
//! a semaphore) and report back through a channel, so there are no locks on app state.
//! Every task is in a `JoinSet`, so dropping the worker (a crash) stops all of it at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation as KvOp};
use futures::StreamExt;
use gitfleet_bus::control_plane::{ControlPlane, SETTINGS_CONFIG_MAP, checks_of};
use gitfleet_bus::{
    Backoff, Bucket, Bus, Membership, MembershipConfig, Owned, Running, next_of, partition,
    token_to_name, watch_all,
};
use gitfleet_engine::control_plane::ControlPlaneKind;
use gitfleet_engine::health::Checks;
use gitfleet_engine::project::ProjectRules;
use gitfleet_messages::{
    APP_PARTITIONS, DIFF_WORKERS, LiveChanged, RefreshRequest, RevisionEvent, ServiceError,
    SyncRequest,
};
use gitfleet_model::{
    AppProject, Application, Cluster, ObjectMeta, TRACKING_ANNOTATION, TrackingId,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::decide;
use crate::error::{Error, Result};
use crate::permits::{Permits, Priority};
use crate::reconcile::{self, Memo, PendingSync, Shared, forget_renders, memo_key};

/// Argo CD's app annotation asking for a refresh; `hard` also drops cached manifests.
const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";

/// When a reconciliation the bus failed runs again.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Longest wait between retries of an app that keeps failing transiently.
const RETRY_AT_MOST: Duration = Duration::from_secs(60);

/// The instance name of the app whose sync wrote control-plane object `kind` `name`: its
/// tracking annotation, when that names the object itself (a copied annotation does not
/// make another app its parent).
fn written_by(kind: ControlPlaneKind, name: &str, meta: &ObjectMeta) -> Option<String> {
    let id = TrackingId::parse(meta.annotations.get(TRACKING_ANNOTATION)?)?;
    (id.group == gitfleet_engine::control_plane::GROUP && id.kind == kind.kind() && id.name == name)
        .then_some(id.app)
}

fn retry_backoff() -> Backoff {
    Backoff::new(RETRY_AFTER, RETRY_AT_MOST)
}

enum Event {
    Sync(PendingSync),
    LiveChanged(String),
    Done {
        app: String,
        memo: Option<Box<Memo>>,
        /// The bus failed it (see [`reconcile::reconcile`]): run again soon.
        retry: bool,
    },
}

struct AppState {
    app: Arc<Application>,
    partition: u32,
    /// A reconciliation is running; its token stops it when the app goes away.
    running: Option<CancellationToken>,
    /// Something happened while it ran: run again when it ends.
    dirty: bool,
    pending: Vec<PendingSync>,
    /// Taken by the running reconciliation, given back when it ends.
    memo: Option<Memo>,
    next_refresh: Instant,
    /// Spaces the retries of an app whose reconciliation keeps failing transiently, so a
    /// fleet without a renderer does not ask in a storm; reset by a clean run.
    retry: Backoff,
}

struct Worker {
    shared: Arc<Shared>,
    apps: HashMap<String, AppState>,
    /// The apps with a source on each repository ([`decide::repo_key`]), so a commit
    /// costs work for the apps on its repository only.
    by_repo: HashMap<String, BTreeSet<String>>,
    /// App of Apps: the app (instance name) whose sync wrote each control-plane object,
    /// the reverse of `Shared::children`.
    parent_of: HashMap<(ControlPlaneKind, String), String>,
    /// Held partitions: fencing token and the token that stops their work.
    partitions: BTreeMap<u32, (u64, CancellationToken)>,
    tx: mpsc::UnboundedSender<Event>,
    tasks: JoinSet<()>,
}

/// Runs a diff worker until `shutdown`, then leaves the group gracefully.
pub async fn run(config: Config, bus: Bus, shutdown: CancellationToken) -> Result<()> {
    start(config, bus, shutdown).await?.wait().await
}

/// Takes `argocd-cm`'s system-level `ignoreDifferences` and Lua health checks from its KV
/// entry; true when either changed.
fn take_settings(shared: &Shared, entry: &kv::Entry) -> bool {
    let control_plane = ControlPlane::new(&shared.bus, &shared.config.control_plane_namespace);
    let data = match control_plane.argocd_cm_of(entry) {
        Ok(data) => data,
        Err(err) => {
            tracing::warn!(error = %err.message, "{SETTINGS_CONFIG_MAP} does not read; its customizations are kept as they were");
            return false;
        }
    };
    let (rules, errors) = gitfleet_engine::diff::settings::system_ignore_differences(&data);
    for error in errors {
        tracing::warn!(%error, "an ignoreDifferences customization of {SETTINGS_CONFIG_MAP} is left out");
    }
    let checks = checks_of(&data, &shared.config.health_library);
    let mut changed = false;
    let mut current = shared
        .system_ignores
        .write()
        .unwrap_or_else(|e| e.into_inner());
    if **current != rules {
        *current = Arc::new(rules);
        changed = true;
    }
    let mut current = shared.checks.write().unwrap_or_else(|e| e.into_inner());
    if *current != checks {
        *current = checks;
        changed = true;
    }
    changed
}

/// Joins the group and opens every watch, consumer and subscription, then works in the
/// background. Partitions (and with them sync requests) are taken as leases allow.
pub async fn start(
    config: Config,
    bus: Bus,
    shutdown: CancellationToken,
) -> Result<Running<Error>> {
    // jqPathExpressions are evaluated by the helper beside this executable.
    gitfleet_jq::install();
    let membership = Membership::start(
        &bus,
        MembershipConfig::new(DIFF_WORKERS, &config.member_id, APP_PARTITIONS)
            .with_ttls(config.member_ttl, config.lease_ttl),
    )
    .await
    .map_err(Error::Membership)?;
    let open = |bucket: Bucket| {
        let bus = bus.clone();
        async move {
            bus.kv(bucket).await.map_err(|source| Error::Open {
                what: format!("kv bucket {}", bus.topology.bucket(bucket)),
                source,
            })
        }
    };
    let apps_kv = open(Bucket::Applications).await?;
    let clusters_kv = open(Bucket::Clusters).await?;
    let projects_kv = open(Bucket::Projects).await?;
    let shared = Arc::new(Shared {
        bus: bus.clone(),
        owned: membership.subscribe(),
        status_kv: open(Bucket::AppStatus).await?,
        ops_kv: open(Bucket::Operations).await?,
        projects_kv: projects_kv.clone(),
        clusters: RwLock::new(HashMap::new()),
        projects: RwLock::new(HashMap::new()),
        renders: Mutex::new(HashMap::new()),
        depends: RwLock::new(HashMap::new()),
        permits: Permits::new(config.max_concurrent_reconciles),
        resolved: Mutex::new(HashMap::new()),
        refreshed: Mutex::new(Default::default()),
        children: RwLock::new(HashMap::new()),
        system_ignores: RwLock::new(Arc::new(Vec::new())),
        checks: RwLock::new(Checks::from_settings(&BTreeMap::new(), &config.health_library).0),
        config,
    });
    let mut clusters_watch = Some(watch_all(&clusters_kv).await.map_err(Error::Follow)?);
    let mut projects_watch = Some(watch_all(&projects_kv).await.map_err(Error::Follow)?);
    let mut apps_watch = Some(watch_all(&apps_kv).await.map_err(Error::Follow)?);
    let appsets_kv = open(Bucket::AppSets).await?;
    let mut appsets_watch = Some(watch_all(&appsets_kv).await.map_err(Error::Follow)?);
    // argocd-cm only: the settings bucket holds Secrets too, which are none of ours. Read
    // once before any app is compared, so no first comparison (or automated sync) runs
    // without its ignoreDifferences; the watch then follows it.
    let settings_kv = open(Bucket::Settings).await?;
    if let Ok(Some(entry)) = settings_kv.entry(SETTINGS_CONFIG_MAP).await {
        take_settings(&shared, &entry);
    }
    let mut settings_watch = Some(
        settings_kv
            .watch_with_history(SETTINGS_CONFIG_MAP)
            .await
            .map_err(|e| {
                Error::Follow(gitfleet_bus::BusError::Open {
                    what: format!("a watch of {SETTINGS_CONFIG_MAP}"),
                    source: Box::new(e),
                })
            })?,
    );
    // Where the revisions consumer resumes when it has to be opened again.
    // What happened before this worker started is covered by the reconciliation every
    // app gets when its partition is gained; reopened from the sequence after the last
    // event seen, so what was published while it was closed is not missed.
    let mut next_revision = bus.revisions_next_sequence().await.map_err(Error::Follow)?;
    let mut revisions = Some(
        bus.revisions_from(next_revision)
            .await
            .map_err(Error::Follow)?,
    );
    let refresh_subject = bus.topology.webhook_subject();
    let mut refreshes = bus
        .client
        .subscribe(refresh_subject.clone())
        .await
        .map_err(|source| Error::Subscribe {
            subject: refresh_subject,
            source,
        })?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut worker = Worker {
        shared,
        apps: HashMap::new(),
        by_repo: HashMap::new(),
        parent_of: HashMap::new(),
        partitions: BTreeMap::new(),
        tx,
        tasks: JoinSet::new(),
    };
    let mut owned_rx = membership.subscribe();
    let tick_every = (worker.shared.config.refresh_interval / 10)
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(member = %membership.member_id(), "diff worker started");
    // A round trip: the server has the subscriptions once this returns.
    let _ = bus.client.flush().await;

    Ok(Running::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = owned_rx.changed() => {
                    if changed.is_err() {
                        tracing::error!("membership stopped");
                        break;
                    }
                    let owned = owned_rx.borrow_and_update().clone();
                    worker.apply_ownership(owned);
                }
                entry = next_of(&mut clusters_watch) => match entry {
                    Some(Ok(entry)) => worker.on_cluster(entry),
                    other => {
                        tracing::warn!(error = ?other.and_then(|r| r.err()), "clusters watch ended");
                        clusters_watch = None;
                    }
                },
                entry = next_of(&mut projects_watch) => match entry {
                    Some(Ok(entry)) => worker.on_project(entry),
                    other => {
                        tracing::warn!(error = ?other.and_then(|r| r.err()), "projects watch ended");
                        projects_watch = None;
                    }
                },
                entry = next_of(&mut appsets_watch) => match entry {
                    Some(Ok(entry)) => worker.on_appset(entry),
                    other => {
                        tracing::warn!(error = ?other.and_then(|r| r.err()), "applicationsets watch ended");
                        appsets_watch = None;
                    }
                },
                entry = next_of(&mut settings_watch) => match entry {
                    Some(Ok(entry)) => worker.on_settings(entry),
                    other => {
                        tracing::warn!(error = ?other.and_then(|r| r.err()), "{SETTINGS_CONFIG_MAP} watch ended");
                        settings_watch = None;
                    }
                },
                entry = next_of(&mut apps_watch) => match entry {
                    Some(Ok(entry)) => worker.on_app(entry),
                    other => {
                        tracing::warn!(error = ?other.and_then(|r| r.err()), "applications watch ended");
                        apps_watch = None;
                    }
                },
                message = next_of(&mut revisions) => match message {
                    Some(Ok(message)) => {
                        if let Ok(info) = message.info() {
                            next_revision = info.stream_sequence + 1;
                        }
                        worker.on_revision(&message).await;
                    }
                    // After a server restart the ordered consumer may fail to recreate itself
                    // (JetStream not recovered yet) and report it once; it is opened again
                    // from the next sequence at the next tick, so no event is missed.
                    other => {
                        tracing::warn!(error = ?other.and_then(|r| r.err()), next = next_revision, "revisions consumer ended");
                        revisions = None;
                    }
                },
                Some(message) = refreshes.next() => {
                    if let Ok(RefreshRequest { app: Some(app), .. }) = serde_json::from_slice(&message.payload) {
                        worker.shared.refreshed.lock().unwrap_or_else(|e| e.into_inner()).insert(app.clone());
                        worker.trigger(&app, "refresh requested");
                    }
                }
                Some(event) = rx.recv() => worker.on_event(event),
                Some(joined) = worker.tasks.join_next(), if !worker.tasks.is_empty() => {
                    if let Err(err) = joined && err.is_panic() {
                        tracing::error!(error = %err, "diff worker task panicked");
                    }
                }
                _ = tick.tick() => {
                    worker.on_tick();
                    // Watches that ended are opened again; a watch with history replays every
                    // key, which the handlers take as no change when nothing changed.
                    if clusters_watch.is_none() {
                        clusters_watch = watch_all(&clusters_kv).await.inspect_err(|e| tracing::warn!(error = %e, "reopening clusters watch")).ok();
                    }
                    if projects_watch.is_none() {
                        projects_watch = watch_all(&projects_kv).await.inspect_err(|e| tracing::warn!(error = %e, "reopening projects watch")).ok();
                    }
                    if appsets_watch.is_none() {
                        appsets_watch = watch_all(&appsets_kv).await.inspect_err(|e| tracing::warn!(error = %e, "reopening applicationsets watch")).ok();
                    }
                    if apps_watch.is_none() {
                        apps_watch = watch_all(&apps_kv).await.inspect_err(|e| tracing::warn!(error = %e, "reopening applications watch")).ok();
                    }
                    if revisions.is_none() {
                        revisions = bus.revisions_from(next_revision).await.inspect_err(|e| tracing::warn!(error = %e, "reopening revisions consumer")).ok();
                    }
                }
            }
        }
        for (_, (_, token)) in std::mem::take(&mut worker.partitions) {
            token.cancel();
        }
        worker.tasks.shutdown().await;
        membership.shutdown().await;
        tracing::info!("diff worker stopped");
        Ok(())
    }))
}

impl Worker {
    fn owns(&self, partition: u32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Stops work on lost partitions at once, and reconciles every app of a gained one.
    fn apply_ownership(&mut self, owned: Owned) {
        let lost: Vec<u32> = self
            .partitions
            .iter()
            .filter(|(p, (fence, _))| owned.get(p) != Some(fence))
            .map(|(p, _)| *p)
            .collect();
        for p in &lost {
            if let Some((_, token)) = self.partitions.remove(p) {
                token.cancel();
            }
            let mut renders = self
                .shared
                .renders
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for (name, st) in self.apps.iter_mut().filter(|(_, st)| st.partition == *p) {
                // The next owner may change things; start afresh if it comes back.
                st.memo = None;
                st.dirty = false;
                st.pending.clear();
                forget_renders(&mut renders, name);
            }
        }
        let gained: Vec<(u32, u64)> = owned
            .iter()
            .filter(|(p, _)| !self.partitions.contains_key(p))
            .map(|(p, f)| (*p, *f))
            .collect();
        for (p, fence) in &gained {
            let token = CancellationToken::new();
            self.partitions.insert(*p, (*fence, token.clone()));
            self.tasks.spawn(forward_partition(
                self.shared.bus.clone(),
                *p,
                token,
                self.tx.clone(),
            ));
        }
        if !lost.is_empty() || !gained.is_empty() {
            tracing::info!(lost = ?lost, gained = ?gained.iter().map(|(p, _)| p).collect::<Vec<_>>(), owned = self.partitions.len(), "partitions changed");
        }
        let names: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, st)| gained.iter().any(|(p, _)| *p == st.partition))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.trigger(&name, "partition gained");
        }
    }

    fn on_cluster(&mut self, entry: kv::Entry) {
        let Some(name) = token_to_name(&entry.key) else {
            return;
        };
        let mut clusters = self
            .shared
            .clusters
            .write()
            .unwrap_or_else(|e| e.into_inner());
        match entry.operation {
            KvOp::Put => match serde_json::from_slice::<Cluster>(&entry.value) {
                Ok(cluster) => {
                    clusters.insert(name, cluster);
                }
                Err(err) => tracing::warn!(cluster = %name, error = %err, "unreadable cluster"),
            },
            KvOp::Delete | KvOp::Purge => {
                clusters.remove(&name);
            }
        }
    }

    /// `argocd-cm` changed: its system-level `ignoreDifferences` and health checks apply
    /// to every app, so every owned app is compared again (as Argo CD refreshes them on a
    /// settings change).
    fn on_settings(&mut self, entry: kv::Entry) {
        if !take_settings(&self.shared, &entry) {
            return;
        }
        let owned: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, st)| self.owns(st.partition))
            .map(|(name, _)| name.clone())
            .collect();
        for name in owned {
            self.trigger(&name, "argocd-cm customizations changed");
        }
    }

    fn on_project(&mut self, entry: kv::Entry) {
        let Some(name) = token_to_name(&entry.key) else {
            return;
        };
        let mut tracking = None;
        let rules = match entry.operation {
            KvOp::Put => match serde_json::from_slice::<AppProject>(&entry.value) {
                Ok(project) => {
                    tracking = written_by(ControlPlaneKind::AppProject, &name, &project.metadata);
                    Some(Arc::new(ProjectRules::new(&project)))
                }
                Err(err) => {
                    tracing::warn!(project = %name, error = %err, "unreadable project");
                    None
                }
            },
            KvOp::Delete | KvOp::Purge => None,
        };
        {
            let mut projects = self
                .shared
                .projects
                .write()
                .unwrap_or_else(|e| e.into_inner());
            match rules {
                Some(rules) => projects.insert(name.clone(), rules),
                None => projects.remove(&name),
            };
        }
        let users: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, st)| st.app.spec.project_or_default() == name)
            .map(|(n, _)| n.clone())
            .collect();
        for app in users {
            self.trigger(&app, "project changed");
        }
        self.on_control_plane_object(ControlPlaneKind::AppProject, &name, tracking);
    }

    /// ApplicationSets matter to a diff worker only as an App of Apps parent's children.
    fn on_appset(&mut self, entry: kv::Entry) {
        let Some(name) = token_to_name(&entry.key) else {
            return;
        };
        let tracking = match entry.operation {
            KvOp::Put => serde_json::from_slice::<Value>(&entry.value)
                .ok()
                .and_then(|doc| {
                    serde_json::from_value::<ObjectMeta>(doc.get("metadata")?.clone()).ok()
                })
                .and_then(|meta| written_by(ControlPlaneKind::ApplicationSet, &name, &meta)),
            KvOp::Delete | KvOp::Purge => None,
        };
        self.on_control_plane_object(ControlPlaneKind::ApplicationSet, &name, tracking);
    }

    /// App of Apps: keeps `Shared::children` as a control-plane object is written (by the
    /// sync of the app `tracking` names, or by anyone) or deleted, and tells its parent,
    /// before and after, that its live state changed (a child edited by hand is drift).
    fn on_control_plane_object(
        &mut self,
        kind: ControlPlaneKind,
        name: &str,
        tracking: Option<String>,
    ) {
        let key = (kind, name.to_owned());
        let old = match &tracking {
            Some(parent) => self.parent_of.insert(key.clone(), parent.clone()),
            None => self.parent_of.remove(&key),
        };
        if old.is_none() && tracking.is_none() {
            return;
        }
        {
            let mut children = self
                .shared
                .children
                .write()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(old) = &old
                && Some(old) != tracking.as_ref()
                && let Some(set) = children.get_mut(old)
            {
                set.remove(&key);
                if set.is_empty() {
                    children.remove(old);
                }
            }
            if let Some(parent) = &tracking {
                children.entry(parent.clone()).or_default().insert(key);
            }
        }
        let parents: BTreeSet<String> = old.into_iter().chain(tracking).collect();
        for parent in parents {
            self.trigger(reconcile::app_of_instance(&parent), "a child changed");
        }
    }

    fn on_app(&mut self, entry: kv::Entry) {
        let Some(key_name) = token_to_name(&entry.key) else {
            return;
        };
        if entry.operation != KvOp::Put {
            self.remove_app(&key_name);
            self.on_control_plane_object(ControlPlaneKind::Application, &key_name, None);
            return;
        }
        let mut app: Application = match serde_json::from_slice(&entry.value) {
            Ok(app) => app,
            Err(err) => {
                tracing::warn!(app = %key_name, error = %err, "unreadable application");
                return;
            }
        };
        if app.metadata.name.is_empty() {
            app.metadata.name = key_name.clone();
        }
        let name = app.metadata.name.clone();
        self.on_control_plane_object(
            ControlPlaneKind::Application,
            &name,
            written_by(ControlPlaneKind::Application, &name, &app.metadata),
        );
        if app
            .metadata
            .annotations
            .get(REFRESH_ANNOTATION)
            .is_some_and(|v| v == "hard")
        {
            self.shared
                .refreshed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.clone());
            // A hard refresh asks the git watcher again too.
            let repos: BTreeSet<String> = app
                .spec
                .effective_sources()
                .iter()
                .map(|s| decide::repo_key(&s.repo_url))
                .collect();
            self.shared
                .resolved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(repo, _), _| !repos.contains(repo));
            forget_renders(
                &mut self
                    .shared
                    .renders
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
                &name,
            );
        }
        {
            let deps = gitfleet_engine::depends::depends_on(&app);
            let mut edges = self
                .shared
                .depends
                .write()
                .unwrap_or_else(|e| e.into_inner());
            if deps.is_empty() {
                edges.remove(&name);
            } else {
                edges.insert(name.clone(), deps);
            }
        }
        match self.apps.get_mut(&name) {
            Some(st) if *st.app == app => return,
            Some(st) => {
                let old = std::mem::replace(&mut st.app, Arc::new(app));
                unindex(&mut self.by_repo, &old);
                index(&mut self.by_repo, &st.app);
            }
            None => {
                index(&mut self.by_repo, &app);
                self.apps.insert(
                    name.clone(),
                    AppState {
                        partition: partition(&name, APP_PARTITIONS),
                        app: Arc::new(app),
                        running: None,
                        dirty: false,
                        pending: Vec::new(),
                        memo: None,
                        next_refresh: Instant::now(),
                        retry: retry_backoff(),
                    },
                );
            }
        }
        self.trigger(&name, "application changed");
    }

    /// A deleted app is forgotten and its status removed. Deleting its resources
    /// (cascade) is the api gateway's job: it enqueues a sync with nothing desired and
    /// prune, before it deletes the app.
    fn remove_app(&mut self, name: &str) {
        self.shared
            .depends
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let Some(st) = self.apps.remove(name) else {
            return;
        };
        unindex(&mut self.by_repo, &st.app);
        if let Some(token) = st.running {
            token.cancel();
        }
        forget_renders(
            &mut self
                .shared
                .renders
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            name,
        );
        if self.owns(st.partition) {
            let shared = self.shared.clone();
            let key = gitfleet_bus::subject_token(name);
            let name = name.to_string();
            self.tasks.spawn(async move {
                if let Err(err) = shared.status_kv.delete(&key).await {
                    tracing::warn!(app = %name, error = %err, "deleting status of deleted app");
                }
            });
        }
        tracing::info!(app = %name, "application deleted");
    }

    async fn on_revision(&mut self, message: &async_nats::jetstream::Message) {
        let body = match self.shared.bus.read_payload(message).await {
            Ok(body) => body,
            Err(err) => {
                tracing::warn!(error = %err, "reading revision event");
                return;
            }
        };
        let event: RevisionEvent = match serde_json::from_slice(&body) {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(error = %err, "unreadable revision event");
                return;
            }
        };
        self.shared
            .learn_revision(&event.repo, &event.target_revision, &event.to);
        let mut affected = Vec::new();
        {
            let mut renders = self
                .shared
                .renders
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let repo = decide::repo_key(&event.repo);
            let on_repo = self.by_repo.get(&repo);
            for (name, st) in on_repo
                .into_iter()
                .flatten()
                .filter_map(|name| Some((name, self.apps.get(name)?)))
            {
                if !self.partitions.contains_key(&st.partition) {
                    continue;
                }
                // Every source on the event's repository and revision: a `ref` source's
                // files may be read by any other (its commit is part of their requests).
                let mut on_event = false;
                let mut touched = false;
                // A source whose manifests are known to be the same at the new commit needs
                // no comparison: nothing it deploys changed, nor did the live state.
                let mut unknown = false;
                for (index, source) in st.app.spec.effective_sources().iter().enumerate() {
                    if decide::repo_key(&source.repo_url) != repo
                        || !gitfleet_engine::app::same_revision(
                            &source.target_revision,
                            &event.target_revision,
                        )
                    {
                        continue;
                    }
                    let key = memo_key(name, index);
                    // Already rendered at that commit: an announcement for apps that just
                    // joined the repository, nothing new for this one (else every app
                    // written would make every app on its repository compare again).
                    if renders
                        .get(&key)
                        .is_some_and(|m| m.request.commit == event.to)
                    {
                        continue;
                    }
                    on_event = true;
                    let source_touched = !source.ref_name.is_empty()
                        || decide::touches(
                            &st.app,
                            source,
                            renders.get(&key).map(|m| m.inputs.as_slice()),
                            event.changed_paths.as_deref(),
                        );
                    if !source_touched {
                        // The manifests at the old commit are the manifests at the new one.
                        match renders.get_mut(&key) {
                            Some(memo) if Some(&memo.request.commit) == event.from.as_ref() => {
                                memo.request.commit = event.to.clone();
                            }
                            _ => unknown = true,
                        }
                    }
                    touched |= source_touched;
                }
                // An app the commit does not touch is not compared again now (Argo CD's
                // webhook does the same for apps whose manifest-generate-paths it misses):
                // a commit costs work for the apps it changes, not for every app on the
                // repository. Its status shows the new revision from its next refresh,
                // which renders nothing.
                if !on_event || !(touched || unknown) {
                    continue;
                }
                affected.push((name.clone(), touched));
            }
        }
        tracing::debug!(repo = %event.repo, to = %event.to, apps = affected.len(), "revision moved");
        for (name, touched) in affected {
            let why = if touched {
                "commit touches app"
            } else {
                "commit elsewhere in repo"
            };
            self.trigger(&name, why);
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Sync(pending) => {
                let name = pending.request.app.clone();
                match self.apps.get_mut(&name) {
                    Some(st) if self.partitions.contains_key(&st.partition) => {
                        st.pending.push(pending);
                        self.trigger(&name, "sync requested");
                    }
                    _ => {
                        let err = ServiceError::not_found(format!("application {name} not found"));
                        if let Some(reply) = pending.reply {
                            let body =
                                gitfleet_bus::encode_reply(
                                    &gitfleet_messages::Reply::<String>::Error(err),
                                );
                            let client = self.shared.bus.client.clone();
                            self.tasks.spawn(async move {
                                let _ = client.publish(reply, body).await;
                            });
                        }
                    }
                }
            }
            Event::LiveChanged(app) => self.trigger(&app, "live changed"),
            Event::Done { app, memo, retry } => {
                let config = &self.shared.config;
                let Some(st) = self.apps.get_mut(&app) else {
                    return;
                };
                st.running = None;
                let waiting = memo.as_ref().is_some_and(|m| m.waiting);
                let recheck = memo.as_ref().and_then(|m| m.recheck_after);
                if self.partitions.contains_key(&st.partition) {
                    st.memo = memo.map(|m| *m);
                }
                st.next_refresh = if waiting {
                    // Its dependencies' statuses are polled, not heard: soon, steadily.
                    Instant::now() + RETRY_AFTER
                } else if retry {
                    Instant::now() + st.retry.next_delay()
                } else {
                    st.retry.reset();
                    let periodic =
                        Instant::now() + config.refresh_interval + jitter(config.refresh_jitter);
                    recheck.map_or(periodic, |after| periodic.min(Instant::now() + after))
                };
                if st.dirty || !st.pending.is_empty() {
                    self.trigger(&app, "changed while reconciling");
                }
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, st)| {
                st.running.is_none() && st.next_refresh <= now && self.owns(st.partition)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.trigger(&name, "periodic refresh");
        }
    }

    /// Starts a reconciliation of `name` if its partition is held, or marks it to run
    /// again after the one running.
    fn trigger(&mut self, name: &str, why: &'static str) {
        let Some(st) = self.apps.get_mut(name) else {
            return;
        };
        let Some((_, partition_token)) = self.partitions.get(&st.partition) else {
            return;
        };
        if st.running.is_some() {
            st.dirty = true;
            return;
        }
        tracing::debug!(app = name, why, "reconciling");
        let token = partition_token.child_token();
        st.running = Some(token.clone());
        st.dirty = false;
        let priority = if st.memo.is_some() || !st.pending.is_empty() {
            Priority::FollowUp
        } else {
            Priority::First
        };
        let memo = st.memo.take().unwrap_or_default();
        let pending = std::mem::take(&mut st.pending);
        let app = st.app.clone();
        let partition = st.partition;
        let shared = self.shared.clone();
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            let name = app.metadata.name.clone();
            let work = async {
                let _permit = shared.permits.acquire(priority).await;
                let mut memo = memo;
                let done = reconcile::reconcile(&shared, &app, partition, &mut memo, pending).await;
                (memo, done)
            };
            let (memo, retry) = tokio::select! {
                (memo, done) = work => (Some(Box::new(memo)), !done),
                _ = token.cancelled() => (None, false),
            };
            let _ = tx.send(Event::Done {
                app: name,
                memo,
                retry,
            });
        });
    }
}

fn index(by_repo: &mut HashMap<String, BTreeSet<String>>, app: &Application) {
    for source in app.spec.effective_sources().iter() {
        by_repo
            .entry(decide::repo_key(&source.repo_url))
            .or_default()
            .insert(app.metadata.name.clone());
    }
}

fn unindex(by_repo: &mut HashMap<String, BTreeSet<String>>, app: &Application) {
    for source in app.spec.effective_sources().iter() {
        let key = decide::repo_key(&source.repo_url);
        if let Some(names) = by_repo.get_mut(&key) {
            names.remove(&app.metadata.name);
            if names.is_empty() {
                by_repo.remove(&key);
            }
        }
    }
}

/// Sync requests and live changes of one held partition, until it is lost.
async fn forward_partition(
    bus: Bus,
    partition: u32,
    token: CancellationToken,
    tx: mpsc::UnboundedSender<Event>,
) {
    let subjects = [
        bus.topology.sync_request_subject(partition),
        bus.topology.live_subject(partition),
    ];
    let mut subs = Vec::new();
    for subject in subjects {
        loop {
            match bus.client.subscribe(subject.clone()).await {
                Ok(sub) => break subs.push(sub),
                Err(err) => {
                    tracing::warn!(%subject, error = %err, "subscribing");
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
    let mut live = subs.pop().expect("two subscriptions");
    let mut sync = subs.pop().expect("two subscriptions");
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => return,
            Some(message) = sync.next() => match serde_json::from_slice::<SyncRequest>(&message.payload) {
                Ok(request) => Event::Sync(PendingSync { request, reply: message.reply }),
                Err(err) => {
                    tracing::warn!(partition, error = %err, "unreadable sync request");
                    continue;
                }
            },
            Some(message) = live.next() => match serde_json::from_slice::<LiveChanged>(&message.payload) {
                Ok(changed) => Event::LiveChanged(changed.app),
                Err(err) => {
                    tracing::warn!(partition, error = %err, "unreadable live change");
                    continue;
                }
            },
            else => return,
        };
        if tx.send(event).is_err() {
            return;
        }
    }
}

fn jitter(max: Duration) -> Duration {
    let ms = max.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    let r = (uuid::Uuid::new_v4().as_u128() % u128::from(ms)) as u64;
    Duration::from_millis(r)
}

#[cfg(test)]
mod tests {
    use gitfleet_model::ApplicationSource;

    use super::*;

    fn app(name: &str, repos: &[&str]) -> Application {
        let mut app = Application::default();
        app.metadata.name = name.into();
        app.spec.sources = repos
            .iter()
            .map(|r| ApplicationSource {
                repo_url: (*r).into(),
                ..ApplicationSource::default()
            })
            .collect();
        app
    }

    #[test]
    fn apps_are_found_by_each_of_their_repositories_until_they_leave_them() {
        let mut by_repo = HashMap::new();
        let a = app(
            "a",
            &["https://git.example/one.git", "https://git.example/two"],
        );
        let b = app("b", &["https://GIT.example/one/"]);
        index(&mut by_repo, &a);
        index(&mut by_repo, &b);
        let on = |by_repo: &HashMap<String, BTreeSet<String>>, url: &str| {
            by_repo
                .get(&decide::repo_key(url))
                .map(|s| s.iter().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(on(&by_repo, "https://git.example/one"), ["a", "b"]);
        assert_eq!(on(&by_repo, "https://git.example/two"), ["a"]);

        let moved = app("a", &["https://git.example/three"]);
        unindex(&mut by_repo, &a);
        index(&mut by_repo, &moved);
        assert_eq!(on(&by_repo, "https://git.example/one"), ["b"]);
        assert!(on(&by_repo, "https://git.example/two").is_empty());
        assert_eq!(on(&by_repo, "https://git.example/three"), ["a"]);

        unindex(&mut by_repo, &moved);
        unindex(&mut by_repo, &b);
        assert!(by_repo.is_empty(), "{by_repo:?}");
    }
}
