//! `cluster-sim`: serve many simulated Kubernetes clusters, print their kubeconfig, or
//! benchmark the emulator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cluster_sim::{ClusterConfig, Faults, Sim, SimConfig};

#[derive(Parser)]
#[command(
    name = "cluster-sim",
    about = "Kubernetes API emulator: many simulated clusters in one process"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Number of clusters (c0..cN-1).
    #[arg(long, default_value_t = 1)]
    clusters: usize,
    /// Admin endpoint address; cluster i listens on port+1+i (or ephemeral ports with port 0).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Serve HTTPS with a generated CA (written into the kubeconfig).
    #[arg(long)]
    tls: bool,
    /// Keep cluster state here across restarts.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Write the kubeconfig here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Milliseconds simulated pods take to become ready.
    #[arg(long, default_value_t = 500)]
    ready_delay_ms: u64,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Uniform extra latency per request (0..=N ms).
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Fraction of requests answered with an error.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Code of injected errors: 500 or 429.
    #[arg(long)]
    error_code: Option<u16>,
    /// `Retry-After` (seconds) of injected errors and rate-limit 429s; 1 by default.
    #[arg(long)]
    retry_after_seconds: Option<u64>,
    /// Cut watch streams after this many seconds.
    #[arg(long)]
    watch_cut_seconds: Option<u64>,
    /// Per-cluster request rate limit (requests/s), beyond which 429.
    #[arg(long)]
    rate_limit_qps: Option<f64>,
    /// Changes kept per cluster for watch resumption (older resourceVersions get 410).
    #[arg(long, default_value_t = ClusterConfig::default().history_limit)]
    history_limit: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve clusters until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Measure memory, list latency and write throughput.
    Bench(cluster_sim::bench::BenchArgs),
    /// Measure memory at fleet scale: many clusters of Deployments, Services,
    /// ServiceAccounts and Ingresses (with their ReplicaSets and Pods).
    BenchFleet(cluster_sim::bench::FleetArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().cmd {
        Cmd::Serve(a) => serve(a).await,
        Cmd::Bench(a) => cluster_sim::bench::run(a).await,
        Cmd::BenchFleet(a) => cluster_sim::bench::fleet(a).await,
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let sim = Sim::start(SimConfig {
        clusters: a.clusters,
        listen: a.listen,
        tls: a.tls,
        state_dir: a.state_dir,
        cluster: ClusterConfig {
            ready_delay: Duration::from_millis(a.ready_delay_ms),
            history_limit: a.history_limit,
            ..ClusterConfig::default()
        },
        faults: Faults {
            latency_ms: a.latency_ms,
            latency_jitter_ms: a.latency_jitter_ms,
            error_rate: a.error_rate,
            error_code: a.error_code,
            retry_after_seconds: a.retry_after_seconds,
            watch_cut_seconds: a.watch_cut_seconds,
            rate_limit_qps: a.rate_limit_qps,
            reject_writes: 0,
            down: false,
            mutating_webhooks: Vec::new(),
        },
    })
    .await?;
    match &a.kubeconfig {
        Some(p) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(p, sim.kubeconfig())
                .with_context(|| format!("writing kubeconfig {}", p.display()))?;
            eprintln!("kubeconfig written to {}", p.display());
        }
        None => print!("{}", sim.kubeconfig()),
    }
    eprintln!(
        "cluster-sim: {} cluster(s), first at {}, admin at {}",
        a.clusters,
        sim.url(0),
        sim.admin_url()
    );
    let signal = stop_signal().await?;
    eprintln!("cluster-sim: {signal}, stopping");
    sim.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C (SIGINT) or, on Unix, SIGTERM (what process supervisors and
/// `docker stop` send); returns which arrived.
async fn stop_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|_| "interrupted").context("waiting for Ctrl-C"),
            _ = term.recv() => Ok("terminated"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok("interrupted")
    }
}
