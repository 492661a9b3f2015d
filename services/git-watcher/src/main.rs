//! The git-watcher binary: parses flags, connects to the bus and runs [`git_watcher::run`]
//! until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gitfleet_bus::cli::{BusArgs, init_tracing, shutdown_on_signal};

#[derive(Debug, Parser)]
#[command(
    name = "git-watcher",
    about = "gitfleet's only Git client: mirrors, polls, webhooks"
)]
struct Args {
    #[command(flatten)]
    bus: BusArgs,
    #[arg(
        long,
        env = "GITFLEET_MIRROR_DIR",
        default_value = "/var/lib/gitfleet/mirrors"
    )]
    mirror_dir: PathBuf,
    /// Base poll interval; up to half of it again is added as jitter (Argo CD: 120 + 60 s).
    #[arg(long, default_value_t = 120)]
    poll_seconds: u64,
    #[arg(long, default_value_t = 90)]
    fetch_timeout_seconds: u64,
    /// Mirror `file://` URLs and local paths too (never the mirrors' own folder).
    #[arg(long, env = "GITFLEET_ALLOW_LOCAL_REPOSITORIES")]
    allow_local_repositories: bool,
    /// Host keys of ssh repositories (Argo CD's `ssh_known_hosts`); by default
    /// `$ARGOCD_SSH_DATA_PATH/ssh_known_hosts`, else `/app/config/ssh/ssh_known_hosts`.
    #[arg(long, env = "GITFLEET_SSH_KNOWN_HOSTS")]
    ssh_known_hosts: Option<PathBuf>,
    /// CA certificates of https repositories, one PEM file per host name (Argo CD's
    /// `argocd-tls-certs-cm`); by default `$ARGOCD_TLS_DATA_PATH`, else `/app/config/tls`.
    #[arg(long, env = "GITFLEET_TLS_CERTS_DIR")]
    tls_certs_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let bus = args.bus.connect("git-watcher").await?;
    let mut config = git_watcher::Config::new(args.mirror_dir);
    config.poll_interval = Duration::from_secs(args.poll_seconds);
    config.poll_jitter = Duration::from_secs(args.poll_seconds / 2);
    config.fetch_timeout = Duration::from_secs(args.fetch_timeout_seconds);
    config.allow_local_repositories = args.allow_local_repositories;
    if let Some(known_hosts) = args.ssh_known_hosts {
        config.ssh_known_hosts = known_hosts;
    }
    if let Some(dir) = args.tls_certs_dir {
        config.tls_certs_dir = dir;
    }
    git_watcher::run(config, bus, shutdown_on_signal()).await?;
    Ok(())
}
