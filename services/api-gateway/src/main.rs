//! `api-gateway`: arguments in, [`api_gateway::run`] until Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use gitfleet_bus::BusConfig;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "gitfleet api gateway: gRPC for the CLI, webhooks for Git hosts")]
struct Args {
    #[arg(
        long,
        env = "GITFLEET_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    #[arg(long, env = "GITFLEET_PREFIX", default_value = "gf")]
    prefix: String,
    #[arg(long, env = "GITFLEET_GRPC_ADDR", default_value = "127.0.0.1:8080")]
    grpc_addr: SocketAddr,
    #[arg(long, env = "GITFLEET_WEBHOOK_ADDR", default_value = "127.0.0.1:8081")]
    http_addr: SocketAddr,
    /// GitHub webhook secret (prefer the environment variable: arguments show in `ps`).
    #[arg(long, env = "GITFLEET_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Seconds `app sync` waits for the operation.
    #[arg(long, default_value_t = 120)]
    operation_timeout: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let bus = gitfleet_bus::connect(&BusConfig {
        url: args.nats_url,
        prefix: args.prefix,
        name: "api-gateway".to_string(),
        ..BusConfig::default()
    })
    .await?;
    bus.ensure().await?;
    let config = api_gateway::Config {
        grpc_addr: args.grpc_addr,
        http_addr: args.http_addr,
        webhook_secret: args.webhook_secret.map(Into::into),
        operation_timeout: Duration::from_secs(args.operation_timeout),
        ..api_gateway::Config::default()
    };
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    api_gateway::run(config, bus, shutdown).await?;
    Ok(())
}
