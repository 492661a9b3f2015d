//! The bus contract: every message gitfleet's services exchange over NATS, as JSON, and
//! the request/reply subjects that are not streams. Streams, KV buckets and object stores
//! (and the stream subjects) are named in `gitfleet_bus::topology`; what is stored in each
//! is documented here, next to the type stored.
//!
//! Who talks to whom:
//! - git-watcher: the only Git client. Publishes [`RevisionEvent`] on
//!   `Topology::revision_subject(repo)` (stream `revisions`); answers [`ResolveRequest`]
//!   and [`FilesRequest`]; acts at once on [`RefreshRequest`] (`webhook_subject`).
//! - renderer (queue group `renderer`): answers [`RenderRequest`] on `render_subject`,
//!   reading files through [`FilesRequest`].
//! - diff worker: owns apps (partition of the app name, leases in `leases`); writes
//!   `gitfleet_model::ApplicationStatus` to KV `app-status` (key: subject_token(app));
//!   enqueues [`SyncOperation`] on `sync_subject(partition of the cluster name)`.
//! - sync executor: owns clusters the same way; answers [`LiveRequest`] on
//!   [`live_request_subject`] for the clusters it owns; publishes [`LiveChanged`] on
//!   `live_subject(partition of the app name)`; runs [`SyncOperation`]s and writes
//!   [`Operation`] to KV `operations` (key: subject_token(app)); publishes [`AppEvent`].
//! - api gateway: writes `gitfleet_model::Application` (JSON) to KV `applications`,
//!   `gitfleet_model::Cluster` to `clusters`, `gitfleet_model::Repository` to
//!   `repositories` (keys: subject_token(name)); publishes [`RefreshRequest`] and
//!   [`SyncRequest`].
//! - notifier: reads [`AppEvent`]s from stream `events`.

use gitfleet_model::{OperationPhase, SyncStatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer of every request/reply exchange: `{"ok": ...}` or `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply<T> {
    Ok(T),
    Error(String),
}

impl<T> Reply<T> {
    pub fn into_result(self) -> Result<T, String> {
        match self {
            Reply::Ok(t) => Ok(t),
            Reply::Error(e) => Err(e),
        }
    }
}

impl<T, E: std::fmt::Display> From<Result<T, E>> for Reply<T> {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(t) => Reply::Ok(t),
            Err(e) => Reply::Error(e.to_string()),
        }
    }
}

/// A followed (repo, targetRevision) moved to a new commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionEvent {
    pub repo: String,
    pub target_revision: String,
    pub from: Option<String>,
    pub to: String,
    /// Repo-relative paths that changed; `None` when unknown (first sighting): every app
    /// on this repo must re-render.
    pub changed_paths: Option<Vec<String>>,
}

/// "Look again now": from a Git webhook (repo set) or a user's refresh (app set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// Resolve a revision (branch, tag, commit, HEAD) of a repo to a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolveRequest {
    pub repo: String,
    pub revision: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolved {
    pub commit: String,
}

/// The files under `path` at `commit` (large replies travel through the payload store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilesRequest {
    pub repo: String,
    pub commit: String,
    pub path: String,
    pub recurse: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoFile {
    pub path: String,
    /// UTF-8 text; binary files are not manifests and are sent empty with `binary`.
    pub content: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Files {
    pub files: Vec<RepoFile>,
}

/// Render an app source at a commit into manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderRequest {
    pub repo: String,
    pub commit: String,
    pub path: String,
    #[serde(default)]
    pub recurse: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub include: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exclude: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    pub manifests: Vec<Value>,
}

/// The live resources of one app in one cluster (found by tracking annotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveRequest {
    pub app: String,
    /// The cluster's name in KV `clusters` (the destination already resolved).
    pub cluster: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Live {
    pub resources: Vec<Value>,
    /// Namespaces that exist (for CreateNamespace planning).
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// A live object tracked by `app` changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveChanged {
    pub app: String,
}

/// A user's (or the CLI's) request to sync an app now; the owning diff worker turns it
/// into a [`SyncOperation`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    pub app: String,
    #[serde(default)]
    pub prune: bool,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initiated_by: String,
}

/// Proof of ownership carried by an operation: the lease revision of the app's partition.
/// Executors refuse operations whose token is older than the current lease's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fencing {
    pub group: String,
    pub partition: u32,
    pub revision: u64,
}

/// One sync of one app into one cluster: the desired objects, already rendered,
/// namespaced and tracking-annotated by the diff worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperation {
    pub id: String,
    pub app: String,
    pub cluster: String,
    pub revision: String,
    pub desired: Vec<Value>,
    pub destination_namespace: String,
    #[serde(default)]
    pub prune: bool,
    #[serde(default)]
    pub create_namespace: bool,
    #[serde(default)]
    pub dry_run: bool,
    pub fencing: Fencing,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initiated_by: String,
    pub requested_at: String,
}

/// What happened to one resource in a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Synced, SyncFailed, Pruned, PruneSkipped.
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The state of an app's latest operation, in KV `operations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub id: String,
    pub app: String,
    pub phase: OperationPhase,
    #[serde(default)]
    pub message: String,
    pub revision: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub resources: Vec<ResourceResult>,
}

/// Something that happened to an app, for the notifier and the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppEvent {
    pub app: String,
    /// SyncSucceeded, SyncFailed, OutOfSync, HealthChanged...
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<SyncStatusCode>,
    pub time: String,
}

/// Apps are spread over this many partitions (FNV-1a 32 of the name mod P), which diff
/// workers own; clusters likewise over sync executors. Fixed: changing it moves every app.
pub const APP_PARTITIONS: u32 = 64;
pub const CLUSTER_PARTITIONS: u32 = 64;
/// Ownership groups (leases and members are keyed by group).
pub const DIFF_WORKERS: &str = "diff-workers";
pub const SYNC_EXECUTORS: &str = "sync-executors";
/// The cluster `https://kubernetes.default.svc` and `name: in-cluster` resolve to.
pub const IN_CLUSTER: &str = "in-cluster";

/// Request/reply subjects (core NATS, no stream), under the topology prefix.
pub fn git_resolve_subject(prefix: &str) -> String {
    format!("{prefix}.git.resolve")
}

pub fn git_files_subject(prefix: &str) -> String {
    format!("{prefix}.git.files")
}

/// Live-state questions for one cluster; only the executor owning it subscribes.
pub fn live_request_subject(prefix: &str, cluster_token: &str) -> String {
    format!("{prefix}.live-request.{cluster_token}")
}

/// Sync requests from users, for the diff worker owning the app's partition.
pub fn sync_request_subject(prefix: &str, partition: u32) -> String {
    format!("{prefix}.sync-request.{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_tagged_json() {
        let ok: Reply<Resolved> = Reply::Ok(Resolved {
            commit: "abc".into(),
        });
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"ok":{"commit":"abc"}}"#
        );
        let err: Reply<Resolved> = Err::<Resolved, _>("revision \"x\" not found").into();
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"error":"revision \"x\" not found"}"#
        );
        let back: Reply<Resolved> = serde_json::from_str(r#"{"error":"boom"}"#).unwrap();
        assert_eq!(back.into_result(), Err("boom".to_string()));
    }
}
