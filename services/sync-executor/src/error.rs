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

/// `err` and its sources, `: `-joined, for messages users read (kube's errors put the
/// useful part, e.g. "connection refused", in the sources).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}
