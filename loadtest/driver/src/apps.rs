//! The load: N apps, each a directory `apps/app-NNNN/` holding one ConfigMap (and, with
//! `--shape hooked`, a PreSync hook Job), and the Argo CD Application for each, as the
//! gateway would store it.

use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use gitfleet_bus::subject_token;
use gitfleet_gitkit::Upstream;
use serde_json::{Value, json};

use crate::args::Shape;

/// The name of every app's PreSync hook Job (in the app's namespace).
pub const HOOK_JOB: &str = "presync";

pub fn app_name(i: usize) -> String {
    format!("app-{i:04}")
}

/// The one file of an app; a new `generation` is a new commit for that app alone.
pub fn config_map(app: &str, generation: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: load\ndata:\n  app: {app}\n  generation: \"{generation}\"\n"
    )
}

/// Where an app's ConfigMap is in the repository.
pub fn config_map_path(app: &str) -> String {
    format!("apps/{app}/cm.yaml")
}

/// The PreSync hook of the `hooked` shape: a Job as small as Argo CD's hook examples,
/// run before every sync of its app and deleted once it succeeded.
pub fn hook_job() -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {HOOK_JOB}\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: presync\n        image: busybox:1.36\n        command: [\"sh\", \"-c\", \"echo pre-sync\"]\n"
    )
}

/// The repository with every app at generation 0, pushed, under `work` (so it is kept with
/// the logs when a run fails).
pub fn repository(work: &Path, apps: usize, shape: Shape) -> Upstream {
    let upstream = Upstream::new_in(work);
    for i in 0..apps {
        let name = app_name(i);
        upstream.write(&config_map_path(&name), &config_map(&name, 0));
        if shape == Shape::Hooked {
            upstream.write(&format!("apps/{name}/hook.yaml"), &hook_job());
        }
    }
    upstream.commit("apps");
    upstream.push_all();
    upstream
}

/// The repository of `--appset-services`: `services/sNN/cm.yaml`, one per service.
pub fn service_repository(work: &Path, services: usize) -> Upstream {
    let upstream = Upstream::new_in(work);
    for j in 0..services {
        let name = service_name(j);
        upstream.write(&format!("services/{name}/cm.yaml"), &config_map(&name, 0));
    }
    upstream.commit("services");
    upstream.push_all();
    upstream
}

pub fn service_name(j: usize) -> String {
    format!("s{j:02}")
}

/// The ApplicationSet of `--appset-services`: every cluster labelled `fleet: load` times
/// `services` services, app `<cluster>-<service>` deploying `services/<service>` into
/// namespace `<service>`; validated by the model, keyed for KV `appsets`.
pub fn application_set(services: usize, repo: &str) -> Result<(String, Bytes)> {
    let elements: Vec<Value> = (0..services)
        .map(|j| json!({"service": service_name(j)}))
        .collect();
    let v = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "argocd"},
        "spec": {
            "generators": [{"matrix": {"generators": [
                {"clusters": {"selector": {"matchLabels": {"fleet": "load"}}}},
                {"list": {"elements": elements}},
            ]}}],
            "template": {
                "metadata": {"name": "{{name}}-{{service}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo, "targetRevision": "main", "path": "services/{{service}}"},
                    "destination": {"name": "{{name}}", "namespace": "{{service}}"},
                    "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
                },
            },
        },
    });
    let set: gitfleet_model::ApplicationSet =
        serde_json::from_value(v).context("applicationset document")?;
    set.validate().context("applicationset document")?;
    Ok((subject_token("fleet"), serde_json::to_vec(&set)?.into()))
}

fn application(name: &str, repo: &str, cluster: &str, compare_options: Option<&str>) -> Value {
    let mut metadata = json!({"name": name, "namespace": "argocd"});
    if let Some(options) = compare_options {
        metadata["annotations"] = json!({"argocd.argoproj.io/compare-options": options});
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": metadata,
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": format!("apps/{name}")},
            "destination": {"name": cluster, "namespace": name},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
        },
    })
}

/// KV `applications` entries for `apps` apps, destinations round-robin over `clusters`,
/// each with `compare_options` when given. Each goes through the model first, so a
/// document the services would refuse fails here.
pub fn documents(
    apps: usize,
    repo_url: &str,
    clusters: &[String],
    compare_options: Option<&str>,
) -> Result<Vec<(String, Bytes)>> {
    (0..apps)
        .map(|i| {
            let name = app_name(i);
            let v = application(
                &name,
                repo_url,
                &clusters[i % clusters.len()],
                compare_options,
            );
            let app: gitfleet_model::Application =
                serde_json::from_value(v).context("application document")?;
            Ok((subject_token(&name), serde_json::to_vec(&app)?.into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_is_a_presync_job_deleted_when_it_succeeds() {
        let job: Value = serde_yaml_ng::from_str(&hook_job()).unwrap();
        assert_eq!(job["kind"], "Job");
        assert_eq!(job["metadata"]["name"], HOOK_JOB);
        let a = &job["metadata"]["annotations"];
        assert_eq!(a["argocd.argoproj.io/hook"], "PreSync");
        assert_eq!(a["argocd.argoproj.io/hook-delete-policy"], "HookSucceeded");
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    }

    #[test]
    fn apps_go_round_robin_over_the_clusters() {
        let clusters = ["c0".to_string(), "c1".to_string()];
        let docs = documents(
            3,
            "git://127.0.0.1:1/origin.git",
            &clusters,
            Some("ServerSideDiff=true"),
        )
        .unwrap();
        let first: Value = serde_json::from_slice(&docs[0].1).unwrap();
        assert_eq!(
            first["metadata"]["annotations"]["argocd.argoproj.io/compare-options"],
            "ServerSideDiff=true"
        );
        let dest: Vec<(String, String)> = docs
            .iter()
            .map(|(k, v)| {
                let v: Value = serde_json::from_slice(v).unwrap();
                (
                    k.clone(),
                    v["spec"]["destination"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            dest,
            [
                ("app-0000".into(), "c0".into()),
                ("app-0001".into(), "c1".into()),
                ("app-0002".into(), "c0".into()),
            ]
        );
    }
}
