//! Request/reply between services, written once: [`Bus::ask`] sends a question and waits,
//! bounded in time, for a [`Reply`]; [`serve`] answers every question on a subscription
//! with a handler, a bounded number at once. Large bodies go through the payload store
//! both ways, and every failure arrives as a [`ServiceError`] with its code.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{HeaderMap, RequestErrorKind};
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
        let (headers, body) = self
            .offload(HeaderMap::new(), body.into())
            .await
            .map_err(|err| ServiceError::unavailable(format!("asking the {peer}: {err}")))?;
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(body)
            .timeout(Some(timeout));
        let no_answer = || {
            ServiceError::deadline(format!(
                "no answer from the {peer} on {subject} within {}",
                seconds(timeout)
            ))
        };
        // The client's own timeout covers the wait; this one also covers a client that is
        // disconnected and would queue the request until it reconnects.
        let answer = tokio::time::timeout(
            timeout + Duration::from_millis(500),
            self.client.send_request(subject.clone(), request),
        )
        .await;
        let message = match answer {
            Err(_) => return Err(no_answer()),
            Ok(Err(err)) => {
                return Err(match err.kind() {
                    RequestErrorKind::NoResponders => ServiceError::unavailable(format!(
                        "no {peer} is running (nothing answers on {subject})"
                    )),
                    RequestErrorKind::TimedOut => no_answer(),
                    _ => ServiceError::unavailable(format!("asking the {peer}: {err}")),
                });
            }
            Ok(Ok(message)) => message,
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
/// most `max_concurrent` at once; the rest wait in the subscription, which is the
/// backpressure (and lets other replicas in a queue group take them). Questions already
/// taken get their answers before this returns.
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
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let bus = bus.clone();
        let handler = handler.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let body = match bus.read_payload(&message).await {
                Ok(body) => match serde_json::from_slice::<Q>(&body) {
                    Ok(question) => handler(question).await,
                    Err(err) => encode_reply::<()>(&Reply::Error(ServiceError::invalid(format!(
                        "invalid request on {}: {err}",
                        message.subject
                    )))),
                },
                Err(err) => encode_reply::<()>(&Reply::Error(ServiceError::unavailable(format!(
                    "reading the request: {err}"
                )))),
            };
            bus.respond(reply_to, body).await;
        });
    }
    let _ = subscriber.unsubscribe().await;
    while tasks.join_next().await.is_some() {}
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
