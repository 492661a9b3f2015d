//! Running one sync operation against its cluster: plan with the engine over desired and
//! the cache's live objects, then apply (server-side, manager `argocd-controller`, force)
//! and prune wave by wave, waiting for each wave to be healthy (and the wave delay) before
//! the next; the step that only creates the `CreateNamespace` namespace costs no delay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gitfleet_bus::Bus;
use gitfleet_bus::control_plane::{ControlPlane, is_in_cluster};
use gitfleet_engine::ResourceRef;
use gitfleet_engine::control_plane::{self as app_of_apps, ControlPlaneKind};
use gitfleet_engine::health::Checks;
use gitfleet_engine::sync::{self, HookDeletePolicy, SyncPhase, SyncSettings, Task, TaskAction};
use gitfleet_engine::tracking::tracking_id;
use gitfleet_messages::{ResourceResult, ResultCode, SyncOperation};
use gitfleet_model::{HealthStatusCode, OperationPhase};
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy,
    ValidationDirective,
};
use serde_json::Value;

use crate::cache::{Kind, key_of};
use crate::cluster::{CallError, ClusterRuntime};
use crate::journal::Journal;

/// Argo CD's field manager for server-side apply.
pub const FIELD_MANAGER: &str = "argocd-controller";

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub phase: OperationPhase,
    pub message: String,
    pub resources: Vec<ResourceResult>,
}

impl Outcome {
    fn failed(message: impl Into<String>, resources: Vec<ResourceResult>) -> Self {
        Outcome {
            phase: OperationPhase::Failed,
            message: message.into(),
            resources,
        }
    }
}

/// Why a wave could not go on.
enum Stop {
    /// One or more tasks failed; the wave was finished, later waves are skipped.
    Failed(String),
    /// The cluster is unreachable (or a wait ran out): the whole operation fails.
    Abort(String),
    /// A user terminated the operation: nothing more runs, SyncFail hooks neither.
    Terminated,
}

/// Runs `op`; `terminated` (set when a user asks to terminate it, `app terminate-op`) is
/// read between waves: the operation stops there, Failed with Argo CD's message.
pub async fn execute(
    bus: &Bus,
    rt: &ClusterRuntime,
    op: &SyncOperation,
    terminated: &AtomicBool,
    journal: &Journal<'_>,
) -> Outcome {
    if let Err(err) = rt.ensure_reachable(rt.config.cache_wait).await {
        return Outcome::failed(err, Vec::new());
    }
    let held = match Held::read(bus, rt, op).await {
        Ok(held) => held,
        Err(err) => {
            return Outcome::failed(
                format!(
                    "reading the control-plane objects of app {}: {}",
                    op.app, err.message
                ),
                Vec::new(),
            );
        }
    };
    let mut live = rt.cache.app_objects(&op.app);
    live.extend(held.live.values().cloned());
    let diff_options = gitfleet_engine::diff::DiffOptions::of(&op.ignore_differences);
    let desired = match respect_ignored(rt, &held, op, &diff_options) {
        Ok(desired) => desired,
        Err(err) => return Outcome::failed(format!("app {}: {err}", op.app), Vec::new()),
    };
    // The engine's options hold a `&dyn Fn`, which is not `Send`: plan in a plain block.
    let planned = {
        let scope = |group: &str, kind: &str| {
            rt.cache
                .scope(group, kind)
                .or_else(|| sync::builtin_scope(group, kind))
        };
        let settings = settings(op, rt, &scope, journal.started_at());
        sync::plan(&op.app, desired, live, &settings)
    };
    let plan = match planned {
        Ok(p) => p,
        Err(err) => return Outcome::failed(format!("app {}: {err}", op.app), Vec::new()),
    };
    if let Some(refused) = project_refuses(rt, op, &plan) {
        return Outcome::failed(refused, Vec::new());
    }
    if op.sync_options.fail_on_shared_resource()
        && let Some(shared) = shared_resource(rt, &held, &plan)
    {
        return Outcome::failed(format!("Shared resource found: {shared}"), Vec::new());
    }

    // Namespaces this sync creates: a dry run cannot place objects in them yet, which
    // is not an error (Argo CD's dry run tolerates it the same way).
    let creating: Vec<String> = plan
        .tasks()
        .filter(|(_, _, t)| {
            t.action == TaskAction::Apply
                && t.resource.group.is_empty()
                && t.resource.kind == "Namespace"
        })
        .map(|(_, _, t)| t.resource.name.clone())
        .collect();
    let ctx = Ctx {
        rt,
        op,
        creating: &creating,
        held: &held,
    };
    // A run that resumes the operation (the executor running it died) starts from what
    // the earlier run recorded: its results, and the steps and tasks it finished.
    let earlier = journal.earlier();
    let mut results: Vec<ResourceResult> = earlier.results.clone();
    let mut finished = earlier.finished;
    let out_of_sync_only = op.sync_options.apply_out_of_sync_only();
    let waves: Vec<(SyncPhase, i32, Vec<&Task>)> = plan
        .phases
        .iter()
        .filter(|p| p.phase != SyncPhase::SyncFail)
        .flat_map(|p| p.waves.iter().map(move |w| (p.phase, w.wave, &w.tasks)))
        .map(|(phase, wave, tasks)| {
            let tasks: Vec<&Task> = tasks
                .iter()
                .filter(|t| !(out_of_sync_only && in_sync(rt, &held, t, &diff_options)))
                .collect();
            (phase, wave, tasks)
        })
        .filter(|(_, _, tasks)| !tasks.is_empty())
        .collect();
    // Once per operation (a run that resumes it does not dry-run again), and not while a
    // sync window holds it.
    if earlier.results.is_empty() {
        match wait_window(&ctx, journal, &results, finished, terminated).await {
            Ok(()) => {}
            Err(Stop::Terminated) => return Outcome::failed("Operation terminated", results),
            Err(Stop::Failed(m) | Stop::Abort(m)) => return Outcome::failed(m, results),
        }
        if let Err((message, failed)) = dry_run_pass(&ctx, &plan).await {
            return Outcome::failed(message, failed);
        }
    }
    let mut stop = None;
    for (i, (phase, wave, tasks)) in waves.iter().enumerate() {
        if terminated.load(Ordering::SeqCst) {
            stop = Some(Stop::Terminated);
            break;
        }
        let to_run: Vec<&Task> = tasks
            .iter()
            .copied()
            .filter(|t| !earlier.did(*phase, t))
            .collect();
        if to_run.is_empty() && earlier.finished(*phase, *wave) {
            continue;
        }
        if let Err(s) = wait_window(&ctx, journal, &results, finished, terminated).await {
            stop = Some(s);
            break;
        }
        if let Err(s) = wait_confirmed(&ctx, journal, &to_run, &results, finished, terminated).await
        {
            stop = Some(s);
            break;
        }
        tracing::debug!(app = %op.app, cluster = %rt.name, ?phase, wave, tasks = to_run.len(), "running wave");
        if let Err(s) = run_wave(&ctx, *phase, &to_run, &mut results).await {
            stop = Some(s);
            break;
        }
        let has_hooks = tasks.iter().any(|t| t.action == TaskAction::CreateHook);
        let last = i + 1 == waves.len();
        // A hook is created once: an executor taking over from here waits for it.
        if to_run.iter().any(|t| t.action == TaskAction::CreateHook)
            && let Err(m) = journal.record(&results, finished).await
        {
            stop = Some(Stop::Abort(m));
            break;
        }
        // PostDelete hooks run once the app's resources are gone, not just asked to go.
        if op.deleting
            && !op.dry_run
            && !last
            && tasks.iter().any(|t| t.action == TaskAction::Prune)
            && let Err(s) = wait_gone(rt, tasks).await
        {
            stop = Some(s);
            break;
        }
        if op.dry_run || (last && !has_hooks) {
            continue;
        }
        if let Err(s) = wait_healthy(rt, &held, op, tasks, terminated).await {
            stop = Some(s);
            break;
        }
        // A finished step with hooks is recorded, so an executor taking over never runs
        // them again; one of plain applies is only fenced (taken over, it is applied
        // again, which changes nothing): a record costs three bus calls per step. The
        // step that only creates the CreateNamespace namespace is not a step of the
        // app's, and costs nothing.
        if !last && !only_creates_destination_namespace(op, *phase, tasks) {
            let kept = if has_hooks {
                finished = Some((*phase, *wave));
                journal.record(&results, finished).await
            } else {
                journal.check_owner().await
            };
            if let Err(m) = kept {
                stop = Some(Stop::Abort(m));
                break;
            }
        }
        // The delay lets other controllers react to what the wave changed before the next
        // wave's health is read. A step that only created the CreateNamespace namespace
        // changed nothing another controller acts on, and the namespace exists as soon as
        // the apply returns: go on at once. (Deliberately faster than Argo CD, whose
        // `delayBetweenSyncWaves` also sleeps after that PreSync step.)
        if !last
            && !rt.config.wave_delay.is_zero()
            && !only_creates_destination_namespace(op, *phase, tasks)
        {
            tokio::time::sleep(rt.config.wave_delay).await;
        }
    }
    for r in &plan.requires_pruning {
        results.push(result(
            r,
            ResultCode::PruneSkipped,
            "ignored (requires pruning)",
        ));
    }
    for r in &plan.prune_disabled {
        results.push(result(r, ResultCode::PruneSkipped, "ignored (no prune)"));
    }

    let failed = stop.is_some();
    let hooks: Vec<&Task> = plan
        .tasks()
        .filter(|(_, _, t)| t.action == TaskAction::CreateHook)
        .map(|(_, _, t)| t)
        .collect();
    if failed && !matches!(stop, Some(Stop::Abort(_) | Stop::Terminated)) {
        // SyncFail hooks run only when the sync failed, and only while the cluster answers.
        for phase in plan
            .phases
            .iter()
            .filter(|p| p.phase == SyncPhase::SyncFail)
        {
            for w in &phase.waves {
                let tasks: Vec<&Task> = w.tasks.iter().collect();
                let _ = run_wave(&ctx, phase.phase, &tasks, &mut results).await;
            }
        }
    }
    if !op.dry_run && !matches!(stop, Some(Stop::Abort(_) | Stop::Terminated)) {
        let policy = if failed {
            HookDeletePolicy::HookFailed
        } else {
            HookDeletePolicy::HookSucceeded
        };
        // Deletion hooks do not outlive the app (Argo CD's cleanupHooks), and a failed one
        // is deleted so the next attempt creates it again.
        for hook in hooks
            .iter()
            .filter(|t| t.hook_delete_policy.contains(&policy) || op.deleting)
        {
            let _ = remove(&ctx, hook).await;
        }
    }
    // What the plan read differently from the manifests goes with the result either way.
    let noted = |message: String| {
        if plan.warnings.is_empty() {
            message
        } else {
            format!("{message}; {}", plan.warnings.join("; "))
        }
    };
    match stop {
        None => Outcome {
            phase: OperationPhase::Succeeded,
            message: noted("successfully synced (all tasks run)".to_string()),
            resources: results,
        },
        Some(Stop::Failed(m)) | Some(Stop::Abort(m)) => Outcome::failed(noted(m), results),
        Some(Stop::Terminated) => Outcome::failed("Operation terminated", results),
    }
}

/// Why the app's project refuses some object this sync would apply, as Argo CD's
/// permission check before any task runs. Each object's scope comes from the cluster's
/// discovery, else the built-in scopes, else a CustomResourceDefinition in this same sync;
/// a kind of no known scope cannot be checked and is refused (as Argo CD's "unable to
/// verify permissions"), and discovery is asked to run again.
fn project_refuses(
    rt: &ClusterRuntime,
    op: &SyncOperation,
    plan: &sync::SyncPlan,
) -> Option<String> {
    let project = op.project.as_ref()?;
    let rules = gitfleet_engine::project::ProjectRules::new(project);
    let refused: Vec<String> = plan
        .tasks()
        .filter(|(_, _, t)| matches!(t.action, TaskAction::Apply | TaskAction::CreateHook))
        .filter_map(|(_, _, t)| {
            let r = &t.resource;
            let namespaced = rt
                .cache
                .scope(&r.group, &r.kind)
                .or_else(|| sync::builtin_scope(&r.group, &r.kind))
                .or_else(|| defined_scope(&op.desired, &r.group, &r.kind));
            let Some(namespaced) = namespaced else {
                rt.cache.request_rediscovery();
                return Some(format!(
                    "unable to verify permissions of {}:{}: the cluster does not serve the kind",
                    r.group, r.kind
                ));
            };
            rules
                .resource_permitted(
                    &r.group,
                    &r.kind,
                    &r.name,
                    &r.namespace,
                    namespaced,
                    &rt.spec,
                )
                .err()
                .map(|v| v.to_string())
        })
        .collect();
    (!refused.is_empty()).then(|| {
        format!(
            "one or more synchronization tasks are not valid: {}",
            refused.join("; ")
        )
    })
}

/// Whether a CustomResourceDefinition among `desired` defines `group`/`kind` as
/// namespaced; `None` when none defines it.
fn defined_scope(desired: &[serde_json::Value], group: &str, kind: &str) -> Option<bool> {
    desired.iter().find_map(|obj| {
        let spec = obj.get("spec")?;
        let is_crd = obj.get("kind")?.as_str()? == "CustomResourceDefinition";
        (is_crd
            && spec.get("group")?.as_str()? == group
            && spec.get("names")?.get("kind")?.as_str()? == kind)
            .then(|| spec.get("scope").and_then(|s| s.as_str()) != Some("Cluster"))
    })
}

/// The engine's settings for `op`: the one place an operation's fields become a plan's.
fn settings<'a>(
    op: &SyncOperation,
    rt: &ClusterRuntime,
    scope: sync::ScopeFn<'a>,
    started_at: i64,
) -> SyncSettings<'a> {
    let resources = (!op.resources.is_empty()).then(|| {
        op.resources
            .iter()
            .map(|r| ResourceRef {
                group: r.group.clone(),
                version: String::new(),
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            })
            .collect()
    });
    SyncSettings {
        destination_namespace: op.destination_namespace.clone(),
        prune: op.prune,
        options: op.sync_options.clone(),
        namespace_exists: op.destination_namespace.is_empty()
            || rt.cache.has_namespace(&op.destination_namespace),
        resources,
        managed_namespace_metadata: op.managed_namespace_metadata.clone(),
        deleting: op.deleting,
        revision: op.revision.clone(),
        started_at,
        is_namespaced: scope,
    }
}

/// Whether a step consists only of the Namespace apply the engine adds for
/// `CreateNamespace=true` (a PreSync Apply of the destination namespace: user resources
/// are applied in Sync, and PreSync hooks are `CreateHook` tasks).
fn only_creates_destination_namespace(
    op: &SyncOperation,
    phase: SyncPhase,
    tasks: &[&Task],
) -> bool {
    op.sync_options.create_namespace()
        && phase == SyncPhase::PreSync
        && !tasks.is_empty()
        && tasks.iter().all(|t| {
            t.action == TaskAction::Apply
                && t.resource.group.is_empty()
                && t.resource.kind == "Namespace"
                && t.resource.name == op.destination_namespace
        })
}

struct Ctx<'a> {
    rt: &'a ClusterRuntime,
    op: &'a SyncOperation,
    creating: &'a [String],
    held: &'a Held<'a>,
}

/// App of Apps: the control-plane objects of this sync (those its app's syncs wrote, and
/// those it desires), which live in gitfleet's KV, not in the cluster.
struct Held<'a> {
    control_plane: ControlPlane<'a>,
    /// The destination is the in-cluster one: only then are objects control-plane ones.
    in_cluster: bool,
    /// As read when the sync started, by kind and name.
    live: HashMap<(ControlPlaneKind, String), Value>,
    /// The health checks a wave waits on: built-in, `argocd-cm`'s Lua customizations
    /// (the Application one lets a wave wait for its child apps) and the script library.
    checks: Checks,
    /// How long a pruned child app's cascade delete may take.
    delete_timeout: Duration,
}

impl<'a> Held<'a> {
    async fn read(
        bus: &'a Bus,
        rt: &'a ClusterRuntime,
        op: &'a SyncOperation,
    ) -> Result<Held<'a>, gitfleet_messages::ServiceError> {
        let mut held = Held {
            control_plane: ControlPlane::new(bus, &rt.config.control_plane_namespace),
            in_cluster: is_in_cluster(&rt.spec),
            live: HashMap::new(),
            checks: Checks::default(),
            delete_timeout: rt.config.wave_timeout,
        };
        let kept = rt
            .config
            .health_checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        held.checks = match kept {
            Some(checks) => checks,
            None => held.control_plane.checks(&rt.config.health_library).await?,
        };
        if !held.in_cluster {
            return Ok(held);
        }
        let desired = held.control_plane.desired(&op.desired);
        let written: Vec<(ControlPlaneKind, String)> = op
            .held
            .iter()
            .filter_map(|h| {
                let kind = ControlPlaneKind::of(app_of_apps::GROUP, &h.kind)?;
                Some((kind, h.name.clone()))
            })
            .collect();
        if desired.is_empty() && written.is_empty() {
            return Ok(held);
        }
        held.live = held
            .control_plane
            .held(&op.app, &desired, written)
            .await?
            .into_iter()
            .collect();
        Ok(held)
    }

    /// The control-plane kind of `r`, when this sync keeps it in KV.
    fn kind_of(&self, r: &ResourceRef) -> Option<ControlPlaneKind> {
        app_of_apps::kind_of(r, self.in_cluster, self.control_plane.namespace())
    }

    /// `r` as read when the sync started, when it is a control-plane object.
    fn get(&self, r: &ResourceRef) -> Option<Option<&Value>> {
        let kind = self.kind_of(r)?;
        Some(self.live.get(&(kind, r.name.clone())))
    }
}

/// Deletes a task's object: from the cluster, or from KV when it is a control-plane object.
async fn remove(ctx: &Ctx<'_>, task: &Task) -> Result<String, CallError> {
    let Some(kind) = ctx.held.kind_of(&task.resource) else {
        return delete(ctx.rt, ctx.op, task).await;
    };
    ctx.held
        .control_plane
        .remove(
            kind,
            &task.resource.name,
            &format!("app of apps: {}", ctx.op.app),
            ctx.held.delete_timeout,
            ctx.op.dry_run,
        )
        .await
        .map(str::to_owned)
        .map_err(control_plane_error)
}

/// Applies a task's object: to the cluster, or into KV when it is a control-plane object.
async fn put(ctx: &Ctx<'_>, task: &Task) -> Result<String, CallError> {
    let Some(kind) = ctx.held.kind_of(&task.resource) else {
        return apply(ctx.rt, ctx.op, task).await;
    };
    ctx.held
        .control_plane
        .register(kind, &task.object, ctx.op.dry_run)
        .await
        .map(str::to_owned)
        .map_err(control_plane_error)
}

fn control_plane_error(err: gitfleet_messages::ServiceError) -> CallError {
    CallError::Api {
        code: err.code.http_status(),
        message: err.message,
    }
}

async fn run_wave(
    ctx: &Ctx<'_>,
    phase: SyncPhase,
    tasks: &[&Task],
    results: &mut Vec<ResourceResult>,
) -> Result<(), Stop> {
    let (rt, op) = (ctx.rt, ctx.op);
    let mut first_failure: Option<String> = None;
    for task in tasks {
        let outcome = match task.action {
            TaskAction::Apply | TaskAction::CreateHook => match put(ctx, task).await {
                Err(CallError::Api { code: 404, message })
                    if op.dry_run
                        && ctx.creating.iter().any(|ns| {
                            ns == &task.resource.namespace
                                && message.starts_with(&format!("namespaces \"{ns}\" not found"))
                        }) =>
                {
                    Ok("serverside-applied (dry run, namespace created by this sync)".to_string())
                }
                other => other,
            },
            TaskAction::Prune | TaskAction::DeleteHook => remove(ctx, task).await,
        };
        let status = match task.action {
            TaskAction::Prune => ResultCode::Pruned,
            _ => ResultCode::Synced,
        };
        match outcome {
            Ok(message) => {
                if task.action != TaskAction::DeleteHook {
                    results.push(task_result(phase, task, status, &message));
                }
            }
            Err(CallError::Api { message, .. }) => {
                tracing::info!(app = %op.app, cluster = %rt.name, resource = %task.resource, error = %message, "task failed");
                results.push(task_result(phase, task, ResultCode::SyncFailed, &message));
                first_failure.get_or_insert(message);
            }
            Err(CallError::Unreachable(message)) => {
                results.push(task_result(phase, task, ResultCode::SyncFailed, &message));
                return Err(Stop::Abort(message));
            }
        }
    }
    match first_failure {
        Some(m) => Err(Stop::Failed(format!(
            "one or more objects failed to apply, reason: {m}"
        ))),
        None => Ok(()),
    }
}

fn result(r: &ResourceRef, status: ResultCode, message: &str) -> ResourceResult {
    ResourceResult {
        group: r.group.clone(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        status,
        message: message.to_string(),
        sync_phase: String::new(),
        hook_type: String::new(),
    }
}

/// The result of a task run in `phase` (a hook's names the phase it is a hook of).
fn task_result(phase: SyncPhase, task: &Task, status: ResultCode, message: &str) -> ResourceResult {
    let hook = matches!(task.action, TaskAction::CreateHook | TaskAction::DeleteHook);
    ResourceResult {
        sync_phase: phase.as_str().to_owned(),
        hook_type: if hook {
            phase.as_str().to_owned()
        } else {
            String::new()
        },
        ..result(&task.resource, status, message)
    }
}

/// The served kind of `r`; an unknown kind triggers one rediscovery (the sync may have
/// just created its CRD).
async fn kind_of(rt: &ClusterRuntime, r: &ResourceRef) -> Result<Kind, CallError> {
    if let Some(k) = rt.cache.kind(&r.group, &r.kind) {
        return Ok(k);
    }
    rt.cache.request_rediscovery();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(k) = rt.cache.kind(&r.group, &r.kind) {
            return Ok(k);
        }
    }
    let api_version = if r.group.is_empty() {
        r.version.clone()
    } else {
        format!("{}/{}", r.group, r.version)
    };
    Err(CallError::Api {
        code: 404,
        message: format!(
            "the server could not find the requested resource: no matches for kind \"{}\" in version \"{api_version}\"",
            r.kind
        ),
    })
}

pub(crate) fn api(client: kube::Client, kind: &Kind, namespace: &str) -> Api<DynamicObject> {
    if kind.namespaced {
        Api::namespaced_with(client, namespace, &kind.resource)
    } else {
        Api::all_with(client, &kind.resource)
    }
}

async fn apply(rt: &ClusterRuntime, op: &SyncOperation, task: &Task) -> Result<String, CallError> {
    let kind = kind_of(rt, &task.resource).await?;
    let obj = apply_configuration(task);
    let live = rt.cache.get(&key_of(&task.resource));
    if option(op, &task.object, live.as_ref(), "Replace") {
        return replace(rt, op, task, &kind, obj, live).await;
    }
    if client_side(op, task) {
        return client_side_apply(rt, op, task, &kind, obj).await;
    }
    let applied = server_side_apply(rt, op, task, &kind, &obj, op.dry_run).await?;
    if op.dry_run {
        return Ok("serverside-applied (dry run)".to_string());
    }
    if let Ok(value) = serde_json::to_value(applied) {
        rt.cache.record_write(value);
    }
    Ok("serverside-applied".to_string())
}

/// The task's object without the server-owned metadata an apply configuration must not
/// carry.
fn apply_configuration(task: &Task) -> Value {
    let mut obj = task.object.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            meta.remove(field);
        }
    }
    obj
}

/// A server-side apply of `obj` as `argocd-controller`, forced, validating fields as the
/// app and resource say.
async fn server_side_apply(
    rt: &ClusterRuntime,
    op: &SyncOperation,
    task: &Task,
    kind: &Kind,
    obj: &Value,
    dry_run: bool,
) -> Result<DynamicObject, CallError> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    // As Argo CD's apply: unknown fields fail it, unless the app or resource says
    // `Validate=false`.
    params.field_validation = Some(if validates(op, task) {
        ValidationDirective::Strict
    } else {
        ValidationDirective::Ignore
    });
    let name = task.resource.name.clone();
    let ns = task.resource.namespace.clone();
    rt.call(|client| {
        let api = api(client, kind, &ns);
        let (obj, name, params) = (obj.clone(), name.clone(), params.clone());
        async move { api.patch(&name, &params, &Patch::Apply(&obj)).await }
    })
    .await
}

/// Argo CD's dry run before a sync's first step: every object the sync would write is
/// applied with `dryRun=All` first, and one the cluster refuses fails the sync before
/// anything is written ("one or more objects failed to apply (dry run)"). Skipped for an
/// object whose kind the cluster does not serve yet when a CustomResourceDefinition in
/// this sync defines it, or with `SkipDryRunOnMissingResource=true` (the resource's or
/// the app's); objects in a namespace this sync creates pass. A sync of one object
/// needs none (its apply fails the same way, with nothing else written), nor does a
/// cascade delete.
async fn dry_run_pass(
    ctx: &Ctx<'_>,
    plan: &sync::SyncPlan,
) -> Result<(), (String, Vec<ResourceResult>)> {
    let (rt, op) = (ctx.rt, ctx.op);
    let writes: Vec<(SyncPhase, &Task)> = plan
        .tasks()
        .filter(|(_, _, t)| matches!(t.action, TaskAction::Apply | TaskAction::CreateHook))
        .filter(|(_, _, t)| ctx.held.kind_of(&t.resource).is_none())
        // The CreateNamespace namespace is gitfleet's own, nothing to validate.
        .filter(|(phase, _, t)| !only_creates_destination_namespace(op, *phase, &[t]))
        .map(|(phase, _, t)| (phase, t))
        .collect();
    // A cascade delete writes its deletion hooks only, each in its own time.
    if op.dry_run || op.deleting || writes.len() < 2 {
        return Ok(());
    }
    let mut failed = Vec::new();
    for (phase, task) in writes {
        let r = &task.resource;
        if rt.cache.kind(&r.group, &r.kind).is_none()
            && (defined_scope(&op.desired, &r.group, &r.kind).is_some()
                || sync::resource_options(&task.object)
                    .get("SkipDryRunOnMissingResource")
                    .or_else(|| op.sync_options.get("SkipDryRunOnMissingResource"))
                    == Some("true"))
        {
            continue;
        }
        let outcome = match kind_of(rt, r).await {
            Ok(kind) => server_side_apply(rt, op, task, &kind, &apply_configuration(task), true)
                .await
                .map(|_| ()),
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => {}
            Err(CallError::Api { code: 404, message })
                if ctx.creating.iter().any(|ns| {
                    ns == &r.namespace
                        && message.starts_with(&format!("namespaces \"{ns}\" not found"))
                }) => {}
            Err(CallError::Api { message, .. } | CallError::Unreachable(message)) => {
                failed.push(task_result(phase, task, ResultCode::SyncFailed, &message));
            }
        }
    }
    match failed.first() {
        None => Ok(()),
        Some(first) => Err((
            format!(
                "one or more objects failed to apply (dry run), reason: {}",
                first.message
            ),
            failed,
        )),
    }
}

async fn delete(rt: &ClusterRuntime, op: &SyncOperation, task: &Task) -> Result<String, CallError> {
    let kind = kind_of(rt, &task.resource).await?;
    let params = DeleteParams {
        dry_run: op.dry_run,
        propagation_policy: Some(propagation(op)),
        ..DeleteParams::default()
    };
    let name = task.resource.name.clone();
    let ns = task.resource.namespace.clone();
    let outcome = rt
        .call(|client| {
            let api = api(client, &kind, &ns);
            let (name, params) = (name.clone(), params.clone());
            async move { api.delete(&name, &params).await }
        })
        .await;
    match outcome {
        Ok(_) | Err(CallError::Api { code: 404, .. }) => {}
        Err(err) => return Err(err),
    }
    if op.dry_run {
        return Ok("pruned (dry run)".to_string());
    }
    rt.cache.record_delete(&key_of(&task.resource));
    Ok("pruned".to_string())
}

/// `ApplyOutOfSyncOnly`: a resource whose live object already matches its manifest is not
/// applied again (gitops-engine's `filterOutOfSyncTasks`; hooks and prunes always run).
fn in_sync(
    rt: &ClusterRuntime,
    held: &Held<'_>,
    task: &Task,
    diff_options: &gitfleet_engine::diff::DiffOptions,
) -> bool {
    if task.action != TaskAction::Apply {
        return false;
    }
    let live = match held.get(&task.resource) {
        Some(live) => live.cloned(),
        None => rt.cache.get(&key_of(&task.resource)),
    };
    let Some(live) = live else {
        return false;
    };
    gitfleet_engine::diff::compare(&task.object, Some(&live), diff_options)
        .is_ok_and(|d| d.sync == gitfleet_model::SyncStatusCode::Synced)
}

/// The operation's desired objects, with `RespectIgnoreDifferences=true` each one's
/// ignored fields set to their live values (see `engine::diff::respect_ignored`).
fn respect_ignored(
    rt: &ClusterRuntime,
    held: &Held<'_>,
    op: &SyncOperation,
    diff_options: &gitfleet_engine::diff::DiffOptions,
) -> Result<Vec<Value>, gitfleet_engine::diff::DiffError> {
    if !op.sync_options.respect_ignore_differences() || op.ignore_differences.is_empty() {
        return Ok(op.desired.clone());
    }
    op.desired
        .iter()
        .map(|obj| {
            let r = ResourceRef::from_object(obj);
            let live = match held.get(&r) {
                Some(live) => live.cloned(),
                None => rt.cache.get(&key_of(&r)),
            };
            match live {
                Some(live) => gitfleet_engine::diff::respect_ignored(obj, &live, diff_options),
                None => Ok(obj.clone()),
            }
        })
        .collect()
}

/// A sync option set to `true` on the app, on the desired object's `sync-options`
/// annotation or on the live object's (gitops-engine reads `Replace` and `Force` from all
/// three).
fn option(op: &SyncOperation, desired: &Value, live: Option<&Value>, name: &str) -> bool {
    let on = |obj: &Value| sync::resource_options(obj).is_true(name);
    op.sync_options.is_true(name) || on(desired) || live.is_some_and(on)
}

/// `Replace=true`, as gitops-engine does it: `kubectl create` when nothing is live, an
/// update at the live resourceVersion for CRDs and Namespaces (a replace could delete
/// what they hold), else `kubectl replace`: a PUT, or with `Force=true` a delete and a
/// create.
async fn replace(
    rt: &ClusterRuntime,
    op: &SyncOperation,
    task: &Task,
    kind: &Kind,
    obj: Value,
    live: Option<Value>,
) -> Result<String, CallError> {
    let (name, ns) = (task.resource.name.clone(), task.resource.namespace.clone());
    let shown = format!("{}/{}", task.resource.kind.to_lowercase(), name);
    let post = PostParams {
        dry_run: op.dry_run,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    let mut object: DynamicObject = serde_json::from_value(obj).map_err(|e| CallError::Api {
        code: 422,
        message: format!("{shown}: {e}"),
    })?;
    let create = |object: DynamicObject| {
        let (post, ns) = (post.clone(), ns.clone());
        async move {
            rt.call(|client| {
                let api = api(client, kind, &ns);
                let (object, post) = (object.clone(), post.clone());
                async move { api.create(&post, &object).await }
            })
            .await
        }
    };
    let (written, message) = match live {
        None => (create(object).await?, format!("{shown} created")),
        Some(live) => {
            let structural = task.resource.kind == "Namespace"
                || task.resource.kind == "CustomResourceDefinition";
            if !structural && option(op, &task.object, Some(&live), "Force") {
                delete(rt, op, task).await?;
                let written = wait_recreated(rt, task, || create(object.clone())).await?;
                (written, format!("{shown} replaced"))
            } else {
                if structural {
                    object.metadata.resource_version = live["metadata"]["resourceVersion"]
                        .as_str()
                        .map(str::to_owned);
                }
                let written = rt
                    .call(|client| {
                        let api = api(client, kind, &ns);
                        let (object, post, name) = (object.clone(), post.clone(), name.clone());
                        async move { api.replace(&name, &post, &object).await }
                    })
                    .await?;
                let verb = if structural { "updated" } else { "replaced" };
                (written, format!("{shown} {verb}"))
            }
        }
    };
    if op.dry_run {
        return Ok(format!("{message} (dry run)"));
    }
    if let Ok(value) = serde_json::to_value(written) {
        rt.cache.record_write(value);
    }
    Ok(message)
}

/// `ServerSideApply=false` on the resource, else on the app: a client-side `kubectl
/// apply`. gitfleet applies server-side otherwise (see ARCHITECTURE.md).
fn client_side(op: &SyncOperation, task: &Task) -> bool {
    sync::resource_options(&task.object)
        .get("ServerSideApply")
        .or_else(|| op.sync_options.get("ServerSideApply"))
        == Some("false")
}

/// A client-side `kubectl apply`, field manager `argocd-controller`: the configuration
/// goes into the `last-applied-configuration` annotation, and the object is written whole
/// (create, or an update at the live resourceVersion) as the three-way merge of the last
/// applied configuration, this one and the live object makes it
/// (`k8s_patch::three_way`). A write that loses a race with another writer (409) reads
/// the object again and merges again.
async fn client_side_apply(
    rt: &ClusterRuntime,
    op: &SyncOperation,
    task: &Task,
    kind: &Kind,
    obj: Value,
) -> Result<String, CallError> {
    const ATTEMPTS: usize = 5;
    let (name, ns) = (task.resource.name.clone(), task.resource.namespace.clone());
    let shown = format!("{}/{}", task.resource.kind.to_lowercase(), name);
    let modified = k8s_patch::three_way::with_last_applied(&obj);
    let builtin = k8s_patch::schema::is_builtin_group(&task.resource.group);
    let post = PostParams {
        dry_run: op.dry_run,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    let decode = |v: Value| -> Result<DynamicObject, CallError> {
        serde_json::from_value(v).map_err(|e| CallError::Api {
            code: 422,
            message: format!("{shown}: {e}"),
        })
    };
    for _ in 0..ATTEMPTS {
        let live = rt
            .call(|client| {
                let api = api(client, kind, &ns);
                let name = name.clone();
                async move { api.get_opt(&name).await }
            })
            .await?;
        let (written, verb) = match live {
            None => {
                let object = decode(modified.clone())?;
                let created = rt
                    .call(|client| {
                        let api = api(client, kind, &ns);
                        let (object, post) = (object.clone(), post.clone());
                        async move { api.create(&post, &object).await }
                    })
                    .await;
                (created, "created")
            }
            Some(live) => {
                let live = serde_json::to_value(live).map_err(|e| CallError::Api {
                    code: 500,
                    message: format!("{shown}: {e}"),
                })?;
                let original = k8s_patch::three_way::last_applied(&live);
                let merged = k8s_patch::three_way::merge(
                    original.as_ref(),
                    &modified,
                    &live,
                    &task.resource.kind,
                    builtin,
                );
                if merged == live {
                    return Ok(format!("{shown} unchanged"));
                }
                let object = decode(merged)?;
                let replaced = rt
                    .call(|client| {
                        let api = api(client, kind, &ns);
                        let (object, post, name) = (object.clone(), post.clone(), name.clone());
                        async move { api.replace(&name, &post, &object).await }
                    })
                    .await;
                (replaced, "configured")
            }
        };
        match written {
            // Someone wrote it meanwhile (or made it first): read it again.
            Err(CallError::Api { code: 409, .. }) => continue,
            Err(err) => return Err(err),
            Ok(written) => {
                if op.dry_run {
                    return Ok(format!("{shown} {verb} (dry run)"));
                }
                if let Ok(value) = serde_json::to_value(written) {
                    rt.cache.record_write(value);
                }
                return Ok(format!("{shown} {verb}"));
            }
        }
    }
    Err(CallError::Api {
        code: 409,
        message: format!("{shown}: changed by another writer {ATTEMPTS} times while being applied"),
    })
}

/// Creates again what was just deleted: while the old object is still terminating the
/// server answers 409, so the create is tried again for a while, as `kubectl replace
/// --force` waits for the deletion.
async fn wait_recreated<F, Fut>(
    rt: &ClusterRuntime,
    task: &Task,
    create: F,
) -> Result<DynamicObject, CallError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<DynamicObject, CallError>>,
{
    let deadline = tokio::time::Instant::now() + rt.config.wave_timeout;
    loop {
        match create().await {
            Err(CallError::Api { code: 409, message }) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(CallError::Api {
                        code: 409,
                        message: format!(
                            "{} was not gone in time to be created again: {message}",
                            task.resource
                        ),
                    });
                }
                // Poll interval while the deletion finishes, bounded by the deadline above.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// `PrunePropagationPolicy=foreground|background|orphan`; foreground by default, as
/// gitops-engine deletes (its `getDeleteOptions`).
fn propagation(op: &SyncOperation) -> PropagationPolicy {
    match op
        .sync_options
        .prune_propagation_policy()
        .to_ascii_lowercase()
        .as_str()
    {
        "background" => PropagationPolicy::Background,
        "orphan" => PropagationPolicy::Orphan,
        _ => PropagationPolicy::Foreground,
    }
}

/// `Validate=false` on the app's options or the resource's `sync-options` annotation.
fn validates(op: &SyncOperation, task: &Task) -> bool {
    op.sync_options.validate() && sync::resource_options(&task.object).validate()
}

/// The first resource this sync would apply that another app tracks (`FailOnSharedResource`),
/// said as Argo CD says it.
fn shared_resource(rt: &ClusterRuntime, held: &Held<'_>, plan: &sync::SyncPlan) -> Option<String> {
    plan.tasks()
        .filter(|(_, _, t)| t.action == TaskAction::Apply)
        .find_map(|(_, _, t)| {
            let mine = tracking_id(&t.object)?.app;
            let live = match held.get(&t.resource) {
                Some(live) => live.cloned(),
                None => rt.cache.get(&key_of(&t.resource)),
            }?;
            let theirs = tracking_id(&live)?.app;
            (theirs != mine).then(|| {
                format!(
                    "{}/{} is part of applications {mine} and {theirs}",
                    t.resource.kind, t.resource.name
                )
            })
        })
}

/// `Prune=confirm` (and `Delete=confirm` on app deletion): a step that would prune such
/// a resource waits, the operation Running with Argo CD's message, until the app's
/// `argocd.argoproj.io/deletion-approved` time is not before the operation's start (`app
/// confirm-deletion`), or the operation is terminated. Dry runs, and syncs the user
/// confirmed when asking (`app sync --prune-confirm`), do not wait.
async fn wait_confirmed(
    ctx: &Ctx<'_>,
    journal: &Journal<'_>,
    tasks: &[&Task],
    results: &[ResourceResult],
    finished: Option<(SyncPhase, i32)>,
    terminated: &AtomicBool,
) -> Result<(), Stop> {
    let (rt, op) = (ctx.rt, ctx.op);
    let waiting: Vec<&ResourceRef> = tasks
        .iter()
        .filter(|t| {
            t.action == TaskAction::Prune
                && sync::requires_confirmation(&t.object, &op.sync_options, op.deleting)
        })
        .map(|t| &t.resource)
        .collect();
    let Some(first) = waiting.first() else {
        return Ok(());
    };
    if op.dry_run || op.prune_confirmed {
        return Ok(());
    }
    let mut message = format!(
        "waiting for pruning confirmation of {}/{}/{}",
        first.group, first.kind, first.name
    );
    if waiting.len() > 1 {
        message.push_str(&format!(" and {} more resources", waiting.len() - 1));
    }
    let started_at = journal.started_at();
    let mut said = false;
    loop {
        if terminated.load(Ordering::SeqCst) {
            return Err(Stop::Terminated);
        }
        let app = ctx
            .held
            .control_plane
            .document(ControlPlaneKind::Application, &op.app)
            .await;
        match app {
            Ok(Some(app)) if sync::deletion_approved(&app, started_at) => {
                tracing::info!(app = %op.app, cluster = %rt.name, "pruning confirmed");
                return Ok(());
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Stop::Failed(format!(
                    "{message}: the application is gone, nothing can confirm it"
                )));
            }
            Err(err) => {
                tracing::debug!(app = %op.app, error = %err.message, "reading the app for its confirmation");
            }
        }
        if !said {
            tracing::info!(app = %op.app, cluster = %rt.name, %message, "sync waits");
            journal
                .waiting(&message, results, finished)
                .await
                .map_err(Stop::Abort)?;
            said = true;
        }
        // Poll interval: a second is as soon as a user expects a confirmation to be seen.
        wait_a_second(rt).await?;
    }
}

/// A wait's poll interval, cut short (as an abort) when the cluster is released.
async fn wait_a_second(rt: &ClusterRuntime) -> Result<(), Stop> {
    tokio::select! {
        _ = rt.cancel.cancelled() => Err(Stop::Abort(format!("cluster {} released while syncing", rt.name))),
        _ = tokio::time::sleep(Duration::from_secs(1)) => Ok(()),
    }
}

/// The project's sync windows, checked before each step as Argo CD checks a running
/// operation: while they block it (a deny window opened since it started, an allow window
/// closed; `syncOverrun` lets it go on), it waits, Running with "Sync operation blocked by
/// sync window", until they allow it or it is terminated. A window that does not read
/// fails it.
async fn wait_window(
    ctx: &Ctx<'_>,
    journal: &Journal<'_>,
    results: &[ResourceResult],
    finished: Option<(SyncPhase, i32)>,
    terminated: &AtomicBool,
) -> Result<(), Stop> {
    let (rt, op) = (ctx.rt, ctx.op);
    let Some(project) = op
        .project
        .as_ref()
        .filter(|p| !p.spec.sync_windows.is_empty())
    else {
        return Ok(());
    };
    if op.dry_run {
        return Ok(());
    }
    // What the windows match an app by: its name, destination cluster and namespace.
    let mut app = gitfleet_model::Application::default();
    app.metadata.name = op.app.clone();
    app.spec.destination.name = op.cluster.clone();
    app.spec.destination.server = rt.spec.server.clone();
    app.spec.destination.namespace = op.destination_namespace.clone();
    let manual = op.initiated_by != "automated";
    let started =
        chrono::DateTime::from_timestamp(journal.started_at(), 0).unwrap_or_else(chrono::Utc::now);
    let mut said = false;
    loop {
        if terminated.load(Ordering::SeqCst) {
            return Err(Stop::Terminated);
        }
        let allowed = sync::windows::can_continue(
            &project.spec.sync_windows,
            &app,
            manual,
            started,
            chrono::Utc::now(),
        )
        .map_err(|e| Stop::Failed(format!("Sync operation blocked by sync window: {e}")))?;
        if allowed {
            return Ok(());
        }
        if !said {
            tracing::info!(app = %op.app, cluster = %rt.name, "sync blocked by a sync window");
            journal
                .waiting("Sync operation blocked by sync window", results, finished)
                .await
                .map_err(Stop::Abort)?;
            said = true;
        }
        // Poll interval: windows open and close on the minute.
        wait_a_second(rt).await?;
    }
}

/// Waits until every object the wave pruned is gone from the cluster (the watch cache).
async fn wait_gone(rt: &ClusterRuntime, tasks: &[&Task]) -> Result<(), Stop> {
    let deadline = tokio::time::Instant::now() + rt.config.wave_timeout;
    loop {
        let left = tasks
            .iter()
            .filter(|t| t.action == TaskAction::Prune)
            .find(|t| rt.cache.get(&key_of(&t.resource)).is_some());
        let Some(left) = left else {
            return Ok(());
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Stop::Abort(format!(
                "timed out after {:?} waiting for {} to be deleted",
                rt.config.wave_timeout, left.resource
            )));
        }
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every object the wave applied is healthy (kinds without a health check
/// count as healthy); a Degraded one fails the sync.
async fn wait_healthy(
    rt: &ClusterRuntime,
    held: &Held<'_>,
    op: &SyncOperation,
    tasks: &[&Task],
    terminated: &AtomicBool,
) -> Result<(), Stop> {
    let deadline = tokio::time::Instant::now() + rt.config.wave_timeout;
    let applied: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| matches!(t.action, TaskAction::Apply | TaskAction::CreateHook))
        .collect();
    loop {
        // A terminated operation stops waiting too: a wave that never becomes healthy
        // must not hold a user's terminate for the whole wave timeout.
        if terminated.load(Ordering::SeqCst) {
            return Err(Stop::Terminated);
        }
        let mut pending: Option<String> = None;
        for t in &applied {
            // A child app's health is its own status, read fresh from KV.
            let live = match held.kind_of(&t.resource) {
                Some(kind) => held
                    .control_plane
                    .live(&op.app, kind, &t.resource.name, true)
                    .await
                    .map_err(|e| Stop::Abort(e.message))?,
                None => rt.cache.get(&key_of(&t.resource)),
            };
            let Some(live) = live else {
                continue;
            };
            match held.checks.assess(&live) {
                None => {}
                Some(h) => match h.status {
                    HealthStatusCode::Healthy | HealthStatusCode::Suspended => {}
                    HealthStatusCode::Degraded => {
                        return Err(Stop::Failed(format!(
                            "{} is Degraded: {}",
                            t.resource, h.message
                        )));
                    }
                    _ => {
                        pending.get_or_insert_with(|| {
                            format!("{} is {:?}: {}", t.resource, h.status, h.message)
                        });
                    }
                },
            }
        }
        let Some(pending) = pending else {
            return Ok(());
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Stop::Abort(format!(
                "timed out after {:?} waiting for the wave to be healthy: {pending}",
                rt.config.wave_timeout
            )));
        }
        tokio::select! {
            _ = rt.cancel.cancelled() => return Err(Stop::Abort(format!("cluster {} released while syncing", rt.name))),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
