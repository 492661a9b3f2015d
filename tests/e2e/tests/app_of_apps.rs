//! App of Apps, as the reference overview lays it out: a root app pointing at a directory
//! of Application YAMLs registers them with gitfleet (not with the cluster); adding a file
//! adds an app, removing it prunes the app and, through its resources finalizer, what it
//! deployed. With `argocd-cm`'s Application health customization the root's health
//! follows its children, and sync waves order the child apps: the wave-1 child is not
//! registered until the wave-0 child is Healthy. Deleting the root with cascade takes
//! every child and its resources with it.

use std::collections::BTreeMap;
use std::time::Duration;

use gitfleet_bus::{Bucket, subject_token};
use gitfleet_e2e::{AUTOMATED, CONFIGMAP, DEPLOYMENT, Sandbox, Timings, application};
use serde_json::Value;

/// The documented customization (Argo CD's health docs, "Argo CD App").
const APPLICATION_HEALTH: &str = r#"hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil then
  if obj.status.health ~= nil then
    hs.status = obj.status.health.status
    if obj.status.health.message ~= nil then
      hs.message = obj.status.health.message
    end
  end
end
return hs
"#;

/// A Pod the emulator keeps in CrashLoopBackOff: Degraded.
const CRASHING_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: migrate\n  annotations: {sim.gitfleet.dev/outcome: crashloop}\nspec:\n  containers:\n  - name: migrate\n    image: busybox:1.36\n";

/// A child Application as committed to the root's folder: cascade-deleting, in `wave`.
fn child(name: &str, repo: &str, wave: i32) -> String {
    application(name, repo, &format!("services/{name}"), Some(AUTOMATED)).replace(
        "  namespace: argocd\n",
        &format!(
            "  namespace: argocd\n  finalizers:\n  - resources-finalizer.argocd.argoproj.io\n  annotations:\n    argocd.argoproj.io/sync-wave: \"{wave}\"\n"
        ),
    )
}

/// The reference overview's root-app.yaml, for the sandbox repository.
fn root(repo: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: root\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {repo}\n    path: apps/applications\n    targetRevision: main\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: argocd\n  syncPolicy:\n    automated:\n      prune: true\n      selfHeal: true\n"
    )
}

fn resource_health<'a>(status: &'a Value, kind: &str, name: &str) -> Option<&'a str> {
    status["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .and_then(|r| r["health"]["status"].as_str())
}

fn synced_healthy(s: &Value) -> bool {
    Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_root_app_registers_orders_and_prunes_its_child_apps() {
    Box::pin(async {
        // The wave-0 child's manifests are not committed yet: it cannot become Healthy.
        let sb = Sandbox::start(
            &[
                ("apps/applications/.keep", ""),
                ("services/worker/deploy.yaml", DEPLOYMENT),
                ("services/database/cm.yaml", CONFIGMAP),
            ],
            Timings::default(),
        )
        .await;
        let repo = sb.repo_url();
        sb.commit(
            &[
                ("apps/applications/api.yaml", Some(&child("api", &repo, 0))),
                (
                    "apps/applications/worker.yaml",
                    Some(&child("worker", &repo, 1)),
                ),
            ],
            "two child apps",
        );
        // argocd-cm with the documented Application health check, as the declarative
        // setup stores it.
        let settings = sb.bus.kv(Bucket::Settings).await.expect("settings bucket");
        let cm = BTreeMap::from([(
            "resource.customizations.health.argoproj.io_Application".to_owned(),
            APPLICATION_HEALTH.to_owned(),
        )]);
        let body = sb
            .bus
            .encode_document(Bucket::Settings, "argocd-cm", &cm)
            .unwrap();
        settings.put("argocd-cm", body.into()).await.unwrap();

        sb.create_app("root", &root(&repo)).await;

        // Wave 0: api is registered (in gitfleet, not in the cluster), tracked by the root.
        sb.until_stored_app("api", true, 60).await;
        let api = sb.stored_app("api").await.unwrap();
        assert_eq!(
            api["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
            "root:argoproj.io/Application:argocd/api"
        );
        assert!(
            sb.live("argoproj.io", "applications", "argocd", "api")
                .is_none()
        );
        // api cannot render (its folder is not there): not Healthy, so the root's sync
        // waits in wave 0 and worker (wave 1) is not registered.
        sb.until_status("api", 60, "the render error", |s| {
            Sandbox::health(s) == "Unknown"
        })
        .await;
        let root_status = sb
            .until_status("root", 60, "api seen by the root", |s| {
                resource_health(s, "Application", "api").is_some()
            })
            .await;
        assert_ne!(Sandbox::sync_status(&root_status), "Synced");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < deadline {
            assert!(
                sb.stored_app("worker").await.is_none(),
                "wave 1 registered before wave 0 was Healthy"
            );
            // Poll interval of a bounded observation window.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // api's manifests arrive: it syncs, turns Healthy, and the root goes on.
        sb.commit(
            &[("services/api/deploy.yaml", Some(DEPLOYMENT))],
            "api's manifests",
        );
        sb.github_push().await;
        sb.until_status("api", 120, "api Synced and Healthy", synced_healthy)
            .await;
        sb.until_stored_app("worker", true, 120).await;
        sb.until_status("worker", 120, "worker Synced and Healthy", synced_healthy)
            .await;
        // The root shows its children as its resources, with their own health (a child's
        // status reaches its parent a reconciliation later: wait for both).
        let root_status = sb
            .until_status(
                "root",
                120,
                "root Synced and Healthy with its children",
                |s| {
                    synced_healthy(s)
                        && resource_health(s, "Application", "api") == Some("Healthy")
                        && resource_health(s, "Application", "worker") == Some("Healthy")
                },
            )
            .await;
        assert_eq!(
            resource_health(&root_status, "Application", "api"),
            Some("Healthy")
        );
        assert_eq!(
            resource_health(&root_status, "Application", "worker"),
            Some("Healthy")
        );
        assert!(sb.live("apps", "deployments", "api", "web").is_some());
        assert!(sb.live("apps", "deployments", "worker", "web").is_some());
        // `app diff` reads the children as the diff worker does: nothing to show.
        let out = sb.cli(&["app", "diff", "root"]).await;
        assert_eq!(out.code, 0, "app diff root: {}", out.stdout);
        // The write log: worker's Deployment came after api's.
        assert!(
            sb.first_apply("deployments.apps", "api")
                < sb.first_apply("deployments.apps", "worker")
        );

        // Adding a file adds an app.
        sb.commit(
            &[(
                "apps/applications/database.yaml",
                Some(&child("database", &repo, 0)),
            )],
            "a third service",
        );
        sb.github_push().await;
        sb.until_stored_app("database", true, 120).await;
        sb.until_status("database", 120, "database Synced", synced_healthy)
            .await;
        assert!(
            sb.live("", "configmaps", "database", "web-config")
                .is_some()
        );

        // The parent's health follows its children's: a child gone Degraded makes it so.
        sb.commit(
            &[("services/database/pod.yaml", Some(CRASHING_POD))],
            "a crashing pod",
        );
        sb.github_push().await;
        sb.until_status("root", 120, "root Degraded through database", |s| {
            Sandbox::health(s) == "Degraded"
                && resource_health(s, "Application", "database") == Some("Degraded")
        })
        .await;
        sb.commit(
            &[("services/database/pod.yaml", None)],
            "the crashing pod removed",
        );
        sb.github_push().await;
        sb.until_status("root", 120, "root Healthy again", |s| {
            synced_healthy(s) && resource_health(s, "Application", "database") == Some("Healthy")
        })
        .await;

        // Removing one prunes the app and, by its finalizer, what it deployed.
        sb.commit(&[("apps/applications/worker.yaml", None)], "worker retired");
        sb.github_push().await;
        sb.until_stored_app("worker", false, 120).await;
        sb.until(120, "worker's Deployment deleted", |sb| {
            sb.live("apps", "deployments", "worker", "web").is_none()
        })
        .await;
        assert!(sb.status("worker").await.is_none());
        sb.until_status("root", 120, "root Synced without worker", |s| {
            synced_healthy(s) && resource_health(s, "Application", "worker").is_none()
        })
        .await;
        // A child edited by hand is drift the root heals (selfHeal).
        let kv = sb.bus.kv(Bucket::Applications).await.unwrap();
        let mut api = sb.stored_app("api").await.unwrap();
        api["spec"]["source"]["path"] = "services/elsewhere".into();
        kv.put(
            subject_token("api"),
            serde_json::to_vec(&api).unwrap().into(),
        )
        .await
        .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let path = sb.stored_app("api").await.unwrap()["spec"]["source"]["path"].clone();
            if path == "services/api" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the root did not heal api's path: {path}"
            );
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Cascade delete of the root: every child app and its resources go.
        let out = sb.cli(&["app", "delete", "root", "-y"]).await;
        assert_eq!(out.code, 0, "{}", out.stdout);
        for app in ["root", "api", "database"] {
            sb.until_stored_app(app, false, 120).await;
        }
        assert!(sb.live("apps", "deployments", "api", "web").is_none());
        assert!(
            sb.live("", "configmaps", "database", "web-config")
                .is_none()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_child_fails_the_parents_sync_by_name_and_the_others_register() {
    Box::pin(async {
        let sb = Sandbox::start(&[("services/good/cm.yaml", CONFIGMAP)], Timings::default()).await;
        let repo = sb.repo_url();
        // No destination: not an Application Argo CD would accept.
        let broken = child("broken", &repo, 0).replace(
            "  destination:\n    server: https://kubernetes.default.svc\n    namespace: broken\n",
            "",
        );
        assert!(!broken.contains("destination"));
        sb.commit(
            &[
                (
                    "apps/applications/good.yaml",
                    Some(&child("good", &repo, 0)),
                ),
                ("apps/applications/broken.yaml", Some(&broken)),
            ],
            "a good child and a broken one",
        );
        // One quick retry, so the failure is final within the test.
        let root = root(&repo).replace(
            "      selfHeal: true\n",
            "      selfHeal: true\n    retry:\n      limit: 1\n      backoff: {duration: 1s}\n",
        );
        sb.create_app("root", &root).await;

        sb.until_stored_app("good", true, 60).await;
        sb.until_status("good", 120, "good Synced and Healthy", synced_healthy)
            .await;
        let ops = sb.bus.kv(Bucket::Operations).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let op = loop {
            let op: Option<Value> = ops
                .get(subject_token("root"))
                .await
                .unwrap()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(op) = op.as_ref().filter(|o| o["phase"] == "Failed") {
                break op.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the root's sync did not fail: {op:?}"
            );
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let message = op["message"].as_str().unwrap();
        assert!(
            message.contains("Application \"broken\"") && message.contains("destination"),
            "{message}"
        );
        assert!(sb.stored_app("broken").await.is_none());
        let status = sb.status("root").await.unwrap();
        assert_eq!(Sandbox::sync_status(&status), "OutOfSync");
    })
    .await;
}
