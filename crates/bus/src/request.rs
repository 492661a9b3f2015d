//! Request/reply between services, written once: [`Bus::ask`] sends a question and waits,
//! bounded in time, for a [`Reply`]; [`serve`] answers every question on a subscription
//! with a handler, a bounded number at once. Large bodies go through the payload store
//! both ways, and every failure arrives as a [`ServiceError`] with its code.
//!
//! A replica that takes a question tells the asker every [`PROGRESS_EVERY`] until it
//! answers, so an asker hears within [`LIVENESS`] that a replica died holding its
//! question (core NATS says nothing of it) and can ask again, answered by another.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{HeaderMap, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use gitfleet_messages::{Reply, ServiceError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connect::Bus;

impl Bus {
    /// Sends `question` on `subject` and waits up to `timeout` for the answer. `peer` names
    /// who answers there (`"renderer"`, `"git watcher"`) in the errors of the exchange
    /// itself; an error the peer answered with arrives as the peer wrote it.
    pub async fn ask<Q: Serialize, A: DeserializeOwned>(
        &self,
        peer: &str,
        subject: String,
        question: &Q,
        timeout: Duration,
    ) -> Result<A, ServiceError> {
        let body = serde_json::to_vec(question).map_err(|err| {
            ServiceError::internal(format!("encoding a question for the {peer}: {err}"))
        })?;
        // Large questions (a sync request carrying manifests) go through the store too.
        let (mut headers, body) = self
            .offload(HeaderMap::new(), body.into())
            .await
            .map_err(|err| ServiceError::unavailable(format!("asking the {peer}: {err}")))?;
        let no_answer = || {
            ServiceError::deadline(format!(
                "no answer from the {peer} on {subject} within {}",
                seconds(timeout)
            ))
        };
        let unavailable = |err: &dyn std::fmt::Display| {
            ServiceError::unavailable(format!("asking the {peer}: {err}"))
        };
        // An inbox of our own rather than the client's shared one: the peer may send
        // progress before its answer, and the client's request call takes only one message.
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|err| unavailable(&err))?;
        headers.insert(PROGRESS_HEADER, PROGRESS_WANTED);
        self.client
            .publish_with_reply_and_headers(subject.clone(), inbox, headers, body)
            .await
            .map_err(|err| unavailable(&err))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let message = loop {
            // A peer that took the question says so every PROGRESS_EVERY; silence longer
            // than LIVENESS means it died holding it, and waiting out `timeout` would only
            // delay the retry that another replica can answer.
            let silence = tokio::time::Instant::now() + LIVENESS;
            let until = silence.min(deadline);
            match tokio::time::timeout_at(until, replies.next()).await {
                Err(_) if until == deadline => return Err(no_answer()),
                Err(_) => {
                    return Err(ServiceError::unavailable(format!(
                        "the {peer} on {subject} went silent for {} (taken for lost mid-answer)",
                        seconds(LIVENESS)
                    )));
                }
                Ok(None) => return Err(unavailable(&"the connection closed")),
                Ok(Some(message)) if message.status == Some(StatusCode::NO_RESPONDERS) => {
                    return Err(ServiceError::unavailable(format!(
                        "no {peer} is running (nothing answers on {subject})"
                    )));
                }
                Ok(Some(message)) if is_progress(&message) => continue,
                Ok(Some(message)) => break message,
            }
        };
        let payload = self.read_payload(&message).await.map_err(|err| {
            ServiceError::unavailable(format!("reading the answer of the {peer}: {err}"))
        })?;
        let reply: Reply<A> = serde_json::from_slice(&payload).map_err(|err| {
            ServiceError::internal(format!("unreadable answer from the {peer}: {err}"))
        })?;
        reply.into_result()
    }

    /// Sends an encoded reply (see [`encode_reply`]) to `reply_to`, through the payload
    /// store when it is too large for one message.
    pub async fn respond(&self, reply_to: async_nats::Subject, body: Bytes) {
        let (headers, body) = match self.offload(HeaderMap::new(), body).await {
            Ok(sent) => sent,
            Err(err) => {
                tracing::warn!(error = %err, "offloading a large reply failed");
                let err = ServiceError::unavailable(format!("storing a large reply: {err}"));
                (HeaderMap::new(), encode_reply::<()>(&Reply::Error(err)))
            }
        };
        if let Err(err) = self
            .client
            .publish_with_headers(reply_to, headers, body)
            .await
        {
            tracing::warn!(error = %err, "sending reply failed");
        }
    }
}

/// `reply` as the bytes sent on the bus.
pub fn encode_reply<T: Serialize>(reply: &Reply<T>) -> Bytes {
    match serde_json::to_vec(reply) {
        Ok(body) => body.into(),
        Err(err) => {
            let err = ServiceError::internal(format!("encoding the reply: {err}"));
            serde_json::to_vec(&Reply::<()>::Error(err))
                .unwrap_or_default()
                .into()
        }
    }
}

/// Answers every question arriving on `subscriber` with `handler` until `shutdown`, at
/// most `max_concurrent` at once; the rest wait their turn, hearing progress. Questions
/// being answered get their answers before this returns; those still waiting at
/// `shutdown` are answered `Unavailable`, so their askers go to another replica.
pub async fn serve<Q, A, F, Fut>(
    bus: Bus,
    subscriber: async_nats::Subscriber,
    max_concurrent: usize,
    shutdown: CancellationToken,
    handler: F,
) where
    Q: DeserializeOwned + Send + 'static,
    A: Serialize + Send + 'static,
    F: Fn(Q) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<A, ServiceError>> + Send + 'static,
{
    serve_encoded(
        bus,
        subscriber,
        max_concurrent,
        shutdown,
        move |question: Q| {
            let handler = handler.clone();
            async move { encode_reply(&Reply::from(handler(question).await)) }
        },
    )
    .await
}

/// [`serve`] for handlers that answer with an already encoded reply (e.g. from a cache
/// of encoded replies).
pub async fn serve_encoded<Q, F, Fut>(
    bus: Bus,
    mut subscriber: async_nats::Subscriber,
    max_concurrent: usize,
    shutdown: CancellationToken,
    handler: F,
) where
    Q: DeserializeOwned + Send + 'static,
    F: Fn(Q) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Bytes> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        while tasks.try_join_next().is_some() {}
        let Some(reply_to) = message.reply.clone() else {
            tracing::debug!(subject = %message.subject, "request without reply subject ignored");
            continue;
        };
        let (bus, handler, permits, shutdown) = (
            bus.clone(),
            handler.clone(),
            permits.clone(),
            shutdown.clone(),
        );
        // Every question is taken at once, so its asker hears progress while it waits for
        // a permit too; the permits still bound the work done at once.
        tasks.spawn(async move {
            let work = async {
                let _permit = tokio::select! {
                    permit = permits.acquire_owned() => permit.expect("semaphore never closed"),
                    // Not started: the asker retries at once instead of waiting for this
                    // replica to drain its queue.
                    _ = shutdown.cancelled() => {
                        return encode_reply::<()>(&Reply::Error(ServiceError::unavailable(
                            format!("shutting down before answering on {}", message.subject),
                        )));
                    }
                };
                match bus.read_payload(&message).await {
                    Ok(body) => match serde_json::from_slice::<Q>(&body) {
                        Ok(question) => handler(question).await,
                        Err(err) => encode_reply::<()>(&Reply::Error(ServiceError::invalid(
                            format!("invalid request on {}: {err}", message.subject),
                        ))),
                    },
                    Err(err) => encode_reply::<()>(&Reply::Error(ServiceError::unavailable(
                        format!("reading the request: {err}"),
                    ))),
                }
            };
            let body = if wants_progress(&message) {
                with_progress(&bus, &reply_to, work).await
            } else {
                work.await
            };
            bus.respond(reply_to, body).await;
        });
    }
    let _ = subscriber.unsubscribe().await;
    while tasks.join_next().await.is_some() {}
}

/// Header on a question whose asker reads progress ([`PROGRESS_WANTED`]) and on each
/// progress message ([`PROGRESS_WORKING`]). Askers that send no such header (a plain
/// `nats request`) get the answer alone.
pub const PROGRESS_HEADER: &str = "Gitfleet-Progress";
const PROGRESS_WANTED: &str = "wanted";
const PROGRESS_WORKING: &str = "working";
/// How often a replica working on (or queueing) a question tells its asker.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Silence after which an asker takes its question for lost: several missed progress
/// messages, so a busy machine is not mistaken for a dead replica.
pub const LIVENESS: Duration = Duration::from_secs(5);

fn progress_header(message: &async_nats::Message) -> Option<&str> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(PROGRESS_HEADER))
        .map(|v| v.as_str())
}

fn wants_progress(message: &async_nats::Message) -> bool {
    progress_header(message) == Some(PROGRESS_WANTED)
}

fn is_progress(message: &async_nats::Message) -> bool {
    progress_header(message) == Some(PROGRESS_WORKING)
}

/// Runs `work`, sending a progress message to `reply_to` every [`PROGRESS_EVERY`] until
/// it is done (none at all for work done sooner).
async fn with_progress(
    bus: &Bus,
    reply_to: &async_nats::Subject,
    work: impl Future<Output = Bytes>,
) -> Bytes {
    let mut work = std::pin::pin!(work);
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        tokio::select! {
            biased;
            body = &mut work => return body,
            _ = ticks.tick() => {
                let mut headers = HeaderMap::new();
                headers.insert(PROGRESS_HEADER, PROGRESS_WORKING);
                if let Err(err) = bus
                    .client
                    .publish_with_headers(reply_to.clone(), headers, Bytes::new())
                    .await
                {
                    tracing::debug!(error = %err, "sending progress failed");
                }
            }
        }
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
