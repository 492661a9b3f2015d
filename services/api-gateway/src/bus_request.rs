//! Request/reply over core NATS with the contract's `Reply<T>` envelope, bounded in time.

use std::time::Duration;

use gitfleet_bus::Bus;
use gitfleet_messages::Reply;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// Asks whoever answers on `subject`; `what` names the question in errors (`render`,
/// `live state of cluster "c1"`).
pub async fn request<Q: Serialize, A: DeserializeOwned>(
    bus: &Bus,
    subject: String,
    question: &Q,
    timeout: Duration,
    what: &str,
) -> Result<A> {
    let body = serde_json::to_vec(question)?;
    let sent =
        tokio::time::timeout(timeout, bus.client.request(subject.clone(), body.into())).await;
    let message = match sent {
        Err(_) => {
            return Err(Error::Timeout(format!(
                "{what}: no answer within {}s on {subject}",
                timeout.as_secs()
            )));
        }
        Ok(Err(err)) if err.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Err(Error::Unavailable(format!(
                "{what}: no service answers on {subject}"
            )));
        }
        Ok(Err(err)) => return Err(Error::Unavailable(format!("{what}: {err}"))),
        Ok(Ok(message)) => message,
    };
    let payload = bus.read_payload(&message).await?;
    let reply: Reply<A> = serde_json::from_slice(&payload).map_err(|e| Error::Corrupt {
        what: format!("reply to {what}"),
        message: e.to_string(),
    })?;
    reply
        .into_result()
        .map_err(|e| Error::Unavailable(format!("{what}: {e}")))
}

use gitfleet_bus::async_nats;
