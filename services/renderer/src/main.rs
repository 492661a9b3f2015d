//! The renderer binary: parses flags, connects to the bus and runs [`renderer::run`] until
//! SIGINT or SIGTERM.

use clap::Parser;
use gitfleet_bus::cli::{BusArgs, init_tracing, shutdown_on_signal};

#[derive(Debug, Parser)]
#[command(name = "renderer", about = "gitfleet's manifest renderer")]
struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// Renders worked on at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let bus = args.bus.connect("renderer").await?;
    let config = renderer::Config {
        max_concurrent_renders: args.concurrency,
        ..renderer::Config::default()
    };
    renderer::run(config, bus, shutdown_on_signal()).await?;
    Ok(())
}
