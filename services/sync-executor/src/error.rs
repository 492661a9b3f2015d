//! The executor's one error type: what stops `run` (not what fails one operation, which
//! becomes a failed `Operation` instead).

use gitfleet_bus::BusError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid config: {0}")]
    Config(String),

    #[error(transparent)]
    Bus(#[from] BusError),

    #[error("watching bucket {bucket}")]
    Watch {
        bucket: String,
        #[source]
        source: gitfleet_bus::error::Source,
    },
}
