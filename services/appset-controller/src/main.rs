//! `appset-controller`: connects to the bus and runs one ApplicationSet controller until
//! SIGINT or SIGTERM.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gitfleet_bus::cli::{BusArgs, init_tracing, shutdown_on_signal};

#[derive(Parser)]
#[command(about = "gitfleet ApplicationSet controller: writes the Applications sets generate")]
struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// Unique among controllers; defaults to the host name.
    #[arg(long, env = "GITFLEET_MEMBER_ID")]
    member_id: Option<String>,
    /// How often sets with Git generators are generated again without a commit event.
    #[arg(long, default_value_t = 180)]
    requeue_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let member_id = args.member_id.unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("appset-controller-{}", std::process::id()))
    });
    let bus = args
        .bus
        .connect(&format!("appset-controller {member_id}"))
        .await
        .context("connecting to nats")?;
    let mut config = appset_controller::Config::new(member_id);
    config.requeue_interval = Duration::from_secs(args.requeue_seconds.max(1));
    appset_controller::run(config, bus, shutdown_on_signal())
        .await
        .context("ApplicationSet controller failed")
}
