//! Renderer and the real git-watcher over one nats-server, reading a real repository
//! (served over `file://`): what a diff worker's render request does in production.

use std::time::Duration;

use gitfleet_bus::testkit;
use gitfleet_gitkit::git;
use gitfleet_messages::{RenderRequest, Rendered, Reply};
use gitfleet_model::{ApplicationSource, DirectorySource};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_a_directory_of_a_real_repository() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("repo");
    std::fs::create_dir_all(work.join("apps/web/extra")).unwrap();
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        work.join("apps/web/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n",
    )
    .unwrap();
    std::fs::write(
        work.join("apps/web/extra/cm.json"),
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"extra"}}"#,
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    let repo = format!("file://{}", work.display());

    let bus = testkit::bus().await;
    let mirrors = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    // Both answer requests once started.
    let watcher = git_watcher::start(
        git_watcher::Config::new(mirrors.path()).allowing_local_repositories(),
        bus.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let renderer = renderer::start(renderer::Config::default(), bus.clone(), shutdown.clone())
        .await
        .unwrap();
    let (watcher, renderer) = (tokio::spawn(watcher.wait()), tokio::spawn(renderer.wait()));

    let request = RenderRequest {
        repo: repo.clone(),
        commit,
        source: ApplicationSource {
            repo_url: repo,
            path: "apps/web".into(),
            directory: Some(DirectorySource {
                recurse: true,
                ..DirectorySource::default()
            }),
            ..ApplicationSource::default()
        },
        app_name: "web".into(),
        namespace: String::new(),
        refs: Vec::new(),
        local_files: Vec::new(),
    };
    let message = tokio::time::timeout(
        Duration::from_secs(30),
        bus.client.request(
            bus.topology.render_subject(),
            serde_json::to_vec(&request).unwrap().into(),
        ),
    )
    .await
    .expect("render reply in time")
    .expect("render reply");
    let body = bus.read_payload(&message).await.unwrap();
    let reply: Reply<Rendered> = serde_json::from_slice(&body).unwrap();
    let rendered = reply.into_result().unwrap();
    let kinds: Vec<_> = rendered
        .manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["kind"].as_str().unwrap(),
                m["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(kinds, ["Deployment/web", "Service/web", "ConfigMap/extra"]);

    shutdown.cancel();
    for task in [
        watcher.await.unwrap().map_err(|e| e.to_string()),
        renderer.await.unwrap().map_err(|e| e.to_string()),
    ] {
        task.unwrap();
    }
}
