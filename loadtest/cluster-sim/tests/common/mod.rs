//! Shared test setup: an in-process simulator with its kubeconfig on disk, and real
//! kubectl run against it with a fresh discovery cache.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cluster_sim::{ClusterConfig, Sim, SimConfig};
use tokio::io::AsyncWriteExt;

pub fn kubectl_path() -> PathBuf {
    if let Ok(p) = std::env::var("GITFLEET_KUBECTL") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/bin/kubectl");
    assert!(
        p.exists(),
        "kubectl not found at {}: run `cargo xtask tools` (or `cargo xtask test`)",
        p.display()
    );
    p
}

pub struct Env {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "kubectl failed: stdout={} stderr={}",
            self.stdout, self.stderr
        );
        &self.stdout
    }
}

impl Env {
    pub async fn start(tls: bool) -> Env {
        Self::start_with(SimConfig {
            tls,
            cluster: ClusterConfig {
                ready_delay: Duration::from_millis(200),
                ..ClusterConfig::default()
            },
            ..SimConfig::default()
        })
        .await
    }

    pub async fn start_with(cfg: SimConfig) -> Env {
        let sim = Sim::start(cfg).await.expect("simulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, sim.kubeconfig()).expect("write kubeconfig");
        Env {
            sim,
            dir,
            kubeconfig,
        }
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write manifest");
        p
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(kubectl_path());
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    pub async fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_stdin(args, None).await
    }

    pub async fn kubectl_stdin(&self, args: &[&str], input: Option<&str>) -> Out {
        let mut child = self.command(args).spawn().expect("kubectl starts");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(i) = input {
            stdin.write_all(i.as_bytes()).await.expect("write stdin");
        }
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 90 s"))
            .expect("kubectl runs");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Polls `f` until it returns Some, or panics after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: demo
data:
  a: "1"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
      - name: sidecar
        image: busybox:1.36
        command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"#;
