//! The gateway's errors and their codes; the codes map to gRPC and HTTP statuses in one
//! place, `gitfleet_messages::ErrorCode`.

use gitfleet_bus::BusError;
use gitfleet_messages::{ErrorCode, ServiceError};

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
    /// No valid session: no token, or one that is forged, expired or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The document changed under the request: read it again and retry.
    #[error("{0}")]
    Conflict(String),
    /// A bounded wait for another service ran out.
    #[error("{0}")]
    Timeout(String),
    /// Another service answered with an error, or nobody answered a request.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Another service answered with an error (or none answered): its code is kept, so
    /// "not found" two hops away is still NotFound here.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A stored document that does not parse: someone wrote the KV by hand.
    #[error("stored {what} is corrupt: {message}")]
    Corrupt { what: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }

    /// The contract's code for this error; gRPC and HTTP statuses follow from it.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::Invalid,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Error::Timeout(_) => ErrorCode::Deadline,
            Error::Unavailable(_) | Error::Bus(_) => ErrorCode::Unavailable,
            Error::Service(e) => e.code,
            Error::Corrupt { .. } | Error::Io { .. } => ErrorCode::Internal,
        }
    }

    pub fn code(&self) -> tonic::Code {
        tonic::Code::from_i32(self.error_code().grpc_code())
    }

    pub fn http_status(&self) -> axum::http::StatusCode {
        axum::http::StatusCode::from_u16(self.error_code().http_status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
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
