//! Errors as they cross the bus: a code every service and the gateway agree on, the one
//! mapping from codes to gRPC and HTTP statuses, and the one formatter of error chains.

use serde::{Deserialize, Serialize};

/// What kind of failure an answer reports. The caller decides from the code alone whether
/// to retry, show the user their mistake, or report an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// The request is wrong (a bad path, manifest, revision syntax): not worth retrying.
    Invalid,
    /// What the request names does not exist (app, cluster, revision, file).
    NotFound,
    AlreadyExists,
    /// The state changed under the request (an operation already running, a stale token).
    Conflict,
    Unauthenticated,
    PermissionDenied,
    /// No service answered, or it could not reach what it needed: worth retrying.
    Unavailable,
    /// A bounded wait ran out.
    Deadline,
    /// A bug or corrupt data on the answering side.
    Internal,
}

impl ErrorCode {
    /// The gRPC status code (the numbers of `google.rpc.Code`, which `tonic::Code` mirrors).
    pub fn grpc_code(self) -> i32 {
        match self {
            ErrorCode::Invalid => 3,
            ErrorCode::Deadline => 4,
            ErrorCode::NotFound => 5,
            ErrorCode::AlreadyExists => 6,
            ErrorCode::PermissionDenied => 7,
            ErrorCode::Conflict => 9,
            ErrorCode::Internal => 13,
            ErrorCode::Unavailable => 14,
            ErrorCode::Unauthenticated => 16,
        }
    }

    /// The code of a gRPC status number (the inverse of [`ErrorCode::grpc_code`]; codes
    /// gitfleet does not send read as their nearest, unknown ones as Internal).
    pub fn from_grpc_code(code: i32) -> ErrorCode {
        match code {
            3 | 11 => ErrorCode::Invalid,
            4 => ErrorCode::Deadline,
            5 => ErrorCode::NotFound,
            6 => ErrorCode::AlreadyExists,
            7 => ErrorCode::PermissionDenied,
            9 | 10 => ErrorCode::Conflict,
            14 | 8 => ErrorCode::Unavailable,
            16 => ErrorCode::Unauthenticated,
            _ => ErrorCode::Internal,
        }
    }

    /// The HTTP status for REST and webhook answers.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Invalid => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::Conflict => 409,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            ErrorCode::Deadline => 504,
        }
    }

    /// Whether the same request may succeed later without being changed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::Deadline)
    }
}

/// A failed request as its answer carries it: the code, and a message that names the
/// thing at fault (revision, file, cluster) and never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServiceError {}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Invalid, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn deadline(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Deadline, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The same failure, its message led by what was being done (`"rendering apps/web"`).
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        ServiceError {
            code: self.code,
            message: format!("{what}: {}", self.message),
        }
    }
}

/// `err` and its causes as one lowercase line, `outer: inner: innermost`, the house style
/// for messages users read (kube and gix put the useful part, e.g. "connection refused",
/// in the sources); a cause whose text an earlier part already holds is left out.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |text: String| {
        let text = text.trim().trim_end_matches('.');
        if !text.is_empty() && !parts.iter().any(|p| p.contains(text)) {
            let mut chars = text.chars();
            let first = chars
                .next()
                .map(|c| c.to_lowercase().collect::<String>())
                .unwrap_or_default();
            parts.push(first + chars.as_str());
        }
    };
    push(err.to_string());
    let mut next = err.source();
    while let Some(err) = next {
        push(err.to_string());
        next = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_grpc_and_http() {
        assert_eq!(ErrorCode::NotFound.grpc_code(), 5);
        assert_eq!(ErrorCode::NotFound.http_status(), 404);
        assert_eq!(ErrorCode::Unavailable.grpc_code(), 14);
        assert_eq!(ErrorCode::Deadline.http_status(), 504);
        assert!(ErrorCode::Unavailable.is_transient());
        assert!(!ErrorCode::Invalid.is_transient());
    }

    #[test]
    fn grpc_codes_read_back_as_the_codes_they_came_from() {
        for code in [
            ErrorCode::Invalid,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::Conflict,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::Unavailable,
            ErrorCode::Deadline,
            ErrorCode::Internal,
        ] {
            assert_eq!(ErrorCode::from_grpc_code(code.grpc_code()), code);
        }
        assert_eq!(ErrorCode::from_grpc_code(2), ErrorCode::Internal);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("middle: {0}")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn chains_skip_repeated_sources() {
        let err = Outer(Inner(std::io::Error::other("Disk full.")));
        assert_eq!(error_chain(&err), "outer: middle: Disk full");
        let err = Inner(std::io::Error::other("Disk full."));
        assert_eq!(error_chain(&err), "middle: Disk full");
    }
}
