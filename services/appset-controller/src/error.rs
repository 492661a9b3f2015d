//! Errors that stop the controller. A set's failures never do: they become conditions
//! in its status.

use gitfleet_bus::BusError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("joining the ApplicationSet controller group")]
    Membership(#[source] BusError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("watching {what}")]
    Watch {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
