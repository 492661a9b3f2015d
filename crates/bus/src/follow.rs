//! What the services that follow the fleet's state open, written once: a KV bucket's
//! every key then every change, and the revisions stream from a sequence on (reopened by
//! the caller from the sequence after the last event it saw, so nothing published while
//! it was closed is missed).

use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::kv;
use futures::{Stream, StreamExt};

use crate::connect::Bus;
use crate::error::{BusError, Result};
use crate::topology::StreamName;

/// Revision events, in order, from a sequence on.
pub type Revisions = pull::Ordered;

/// Every key of `store`, then every change (a KV watch with history).
pub async fn watch_all(store: &kv::Store) -> Result<kv::Watch> {
    store
        .watch_with_history(">")
        .await
        .map_err(|e| BusError::Open {
            what: format!("a watch of kv bucket {}", store.name),
            source: Box::new(e),
        })
}

/// The next item of a stream that may be closed: a closed one never yields, so a
/// `select!` branch on it sleeps until the stream is opened again.
pub async fn next_of<S: Stream + Unpin>(stream: &mut Option<S>) -> Option<S::Item> {
    match stream {
        Some(s) => s.next().await,
        None => futures::future::pending().await,
    }
}

impl Bus {
    /// The sequence the next revision event will get: what a follower starting now reads
    /// from (what happened before is covered by the reconciliation it starts with).
    pub async fn revisions_next_sequence(&self) -> Result<u64> {
        let name = self.topology.stream(StreamName::Revisions);
        let open = |e: Box<dyn std::error::Error + Send + Sync>| BusError::Open {
            what: format!("stream {name}"),
            source: e,
        };
        let mut stream = self
            .js
            .get_stream(&name)
            .await
            .map_err(|e| open(Box::new(e)))?;
        let info = stream.info().await.map_err(|e| open(Box::new(e)))?;
        Ok(info.state.last_sequence + 1)
    }

    /// Revision events from sequence `from` on.
    pub async fn revisions_from(&self, from: u64) -> Result<Revisions> {
        let name = self.topology.stream(StreamName::Revisions);
        let open = |e: Box<dyn std::error::Error + Send + Sync>| BusError::Open {
            what: format!("stream {name}"),
            source: e,
        };
        let stream = self
            .js
            .get_stream(&name)
            .await
            .map_err(|e| open(Box::new(e)))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                max_expires: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| open(Box::new(e)))?;
        consumer.messages().await.map_err(|e| open(Box::new(e)))
    }
}

/// Waits until operation `id` of `app` is completed in KV `operations`, up to `deadline`
/// (`Ok(None)` then): a watch from the current value on, not polling, so an operation
/// queued right behind it, which overwrites the key, cannot hide it. Operation ids are
/// unique, so an earlier operation's value is never taken for it.
pub async fn completed_operation(
    bus: &Bus,
    app: &str,
    id: &str,
    deadline: tokio::time::Instant,
) -> Result<Option<gitfleet_messages::Operation>> {
    let ops = bus.kv(crate::Bucket::Operations).await?;
    let key = crate::subject_token(app);
    let open = |e: Box<dyn std::error::Error + Send + Sync>| BusError::Open {
        what: format!("a watch of the operation of {app:?}"),
        source: e,
    };
    let mut watch = ops
        .watch_with_history(&key)
        .await
        .map_err(|e| open(Box::new(e)))?;
    loop {
        let next = match tokio::time::timeout_at(deadline, watch.next()).await {
            Err(_) => return Ok(None),
            Ok(next) => next,
        };
        let entry = match next {
            Some(Ok(entry)) => entry,
            Some(Err(e)) => return Err(open(Box::new(e))),
            // The watch ended (a reconnect): again from the current value.
            None => {
                watch = ops
                    .watch_with_history(&key)
                    .await
                    .map_err(|e| open(Box::new(e)))?;
                continue;
            }
        };
        if entry.operation != kv::Operation::Put {
            continue;
        }
        let op: gitfleet_messages::Operation =
            bus.decode_document(crate::Bucket::Operations, app, &entry.value)?;
        if op.id == id && op.phase.is_completed() {
            return Ok(Some(op));
        }
    }
}
