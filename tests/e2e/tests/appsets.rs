//! ApplicationSets end to end: the reference document's list, Git directory and cluster
//! generators applied with `gitfleet apply`, the apps they generate synced to the
//! emulated cluster, and the set following a new directory and a (un)labelled cluster.

use std::time::Duration;

use gitfleet_bus::{Bucket, subject_token};
use gitfleet_e2e::{Sandbox, Timings};
use serde_json::Value;

fn configmap(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  from: git\n")
}

async fn set_status(sb: &Sandbox, name: &str) -> Option<Value> {
    let kv = sb.bus.kv(Bucket::AppSets).await.ok()?;
    let bytes = kv.get(subject_token(name)).await.ok()??;
    let set: Value = serde_json::from_slice(&bytes).ok()?;
    set.get("status").cloned()
}

/// `gitfleet apply -f` of a set written against the sandbox's repository.
async fn apply(sb: &Sandbox, yaml: &str) {
    let f = sb.file("set.yaml", &yaml.replace("REPO", &sb.repo_url()));
    let out = sb.cli(&["apply", "-f", &f]).await;
    assert_eq!(out.code, 0, "apply: {}", out.stdout);
}

const LIST_SET: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: microservices
  namespace: argocd
spec:
  generators:
  - list:
      elements:
      - service: api
        namespace: api
      - service: worker
        namespace: worker
  template:
    metadata:
      name: "{{service}}"
    spec:
      project: default
      source:
        repoURL: REPO
        path: "apps/services/{{service}}"
        targetRevision: main
      destination:
        server: https://kubernetes.default.svc
        namespace: "{{namespace}}"
      syncPolicy:
        automated:
          prune: true
          selfHeal: true
        syncOptions: [CreateNamespace=true]
"#;

const DIR_SET: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: services
  namespace: argocd
spec:
  generators:
  - git:
      repoURL: REPO
      revision: main
      directories:
      - path: "apps/services/*"
  template:
    metadata:
      name: "dir-{{path.basename}}"
    spec:
      project: default
      source: {repoURL: REPO, path: "{{path}}", targetRevision: main}
      destination: {server: https://kubernetes.default.svc, namespace: "dir-{{path.basename}}"}
"#;

const CLUSTER_SET: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: per-cluster
  namespace: argocd
spec:
  generators:
  - clusters:
      selector:
        matchLabels:
          environment: production
  template:
    metadata:
      name: "{{name}}-guestbook"
    spec:
      project: default
      source: {repoURL: REPO, path: apps/services/api, targetRevision: main}
      destination: {name: "{{name}}", namespace: "{{name}}"}
      syncPolicy:
        automated: {prune: true}
        syncOptions: [CreateNamespace=true]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reference_generators_make_and_follow_their_apps() {
    Box::pin(async {
        let sb = Sandbox::start(
            &[
                ("apps/services/api/cm.yaml", &configmap("api-config")),
                ("apps/services/worker/cm.yaml", &configmap("worker-config")),
            ],
            Timings::default(),
        )
        .await;

        // The list generator: `api` and `worker`, synced and healthy.
        apply(&sb, LIST_SET).await;
        for name in ["api", "worker"] {
            sb.until_stored_app(name, true, 60).await;
            sb.until_status(name, 90, "Synced and Healthy", |s| {
                Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
            })
            .await;
        }
        assert!(
            sb.live("", "configmaps", "worker", "worker-config")
                .is_some()
        );
        let api = sb.stored_app("api").await.unwrap();
        assert_eq!(
            api["metadata"]["ownerReferences"][0]["kind"],
            "ApplicationSet"
        );
        assert_eq!(
            api["metadata"]["ownerReferences"][0]["name"],
            "microservices"
        );
        assert_eq!(
            api["metadata"]["finalizers"][0],
            "resources-finalizer.argocd.argoproj.io"
        );
        let status = set_status(&sb, "microservices")
            .await
            .expect("status written");
        let up_to_date = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "ResourcesUpToDate")
            .unwrap();
        assert_eq!(up_to_date["status"], "True", "{status:#}");
        assert_eq!(status["resources"].as_array().unwrap().len(), 2);

        // The Git directory generator: one app per directory, and a new directory
        // committed (announced by a webhook) is a new app.
        apply(&sb, DIR_SET).await;
        sb.until_stored_app("dir-api", true, 60).await;
        sb.until_stored_app("dir-worker", true, 60).await;
        sb.commit(
            &[(
                "apps/services/cache/cm.yaml",
                Some(&configmap("cache-config")),
            )],
            "a new service",
        );
        sb.github_push().await;
        sb.until_stored_app("dir-cache", true, 60).await;

        // The cluster generator: nothing until a cluster is labelled production; `cluster
        // add --label` makes its app with no manifest change, and taking the label off
        // deletes the app and, through the resources finalizer, what it deployed.
        apply(&sb, CLUSTER_SET).await;
        let kubeconfig_text = sb.sim.kubeconfig();
        let kubeconfig = sb.file("kubeconfig", &kubeconfig_text);
        let parsed: Value = serde_yaml_ng::from_str(&kubeconfig_text).unwrap();
        let context = parsed["contexts"][0]["name"].as_str().unwrap().to_owned();
        let add = |extra: &'static [&'static str]| {
            let (kubeconfig, context) = (kubeconfig.clone(), context.clone());
            let sb = &sb;
            async move {
                let mut args = vec![
                    "cluster",
                    "add",
                    context.as_str(),
                    "--kubeconfig",
                    kubeconfig.as_str(),
                    "--name",
                    "prod-a",
                ];
                args.extend_from_slice(extra);
                let out = sb.cli(&args).await;
                assert_eq!(out.code, 0, "cluster add: {}", out.stdout);
            }
        };
        let status = set_status(&sb, "per-cluster").await;
        assert!(
            sb.stored_app("prod-a-guestbook").await.is_none(),
            "{status:?}"
        );
        add(&["--label", "environment=production"]).await;
        sb.until_stored_app("prod-a-guestbook", true, 60).await;
        sb.until_status("prod-a-guestbook", 90, "Synced", |s| {
            Sandbox::sync_status(s) == "Synced"
        })
        .await;
        assert!(sb.live("", "configmaps", "prod-a", "api-config").is_some());
        add(&["--upsert"]).await;
        sb.until_stored_app("prod-a-guestbook", false, 60).await;
        assert!(
            sb.live("", "configmaps", "prod-a", "api-config").is_none(),
            "the deleted app's resources are pruned"
        );
        // The other sets' apps are untouched.
        assert!(sb.stored_app("api").await.is_some() && sb.stored_app("dir-cache").await.is_some());

        // `appset generate`: what a set would make, nothing created.
        let f = sb.file(
            "preview.yaml",
            &LIST_SET
                .replace("REPO", &sb.repo_url())
                .replace("name: microservices", "name: preview")
                .replace("\"{{service}}\"\n", "\"preview-{{service}}\"\n"),
        );
        let out = sb.cli(&["appset", "generate", &f, "-o", "name"]).await;
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "preview-api\npreview-worker\n")
        );
        assert!(sb.stored_app("preview-api").await.is_none());
        let out = sb.cli(&["appset", "list", "-o", "name"]).await;
        assert_eq!(out.stdout, "microservices\nper-cluster\nservices\n");
        let out = sb.cli(&["appset", "get", "microservices"]).await;
        assert!(
            out.stdout.contains("ResourcesUpToDate") && out.stdout.contains("worker"),
            "{}",
            out.stdout
        );

        // A generator that fails deletes nothing: the set says why and keeps its apps.
        let broken = DIR_SET
            .replace("REPO", &sb.repo_url())
            .replace("revision: main", "revision: no-such-branch");
        let f = sb.file("broken.yaml", &broken);
        let out = sb.cli(&["appset", "create", "--upsert", &f]).await;
        assert_eq!(out.code, 0, "{}", out.stdout);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = set_status(&sb, "services").await.unwrap_or_default();
            let error = status["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "ErrorOccurred").cloned());
            if error.as_ref().is_some_and(|c| c["status"] == "True") {
                let message = error.unwrap()["message"].as_str().unwrap().to_owned();
                assert!(message.contains("no-such-branch"), "{message}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no error condition: {status:#}"
            );
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for name in ["dir-api", "dir-worker", "dir-cache"] {
            assert!(
                sb.stored_app(name).await.is_some(),
                "{name} was deleted by a failing generator"
            );
        }

        // Deleting a set deletes its apps and, through the finalizer, their resources.
        let out = sb.cli(&["appset", "delete", "microservices"]).await;
        assert_eq!(out.code, 0, "{}", out.stdout);
        sb.until_stored_app("api", false, 60).await;
        sb.until_stored_app("worker", false, 60).await;
        assert!(
            sb.live("", "configmaps", "worker", "worker-config")
                .is_none()
        );
    })
    .await;
}

const ROLLING_SET: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: rolling
  namespace: argocd
spec:
  generators:
  - list:
      elements:
      - env: dev
      - env: prod
  strategy:
    type: RollingSync
    rollingSync:
      steps:
      - matchExpressions:
        - {key: env, operator: In, values: [dev]}
      - matchExpressions:
        - {key: env, operator: In, values: [prod]}
        maxUpdate: 1
  template:
    metadata:
      name: "web-{{env}}"
      labels: {env: "{{env}}"}
    spec:
      project: default
      source: {repoURL: REPO, path: "web/{{env}}", targetRevision: main}
      destination: {server: https://kubernetes.default.svc, namespace: "web-{{env}}"}
      syncPolicy:
        automated: {prune: true}
        syncOptions: [CreateNamespace=true]
"#;

/// Progressive sync (issue 10 acceptance 6): the first step's app is synced, and the
/// second's only once the first is Healthy; the generated apps' own automated sync is
/// off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_sync_updates_step_by_step() {
    Box::pin(async {
        let sb = Sandbox::start(
            &[
                ("web/dev/deploy.yaml", gitfleet_e2e::DEPLOYMENT),
                ("web/prod/deploy.yaml", gitfleet_e2e::DEPLOYMENT),
            ],
            Timings::default(),
        )
        .await;
        apply(&sb, ROLLING_SET).await;
        sb.until_stored_app("web-dev", true, 60).await;
        sb.until_stored_app("web-prod", true, 60).await;
        let dev = sb.stored_app("web-dev").await.unwrap();
        assert!(
            dev["spec"]["syncPolicy"].get("automated").is_none(),
            "a rolling sync turns the app's own automated sync off: {dev:#}"
        );
        // Watch for prod's Deployment; when it first appears, dev must already be Healthy.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            if sb.live("apps", "deployments", "web-prod", "web").is_some() {
                let dev = sb.status("web-dev").await.expect("dev has a status");
                assert_eq!(
                    (Sandbox::sync_status(&dev), Sandbox::health(&dev)),
                    ("Synced", "Healthy"),
                    "the second step started before the first was Healthy"
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prod was never synced"
            );
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sb.until_status("web-prod", 90, "Synced and Healthy", |s| {
            Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
        })
        .await;
        // The set's own account of it: both Healthy, in steps 1 and 2, the rollout done.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = set_status(&sb, "rolling").await.unwrap_or_default();
            let progress: Vec<(String, String, String)> = status["applicationStatus"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            let s = |k: &str| p[k].as_str().unwrap_or("").to_owned();
                            (s("application"), s("step"), s("status"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let done = progress
                == [
                    (
                        "web-dev".to_string(),
                        "1".to_string(),
                        "Healthy".to_string(),
                    ),
                    (
                        "web-prod".to_string(),
                        "2".to_string(),
                        "Healthy".to_string(),
                    ),
                ];
            if done {
                let rollout = status["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["type"] == "RolloutProgressing")
                    .unwrap()
                    .clone();
                assert_eq!(rollout["status"], "False", "{rollout:#}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "rollout status: {status:#}"
            );
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}
