//! `notifier`: sends gitfleet's application events to webhooks.

use clap::Parser;
use gitfleet_bus::cli::{BusArgs, init_tracing, shutdown_on_signal};

#[derive(Parser)]
#[command(name = "notifier", about = "Sends gitfleet sync outcomes to webhooks")]
struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// A webhook URL to POST events to (repeatable).
    #[arg(long = "webhook", env = "GITFLEET_WEBHOOKS", value_delimiter = ',')]
    webhooks: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let bus = args.bus.connect("gitfleet-notifier").await?;
    let config = notifier::Config {
        webhooks: args.webhooks,
        ..Default::default()
    };
    notifier::run(config, bus, shutdown_on_signal()).await?;
    Ok(())
}
