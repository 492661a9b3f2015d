//! Deployment history and rollback, as `argocd app history` and `argocd app rollback`:
//! each successful sync is recorded with its revision and source, and a rollback syncs an
//! earlier one back (refused while automated sync would undo it).

use std::time::Duration;

use gitfleet_e2e::{AUTOMATED, CONFIGMAP, Sandbox, Timings, application};
use gitfleet_model::RevisionHistory;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_records_each_sync_and_rollback_restores_an_earlier_revision() {
    // Only webhooks and user syncs move things: nothing happens behind the test's back.
    let sb = Sandbox::start(
        &[("app/cm.yaml", CONFIGMAP)],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app("web", &application("web", &sb.repo_url(), "app", None))
        .await;
    sb.until_status("web", 60, "OutOfSync", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
    })
    .await;
    let synced = sb.cli(&["app", "sync", "web"]).await;
    assert_eq!(synced.code, 0, "{}", synced.stdout);
    let first = sb
        .until_status("web", 60, "Synced", |s| Sandbox::sync_status(s) == "Synced")
        .await["sync"]["revision"]
        .as_str()
        .unwrap()
        .to_owned();

    let second = sb.commit(
        &[("app/cm.yaml", Some(&CONFIGMAP.replace("hello", "goodbye")))],
        "say goodbye",
    );
    assert!(sb.github_push().await.is_success());
    sb.until_status("web", 60, "OutOfSync at the second commit", |s| {
        s["sync"]["revision"] == second.as_str()
    })
    .await;
    let synced = sb.cli(&["app", "sync", "web"]).await;
    assert_eq!(synced.code, 0, "{}", synced.stdout);
    let greeting = |sb: &Sandbox| {
        sb.live("", "configmaps", "web", "web-config")
            .map(|cm| cm["data"]["greeting"].clone())
    };
    assert_eq!(greeting(&sb), Some("goodbye".into()));

    // Both syncs are history, oldest first.
    let history = |out: &str| -> Vec<RevisionHistory> {
        serde_json::from_str(out).unwrap_or_else(|e| panic!("history JSON: {e}: {out}"))
    };
    let mut recorded = Vec::new();
    for _ in 0..300 {
        let out = sb.cli(&["app", "history", "web", "-o", "json"]).await;
        recorded = history(&out.stdout);
        if recorded.len() == 2 {
            break;
        }
        // Poll interval: the status is written when the owner next reconciles.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let revisions: Vec<(i64, &str)> = recorded
        .iter()
        .map(|h| (h.id, h.revision.as_str()))
        .collect();
    assert_eq!(revisions, [(0, first.as_str()), (1, second.as_str())]);
    assert_eq!(recorded[1].source.as_ref().unwrap().path, "app");
    let table = sb.cli(&["app", "history", "web"]).await;
    assert_eq!(table.code, 0);
    assert!(table.stdout.contains("ID"), "{}", table.stdout);
    assert!(
        table.stdout.contains(&format!("main ({})", &first[..7])),
        "{}",
        table.stdout
    );

    // Rollback to the first deployment: its manifests are live again, and the app, which
    // targets `main`, is OutOfSync; the rollback is history too.
    let rolled = sb.cli(&["app", "rollback", "web", "0"]).await;
    assert_eq!(rolled.code, 0, "{}", rolled.stdout);
    assert_eq!(greeting(&sb), Some("hello".into()));
    sb.until_status("web", 60, "OutOfSync after the rollback", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
            && s["history"].as_array().is_some_and(|h| h.len() == 3)
    })
    .await;
    let out = sb.cli(&["app", "history", "web", "-o", "json"]).await;
    assert_eq!(history(&out.stdout)[2].revision, first);

    // No id: the deployment before the latest (the second commit).
    let rolled = sb.cli(&["app", "rollback", "web"]).await;
    assert_eq!(rolled.code, 0, "{}", rolled.stdout);
    assert_eq!(greeting(&sb), Some("goodbye".into()));

    // An id the history does not have, and an automated app: refused, saying why.
    let missing = sb.cli(&["app", "rollback", "web", "42"]).await;
    assert_ne!(missing.code, 0);
    assert!(
        missing.stdout.contains("no deployment with id 42"),
        "{}",
        missing.stdout
    );
    sb.create_app(
        "auto",
        &application("auto", &sb.repo_url(), "app", Some(AUTOMATED)),
    )
    .await;
    sb.until_status("auto", 60, "Synced", |s| {
        Sandbox::sync_status(s) == "Synced"
    })
    .await;
    let refused = sb.cli(&["app", "rollback", "auto", "0"]).await;
    assert_ne!(refused.code, 0);
    assert!(
        refused.stdout.contains("auto-sync is enabled"),
        "{}",
        refused.stdout
    );
}
