//! One simulated cluster: its store, its identity (name, token), its run-time faults and
//! the log of every mutating request it served.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::store::{ClusterState, Event};

/// Injected misbehaviour, changeable at run time (admin endpoint or library).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// Added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Uniform extra latency on top of `latency_ms` (0..=jitter), in milliseconds.
    pub latency_jitter_ms: u64,
    /// Fraction (0.0..=1.0) of requests answered with an error instead of being served.
    pub error_rate: f64,
    /// The code those errors carry: 500 or 429 (with Retry-After).
    pub error_code: Option<u16>,
    /// The `Retry-After` those errors (and `rate_limit_qps`'s 429s) carry, in seconds; 1
    /// when unset.
    pub retry_after_seconds: Option<u64>,
    /// Cluster down: the listener is closed (connection refused) and open connections dropped.
    pub down: bool,
    /// Watch streams end after this many seconds.
    pub watch_cut_seconds: Option<u64>,
    /// Requests per second this cluster serves before answering 429.
    pub rate_limit_qps: Option<f64>,
    /// The next this many writes (dry runs aside) are refused as an admission webhook
    /// refuses (400); counts down as they come.
    pub reject_writes: u32,
    /// Mutating admission webhooks (a policy engine's, a sidecar injector's): every write
    /// of their kind, dry runs too, gets their value at their path. They run after field
    /// management, as the API server runs admission after it updates `managedFields` for
    /// an update, patch or apply, so no manager owns what they set.
    pub mutating_webhooks: Vec<MutatingWebhook>,
}

/// One mutating webhook: sets `value` at `pointer` (a JSON pointer; missing maps on the
/// way are made, list items must exist) in every written object of `kind`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct MutatingWebhook {
    pub kind: String,
    pub pointer: String,
    pub value: serde_json::Value,
}

impl MutatingWebhook {
    /// Mutates `obj` if it is of the webhook's kind; a path it cannot follow is left.
    pub(crate) fn mutate(&self, obj: &mut serde_json::Value) {
        if obj["kind"].as_str() != Some(self.kind.as_str()) {
            return;
        }
        let segments: Vec<String> = self
            .pointer
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let Some((last, parents)) = segments.split_last() else {
            return;
        };
        let mut node = obj;
        for seg in parents {
            node = match node {
                serde_json::Value::Array(items) => {
                    match seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        Some(item) => item,
                        None => return,
                    }
                }
                serde_json::Value::Object(map) => map
                    .entry(seg.clone())
                    .or_insert_with(|| serde_json::Value::Object(Default::default())),
                _ => return,
            };
        }
        match node {
            serde_json::Value::Object(map) => {
                map.insert(last.clone(), self.value.clone());
            }
            serde_json::Value::Array(items) => {
                if let Some(item) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    *item = self.value.clone();
                }
            }
            _ => {}
        }
    }
}

/// One mutating request, as the write log records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WriteRecord {
    /// Order of arrival in this cluster, from 0.
    pub seq: u64,
    pub time: String,
    /// create, update, patch, apply, delete, deletecollection.
    pub verb: String,
    /// `deployments.apps`, `configmaps`.
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub field_manager: Option<String>,
    pub dry_run: bool,
    /// Who sent it, as the API server's audit log records it (`userAgent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub code: u16,
}

/// Per-cluster knobs fixed at start.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// How long simulated workloads take to become ready.
    pub ready_delay: Duration,
    /// Events kept for watch resumption; older resourceVersions get 410 Expired.
    pub history_limit: usize,
    /// Run the simulated controllers (off: a bare API server, nothing writes but clients).
    pub controllers: bool,
    /// How often an idle watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Changes a watch may fall behind by before it gets 410 Expired (the capacity of the
    /// cluster's change broadcast, allocated up front: about 40 bytes per slot).
    pub watch_buffer: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            ready_delay: Duration::from_millis(500),
            history_limit: 20_000,
            controllers: true,
            bookmark_interval: Duration::from_secs(5),
            watch_buffer: 4_096,
        }
    }
}

pub struct Cluster {
    pub name: String,
    pub token: String,
    /// Whether this cluster is served over HTTPS (then every request needs the token).
    pub tls: bool,
    /// The CA clients verify the cluster with (HTTPS only): what `kube-root-ca.crt` holds.
    pub ca_pem: Option<String>,
    pub config: ClusterConfig,
    pub state: Mutex<ClusterState>,
    pub events: broadcast::Sender<Arc<Event>>,
    pub faults: watch::Sender<Faults>,
    pub write_log: Mutex<Vec<WriteRecord>>,
    /// Watch streams open right now (tests wait on it instead of sleeping).
    pub(crate) watches: Arc<std::sync::atomic::AtomicUsize>,
    /// Bumped by `compact`: open watches answer it with 410 Expired and end.
    pub(crate) compactions: watch::Sender<u64>,
    pub(crate) rate: Mutex<TokenBucket>,
    /// Requests answered with an injected error (`error_rate`, `rate_limit_qps`) so far.
    pub(crate) injected: std::sync::atomic::AtomicU64,
    /// Wakes the simulated controllers after a write.
    pub(crate) controller_tx: tokio::sync::mpsc::UnboundedSender<crate::controllers::Work>,
}

impl Cluster {
    pub fn faults(&self) -> Faults {
        self.faults.borrow().clone()
    }

    pub fn set_faults(&self, f: Faults) {
        self.faults.send_replace(f);
    }

    /// Requests answered with an injected error (`error_rate`, `rate_limit_qps`) so far.
    pub fn injected_errors(&self) -> u64 {
        self.injected.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether this write is one `reject_writes` refuses (counting it down).
    pub(crate) fn take_rejection(&self) -> bool {
        self.faults.send_if_modified(|f| {
            if f.reject_writes > 0 {
                f.reject_writes -= 1;
                true
            } else {
                false
            }
        })
    }

    pub fn write_log(&self) -> Vec<WriteRecord> {
        self.write_log.lock().clone()
    }

    pub fn clear_write_log(&self) {
        self.write_log.lock().clear();
    }

    pub(crate) fn log_write(&self, mut rec: WriteRecord) {
        let mut log = self.write_log.lock();
        rec.seq = log.len() as u64;
        log.push(rec);
    }

    /// Forgets the event history, as etcd compaction does: open watches get an in-stream
    /// 410 Expired and end, and resuming from any earlier resourceVersion gets 410 too,
    /// so clients must relist.
    pub fn compact(&self) {
        let mut st = self.state.lock();
        st.history.clear();
        // Every resourceVersion a client holds is now older than the oldest resumable one.
        st.next_rv();
        self.compactions.send_modify(|n| *n += 1);
    }

    pub fn active_watches(&self) -> usize {
        self.watches.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn object_count(&self) -> usize {
        self.state.lock().object_count()
    }
}

/// A token bucket for the per-cluster request rate limit.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: std::time::Instant,
}

impl TokenBucket {
    pub(crate) fn new() -> Self {
        TokenBucket {
            tokens: f64::INFINITY,
            last: std::time::Instant::now(),
        }
    }

    /// Takes one token at `qps` (burst of one second's worth); false when empty.
    pub(crate) fn take(&mut self, qps: f64) -> bool {
        let now = std::time::Instant::now();
        let burst = qps.max(1.0);
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * qps).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
