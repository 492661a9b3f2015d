//! `diff-worker`: connects to the bus and runs one diff worker until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "gitfleet diff worker: compares apps' desired and live state")]
struct Args {
    #[arg(
        long,
        env = "GITFLEET_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// A NATS `.creds` file.
    #[arg(long, env = "GITFLEET_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    #[arg(long, env = "GITFLEET_PREFIX", default_value = "gf")]
    prefix: String,
    /// Unique among diff workers; defaults to the host name.
    #[arg(long, env = "GITFLEET_MEMBER_ID")]
    member_id: Option<String>,
    /// Argo CD's reconciliation timeout (a jitter of up to half of it is added).
    #[arg(long, default_value_t = 120)]
    refresh_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let member_id = args.member_id.unwrap_or_else(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| format!("diff-worker-{}", std::process::id()))
    });
    let bus = gitfleet_bus::connect(&gitfleet_bus::BusConfig {
        url: args.nats_url,
        creds_file: args.nats_creds,
        prefix: args.prefix,
        name: format!("diff-worker {member_id}"),
        ..Default::default()
    })
    .await
    .context("connecting to nats")?;
    bus.ensure().await.context("ensuring streams and buckets")?;

    let mut config = diff_worker::Config::new(member_id);
    config.refresh_interval = Duration::from_secs(args.refresh_seconds.max(1));
    config.refresh_jitter = config.refresh_interval / 2;

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("ctrl-c: shutting down");
        on_signal.cancel();
    });
    diff_worker::run(config, bus, shutdown)
        .await
        .context("diff worker failed")
}
