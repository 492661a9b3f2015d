//! The sync executor as its own process: flags, bus connection, run until SIGINT or SIGTERM.

use anyhow::Context as _;
use clap::Parser;
use gitfleet_bus::cli::{BusArgs, init_tracing, shutdown_on_signal};

#[derive(Parser, Debug)]
#[command(
    name = "sync-executor",
    about = "gitfleet sync executor: owns clusters and runs syncs"
)]
struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// Unique id among executors; defaults to hostname-pid.
    #[arg(long, env = "GITFLEET_MEMBER_ID")]
    member_id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let member_id = args.member_id.unwrap_or_else(default_member_id);
    let bus = args
        .bus
        .connect(&format!("sync-executor {member_id}"))
        .await
        .context("connecting to nats")?;
    let config = sync_executor::Config::new(member_id);
    sync_executor::run(config, bus, shutdown_on_signal())
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
