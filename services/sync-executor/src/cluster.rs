//! One owned cluster at run time: its client, live cache and rate limit, and the tasks
//! that serve it (cache, live requests, change routing and its scheduler, see
//! [`crate::schedule`]). Everything of a cluster lives in its own tasks, so a slow or
//! unreachable cluster never holds up another.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gitfleet_bus::{Backoff, Bus};

use gitfleet_model::Cluster;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::LiveCache;
use crate::config::Config;
use crate::limiter::RateLimiter;
use crate::schedule::{self, Job};

/// What a cluster's tasks need from the executor they run in (implemented by the work
/// queue's `Shared`), so the runtime starts without depending on the queue.
pub trait Host: Send + Sync + 'static {
    fn bus(&self) -> &Bus;
    fn config(&self) -> &Config;
    /// Runs one of `rt`'s jobs to its recorded result (called by the cluster's scheduler).
    fn run_job(
        self: Arc<Self>,
        rt: Arc<ClusterRuntime>,
        job: Box<Job>,
    ) -> impl Future<Output = ()> + Send;
}

pub struct ClusterRuntime {
    pub name: String,
    /// The cluster as registered, to notice a changed registration.
    pub spec: Cluster,
    /// `Err` when the registration cannot give a client (bad URL or CA): every operation
    /// and live request for the cluster fails with that message.
    pub client: Result<kube::Client, String>,
    pub cache: Arc<LiveCache>,
    pub limiter: Arc<RateLimiter>,
    pub config: Config,
    jobs: mpsc::UnboundedSender<Box<Job>>,
    pub cancel: CancellationToken,
}

/// How a request to a cluster failed.
#[derive(Debug)]
pub enum CallError {
    /// The API server answered with an error Status (after retrying 429/5xx).
    Api { code: u16, message: String },
    /// The cluster could not be reached (after retries).
    Unreachable(String),
}

impl CallError {
    /// The failure as a bus reply, led by what was being done; a cluster's refusal keeps
    /// its meaning for the caller (404 NotFound, 409 Conflict, 403, 400/422 Invalid).
    pub fn service_error(self, what: &str) -> gitfleet_messages::ServiceError {
        use gitfleet_messages::{ErrorCode, ServiceError};
        match self {
            CallError::Api { code, message } => {
                let code = match code {
                    404 => ErrorCode::NotFound,
                    409 => ErrorCode::Conflict,
                    403 => ErrorCode::PermissionDenied,
                    400 | 422 => ErrorCode::Invalid,
                    _ => ErrorCode::Internal,
                };
                ServiceError::new(code, format!("{what}: {message}"))
            }
            CallError::Unreachable(message) => {
                ServiceError::unavailable(format!("{what}: {message}"))
            }
        }
    }
}

impl ClusterRuntime {
    /// Starts the cluster's tasks (cache, live requests, change routing, scheduler).
    pub fn start(
        host: Arc<impl Host>,
        name: &str,
        spec: Cluster,
        parent: &CancellationToken,
    ) -> Arc<ClusterRuntime> {
        let config = host.config().clone();
        let limiter = Arc::new(RateLimiter::new(config.cluster_qps, config.cluster_burst));
        let client = crate::client::build(name, &spec, &config.member_id, limiter.clone())
            .map_err(|e| e.to_string());
        if let Err(err) = &client {
            tracing::warn!(cluster = %name, error = %err, "cluster registration unusable");
        }
        let (cache, changes) = LiveCache::new(name);
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let cancel = parent.child_token();
        let rt = Arc::new(ClusterRuntime {
            name: name.to_string(),
            spec,
            client,
            cache,
            limiter,
            jobs,
            cancel: cancel.clone(),
            config: config.clone(),
        });
        if let Ok(client) = &rt.client {
            tokio::spawn(rt.cache.clone().run(
                client.clone(),
                config.rediscover_every,
                cancel.clone(),
            ));
        }
        tokio::spawn(crate::live::serve(
            host.bus().clone(),
            rt.clone(),
            cancel.clone(),
        ));
        tokio::spawn(crate::actions::serve(
            host.bus().clone(),
            rt.clone(),
            cancel.clone(),
        ));
        tokio::spawn(crate::live::route_changes(
            host.bus().clone(),
            name.to_string(),
            changes,
            config.live_debounce,
            cancel.clone(),
        ));
        let run_job = {
            let rt = rt.clone();
            move |job| host.clone().run_job(rt.clone(), job)
        };
        tokio::spawn(schedule::run(
            jobs_rx,
            config.cluster_concurrency,
            config.ack_wait / 3,
            cancel,
            run_job,
        ));
        tracing::info!(cluster = %name, server = %rt.spec.server, "cluster owned");
        rt
    }

    pub fn stop(&self) {
        tracing::info!(cluster = %self.name, "cluster released");
        self.cancel.cancel();
    }

    /// Queues an operation; `Err` gives it back when the cluster is stopping.
    pub fn submit(&self, job: Box<Job>) -> Result<(), Box<Job>> {
        self.jobs.send(job).map_err(|e| e.0)
    }

    pub fn unreachable(&self, reason: &str) -> String {
        format!("cluster {} unreachable: {reason}", self.name)
    }

    /// `Ok` when the cache can be trusted: listed, and the API server answers, waiting up
    /// to `wait` for it. The error is the user-facing `cluster <c> unreachable: ...`.
    pub async fn ensure_reachable(&self, wait: Duration) -> Result<(), String> {
        let client = self.client.as_ref().map_err(|e| e.clone())?;
        match self.cache.wait_ready(wait).await {
            Ok(()) => Ok(()),
            Err(problem) => {
                // A watch error clears only with the watch's next event, which a quiet
                // kind may never send: ask the server itself whether it answers.
                if self.cache.is_ready() {
                    let probe =
                        tokio::time::timeout(Duration::from_secs(5), client.apiserver_version())
                            .await;
                    match probe {
                        Ok(Ok(_)) => return Ok(()),
                        Ok(Err(err)) => {
                            return Err(self.unreachable(&gitfleet_messages::error_chain(&err)));
                        }
                        Err(_) => return Err(self.unreachable("no answer within 5s")),
                    }
                }
                Err(self.unreachable(&problem))
            }
        }
    }

    /// Runs one API request with the cluster's rate limit and timeout, retrying
    /// transport errors, 429 and 5xx with back-off, and no sooner than a `Retry-After`
    /// the cluster sent says (the limiter holds the next request).
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, CallError>
    where
        F: FnMut(kube::Client) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let client = self
            .client
            .as_ref()
            .map_err(|e| CallError::Unreachable(e.clone()))?;
        // Capped: the uncapped doubling waited minutes by the tenth attempt.
        let mut backoff = Backoff::new(self.config.retry_backoff, self.config.retry_backoff * 32);
        let attempts = self.config.request_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.limiter.acquire().await;
            let result = tokio::time::timeout(self.config.request_timeout, f(client.clone())).await;
            let err = match result {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(kube::Error::Api(status))) => {
                    let retry = status.code == 429 || status.code >= 500;
                    let err = CallError::Api {
                        code: status.code,
                        message: status.message.clone(),
                    };
                    if !retry {
                        return Err(err);
                    }
                    err
                }
                Ok(Err(err)) => {
                    CallError::Unreachable(self.unreachable(&gitfleet_messages::error_chain(&err)))
                }
                Err(_) => CallError::Unreachable(self.unreachable(&format!(
                    "no answer within {:?}",
                    self.config.request_timeout
                ))),
            };
            if attempt >= attempts {
                return Err(err);
            }
            tracing::debug!(cluster = %self.name, attempt, error = ?err, "request failed, retrying");
            if !backoff.wait(&self.cancel).await {
                return Err(err);
            }
        }
    }
}
