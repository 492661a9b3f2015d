//! The CLI's errors: one line each, naming what failed; printed as `error: ...`.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the gitfleet server at {server}: {detail}")]
    Connect { server: String, detail: String },
    /// The server's answer, as it worded it (already lowercase and naming the object).
    #[error("{}", .0.message())]
    Rpc(#[from] tonic::Status),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("server sent invalid json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
