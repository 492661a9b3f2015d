//! A Helm chart and a Kustomize overlay in one repository, synced by hand into the
//! emulator: both reach Synced and Healthy; a commit that changes only the chart's values
//! file makes only the Helm app OutOfSync (the Kustomize app's render read nothing it
//! touched), and syncing it brings the new value to the cluster. `app manifests` prints
//! what the chart renders and what the cluster holds.

use std::time::Duration;

use gitfleet_e2e::{DEPLOYMENT, SERVICE, Sandbox, Timings, application};
use serde_json::Value;

const CHART: &str = "apiVersion: v2\nname: web\nversion: 1.0.0\n";
const VALUES: &str = "replicas: 2\nimage: nginx:1.25\n";
const HELPERS: &str = "{{- define \"web.name\" -}}{{ .Release.Name }}-web{{- end -}}\n";
const CHART_DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "web.name" . }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ include "web.name" . }}}
  template:
    metadata:
      labels: {app: {{ include "web.name" . }}}
    spec:
      containers:
      - name: web
        image: {{ .Values.image }}
"#;
const BASE: &str = "resources:\n  - deploy.yaml\n  - svc.yaml\n";
const PRODUCTION: &str = "resources:\n  - ../../base\nnamePrefix: prod-\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_helm_app_and_a_kustomize_app_sync_and_only_the_chart_follows_its_values() {
    let sb = Sandbox::start(
        &[
            ("charts/web/Chart.yaml", CHART),
            ("charts/web/values.yaml", VALUES),
            ("charts/web/values-prod.yaml", "replicas: 3\n"),
            ("charts/web/templates/_helpers.tpl", HELPERS),
            ("charts/web/templates/deploy.yaml", CHART_DEPLOY),
            ("apps/api/base/kustomization.yaml", BASE),
            ("apps/api/base/deploy.yaml", DEPLOYMENT),
            ("apps/api/base/svc.yaml", SERVICE),
            (
                "apps/api/overlays/production/kustomization.yaml",
                PRODUCTION,
            ),
        ],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    let chart = application("shop", &sb.repo_url(), "charts/web", None).replace(
        "    path: charts/web\n",
        "    path: charts/web\n    helm:\n      valueFiles:\n      - values-prod.yaml\n",
    );
    sb.create_app("shop", &chart).await;
    let overlay = application("api", &sb.repo_url(), "apps/api/overlays/production", None);
    sb.create_app("api", &overlay).await;
    for app in ["shop", "api"] {
        sb.until_status(app, 90, "OutOfSync before the first sync", |s| {
            Sandbox::sync_status(s) == "OutOfSync"
        })
        .await;
        assert_eq!(sb.cli(&["app", "sync", app]).await.code, 0);
        sb.until_status(app, 90, "Synced and Healthy", |s| {
            Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
        })
        .await;
    }
    let deploy = sb
        .live("apps", "deployments", "shop", "shop-web")
        .expect("the chart's Deployment, named by its helper");
    assert_eq!(
        deploy["spec"]["replicas"], 3,
        "values-prod.yaml wins over values.yaml"
    );
    assert!(sb.live("apps", "deployments", "api", "prod-web").is_some());

    // `app manifests`: what the chart renders, and what the cluster has, as YAML.
    let out = sb.cli(&["app", "manifests", "shop"]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let rendered = yaml_documents(&out.stdout);
    assert_eq!(rendered.len(), 1, "{}", out.stdout);
    assert_eq!(rendered[0]["metadata"]["name"], "shop-web");
    assert_eq!(rendered[0]["spec"]["replicas"], 3);
    let out = sb
        .cli(&["app", "manifests", "shop", "--source", "live"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let live = yaml_documents(&out.stdout);
    assert!(
        live.iter()
            .any(|m| m["kind"] == "Deployment" && m["metadata"]["uid"].is_string()),
        "the live object, with what the cluster adds: {}",
        out.stdout
    );
    assert_ne!(
        sb.cli(&["app", "manifests", "shop", "--source", "elsewhere"])
            .await
            .code,
        0
    );

    // Only the values file changes.
    let commit = sb.commit(
        &[("charts/web/values-prod.yaml", Some("replicas: 4\n"))],
        "prod: four replicas",
    );
    assert!(sb.github_push().await.is_success());
    sb.until_status(
        "shop",
        60,
        "the Helm app OutOfSync at the new commit",
        |s| Sandbox::sync_status(s) == "OutOfSync" && s["sync"]["revision"] == commit,
    )
    .await;
    // The Kustomize app is not compared again for a commit that does not touch what it
    // reads (as Argo CD's webhook does with manifest-generate-paths); a refresh shows it
    // Synced at the new commit.
    assert_eq!(sb.cli(&["app", "get", "api", "--refresh"]).await.code, 0);
    sb.until_status(
        "api",
        60,
        "the Kustomize app Synced at the new commit",
        |s| Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == commit,
    )
    .await;

    assert_eq!(sb.cli(&["app", "sync", "shop"]).await.code, 0);
    sb.until(60, "four replicas in the cluster", |sb| {
        sb.live("apps", "deployments", "shop", "shop-web")
            .is_some_and(|d| d["spec"]["replicas"] == 4)
    })
    .await;
    sb.until_status("shop", 60, "Synced again", |s| {
        Sandbox::sync_status(s) == "Synced"
    })
    .await;

    // `app diff --local DIR --server-side-generate`: a local copy of the chart, rendered
    // by gitfleet with the app's Helm settings (values-prod.yaml), which `--local` alone
    // refuses to render.
    let local = sb.work.path().join("chart");
    std::fs::create_dir_all(local.join("templates")).unwrap();
    std::fs::write(local.join("Chart.yaml"), CHART).unwrap();
    std::fs::write(local.join("values.yaml"), VALUES).unwrap();
    std::fs::write(local.join("values-prod.yaml"), "replicas: 4\n").unwrap();
    std::fs::write(local.join("templates/_helpers.tpl"), HELPERS).unwrap();
    std::fs::write(local.join("templates/deploy.yaml"), CHART_DEPLOY).unwrap();
    let dir = local.to_str().unwrap();
    let out = sb.cli(&["app", "diff", "shop", "--local", dir]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stdout.contains("renders with helm") && out.stdout.contains("--server-side-generate"),
        "{}",
        out.stdout
    );
    let out = sb
        .cli(&[
            "app",
            "diff",
            "shop",
            "--local",
            dir,
            "--server-side-generate",
        ])
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    std::fs::write(local.join("values-prod.yaml"), "replicas: 5\n").unwrap();
    let out = sb
        .cli(&[
            "app",
            "diff",
            "shop",
            "--local",
            dir,
            "--server-side-generate",
        ])
        .await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("===== apps/Deployment shop/shop-web ======")
            && out.stdout.contains("-  replicas: 4")
            && out.stdout.contains("+  replicas: 5"),
        "{}",
        out.stdout
    );
    // A template that does not parse: Helm's error, named.
    std::fs::write(local.join("templates/broken.yaml"), "{{ .Values.nope ").unwrap();
    let out = sb
        .cli(&[
            "app",
            "diff",
            "shop",
            "--local",
            dir,
            "--server-side-generate",
        ])
        .await;
    assert_ne!(out.code, 0);
    assert!(out.stdout.contains("broken.yaml"), "{}", out.stdout);
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Argo CD's multi-source form: the chart from one source, its values file from a `ref`
/// source (`$values/...`). Synced and Healthy with the ref's values; a commit to the
/// values file alone (outside the chart's path) reaches the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_source_app_takes_its_values_from_the_ref_source() {
    let sb = Sandbox::start(
        &[
            ("charts/web/Chart.yaml", CHART),
            ("charts/web/values.yaml", VALUES),
            ("charts/web/templates/_helpers.tpl", HELPERS),
            ("charts/web/templates/deploy.yaml", CHART_DEPLOY),
            ("envs/prod/web.yaml", "replicas: 5\n"),
        ],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    let repo = sb.repo_url();
    let yaml = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: multi\n  namespace: argocd\nspec:\n  project: default\n  sources:\n  - repoURL: {repo}\n    targetRevision: main\n    path: charts/web\n    helm:\n      valueFiles:\n      - $values/envs/prod/web.yaml\n  - repoURL: {repo}\n    targetRevision: main\n    ref: values\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: multi\n  syncPolicy:\n    automated:\n      prune: true\n    syncOptions:\n    - CreateNamespace=true\n"
    );
    sb.create_app("multi", &yaml).await;
    sb.until_status("multi", 90, "Synced and Healthy", |s| {
        Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
    })
    .await;
    assert_eq!(
        sb.live("apps", "deployments", "multi", "multi-web")
            .unwrap()["spec"]["replicas"],
        5
    );

    let commit = sb.commit(&[("envs/prod/web.yaml", Some("replicas: 6\n"))], "six");
    assert!(sb.github_push().await.is_success());
    sb.until(60, "the ref source's new value in the cluster", |sb| {
        sb.live("apps", "deployments", "multi", "multi-web")
            .is_some_and(|d| d["spec"]["replicas"] == 6)
    })
    .await;
    sb.until_status("multi", 60, "Synced at the new commit", |s| {
        Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == commit
    })
    .await;
}
