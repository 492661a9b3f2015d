//! One reconciliation of one app: resolve the target revision, render it, read the live
//! resources, compare, write the status when it changed, and start a sync when one was
//! requested or automated sync calls for it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use async_nats::jetstream::kv;
use bytes::Bytes;
use gitfleet_bus::control_plane::{ControlPlane, is_in_cluster};
use gitfleet_bus::{Bus, Owned, encode_reply, partition as partition_of, subject_token};
use gitfleet_engine::ResourceRef;
use gitfleet_engine::app::{self, Comparison};
use gitfleet_engine::control_plane::ControlPlaneKind;
use gitfleet_engine::health::Checks;
use gitfleet_engine::project::{ProjectRules, Violation, destination_of};
use gitfleet_engine::sync::{builtin_scope, windows};
use gitfleet_messages::{
    AppEvent, AppEventKind, CLUSTER_PARTITIONS, DIFF_WORKERS, ErrorCode, Fencing, Live,
    LiveRequest, Operation, RefSource, RenderRequest, Rendered, Reply, ResolveRequest, Resolved,
    ServiceError, SyncOperation, SyncRequest,
};
use gitfleet_model::{
    AppProject, Application, ApplicationCondition, ApplicationSource, ApplicationStatus, Cluster,
    DEFAULT_PROJECT, HealthStatus, HealthStatusCode, OperationInitiator, OperationPhase,
    RetryStrategy, RevisionHistory, SyncOptions, SyncStatus, SyncStatusCode,
};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::decide;

/// Condition type of every failure to compute the desired or live state, as in Argo CD.
pub const COMPARISON_ERROR: &str = "ComparisonError";
/// Condition type of an app its project does not permit (source, destination, project
/// missing), as in Argo CD: nothing is rendered or synced.
pub const INVALID_SPEC_ERROR: &str = "InvalidSpecError";
/// Condition type of manifests a sync would be refused for (a kind or namespace the
/// project does not permit).
pub const SYNC_ERROR: &str = "SyncError";
/// gitfleet's condition of a sync option Argo CD would not read (misspelt, or not
/// `Key=Value`), in the app's `syncOptions` or a manifest's annotation: said, not fatal;
/// the other options apply.
pub const SYNC_OPTION_WARNING: &str = "SyncOptionWarning";
/// gitfleet's condition of an app whose automated sync waits for the apps it depends on.
pub const DEPENDENCY_WAIT: &str = "WaitingForDependencies";

/// What every reconciliation shares.
pub(crate) struct Shared {
    pub bus: Bus,
    pub config: Config,
    /// The partitions held now and their fencing tokens; checked before every write.
    pub owned: watch::Receiver<Owned>,
    pub status_kv: kv::Store,
    pub ops_kv: kv::Store,
    /// AppProjects, read again when a sync is about to start (windows, rules).
    pub projects_kv: kv::Store,
    /// KV `clusters` by name, kept current by the worker's watch.
    pub clusters: RwLock<HashMap<String, Cluster>>,
    /// KV `projects` by name, compiled, kept current by the worker's watch: what each
    /// comparison checks the app and its manifests against.
    pub projects: RwLock<HashMap<String, Arc<ProjectRules>>>,
    /// Each app's last render of each source (by [`memo_key`]), so a commit that does not
    /// touch the app's path (or a periodic refresh) costs no render.
    pub renders: Mutex<HashMap<String, RenderMemo>>,
    /// The dependencies of every app that names some (`gitfleet.dev/depends-on`), kept
    /// by the worker's watch: what a cycle is looked for in.
    pub depends: RwLock<HashMap<String, Vec<String>>>,
    pub permits: crate::permits::Permits,
    /// Git revisions resolved lately, by repository ([`crate::decide::repo_key`]) and
    /// revision: the commit and when it was learnt (see [`Config::revision_cache`]).
    /// Without it every comparison asked the git watcher: a burst of 10,000 apps asked
    /// 10,000 times for the same branch.
    pub resolved: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Apps a user asked to refresh since their last comparison: their server-side diff
    /// dry runs are made again, not taken from the executor's cache (Argo CD's rule).
    pub refreshed: Mutex<std::collections::HashSet<String>>,
    /// App of Apps: the control-plane objects (Applications, AppProjects,
    /// ApplicationSets) each app's syncs wrote, by the app's instance name (their
    /// tracking annotation names it), kept by the worker's watches: what a parent
    /// compares and prunes, and what its operations tell the executor.
    pub children: RwLock<HashMap<String, BTreeSet<(ControlPlaneKind, String)>>>,
    /// `argocd-cm`'s system-level `ignoreDifferences`, kept by a watch of the key.
    pub system_ignores: RwLock<Arc<Vec<gitfleet_model::ResourceIgnoreDifferences>>>,
    /// The health checks: built-in, `argocd-cm`'s Lua customizations (kept by the same
    /// watch) and the configured script library.
    pub checks: RwLock<Checks>,
}

/// The app a tracking annotation's instance name (`name`, or `namespace_name` for an app
/// outside the control-plane namespace) stands for.
pub(crate) fn app_of_instance(instance: &str) -> &str {
    instance.split_once('_').map_or(instance, |(_, name)| name)
}

impl Shared {
    /// `revision` of Git repository `repo` is at `commit` now (a revision event, or the
    /// git watcher's answer).
    pub fn learn_revision(&self, repo: &str, revision: &str, commit: &str) {
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                revision_key(repo, revision),
                (commit.to_owned(), Instant::now()),
            );
    }

    /// The commit of `revision` of `repo`, when learnt within `revision_cache`.
    fn known_revision(&self, repo: &str, revision: &str) -> Option<String> {
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&revision_key(repo, revision))
            .filter(|(_, at)| at.elapsed() < self.config.revision_cache)
            .map(|(commit, _)| commit.clone())
    }
}

fn revision_key(repo: &str, revision: &str) -> (String, String) {
    (
        crate::decide::repo_key(repo),
        app::revision_or_head(revision).to_owned(),
    )
}

#[derive(Debug, Clone)]
pub(crate) struct RenderMemo {
    pub request: RenderRequest,
    pub manifests: Arc<Vec<Value>>,
    /// What of the repository the render read (empty: unknown).
    pub inputs: Vec<String>,
}

/// The key of source `index` of app `name` among the renders: the name for the first
/// source (`#` is not allowed in an app name, so no key of one app is another's).
pub(crate) fn memo_key(name: &str, index: usize) -> String {
    if index == 0 {
        name.to_owned()
    } else {
        format!("{name}#{index}")
    }
}

/// Forgets every render of app `name`.
pub(crate) fn forget_renders(renders: &mut HashMap<String, RenderMemo>, name: &str) {
    let prefix = format!("{name}#");
    renders.retain(|key, _| key != name && !key.starts_with(&prefix));
}

/// What one app's reconciliations remember between runs while its partition is held.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    /// The status last written, or found in KV when the partition was gained.
    last_status: Option<ApplicationStatus>,
    loaded: bool,
    /// A sync operation enqueued but not yet reported finished in KV `operations`: the
    /// executor may not have picked it up, so KV alone cannot tell it is unfinished.
    inflight: Option<Inflight>,
    /// Waiting for the apps it depends on: looked at again soon, not after a backoff.
    pub waiting: bool,
    /// Looked at again after this at the latest (a self-heal waiting out its backoff).
    pub recheck_after: Option<std::time::Duration>,
}

#[derive(Debug)]
struct Inflight {
    id: String,
    since: Instant,
}

/// A user's sync request waiting for the app's next reconciliation.
#[derive(Debug)]
pub(crate) struct PendingSync {
    pub request: SyncRequest,
    pub reply: Option<async_nats::Subject>,
}

/// The desired and live state of an app, compared.
struct Target {
    commit: String,
    source: ApplicationSource,
    cluster: String,
    desired: Vec<Value>,
    comparison: Comparison,
    /// Why the project refuses some of the desired objects: no sync starts while any.
    violations: Vec<String>,
}

/// Why the comparison could not be made; the revision when it was resolved.
struct Failed {
    revision: Option<String>,
    error: ServiceError,
    /// The condition type it shows as.
    condition: &'static str,
}

impl Failed {
    fn new(error: ServiceError) -> Self {
        Failed {
            revision: None,
            error,
            condition: COMPARISON_ERROR,
        }
    }
}

impl Shared {
    fn owns(&self, partition: u32) -> bool {
        self.owned.borrow().contains_key(&partition)
    }

    fn system_ignores(&self) -> Arc<Vec<gitfleet_model::ResourceIgnoreDifferences>> {
        self.system_ignores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn checks(&self) -> Checks {
        self.checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Reconciles `app` once. Never fails: what goes wrong becomes a condition or a log line.
/// Returns false when the bus stayed unusable for longer than the calls retry (see
/// [`gitfleet_bus::retry`]), so the status or a sync may not have been written, or when the
/// comparison failed transiently (no renderer answered, one died holding the render, a
/// cluster was unreachable): the worker then runs the app again soon, backing off, rather
/// than at its next periodic refresh.
pub(crate) async fn reconcile(
    shared: &Shared,
    app: &Application,
    partition: u32,
    memo: &mut Memo,
    pending: Vec<PendingSync>,
) -> bool {
    let name = app.metadata.name.as_str();
    let key = subject_token(name);
    // Without the operation, a running sync would look finished and be started again.
    let Ok(op) = read_operation(shared, &key).await else {
        return false;
    };
    if !memo.loaded {
        let Ok(status) = read_status(shared, &key).await else {
            return false;
        };
        memo.last_status = status;
        memo.loaded = true;
    }
    if let Some(inflight) = &memo.inflight {
        let reported = op
            .as_ref()
            .is_some_and(|o| o.id == inflight.id && o.phase.is_completed());
        if reported || inflight.since.elapsed() > shared.config.operation_pickup_timeout {
            memo.inflight = None;
        }
    }

    let outcome = evaluate(shared, app).await;
    let settled = !matches!(&outcome, Err(failed) if failed.error.code.is_transient());
    let waiting = dependencies_wait(shared, app).await;
    memo.waiting = waiting
        .as_ref()
        .is_some_and(|(kind, _)| *kind == DEPENDENCY_WAIT);
    let status = build_status(
        shared,
        app,
        memo.last_status.as_ref(),
        &outcome,
        op.as_ref(),
        waiting.clone(),
    );
    if !shared.owns(partition) {
        return true;
    }
    if !write_status(shared, app, &key, memo, status).await {
        return false;
    }

    let mut busy = op.as_ref().is_some_and(|o| !o.phase.is_completed()) || memo.inflight.is_some();
    for p in pending {
        let result = if p.request.delete_resources {
            delete_resources(shared, app, partition, memo, &outcome, &p.request).await
        } else {
            manual_sync(shared, app, partition, memo, &outcome, &p.request, busy).await
        };
        match &result {
            Ok(id) => {
                busy = true;
                tracing::info!(app = name, operation = %id, "sync requested by user enqueued");
            }
            Err(err) => tracing::info!(app = name, error = %err, "sync request refused"),
        }
        if let Some(reply) = p.reply {
            let body = encode_reply(&Reply::from(result));
            if let Err(err) = shared.bus.client.publish(reply, body).await {
                tracing::warn!(app = name, error = %err, "replying to a sync request");
            }
        }
    }
    if busy {
        return settled;
    }
    let Ok(target) = &outcome else {
        return settled;
    };
    if let Some((_, why)) = &waiting {
        if target.comparison.sync == SyncStatusCode::OutOfSync {
            tracing::debug!(app = name, reason = %why, "auto-sync waits for dependencies");
        }
        return settled;
    }
    let (self_heal_attempts, self_heal_wait) = decide::self_heal(
        op.as_ref(),
        &target.commit,
        &shared.config.self_heal_backoff,
        chrono::Utc::now(),
    );
    memo.recheck_after = None;
    let decision = decide::auto_sync(
        app,
        target.comparison.sync,
        &target.commit,
        &target.comparison.resources,
        op.as_ref(),
        target.desired.len(),
        self_heal_wait,
    );
    match decision {
        Err(reason) => {
            if !self_heal_wait.is_zero() {
                memo.recheck_after = Some(self_heal_wait);
            }
            if app
                .spec
                .sync_policy
                .as_ref()
                .is_some_and(|p| p.is_automated())
                && target.comparison.sync == SyncStatusCode::OutOfSync
            {
                tracing::debug!(app = name, reason = %reason, "skipping auto-sync");
            }
        }
        Ok(()) => {
            let project = match project_allows_sync(shared, app, &target.desired, false).await {
                Ok(project) => project,
                Err(err) => {
                    tracing::info!(app = name, reason = %err, "auto-sync held back");
                    return settled;
                }
            };
            let prune = app
                .spec
                .sync_policy
                .as_ref()
                .and_then(|p| p.automated.as_ref())
                .is_some_and(|a| a.prune);
            // Argo CD retries an automated sync 5 times unless the app says otherwise.
            let retry = app
                .spec
                .sync_policy
                .as_ref()
                .and_then(|p| p.retry.clone())
                .unwrap_or(RetryStrategy {
                    limit: 5,
                    ..RetryStrategy::default()
                });
            let order = Order {
                prune,
                initiated_by: "automated".to_string(),
                retry: Some(retry),
                project: Some(project),
                self_heal_attempts,
                ..Order::of(target)
            };
            match enqueue(shared, app, partition, memo, order).await {
                Ok(id) => {
                    tracing::info!(app = name, operation = %id, revision = %target.commit, "auto-sync enqueued")
                }
                Err(err) => {
                    tracing::warn!(app = name, error = %err, "auto-sync not enqueued");
                    return false;
                }
            }
        }
    }
    true
}

/// Resolve, render, find the cluster, read live, compare.
async fn evaluate(shared: &Shared, app: &Application) -> Result<Target, Failed> {
    let name = &app.metadata.name;
    // A source the project does not permit is not even read: its credentials are not the
    // app's to use.
    let record = cluster_record(shared, app);
    let rules = watched_project(shared, app)
        .and_then(|rules| {
            let violations =
                rules.check_application(app, &record, &shared.config.control_plane_namespace);
            if violations.is_empty() {
                Ok(rules)
            } else {
                Err(violations)
            }
        })
        .map_err(|violations| Failed {
            condition: INVALID_SPEC_ERROR,
            ..Failed::new(ServiceError::invalid(invalid_spec_message(
                app,
                &violations,
            )))
        })?;
    let (commit, source, manifests) = desired_all(shared, app, true).await.map_err(Failed::new)?;
    let failed = |error: ServiceError| Failed {
        revision: Some(commit.clone()),
        ..Failed::new(error)
    };
    let cluster = destination(shared, app).map_err(failed)?;
    let desired = app::prepare_desired(&manifests, app, &shared.config.control_plane_namespace);
    let held = held_live(shared, app, &desired, is_in_cluster(&record))
        .await
        .map_err(|err| failed(err.context("reading the app's control-plane objects")))?;
    let fresh_dry_runs = shared
        .refreshed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name.as_str());
    let mut live: Live = shared
        .bus
        .ask(
            "sync executor",
            shared.bus.topology.live_request_subject(&cluster),
            &LiveRequest {
                app: name.clone(),
                cluster: cluster.clone(),
                server_side_diff: app::server_side_wanted(app, &desired),
                fresh_dry_runs,
                resource_tree: false,
            },
            shared.config.request_timeout,
        )
        .await
        .map_err(|err| {
            failed(err.context(format_args!("reading live state of cluster {cluster}")))
        })?;
    live.resources.extend(held.objects);
    let system_ignores = shared.system_ignores();
    // Server-side diff compares live with the dry runs' answers; a sync applies `desired`.
    let (replaced, server_side_errors) = app::server_side_compared(
        app,
        &desired,
        &live.resources,
        std::mem::take(&mut live.predicted)
            .into_iter()
            .map(gitfleet_messages::DryRunAnswer::into_result),
    );
    let mut comparison = app::compare_with(
        app,
        replaced.as_deref().unwrap_or(&desired),
        &live.resources,
        &shared.checks(),
        &system_ignores,
    );
    comparison.errors.extend(server_side_errors);
    let refused = resource_violations(&rules, &desired, &record);
    // As Argo CD shows them: what the project does not permit has an unknown status.
    for (r, _) in &refused {
        for status in comparison.resources.iter_mut().filter(|s| {
            s.group == r.group && s.kind == r.kind && s.namespace == r.namespace && s.name == r.name
        }) {
            status.status = Some(SyncStatusCode::Unknown);
        }
    }
    Ok(Target {
        commit,
        source,
        cluster,
        desired,
        comparison,
        violations: refused.into_iter().map(|(_, v)| v.to_string()).collect(),
    })
}

/// App of Apps: the control-plane objects an app compares against.
#[derive(Default)]
struct HeldLive {
    objects: Vec<Value>,
}

/// The control-plane objects `app` desires or its syncs wrote, read from KV as live
/// objects (see `gitfleet_bus::control_plane`); none unless it deploys to the in-cluster
/// destination.
async fn held_live(
    shared: &Shared,
    app: &Application,
    desired: &[Value],
    in_cluster: bool,
) -> Result<HeldLive, ServiceError> {
    if !in_cluster {
        return Ok(HeldLive::default());
    }
    let ns = shared.config.control_plane_namespace.as_str();
    let instance = app.instance_name(ns);
    let control_plane = ControlPlane::new(&shared.bus, ns);
    let wanted = control_plane.desired(desired);
    let written = shared
        .children
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&instance)
        .cloned()
        .unwrap_or_default();
    if wanted.is_empty() && written.is_empty() {
        return Ok(HeldLive::default());
    }
    Ok(HeldLive {
        objects: control_plane
            .held(&instance, &wanted, written)
            .await?
            .into_iter()
            .map(|(_, live)| live)
            .collect(),
    })
}

/// The registered cluster `app` deploys to, server and name both known (see
/// [`destination_of`]).
fn cluster_record(shared: &Shared, app: &Application) -> Cluster {
    destination_of(
        app,
        shared
            .clusters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values(),
    )
}

/// The app's project from the watched ones; `default` exists even when not stored.
fn watched_project(
    shared: &Shared,
    app: &Application,
) -> Result<Arc<ProjectRules>, Vec<Violation>> {
    let name = app.spec.project_or_default();
    let projects = shared.projects.read().unwrap_or_else(|e| e.into_inner());
    match projects.get(name) {
        Some(rules) => Ok(rules.clone()),
        None if name == DEFAULT_PROJECT => Ok(Arc::new(ProjectRules::new(
            &AppProject::default_project(&shared.config.control_plane_namespace),
        ))),
        None => Err(vec![Violation::ProjectMissing {
            project: name.to_owned(),
        }]),
    }
}

fn invalid_spec_message(app: &Application, violations: &[Violation]) -> String {
    let reasons: Vec<String> = violations.iter().map(ToString::to_string).collect();
    format!(
        "application spec for {} is invalid: InvalidSpecError: {}",
        app.metadata.name,
        reasons.join("; ")
    )
}

/// The prepared desired objects the project refuses, each with why. A kind whose scope is
/// not built in counts as namespaced when it was given a namespace (see
/// [`app::prepare_desired`]).
fn resource_violations(
    rules: &ProjectRules,
    desired: &[Value],
    cluster: &Cluster,
) -> Vec<(ResourceRef, Violation)> {
    desired
        .iter()
        .filter_map(|obj| {
            let r = ResourceRef::from_object(obj);
            let namespaced = builtin_scope(&r.group, &r.kind).unwrap_or(!r.namespace.is_empty());
            rules
                .resource_permitted(
                    &r.group,
                    &r.kind,
                    &r.name,
                    &r.namespace,
                    namespaced,
                    cluster,
                )
                .err()
                .map(|v| (r, v))
        })
        .collect()
}

/// The cluster `app` deploys to, from the clusters this worker knows.
fn destination(shared: &Shared, app: &Application) -> Result<String, ServiceError> {
    let clusters = shared.clusters.read().unwrap_or_else(|e| e.into_inner());
    app::destination_cluster(app, clusters.values()).map_err(|err| match err {
        app::DestinationError::UnknownServer { .. } => ServiceError::not_found(err.to_string()),
        app::DestinationError::Unset { .. } => ServiceError::invalid(err.to_string()),
    })
}

/// What the app deploys: every source that renders, in order (a `ref`-only source lends
/// its files to the others and renders nothing), each at its target revision, with the
/// commit and source of the first (the app's revision).
async fn desired_all(
    shared: &Shared,
    app: &Application,
    cache: bool,
) -> Result<(String, ApplicationSource, Arc<Vec<Value>>), ServiceError> {
    let name = &app.metadata.name;
    let sources = app.spec.effective_sources();
    if sources.is_empty() {
        return Err(ServiceError::invalid(format!(
            "application {name} has no source"
        )));
    }
    let refs = ref_sources(shared, &sources).await?;
    let mut first: Option<(String, ApplicationSource)> = None;
    let mut parts: Vec<Arc<Vec<Value>>> = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        if RefSource::is_ref_only(source) {
            continue;
        }
        let (commit, manifests) = desired_at(
            shared,
            app,
            index,
            source,
            &source.target_revision,
            &refs,
            cache,
        )
        .await?;
        first.get_or_insert_with(|| (commit, (*source).clone()));
        parts.push(manifests);
    }
    let (commit, source) = first.ok_or_else(|| {
        ServiceError::invalid(format!(
            "application {name}: every source is a ref source, so nothing renders"
        ))
    })?;
    let manifests = if parts.len() == 1 {
        parts.remove(0)
    } else {
        Arc::new(parts.iter().flat_map(|p| p.iter().cloned()).collect())
    };
    Ok((commit, source, manifests))
}

/// The app's `ref` sources at the commits their target revisions resolve to.
async fn ref_sources(
    shared: &Shared,
    sources: &[&ApplicationSource],
) -> Result<Vec<RefSource>, ServiceError> {
    let mut refs = Vec::new();
    for source in sources.iter().filter(|s| !s.ref_name.is_empty()) {
        let commit = resolve(shared, source, &source.target_revision).await?;
        refs.push(RefSource {
            name: source.ref_name.clone(),
            repo: source.repo_url.clone(),
            commit,
        });
    }
    Ok(refs)
}

/// The commit (or chart version) `revision` of `source` resolves to.
async fn resolve(
    shared: &Shared,
    source: &ApplicationSource,
    revision: &str,
) -> Result<String, ServiceError> {
    let revision = app::revision_or_head(revision);
    let repo = &source.repo_url;
    // Git only: a chart's version constraint resolves against its repository's index.
    let git = source.chart.is_empty();
    if git && let Some(commit) = shared.known_revision(repo, revision) {
        return Ok(commit);
    }
    let resolved: Resolved = shared
        .bus
        .ask(
            "git watcher",
            shared.bus.topology.git_resolve_subject(),
            &ResolveRequest {
                chart: source.chart.clone(),
                repo: repo.clone(),
                revision: revision.to_string(),
            },
            shared.config.request_timeout,
        )
        .await
        .map_err(|err| {
            // The git watcher's own messages name the revision; ours say what failed.
            if err.message.contains(revision) {
                err
            } else {
                err.context(format_args!("resolving revision {revision:?} of {repo}"))
            }
        })?;
    if git {
        shared.learn_revision(repo, revision, &resolved.commit);
    }
    Ok(resolved.commit)
}

/// The commit `revision` of source `index` resolves to and the source rendered at it.
/// With `cache`, the source's last render is reused when the request is the same.
async fn desired_at(
    shared: &Shared,
    app: &Application,
    index: usize,
    source: &ApplicationSource,
    revision: &str,
    refs: &[RefSource],
    cache: bool,
) -> Result<(String, Arc<Vec<Value>>), ServiceError> {
    let repo = &source.repo_url;
    let commit = resolve(shared, source, revision).await?;
    let resolved = Resolved { commit };
    let request = RenderRequest::for_source(app, source, &resolved.commit).with_refs(refs.to_vec());
    let key = memo_key(&app.metadata.name, index);
    if cache {
        let renders = shared.renders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(memo) = renders.get(&key).filter(|m| m.request == request) {
            return Ok((resolved.commit, memo.manifests.clone()));
        }
    }
    let rendered: Rendered = shared
        .bus
        .ask(
            "renderer",
            shared.bus.topology.render_subject(),
            &request,
            shared.config.render_timeout,
        )
        .await
        .map_err(|err| {
            if err.code.is_transient() {
                err.context(format_args!(
                    "rendering {} of {repo} at {}",
                    request.source.path, request.commit
                ))
            } else {
                err
            }
        })?;
    let manifests = Arc::new(rendered.manifests);
    let inputs = rendered.inputs;
    if cache {
        shared
            .renders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                RenderMemo {
                    request,
                    manifests: manifests.clone(),
                    inputs,
                },
            );
    }
    Ok((resolved.commit, manifests))
}

/// What [`SYNC_OPTION_WARNING`] says: each sync option of the app or of a desired
/// manifest's `argocd.argoproj.io/sync-options` that Argo CD would not read.
fn unknown_sync_options(app: &Application, desired: &[Value]) -> Vec<String> {
    let known = || gitfleet_model::SYNC_OPTION_KEYS.join(", ");
    let mut out = Vec::new();
    if let Some(policy) = &app.spec.sync_policy {
        for opt in policy.sync_options.unknown() {
            out.push(format!(
                "unknown sync option {opt:?} in spec.syncPolicy.syncOptions (known: {}); ignored, the others apply",
                known()
            ));
        }
    }
    for obj in desired {
        for opt in gitfleet_engine::sync::resource_options(obj).unknown() {
            let r = gitfleet_engine::ResourceRef::from_object(obj);
            out.push(format!(
                "unknown sync option {opt:?} in the {} annotation of {r} (known: {}); ignored, the others apply",
                gitfleet_engine::sync::SYNC_OPTIONS,
                known()
            ));
        }
    }
    out
}

fn build_status(
    shared: &Shared,
    app: &Application,
    previous: Option<&ApplicationStatus>,
    outcome: &Result<Target, Failed>,
    op: Option<&Operation>,
    extra: Option<(&'static str, String)>,
) -> ApplicationStatus {
    let now = now();
    let (resources, sync, revision, health, mut messages) = match outcome {
        Ok(t) => (
            t.comparison.resources.clone(),
            t.comparison.sync,
            t.commit.clone(),
            t.comparison.health,
            t.comparison
                .errors
                .iter()
                .map(|m| (COMPARISON_ERROR, m.clone()))
                .chain(t.violations.iter().map(|m| (SYNC_ERROR, m.clone())))
                .chain(
                    unknown_sync_options(app, &t.desired)
                        .into_iter()
                        .map(|m| (SYNC_OPTION_WARNING, m)),
                )
                .collect(),
        ),
        Err(f) => (
            Vec::new(),
            SyncStatusCode::Unknown,
            f.revision.clone().unwrap_or_default(),
            HealthStatusCode::Unknown,
            vec![(f.condition, f.error.message.clone())],
        ),
    };
    messages.extend(extra);
    // A condition keeps the time it first appeared while it stays the same.
    let conditions = messages
        .into_iter()
        .map(|(type_, message)| {
            let since = previous
                .into_iter()
                .flat_map(|p| &p.conditions)
                .find(|c| c.type_ == type_ && c.message == message)
                .and_then(|c| c.last_transition_time.clone());
            ApplicationCondition {
                type_: type_.to_string(),
                message,
                last_transition_time: Some(since.unwrap_or_else(|| now.clone())),
            }
        })
        .collect();
    ApplicationStatus {
        resources,
        sync: Some(SyncStatus {
            status: sync,
            revision,
            ..SyncStatus::default()
        }),
        health: Some(HealthStatus {
            status: health,
            ..HealthStatus::default()
        }),
        conditions,
        history: history(app, previous, op, &now),
        reconciled_at: Some(now),
        operation_state: op.map(Operation::to_operation_state),
        controller_namespace: Some(shared.config.control_plane_namespace.clone()),
        ..ApplicationStatus::default()
    }
}

/// The app's history with `op` added when it is a sync that succeeded and is not there
/// yet (Argo CD records each successful sync; dry runs and cascade deletes are not
/// syncs of a revision), trimmed to `revisionHistoryLimit` (10), newest last. Every
/// operation is seen completed here before the next is enqueued (both happen in
/// `reconcile`, which reads the operation first), so none is missed; an owner that
/// takes over reads the status back and recognises what is recorded by its start time.
fn history(
    app: &Application,
    previous: Option<&ApplicationStatus>,
    op: Option<&Operation>,
    now: &str,
) -> Vec<RevisionHistory> {
    let mut history = previous.map(|p| p.history.clone()).unwrap_or_default();
    let Some(op) =
        op.filter(|o| o.phase == OperationPhase::Succeeded && !o.dry_run && o.source.is_some())
    else {
        return history;
    };
    let started = Some(op.started_at.clone());
    if history
        .iter()
        .any(|h| h.deploy_started_at == started && h.revision == op.revision)
    {
        return history;
    }
    history.push(RevisionHistory {
        id: history.last().map_or(0, |h| h.id + 1),
        revision: op.revision.clone(),
        source: op.source.clone(),
        deployed_at: op.finished_at.clone().unwrap_or_else(|| now.to_owned()),
        deploy_started_at: started,
        initiated_by: Some(if op.initiated_by == "automated" {
            OperationInitiator {
                automated: true,
                ..OperationInitiator::default()
            }
        } else {
            OperationInitiator {
                username: op.initiated_by.clone(),
                ..OperationInitiator::default()
            }
        }),
    });
    let limit = usize::try_from(app.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let excess = history.len().saturating_sub(limit);
    history.drain(..excess);
    history
}

/// Writes the status unless only `reconciledAt` moved: thousands of apps refreshing
/// every two minutes must not each write a status. False when it could not be written.
async fn write_status(
    shared: &Shared,
    app: &Application,
    key: &str,
    memo: &mut Memo,
    status: ApplicationStatus,
) -> bool {
    let name = app.metadata.name.as_str();
    let strip = |s: &ApplicationStatus| ApplicationStatus {
        reconciled_at: None,
        ..s.clone()
    };
    let previous = memo.last_status.as_ref();
    if previous.is_some_and(|p| strip(p) == strip(&status)) {
        return true;
    }
    let was_out_of_sync = previous
        .and_then(|p| p.sync.as_ref())
        .is_some_and(|s| s.status == SyncStatusCode::OutOfSync);
    let codes = |s: Option<&ApplicationStatus>| {
        s.map(|s| {
            (
                s.sync.as_ref().map(|x| x.status),
                s.health.as_ref().map(|h| (h.status, h.message.clone())),
            )
        })
    };
    let seen_changed = codes(previous) != codes(Some(&status));
    let body = match serde_json::to_vec(&status) {
        Ok(b) => b,
        Err(err) => {
            tracing::error!(app = name, error = %err, "encoding status");
            return true;
        }
    };
    if let Err(err) = shared
        .bus
        .kv_put_durable(&shared.status_kv, key, body.into())
        .await
    {
        tracing::warn!(app = name, error = %err, "writing status");
        return false;
    }
    let sync = status.sync.clone().unwrap_or_default();
    tracing::debug!(app = name, sync = %sync.status, revision = %sync.revision, "status written");
    memo.last_status = Some(status);
    if seen_changed {
        tell_parent(shared, app).await;
    }
    if sync.status == SyncStatusCode::OutOfSync && !was_out_of_sync {
        let event = AppEvent {
            app: name.to_string(),
            kind: AppEventKind::OutOfSync,
            message: format!("application {name} is OutOfSync"),
            revision: sync.revision,
            sync_status: Some(SyncStatusCode::OutOfSync),
            time: now(),
        };
        let subject = shared.bus.topology.event_subject(name);
        let body = serde_json::to_vec(&event).unwrap_or_default();
        if let Err(err) = shared.bus.publish_durable(subject, Bytes::from(body)).await {
            tracing::warn!(app = name, error = %err, "publishing OutOfSync event");
        }
    }
    true
}

/// App of Apps: a child app's sync or health is its parent's live state; the parent (the
/// app its tracking annotation names) is told as an executor tells of a changed object.
async fn tell_parent(shared: &Shared, app: &Application) {
    let Some(parent) = app
        .metadata
        .annotations
        .get(gitfleet_model::TRACKING_ANNOTATION)
        .and_then(|v| gitfleet_model::TrackingId::parse(v))
    else {
        return;
    };
    let parent = app_of_instance(&parent.app).to_owned();
    let subject = shared
        .bus
        .topology
        .live_subject(partition_of(&parent, gitfleet_messages::APP_PARTITIONS));
    let body = serde_json::to_vec(&gitfleet_messages::LiveChanged {
        app: parent.clone(),
    })
    .unwrap_or_default();
    if let Err(err) = shared.bus.client.publish(subject, body.into()).await {
        tracing::debug!(app = %app.metadata.name, %parent, error = %err, "telling the parent app");
    }
}

async fn manual_sync(
    shared: &Shared,
    app: &Application,
    partition: u32,
    memo: &mut Memo,
    outcome: &Result<Target, Failed>,
    request: &SyncRequest,
    busy: bool,
) -> Result<String, ServiceError> {
    let name = &app.metadata.name;
    if busy {
        return Err(ServiceError::conflict(format!(
            "another operation is already in progress for application {name}"
        )));
    }
    let sources = app.spec.effective_sources();
    let rendered: Vec<(usize, &ApplicationSource)> = sources
        .iter()
        .enumerate()
        .filter(|(_, s)| !RefSource::is_ref_only(s))
        .map(|(i, s)| (i, *s))
        .collect();
    let follows_target = request.revision.is_empty()
        || (rendered.len() == 1
            && app::same_revision(&rendered[0].1.target_revision, &request.revision));
    let order = if follows_target {
        let target = outcome.as_ref().map_err(|f| f.error.clone())?;
        Order::of(target)
    } else {
        let &[(index, source)] = rendered.as_slice() else {
            return Err(ServiceError::invalid(format!(
                "application {name}: syncing a revision other than the target revision needs \
                 exactly one source that renders, and it has {}",
                rendered.len()
            )));
        };
        let refs = ref_sources(shared, &sources).await?;
        let (commit, manifests) =
            desired_at(shared, app, index, source, &request.revision, &refs, false).await?;
        Order {
            cluster: destination(shared, app)?,
            commit,
            source: Some(source.clone()),
            desired: app::prepare_desired(&manifests, app, &shared.config.control_plane_namespace),
            ..Order::default()
        }
    };
    let project = project_allows_sync(shared, app, &order.desired, true).await?;
    let order = Order {
        project: Some(project),
        prune: request.prune,
        dry_run: request.dry_run,
        options: request.sync_options.clone(),
        resources: request.resources.clone(),
        initiated_by: request.initiated_by.clone(),
        prune_confirmed: request.prune_confirmed,
        // A user's sync retries as the app says (Argo CD's API server does the same).
        retry: app.spec.sync_policy.as_ref().and_then(|p| p.retry.clone()),
        ..order
    };
    enqueue(shared, app, partition, memo, order).await
}

/// Cascade delete: a sync of nothing with prune, so the executor deletes every resource
/// the app tracks, with the app's PreDelete and PostDelete hooks (Argo CD 3.3) around it
/// when its manifests render. Needs no render (the source may be gone: then no hooks
/// run) and waits for no running operation: executors run an app's operations one after
/// another.
async fn delete_resources(
    shared: &Shared,
    app: &Application,
    partition: u32,
    memo: &mut Memo,
    outcome: &Result<Target, Failed>,
    request: &SyncRequest,
) -> Result<String, ServiceError> {
    let hooks: Vec<Value> = match outcome {
        Ok(target) => target
            .desired
            .iter()
            .filter(|o| gitfleet_engine::sync::is_deletion_hook(o))
            .cloned()
            .collect(),
        Err(failed) => {
            tracing::info!(app = %app.metadata.name, error = %failed.error, "deleting without PreDelete/PostDelete hooks: the manifests do not render");
            Vec::new()
        }
    };
    let order = Order {
        cluster: destination(shared, app)?,
        prune: true,
        desired: hooks,
        deleting: true,
        initiated_by: request.initiated_by.clone(),
        ..Order::default()
    };
    enqueue(shared, app, partition, memo, order).await
}

/// What one operation will do; the app's sync options are added when it is enqueued.
#[derive(Default)]
struct Order {
    cluster: String,
    commit: String,
    source: Option<ApplicationSource>,
    desired: Vec<Value>,
    prune: bool,
    dry_run: bool,
    /// The request's own sync options.
    options: SyncOptions,
    resources: Vec<gitfleet_messages::SyncResource>,
    initiated_by: String,
    /// How a failed run is retried.
    retry: Option<RetryStrategy>,
    /// The project the sync was allowed by, for the executor to check objects against.
    project: Option<AppProject>,
    /// A cascade delete.
    deleting: bool,
    /// A self-heal sync: how many in a row.
    self_heal_attempts: i64,
    /// The user confirmed `Prune=confirm` prunes with the request.
    prune_confirmed: bool,
}

impl Order {
    /// A sync of the compared target: its cluster, commit, source and desired objects.
    fn of(target: &Target) -> Self {
        Order {
            cluster: target.cluster.clone(),
            commit: target.commit.clone(),
            source: Some(target.source.clone()),
            desired: target.desired.clone(),
            ..Order::default()
        }
    }
}

/// Puts a sync operation on the work queue of the executors owning the cluster, fenced
/// with the lease this worker holds on the app's partition.
async fn enqueue(
    shared: &Shared,
    app: &Application,
    partition: u32,
    memo: &mut Memo,
    order: Order,
) -> Result<String, ServiceError> {
    let name = &app.metadata.name;
    let token = shared.owned.borrow().get(&partition).copied();
    let Some(token) = token else {
        return Err(ServiceError::unavailable(format!(
            "partition {partition} of application {name} is no longer owned"
        )));
    };
    // The app's options first, the request's after: the last entry of a key wins.
    let mut sync_options = app
        .spec
        .sync_policy
        .as_ref()
        .map(|p| p.sync_options.clone())
        .unwrap_or_default();
    sync_options.0.extend(order.options.0);
    let op = SyncOperation {
        id: uuid::Uuid::new_v4().to_string(),
        app: name.clone(),
        cluster: order.cluster.clone(),
        revision: order.commit,
        source: order.source,
        desired: order.desired,
        destination_namespace: app.spec.destination.namespace.clone(),
        sync_options,
        prune: order.prune,
        dry_run: order.dry_run,
        resources: order.resources,
        fencing: Fencing {
            group: DIFF_WORKERS.to_string(),
            partition,
            revision: token,
        },
        initiated_by: order.initiated_by,
        requested_at: now(),
        retry: order.retry,
        deleting: order.deleting,
        managed_namespace_metadata: app
            .spec
            .sync_policy
            .as_ref()
            .and_then(|p| p.managed_namespace_metadata.clone()),
        project: order.project.map(|mut p| {
            // Roles (and their token ids) are no business of the executor's.
            p.spec.roles.clear();
            p
        }),
        ignore_differences: app
            .spec
            .ignore_differences
            .iter()
            .chain(shared.system_ignores().iter())
            .cloned()
            .collect(),
        self_heal_attempts: order.self_heal_attempts,
        prune_confirmed: order.prune_confirmed,
        held: shared
            .children
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&app.instance_name(&shared.config.control_plane_namespace))
            .map(|objects| {
                objects
                    .iter()
                    .map(|(kind, name)| gitfleet_messages::HeldObject {
                        kind: kind.kind().to_owned(),
                        name: name.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut op = op;
    // A queued operation rests in its stream: a Secret's values go sealed, for this
    // operation only (the executor opens them).
    if let Some(key) = shared.bus.credentials_key() {
        let context = format!("{}/{}", op.app, op.id);
        gitfleet_bus::sealed::seal_secret_data(key, &mut op.desired, &context);
    }
    let body = serde_json::to_vec(&op).map_err(|err| {
        ServiceError::internal(format!(
            "encoding sync operation of application {name}: {err}"
        ))
    })?;
    let subject = shared
        .bus
        .topology
        .sync_subject(partition_of(&order.cluster, CLUSTER_PARTITIONS));
    // Retried through a server restart: a sync decided and then dropped would only be
    // decided again at the next refresh. Queued once per operation id, however often the
    // publish is retried.
    shared
        .bus
        .publish_durable_once(subject, Bytes::from(body), &op.id)
        .await
        .map_err(|err| {
            ServiceError::new(
                ErrorCode::Unavailable,
                format!("enqueueing sync operation of application {name}: {err}"),
            )
        })?;
    memo.inflight = Some(Inflight {
        id: op.id.clone(),
        since: Instant::now(),
    });
    // The audit trail: every sync, automated or asked for, by whom.
    let record = gitfleet_messages::AuditRecord {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        who: op.initiated_by.clone(),
        resource: "applications".into(),
        action: if op.deleting { "delete" } else { "sync" }.into(),
        object: format!("{}/{name}", app.spec.project_or_default()),
        from: String::new(),
        result: format!("enqueued {}", op.id),
    };
    if let Ok(body) = serde_json::to_vec(&record)
        && let Err(err) = shared
            .bus
            .publish_durable(shared.bus.topology.audit_subject("sync"), Bytes::from(body))
            .await
    {
        tracing::error!(app = %name, error = %err, "audit record of a sync lost");
    }
    Ok(op.id)
}

/// The app's operation; `Err` when the bus could not say.
async fn read_operation(shared: &Shared, key: &str) -> Result<Option<Operation>, ()> {
    match shared.bus.kv_get_durable(&shared.ops_kv, key).await {
        Ok(Some(body)) => Ok(serde_json::from_slice(&body)
            .inspect_err(|err| tracing::warn!(key, error = %err, "unreadable operation"))
            .ok()),
        Ok(None) => Ok(None),
        Err(err) => {
            tracing::warn!(key, error = %err, "reading operation");
            Err(())
        }
    }
}

/// Whether the app's project lets this sync of `desired` start now (`manual`: a user
/// asked): its sync windows, its rules for the app's spec, and for each object; the error
/// says why not. The project is read from KV, not the watch, so a project changed a
/// moment ago holds. Read only when a sync is about to start, so a fleet's periodic
/// refreshes cost no project reads.
async fn project_allows_sync(
    shared: &Shared,
    app: &Application,
    desired: &[Value],
    manual: bool,
) -> Result<AppProject, ServiceError> {
    let project_name = app.spec.project_or_default();
    let body = shared
        .bus
        .kv_get_durable(&shared.projects_kv, &subject_token(project_name))
        .await
        .map_err(|err| {
            ServiceError::unavailable(format!("reading project {project_name:?}: {err}"))
        })?;
    let name = &app.metadata.name;
    let project: AppProject = match body {
        Some(body) => serde_json::from_slice(&body).map_err(|err| {
            ServiceError::invalid(format!("project {project_name:?} cannot be read: {err}"))
        })?,
        None if project_name == DEFAULT_PROJECT => {
            AppProject::default_project(&shared.config.control_plane_namespace)
        }
        None => {
            return Err(ServiceError::invalid(invalid_spec_message(
                app,
                &[Violation::ProjectMissing {
                    project: project_name.to_owned(),
                }],
            )));
        }
    };
    match windows::can_sync(&project.spec.sync_windows, app, manual, chrono::Utc::now()) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ServiceError::new(
                ErrorCode::PermissionDenied,
                format!("cannot sync application {name}: blocked by sync window"),
            ));
        }
        Err(err) => {
            return Err(ServiceError::invalid(format!(
                "cannot sync application {name}: project {project_name:?}: {err}"
            )));
        }
    }
    let rules = ProjectRules::new(&project);
    let cluster = cluster_record(shared, app);
    let spec = rules.check_application(app, &cluster, &shared.config.control_plane_namespace);
    if !spec.is_empty() {
        return Err(ServiceError::new(
            ErrorCode::PermissionDenied,
            format!(
                "cannot sync application {name}: {}",
                invalid_spec_message(app, &spec)
            ),
        ));
    }
    let refused = resource_violations(&rules, desired, &cluster);
    if !refused.is_empty() {
        let reasons: Vec<String> = refused.iter().map(|(_, v)| v.to_string()).collect();
        return Err(ServiceError::new(
            ErrorCode::PermissionDenied,
            format!("cannot sync application {name}: {}", reasons.join("; ")),
        ));
    }
    Ok(project)
}

/// The app's last written status; `Err` when the bus could not say.
async fn read_status(shared: &Shared, key: &str) -> Result<Option<ApplicationStatus>, ()> {
    match shared.bus.kv_get_durable(&shared.status_kv, key).await {
        Ok(Some(body)) => Ok(serde_json::from_slice(&body).ok()),
        Ok(None) => Ok(None),
        Err(err) => {
            tracing::warn!(key, error = %err, "reading status");
            Err(())
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Why automated sync must wait (`WaitingForDependencies`: the apps named in
/// `gitfleet.dev/depends-on` that are not Synced and Healthy, each with what it is) or may
/// never start (`InvalidSpecError`: a dependency cycle, named), or `None`. A dependency's
/// status is read from KV: its owner may be another worker.
async fn dependencies_wait(shared: &Shared, app: &Application) -> Option<(&'static str, String)> {
    let deps = gitfleet_engine::depends::depends_on(app);
    if deps.is_empty() {
        return None;
    }
    let name = &app.metadata.name;
    if deps.iter().any(|d| d == name) {
        return Some((
            INVALID_SPEC_ERROR,
            format!("application {name:?} depends on itself"),
        ));
    }
    let cycle = {
        let edges = shared.depends.read().unwrap_or_else(|e| e.into_inner());
        gitfleet_engine::depends::dependency_cycle(name, &edges)
    };
    if let Some(cycle) = cycle {
        return Some((
            INVALID_SPEC_ERROR,
            format!(
                "dependency cycle: {}; automated sync will not start",
                cycle.join(" -> ")
            ),
        ));
    }
    let mut not_ready = Vec::new();
    for dep in &deps {
        let why = match read_status(shared, &subject_token(dep)).await {
            Ok(Some(status)) => match decide::dependency_ready(&status) {
                Ok(()) => continue,
                Err(why) => why,
            },
            Ok(None) => "not found".to_owned(),
            Err(()) => "status unreadable".to_owned(),
        };
        not_ready.push(format!("{dep} ({why})"));
    }
    (!not_ready.is_empty()).then(|| {
        (
            DEPENDENCY_WAIT,
            format!("waiting for {}", not_ready.join(", ")),
        )
    })
}
