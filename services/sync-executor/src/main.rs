//! The sync executor as its own process: flags, bus connection, run until SIGINT or SIGTERM.

use anyhow::Context as _;
use clap::Parser;
use gitfleet_bus::cli::{BusArgs, init_tracing, shutdown_on_signal};

#[derive(Parser, Debug)]
#[command(
    name = "sync-executor",
    about = "gitfleet sync executor: owns clusters and runs syncs"
)]
struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// Unique id among executors; defaults to hostname-pid.
    #[arg(long, env = "GITFLEET_MEMBER_ID")]
    member_id: Option<String>,
    /// Pause between sync waves once a wave is healthy, in seconds (fractions allowed);
    /// Argo CD's `ARGOCD_SYNC_WAVE_DELAY`, default 2. Not applied after the step that only
    /// creates the `CreateNamespace` namespace.
    #[arg(long, env = "ARGOCD_SYNC_WAVE_DELAY", default_value_t = 2.0, value_parser = parse_seconds)]
    wave_delay_seconds: f64,
    /// Operations run at once against one cluster (one per app at a time regardless).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    cluster_concurrency: u64,
    /// Seconds after its start at which a running operation is terminated ("Operation
    /// terminated, triggered by controller sync timeout"); 0, the default, never. Argo
    /// CD's `--sync-timeout` (`controller.sync.timeout.seconds`).
    #[arg(
        long,
        env = "ARGOCD_APPLICATION_CONTROLLER_SYNC_TIMEOUT",
        default_value_t = 0
    )]
    sync_timeout: u64,
    /// How long a wave may take to become healthy before the sync fails, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    wave_timeout_seconds: u64,
    /// Lua health scripts laid out as Argo CD's `resource_customizations` directory, for
    /// the waves' health.
    #[arg(long, env = "GITFLEET_RESOURCE_CUSTOMIZATIONS")]
    resource_customizations: Option<std::path::PathBuf>,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err("must be a finite number of seconds, 0 or more".to_string())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let member_id = args.member_id.unwrap_or_else(default_member_id);
    let bus = args
        .bus
        .connect(&format!("sync-executor {member_id}"))
        .await
        .context("connecting to nats")?;
    let mut config = sync_executor::Config::new(member_id);
    config.wave_delay = std::time::Duration::from_secs_f64(args.wave_delay_seconds);
    config.cluster_concurrency = usize::try_from(args.cluster_concurrency).unwrap_or(usize::MAX);
    config.sync_timeout = std::time::Duration::from_secs(args.sync_timeout);
    config.wave_timeout = std::time::Duration::from_secs(args.wave_timeout_seconds);
    if let Some(dir) = &args.resource_customizations {
        config.health_library = gitfleet_lua::Library::load(dir)?;
    }
    sync_executor::run(config, bus, shutdown_on_signal())
        .await
        .context("sync executor")?;
    Ok(())
}

fn default_member_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sync-executor".to_string());
    format!("{host}-{}", std::process::id())
}
