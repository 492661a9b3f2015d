//! `api-gateway`: arguments in, [`api_gateway::run`] until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use gitfleet_bus::cli::{BusArgs, init_tracing, shutdown_on_signal};

#[derive(Parser)]
#[command(about = "gitfleet api gateway: gRPC for the CLI, webhooks for Git hosts")]
struct Args {
    #[command(flatten)]
    bus: BusArgs,
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
    init_tracing();
    let args = Args::parse();
    let bus = args.bus.connect("api-gateway").await?;
    let config = api_gateway::Config {
        grpc_addr: args.grpc_addr,
        http_addr: args.http_addr,
        webhook_secret: args.webhook_secret.map(Into::into),
        operation_timeout: Duration::from_secs(args.operation_timeout),
        ..api_gateway::Config::default()
    };
    api_gateway::run(config, bus, shutdown_on_signal()).await?;
    Ok(())
}
