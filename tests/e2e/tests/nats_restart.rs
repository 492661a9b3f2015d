//! A nats-server restart in the middle of a run: services reconnect and no queued sync
//! is lost.

use std::time::{Duration, Instant};

use gitfleet_e2e::{AUTOMATED, Sandbox, Timings, application};

fn configmap(data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  value: \"{data}\"\n"
    )
}

fn app_name(i: usize) -> String {
    format!("team-{i:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_restart_loses_no_queued_sync() {
    let mut sb = Sandbox::start(
        &[("shared/cm.yaml", &configmap("v1"))],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    for i in 0..6 {
        let name = app_name(i);
        sb.create_app(
            &name,
            &application(&name, &sb.repo_url(), "shared", Some(AUTOMATED)),
        )
        .await;
    }
    for i in 0..6 {
        sb.until_status(&app_name(i), 90, "Synced", |s| {
            Sandbox::sync_status(s) == "Synced"
        })
        .await;
    }
    let commit = sb.commit(&[("shared/cm.yaml", Some(&configmap("v2")))], "v2");
    assert!(sb.github_push().await.is_success());
    // Restart while the new commit's syncs are being decided and queued. Checked, so the
    // test cannot pass by the restart coming after the work was done.
    let mut done_before = 0;
    for i in 0..6 {
        if sb
            .status(&app_name(i))
            .await
            .is_some_and(|s| s["sync"]["revision"] == commit)
        {
            done_before += 1;
        }
    }
    sb.nats.restart();
    assert!(
        done_before < 6,
        "every app reached the new commit before the restart: nothing was in flight"
    );
    // A webhook after the restart, in case the first refresh was lost with the connection:
    // Argo CD's answer to a lost webhook is the next poll; this is that poll, sooner.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sb.github_push().await.is_success() {
        assert!(
            Instant::now() < deadline,
            "gateway unreachable after the restart"
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..6 {
        let name = app_name(i);
        sb.until_status(&name, 120, "Synced at v2 after the restart", |s| {
            Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == commit
        })
        .await;
        assert_eq!(
            sb.live("", "configmaps", &name, "settings").unwrap()["data"]["value"],
            "v2"
        );
    }
}
