//! The one error type of the git-watcher's Git core; messages name the repository by its
//! credential-free URL so they can be logged and published as they are.

use std::time::Duration;

use gitfleet_messages::ErrorCode;

/// `Result` with [`GitError`] as the default error.
pub type Result<T, E = GitError> = std::result::Result<T, E>;

/// Everything that can go wrong between the watcher and a Git repository.
///
/// It is `Clone` because one fetch result is handed to every caller that waited for it;
/// causes from gix are therefore kept as their rendered message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error("revision {revision:?} not found in {repo}")]
    RevisionNotFound { repo: String, revision: String },

    #[error("fetch of {repo} failed: {message}")]
    FetchFailed { repo: String, message: String },

    #[error("fetch of {repo} timed out after {}s", after.as_secs_f64())]
    Timeout { repo: String, after: Duration },

    #[error("invalid repository url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The local mirror could not be created or opened (disk, permissions, corruption).
    #[error("mirror of {repo} at {path}: {message}")]
    Mirror {
        repo: String,
        path: String,
        message: String,
    },

    #[error("path {path:?} not found at {commit} in {repo}")]
    PathNotFound {
        repo: String,
        commit: String,
        path: String,
    },

    #[error("file {path:?} at {commit} in {repo} is {size} bytes, over the limit of {limit}")]
    FileTooLarge {
        repo: String,
        commit: String,
        path: String,
        size: u64,
        limit: u64,
    },

    #[error("directory {path:?} at {commit} in {repo} holds over {limit} bytes")]
    DirectoryTooLarge {
        repo: String,
        commit: String,
        path: String,
        limit: u64,
    },

    #[error("{path:?} at {commit} in {repo} is a symlink to {target:?}, outside the repository")]
    SymlinkOutside {
        repo: String,
        commit: String,
        path: String,
        target: String,
    },

    /// An object the mirror should hold could not be read.
    #[error("reading {what} in {repo}: {message}")]
    Read {
        repo: String,
        what: String,
        message: String,
    },
}

impl GitError {
    /// The contract's code for this error, for answers on the bus.
    pub fn code(&self) -> ErrorCode {
        match self {
            GitError::RevisionNotFound { .. } | GitError::PathNotFound { .. } => {
                ErrorCode::NotFound
            }
            GitError::InvalidUrl { .. }
            | GitError::SymlinkOutside { .. }
            | GitError::FileTooLarge { .. }
            | GitError::DirectoryTooLarge { .. } => ErrorCode::Invalid,
            GitError::FetchFailed { .. } => ErrorCode::Unavailable,
            GitError::Timeout { .. } => ErrorCode::Deadline,
            GitError::Mirror { .. } | GitError::Read { .. } => ErrorCode::Internal,
        }
    }

    /// Whether trying again later can help (network trouble), as opposed to a wrong input.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GitError::FetchFailed { .. } | GitError::Timeout { .. }
        )
    }
}

impl From<GitError> for gitfleet_messages::ServiceError {
    fn from(err: GitError) -> Self {
        gitfleet_messages::ServiceError::new(err.code(), err.to_string())
    }
}
