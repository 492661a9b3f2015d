//! Questions to the diff worker's peers over NATS request/reply, each with a timeout: the
//! git-watcher resolves revisions, renderers render, the executor owning a cluster reports
//! an app's live resources. Large answers arrive through the payload store.

use std::time::Duration;

use async_nats::RequestErrorKind;
use gitfleet_bus::Bus;
use gitfleet_messages::Reply;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a question got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer answered with an error; its message is shown as is, since it names the
    /// revision, file or cluster at fault.
    #[error("{0}")]
    Remote(String),
    #[error("no {peer} is listening on {subject}")]
    NoResponders { peer: &'static str, subject: String },
    #[error("no answer from the {peer} within {timeout:?}")]
    Timeout {
        peer: &'static str,
        timeout: Duration,
    },
    #[error("asking the {peer}: {message}")]
    Transport { peer: &'static str, message: String },
    #[error("unreadable answer from the {peer}: {message}")]
    BadReply { peer: &'static str, message: String },
}

/// Sends `request` on `subject` and waits up to `timeout` for a [`Reply`].
pub async fn ask<Req: Serialize, Resp: DeserializeOwned>(
    bus: &Bus,
    peer: &'static str,
    subject: String,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, PeerError> {
    let body = serde_json::to_vec(request).map_err(|err| PeerError::Transport {
        peer,
        message: err.to_string(),
    })?;
    let req = async_nats::Request::new()
        .payload(body.into())
        .timeout(Some(timeout));
    // The client's own timeout covers the wait; this one also covers a disconnected client.
    let answer = tokio::time::timeout(
        timeout + Duration::from_millis(500),
        bus.client.send_request(subject.clone(), req),
    )
    .await;
    let message = match answer {
        Err(_) => return Err(PeerError::Timeout { peer, timeout }),
        Ok(Err(err)) => {
            return Err(match err.kind() {
                RequestErrorKind::NoResponders => PeerError::NoResponders { peer, subject },
                RequestErrorKind::TimedOut => PeerError::Timeout { peer, timeout },
                _ => PeerError::Transport {
                    peer,
                    message: err.to_string(),
                },
            });
        }
        Ok(Ok(message)) => message,
    };
    let payload = bus
        .read_payload(&message)
        .await
        .map_err(|err| PeerError::BadReply {
            peer,
            message: err.to_string(),
        })?;
    let reply: Reply<Resp> =
        serde_json::from_slice(&payload).map_err(|err| PeerError::BadReply {
            peer,
            message: err.to_string(),
        })?;
    reply.into_result().map_err(PeerError::Remote)
}
