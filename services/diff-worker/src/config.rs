//! The diff worker's settings: who it is, how fast ownership moves, how often apps are
//! looked at again and how long it waits for its peers.

use std::time::Duration;

use gitfleet_bus::MembershipConfig;

#[derive(Debug, Clone)]
pub struct Config {
    /// Unique among live diff workers (a pod name); a restarted worker may reuse it.
    pub member_id: String,
    /// How long a silent worker counts as alive.
    pub member_ttl: Duration,
    /// How long a dead worker's partitions stay blocked: takeover time is about this.
    pub lease_ttl: Duration,
    /// Argo CD's `timeout.reconciliation`: every owned app is compared again this often
    /// even when nothing announced a change (catches missed events and cluster drift).
    pub refresh_interval: Duration,
    /// Up to this much is added to each app's refresh, so apps gained together do not
    /// all refresh together (Argo CD 3.x: 60 s).
    pub refresh_jitter: Duration,
    /// The namespace gitfleet's Applications live in (Argo CD's `argocd`); apps in other
    /// namespaces get `<namespace>_<app>` tracking ids.
    pub control_plane_namespace: String,
    /// For revision resolution and live-state questions.
    pub request_timeout: Duration,
    /// Rendering may run Helm or Kustomize on a cold cache.
    pub render_timeout: Duration,
    /// Apps reconciled at once; one slow app never holds the others back.
    pub max_concurrent_reconciles: usize,
    /// How long a Git revision's resolution is used without asking the git watcher
    /// again. A revision event for it replaces it at once (the git watcher announces
    /// every move it sees); this bounds how stale it can be when one is missed. Argo CD's
    /// repo-server keeps `ls-remote` answers for 3 minutes.
    pub revision_cache: Duration,
    /// An enqueued sync operation the executors never report on is forgotten after this,
    /// so an app whose operation was lost is not blocked forever.
    pub operation_pickup_timeout: Duration,
    /// The wait between self-heal syncs of one revision in a row.
    pub self_heal_backoff: crate::decide::SelfHealBackoff,
    /// Lua health scripts laid out as Argo CD's `resource_customizations` (read at
    /// start); `argocd-cm`'s customizations come first.
    pub health_library: gitfleet_lua::Library,
}

impl Config {
    pub fn new(member_id: impl Into<String>) -> Self {
        Config {
            member_id: member_id.into(),
            member_ttl: MembershipConfig::DEFAULT_TTL,
            lease_ttl: MembershipConfig::DEFAULT_TTL,
            refresh_interval: Duration::from_secs(120),
            refresh_jitter: Duration::from_secs(60),
            control_plane_namespace: "argocd".to_string(),
            request_timeout: Duration::from_secs(10),
            render_timeout: Duration::from_secs(60),
            max_concurrent_reconciles: 32,
            revision_cache: Duration::from_secs(10),
            operation_pickup_timeout: Duration::from_secs(600),
            self_heal_backoff: crate::decide::SelfHealBackoff::ARGO_CD,
            health_library: gitfleet_lua::Library::default(),
        }
    }
}
