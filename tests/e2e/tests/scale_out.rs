//! Two diff workers and two sync executors as separate processes: apps are split between
//! them, a SIGKILLed diff worker's apps move to the other, and no app is ever synced twice
//! at once (asserted from the emulator's write log).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use gitfleet_bus::{Bucket, partition};
use gitfleet_e2e::{AUTOMATED, Sandbox, Timings, application};
use gitfleet_messages::{APP_PARTITIONS, DIFF_WORKERS};
use gitfleet_stack::Services;

const NODE: &str = env!("CARGO_BIN_EXE_e2e-node");
const APPS: usize = 12;

fn configmap(data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  value: \"{data}\"\n"
    )
}

async fn lease_holders(sb: &Sandbox) -> BTreeMap<u32, String> {
    let kv = sb.bus.kv(Bucket::Leases).await.unwrap();
    let mut out = BTreeMap::new();
    for p in 0..APP_PARTITIONS {
        let lease = kv.get(format!("{DIFF_WORKERS}.p.{p}")).await.ok().flatten();
        let holder = lease
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(&v).ok())
            .and_then(|l| l["holder"].as_str().map(String::from));
        if let Some(h) = holder {
            out.insert(p, h);
        }
    }
    out
}

fn app_name(i: usize) -> String {
    format!("team-{i:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_diff_worker_apps_move_and_no_sync_runs_twice() {
    let services = Services {
        diff_worker: false,
        sync_executor: false,
        ..Services::ALL
    };
    let sb = Sandbox::start_with(
        &[("shared/cm.yaml", &configmap("v1"))],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
        services,
    )
    .await;
    let mut dw_a = sb.spawn_node(NODE, "dw-a", "diff-worker");
    let _dw_b = sb.spawn_node(NODE, "dw-b", "diff-worker");
    let _ex_a = sb.spawn_node(NODE, "ex-a", "sync-executor");
    let _ex_b = sb.spawn_node(NODE, "ex-b", "sync-executor");

    for i in 0..APPS {
        let name = app_name(i);
        sb.create_app(
            &name,
            &application(&name, &sb.repo_url(), "shared", Some(AUTOMATED)),
        )
        .await;
    }
    for i in 0..APPS {
        sb.until_status(&app_name(i), 90, "Synced", |s| {
            Sandbox::sync_status(s) == "Synced"
        })
        .await;
    }
    let holders = lease_holders(&sb).await;
    let owners: BTreeSet<&str> = (0..APPS)
        .filter_map(|i| {
            holders
                .get(&partition(&app_name(i), APP_PARTITIONS))
                .map(String::as_str)
        })
        .collect();
    assert_eq!(
        owners,
        BTreeSet::from(["dw-a", "dw-b"]),
        "apps are split between the two diff workers"
    );

    dw_a.kill();
    let killed = Instant::now();
    let all_b = loop {
        let h = lease_holders(&sb).await;
        if (0..APPS).all(|i| {
            h.get(&partition(&app_name(i), APP_PARTITIONS))
                .map(String::as_str)
                == Some("dw-b")
        }) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "dw-b did not take over within 15 s: {h:?}"
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("takeover after SIGKILL: {all_b:?}");

    // The survivor now carries every app through a new commit.
    let commit = sb.commit(&[("shared/cm.yaml", Some(&configmap("v2")))], "v2");
    assert!(sb.github_push().await.is_success());
    for i in 0..APPS {
        let name = app_name(i);
        sb.until_status(&name, 90, "Synced at v2", |s| {
            Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == commit
        })
        .await;
        assert_eq!(
            sb.live("", "configmaps", &name, "settings").unwrap()["data"]["value"],
            "v2"
        );
    }

    // One apply per app and revision: no sync ran twice, none overlapped another.
    let log = sb.sim.cluster(0).write_log();
    for i in 0..APPS {
        let name = app_name(i);
        let applies: Vec<_> = log
            .iter()
            .filter(|w| {
                w.resource == "configmaps"
                    && w.namespace.as_deref() == Some(name.as_str())
                    && w.name.as_deref() == Some("settings")
                    && !w.dry_run
                    && w.verb != "delete"
            })
            .collect();
        assert_eq!(
            applies.len(),
            2,
            "{name}: one write per revision, got {applies:?}"
        );
        assert!(
            applies
                .iter()
                .all(|w| w.field_manager.as_deref() == Some("argocd-controller") && w.code < 300),
            "{applies:?}"
        );
    }
}
