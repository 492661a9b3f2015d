//! `gitfleet app terminate-op`, as `argocd app terminate-op`: a sync stuck waiting for a
//! wave that never becomes healthy is stopped between waves; the later wave is never
//! applied and the operation ends Failed, "Operation terminated".

use std::time::Duration;

use gitfleet_e2e::{Sandbox, Timings, application};

const STUCK: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 1
  selector:
    matchLabels: {app: stuck}
  template:
    metadata:
      labels: {app: stuck}
      annotations: {sim.gitfleet.dev/outcome: fail}
    spec:
      containers:
      - name: stuck
        image: nginx:1.27
"#;
const LATER: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\ndata:\n  k: v\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminate_op_stops_a_running_sync_between_waves() {
    let sb = Sandbox::start(
        &[("app/stuck.yaml", STUCK), ("app/later.yaml", LATER)],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app("stuck", &application("stuck", &sb.repo_url(), "app", None))
        .await;
    sb.until_status("stuck", 60, "OutOfSync", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
    })
    .await;
    let nothing_running = sb.cli(&["app", "terminate-op", "stuck"]).await;
    assert_ne!(nothing_running.code, 0);
    assert!(
        nothing_running
            .stdout
            .contains("No operation is in progress"),
        "{}",
        nothing_running.stdout
    );

    let (synced, terminated) = tokio::join!(sb.cli(&["app", "sync", "stuck"]), async {
        // Asked until the operation is running (the gateway reads the operation itself).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = sb.cli(&["app", "terminate-op", "stuck"]).await;
            if out.code == 0 || tokio::time::Instant::now() > deadline {
                break out;
            }
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert_eq!(terminated.code, 0, "{}", terminated.stdout);
    assert!(
        terminated.stdout.contains("operation terminating"),
        "{}",
        terminated.stdout
    );
    assert_ne!(synced.code, 0, "{}", synced.stdout);
    assert!(
        synced.stdout.contains("Operation terminated"),
        "{}",
        synced.stdout
    );
    assert!(sb.live("apps", "deployments", "stuck", "stuck").is_some());
    assert!(
        sb.live("", "configmaps", "stuck", "later").is_none(),
        "the wave after the stuck one never ran"
    );
}
