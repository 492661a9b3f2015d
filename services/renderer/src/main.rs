//! The renderer binary: parses flags, connects to the bus and runs [`renderer::run`] until
//! SIGINT or SIGTERM.

use std::path::PathBuf;

use clap::Parser;
use gitfleet_bus::BusConfig;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "renderer", about = "gitfleet's manifest renderer")]
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
    /// Renders worked on at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
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
        name: "renderer".to_owned(),
        prefix: args.prefix,
        ..BusConfig::default()
    })
    .await?;
    bus.ensure().await?;
    let config = renderer::Config {
        max_concurrent_renders: args.concurrency,
        ..renderer::Config::default()
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    renderer::run(config, bus, shutdown).await?;
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
