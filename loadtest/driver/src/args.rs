//! The driver's flags: the size of the fleet, the emulated latency, and what is passed on
//! to the services.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// What each app deploys.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// One ConfigMap.
    #[default]
    Configmap,
    /// The same ConfigMap plus a PreSync hook Job (`hook-delete-policy: HookSucceeded`),
    /// which cluster-sim's Job controller completes after its ready delay.
    Hooked,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Configmap => "configmap",
            Shape::Hooked => "hooked",
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadtest",
    about = "gitfleet load harness: create-to-Synced and webhook-to-Synced, with CPU and peak memory per process"
)]
pub struct Args {
    /// Applications to create (one ConfigMap each, in its own directory).
    #[arg(long, default_value_t = 100)]
    pub apps: usize,
    /// What each app holds: `configmap` (one ConfigMap) or `hooked` (the ConfigMap and a
    /// PreSync hook Job, deleted when it succeeds).
    #[arg(long, value_enum, default_value_t = Shape::Configmap)]
    pub shape: Shape,
    /// Emulated clusters (c0..cN-1); apps are spread over them round-robin.
    #[arg(long, default_value_t = 10)]
    pub clusters: usize,
    /// Latency cluster-sim adds to every Kubernetes API request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Passed to cluster-sim as `--ready-delay-ms`: how long its simulated Pods take to
    /// become ready (and Job Pods to succeed), hence how long each PreSync hook runs.
    #[arg(long, default_value_t = 500)]
    pub ready_delay_ms: u64,
    /// Webhook-to-Synced measurements (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub webhook_runs: usize,
    /// Deadline for all apps to become Synced and Healthy.
    #[arg(long, default_value_t = 900)]
    pub timeout_seconds: u64,
    /// Application writes in flight at once.
    #[arg(long, default_value_t = 32)]
    pub create_concurrency: usize,
    /// Where the release binaries are (default: next to this one).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// The nats-server binary (default: tools/bin/nats-server of the workspace).
    #[arg(long, env = "GITFLEET_NATS_SERVER")]
    pub nats_server: Option<PathBuf>,
    /// RUST_LOG of the services (their logs go to files in the work directory).
    #[arg(long, default_value = "warn")]
    pub log: String,
    /// Create every app's namespace in its cluster before the timed phase, so syncs
    /// have no PreSync wave for CreateNamespace (and hence no wave delay after it).
    #[arg(long)]
    pub precreate_namespaces: bool,
    /// Passed to the sync-executor as `--wave-delay-seconds` (its default, Argo CD's 2 s,
    /// when unset).
    #[arg(long)]
    pub wave_delay_seconds: Option<f64>,
    /// Passed to the diff-worker as `--refresh-seconds`: its periodic refresh of every app.
    /// Pushed out of the run (an hour) by default, so that everything measured is
    /// event-driven.
    #[arg(long, default_value_t = 3600)]
    pub refresh_seconds: u64,
    /// Passed to the sync-executor as `--cluster-concurrency` (its default, 4, when unset).
    #[arg(long)]
    pub cluster_concurrency: Option<usize>,
    /// Diff worker processes (members `dw-0`..), sharing the app partitions.
    #[arg(long, default_value_t = 1)]
    pub diff_workers: usize,
    /// Sync executor processes (members `se-0`..), sharing the cluster partitions.
    #[arg(long, default_value_t = 1)]
    pub executors: usize,
    /// Renderer processes, one queue group.
    #[arg(long, default_value_t = 1)]
    pub renderers: usize,
    /// SIGKILL the first diff worker and the first sync executor this many seconds after
    /// the first write; the report says when their partitions were all held by others
    /// again. Needs `--diff-workers` and `--executors` of 2 or more.
    #[arg(long)]
    pub kill_after_seconds: Option<f64>,
    /// After convergence, measure CPU over this many idle seconds (the fleet synced,
    /// nothing changing) before the webhook runs; 0 skips it.
    #[arg(long, default_value_t = 0)]
    pub steady_seconds: u64,
    /// Where the JSON report of each run is written (default: `loadtest/results` in the
    /// workspace, git-ignored).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Keep the work directory (logs, repository, nats store) after a successful run.
    #[arg(long)]
    pub keep: bool,
    /// Make the apps with one ApplicationSet instead of writing them: a matrix of the
    /// cluster generator (every cluster) and a list of this many services, one app per
    /// cluster and service (`--apps` becomes clusters x services). No webhook runs.
    #[arg(long, default_value_t = 0)]
    pub appset_services: usize,
    /// Argo CD's `argocd.argoproj.io/compare-options` on every app written (e.g.
    /// `ServerSideDiff=true`, to measure server-side diff's dry runs at fleet scale).
    #[arg(long)]
    pub compare_options: Option<String>,
}
