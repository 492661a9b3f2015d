//! The load harness at small size, so it cannot rot (issue 11 acceptance 4): 200 apps
//! over 10 clusters, every part its own process (the debug builds the suite makes), from
//! writing the apps to every ConfigMap found in the clusters and a webhook run, and the
//! JSON report read back.

use std::path::PathBuf;

use clap::Parser;
use gitfleet_procs::{Children, Stop};
use loadtest_driver::{Args, run};

/// `target/debug`, where the suite's build puts the service binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/harness-<hash>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug")
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_apps_on_ten_clusters_converge_and_are_reported() {
    let work = tempfile::tempdir().unwrap();
    let results = tempfile::tempdir().unwrap();
    let args = Args::parse_from([
        "loadtest",
        "--apps",
        "200",
        "--clusters",
        "10",
        "--webhook-runs",
        "1",
        "--timeout-seconds",
        "300",
        "--bin-dir",
        bin_dir().to_str().unwrap(),
    ]);
    let children = Children::new(Stop::Kill);
    let report = Box::pin(run(&args, &children, work.path()))
        .await
        .unwrap_or_else(|e| panic!("the harness failed: {e:#}"));
    drop(children);
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    assert_eq!(
        report.figures.found, 200,
        "ConfigMaps found in the clusters"
    );
    assert_eq!(report.figures.per_app.len(), 200);
    assert_eq!(report.figures.webhook.len(), 1);

    let file = report.write_json(results.path()).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let seconds = |key: &str| {
        json[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing from {json:#}"))
    };
    assert!(seconds("first_synced_seconds") <= seconds("create_to_synced_seconds"));
    // Every app was written and compared over the bus: nats-server counted it.
    assert!(json["bus_messages_create_to_synced"].as_u64().unwrap() > 200);
    assert!(seconds("webhook_to_synced_p50_seconds") > 0.0);
    assert!(seconds("webhook_to_synced_p99_seconds") >= seconds("webhook_to_synced_p50_seconds"));
    for process in ["nats-server", "diff-worker", "sync-executor", "cluster-sim"] {
        let p = &json["processes"][process];
        assert!(p["cpu_seconds"].as_f64().unwrap() > 0.0, "{process}: {p}");
        assert!(p["peak_rss_bytes"].as_u64().unwrap() > 0, "{process}: {p}");
    }
}
