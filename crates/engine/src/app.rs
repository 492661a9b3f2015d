//! An application's desired state against its live state, once for every service: the
//! desired objects prepared the way a sync applies them, the pairing with live objects,
//! the per-resource verdicts as Argo CD's `status.resources`, the diff text users read,
//! and the cluster an app deploys to.

use gitfleet_model::{
    Application, ApplicationSource, Cluster, HealthStatus, HealthStatusCode, IN_CLUSTER_NAME,
    ResourceIgnoreDifferences, ResourceStatus, SyncStatusCode,
};
use serde_json::{Map, Value};

use crate::diff::{self, DiffOptions, render_unified};
use crate::health;
use crate::resource::ResourceRef;
use crate::status::{app_health, app_sync_status};
use crate::sync::{SYNC_WAVE, builtin_scope, is_hook};
use crate::tracking::{self, TrackingMethod};

/// The verdict on one app.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub resources: Vec<ResourceStatus>,
    pub sync: SyncStatusCode,
    pub health: HealthStatusCode,
    /// Resources the engine could not compare (e.g. unsupported ignoreDifferences).
    pub errors: Vec<String>,
}

/// The revision a source follows: an empty `targetRevision` follows the default branch,
/// as `HEAD` does.
pub fn target_revision(source: &ApplicationSource) -> &str {
    revision_or_head(&source.target_revision)
}

pub fn revision_or_head(revision: &str) -> &str {
    if revision.is_empty() {
        "HEAD"
    } else {
        revision
    }
}

/// Whether two revisions name the same thing for sync purposes (`""` is `HEAD`).
pub fn same_revision(a: &str, b: &str) -> bool {
    revision_or_head(a) == revision_or_head(b)
}

/// The manifests as a sync applies them: objects only, namespaced kinds (and kinds of
/// unknown scope, as Argo CD's apply does) without a namespace get the destination's, and
/// each carries the app's tracking annotation.
pub fn prepare_desired(manifests: &[Value], app: &Application, control_ns: &str) -> Vec<Value> {
    let dest_ns = app.spec.destination.namespace.as_str();
    manifests
        .iter()
        .filter(|m| m.is_object())
        .map(|m| {
            let mut obj = m.clone();
            let r = ResourceRef::from_object(&obj);
            if r.namespace.is_empty()
                && !dest_ns.is_empty()
                && builtin_scope(&r.group, &r.kind) != Some(false)
            {
                set_namespace(&mut obj, dest_ns);
            }
            tracking::annotate(&mut obj, app, control_ns, TrackingMethod::Annotation);
            obj
        })
        .collect()
}

/// Desired objects (hooks left out) paired with their live counterparts, and the live
/// objects nothing desires (hooks left out): what a sync with prune deletes.
struct Pairing<'a> {
    pairs: Vec<(&'a Value, ResourceRef, Option<usize>)>,
    unmatched_live: Vec<usize>,
}

fn pair<'a>(desired: &'a [Value], live: &[Value], live_refs: &[ResourceRef]) -> Pairing<'a> {
    let mut matched = vec![false; live.len()];
    let mut pairs = Vec::new();
    for d in desired.iter().filter(|d| !is_hook(d)) {
        let r = ResourceRef::from_object(d);
        let found = live_refs
            .iter()
            .position(|l| l.same_object(&r))
            // A custom kind of unknown scope got the destination namespace; if it is in
            // fact cluster-scoped, live has it without one.
            .or_else(|| {
                (builtin_scope(&r.group, &r.kind).is_none()).then(|| {
                    live_refs.iter().position(|l| {
                        l.namespace.is_empty()
                            && l.group == r.group
                            && l.kind == r.kind
                            && l.name == r.name
                    })
                })?
            });
        if let Some(i) = found {
            matched[i] = true;
        }
        pairs.push((d, r, found));
    }
    let unmatched_live = (0..live.len())
        .filter(|&i| !matched[i] && !is_hook(&live[i]))
        .collect();
    Pairing {
        pairs,
        unmatched_live,
    }
}

/// Server-side diff: the prepared desired objects `app` compares server-side (see
/// [`diff::server_side`]), hooks left out. Their executor dry-runs those with a live
/// counterpart.
pub fn server_side_wanted(app: &Application, desired: &[Value]) -> Vec<Value> {
    desired
        .iter()
        .filter(|d| !is_hook(d) && diff::server_side::wanted(app, d))
        .cloned()
        .collect()
}

/// What live is compared with when `app` compares some of `desired` server-side: a copy
/// of `desired` with each object [`server_side_wanted`] chose replaced by what live is
/// compared with (see [`diff::server_side::compared_object`]), from `answers`: one per
/// wanted object, in order; `Ok(None)` when nothing was run (no live object yet: the plain
/// comparison, as Argo CD's). `None` when nothing was replaced (no copy is made: the
/// comparison of every app runs through here). A failed dry run keeps the manifest's
/// comparison and is returned as Argo CD's comparison error.
pub fn server_side_compared(
    app: &Application,
    desired: &[Value],
    live: &[Value],
    answers: impl IntoIterator<Item = Result<Option<Value>, String>>,
) -> (Option<Vec<Value>>, Vec<String>) {
    let answers: Vec<_> = answers.into_iter().collect();
    if answers.is_empty() {
        return (None, Vec::new());
    }
    let wanted = server_side_wanted(app, desired);
    let live_refs: Vec<ResourceRef> = live.iter().map(ResourceRef::from_object).collect();
    let pairing = pair(&wanted, live, &live_refs);
    let mut errors = Vec::new();
    let mut compared = Vec::new();
    for ((d, r, found), answer) in pairing.pairs.into_iter().zip(answers) {
        match (answer, found) {
            (Ok(Some(predicted)), Some(i)) => compared.push((
                r,
                diff::server_side::compared_object(
                    app,
                    d,
                    &predicted,
                    &live[i],
                    diff::FIELD_MANAGER,
                ),
            )),
            (Err(e), _) => errors.push(format!(
                "error calculating server side diff: {} {}/{}: {e}",
                r.kind, r.namespace, r.name
            )),
            _ => {}
        }
    }
    if compared.is_empty() {
        return (None, errors);
    }
    let mut replaced = desired.to_vec();
    for (r, object) in compared {
        if let Some(d) = replaced
            .iter_mut()
            .find(|d| !is_hook(d) && ResourceRef::from_object(d).same_object(&r))
        {
            *d = object;
        }
    }
    (Some(replaced), errors)
}

/// The app's `ignoreDifferences` and the system's (`argocd-cm`, see
/// [`diff::settings`]).
fn diff_options(app: &Application, system: &[ResourceIgnoreDifferences]) -> DiffOptions {
    if system.is_empty() {
        return DiffOptions::of(&app.spec.ignore_differences);
    }
    let rules: Vec<ResourceIgnoreDifferences> = app
        .spec
        .ignore_differences
        .iter()
        .chain(system)
        .cloned()
        .collect();
    DiffOptions::of(&rules)
}

/// Compares prepared desired objects (see [`prepare_desired`]) with the app's live
/// resources, with the built-in health checks.
pub fn compare(app: &Application, desired: &[Value], live: &[Value]) -> Comparison {
    compare_with(app, desired, live, &health::Checks::default(), &[])
}

/// [`compare`], with the health checks `argocd-cm` turns on and its system-level
/// `ignoreDifferences`.
pub fn compare_with(
    app: &Application,
    desired: &[Value],
    live: &[Value],
    checks: &health::Checks,
    system_ignores: &[ResourceIgnoreDifferences],
) -> Comparison {
    let opts = diff_options(app, system_ignores);
    let live_refs: Vec<ResourceRef> = live.iter().map(ResourceRef::from_object).collect();
    let pairing = pair(desired, live, &live_refs);
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    // Argo CD's `RequiresDeletionConfirmation`: the desired or live object says
    // `Delete=confirm` or `Prune=confirm`, or the app does.
    let app_options = app
        .spec
        .sync_policy
        .as_ref()
        .map(|p| p.sync_options.clone())
        .unwrap_or_default();
    let confirm = |obj: &Value| crate::sync::requires_confirmation(obj, &app_options, true);
    let mut health_errors = Vec::new();
    let mut judge = |obj: Option<&Value>| match obj.map(|o| checks.judge(o)) {
        None => health::assess_or_missing(None).map(to_status),
        Some(Ok(health)) => health.map(to_status),
        Some(Err(err)) => {
            let unknown = to_status(err.health());
            health_errors.push(err);
            Some(unknown)
        }
    };
    for (d, r, found) in pairing.pairs {
        let live_obj = found.map(|i| &live[i]);
        let status = match diff::compare(d, live_obj, &opts) {
            Ok(verdict) => verdict.sync,
            Err(err) => {
                errors.push(err.to_string());
                SyncStatusCode::Unknown
            }
        };
        resources.push(ResourceStatus {
            health: judge(live_obj),
            status: Some(status),
            sync_wave: wave(d),
            requires_deletion_confirmation: confirm(d) || live_obj.is_some_and(confirm),
            ..resource_status(r)
        });
    }
    // An extraneous object that says `compare-options: IgnoreExtraneous` is shown (and
    // pruned by a sync that prunes) but does not make the app OutOfSync.
    let mut ignored_extraneous = Vec::new();
    for i in pairing.unmatched_live {
        let status = ResourceStatus {
            health: judge(Some(&live[i])),
            status: Some(SyncStatusCode::OutOfSync),
            requires_pruning: true,
            requires_deletion_confirmation: confirm(&live[i]),
            ..resource_status(live_refs[i].clone())
        };
        if crate::json::annotation_list(&live[i], COMPARE_OPTIONS).contains(&IGNORE_EXTRANEOUS) {
            ignored_extraneous.push(status.clone());
        }
        resources.push(status);
    }
    // As Argo CD's `setApplicationHealth`: one condition, for the first failed check.
    if let Some(first) = health_errors.first() {
        errors.push(match health_errors.len() - 1 {
            0 => format!("error setting app health: {first}"),
            more => format!(
                "error setting app health: {first} (and {more} more resources whose health check failed)"
            ),
        });
    }
    resources.sort_by(|a, b| {
        (&a.group, &a.kind, &a.namespace, &a.name).cmp(&(&b.group, &b.kind, &b.namespace, &b.name))
    });
    let counted: Vec<ResourceStatus> = resources
        .iter()
        .filter(|r| !ignored_extraneous.contains(r))
        .cloned()
        .collect();
    Comparison {
        sync: app_sync_status(&counted),
        health: app_health(&resources),
        resources,
        errors,
    }
}

/// The annotation of Argo CD's compare options on a resource (`IgnoreExtraneous`).
pub const COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";
/// The compare option that keeps an extraneous resource from making its app OutOfSync.
pub const IGNORE_EXTRANEOUS: &str = "IgnoreExtraneous";

/// `argocd app diff`: the unified diff of every desired object against its live
/// counterpart; live objects nothing desires any more are shown as removals. Empty when
/// the app is in sync.
pub fn diff_text(
    app: &Application,
    desired: &[Value],
    live: &[Value],
    system_ignores: &[ResourceIgnoreDifferences],
) -> Result<String, diff::DiffError> {
    let opts = diff_options(app, system_ignores);
    let live_refs: Vec<ResourceRef> = live.iter().map(ResourceRef::from_object).collect();
    let pairing = pair(desired, live, &live_refs);
    let mut text = String::new();
    for (d, r, found) in pairing.pairs {
        let verdict = diff::compare(d, found.map(|i| &live[i]), &opts)?;
        text.push_str(&render_unified(&diff_heading(&r), &verdict));
    }
    for i in pairing.unmatched_live {
        text.push_str(&format!(
            "===== {} ======\n--- live\n+++ desired\n",
            diff_heading(&live_refs[i])
        ));
        for line in removal_yaml(&live[i]).lines() {
            text.push_str(&format!("-{line}\n"));
        }
    }
    Ok(text)
}

/// A resource as `argocd app diff` heads it: `group/kind namespace/name`, the group empty
/// for the core group (`/ConfigMap web/config`).
pub fn diff_heading(r: &ResourceRef) -> String {
    format!("{}/{} {}/{}", r.group, r.kind, r.namespace, r.name)
}

/// A live object shown whole as YAML, with a Secret's values masked as the engine masks
/// them: the diff reaches the user's terminal.
fn removal_yaml(v: &Value) -> String {
    let mut v = v.clone();
    crate::diff::hide_secret_data(&mut v);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    serde_yaml_ng::to_string(&v).unwrap_or_default()
}

/// The name of the cluster an app deploys to (the key of KV `clusters`, the token of the
/// live-request subject), or why it has none.
pub fn destination_cluster<'a>(
    app: &Application,
    clusters: impl IntoIterator<Item = &'a Cluster>,
) -> Result<String, DestinationError> {
    let dest = &app.spec.destination;
    if dest.is_in_cluster() {
        return Ok(IN_CLUSTER_NAME.to_string());
    }
    if !dest.name.is_empty() {
        return Ok(dest.name.clone());
    }
    if dest.server.is_empty() {
        return Err(DestinationError::Unset {
            app: app.metadata.name.clone(),
        });
    }
    let server = dest.server.trim_end_matches('/');
    clusters
        .into_iter()
        .find(|c| c.server.trim_end_matches('/') == server)
        .map(|c| {
            if c.name.is_empty() {
                c.server.clone()
            } else {
                c.name.clone()
            }
        })
        .ok_or_else(|| DestinationError::UnknownServer {
            server: dest.server.clone(),
        })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("application {app} has no destination server or name")]
    Unset { app: String },
    #[error("cluster with server {server:?} not found")]
    UnknownServer { server: String },
}

fn resource_status(r: ResourceRef) -> ResourceStatus {
    ResourceStatus {
        group: r.group,
        version: r.version,
        kind: r.kind,
        namespace: r.namespace,
        name: r.name,
        ..ResourceStatus::default()
    }
}

fn to_status(h: health::Health) -> HealthStatus {
    HealthStatus {
        status: h.status,
        message: h.message,
        last_transition_time: None,
    }
}

fn wave(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(SYNC_WAVE))
        .and_then(Value::as_str)
        .and_then(|w| w.trim().parse().ok())
}

fn set_namespace(obj: &mut Value, ns: &str) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert("namespace".to_string(), Value::String(ns.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfleet_model::{Destination, ObjectMeta, TRACKING_ANNOTATION};
    use serde_json::json;

    fn app() -> Application {
        let mut app = Application {
            metadata: ObjectMeta {
                namespace: "argocd".into(),
                ..ObjectMeta::named("guestbook")
            },
            ..Application::default()
        };
        app.spec.destination = Destination {
            server: "https://kubernetes.default.svc".into(),
            namespace: "web".into(),
            ..Destination::default()
        };
        app
    }

    fn cm(data: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": data}})
    }

    #[test]
    fn desired_gets_namespace_and_tracking_id() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}});
        let out = prepare_desired(&[cm("a"), ns, json!("not an object")], &app(), "argocd");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["metadata"]["namespace"], "web");
        assert_eq!(
            out[0]["metadata"]["annotations"][TRACKING_ANNOTATION],
            "guestbook:/ConfigMap:web/cfg"
        );
        assert!(out[1]["metadata"].get("namespace").is_none());
        assert_eq!(
            out[1]["metadata"]["annotations"][TRACKING_ANNOTATION],
            "guestbook:/Namespace:/web"
        );
    }

    #[test]
    fn missing_matching_and_extra_resources() {
        let app = app();
        let desired = prepare_desired(&[cm("a")], &app, "argocd");

        let missing = compare(&app, &desired, &[]);
        assert_eq!(missing.sync, SyncStatusCode::OutOfSync);
        assert_eq!(missing.health, HealthStatusCode::Missing);

        let same = compare(&app, &desired, &desired);
        assert_eq!(same.sync, SyncStatusCode::Synced);
        assert_eq!(same.resources[0].status, Some(SyncStatusCode::Synced));
        assert_eq!(diff_text(&app, &desired, &desired, &[]).unwrap(), "");

        let changed = prepare_desired(&[cm("b")], &app, "argocd");
        assert_eq!(
            compare(&app, &desired, &changed).sync,
            SyncStatusCode::OutOfSync
        );
        assert!(
            diff_text(&app, &desired, &changed, &[])
                .unwrap()
                .contains("-  k: b")
        );

        let mut extra = prepare_desired(&[cm("a")], &app, "argocd");
        extra[0]["metadata"]["name"] = json!("old");
        let both = [desired.clone(), extra].concat();
        let pruned = compare(&app, &desired, &both);
        assert_eq!(pruned.sync, SyncStatusCode::OutOfSync);
        let old = pruned.resources.iter().find(|r| r.name == "old").unwrap();
        assert!(old.requires_pruning);
        let text = diff_text(&app, &desired, &both, &[]).unwrap();
        assert!(text.contains("===== /ConfigMap web/old ======"), "{text}");
    }

    #[test]
    fn an_extraneous_resource_that_says_ignore_extraneous_keeps_the_app_synced() {
        let app = app();
        let desired = prepare_desired(&[cm("a")], &app, "argocd");
        let mut extra = prepare_desired(&[cm("a")], &app, "argocd");
        extra[0]["metadata"]["name"] = json!("generated");
        extra[0]["metadata"]["annotations"]["argocd.argoproj.io/compare-options"] =
            json!("IgnoreExtraneous");
        let both = vec![desired[0].clone(), extra[0].clone()];
        let c = compare(&app, &desired, &both);
        assert_eq!(c.sync, SyncStatusCode::Synced);
        let shown = c.resources.iter().find(|r| r.name == "generated").unwrap();
        assert!(shown.requires_pruning);
        assert_eq!(shown.status, Some(SyncStatusCode::OutOfSync));

        // Only extraneous ones: a desired resource that differs still counts.
        let mut changed = desired.clone();
        changed[0]["data"]["k"] = json!("b");
        changed[0]["metadata"]["annotations"]["argocd.argoproj.io/compare-options"] =
            json!("IgnoreExtraneous");
        assert_eq!(
            compare(&app, &desired, &changed).sync,
            SyncStatusCode::OutOfSync
        );
    }

    #[test]
    fn resources_that_need_a_confirmation_say_so() {
        let mut app = app();
        let mut guarded = cm("a");
        guarded["metadata"]["annotations"] =
            json!({"argocd.argoproj.io/sync-options": "Delete=confirm"});
        let desired = prepare_desired(&[guarded, cm("b")], &app, "argocd");
        let c = compare(&app, &desired[..1], &desired[..1]);
        assert!(c.resources[0].requires_deletion_confirmation);
        app.spec.sync_policy = Some(gitfleet_model::SyncPolicy {
            sync_options: vec!["Prune=confirm".to_owned()].into(),
            ..Default::default()
        });
        let c = compare(&app, &desired[1..], &desired[1..]);
        assert!(c.resources[0].requires_deletion_confirmation);
    }

    #[test]
    fn a_custom_kind_found_cluster_scoped() {
        let app = app();
        let cr =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        let desired = prepare_desired(std::slice::from_ref(&cr), &app, "argocd");
        assert_eq!(desired[0]["metadata"]["namespace"], "web");
        let mut live = desired[0].clone();
        live["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        let c = compare(&app, &desired, &[live.clone()]);
        assert_eq!(c.resources.len(), 1, "{:?}", c.resources);
        assert!(!c.resources[0].requires_pruning);
        let text = diff_text(&app, &desired, &[live], &[]).unwrap();
        assert!(!text.contains("--- live\n+++ desired\n-"), "{text}");
    }

    #[test]
    fn hooks_are_not_compared() {
        let app = app();
        let hook = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate",
            "annotations": {"argocd.argoproj.io/hook": "PreSync"}}});
        let desired = prepare_desired(&[hook], &app, "argocd");
        let c = compare(&app, &desired, &desired);
        assert!(c.resources.is_empty());
        assert_eq!(c.sync, SyncStatusCode::Synced);
        assert_eq!(diff_text(&app, &desired, &desired, &[]).unwrap(), "");
    }

    #[test]
    fn destinations() {
        let clusters = [Cluster {
            server: "https://prod:6443".into(),
            name: "prod".into(),
            ..Cluster::default()
        }];
        let mut a = Application::default();
        let mut dest = |d: Destination| {
            a.spec.destination = d;
            destination_cluster(&a, &clusters)
        };
        let server = |s: &str| Destination {
            server: s.into(),
            ..Destination::default()
        };
        assert_eq!(
            dest(server("https://kubernetes.default.svc/")),
            Ok(IN_CLUSTER_NAME.into())
        );
        assert_eq!(dest(server("https://prod:6443")), Ok("prod".into()));
        assert!(
            dest(server("https://other"))
                .unwrap_err()
                .to_string()
                .contains("https://other")
        );
        let named = Destination {
            name: "edge".into(),
            ..Destination::default()
        };
        assert_eq!(dest(named), Ok("edge".into()));
        assert!(matches!(
            dest(Destination::default()),
            Err(DestinationError::Unset { .. })
        ));
    }

    #[test]
    fn revisions() {
        assert!(same_revision("", "HEAD"));
        assert!(!same_revision("main", "HEAD"));
    }
}
