//! The diff worker: owns a share of the Applications (by partition lease), compares each
//! one's desired state (resolved by the git-watcher, rendered by renderers) with its live
//! state (reported by the sync executor owning its cluster), writes Argo CD's application
//! status to KV `app-status`, and enqueues fenced sync operations for user requests and
//! automated sync.
//!
//! Decisions worth knowing:
//! - An app is acted on only by the holder of its partition's lease; losing the lease
//!   cancels its work at once, gaining it reconciles all its apps.
//! - Manifests are cached per app by their render inputs (commit included); a commit that
//!   touches neither the app's path nor its `manifest-generate-paths` carries the cached
//!   manifests over to the new commit, so it costs no render.
//! - A status is written only when something but `reconciledAt` changed.
//! - Manual sync uses the request's `prune`; automated sync uses `automated.prune`.
//! - Cascade delete is a request like a manual sync (`SyncRequest::delete_resources`): this
//!   worker, the owner, enqueues a fenced sync with no desired objects and prune, even
//!   when the app no longer renders; the gateway then deletes the app.
//! - Every worker keeps every Application in memory (not only its own), so a gained
//!   partition is reconciled at once without reading KV again.
//! - A user's sync request is answered (`Reply<String>`: the operation id, or why not)
//!   after the app's next reconciliation; requests sent while a partition moves are lost.
//!
//! - A multi-source app renders every source but the `ref`-only ones, in order, each
//!   remembered by its own memo; the sources travel whole to the renderer, with the app's
//!   `ref` sources at their commits.
//! - A transient failure (no renderer running; a renderer killed mid-render, heard as
//!   silence within the bus's liveness window; a cluster unreachable) is shown as a
//!   ComparisonError and retried after about `RETRY_AFTER` (jittered), doubling to a
//!   minute while it lasts,
//!   where another renderer of the queue group answers.
//!
//! Not yet: sync retry backoff and selfHeal backoff, label tracking.

pub mod config;
pub mod decide;
pub mod error;
mod permits;
mod reconcile;
mod worker;

pub use config::Config;
pub use error::{Error, Result};
pub use reconcile::{COMPARISON_ERROR, INVALID_SPEC_ERROR, SYNC_ERROR, SYNC_OPTION_WARNING};
pub use worker::{run, start};
