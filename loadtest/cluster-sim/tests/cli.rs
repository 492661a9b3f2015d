//! The `cluster-sim` binary: `serve` stops cleanly on SIGTERM, as supervisors send it.

mod common;

use std::time::Duration;

use common::eventually;

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cluster-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cluster-sim starts");
    let pid = child.id().expect("running").to_string();
    eventually(60, "the kubeconfig to be written", || async {
        std::fs::read_to_string(&kubeconfig)
            .is_ok_and(|k| k.contains("server:"))
            .then_some(())
    })
    .await;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("cluster-sim exits within 30 s of SIGTERM")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("terminated, stopping"), "{stderr}");
}
