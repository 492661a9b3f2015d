//! An Application of a chart from a Helm repository served on localhost (`chart:` and
//! `targetRevision: ^1.0`), through every service: the diff worker resolves the
//! constraint with the git watcher, the renderer renders the archive, the app syncs and
//! turns Synced and Healthy at the chart version; a newer matching version published to
//! the repository is picked up on refresh and reaches the cluster.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::get;
use gitfleet_e2e::{Sandbox, Timings};

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// The chart `web` at `version`: a Deployment whose replica count is the version's minor.
fn package(version: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let minor = version.split('.').nth(1).unwrap();
    write(
        "web/Chart.yaml",
        &format!("apiVersion: v2\nname: web\nversion: {version}\n"),
    );
    write("web/values.yaml", &format!("replicas: {minor}\n"));
    write(
        "web/templates/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n",
    );
    let archive = dir.path().join("web.tgz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .arg("web")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(archive).unwrap()
}

/// Publishes `versions` of `web`: the archives and an index listing them.
fn publish(files: &Files, versions: &[&str]) {
    let mut files = files.lock().unwrap();
    let mut index = String::from("apiVersion: v1\nentries:\n  web:\n");
    for version in versions {
        files.insert(format!("web-{version}.tgz"), package(version));
        index.push_str(&format!(
            "  - name: web\n    version: {version}\n    urls: [web-{version}.tgz]\n"
        ));
    }
    files.insert("index.yaml".into(), index.into_bytes());
}

async fn serve(files: Files) -> String {
    async fn file(
        State(files): State<Files>,
        UrlPath(name): UrlPath<String>,
    ) -> Result<Vec<u8>, StatusCode> {
        files
            .lock()
            .unwrap()
            .get(&name)
            .cloned()
            .ok_or(StatusCode::NOT_FOUND)
    }
    let app = axum::Router::new()
        .route("/charts/{name}", get(file))
        .with_state(files);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/charts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chart_from_a_helm_repository_syncs_and_follows_new_versions() {
    let files: Files = Arc::default();
    publish(&files, &["1.2.0", "2.0.0"]);
    let repo = serve(files.clone()).await;
    let sb = Sandbox::start(
        &[("README.md", "# charts live elsewhere\n")],
        Timings {
            poll: Duration::from_secs(1),
            refresh: Duration::from_secs(1),
        },
    )
    .await;
    let yaml = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: shop\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {repo}\n    chart: web\n    targetRevision: ^1.0\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: shop\n  syncPolicy:\n    automated:\n      prune: true\n    syncOptions:\n    - CreateNamespace=true\n"
    );
    sb.create_app("shop", &yaml).await;
    sb.until_status("shop", 90, "Synced and Healthy at 1.2.0", |s| {
        Sandbox::sync_status(s) == "Synced"
            && Sandbox::health(s) == "Healthy"
            && s["sync"]["revision"] == "1.2.0"
    })
    .await;
    assert_eq!(
        sb.live("apps", "deployments", "shop", "shop").unwrap()["spec"]["replicas"],
        2
    );

    // A newer version the constraint allows: picked up once the index is read again.
    publish(&files, &["1.2.0", "1.3.0", "2.0.0"]);
    sb.until_status("shop", 120, "Synced at 1.3.0", |s| {
        Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == "1.3.0"
    })
    .await;
    sb.until(60, "three replicas in the cluster", |sb| {
        sb.live("apps", "deployments", "shop", "shop")
            .is_some_and(|d| d["spec"]["replicas"] == 3)
    })
    .await;
}
