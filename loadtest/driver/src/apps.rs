//! The load: N apps, each a directory `apps/app-NNNN/` holding one ConfigMap, and the
//! Argo CD Application for each, as the gateway would store it.

use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use gitfleet_bus::subject_token;
use gitfleet_gitkit::Upstream;
use serde_json::{Value, json};

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

/// The repository with every app at generation 0, pushed, under `work` (so it is kept with
/// the logs when a run fails).
pub fn repository(work: &Path, apps: usize) -> Upstream {
    let upstream = Upstream::new_in(work);
    for i in 0..apps {
        let name = app_name(i);
        upstream.write(&config_map_path(&name), &config_map(&name, 0));
    }
    upstream.commit("apps");
    upstream.push_all();
    upstream
}

fn application(name: &str, repo: &str, cluster: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": format!("apps/{name}")},
            "destination": {"name": cluster, "namespace": name},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
        },
    })
}

/// KV `applications` entries for `apps` apps, destinations round-robin over `clusters`.
/// Each goes through the model first, so a document the services would refuse fails here.
pub fn documents(apps: usize, repo_url: &str, clusters: &[String]) -> Result<Vec<(String, Bytes)>> {
    (0..apps)
        .map(|i| {
            let name = app_name(i);
            let v = application(&name, repo_url, &clusters[i % clusters.len()]);
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
    fn apps_go_round_robin_over_the_clusters() {
        let clusters = ["c0".to_string(), "c1".to_string()];
        let docs = documents(3, "git://127.0.0.1:1/origin.git", &clusters).unwrap();
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
