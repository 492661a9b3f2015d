//! The sync executor as its own process: flags, bus connection, run until Ctrl-C.

use anyhow::Context as _;
use clap::Parser;
use gitfleet_bus::BusConfig;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "sync-executor",
    about = "gitfleet sync executor: owns clusters and runs syncs"
)]
struct Args {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long,
        env = "GITFLEET_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// NATS credentials file (JWT + nkey seed).
    #[arg(long, env = "GITFLEET_NATS_CREDS")]
    nats_creds: Option<std::path::PathBuf>,
    /// Prefix of every subject, stream and bucket.
    #[arg(long, env = "GITFLEET_PREFIX", default_value = "gf")]
    prefix: String,
    /// Unique id among executors; defaults to hostname-pid.
    #[arg(long, env = "GITFLEET_MEMBER_ID")]
    member_id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let member_id = args.member_id.unwrap_or_else(default_member_id);
    let bus_config = BusConfig {
        url: args.nats_url,
        creds_file: args.nats_creds,
        name: format!("sync-executor {member_id}"),
        prefix: args.prefix,
        ..BusConfig::default()
    };
    let bus = gitfleet_bus::connect(&bus_config)
        .await
        .context("connecting to nats")?;
    bus.ensure().await.context("ensuring streams and buckets")?;

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("interrupted, shutting down");
        on_signal.cancel();
    });
    sync_executor::run(sync_executor::Config::new(member_id), bus, shutdown)
        .await
        .context("sync executor")?;
    Ok(())
}

fn default_member_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sync-executor".to_string());
    format!("{host}-{}", std::process::id())
}
