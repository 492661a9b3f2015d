//! The git-watcher binary: parses flags, connects to the bus and runs [`git_watcher::run`]
//! until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gitfleet_bus::BusConfig;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "git-watcher",
    about = "gitfleet's only Git client: mirrors, polls, webhooks"
)]
struct Args {
    #[arg(
        long,
        env = "GITFLEET_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// NATS credentials file (JWT + nkey seed).
    #[arg(long, env = "GITFLEET_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    #[arg(long, env = "GITFLEET_PREFIX", default_value = "gf")]
    prefix: String,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let bus = gitfleet_bus::connect(&BusConfig {
        url: args.nats_url,
        creds_file: args.nats_creds,
        name: "git-watcher".to_owned(),
        prefix: args.prefix,
        ..BusConfig::default()
    })
    .await?;
    bus.ensure().await?;
    let mut config = git_watcher::Config::new(args.mirror_dir);
    config.poll_interval = Duration::from_secs(args.poll_seconds);
    config.poll_jitter = Duration::from_secs(args.poll_seconds / 2);
    config.fetch_timeout = Duration::from_secs(args.fetch_timeout_seconds);

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    git_watcher::run(config, bus, shutdown).await?;
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
