//! Errors that stop the diff worker. Failures of one app never do: they become conditions
//! in its status.

use gitfleet_bus::BusError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("joining the diff worker group")]
    Membership(#[source] BusError),
    #[error("opening {what}")]
    Open {
        what: String,
        #[source]
        source: BusError,
    },
    #[error(transparent)]
    Follow(BusError),
    #[error("watching {what}")]
    Watch {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("subscribing to {subject}")]
    Subscribe {
        subject: String,
        #[source]
        source: async_nats::SubscribeError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
