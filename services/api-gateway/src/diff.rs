//! `app diff` without a Git or cluster client: the gateway asks the git watcher to resolve
//! the revision, a renderer for the manifests and the cluster's executor for the live
//! objects, then compares with the engine.

use std::time::Duration;

use gitfleet_bus::{Bus, subject_token};
use gitfleet_engine::ResourceRef;
use gitfleet_engine::diff::{DiffOptions, IgnoreRule, compare, render_unified};
use gitfleet_engine::sync::builtin_scope;
use gitfleet_messages::{
    Live, LiveRequest, RenderRequest, Rendered, ResolveRequest, Resolved, git_resolve_subject,
    live_request_subject,
};
use gitfleet_model::Application;
use serde_json::Value;

use crate::bus_request::request;
use crate::error::{Error, Result};

pub struct AppDiff {
    pub text: String,
    pub has_diff: bool,
}

pub async fn diff(
    bus: &Bus,
    app: &Application,
    cluster: &str,
    timeout: Duration,
) -> Result<AppDiff> {
    let prefix = bus.topology.prefix();
    let mut desired = Vec::new();
    for source in app.spec.effective_sources() {
        if source.is_helm_chart() {
            return Err(Error::invalid(format!(
                "diff of helm chart sources ({}) is not supported yet",
                source.chart
            )));
        }
        let revision = if source.target_revision.is_empty() {
            "HEAD".to_string()
        } else {
            source.target_revision.clone()
        };
        let resolved: Resolved = request(
            bus,
            git_resolve_subject(prefix),
            &ResolveRequest {
                repo: source.repo_url.clone(),
                revision,
            },
            timeout,
            "resolving the revision",
        )
        .await?;
        let dir = source.directory.clone().unwrap_or_default();
        let rendered: Rendered = request(
            bus,
            bus.topology.render_subject(),
            &RenderRequest {
                repo: source.repo_url.clone(),
                commit: resolved.commit,
                path: source.path.clone(),
                recurse: dir.recurse,
                include: dir.include,
                exclude: dir.exclude,
            },
            timeout,
            "rendering the manifests",
        )
        .await?;
        desired.extend(rendered.manifests);
    }
    let live: Live = request(
        bus,
        live_request_subject(prefix, &subject_token(cluster)),
        &LiveRequest {
            app: app.metadata.name.clone(),
            cluster: cluster.to_string(),
        },
        timeout,
        &format!("live state of cluster {cluster:?}"),
    )
    .await?;
    compare_all(app, desired, &live.resources)
}

/// Compares every desired object with its live counterpart; live objects nothing desires
/// any more are shown as removals (what a sync with prune deletes).
pub fn compare_all(app: &Application, desired: Vec<Value>, live: &[Value]) -> Result<AppDiff> {
    let opts = DiffOptions {
        ignore_differences: app
            .spec
            .ignore_differences
            .iter()
            .map(IgnoreRule::from)
            .collect(),
    };
    let namespace = &app.spec.destination.namespace;
    let mut text = String::new();
    let mut seen = Vec::new();
    // Hooks run during a sync and are not part of the app's compared state.
    for mut obj in desired.into_iter().filter(|o| !is_hook(o)) {
        let r = ResourceRef::from_object(&obj);
        // Namespaced kinds (and custom kinds, usually namespaced) land in the
        // destination namespace when the manifest names none, as Argo CD does.
        if r.namespace.is_empty()
            && !namespace.is_empty()
            && builtin_scope(&r.group, &r.kind) != Some(false)
        {
            obj["metadata"]["namespace"] = Value::String(namespace.clone());
        }
        let r = ResourceRef::from_object(&obj);
        let counterpart = live
            .iter()
            .find(|l| ResourceRef::from_object(l).same_object(&r));
        let d = compare(&obj, counterpart, &opts).map_err(|e| Error::invalid(e.to_string()))?;
        text.push_str(&render_unified(&r.to_string(), &d));
        seen.push(r);
    }
    for l in live.iter().filter(|o| !is_hook(o)) {
        let r = ResourceRef::from_object(l);
        if seen.iter().any(|s| s.same_object(&r)) {
            continue;
        }
        text.push_str(&format!("===== {r} ======\n--- live\n+++ desired\n"));
        let yaml = removal_yaml(l);
        for line in yaml.lines() {
            text.push_str(&format!("-{line}\n"));
        }
    }
    Ok(AppDiff {
        has_diff: !text.is_empty(),
        text,
    })
}

/// A live object shown whole as YAML, with a Secret's values masked as the engine masks
/// them: the diff reaches the user's terminal.
fn removal_yaml(v: &Value) -> String {
    let mut v = v.clone();
    if v.get("kind").and_then(Value::as_str) == Some("Secret") {
        for field in ["data", "stringData"] {
            if let Some(map) = v.get_mut(field).and_then(Value::as_object_mut) {
                for value in map.values_mut() {
                    *value = Value::String("++++++++".to_string());
                }
            }
        }
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    serde_yaml_ng::to_string(&v).unwrap_or_default()
}

fn is_hook(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| {
            a.contains_key("argocd.argoproj.io/hook") || a.contains_key("helm.sh/hook")
        })
}
