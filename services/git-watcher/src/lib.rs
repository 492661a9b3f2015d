//! The git-watcher's Git core: one bare mirror per repository, revision resolution with
//! Argo CD's rules, changed paths between commits, and the polling decisions built on them.
//!
//! This is the only crate in gitfleet that talks to Git, and to Helm repositories
//! ([`helm_repo`]: index, version constraints, archives). [`service::run`] puts the core on
//! the bus: it follows the Applications in KV, publishes revision events, acts on webhooks
//! and answers the resolve and files requests.
//!
//! Decisions worth knowing:
//! - Mirrors live in `<root>/<sha1 of the normalized URL>`; spellings of one repository
//!   (`.git` suffix, trailing `/`, case of scheme and host, default port, credentials in the
//!   URL) share one. The path keeps its case, unlike Argo CD's `NormalizeGitURL`: merging two
//!   repositories would be a bug, two mirrors of one only cost disk.
//! - A fetch maps `refs/heads/*` and `refs/tags/*` onto themselves, forced, and deletes the
//!   ones the remote no longer lists (gix has no prune). The remote's `HEAD` target is written
//!   to the mirror's `HEAD`, so the default branch survives restarts.
//! - git:// connections are made here with socket timeouts, http(s) gets a reqwest request
//!   timeout, so a fetch abandoned on timeout also ends its thread.
//! - Credentials go only to http(s), through gix's credentials callback, never in a URL; the
//!   host's credential helpers and prompts are never used. Plain http with credentials is
//!   allowed, as Argo CD allows it.
//! - ssh URLs are fetched through the OpenSSH client, one process per fetch started here
//!   (no shell, no process-wide environment), with the repository's `sshPrivateKey` in a
//!   private temporary file and the host key checked against Argo CD's known hosts file
//!   unless the repository is `insecure` ([`ssh`]).
//! - https fetches present the repository's client certificate, trust the CA certificates
//!   Argo CD's `argocd-tls-certs-cm` holds for the host besides the system's, and skip
//!   verification for `insecure` repositories ([`tls`]).
//! - Short names resolve to a branch before a tag (Argo CD's `ls-remote` order). A commit id
//!   must be in the mirror; commits reachable from no branch or tag are not fetched on demand.
//! - The service's watcher state is owned by one task fed through a channel; commands that
//!   queue while it works are one batch, so a burst of app writes costs one fetch per
//!   repository. A poll in progress delays a webhook until it ends (fetches are bounded by
//!   the fetch timeout).
//! - An app joining an already followed (repo, revision) gets an event with `from: None` and
//!   the last seen commit, without a fetch; a new pair gets a fetch at once.
//! - Requests fetch a mirror this process never fetched, and fetch once more when the
//!   revision is unknown (it may be newer than the last poll) before answering not found.

pub mod changes;
pub mod credentials;
pub mod error;
pub mod files;
pub mod helm_repo;
pub mod mirror;
pub mod oci;
pub mod poll;
pub mod resolve;
pub mod ssh;
pub mod tls;
pub mod url;

pub use credentials::{GitCredentials, RepoCredentials, SshCredentials};
pub use error::{GitError, Result};
pub use files::{Depth, ReadLimits, RepoFile};
pub use mirror::{FetchOutcome, Mirror, Mirrors, MirrorsConfig};
pub use poll::{PollSchedule, RevisionChange, Subscription, TickReport, Watcher, revision_change};
pub use resolve::{ResolvedRevision, RevisionKind, is_commit_prefix};
pub use ssh::SshSettings;
pub use tls::TlsCredentials;
pub use url::RepoUrl;
pub mod service;

pub use service::{Config, Error, run, start};
