//! Watch streams: one JSON event per line, or Kubernetes' protobuf stream framing (see
//! [`crate::protobuf::watch_frame`]) when `Accept` prefers protobuf; resumable from a
//! resourceVersion while it is in the history, `sendInitialEvents` (WatchList) with its
//! closing bookmark, periodic bookmarks, and 410 Expired sent in-stream so clients relist.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::api::{Params, Target, present};
use crate::cluster::Cluster;
use crate::error::{ApiError, Result};
use crate::protobuf::{self, Encoding};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType, Stored};
use crate::table::TableRequest;

struct Filter {
    t: Target,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Events carry one-row Tables instead of objects (server-side printing).
    table: Option<TableRequest>,
    /// Protobuf frames instead of JSON lines (never with `table`).
    protobuf: bool,
}

impl Filter {
    fn matches(&self, s: &Stored) -> bool {
        (!self.t.rt.namespaced
            || self
                .t
                .namespace
                .as_deref()
                .is_none_or(|ns| s.namespace() == ns))
            && self.labels.matches(&s.value)
            && self.fields.matches(&s.value)
    }

    /// The event this watch sees, if any: objects moving out of the selection are
    /// DELETED for it, objects moving in are ADDED.
    fn view(&self, e: &Event) -> Option<EventType> {
        if e.key != self.t.rt.key() {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
        match e.kind {
            EventType::Added if now => Some(EventType::Added),
            EventType::Deleted if now || before => Some(EventType::Deleted),
            EventType::Modified if now && before => Some(EventType::Modified),
            EventType::Modified if now => Some(EventType::Added),
            EventType::Modified if before => Some(EventType::Deleted),
            _ => None,
        }
    }
}

fn line(kind: &str, f: &Filter, s: &Stored) -> Bytes {
    let t = &f.t;
    if f.protobuf {
        let av = t.rt.api_version();
        let encoded = if s.value["apiVersion"].as_str() == Some(av.as_str()) {
            protobuf::encode(&s.value)
        } else {
            let mut v = s.value.clone();
            v["apiVersion"] = json!(av);
            protobuf::encode(&v)
        };
        return match encoded {
            Some(obj) => Bytes::from(protobuf::watch_frame(kind, &obj)),
            // An object that does not fit its message is an emulator bug: say so in-stream.
            None => error_event(
                f,
                &ApiError::internal(format!(
                    "{} {}/{} cannot be encoded as protobuf",
                    t.rt.kind,
                    s.namespace(),
                    s.name()
                )),
            ),
        };
    }
    let obj = match &f.table {
        Some(tr) => {
            let mut v = s.value.clone();
            v["apiVersion"] = json!(t.rt.api_version());
            Bytes::from(tr.render_event(&t.rt, &v).to_string())
        }
        None => present(&t.rt, s),
    };
    let mut v = Vec::with_capacity(obj.len() + 32);
    v.extend_from_slice(b"{\"type\":\"");
    v.extend_from_slice(kind.as_bytes());
    v.extend_from_slice(b"\",\"object\":");
    v.extend_from_slice(&obj);
    v.extend_from_slice(b"}\n");
    Bytes::from(v)
}

fn bookmark(f: &Filter, rv: u64, initial_end: bool) -> Bytes {
    let t = &f.t;
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": t.rt.kind, "apiVersion": t.rt.api_version(), "metadata": meta});
    if f.protobuf
        && let Some(pb) = protobuf::encode(&obj)
    {
        return Bytes::from(protobuf::watch_frame("BOOKMARK", &pb));
    }
    let ev = json!({"type": "BOOKMARK", "object": obj});
    Bytes::from(format!("{ev}\n"))
}

/// An ERROR event carrying the error's Status.
fn error_event(f: &Filter, e: &ApiError) -> Bytes {
    let st = e.to_status();
    if f.protobuf
        && let Some(pb) = protobuf::encode(&st)
    {
        return Bytes::from(protobuf::watch_frame("ERROR", &pb));
    }
    Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": st})))
}

fn expired(f: &Filter, rv: &str) -> Bytes {
    error_event(
        f,
        &ApiError::expired(format!("too old resource version: {rv}")),
    )
}

/// Starts a watch; the receiver yields the stream's lines until the watch ends.
pub fn start(
    cluster: &Arc<Cluster>,
    t: Target,
    p: &Params,
    table: Option<TableRequest>,
    encoding: Encoding,
) -> Result<mpsc::Receiver<Bytes>> {
    let labels = LabelSelector::parse(p.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(p.get("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let filter = Filter {
        t,
        labels,
        fields,
        protobuf: encoding == Encoding::Protobuf && table.is_none(),
        table,
    };
    let send_initial = p.flag("sendInitialEvents");
    let bookmarks = p.flag("allowWatchBookmarks");
    let rv_param = p.get("resourceVersion").map(String::from);
    let timeout = p
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0);
    let cut = cluster.faults().watch_cut_seconds;
    let limit = match (timeout, cut) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
    .map(Duration::from_secs);

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let st = cluster.state.lock();
    let events = cluster.events.subscribe();
    let mut first: Vec<Bytes> = Vec::new();
    let mut last_rv = st.rv;
    let key = filter.t.rt.key();
    match rv_param.as_deref().filter(|rv| !send_initial && *rv != "0") {
        None => {
            if let Some(map) = st.list(&key) {
                for s in map.values().filter(|s| filter.matches(s)) {
                    first.push(line("ADDED", &filter, s));
                }
            }
            if send_initial {
                first.push(bookmark(&filter, st.rv, true));
            }
        }
        Some(rv) => {
            let n: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?;
            if n < st.oldest_resumable_rv() {
                first.push(expired(&filter, rv));
                drop(st);
                tokio::spawn(async move {
                    for b in first {
                        let _ = tx.send(b).await;
                    }
                });
                return Ok(rx);
            }
            for r in st.history.iter().filter(|r| r.rv > n && r.key == key) {
                let e = r.event();
                if let Some(kind) = filter.view(&e) {
                    first.push(line(kind.as_str(), &filter, &e.object));
                }
            }
            last_rv = st.rv.max(n);
        }
    }
    drop(st);
    let open = WatchGuard::new(cluster.watches.clone());
    let bookmark_every = cluster.config.bookmark_interval;
    let mut compacted = cluster.compactions.subscribe();
    compacted.mark_unchanged();
    tokio::spawn(async move {
        let _open = open;
        let bookmarks = bookmarks.then_some(bookmark_every);
        stream(
            tx, events, compacted, filter, first, last_rv, bookmarks, limit,
        )
        .await
    });
    Ok(rx)
}

/// Counts a watch as open for as long as its stream task lives.
struct WatchGuard(Arc<AtomicUsize>);

impl WatchGuard {
    fn new(n: Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        WatchGuard(n)
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    tx: mpsc::Sender<Bytes>,
    mut events: broadcast::Receiver<Arc<Event>>,
    mut compacted: tokio::sync::watch::Receiver<u64>,
    filter: Filter,
    first: Vec<Bytes>,
    mut last_rv: u64,
    bookmarks: Option<Duration>,
    limit: Option<Duration>,
) {
    let deadline = limit.map(|l| tokio::time::Instant::now() + l);
    let ends = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(ends);
    for b in first {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    let mut tick = tokio::time::interval(bookmarks.unwrap_or(Duration::from_secs(3600)));
    tick.tick().await;
    loop {
        let out = tokio::select! {
            _ = &mut ends => return,
            _ = tx.closed() => return,
            _ = compacted.changed() => {
                let _ = tx.send(expired(&filter, &last_rv.to_string())).await;
                return;
            }
            _ = tick.tick(), if bookmarks.is_some() => Some(bookmark(&filter, last_rv, false)),
            e = events.recv() => match e {
                Ok(e) => {
                    // Subscribed under the store lock: every event here is newer than the snapshot.
                    last_rv = last_rv.max(e.rv);
                    filter.view(&e).map(|kind| line(kind.as_str(), &filter, &e.object))
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // The watcher fell too far behind to be told every change: make it relist.
                    let _ = tx.send(expired(&filter, &last_rv.to_string())).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if let Some(b) = out
            && tx.send(b).await.is_err()
        {
            return;
        }
    }
}
