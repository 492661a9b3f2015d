//! The sync work queue: one durable pull consumer per owned cluster partition on stream
//! `sync-work` (consumer `sync-executor-<p>`, filter `<prefix>.sync.<p>`), so a partition
//! moves between executors with its consumer and its unacked work. Each message is a
//! `SyncOperation`, checked against the app partition's fencing token, run by the
//! cluster's scheduler, recorded in KV `operations`, announced as an `AppEvent`, and
//! acked only then: a crash mid-sync means redelivery, and syncs are idempotent.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use gitfleet_bus::async_nats::jetstream::{self, AckKind, consumer::pull};
use gitfleet_bus::ownership::read_lease;
use gitfleet_bus::{Backoff, Bus, StreamName, partition, subject_token};
use gitfleet_messages::{
    APP_PARTITIONS, AppEvent, AppEventKind, DIFF_WORKERS, LiveChanged, Operation, SyncOperation,
};
use gitfleet_model::OperationPhase;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterRuntime, Host};
use crate::config::Config;
use crate::executor::Outcome;
use crate::journal::{Earlier, Journal};
use crate::schedule::{Inflight, Job};

/// State every task of the executor shares.
pub struct Shared {
    pub bus: Bus,
    pub config: Config,
    /// Owned clusters by name.
    pub clusters: RwLock<HashMap<String, Arc<ClusterRuntime>>>,
    /// Bumped when `clusters` changes, for operations waiting for their cluster.
    pub clusters_version: watch::Sender<u64>,
    /// Operations queued or running here, so a redelivery of one is not run twice.
    inflight: Arc<Inflight>,
    pub operations: jetstream::kv::Store,
    pub cancel: CancellationToken,
}

impl Shared {
    pub fn new(
        bus: Bus,
        config: Config,
        operations: jetstream::kv::Store,
        cancel: CancellationToken,
    ) -> Self {
        Shared {
            bus,
            config,
            clusters: RwLock::new(HashMap::new()),
            clusters_version: watch::channel(0).0,
            inflight: Arc::default(),
            operations,
            cancel,
        }
    }

    pub fn cluster(&self, name: &str) -> Option<Arc<ClusterRuntime>> {
        self.clusters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

impl Host for Shared {
    fn bus(&self) -> &Bus {
        &self.bus
    }

    fn config(&self) -> &Config {
        &self.config
    }

    async fn run_job(self: Arc<Self>, rt: Arc<ClusterRuntime>, job: Box<Job>) {
        handle(&self, &rt, job).await
    }
}

pub fn consumer_name(partition: u32) -> String {
    format!("sync-executor-{partition}")
}

/// Consumes partition `p`'s operations until `cancel`. Missed heartbeats, "no
/// responders" to a pull and the like while the server restarts end the stream: the pull
/// request is lost and would only be made again when it expires, so the consumer is opened
/// again at once (the durable consumer keeps its place and its unacked work).
pub async fn consume(shared: Arc<Shared>, p: u32, cancel: CancellationToken) {
    let bus = &shared.bus;
    let stream_name = bus.topology.stream(StreamName::SyncWork);
    let name = consumer_name(p);
    let what = format!("sync consumer {name}");
    gitfleet_bus::reopen_forever(
        &what,
        &cancel,
        || async {
            let stream = bus
                .js
                .get_stream(&stream_name)
                .await
                .map_err(|e| e.to_string())?;
            let consumer = stream
                .get_or_create_consumer(
                    &name,
                    pull::Config {
                        durable_name: Some(name.clone()),
                        filter_subject: bus.topology.sync_subject(p),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: shared.config.ack_wait,
                        max_ack_pending: 1000,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!(partition = p, consumer = %name, "consuming sync operations");
            consumer.messages().await.map_err(|e| e.to_string())
        },
        |msg| async {
            dispatch(&shared, msg).await;
            true
        },
    )
    .await;
}

async fn dispatch(shared: &Arc<Shared>, msg: jetstream::Message) {
    let sequence = match msg.info() {
        Ok(info) => info.stream_sequence,
        Err(_) => 0,
    };
    if sequence != 0 && !shared.inflight.insert(sequence) {
        // A redelivery of work queued or running here; the original will ack.
        return;
    }
    let body = match shared.bus.read_payload(&msg.message).await {
        Ok(b) => b,
        Err(err) => {
            tracing::warn!(error = %err, "reading sync operation failed, retrying later");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            shared.inflight.remove(sequence);
            return;
        }
    };
    let mut op: SyncOperation = match serde_json::from_slice(&body) {
        Ok(op) => op,
        Err(err) => {
            tracing::warn!(error = %err, "dropping undecodable sync operation");
            let _ = msg.ack_with(AckKind::Term).await;
            shared.inflight.remove(sequence);
            return;
        }
    };
    // A Secret's values come sealed for this operation (see the diff worker).
    let context = format!("{}/{}", op.app, op.id);
    if let Err(err) = gitfleet_bus::sealed::open_secret_data(
        shared.bus.credentials_key(),
        &mut op.desired,
        &context,
    ) {
        tracing::warn!(app = %op.app, error = %err, "a sync operation's Secret data does not open");
        let operation = ended_before_start(
            &op,
            OperationPhase::Error,
            format!("the operation's Secret data does not open: {err}"),
        );
        let job = Box::new(Job::new(op, msg, sequence, shared.inflight.clone()));
        finish(shared, job, operation).await;
        return;
    }
    let job = Box::new(Job::new(op, msg, sequence, shared.inflight.clone()));
    // The common case is synchronous, which keeps one app's operations in order.
    let job = match shared.cluster(&job.op.cluster) {
        Some(rt) => match rt.submit(job) {
            Ok(()) => return,
            Err(job) => job,
        },
        None => job,
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut version = shared.clusters_version.subscribe();
        let deadline = tokio::time::Instant::now() + shared.config.cluster_wait;
        let mut job = job;
        loop {
            if let Some(rt) = shared.cluster(&job.op.cluster) {
                match rt.submit(job) {
                    Ok(()) => return,
                    Err(j) => job = j,
                }
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => continue,
                _ => break,
            }
        }
        if shared.cancel.is_cancelled() {
            job.give_back().await;
            return;
        }
        let message = format!("cluster {} is not registered with gitfleet", job.op.cluster);
        let operation = ended_before_start(&job.op, OperationPhase::Failed, message);
        finish(&shared, job, operation).await;
    });
}

/// The record of an operation that ended before anything was applied.
fn ended_before_start(op: &SyncOperation, phase: OperationPhase, message: String) -> Operation {
    let now = now();
    Operation {
        id: op.id.clone(),
        app: op.app.clone(),
        phase,
        message,
        revision: op.revision.clone(),
        started_at: now.clone(),
        finished_at: Some(now),
        resources: Vec::new(),
        retry_count: 0,
        source: None,
        dry_run: op.dry_run,
        initiated_by: op.initiated_by.clone(),
        refused: false,
        progress: None,
        self_heal_attempts: op.self_heal_attempts,
    }
}

/// Runs one job on its cluster (called by the cluster's scheduler, through
/// [`Host::run_job`]).
async fn handle(shared: &Arc<Shared>, rt: &ClusterRuntime, job: Box<Job>) {
    let op = &job.op;
    // What the app's record says of a job delivered again (its executor died or stopped,
    // or its ack was lost): it resumes the operation, or, when the operation ended, it
    // does not run again. A first delivery has no record yet (the stream keeps one
    // message per operation id, see the diff worker), so it reads nothing.
    let redelivered = job.msg.info().is_ok_and(|i| i.delivered > 1);
    let stored = match read_own_record(shared, op, redelivered).await {
        Ok(stored) => stored,
        Err(err) => {
            tracing::warn!(app = %op.app, error = %err, "reading the app's operation failed, retrying later");
            retry_later(job).await;
            return;
        }
    };
    if let Some(stored) = &stored
        && stored.finished_at.is_some()
    {
        tracing::info!(app = %op.app, op = %op.id, phase = ?stored.phase, "operation already ended, not run again");
        let app = op.app.clone();
        tell_owner(shared, &app).await;
        ack(job, &app).await;
        return;
    }
    let started_at = now();
    let mut operation = Operation {
        id: op.id.clone(),
        app: op.app.clone(),
        phase: OperationPhase::Running,
        message: String::new(),
        revision: op.revision.clone(),
        started_at: started_at.clone(),
        finished_at: None,
        resources: Vec::new(),
        retry_count: 0,
        source: op.source.clone(),
        dry_run: op.dry_run,
        initiated_by: op.initiated_by.clone(),
        refused: false,
        progress: None,
        self_heal_attempts: op.self_heal_attempts,
    };
    let mut earlier = None;
    if let Some(stored) = stored {
        operation.started_at = stored.started_at.clone();
        operation.retry_count = stored.retry_count;
        if stored.phase == OperationPhase::Terminating {
            // Terminated while no executor ran it: nothing more runs.
            operation.phase = OperationPhase::Failed;
            operation.message = "Operation terminated".to_owned();
            operation.resources = stored.resources;
            operation.finished_at = Some(now());
            finish(shared, job, operation).await;
            return;
        }
        earlier = Earlier::of(&stored);
        tracing::info!(app = %op.app, cluster = %rt.name, op = %op.id, finished = ?earlier.as_ref().and_then(|e| e.finished), "resuming an operation another executor started");
    }
    match check_fencing(shared, op).await {
        Ok(None) => {}
        Ok(Some(current)) => {
            tracing::warn!(app = %op.app, cluster = %rt.name, token = op.fencing.revision, current, "refusing an operation whose fencing token is not the current lease's");
            operation.phase = OperationPhase::Error;
            operation.message = format!(
                "fencing token {} is not the current lease's ({current}): the operation did not come from the owner of app {}",
                op.fencing.revision, op.app
            );
            operation.finished_at = Some(now());
            operation.refused = true;
            record_refusal(shared, &operation).await;
            announce_and_ack(shared, job, operation).await;
            return;
        }
        Err(err) => {
            tracing::warn!(app = %op.app, error = %err, "reading the app's lease failed, retrying later");
            retry_later(job).await;
            return;
        }
    }
    tracing::info!(app = %op.app, cluster = %rt.name, op = %op.id, revision = %op.revision, dry_run = op.dry_run, "sync started");
    // A resumed operation's record already says it runs, with its progress.
    if earlier.is_none() && !write_operation(shared, &operation).await {
        job.give_back().await;
        return;
    }
    // A user's `app terminate-op` marks the stored operation Terminating; a watcher
    // hands that to the run, which stops between waves (and a retry is not started).
    let terminated = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = tokio::spawn(watch_termination(
        shared.operations.clone(),
        op.app.clone(),
        op.id.clone(),
        terminated.clone(),
    ));
    let _stop_watching = AbortOnDrop(watcher);
    // Argo CD's sync timeout, counted from the operation's start (a resumed one keeps its
    // deadline): it terminates the operation as a user's terminate-op would.
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _stop_timer = (!shared.config.sync_timeout.is_zero()).then(|| {
        let started = chrono::DateTime::parse_from_rfc3339(&operation.started_at)
            .map_or_else(|_| chrono::Utc::now(), |t| t.with_timezone(&chrono::Utc));
        let left = (started
            + chrono::Duration::from_std(shared.config.sync_timeout)
                .unwrap_or(chrono::Duration::MAX)
            - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
        let (terminated, timed_out) = (terminated.clone(), timed_out.clone());
        AbortOnDrop(tokio::spawn(async move {
            tokio::time::sleep(left).await;
            timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
            terminated.store(true, std::sync::atomic::Ordering::SeqCst);
        }))
    });
    let outcome = loop {
        let journal = Journal::new(shared, op, &operation, earlier.take().unwrap_or_default());
        let outcome = with_progress(
            shared,
            &job,
            crate::executor::execute(&shared.bus, rt, op, &terminated, &journal),
        )
        .await;
        if terminated.load(std::sync::atomic::Ordering::SeqCst) {
            break outcome;
        }
        if rt.cancel.is_cancelled() && outcome.phase != OperationPhase::Succeeded {
            // Released mid-sync: the cluster's next owner runs it again.
            job.give_back().await;
            return;
        }
        let Some(delay) = retry_delay(op, &outcome, operation.retry_count) else {
            break outcome;
        };
        // Argo CD's retry: the operation stays Running, says why and when it tries again,
        // and runs whole again after the backoff.
        operation.retry_count += 1;
        let at = chrono::Utc::now()
            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
        operation.message = format!(
            "{}. Retrying attempt #{} at {}.",
            outcome.message.trim_end_matches('.'),
            operation.retry_count,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        operation.resources = outcome.resources;
        tracing::info!(app = %op.app, cluster = %rt.name, op = %op.id, attempt = operation.retry_count, ?delay, "sync failed, retrying");
        if !write_running(shared, &operation).await {
            job.give_back().await;
            return;
        }
        let waited = with_progress(shared, &job, async {
            tokio::select! {
                _ = tokio::time::sleep(delay) => true,
                _ = rt.cancel.cancelled() => false,
            }
        })
        .await;
        if !waited {
            job.give_back().await;
            return;
        }
        // The app may have a new owner by now, who decides what runs next.
        if let Ok(Some(current)) = check_fencing(shared, op).await {
            operation.phase = OperationPhase::Error;
            operation.message = format!(
                "{} Not retried: the app has a new owner (lease token {current}).",
                operation.message
            );
            operation.finished_at = Some(now());
            finish(shared, job, operation).await;
            return;
        }
    };
    tracing::info!(app = %op.app, cluster = %rt.name, op = %op.id, phase = ?outcome.phase, message = %outcome.message, "sync finished");
    operation.phase = outcome.phase;
    operation.message = if timed_out.load(std::sync::atomic::Ordering::SeqCst)
        && outcome.phase != OperationPhase::Succeeded
    {
        format!(
            "{}, triggered by controller sync timeout",
            outcome.message.trim_end_matches('.')
        )
    } else if operation.retry_count > 0 && outcome.phase != OperationPhase::Succeeded {
        format!(
            "{} (retried {} times).",
            outcome.message.trim_end_matches('.'),
            operation.retry_count
        )
    } else {
        outcome.message
    };
    operation.resources = outcome.resources;
    operation.finished_at = Some(now());
    finish(shared, job, operation).await;
}

/// Gives a job back to be delivered again in a second (the bus did not answer a read).
async fn retry_later(job: Box<Job>) {
    let _ = job
        .msg
        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
        .await;
    job.release();
}

/// The app's operation record when it is `op`'s own (not a refusal), read only when
/// `redelivered`.
async fn read_own_record(
    shared: &Shared,
    op: &SyncOperation,
    redelivered: bool,
) -> Result<Option<Operation>, async_nats::jetstream::kv::EntryError> {
    if !redelivered {
        return Ok(None);
    }
    let body = shared
        .operations
        .get(subject_token(&op.app).as_str())
        .await?;
    Ok(body
        .and_then(|b| serde_json::from_slice::<Operation>(&b).ok())
        .filter(|s| s.id == op.id && !s.refused))
}

/// Sets `terminated` once KV `operations` shows operation `id` of `app` Terminating.
async fn watch_termination(
    operations: jetstream::kv::Store,
    app: String,
    id: String,
    terminated: Arc<std::sync::atomic::AtomicBool>,
) {
    let key = subject_token(&app);
    loop {
        // Poll interval: a second is as soon as a user expects a terminate to be seen.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(Some(body)) = operations.get(key.as_str()).await else {
            continue;
        };
        if let Ok(stored) = serde_json::from_slice::<Operation>(&body)
            && stored.id == id
            && stored.phase == OperationPhase::Terminating
        {
            terminated.store(true, std::sync::atomic::Ordering::SeqCst);
            return;
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work`, telling JetStream the job is alive meanwhile (so it is not redelivered).
async fn with_progress<T>(shared: &Shared, job: &Job, work: impl Future<Output = T>) -> T {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(shared.config.ack_wait / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            out = &mut work => break out,
            _ = tick.tick() => job.progress().await,
        }
    }
}

/// How long to wait before running a failed operation again, as its retry strategy says
/// (Argo CD: Failed and Error runs retry while `retry_count < limit`, or always for a
/// negative limit); `None` when it is not retried.
fn retry_delay(op: &SyncOperation, outcome: &Outcome, retry_count: i64) -> Option<Duration> {
    let retry = op.retry.as_ref()?;
    let failed = matches!(
        outcome.phase,
        OperationPhase::Failed | OperationPhase::Error
    );
    if !failed || !(retry.is_unlimited() || retry_count < retry.limit) {
        return None;
    }
    let attempt = u32::try_from(retry_count).unwrap_or(u32::MAX);
    Some(retry.effective_backoff().delay(attempt))
}

/// `Ok(Some(current))` when the operation's token is not the current lease's (`0`: no
/// one holds the app's partition). Only the exact token is accepted, and nothing is
/// remembered from an operation: a forged token above the lease's is refused like a
/// stale one and cannot shut out the real owner. An operation with no token (0) is
/// accepted only while no one holds the partition (no diff worker runs: nobody else can
/// be acting for the app).
pub(crate) async fn check_fencing(
    shared: &Shared,
    op: &SyncOperation,
) -> Result<Option<u64>, String> {
    let group = if op.fencing.group.is_empty() {
        DIFF_WORKERS.to_string()
    } else {
        op.fencing.group.clone()
    };
    let p = partition(&op.app, APP_PARTITIONS);
    let lease = read_lease(&shared.bus, &group, p)
        .await
        .map_err(|e| gitfleet_messages::error_chain(&e))?;
    let current = lease.map_or(0, |l| l.token);
    Ok((op.fencing.revision != current).then_some(current))
}

/// Records a refused operation where it hides nothing (compare-and-set): over no record,
/// its own, or another refused one; never over an operation that ran (the app's current
/// owner may have enqueued and run one of its own since). A user waiting on its id hears
/// it ended, unless one that ran is newer.
async fn record_refusal(shared: &Shared, operation: &Operation) {
    let key = subject_token(&operation.app);
    let body = Bytes::from(serde_json::to_vec(operation).unwrap_or_default());
    let written = match shared.operations.entry(&key).await {
        Ok(Some(entry)) if entry.operation == async_nats::jetstream::kv::Operation::Put => {
            match serde_json::from_slice::<Operation>(&entry.value) {
                Ok(stored) if stored.id == operation.id || stored.refused => shared
                    .operations
                    .update(&key, body, entry.revision)
                    .await
                    .map_err(|e| e.to_string()),
                _ => Err("an operation that ran is the app's latest".to_string()),
            }
        }
        Ok(_) => shared
            .operations
            .create(&key, body)
            .await
            .map_err(|e| e.to_string()),
        Err(err) => Err(err.to_string()),
    };
    if let Err(why) = written {
        tracing::info!(app = %operation.app, op = %operation.id, %why, "refused operation not recorded");
    }
}

/// Records the final state, announces it, then acks.
async fn finish(shared: &Shared, job: Box<Job>, operation: Operation) {
    if !write_operation(shared, &operation).await {
        job.give_back().await;
        return;
    }
    announce_and_ack(shared, job, operation).await;
}

/// Tells the app's owner that its operation ended: it reconciles on live changes only,
/// and the last one may have come just before the result was stored, which would leave
/// its status showing the operation Running until the next periodic refresh.
async fn tell_owner(shared: &Shared, app: &str) {
    let subject = shared
        .bus
        .topology
        .live_subject(partition(app, APP_PARTITIONS));
    let changed = serde_json::to_vec(&LiveChanged {
        app: app.to_owned(),
    })
    .unwrap_or_default();
    if let Err(err) = shared.bus.client.publish(subject, changed.into()).await {
        tracing::debug!(%app, error = %err, "announcing the operation's end failed");
    }
}

/// Tells the app's owner and the event stream that `operation` ended, then acks its job.
async fn announce_and_ack(shared: &Shared, job: Box<Job>, operation: Operation) {
    tell_owner(shared, &operation.app).await;
    let kind = match operation.phase {
        OperationPhase::Succeeded => AppEventKind::SyncSucceeded,
        _ => AppEventKind::SyncFailed,
    };
    let event = AppEvent {
        app: operation.app.clone(),
        kind,
        message: operation.message.clone(),
        revision: operation.revision.clone(),
        sync_status: None,
        time: now(),
    };
    let subject = shared.bus.topology.event_subject(&operation.app);
    let body = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
    if let Err(err) = shared.bus.publish_durable(subject, body).await {
        tracing::warn!(app = %operation.app, error = %err, "publishing app event failed");
    }
    ack(job, &operation.app).await;
}

/// Acks a job (not acked, its operation would be delivered again after `ack_wait`).
async fn ack(job: Box<Job>, app: &str) {
    let acked = gitfleet_bus::retry(
        "acking sync operation",
        gitfleet_bus::Retry::RECOVERY,
        || job.msg.double_ack(),
    )
    .await;
    if let Err(err) = acked {
        tracing::warn!(%app, error = %err, "acking sync operation failed");
    }
    job.release();
}

/// Writes `operation` to KV `operations`, retrying while the bus is away; false only
/// when shutting down first.
pub(crate) async fn write_operation(shared: &Shared, operation: &Operation) -> bool {
    let key = subject_token(&operation.app);
    let body = Bytes::from(serde_json::to_vec(operation).unwrap_or_default());
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        match shared.operations.put(key.as_str(), body.clone()).await {
            Ok(_) => return true,
            Err(err) => {
                tracing::warn!(app = %operation.app, error = %err, "writing operation failed, retrying");
                if !backoff.wait(&shared.cancel).await {
                    return false;
                }
            }
        }
    }
}

/// Writes the record of a running `operation`, keeping a user's `Terminating` mark on it
/// (compare-and-set: `app terminate-op` marks the stored record, and a plain write could
/// wipe the mark before the run's watcher saw it); false only when shutting down first.
pub(crate) async fn write_running(shared: &Shared, operation: &Operation) -> bool {
    let key = subject_token(&operation.app);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let written = match shared.operations.entry(key.as_str()).await {
            Ok(entry) => {
                let stored = entry
                    .as_ref()
                    .filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
                    .and_then(|e| serde_json::from_slice::<Operation>(&e.value).ok());
                let mut record = operation.clone();
                if stored
                    .is_some_and(|s| s.id == operation.id && s.phase == OperationPhase::Terminating)
                {
                    record.phase = OperationPhase::Terminating;
                }
                let body = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
                match entry {
                    Some(e) => shared
                        .operations
                        .update(key.as_str(), body, e.revision)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    None => shared
                        .operations
                        .create(key.as_str(), body)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                }
            }
            Err(err) => Err(err.to_string()),
        };
        match written {
            Ok(()) => return true,
            Err(err) => {
                tracing::debug!(app = %operation.app, error = %err, "writing the running operation failed, retrying");
                if !backoff.wait(&shared.cancel).await {
                    return false;
                }
            }
        }
    }
}

/// Operation times carry milliseconds: the diff worker recognises an operation already
/// in the app's history by its start and revision, and two syncs of one revision can
/// start within the same second (a rollback right after a sync).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
