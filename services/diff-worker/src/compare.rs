//! Desired against live for one app, pure: prepares the rendered manifests the way a sync
//! will apply them (destination namespace, tracking annotation) and turns the engine's
//! per-resource verdicts into Argo CD's `status.resources`, sync status and health.

use gitfleet_engine::ResourceRef;
use gitfleet_engine::diff::{self, DiffOptions, IgnoreRule};
use gitfleet_engine::health;
use gitfleet_engine::status::{app_health, app_sync_status};
use gitfleet_engine::sync::{HELM_HOOK, HOOK, SYNC_WAVE, builtin_scope};
use gitfleet_engine::tracking::{self, TrackingMethod};
use gitfleet_model::{Application, HealthStatus, HealthStatusCode, ResourceStatus, SyncStatusCode};
use serde_json::{Map, Value};

/// The verdict on one app.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub resources: Vec<ResourceStatus>,
    pub sync: SyncStatusCode,
    pub health: HealthStatusCode,
    /// Resources the engine could not compare (e.g. unsupported ignoreDifferences).
    pub errors: Vec<String>,
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

/// Hooks run during syncs; like Argo CD, they are not compared.
pub fn is_hook(obj: &Value) -> bool {
    let annotations = obj.pointer("/metadata/annotations");
    [HOOK, HELM_HOOK].iter().any(|k| {
        annotations
            .and_then(|a| a.get(*k))
            .is_some_and(|v| v.is_string())
    })
}

/// Compares prepared desired objects with the app's live resources.
pub fn compare(app: &Application, desired: &[Value], live: &[Value]) -> Comparison {
    let opts = DiffOptions {
        ignore_differences: app
            .spec
            .ignore_differences
            .iter()
            .map(IgnoreRule::from)
            .collect(),
    };
    let live_refs: Vec<ResourceRef> = live.iter().map(ResourceRef::from_object).collect();
    let mut matched = vec![false; live.len()];
    let mut resources = Vec::new();
    let mut errors = Vec::new();
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
        let live_obj = found.map(|i| &live[i]);
        let status = match diff::compare(d, live_obj, &opts) {
            Ok(verdict) => verdict.sync,
            Err(err) => {
                errors.push(err.to_string());
                SyncStatusCode::Unknown
            }
        };
        resources.push(ResourceStatus {
            health: health::assess_or_missing(live_obj).map(to_status),
            status: Some(status),
            sync_wave: wave(d),
            ..resource_status(r)
        });
    }
    for (i, l) in live.iter().enumerate() {
        if matched[i] || is_hook(l) {
            continue;
        }
        resources.push(ResourceStatus {
            health: health::assess(l).map(to_status),
            status: Some(SyncStatusCode::OutOfSync),
            requires_pruning: true,
            ..resource_status(live_refs[i].clone())
        });
    }
    resources.sort_by(|a, b| {
        (&a.group, &a.kind, &a.namespace, &a.name).cmp(&(&b.group, &b.kind, &b.namespace, &b.name))
    });
    Comparison {
        sync: app_sync_status(&resources),
        health: app_health(&resources),
        resources,
        errors,
    }
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

        let changed = prepare_desired(&[cm("b")], &app, "argocd");
        assert_eq!(
            compare(&app, &desired, &changed).sync,
            SyncStatusCode::OutOfSync
        );

        let mut extra = prepare_desired(&[cm("a")], &app, "argocd");
        extra[0]["metadata"]["name"] = json!("old");
        let both = [desired.clone(), extra].concat();
        let pruned = compare(&app, &desired, &both);
        assert_eq!(pruned.sync, SyncStatusCode::OutOfSync);
        let old = pruned.resources.iter().find(|r| r.name == "old").unwrap();
        assert!(old.requires_pruning);
    }

    #[test]
    fn hooks_are_not_compared() {
        let app = app();
        let hook = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate",
            "annotations": {"argocd.argoproj.io/hook": "PreSync"}}});
        let desired = prepare_desired(&[hook], &app, "argocd");
        let c = compare(&app, &desired, &[]);
        assert!(c.resources.is_empty());
        assert_eq!(c.sync, SyncStatusCode::Synced);
    }
}
