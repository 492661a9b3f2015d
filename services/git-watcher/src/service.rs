//! The git-watcher as a bus service: follows the repositories the Applications in KV name,
//! publishes a [`RevisionEvent`] for every move, acts on webhooks at once, and answers the
//! resolve and files requests of the other services.
//!
//! One task owns the [`Watcher`] (subscriptions, last seen commits, polls); everything that
//! changes what is followed or asks for a look reaches it as a [`Command`] over a channel.
//! Commands that queue up while it works are handled as one batch, so a burst of app writes
//! (a restart replaying the bucket, an ApplicationSet creating a thousand apps) costs one
//! fetch per repository rather than one per app.

mod access;
mod apps;
mod requests;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gitfleet_bus::async_nats::jetstream::kv;
use gitfleet_bus::{Bucket, Bus, BusError, Running, subject_token};
use gitfleet_messages::{RefreshRequest, RevisionEvent};

use crate::helm_repo::HelmRepos;
use gitfleet_model::{Application, Repository};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::mirror::{Mirrors, MirrorsConfig};
use crate::poll::{PollSchedule, RevisionChange, Subscription, TickReport, Watcher};
use access::RepoAccess;
use apps::AppSubscriptions;

/// Queue group of the request subjects, so replicas share the requests.
const QUEUE_GROUP: &str = "git-watcher";

/// How the service runs; [`Config::new`] gives Argo CD's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the bare mirrors live; kept across restarts so fetches stay incremental.
    pub mirror_dir: PathBuf,
    /// Base delay between polls of every followed repository.
    pub poll_interval: Duration,
    /// Random extra delay on top of `poll_interval`, so a fleet does not poll in lockstep.
    pub poll_jitter: Duration,
    /// Upper bound on one fetch.
    pub fetch_timeout: Duration,
    /// Resolve and files requests worked on at once (per subject); more wait their turn.
    pub max_concurrent_requests: usize,
    /// `file://` and local-path repositories (off: see [`MirrorsConfig::allow_local`]).
    pub allow_local_repositories: bool,
    /// The known hosts file ssh repositories' host keys are checked against (Argo CD's
    /// `argocd-ssh-known-hosts-cm`, mounted where [`crate::ssh::default_known_hosts`] says).
    pub ssh_known_hosts: PathBuf,
    /// CA certificates of https repositories, a PEM file per host name (Argo CD's
    /// `argocd-tls-certs-cm`, mounted where [`crate::tls::default_certs_dir`] says).
    pub tls_certs_dir: PathBuf,
}

impl Config {
    pub fn new(mirror_dir: impl Into<PathBuf>) -> Self {
        Config {
            mirror_dir: mirror_dir.into(),
            poll_interval: PollSchedule::DEFAULT_INTERVAL,
            poll_jitter: PollSchedule::DEFAULT_JITTER,
            fetch_timeout: MirrorsConfig::default().fetch_timeout,
            max_concurrent_requests: 16,
            allow_local_repositories: false,
            ssh_known_hosts: crate::ssh::default_known_hosts(),
            tls_certs_dir: crate::tls::default_certs_dir(),
        }
    }

    /// The same, with local repositories allowed (tests and local setups).
    pub fn allowing_local_repositories(mut self) -> Self {
        self.allow_local_repositories = true;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bus(#[from] BusError),

    #[error("subscribing to {subject}")]
    Subscribe {
        subject: String,
        #[source]
        source: gitfleet_bus::async_nats::SubscribeError,
    },

    #[error("watching bucket {bucket}")]
    Watch {
        bucket: String,
        #[source]
        source: kv::WatchError,
    },
}

/// What the watcher task is asked to do.
#[derive(Debug)]
enum Command {
    /// An Application was written (`Some`) or deleted (`None`); keyed by its KV key.
    App {
        key: String,
        app: Option<Box<Application>>,
    },
    /// A repository's credentials changed: a fetch that failed for want of them may now work.
    Credentials {
        repo: String,
    },
    Refresh(RefreshRequest),
}

/// Runs until `shutdown` is cancelled. Fails only if the bus objects cannot be opened or
/// subscribed at start; Git and publish failures later are logged and retried by the polls.
pub async fn run(config: Config, bus: Bus, shutdown: CancellationToken) -> Result<(), Error> {
    start(config, bus, shutdown).await?.wait().await
}

/// Opens and subscribes everything, then runs in the background: once this returns, the
/// watcher answers resolve and files requests and hears webhooks.
pub async fn start(
    config: Config,
    bus: Bus,
    shutdown: CancellationToken,
) -> Result<Running<Error>, Error> {
    let mirrors = Mirrors::with_config(
        &config.mirror_dir,
        MirrorsConfig {
            fetch_timeout: config.fetch_timeout,
            allow_local: config.allow_local_repositories,
            ssh: crate::ssh::SshSettings {
                known_hosts: config.ssh_known_hosts.clone(),
                ..Default::default()
            },
            tls_certs_dir: config.tls_certs_dir.clone(),
            ..MirrorsConfig::default()
        },
    );
    // A Helm repository's index is read once per poll interval for every app on it.
    let helm = HelmRepos::new(config.poll_interval, config.fetch_timeout);
    let access = RepoAccess::new(mirrors.clone(), helm);
    let apps_kv = bus.kv(Bucket::Applications).await?;
    let repos_kv = bus.kv(Bucket::Repositories).await?;
    let templates_kv = bus.kv(Bucket::RepoCreds).await?;
    let prefix = bus.topology.prefix().to_owned();

    let subscribe = |subject: String, queue: bool| {
        let client = bus.client.clone();
        async move {
            let result = if queue {
                client
                    .queue_subscribe(subject.clone(), QUEUE_GROUP.to_owned())
                    .await
            } else {
                client.subscribe(subject.clone()).await
            };
            result.map_err(|source| Error::Subscribe { subject, source })
        }
    };
    let resolve_sub = subscribe(bus.topology.git_resolve_subject(), true).await?;
    let files_sub = subscribe(bus.topology.git_files_subject(), true).await?;
    let tree_ids_sub = subscribe(bus.topology.git_tree_ids_subject(), true).await?;
    // Every replica hears every webhook: a refresh is cheap and idempotent.
    let webhook_sub = subscribe(bus.topology.webhook_subject(), false).await?;
    // A round trip: the server has the subscriptions once `start` returns, so a request
    // sent by any client afterwards finds them.
    let _ = bus.client.flush().await;
    let apps_watch = watch_bucket(&apps_kv, 0).await?;
    let repos_watch = watch_bucket(&repos_kv, 0).await?;
    let templates_watch = watch_bucket(&templates_kv, 0).await?;

    let stop = shutdown.child_token();
    let (commands, command_rx) = mpsc::channel(4096);
    let mut tasks = JoinSet::new();
    {
        let access_resolve = access.clone();
        tasks.spawn(gitfleet_bus::serve(
            bus.clone(),
            resolve_sub,
            config.max_concurrent_requests,
            stop.clone(),
            move |request| requests::resolve(access_resolve.clone(), request),
        ));
        let access_files = access.clone();
        tasks.spawn(gitfleet_bus::serve(
            bus.clone(),
            files_sub,
            config.max_concurrent_requests,
            stop.clone(),
            move |request| requests::files(access_files.clone(), request),
        ));
        let access_ids = access.clone();
        tasks.spawn(gitfleet_bus::serve(
            bus.clone(),
            tree_ids_sub,
            config.max_concurrent_requests,
            stop.clone(),
            move |request| requests::tree_ids(access_ids.clone(), request),
        ));
    }
    tasks.spawn(forward_webhooks(
        webhook_sub,
        commands.clone(),
        stop.clone(),
    ));
    tasks.spawn(follow_bucket(
        apps_kv,
        apps_watch,
        stop.clone(),
        Forward::Apps(commands.clone()),
    ));
    tasks.spawn(follow_bucket(
        repos_kv,
        repos_watch,
        stop.clone(),
        Forward::Repositories(commands.clone(), access.clone(), bus.clone()),
    ));
    tasks.spawn(follow_bucket(
        templates_kv,
        templates_watch,
        stop.clone(),
        Forward::Templates(commands, access.clone(), bus.clone()),
    ));
    tracing::info!(
        mirror_dir = %config.mirror_dir.display(),
        poll_interval_s = config.poll_interval.as_secs_f64(),
        prefix,
        "git-watcher running"
    );

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let owner = Owner {
        watcher: Watcher::new(mirrors),
        access,
        apps: AppSubscriptions::default(),
        bus,
        announce: BTreeSet::new(),
        announce_at: None,
    };
    let schedule = PollSchedule::new(config.poll_interval, config.poll_jitter, seed);
    Ok(Running::spawn(async move {
        owner.run(schedule, command_rx, stop.clone()).await;
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        tracing::info!("git-watcher stopped");
        Ok(())
    }))
}

/// How long announcements to apps joining a followed subscription are gathered before
/// they go out: apps written one by one (an ApplicationSet writing thousands) make one
/// announcement per subscription per window, not one each, which every diff worker would
/// have to weigh against every app it holds.
const ANNOUNCE_WINDOW: Duration = Duration::from_millis(250);

/// The task that owns the watcher.
struct Owner {
    watcher: Watcher,
    access: RepoAccess,
    apps: AppSubscriptions,
    bus: Bus,
    /// Subscriptions whose new apps are still to hear the current commit, and when.
    announce: BTreeSet<crate::poll::Subscription>,
    announce_at: Option<tokio::time::Instant>,
}

impl Owner {
    async fn run(
        mut self,
        mut schedule: PollSchedule,
        mut commands: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) {
        let poll = tokio::time::sleep(schedule.next_delay());
        tokio::pin!(poll);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = &mut poll => {
                    let report = self.watcher.tick().await;
                    tracing::debug!(fetched = report.fetched, changes = report.changes.len(), "poll");
                    self.publish_report(report, "poll").await;
                    poll.as_mut().reset(tokio::time::Instant::now() + schedule.next_delay());
                }
                () = async {
                    match self.announce_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.announce_at = None;
                    let mut report = TickReport::default();
                    for subscription in std::mem::take(&mut self.announce) {
                        if let Some(current) = self.watcher.last_seen(&subscription) {
                            report.changes.push(RevisionChange {
                                repo: subscription.repo.clone(),
                                target_revision: subscription.target_revision.clone(),
                                from: None,
                                to: current.commit.clone(),
                                kind: current.kind,
                                changed_paths: None,
                            });
                        }
                    }
                    self.publish_report(report, "subscribe").await;
                }
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let mut batch = vec![command];
                    while let Ok(more) = commands.try_recv() {
                        batch.push(more);
                    }
                    self.handle(batch).await;
                }
            }
        }
    }

    async fn handle(&mut self, batch: Vec<Command>) {
        // Repositories to fetch now, and subscriptions whose new apps must hear the commit.
        let mut dirty = BTreeSet::new();
        let mut announce = BTreeSet::new();
        let mut refreshed = false;
        for command in batch {
            match command {
                Command::App { key, app } => {
                    let subscriptions = app
                        .as_deref()
                        .map(apps::subscriptions_of)
                        .unwrap_or_default();
                    let delta = self.apps.set(&key, subscriptions);
                    for gone in delta.last {
                        self.watcher.unsubscribe(&gone);
                        announce.remove(&gone);
                        self.announce.remove(&gone);
                        tracing::info!(repo = %gone.repo, revision = %gone.target_revision, "unfollowed");
                    }
                    for new in delta.first {
                        // Applies the bucket's credentials before the first fetch.
                        let followed = self
                            .access
                            .mirror(&new.repo)
                            .and_then(|_| self.watcher.subscribe(new.clone()));
                        match followed {
                            Ok(()) => {
                                tracing::info!(repo = %new.repo, revision = %new.target_revision, "following");
                                dirty.insert(new.repo.clone());
                            }
                            Err(err) => {
                                tracing::warn!(app = %key, error = %err, "cannot follow app source")
                            }
                        }
                    }
                    for joined in delta.joined {
                        if self.watcher.last_seen(&joined).is_none() {
                            dirty.insert(joined.repo.clone());
                        }
                        announce.insert(joined);
                    }
                }
                Command::Credentials { repo } => {
                    dirty.insert(repo);
                }
                Command::Refresh(request) => {
                    refreshed = true;
                    if let Some(repo) = request.repo {
                        // A Helm repository or registry: its next resolve reads it anew.
                        self.access.helm.forget(&repo);
                        dirty.insert(repo);
                    }
                    if let Some(app) = request.app
                        && let Some(subscriptions) = self.apps.of(&subject_token(&app))
                    {
                        dirty.extend(subscriptions.iter().map(|s| s.repo.clone()));
                    }
                }
            }
        }
        let mut report = TickReport::default();
        if !dirty.is_empty() {
            report = self
                .watcher
                .refresh_repos(dirty.iter().map(String::as_str))
                .await;
        }
        // Apps joining a followed subscription hear its current commit (gathered for
        // `ANNOUNCE_WINDOW`), unless the refresh above already reported a move for it.
        for subscription in announce {
            let moved = report.changes.iter().any(|c| {
                c.repo == subscription.repo && c.target_revision == subscription.target_revision
            });
            if !moved {
                self.announce.insert(subscription);
            }
        }
        if !self.announce.is_empty() && self.announce_at.is_none() {
            self.announce_at = Some(tokio::time::Instant::now() + ANNOUNCE_WINDOW);
        }
        if !report.changes.is_empty() || !report.errors.is_empty() {
            self.publish_report(report, if refreshed { "refresh" } else { "subscribe" })
                .await;
        }
    }

    async fn publish_report(&mut self, report: TickReport, cause: &'static str) {
        for err in &report.errors {
            // Messages carry credential-free URLs only (see `GitError`).
            tracing::warn!(cause, error = %err, "git error");
        }
        let publishes = report
            .changes
            .into_iter()
            .map(|change| publish_change(&self.bus, change, cause));
        for unpublished in futures::future::join_all(publishes)
            .await
            .into_iter()
            .flatten()
        {
            // The watcher already counts the commit as seen; forgetting it makes the next
            // poll (or webhook) report it again instead of waiting for the next move.
            self.watcher.forget_seen(&unpublished);
        }
    }
}

/// Publishes one move on the repository's revision subject and waits for the stream's ack,
/// retrying through a server restart ([`Bus::publish_durable`]). Returns the subscription
/// when the event could not be published.
async fn publish_change(
    bus: &Bus,
    change: RevisionChange,
    cause: &'static str,
) -> Option<Subscription> {
    let subject = bus.topology.revision_subject(&change.repo);
    let event = RevisionEvent {
        repo: change.repo,
        target_revision: change.target_revision,
        from: change.from,
        to: change.to,
        changed_paths: change.changed_paths,
    };
    let body = match serde_json::to_vec(&event) {
        Ok(body) => Bytes::from(body),
        Err(err) => {
            tracing::error!(error = %err, "encoding revision event");
            return None;
        }
    };
    match bus.publish_durable(subject.clone(), body).await {
        Ok(()) => {
            tracing::info!(
                cause,
                repo = %event.repo,
                revision = %event.target_revision,
                from = event.from.as_deref().unwrap_or(""),
                to = %event.to,
                changed = event.changed_paths.as_ref().map_or(-1, |p| p.len() as i64),
                "revision moved"
            );
            None
        }
        Err(err) => {
            tracing::warn!(subject, error = %err, "publishing revision event failed, reporting it again at the next poll");
            Some(Subscription::new(event.repo, event.target_revision))
        }
    }
}

async fn forward_webhooks(
    mut subscriber: gitfleet_bus::async_nats::Subscriber,
    commands: mpsc::Sender<Command>,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        match serde_json::from_slice::<RefreshRequest>(&message.payload) {
            Ok(request) => {
                tracing::debug!(repo = ?request.repo, app = ?request.app, "refresh requested");
                if commands.send(Command::Refresh(request)).await.is_err() {
                    return;
                }
            }
            Err(err) => tracing::warn!(error = %err, "invalid refresh request ignored"),
        }
    }
}

async fn watch_bucket(store: &kv::Store, from_revision: u64) -> Result<kv::Watch, Error> {
    let result = if from_revision == 0 {
        store.watch_with_history(">").await
    } else {
        store.watch_from_revision(">", from_revision).await
    };
    result.map_err(|source| Error::Watch {
        bucket: store.name.clone(),
        source,
    })
}

/// Where the entries of a watched bucket go.
enum Forward {
    Apps(mpsc::Sender<Command>),
    /// The bus opens the sealed credentials.
    Repositories(mpsc::Sender<Command>, RepoAccess, Bus),
    Templates(mpsc::Sender<Command>, RepoAccess, Bus),
}

impl Forward {
    /// Returns false once the watcher task is gone.
    async fn entry(&self, entry: kv::Entry) -> bool {
        let deleted = !matches!(entry.operation, kv::Operation::Put);
        match self {
            Forward::Apps(commands) => {
                let app = if deleted {
                    None
                } else {
                    match serde_json::from_slice::<Application>(&entry.value) {
                        Ok(app) => Some(Box::new(app)),
                        Err(err) => {
                            // A broken app follows nothing, as a deleted one.
                            tracing::warn!(key = %entry.key, error = %err, "invalid application ignored");
                            None
                        }
                    }
                };
                commands
                    .send(Command::App {
                        key: entry.key,
                        app,
                    })
                    .await
                    .is_ok()
            }
            Forward::Repositories(commands, access, bus) => {
                // The key is the escaped name, not the URL; deleted entries have no value,
                // so the URL of every key is remembered while it exists.
                let Ok(repository) = read_entry::<Repository>(
                    bus,
                    Bucket::Repositories,
                    &entry,
                    deleted,
                    "repository",
                ) else {
                    return true;
                };
                let repo = match &repository {
                    Some(repository) => repository.repo.clone(),
                    None => match access.forget_key(&entry.key) {
                        Some(repo) => repo,
                        None => return true,
                    },
                };
                if let Some(repository) = &repository {
                    access.remember_key(&entry.key, &repository.repo);
                }
                if access.update(&repo, repository.as_ref()).is_none() {
                    return true;
                }
                commands.send(Command::Credentials { repo }).await.is_ok()
            }
            Forward::Templates(commands, access, bus) => {
                let Ok(template) = read_entry::<Repository>(
                    bus,
                    Bucket::RepoCreds,
                    &entry,
                    deleted,
                    "credential template",
                ) else {
                    return true;
                };
                for repo in access.update_template(&entry.key, template.as_ref()) {
                    if commands.send(Command::Credentials { repo }).await.is_err() {
                        return false;
                    }
                }
                true
            }
        }
    }
}

/// A bucket entry's value: `None` when deleted; `Err` (logged, the entry is ignored) when
/// it does not read as a `T`.
fn read_entry<T: serde::de::DeserializeOwned>(
    bus: &Bus,
    bucket: Bucket,
    entry: &kv::Entry,
    deleted: bool,
    what: &str,
) -> std::result::Result<Option<T>, ()> {
    if deleted {
        return Ok(None);
    }
    bus.decode_document(bucket, &entry.key, &entry.value)
        .map(Some)
        .map_err(|err| {
            tracing::warn!(key = %entry.key, error = %err, "invalid {what} ignored");
        })
}

/// Feeds a bucket's entries to `forward`, watching again from where it stopped if the
/// watch ends (the server restarted or the consumer was lost). `watch` was opened at
/// start, so the bucket's current entries are seen before `start` returns.
async fn follow_bucket(
    store: kv::Store,
    watch: kv::Watch,
    shutdown: CancellationToken,
    forward: Forward,
) {
    let last_revision = AtomicU64::new(0);
    let mut first = Some(watch);
    let what = format!("watch of bucket {}", store.name);
    gitfleet_bus::reopen_forever(
        &what,
        &shutdown,
        || {
            let first = first.take();
            let (store, from) = (&store, last_revision.load(Ordering::SeqCst) + 1);
            async move {
                match first {
                    Some(watch) => Ok(watch),
                    None => watch_bucket(store, from).await,
                }
            }
        },
        |entry: kv::Entry| {
            last_revision.store(entry.revision, Ordering::SeqCst);
            forward.entry(entry)
        },
    )
    .await;
}
