//! The git-watcher's Git core: one bare mirror per repository, revision resolution with
//! Argo CD's rules, changed paths between commits, and the polling decisions built on them.
//!
//! This is the only crate in gitfleet that talks to Git.

pub mod changes;
pub mod error;
pub mod mirror;
pub mod poll;
pub mod resolve;
pub mod url;

pub use changes::{Depth, ReadLimits, RepoFile};
pub use error::{GitError, Result};
pub use mirror::{FetchOutcome, Mirror, Mirrors, MirrorsConfig, RepoCredentials};
pub use poll::{PollSchedule, RevisionChange, Subscription, TickReport, Watcher};
pub use resolve::{ResolvedRevision, RevisionKind};
pub use url::RepoUrl;
