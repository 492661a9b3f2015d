//! What an executor is told at start: who it is, how fast it may go, how long it waits.

use std::time::Duration;

use gitfleet_bus::MembershipConfig;

/// Settings of one sync executor. [`Config::new`] gives Argo CD's defaults; tests shorten
/// the waits.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unique among live executors (pod name, or hostname-pid).
    pub member_id: String,
    /// How long a silent executor counts as alive; whole seconds.
    pub member_ttl: Duration,
    /// How long a cluster partition's lease outlives its holder; whole seconds.
    pub lease_ttl: Duration,
    /// Operations run at once against one cluster (one per app at a time regardless).
    pub cluster_concurrency: usize,
    /// Requests per second a sync may send to one cluster (watches excluded), as
    /// Argo CD's `ARGOCD_K8S_CLIENT_QPS`.
    pub cluster_qps: f64,
    /// Requests allowed in a burst above `cluster_qps` (`ARGOCD_K8S_CLIENT_BURST`).
    pub cluster_burst: u32,
    /// Pause between sync waves once a wave is healthy (`ARGOCD_SYNC_WAVE_DELAY`).
    pub wave_delay: Duration,
    /// How long a wave may take to become healthy before the sync fails.
    pub wave_timeout: Duration,
    /// A running operation is terminated this long after its start (Argo CD's
    /// `--sync-timeout`); zero: never.
    pub sync_timeout: Duration,
    /// Bound on one API request; a cluster that does not answer is retried, then failed.
    pub request_timeout: Duration,
    /// Attempts of one request on transport errors, 429 and 5xx before giving up.
    pub request_attempts: u32,
    /// First back-off between attempts; doubles each time.
    pub retry_backoff: Duration,
    /// How long a sync or a live request waits for a cluster's cache to be listed before
    /// the cluster is reported unreachable.
    pub cache_wait: Duration,
    /// How long an operation for a cluster not (yet) seen in KV `clusters` waits for it.
    pub cluster_wait: Duration,
    /// Live changes of one app within this window become one `LiveChanged`.
    pub live_debounce: Duration,
    /// JetStream ack wait of the sync-work consumers; running operations send progress
    /// acks well within it, so only a dead executor's work is redelivered.
    pub ack_wait: Duration,
    /// How often each cluster's kinds are discovered again (new CRDs get watched).
    pub rediscover_every: Duration,
    /// The namespace whose Argo CD objects (Applications, AppProjects, ApplicationSets)
    /// an app deploying to the in-cluster destination registers with gitfleet instead of
    /// applying (App of Apps); Argo CD's `argocd`.
    pub control_plane_namespace: String,
    /// Lua health scripts laid out as Argo CD's `resource_customizations` (read at
    /// start), for the waves' health; `argocd-cm`'s customizations come first.
    pub health_library: gitfleet_lua::Library,
    /// The health checks as `argocd-cm` last said, kept by [`crate::run`]'s watch of it;
    /// `None` until read (or while the watch is down): a sync then reads `argocd-cm`
    /// itself. Shared by every clone of this config.
    pub health_checks: std::sync::Arc<std::sync::RwLock<Option<gitfleet_engine::health::Checks>>>,
}

impl Config {
    pub fn new(member_id: impl Into<String>) -> Self {
        Config {
            member_id: member_id.into(),
            member_ttl: MembershipConfig::DEFAULT_TTL,
            lease_ttl: MembershipConfig::DEFAULT_TTL,
            cluster_concurrency: 4,
            cluster_qps: 50.0,
            cluster_burst: 100,
            wave_delay: Duration::from_secs(2),
            wave_timeout: Duration::from_secs(300),
            sync_timeout: Duration::ZERO,
            request_timeout: Duration::from_secs(30),
            request_attempts: 3,
            retry_backoff: Duration::from_millis(500),
            cache_wait: Duration::from_secs(30),
            cluster_wait: Duration::from_secs(10),
            live_debounce: Duration::from_millis(100),
            ack_wait: Duration::from_secs(60),
            rediscover_every: Duration::from_secs(60),
            control_plane_namespace: "argocd".to_owned(),
            health_library: gitfleet_lua::Library::default(),
            health_checks: std::sync::Arc::default(),
        }
    }
}
