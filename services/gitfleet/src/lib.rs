//! The `gitfleet` command line, mirroring `argocd`'s verbs and flags. Commands are plain
//! async functions over a gRPC connection and a writer, so tests run them in process
//! against a real gateway; `main.rs` only parses arguments and prints errors.

mod app;
mod appset;
mod cluster;
mod declarative;
mod error;
pub mod kubeconfig;
mod local;
pub mod output;
mod proj;
mod repo;
mod session;
mod up;

use std::io::Write;

use clap::{Parser, Subcommand};
use tonic::transport::Channel;

pub use app::AppCommand;
pub use cluster::ClusterCommand;
pub use declarative::{ApplyArgs, ExportArgs};
pub use error::{Error, Result};
pub use proj::ProjCommand;
pub use repo::RepoCommand;
pub use session::{AccountCommand, AdminCommand, Conn, LoginArgs};
pub use up::UpArgs;

#[derive(Debug, Parser)]
#[command(
    name = "gitfleet",
    version,
    about = "GitOps for fleets of clusters, Argo CD compatible"
)]
pub struct Cli {
    /// The gitfleet api gateway, host:port (plaintext gRPC); else `GITFLEET_SERVER`, else
    /// Argo CD's `ARGOCD_SERVER`, else 127.0.0.1:8080.
    #[arg(long, global = true, env = "GITFLEET_SERVER")]
    pub server: Option<String>,
    /// A session or project token (else the one `login` stored for the server).
    #[arg(
        long,
        global = true,
        env = "GITFLEET_AUTH_TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<String>,
    /// The CLI's config file, where `login` keeps tokens (default
    /// `~/.config/gitfleet/config`, or `GITFLEET_CONFIG`). Given before the command, as
    /// `up --config` names its declarative setup.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage applications.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage ApplicationSets.
    #[command(subcommand)]
    Appset(appset::AppSetCommand),
    /// Manage destination clusters.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Manage projects.
    #[command(subcommand)]
    Proj(ProjCommand),
    /// Manage source repositories.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Run every service in one process, on a running nats-server.
    Up(Box<UpArgs>),
    /// Apply Argo CD's declarative setup: Applications, AppProjects, cluster, repository
    /// and repo-creds Secrets, argocd-cm, argocd-rbac-cm, argocd-secret.
    Apply(ApplyArgs),
    /// Write the control plane's state out as Argo CD's declarative setup (read from the
    /// bus; the output holds credentials).
    Export(ExportArgs),
    /// Log in with a local account; the session is kept for the server.
    Login(LoginArgs),
    /// Forget the session kept for the server.
    Logout,
    /// Your account: who you are, what you may do.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Operator commands that read the control plane's state directly.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Exit code of a command that failed.
pub const EXIT_ERROR: i32 = 1;
/// `app diff` failed (1 means "there is a difference" there, as in `argocd app diff`).
pub const EXIT_DIFF_ERROR: i32 = 2;

impl Cli {
    /// The gateway to talk to (see [`Cli::server`]).
    pub fn server(&self) -> String {
        self.server
            .clone()
            .or_else(|| std::env::var("ARGOCD_SERVER").ok())
            .unwrap_or_else(|| "127.0.0.1:8080".to_string())
    }

    /// The code to exit with when [`run`] returned an error.
    pub fn error_exit_code(&self) -> i32 {
        match &self.command {
            Command::App(AppCommand::Diff { .. }) => EXIT_DIFF_ERROR,
            _ => EXIT_ERROR,
        }
    }
}

/// Runs one command, writing its output to `out`; returns the exit code on success
/// (`app diff` returns 1 when there is a difference).
pub async fn run(cli: &Cli, out: &mut dyn Write) -> Result<i32> {
    let config = cli
        .config
        .clone()
        .unwrap_or_else(session::default_config_path);
    let server = cli.server();
    let conn = || async {
        // Argo CD's variable works as well, for scripts written for `argocd`.
        let token = match cli
            .auth_token
            .clone()
            .or_else(|| std::env::var("ARGOCD_AUTH_TOKEN").ok())
        {
            Some(token) => Some(token),
            None => session::stored_token(&config, &server)?,
        };
        connect(&server, token.as_deref()).await
    };
    // Each command's future boxed: inline, the largest would size every call's (and
    // overflow a test thread's stack).
    match &cli.command {
        Command::Up(args) => Box::pin(up::run(args, out)).await,
        Command::App(cmd) => Box::pin(app::run(cmd, conn().await?, out)).await,
        Command::Cluster(cmd) => Box::pin(cluster::run(cmd, conn().await?, out)).await,
        Command::Proj(cmd) => Box::pin(proj::run(cmd, conn().await?, out)).await,
        Command::Appset(cmd) => Box::pin(appset::run(cmd, conn().await?, out)).await,
        Command::Repo(cmd) => Box::pin(repo::run(cmd, conn().await?, out)).await,
        Command::Login(args) => {
            let anonymous = connect(&server, None).await?;
            Box::pin(session::login(args, &server, &config, anonymous, out)).await
        }
        Command::Logout => Box::pin(session::logout(&server, &config, out)).await,
        Command::Apply(args) => Box::pin(declarative::apply(args, conn().await?, out)).await,
        Command::Export(args) => Box::pin(declarative::export(args, out)).await,
        Command::Account(cmd) => Box::pin(session::account(cmd, conn().await?, out)).await,
        Command::Admin(cmd) => Box::pin(session::admin(cmd, out)).await,
    }
}

/// One connection for the command, carrying `token`; `host:port` gets `http://` since the
/// gateway speaks plaintext gRPC.
pub async fn connect(server: &str, token: Option<&str>) -> Result<Conn> {
    let bearer = session::BearerToken::new(token)?;
    let url = if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    };
    let fail = |detail: String| Error::Connect {
        server: server.to_string(),
        detail,
    };
    let endpoint = Channel::from_shared(url).map_err(|e| fail(e.to_string()))?;
    let channel = endpoint
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| fail(gitfleet_messages::error_chain(&e)))?;
    Ok(tonic::service::interceptor::InterceptedService::new(
        channel, bearer,
    ))
}
