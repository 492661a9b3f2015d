//! The bus contract: every message gitfleet's services exchange over NATS, as JSON, with
//! the error codes their answers carry. Every subject, stream, KV bucket and object store
//! is named in `gitfleet_bus::topology`; what is stored in each is documented here, next
//! to the type stored.
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
//!   `live_request_subject(cluster)` for the clusters it owns; publishes [`LiveChanged`] on
//!   `live_subject(partition of the app name)`; runs [`SyncOperation`]s and writes
//!   [`Operation`] to KV `operations` (key: subject_token(app)); publishes [`AppEvent`].
//! - api gateway: writes `gitfleet_model::Application` (JSON) to KV `applications`,
//!   `gitfleet_model::Cluster` to `clusters`, `gitfleet_model::Repository` to
//!   `repositories` (keys: subject_token(name)); publishes [`RefreshRequest`] and
//!   [`SyncRequest`].
//! - notifier: reads [`AppEvent`]s from stream `events`.

use gitfleet_model::{
    Application, ApplicationSource, ManagedNamespaceMetadata, OperationPhase, OperationState,
    RetryStrategy, SyncOptions, SyncStatusCode,
};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod error;

pub use error::{ErrorCode, ServiceError, error_chain};

/// The answer of every request/reply exchange: `{"ok": ...}` or
/// `{"error": {"code": "notFound", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply<T> {
    Ok(T),
    Error(ServiceError),
}

impl<T> Reply<T> {
    pub fn into_result(self) -> Result<T, ServiceError> {
        match self {
            Reply::Ok(t) => Ok(t),
            Reply::Error(e) => Err(e),
        }
    }
}

impl<T> From<Result<T, ServiceError>> for Reply<T> {
    fn from(r: Result<T, ServiceError>) -> Self {
        match r {
            Ok(t) => Reply::Ok(t),
            Err(e) => Reply::Error(e),
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

/// Resolve a revision (branch, tag, commit, HEAD) of a Git repo to a commit; with `chart`,
/// a version constraint of a chart in a Helm repository to the newest version it allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolveRequest {
    pub repo: String,
    pub revision: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chart: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolved {
    /// The commit; for a Helm chart, the chart version.
    pub commit: String,
}

/// The files under `path` at `commit` (large replies travel through the payload store).
/// With `chart`, `commit` is a chart version of the Helm repository `repo`, and the reply
/// is the chart's archive, one binary file `<chart>-<version>.tgz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilesRequest {
    pub repo: String,
    pub commit: String,
    pub path: String,
    pub recurse: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chart: String,
    /// With `chart`: send the repository's credentials to an archive URL on another host
    /// too (the source's `helm.passCredentials`, Helm's `--pass-credentials`); otherwise
    /// they go to the repository's own scheme, host and port only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pass_credentials: bool,
}

/// The object ids of `paths` at `commit` (trees for folders, blobs for files), in the
/// order asked: what the renderer keys its results by, so a commit that leaves an app's
/// inputs as they were costs that app no render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeIdsRequest {
    pub repo: String,
    pub commit: String,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeIds {
    /// One per path asked, `""` for a path that is not there.
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoFile {
    pub path: String,
    /// The file's UTF-8 text; for a `binary` file (a chart archive in `charts/`, an
    /// image), its bytes in standard base64. Use [`RepoFile::bytes`].
    pub content: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
    /// For a symlink read as the file it points to: that file's repository path. The
    /// render depends on it too (a commit changing the target leaves the link's folder as
    /// it was).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link: String,
}

impl RepoFile {
    /// A file of these bytes: text when they are UTF-8, else base64 marked `binary`.
    pub fn from_bytes(path: String, bytes: Vec<u8>) -> RepoFile {
        use base64::Engine as _;
        match String::from_utf8(bytes) {
            Ok(content) => RepoFile {
                path,
                content,
                binary: false,
                link: String::new(),
            },
            Err(err) => RepoFile {
                path,
                content: base64::engine::general_purpose::STANDARD.encode(err.as_bytes()),
                binary: true,
                link: String::new(),
            },
        }
    }

    /// The file's bytes (`None` for a binary file whose content is not valid base64).
    pub fn bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        if self.binary {
            base64::engine::general_purpose::STANDARD
                .decode(&self.content)
                .ok()
        } else {
            Some(self.content.as_bytes().to_vec())
        }
    }
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
    /// The repository, as the source names it (`source.repoURL`).
    pub repo: String,
    /// The commit the source's revision resolved to.
    pub commit: String,
    /// The source whole, as the Application writes it: path, and the settings of its tool
    /// (directory, Kustomize, Helm, Jsonnet, plugin). The renderer decides the tool.
    pub source: ApplicationSource,
    /// The Application's name: Helm's default release name, and what plugins see.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_name: String,
    /// The destination namespace: Helm's default release namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The app's `ref` sources at their commits, for `$name/...` paths. Part of the
    /// request, so a commit to a ref source is a new render.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<RefSource>,
    /// `app diff --local --server-side-generate`: every file there is, at its repository
    /// path (below the source's path); rendered from these alone, never from Git, and
    /// never kept by content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_files: Vec<RepoFile>,
}

impl RenderRequest {
    /// The request that renders `source` of `app` at `commit`: the one place an
    /// Application becomes renderer inputs.
    pub fn for_source(app: &Application, source: &ApplicationSource, commit: &str) -> Self {
        RenderRequest {
            repo: source.repo_url.clone(),
            commit: commit.to_string(),
            source: source.clone(),
            app_name: app.metadata.name.clone(),
            namespace: app.spec.destination.namespace.clone(),
            refs: Vec::new(),
            local_files: Vec::new(),
        }
    }

    /// The same request, with the app's `ref` sources it may read (`$name/...`).
    pub fn with_refs(mut self, refs: Vec<RefSource>) -> Self {
        self.refs = refs;
        self
    }
}

/// A source of a multi-source app named by `ref`, at the commit it resolved to: Helm
/// values files and file parameters of the other sources read it as `$name/path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefSource {
    /// The `ref`, without the `$`.
    pub name: String,
    pub repo: String,
    pub commit: String,
}

impl RefSource {
    /// A source that only lends its files to the others (`ref` and no path or chart):
    /// Argo CD renders nothing from it.
    pub fn is_ref_only(source: &ApplicationSource) -> bool {
        !source.ref_name.is_empty() && source.path.is_empty() && source.chart.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    pub manifests: Vec<Value>,
    /// What of the repository the render read: directories (everything below them) and
    /// single files, repository-relative. A commit that changes none of them leaves the
    /// manifests as they are. Empty when unknown: then any change may matter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
}

/// The live resources of one app in one cluster (found by tracking annotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveRequest {
    pub app: String,
    /// The cluster's name in KV `clusters` (the destination already resolved).
    pub cluster: String,
    /// Server-side diff (Argo CD's `ServerSideDiff=true`): desired objects to apply as a
    /// server-side dry run; answered in [`Live::predicted`], in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_side_diff: Vec<Value>,
    /// Make the dry runs again instead of answering from the cache (a user's refresh).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_dry_runs: bool,
    /// Also answer the app's resource tree ([`Live::tree`]): what its objects own, read
    /// from the cluster now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resource_tree: bool,
}

/// One server-side dry run's answer: the object the API server would store, nothing
/// when there is no live object to compare with (no call is made: Argo CD compares a
/// new object plainly), or why the cluster refused it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRunAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DryRunAnswer {
    /// As the engine takes it (`app::server_side_compared`).
    pub fn into_result(self) -> Result<Option<Value>, String> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.predicted),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Live {
    pub resources: Vec<Value>,
    /// Namespaces that exist (for CreateNamespace planning).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The answers to the request's `server_side_diff`, in its order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicted: Vec<DryRunAnswer>,
    /// With `resource_tree`: the app's objects and what they own, as tree nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tree: Vec<gitfleet_model::ResourceNode>,
}

/// A resource action (Argo CD's `ListResourceActions` and `RunResourceActionV2`) on one
/// live object of an app, for the executor owning its cluster (`<p>.action-request.<cluster>`,
/// which only the gateway may publish: it has checked the caller's RBAC and that the
/// object is one of the app's resources). Answered with [`ResourceActions`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceActionRequest {
    pub app: String,
    /// The cluster's name in KV `clusters`.
    pub cluster: String,
    pub resource: SyncResource,
    /// The action to run; `None` lists the actions offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `actionParams`, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// The app's project (its roles left out): every object the action writes must be one
    /// the project permits, as Argo CD's `verifyResourcePermitted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<gitfleet_model::AppProject>,
}

/// The actions offered on an object, or, after a run, what the run wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceActions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ResourceAction>,
    /// `patched GROUP/KIND NAMESPACE/NAME` or `created ...`, one per write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub written: Vec<String>,
}

/// An action a resource offers (Argo CD's `ResourceAction`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAction {
    pub name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub icon_class: String,
    /// The names of the parameters it takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
}

/// A live object tracked by `app` changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveChanged {
    pub app: String,
}

/// A user's (or the CLI's) request to sync an app now, or to delete all its resources
/// (cascade delete); the owning diff worker turns it into a [`SyncOperation`] and answers
/// with the operation's id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    pub app: String,
    #[serde(default)]
    pub prune: bool,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// Selective sync: only these resources. Empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<SyncResource>,
    /// Options for this sync on top of the app's `syncPolicy.syncOptions`
    /// (`argocd app sync --sync-option`).
    #[serde(default, skip_serializing_if = "SyncOptions::is_empty")]
    pub sync_options: SyncOptions,
    /// Cascade delete: prune every resource of the app and apply nothing. Honoured while
    /// the app is being deleted, and even when its source no longer renders.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_resources: bool,
    /// The user confirms, for this sync, the pruning of resources marked `Prune=confirm`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prune_confirmed: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initiated_by: String,
}

/// One resource of a selective sync (`argocd app sync --resource GROUP:KIND:NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResource {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
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
/// namespaced and tracking-annotated by the diff worker, with the settings that shape it
/// whole (the executor derives the engine's plan settings from them in one place).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperation {
    pub id: String,
    pub app: String,
    pub cluster: String,
    /// The commit synced; empty for a cascade delete.
    pub revision: String,
    /// The source rendered at `revision`; `None` for a cascade delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    pub desired: Vec<Value>,
    pub destination_namespace: String,
    /// The app's `syncPolicy.syncOptions` followed by the request's own.
    #[serde(default, skip_serializing_if = "SyncOptions::is_empty")]
    pub sync_options: SyncOptions,
    #[serde(default)]
    pub prune: bool,
    #[serde(default)]
    pub dry_run: bool,
    /// Selective sync: only these resources. Empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<SyncResource>,
    pub fencing: Fencing,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initiated_by: String,
    pub requested_at: String,
    /// How a failed run is retried (Argo CD's `operation.retry`): the app's
    /// `syncPolicy.retry`, for an automated sync Argo CD's `limit: 5` when the app sets
    /// none; `None` never retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
    /// A cascade delete: `desired` holds only the app's PreDelete and PostDelete hooks,
    /// run before and after every tracked resource is deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
    /// `syncPolicy.managedNamespaceMetadata`: with `CreateNamespace=true`, the labels and
    /// annotations the destination namespace is given (and kept at) on every sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
    /// The app's project as the sync was decided (its roles left out): the executor checks
    /// every object against it with the cluster's own discovery, so a custom kind that is
    /// cluster-scoped meets the cluster-scoped lists, before anything is applied. `None`:
    /// not checked (a cascade delete removes only what the app already has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<gitfleet_model::AppProject>,
    /// App of Apps: the control-plane objects (Applications, AppProjects,
    /// ApplicationSets gitfleet keeps itself) the app's syncs wrote, as its diff worker
    /// knows them; the executor reads them live from KV and prunes those no longer desired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldObject>,
    /// The app's `spec.ignoreDifferences`: with `RespectIgnoreDifferences=true` the
    /// fields they cover keep their live values, and `ApplyOutOfSyncOnly` compares as
    /// the app's diff does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<gitfleet_model::ResourceIgnoreDifferences>,
    /// A self-heal sync: how many in a row this one is (see [`Operation::self_heal_attempts`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub self_heal_attempts: i64,
    /// The user confirmed the pruning of resources marked `Prune=confirm` when asking for
    /// this sync: it does not wait for the app's `deletion-approved`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prune_confirmed: bool,
}

/// A control-plane object by kind (`Application`, `AppProject`, `ApplicationSet`) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HeldObject {
    pub kind: String,
    pub name: String,
}

/// Argo CD's `ResultCode`: what a sync did to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultCode {
    Synced,
    SyncFailed,
    Pruned,
    PruneSkipped,
}

impl ResultCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultCode::Synced => "Synced",
            ResultCode::SyncFailed => "SyncFailed",
            ResultCode::Pruned => "Pruned",
            ResultCode::PruneSkipped => "PruneSkipped",
        }
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one resource in a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub status: ResultCode,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The phase the task ran in (`PreSync`, `Sync`, `PostSync`, ...), Argo CD's
    /// `syncPhase`; empty for results not of a task (a prune skipped).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sync_phase: String,
    /// For a hook, the phase it is a hook of (Argo CD's `hookType`); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hook_type: String,
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
    /// Runs retried so far (Argo CD's `operationState.retryCount`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_count: i64,
    /// The source synced (`None` for a cascade delete): what the app's history records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// A dry run changes nothing and is not history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// `automated`, or who asked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initiated_by: String,
    /// Refused by the executor before it did anything, its fencing token not the current
    /// owner's (an operation of a diff worker that lost the app). Not a sync attempt: it
    /// holds back no automated sync of its revision.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    /// While the operation runs: how far its attempt under way got (its `resources` are
    /// that attempt's results so far), so an executor taking the operation over (the one
    /// running it died) resumes there instead of starting again. `None` once it ends, and
    /// while it waits to be retried (a retry starts over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Self-heal syncs of this revision in a row (Argo CD's `selfHealAttemptsCount`): the
    /// next one waits the self-heal backoff of this many attempts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub self_heal_attempts: i64,
}

/// How far a running sync attempt got; see [`Operation::progress`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The last step whose tasks all ran and became healthy; `None` before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<SyncStep>,
}

/// One step of a sync: a wave of a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStep {
    /// `PreSync`, `Sync`, `PostSync`, `PreDelete`, `PostDelete`.
    pub phase: String,
    pub wave: i32,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Operation {
    /// The operation as Argo CD shows it in `status.operationState`.
    pub fn to_operation_state(&self) -> OperationState {
        OperationState {
            operation: Some(serde_json::json!({"sync": {"revision": self.revision}})),
            phase: self.phase,
            message: self.message.clone(),
            sync_result: Some(serde_json::json!({
                "revision": self.revision,
                "resources": self.resources,
            })),
            started_at: Some(self.started_at.clone()),
            finished_at: self.finished_at.clone(),
            retry_count: self.retry_count,
        }
    }
}

/// The kinds of [`AppEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AppEventKind {
    SyncSucceeded,
    SyncFailed,
    OutOfSync,
}

impl AppEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AppEventKind::SyncSucceeded => "SyncSucceeded",
            AppEventKind::SyncFailed => "SyncFailed",
            AppEventKind::OutOfSync => "OutOfSync",
        }
    }
}

impl std::fmt::Display for AppEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audited act, on the audit stream (`<p>.audit.<kind>`): who did what to which
/// object, when, from where, and how it ended. Never carries a secret: objects are names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// RFC 3339 with milliseconds.
    pub at: String,
    /// The subject (`admin`, an SSO user, `proj:<p>:<r>`, `automated`).
    pub who: String,
    /// `applications`, `projects`, `clusters`, ..., or `login`.
    pub resource: String,
    pub action: String,
    /// The RBAC object (`<project>/<app>`, a server URL, an account name).
    pub object: String,
    /// The caller's address, when the act came through the API.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// `allowed`, `denied`, `succeeded`, `failed`, or `enqueued <operation id>`.
    pub result: String,
}

/// Something that happened to an app, for the notifier and the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppEvent {
    pub app: String,
    pub kind: AppEventKind,
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
/// ApplicationSets are spread over this many partitions, which ApplicationSet
/// controllers own (group `APPSET_CONTROLLERS`).
pub const APPSET_PARTITIONS: u32 = 16;
pub const APPSET_CONTROLLERS: &str = "appset-controllers";
/// The cluster `https://kubernetes.default.svc` and `name: in-cluster` resolve to.
pub const IN_CLUSTER: &str = "in-cluster";

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
        let err: Reply<Resolved> =
            Err::<Resolved, _>(ServiceError::not_found("revision \"x\" not found")).into();
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"error":{"code":"notFound","message":"revision \"x\" not found"}}"#
        );
        let back: Reply<Resolved> =
            serde_json::from_str(r#"{"error":{"code":"unavailable","message":"boom"}}"#).unwrap();
        assert_eq!(back.into_result(), Err(ServiceError::unavailable("boom")));
    }

    #[test]
    fn result_codes_and_event_kinds_are_argo_cd_words() {
        assert_eq!(
            serde_json::to_string(&ResultCode::PruneSkipped).unwrap(),
            r#""PruneSkipped""#
        );
        assert_eq!(
            serde_json::to_string(&AppEventKind::SyncSucceeded).unwrap(),
            r#""SyncSucceeded""#
        );
    }
}
