//! A cluster's scheduler: the `Job`s handed to it run one per app at a time, in arrival
//! order per app, at most `cluster_concurrency` at once, and are kept marked in progress
//! while they wait. It knows neither the work queue nor the cluster: the cluster runtime
//! starts it with the function that runs one job.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitfleet_bus::async_nats::jetstream::{self, AckKind};
use gitfleet_messages::SyncOperation;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Stream sequences of operations queued or running here, so a redelivery of work still
/// in progress is not run twice.
#[derive(Debug, Default)]
pub struct Inflight(Mutex<HashSet<u64>>);

impl Inflight {
    /// Adds `sequence`; false when it is here already.
    pub fn insert(&self, sequence: u64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sequence)
    }

    pub fn remove(&self, sequence: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&sequence);
    }
}

/// One queued operation and the message to ack when it is recorded.
pub struct Job {
    pub op: SyncOperation,
    pub msg: jetstream::Message,
    sequence: u64,
    /// Holds the job's stream sequence until it is acked or given back.
    inflight: Arc<Inflight>,
}

impl Job {
    /// A job for message `msg` (stream sequence `sequence`, already in `inflight`).
    pub fn new(
        op: SyncOperation,
        msg: jetstream::Message,
        sequence: u64,
        inflight: Arc<Inflight>,
    ) -> Self {
        Job {
            op,
            msg,
            sequence,
            inflight,
        }
    }

    /// Returns the operation to the queue for immediate redelivery (e.g. to the
    /// cluster's next owner).
    pub async fn give_back(self: Box<Self>) {
        let _ = self.msg.ack_with(AckKind::Nak(None)).await;
        self.release();
    }

    pub async fn progress(&self) {
        let _ = self.msg.ack_with(AckKind::Progress).await;
    }

    /// Takes the job out of the in-flight set once its message is acked or handed back,
    /// so a redelivery runs again.
    pub fn release(&self) {
        self.inflight.remove(self.sequence);
    }
}

enum Event {
    Job(Box<Job>),
    Done(String),
}

/// Runs `jobs` with `run_job` until `cancel`: one per app at a time, in arrival order per
/// app, at most `concurrency` at once. Jobs waiting (behind their app's running one, or
/// for a slot) are marked in progress every `progress_every`; those not started when
/// cancelled go back to the queue at once.
pub async fn run<F, Fut>(
    mut jobs: mpsc::UnboundedReceiver<Box<Job>>,
    concurrency: usize,
    progress_every: Duration,
    cancel: CancellationToken,
    run_job: F,
) where
    F: Fn(Box<Job>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut running: HashSet<String> = HashSet::new();
    let mut waiting: HashMap<String, VecDeque<Box<Job>>> = HashMap::new();
    let mut progress = tokio::time::interval(progress_every);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = progress.tick() => {
                // Jobs queued behind their app's running one are in progress too.
                for job in waiting.values().flatten() {
                    job.progress().await;
                }
                continue;
            }
            j = jobs.recv() => match j { Some(j) => Event::Job(j), None => break },
            d = done_rx.recv() => match d { Some(d) => Event::Done(d), None => break },
        };
        let job = match event {
            Event::Job(job) if running.contains(&job.op.app) => {
                waiting
                    .entry(job.op.app.clone())
                    .or_default()
                    .push_back(job);
                continue;
            }
            Event::Job(job) => job,
            Event::Done(app) => match waiting.get_mut(&app).and_then(VecDeque::pop_front) {
                Some(job) => job,
                None => {
                    waiting.remove(&app);
                    running.remove(&app);
                    continue;
                }
            },
        };
        running.insert(job.op.app.clone());
        let (run_job, permits, done_tx) = (run_job.clone(), permits.clone(), done_tx.clone());
        tokio::spawn(async move {
            let app = job.op.app.clone();
            // Waiting for a slot counts as work in progress, or the server would redeliver.
            let mut tick = tokio::time::interval(progress_every);
            tick.tick().await;
            let permit = loop {
                tokio::select! {
                    p = permits.acquire() => break p,
                    _ = tick.tick() => job.progress().await,
                }
            };
            if let Ok(_permit) = permit {
                run_job(job).await;
            }
            let _ = done_tx.send(app);
        });
    }
    // Jobs not started go back to the queue at once for the cluster's next owner.
    for job in waiting.into_values().flatten() {
        job.give_back().await;
    }
    while let Ok(job) = jobs.try_recv() {
        job.give_back().await;
    }
}
