//! Riding out a server restart: bus calls retried with backoff instead of dropped.
//!
//! The client reconnects by itself, but a restarted nats-server accepts connections
//! before JetStream has recovered its store: until it has, publishes to a stream and KV
//! reads and writes fail with "no stream found", "no responders" or time out. Those
//! failures say the bus is away for a moment, not that the request is wrong, so work
//! that must not be lost (statuses, queued operations, revision events) goes through
//! [`retry`]. Every JetStream call carries its own timeout, so one attempt is bounded.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use async_nats::jetstream::kv;

use crate::backoff::Backoff;
use crate::connect::Bus;
use crate::error::{BusError, Result};

/// How long and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Delay after the first failure; doubled after each further one (with jitter).
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Total time after which the last error is returned.
    pub give_up_after: Duration,
}

impl Retry {
    /// Long enough for a restarted server to recover a large store or a JetStream
    /// cluster to elect new leaders; short enough that a caller stuck behind a bus that
    /// is really gone notices.
    pub const RECOVERY: Retry = Retry {
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        give_up_after: Duration::from_secs(60),
    };
}

impl Default for Retry {
    fn default() -> Self {
        Retry::RECOVERY
    }
}

/// Runs `op` until it succeeds or `policy` gives up, sleeping with exponential backoff
/// between attempts. `what` names the call in the log line of each failure. Only for
/// calls that are safe to repeat (reads, unconditional writes, publishes to streams
/// whose readers tolerate a duplicate).
pub async fn retry<T, E, F, Fut>(what: &str, policy: Retry, mut op: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let deadline = tokio::time::Instant::now() + policy.give_up_after;
    let mut backoff = Backoff::new(policy.first_delay, policy.max_delay);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let err = match op().await {
            Ok(t) => {
                if attempt > 1 {
                    tracing::info!(what, attempt, "bus call succeeded after retrying");
                }
                return Ok(t);
            }
            Err(err) => err,
        };
        let delay = backoff.next_delay();
        let now = tokio::time::Instant::now();
        if now + delay > deadline {
            tracing::warn!(what, attempt, error = %err, "bus call failed, giving up");
            return Err(err);
        }
        // The first failures are expected while a server restarts; say so once.
        if attempt == 1 {
            tracing::info!(what, error = %err, "bus call failed, retrying");
        } else {
            tracing::debug!(what, attempt, error = %err, "bus call failed, retrying");
        }
        tokio::time::sleep(delay).await;
    }
}

impl Bus {
    /// [`Bus::publish_large`], retried through a server restart (see [`retry`]).
    pub async fn publish_durable(&self, subject: impl Into<String>, body: Bytes) -> Result<()> {
        let subject = subject.into();
        retry(&format!("publishing to {subject}"), Retry::RECOVERY, || {
            self.publish_large(subject.clone(), body.clone())
        })
        .await
    }

    /// [`Bus::publish_durable`] of one message per `id`: the stream drops a copy with an id
    /// it holds already (`Nats-Msg-Id`, within the stream's duplicate window, two minutes
    /// by default), so a publish retried after its ack was lost is not queued twice.
    pub async fn publish_durable_once(
        &self,
        subject: impl Into<String>,
        body: Bytes,
        id: &str,
    ) -> Result<()> {
        let subject = subject.into();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        retry(&format!("publishing to {subject}"), Retry::RECOVERY, || {
            self.publish_large_with(subject.clone(), headers.clone(), body.clone())
        })
        .await
    }

    /// Puts `value` under `key`, retried through a server restart; returns the revision.
    pub async fn kv_put_durable(&self, store: &kv::Store, key: &str, value: Bytes) -> Result<u64> {
        retry(
            &format!("writing key {key} in bucket {}", store.name),
            Retry::RECOVERY,
            || async {
                store
                    .put(key, value.clone())
                    .await
                    .map_err(|err| BusError::kv("writing", &store.name, key, err))
            },
        )
        .await
    }

    /// Reads `key`, retried through a server restart; `None` when it does not exist.
    pub async fn kv_get_durable(&self, store: &kv::Store, key: &str) -> Result<Option<Bytes>> {
        retry(
            &format!("reading key {key} in bucket {}", store.name),
            Retry::RECOVERY,
            || async {
                store
                    .get(key)
                    .await
                    .map_err(|err| BusError::kv("reading", &store.name, key, err))
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Retry = Retry {
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        give_up_after: Duration::from_millis(200),
    };

    #[tokio::test]
    async fn retries_until_success() {
        let calls = AtomicU32::new(0);
        let got = retry("test", FAST, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err("no stream found"),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got, Ok(3));
    }

    #[tokio::test]
    async fn gives_up_with_the_last_error() {
        let calls = AtomicU32::new(0);
        let got: Result<(), String> = retry("test", FAST, || async {
            Err(format!("failure {}", calls.fetch_add(1, Ordering::SeqCst)))
        })
        .await;
        let n = calls.load(Ordering::SeqCst);
        assert!(n > 3, "{n} attempts");
        assert_eq!(got, Err(format!("failure {}", n - 1)));
    }
}
