//! `notifier`: sends gitfleet's application events to webhooks.

use clap::Parser;
use gitfleet_bus::BusConfig;

#[derive(Parser)]
#[command(name = "notifier", about = "Sends gitfleet sync outcomes to webhooks")]
struct Args {
    #[arg(long, env = "GITFLEET_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    #[arg(long, env = "GITFLEET_NATS_CREDS")]
    nats_creds: Option<std::path::PathBuf>,
    #[arg(long, default_value = "gf")]
    prefix: String,
    /// A webhook URL to POST events to (repeatable).
    #[arg(long = "webhook", env = "GITFLEET_WEBHOOKS", value_delimiter = ',')]
    webhooks: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).init();
    let a = Args::parse();
    let mut bus_config = BusConfig::new(a.nats_url);
    bus_config.creds_file = a.nats_creds;
    bus_config.prefix = a.prefix;
    bus_config.name = "gitfleet-notifier".into();
    let bus = gitfleet_bus::connect(&bus_config).await?;
    bus.ensure().await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    notifier::run(notifier::Config { webhooks: a.webhooks, ..Default::default() }, bus, shutdown).await?;
    Ok(())
}
