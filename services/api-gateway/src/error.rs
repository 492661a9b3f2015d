//! The gateway's errors and their one mapping to gRPC status codes (and HTTP, for webhooks).

use gitfleet_bus::BusError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is wrong; the message lists every problem, one per line.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// A bounded wait for another service ran out.
    #[error("{0}")]
    Timeout(String),
    /// Another service answered with an error, or nobody answered a request.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A stored document that does not parse: someone wrote the KV by hand.
    #[error("stored {what} is corrupt: {message}")]
    Corrupt { what: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("grpc server: {0}")]
    Serve(#[source] tonic::transport::Error),
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }

    pub fn code(&self) -> tonic::Code {
        match self {
            Error::InvalidArgument(_) => tonic::Code::InvalidArgument,
            Error::NotFound { .. } => tonic::Code::NotFound,
            Error::AlreadyExists { .. } => tonic::Code::AlreadyExists,
            Error::Timeout(_) => tonic::Code::DeadlineExceeded,
            Error::Unavailable(_) | Error::Bus(_) => tonic::Code::Unavailable,
            Error::Corrupt { .. } | Error::Io { .. } | Error::Serve(_) => tonic::Code::Internal,
        }
    }

    pub fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self.code() {
            tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
            tonic::Code::NotFound => StatusCode::NOT_FOUND,
            tonic::Code::AlreadyExists => StatusCode::CONFLICT,
            tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The one place domain errors become gRPC statuses. Internal failures are logged here
/// with their detail; callers still get the message, which never holds secrets because
/// no error variant is built from one.
impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        let code = err.code();
        if matches!(code, tonic::Code::Internal | tonic::Code::Unavailable) {
            tracing::warn!(error = %err, "request failed");
        }
        tonic::Status::new(code, err.to_string())
    }
}
