//! `gitfleet up`: every service in this one process (through `gitfleet-stack`), on a
//! NATS server that is already running, optionally registering a kubeconfig context as
//! Argo CD's in-cluster destination so manifests written for Argo CD work unchanged.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gitfleet_bus::cli::BusArgs;
use gitfleet_stack::StackConfig;

use crate::cluster::ClusterCommand;
use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// gRPC address of the api gateway (the CLI's `--server`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub grpc: SocketAddr,
    /// HTTP address for Git webhooks (`POST /api/webhook`).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub http: SocketAddr,
    /// Where Git mirrors are kept, and the credentials key when `--credentials-key-file`
    /// is not given (`credentials.key`, made at the first start).
    #[arg(long, default_value = ".state/gitfleet")]
    pub state_dir: PathBuf,
    /// Register this kubeconfig context as the in-cluster destination
    /// (`https://kubernetes.default.svc`, `name: in-cluster`).
    #[arg(long)]
    pub in_cluster_context: Option<String>,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Notifier webhook (repeatable).
    #[arg(long = "webhook")]
    pub webhooks: Vec<String>,
    /// Repository poll interval in seconds (Argo CD: 120, plus jitter).
    #[arg(long, default_value_t = 120)]
    pub poll_seconds: u64,
    /// Periodic re-comparison of every app, in seconds (Argo CD: 120, plus jitter).
    #[arg(long, default_value_t = 120)]
    pub refresh_seconds: u64,
    /// A locked bus: the folder of per-service NATS users (`gitfleet admin
    /// bus-identities DIR`); each service connects as its own user, this process's own
    /// calls as the admin.
    #[arg(long)]
    pub nats_identities: Option<PathBuf>,
    /// A directory (or file) of Argo CD's declarative setup to apply at start, as admin:
    /// the bootstrap path, before any user exists.
    #[arg(long = "config")]
    pub config_dir: Option<PathBuf>,
    /// Lua health scripts laid out as Argo CD's `resource_customizations` directory
    /// (`<group>/<kind>/health.lua`; a copy of Argo CD's own library works unchanged);
    /// `argocd-cm`'s customizations come first.
    #[arg(long, env = "GITFLEET_RESOURCE_CUSTOMIZATIONS")]
    pub resource_customizations: Option<PathBuf>,
}

/// A session as admin with the initial password, which this process can read from the
/// bus it runs the services on.
async fn admin_session(bus: &gitfleet_bus::Bus, server: &str) -> Result<String> {
    let gone = || {
        Error::Usage(
            "cannot act as admin at start (for --config or --in-cluster-context): the initial \
             admin password is gone (it was changed); log in and run `gitfleet apply` or \
             `gitfleet cluster add --in-cluster` instead"
                .into(),
        )
    };
    wait_serving(server).await?;
    let password = crate::session::initial_password(bus)
        .await?
        .ok_or_else(gone)?;
    let conn = crate::connect(server, None).await?;
    let token = gitfleet_proto::v1::session_service_client::SessionServiceClient::new(conn)
        .create(gitfleet_proto::v1::SessionCreateRequest {
            username: "admin".into(),
            password,
        })
        .await?
        .into_inner()
        .token;
    Ok(token)
}

/// Waits until the gateway answers calls: it has then made the server key and the admin
/// password (it does so before serving).
async fn wait_serving(server: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(conn) = crate::connect(server, None).await {
            let answer =
                gitfleet_proto::v1::session_service_client::SessionServiceClient::new(conn)
                    .create(gitfleet_proto::v1::SessionCreateRequest::default())
                    .await;
            if let Err(status) = answer
                && status.code() == tonic::Code::Unauthenticated
            {
                return Ok(());
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Usage(format!(
                "the api gateway on {server} did not start answering within 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: &UpArgs, out: &mut dyn Write) -> Result<i32> {
    // Credentials are sealed at rest with this key, made at the first start when absent.
    let key_file = args
        .bus
        .credentials_key_file
        .clone()
        .unwrap_or_else(|| args.state_dir.join("credentials.key"));
    let key = gitfleet_bus::CredentialKey::load_or_create(&key_file)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let key = std::sync::Arc::new(key);
    let mut bus_config = args.bus.config("gitfleet-up");
    bus_config.credentials_key_file = None;
    let connecting = |e: gitfleet_bus::BusError| Error::Usage(format!("connecting to nats: {e}"));
    let buses = match &args.nats_identities {
        Some(dir) => {
            let ids = gitfleet_bus::Identities::read_dir(dir).map_err(Error::Usage)?;
            gitfleet_stack::ServiceBuses::connect_locked(&bus_config, &ids, Some(key))
                .await
                .map_err(connecting)?
        }
        None => gitfleet_stack::ServiceBuses::shared(
            gitfleet_bus::connect(&bus_config)
                .await
                .map_err(connecting)?
                .with_credentials_key(key),
        ),
    };
    let bus = buses.admin.clone();
    let member = format!("up-{}", std::process::id());
    let mut cfg = StackConfig::new(member, args.state_dir.join("mirrors"));
    cfg.grpc_addr = args.grpc;
    cfg.http_addr = args.http;
    cfg.webhooks = args.webhooks.clone();
    cfg.poll_interval = Duration::from_secs(args.poll_seconds);
    cfg.refresh_interval = Duration::from_secs(args.refresh_seconds);
    if let Some(dir) = &args.resource_customizations {
        cfg.health_library =
            gitfleet_lua::Library::load(dir).map_err(|e| Error::Usage(e.to_string()))?;
    }
    let mut stack = gitfleet_stack::start_with(cfg, buses)
        .await
        .map_err(|e| Error::Usage(format!("starting the services: {e}")))?;
    let grpc = stack.grpc_addr.expect("the gateway runs in `up`");
    if let Some(dir) = &args.config_dir {
        let token = admin_session(&bus, &grpc.to_string()).await?;
        let conn = crate::connect(&grpc.to_string(), Some(&token)).await?;
        let apply = crate::declarative::ApplyArgs {
            files: vec![dir.clone()],
            recursive: true,
        };
        if crate::declarative::apply(&apply, conn, out).await? != 0 {
            stack.stop().await;
            return Err(Error::Usage(format!(
                "the declarative setup in {} did not apply whole; see above",
                dir.display()
            )));
        }
    }
    if let Some(context) = &args.in_cluster_context {
        let add = ClusterCommand::Add {
            context: context.clone(),
            kubeconfig: args.kubeconfig.clone(),
            name: None,
            in_cluster: true,
            upsert: true,
            labels: Vec::new(),
            annotations: Vec::new(),
        };
        let token = admin_session(&bus, &grpc.to_string()).await?;
        let conn = crate::connect(&grpc.to_string(), Some(&token)).await?;
        crate::cluster::run(&add, conn, out).await?;
    }
    // What `admin initial-password` needs to read the sealed password off the bus.
    let mut env = format!("GITFLEET_CREDENTIALS_KEY_FILE={}", key_file.display());
    if let Some(dir) = &args.nats_identities {
        env.push_str(&format!(
            " GITFLEET_NATS_NKEY={}",
            dir.join("admin.nk").display()
        ));
    }
    crate::output::write(
        out,
        &format!(
            "gitfleet is up: gRPC on {grpc}, webhooks on http://{}/api/webhook. Log in as admin: `{env} gitfleet admin initial-password` prints the password, then `gitfleet --server {grpc} login`. Ctrl-C stops it.\n",
            stack.http_addr.expect("the gateway runs in `up`")
        ),
    )?;
    out.flush().ok();
    let shutdown = gitfleet_bus::cli::shutdown_on_signal();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = stack.wait_any() => {
            return Err(Error::Usage("a service stopped unexpectedly; see the log above".into()));
        }
    }
    stack.stop().await;
    Ok(0)
}
