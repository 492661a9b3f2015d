//! One error type for the bus; every variant names the subject, bucket or store that failed.

use std::path::PathBuf;

/// Any error from the NATS client, boxed so the bus does not leak one type per call.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

pub type Result<T, E = BusError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid prefix {prefix:?}: use 1-32 characters of [A-Za-z0-9_-]")]
    InvalidPrefix { prefix: String },

    #[error("invalid bus config: {0}")]
    InvalidConfig(String),

    #[error(transparent)]
    Sealed(#[from] crate::sealed::SealError),

    #[error("invalid server url {url}")]
    InvalidUrl {
        /// Already redacted: user info is replaced.
        url: String,
        #[source]
        source: Source,
    },

    #[error("reading credentials file {path}")]
    CredsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("connecting to {url}")]
    Connect {
        url: String,
        #[source]
        source: Source,
    },

    #[error("ensuring {what}")]
    Ensure {
        what: String,
        #[source]
        source: Source,
    },

    #[error("opening {what}")]
    Open {
        what: String,
        #[source]
        source: Source,
    },

    #[error("publishing to {subject}")]
    Publish {
        subject: String,
        #[source]
        source: Source,
    },

    #[error("{op} key {key} in bucket {bucket}")]
    Kv {
        op: &'static str,
        bucket: String,
        key: String,
        #[source]
        source: Source,
    },

    #[error("watching bucket {bucket}")]
    Watch {
        bucket: String,
        #[source]
        source: Source,
    },

    #[error("{op} object {key} in store {store}")]
    Object {
        op: &'static str,
        store: String,
        key: String,
        #[source]
        source: Source,
    },

    #[error("object {key} in store {store} does not match its content hash")]
    Corrupt { store: String, key: String },
}

impl BusError {
    pub(crate) fn kv(op: &'static str, bucket: &str, key: &str, source: impl Into<Source>) -> Self {
        BusError::Kv {
            op,
            bucket: bucket.to_string(),
            key: key.to_string(),
            source: source.into(),
        }
    }
}
