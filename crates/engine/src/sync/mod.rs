//! Sync planning (Argo CD gitops-engine `pkg/sync`): which objects to apply, which hooks to
//! run and which live resources to prune, grouped into phases and waves in the order a sync
//! executes them. The executor applies a wave, waits for its resources to be healthy (and
//! the wave delay), then moves on; SyncFail hooks run only when the sync fails.
//!
//! Rules:
//! - Phases PreSync, Sync, PostSync, SyncFail. Resources are applied in Sync; hooks
//!   (`argocd.argoproj.io/hook`, or Helm's `helm.sh/hook` pre-/post-install/upgrade) run in
//!   their phases; `Skip` resources are neither applied nor pruned; PreDelete/PostDelete
//!   hooks are not part of a sync: with [`SyncSettings::deleting`] (a cascade delete)
//!   they are the only hooks, in phases before and after the prunes, and nothing is
//!   applied.
//! - Waves: `argocd.argoproj.io/sync-wave`, else `helm.sh/hook-weight`, else 0; a value
//!   that is not an integer is ignored as Argo CD ignores it, and said in
//!   [`SyncPlan::warnings`].
//! - Within a wave: kind order [`KIND_ORDER`], then name; namespaces and CRDs move ahead
//!   of the first task that needs them, taking its phase and wave. Tasks of a wave are
//!   listed in execution order: prunes, hook deletions, then applies and hook creations.
//! - Hooks with `generateName` get Argo CD's name `<generateName><rev[..7]>-<phase>-<unix>`;
//!   a BeforeHookCreation hook (the default policy) that exists live is deleted first.
//! - Pruning: live resources (found by tracking id) with no desired counterpart, except
//!   live hooks and Skip resources. Without `prune` they are listed in
//!   [`SyncPlan::requires_pruning`]; with `Prune=false` or `Delete=false` in their
//!   `argocd.argoproj.io/sync-options` in [`SyncPlan::prune_disabled`]. Prune waves run in
//!   reverse (the prune waves are swapped symmetrically); `PruneLast` (app option or the
//!   resource's annotation) puts them in a wave after the last Sync wave.
//! - `CreateNamespace=true` with a destination namespace that does not exist and is not
//!   among the manifests adds a Namespace apply in PreSync, which the dependency rule above
//!   moves ahead of everything in that namespace.
//! - Selective sync ([`SyncSettings::resources`]): only the named resources are applied or
//!   pruned, and no hooks run.
//! - Desired namespaced objects without a namespace get the destination namespace; kinds of
//!   unknown scope get it too (as Argo CD's apply does).

mod hooks;
mod order;
pub mod windows;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use gitfleet_model::SyncOptions;

use crate::resource::ResourceRef;

pub use hooks::{
    HELM_HOOK, HELM_HOOK_DELETE_POLICY, HELM_HOOK_WEIGHT, HOOK, HOOK_DELETE_POLICY,
    HookDeletePolicy, SYNC_OPTIONS, SYNC_WAVE, is_deletion_hook, is_hook,
    options as resource_options,
};
pub use order::KIND_ORDER;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SyncPhase {
    /// App deletion (cascade delete): hooks that run before the app's resources are
    /// deleted.
    PreDelete,
    PreSync,
    Sync,
    PostSync,
    /// App deletion: hooks that run once the app's resources are gone.
    PostDelete,
    SyncFail,
}

impl SyncPhase {
    pub const ALL: [SyncPhase; 6] = [
        SyncPhase::PreDelete,
        SyncPhase::PreSync,
        SyncPhase::Sync,
        SyncPhase::PostSync,
        SyncPhase::PostDelete,
        SyncPhase::SyncFail,
    ];

    /// Argo CD's name of the phase (`syncPhase`, `hookType`).
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPhase::PreDelete => "PreDelete",
            SyncPhase::PreSync => "PreSync",
            SyncPhase::Sync => "Sync",
            SyncPhase::PostSync => "PostSync",
            SyncPhase::PostDelete => "PostDelete",
            SyncPhase::SyncFail => "SyncFail",
        }
    }

    /// The phase Argo CD names `name`.
    pub fn parse(name: &str) -> Option<SyncPhase> {
        SyncPhase::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// PreDelete and PostDelete: planned only when the app is being deleted.
    pub fn is_deletion(self) -> bool {
        matches!(self, SyncPhase::PreDelete | SyncPhase::PostDelete)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskAction {
    /// Server-side apply the desired object.
    Apply,
    /// Delete the live object.
    Prune,
    /// Create the hook object and wait for it to complete.
    CreateHook,
    /// Delete the live copy of a hook before it is created again.
    DeleteHook,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub action: TaskAction,
    pub resource: ResourceRef,
    /// The desired object (with its namespace defaulted) to apply or create; the live one to
    /// prune or delete.
    pub object: Value,
    /// For hooks: when to delete them (BeforeHookCreation when unset). Empty otherwise.
    pub hook_delete_policy: Vec<HookDeletePolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    pub wave: i32,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub phase: SyncPhase,
    pub waves: Vec<Wave>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncPlan {
    /// Non-empty phases in order, each with its non-empty waves in order.
    pub phases: Vec<Phase>,
    /// Prunable, but this sync does not prune.
    pub requires_pruning: Vec<ResourceRef>,
    /// Prunable, but the resource says `Prune=false` or `Delete=false`.
    pub prune_disabled: Vec<ResourceRef>,
    /// What the plan read differently from what the manifests say (a malformed wave).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl SyncPlan {
    /// Every task in execution order.
    pub fn tasks(&self) -> impl Iterator<Item = (SyncPhase, i32, &Task)> {
        self.phases.iter().flat_map(|p| {
            p.waves
                .iter()
                .flat_map(move |w| w.tasks.iter().map(move |t| (p.phase, w.wave, t)))
        })
    }
}

/// Whether a group and kind is namespaced; `None` when unknown (e.g. a CRD this sync creates).
pub type ScopeFn<'a> = &'a dyn Fn(&str, &str) -> Option<bool>;

/// One sync's settings: what the operation asks for, with the app's sync options whole
/// (the engine reads each option where it matters, so a new one needs no new field here).
#[derive(Clone)]
pub struct SyncSettings<'a> {
    /// The app's `spec.destination.namespace`.
    pub destination_namespace: String,
    pub prune: bool,
    /// The app's `syncPolicy.syncOptions` and the request's own (`CreateNamespace=true`,
    /// `PruneLast=true`, ...); a resource's `sync-options` annotation adds to them.
    pub options: SyncOptions,
    /// Whether the destination namespace exists in the cluster.
    pub namespace_exists: bool,
    /// Selective sync: only these resources (version ignored). `None` syncs everything.
    pub resources: Option<Vec<ResourceRef>>,
    /// `syncPolicy.managedNamespaceMetadata`: with `CreateNamespace=true` the destination
    /// namespace is applied on every sync with these labels and annotations.
    pub managed_namespace_metadata: Option<gitfleet_model::ManagedNamespaceMetadata>,
    /// The app is being deleted (cascade delete): its PreDelete hooks run, then every
    /// live resource is pruned, then its PostDelete hooks run; nothing is applied.
    pub deleting: bool,
    /// The revision being synced and the sync's start (unix seconds), for hook names.
    pub revision: String,
    pub started_at: i64,
    pub is_namespaced: ScopeFn<'a>,
}

impl Default for SyncSettings<'_> {
    fn default() -> Self {
        Self {
            destination_namespace: String::new(),
            prune: false,
            options: SyncOptions::default(),
            namespace_exists: true,
            resources: None,
            managed_namespace_metadata: None,
            deleting: false,
            revision: String::new(),
            started_at: 0,
            is_namespaced: &builtin_scope,
        }
    }
}

/// The scope of built-in kinds and of Argo CD's own (namespaced); `None` for anything else.
pub fn builtin_scope(group: &str, kind: &str) -> Option<bool> {
    const CLUSTER: [(&str, &str); 16] = [
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("apiregistration.k8s.io", "APIService"),
        ("scheduling.k8s.io", "PriorityClass"),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
        ),
        ("networking.k8s.io", "IngressClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("policy", "PodSecurityPolicy"),
    ];
    const NAMESPACED_GROUPS: [&str; 8] = [
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
    ];
    if CLUSTER.contains(&(group, kind)) {
        Some(false)
    } else if NAMESPACED_GROUPS.contains(&group)
        || crate::control_plane::ControlPlaneKind::of(group, kind).is_some()
    {
        Some(true)
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{resource}: no metadata.name (and no generateName for a hook)")]
    NoName { resource: String },
    #[error("{resource}: appears twice among the desired manifests")]
    Duplicate { resource: String },
}

/// A task with its place; phase and wave can move while ordering.
#[derive(Debug, Clone)]
struct PlannedTask {
    phase: SyncPhase,
    wave: i32,
    task: Task,
}

/// Plans one sync of an app (named for the caller's logs; errors name resources): `desired`
/// are the rendered manifests, `live` the app's live resources found by tracking id.
pub fn plan(
    _app_name: &str,
    desired: Vec<Value>,
    live: Vec<Value>,
    opts: &SyncSettings<'_>,
) -> Result<SyncPlan, PlanError> {
    let dest_ns = opts.destination_namespace.as_str();
    let selected = |r: &ResourceRef| {
        opts.resources
            .as_ref()
            .is_none_or(|sel| sel.iter().any(|s| s.same_object(r)))
    };
    let live_refs: Vec<(ResourceRef, &Value)> = live
        .iter()
        .map(|l| (ResourceRef::from_object(l), l))
        .collect();
    let find_live = |r: &ResourceRef| {
        live_refs
            .iter()
            .find(|(l, _)| l.same_object(r))
            .map(|(_, v)| *v)
    };

    let mut tasks: Vec<PlannedTask> = Vec::new();
    let mut desired_refs: Vec<ResourceRef> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    for mut obj in desired {
        let mut r = ResourceRef::from_object(&obj);
        if r.namespace.is_empty()
            && !dest_ns.is_empty()
            && (opts.is_namespaced)(&r.group, &r.kind) != Some(false)
        {
            set_namespace(&mut obj, dest_ns);
            r.namespace = dest_ns.to_owned();
        }
        let hook = hooks::is_hook(&obj);
        if r.name.is_empty() && !(hook && has_generate_name(&obj)) {
            return Err(PlanError::NoName {
                resource: r.to_string(),
            });
        }
        let wave = hooks::wave(&obj, &r, &mut warnings);
        if !hook {
            if desired_refs.iter().any(|d| d.same_object(&r)) {
                return Err(PlanError::Duplicate {
                    resource: r.to_string(),
                });
            }
            desired_refs.push(r.clone());
            if hooks::is_skipped(&obj) || !selected(&r) || opts.deleting {
                continue;
            }
            tasks.push(PlannedTask {
                phase: SyncPhase::Sync,
                wave,
                task: Task {
                    action: TaskAction::Apply,
                    resource: r,
                    object: obj,
                    hook_delete_policy: Vec::new(),
                },
            });
            continue;
        }
        // Hooks keep their live copies out of pruning even when they do not run.
        desired_refs.push(r.clone());
        if opts.resources.is_some() {
            continue;
        }
        let policies = hooks::delete_policies(&obj);
        let phases = hooks::hook_phases(&obj)
            .into_iter()
            .filter(|p| p.is_deletion() == opts.deleting);
        for phase in phases {
            let mut obj = obj.clone();
            let mut r = r.clone();
            if r.name.is_empty() {
                r.name = hook_name(&obj, &opts.revision, phase, opts.started_at);
                obj["metadata"]["name"] = Value::String(r.name.clone());
            }
            if policies.contains(&HookDeletePolicy::BeforeHookCreation)
                && let Some(l) = find_live(&r)
            {
                tasks.push(PlannedTask {
                    phase,
                    wave,
                    task: Task {
                        action: TaskAction::DeleteHook,
                        resource: r.clone(),
                        object: l.clone(),
                        hook_delete_policy: policies.clone(),
                    },
                });
            }
            tasks.push(PlannedTask {
                phase,
                wave,
                task: Task {
                    action: TaskAction::CreateHook,
                    resource: r,
                    object: obj,
                    hook_delete_policy: policies.clone(),
                },
            });
        }
    }

    let mut plan = SyncPlan::default();
    let mut prunes: Vec<PlannedTask> = Vec::new();
    for (r, obj) in &live_refs {
        if desired_refs.iter().any(|d| d.same_object(r))
            || hooks::is_hook(obj)
            || hooks::is_skipped(obj)
            || !selected(r)
        {
            continue;
        }
        let options = hooks::options(obj);
        if !opts.prune {
            plan.requires_pruning.push(r.clone());
        } else if option_or_app(&options, &opts.options, "Prune") == Some("false")
            || options.is_false("Delete")
        {
            plan.prune_disabled.push(r.clone());
        } else {
            prunes.push(PlannedTask {
                phase: SyncPhase::Sync,
                wave: hooks::wave(obj, r, &mut warnings),
                task: Task {
                    action: TaskAction::Prune,
                    resource: r.clone(),
                    object: (*obj).clone(),
                    hook_delete_policy: Vec::new(),
                },
            });
        }
    }

    // Created when missing; applied again on every sync when its metadata is managed, so
    // labels and annotations are added to an existing namespace too (server-side apply
    // leaves what others set).
    if opts.options.create_namespace()
        && !opts.deleting
        && (!opts.namespace_exists || opts.managed_namespace_metadata.is_some())
        && !dest_ns.is_empty()
        && !desired_refs
            .iter()
            .any(|d| d.group.is_empty() && d.kind == "Namespace" && d.name == dest_ns)
    {
        let mut ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": dest_ns}});
        if let Some(meta) = &opts.managed_namespace_metadata {
            if !meta.labels.is_empty() {
                ns["metadata"]["labels"] = json!(meta.labels);
            }
            if !meta.annotations.is_empty() {
                ns["metadata"]["annotations"] = json!(meta.annotations);
            }
        }
        tasks.push(PlannedTask {
            phase: SyncPhase::PreSync,
            wave: 0,
            task: Task {
                action: TaskAction::Apply,
                resource: ResourceRef::from_object(&ns),
                object: ns,
                hook_delete_policy: Vec::new(),
            },
        });
    }

    // Prune in the reverse of creation order: swap the prune waves end for end.
    let mut prune_waves: Vec<i32> = prunes.iter().map(|t| t.wave).collect();
    prune_waves.sort_unstable();
    prune_waves.dedup();
    for t in &mut prunes {
        let i = prune_waves
            .binary_search(&t.wave)
            .expect("wave collected above");
        t.wave = prune_waves[prune_waves.len() - 1 - i];
    }
    tasks.extend(prunes);
    let after_last_sync_wave = tasks
        .iter()
        .filter(|t| t.phase == SyncPhase::Sync)
        .map(|t| t.wave)
        .max()
        .unwrap_or(0)
        .max(0)
        + 1;
    for t in tasks
        .iter_mut()
        .filter(|t| t.task.action == TaskAction::Prune)
    {
        if opts.options.prune_last() || hooks::options(&t.task.object).prune_last() {
            t.wave = after_last_sync_wave;
        }
    }

    plan.warnings = warnings;
    order::sort(&mut tasks);
    for t in tasks {
        if plan.phases.last().is_none_or(|p| p.phase != t.phase) {
            plan.phases.push(Phase {
                phase: t.phase,
                waves: Vec::new(),
            });
        }
        let phase = plan.phases.last_mut().expect("pushed above");
        if phase.waves.last().is_none_or(|w| w.wave != t.wave) {
            phase.waves.push(Wave {
                wave: t.wave,
                tasks: Vec::new(),
            });
        }
        phase
            .waves
            .last_mut()
            .expect("pushed above")
            .tasks
            .push(t.task);
    }
    for wave in plan.phases.iter_mut().flat_map(|p| &mut p.waves) {
        // The executor prunes first, then clears old hooks, then creates.
        wave.tasks.sort_by_key(|t| match t.action {
            TaskAction::Prune => 0,
            TaskAction::DeleteHook => 1,
            TaskAction::Apply | TaskAction::CreateHook => 2,
        });
    }
    Ok(plan)
}

/// A resource's sync option `key`, else the app's (gitops-engine's `defaultPruneOption`:
/// the resource's annotation always overrides the app).
fn option_or_app<'a>(
    resource: &'a SyncOptions,
    app: &'a SyncOptions,
    key: &str,
) -> Option<&'a str> {
    resource.get(key).or_else(|| app.get(key))
}

/// Whether pruning `live` waits for a user's confirmation (`Prune=confirm` on the resource,
/// else on the app; on app deletion `Delete=confirm` too), as Argo CD's
/// `objRequiresPruneConfirmation` and `isObjRequiresDeletionConfirmation`. A user
/// confirms with the app's `argocd.argoproj.io/deletion-approved` annotation (see
/// [`DELETION_APPROVED`]).
pub fn requires_confirmation(live: &Value, app: &SyncOptions, deleting: bool) -> bool {
    let resource = hooks::options(live);
    let confirm = |key| option_or_app(&resource, app, key) == Some("confirm");
    confirm("Prune") || (deleting && confirm("Delete"))
}

/// The app annotation that confirms pruning and deletion: an RFC 3339 time, which
/// confirms what the operations started at or before it wait for.
pub const DELETION_APPROVED: &str = "argocd.argoproj.io/deletion-approved";

/// Whether `app` (its stored document) confirms the pruning of an operation started at
/// `started_at` (unix seconds): its [`DELETION_APPROVED`] time is not before it.
pub fn deletion_approved(app: &Value, started_at: i64) -> bool {
    crate::json::annotation(app, DELETION_APPROVED)
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        .is_some_and(|t| t.timestamp() >= started_at)
}

fn set_namespace(obj: &mut Value, ns: &str) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(ns.to_owned()));
    } else if let Some(root) = obj.as_object_mut() {
        root.insert("metadata".into(), json!({"namespace": ns}));
    }
}

fn has_generate_name(obj: &Value) -> bool {
    !crate::json::str_at(obj, &["metadata", "generateName"]).is_empty()
}

/// Argo CD's deterministic name for a `generateName` hook.
fn hook_name(obj: &Value, revision: &str, phase: SyncPhase, started_at: i64) -> String {
    let rev = if revision.len() >= 8 {
        &revision[..7]
    } else {
        revision
    };
    let phase = phase.as_str();
    format!(
        "{}{}",
        crate::json::str_at(obj, &["metadata", "generateName"]),
        format!("{rev}-{phase}-{started_at}").to_lowercase()
    )
}
