//! What every service binary repeats around the bus: the `--nats-*` and `--prefix` flags,
//! logging set up from `RUST_LOG`, and a shutdown token for SIGINT/SIGTERM.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::connect::{Bus, BusConfig, connect};
use crate::error::Result;

/// How to reach the bus; add to a binary's arguments with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long,
        env = "GITFLEET_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// NATS credentials file (JWT + nkey seed).
    #[arg(long, env = "GITFLEET_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// This service's NKey seed file (`<role>.nk` as `cargo xtask up` writes them), for a
    /// bus that gives each service its own user and permissions.
    #[arg(long, env = "GITFLEET_NATS_NKEY", conflicts_with = "nats_creds")]
    pub nats_nkey: Option<PathBuf>,
    /// Prefix of every subject, stream and bucket (several gitfleets can share a server).
    #[arg(long, env = "GITFLEET_PREFIX", default_value = "gf")]
    pub prefix: String,
    /// The key repository and cluster credentials are sealed with in KV (`cargo xtask up`
    /// writes `.state/credentials.key`); needed by whoever reads or writes credentials.
    #[arg(long, env = crate::sealed::KEY_FILE_ENV)]
    pub credentials_key_file: Option<PathBuf>,
}

impl BusArgs {
    /// The bus config these flags describe; `client_name` is shown by the server in `connz`.
    pub fn config(&self, client_name: &str) -> BusConfig {
        BusConfig {
            url: self.nats_url.clone(),
            creds_file: self.nats_creds.clone(),
            nkey_file: self.nats_nkey.clone(),
            prefix: self.prefix.clone(),
            name: client_name.to_owned(),
            credentials_key_file: self.credentials_key_file.clone(),
            ..BusConfig::default()
        }
    }

    /// Connects (see [`connect`]) and ensures the streams, buckets and stores exist.
    pub async fn connect(&self, client_name: &str) -> Result<Bus> {
        let bus = connect(&self.config(client_name)).await?;
        bus.ensure().await?;
        Ok(bus)
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// A token cancelled on the first SIGINT (Ctrl-C) or SIGTERM. The handlers are installed
/// before this returns; call it inside a Tokio runtime.
pub fn shutdown_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            tracing::info!(signal = name, "shutting down");
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("ctrl-c: shutting down");
        token.cancel();
    });
    shutdown
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        bus: BusArgs,
    }

    #[test]
    fn flags_make_the_config() {
        let args = Args::try_parse_from([
            "svc",
            "--nats-url",
            "nats://a:4222,nats://b:4222",
            "--nats-creds",
            "/x.creds",
            "--prefix",
            "p1",
        ])
        .unwrap();
        let config = args.bus.config("svc 1");
        assert_eq!(config.url, "nats://a:4222,nats://b:4222");
        assert_eq!(config.creds_file, Some(PathBuf::from("/x.creds")));
        assert_eq!(config.prefix, "p1");
        assert_eq!(config.name, "svc 1");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let shutdown = shutdown_on_signal();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(10), shutdown.cancelled())
            .await
            .expect("cancelled on SIGTERM");
    }
}
