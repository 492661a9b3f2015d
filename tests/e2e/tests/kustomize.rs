//! A Kustomize app the way Argo CD's documentation writes one (a base, a production
//! overlay, app-level overrides) syncs into the emulator and turns Synced and Healthy; a
//! commit that changes only the shared base reaches it (the render read the base, so the
//! commit touches the app although it is outside the app's path), and a commit elsewhere
//! leaves it alone.

use std::time::Duration;

use gitfleet_e2e::{AUTOMATED, DEPLOYMENT, SERVICE, Sandbox, Timings, application};

const BASE: &str = "resources:\n  - deploy.yaml\n  - svc.yaml\n";
const PRODUCTION: &str = "resources:\n  - ../../base\nnamePrefix: prod-\n";
const README: &str = "# docs\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kustomize_overlay_syncs_and_follows_its_base() {
    let sb = Sandbox::start(
        &[
            ("apps/api/base/kustomization.yaml", BASE),
            ("apps/api/base/deploy.yaml", DEPLOYMENT),
            ("apps/api/base/svc.yaml", SERVICE),
            (
                "apps/api/overlays/production/kustomization.yaml",
                PRODUCTION,
            ),
            ("docs/README.md", README),
        ],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    let yaml = application(
        "api",
        &sb.repo_url(),
        "apps/api/overlays/production",
        Some(AUTOMATED),
    )
    .replace(
        "    path: apps/api/overlays/production\n",
        "    path: apps/api/overlays/production\n    kustomize:\n      images:\n      - nginx:1.27\n      replicas:\n      - name: web\n        count: 3\n",
    );
    sb.create_app("api", &yaml).await;
    sb.until_status("api", 90, "Synced and Healthy", |s| {
        Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
    })
    .await;
    let deploy = sb
        .live("apps", "deployments", "api", "prod-web")
        .expect("the overlay's Deployment, prefixed");
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(
        sb.image_of("api", "prod-web").as_deref(),
        Some("nginx:1.27")
    );
    assert!(sb.live("", "services", "api", "prod-web").is_some());
    assert!(
        sb.live("", "services", "api", "web").is_none(),
        "the base's names are prefixed"
    );

    // A commit to the base only: outside the app's path, but the render read it.
    let base_change = DEPLOYMENT.replace("replicas: 2", "replicas: 2\n  minReadySeconds: 5");
    let commit = sb.commit(
        &[("apps/api/base/deploy.yaml", Some(&base_change))],
        "base: minReadySeconds",
    );
    assert!(sb.github_push().await.is_success());
    sb.until_status("api", 60, "Synced at the base's commit", |s| {
        Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == commit
    })
    .await;
    sb.until(30, "the base change to reach the cluster", |sb| {
        sb.live("apps", "deployments", "api", "prod-web")
            .is_some_and(|d| d["spec"]["minReadySeconds"] == 5)
    })
    .await;

    // A commit elsewhere in the repository: the app is not compared again for it (a
    // commit costs work for the apps it touches); its next refresh moves it there, and
    // nothing changes.
    let docs = sb.commit(&[("docs/README.md", Some("# more docs\n"))], "docs");
    assert!(sb.github_push().await.is_success());
    // Refreshed until the git watcher has fetched the commit (each refresh waits a while
    // for a fresher status).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert_eq!(sb.cli(&["app", "get", "api", "--refresh"]).await.code, 0);
        let s = sb.status("api").await.unwrap_or_default();
        if Sandbox::sync_status(&s) == "Synced" && s["sync"]["revision"] == docs {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "api not Synced at the docs commit after refreshes: {s}"
        );
    }
    assert_eq!(
        sb.live("apps", "deployments", "api", "prod-web").unwrap()["spec"]["minReadySeconds"],
        5
    );
}
