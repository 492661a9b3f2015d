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
    /// GitHub webhook secret (prefer the environment variables: arguments show in `ps`).
    #[arg(long, env = "GITFLEET_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// GitLab webhook secret token.
    #[arg(long, env = "GITFLEET_WEBHOOK_GITLAB_SECRET", hide_env_values = true)]
    webhook_gitlab_secret: Option<String>,
    /// Bitbucket Cloud webhook UUID.
    #[arg(long, env = "GITFLEET_WEBHOOK_BITBUCKET_UUID", hide_env_values = true)]
    webhook_bitbucket_uuid: Option<String>,
    /// Bitbucket Server webhook secret.
    #[arg(
        long,
        env = "GITFLEET_WEBHOOK_BITBUCKETSERVER_SECRET",
        hide_env_values = true
    )]
    webhook_bitbucketserver_secret: Option<String>,
    /// Gogs / Gitea webhook secret.
    #[arg(long, env = "GITFLEET_WEBHOOK_GOGS_SECRET", hide_env_values = true)]
    webhook_gogs_secret: Option<String>,
    /// Azure DevOps webhook basic-auth user and password.
    #[arg(long, env = "GITFLEET_WEBHOOK_AZUREDEVOPS_USERNAME")]
    webhook_azuredevops_username: Option<String>,
    #[arg(
        long,
        env = "GITFLEET_WEBHOOK_AZUREDEVOPS_PASSWORD",
        hide_env_values = true
    )]
    webhook_azuredevops_password: Option<String>,
    /// Largest webhook body accepted, in MiB (Argo CD's `webhook.maxPayloadSizeMB`).
    #[arg(long, default_value_t = 50)]
    webhook_max_payload_mb: usize,
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
        webhook_secrets: api_gateway::webhook::WebhookSecrets {
            github: args.webhook_secret.map(Into::into),
            gitlab: args.webhook_gitlab_secret.map(Into::into),
            bitbucket_uuid: args.webhook_bitbucket_uuid.map(Into::into),
            bitbucket_server: args.webhook_bitbucketserver_secret.map(Into::into),
            gogs: args.webhook_gogs_secret.map(Into::into),
            azure_devops_username: args.webhook_azuredevops_username,
            azure_devops_password: args.webhook_azuredevops_password.map(Into::into),
        },
        webhook_max_payload_bytes: args.webhook_max_payload_mb << 20,
        operation_timeout: Duration::from_secs(args.operation_timeout),
        ..api_gateway::Config::default()
    };
    api_gateway::run(config, bus, shutdown_on_signal()).await?;
    Ok(())
}
