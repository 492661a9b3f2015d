//! `diff-worker`: connects to the bus and runs one diff worker until SIGINT or SIGTERM.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gitfleet_bus::cli::{BusArgs, init_tracing, shutdown_on_signal};

#[derive(Parser)]
#[command(about = "gitfleet diff worker: compares apps' desired and live state")]
struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// Unique among diff workers; defaults to the host name.
    #[arg(long, env = "GITFLEET_MEMBER_ID")]
    member_id: Option<String>,
    /// Argo CD's reconciliation timeout (a jitter of up to half of it is added).
    #[arg(long, default_value_t = 120)]
    refresh_seconds: u64,
    /// Lua health scripts laid out as Argo CD's `resource_customizations` directory.
    #[arg(long, env = "GITFLEET_RESOURCE_CUSTOMIZATIONS")]
    resource_customizations: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let member_id = args.member_id.unwrap_or_else(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| format!("diff-worker-{}", std::process::id()))
    });
    let bus = args
        .bus
        .connect(&format!("diff-worker {member_id}"))
        .await
        .context("connecting to nats")?;

    let mut config = diff_worker::Config::new(member_id);
    config.refresh_interval = Duration::from_secs(args.refresh_seconds.max(1));
    config.refresh_jitter = config.refresh_interval / 2;
    if let Some(dir) = &args.resource_customizations {
        config.health_library = gitfleet_lua::Library::load(dir)?;
    }

    diff_worker::run(config, bus, shutdown_on_signal())
        .await
        .context("diff worker failed")
}
