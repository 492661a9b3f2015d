//! A separate process running a chosen subset of gitfleet's services through the same
//! `gitfleet-stack` as `gitfleet up`: the end-to-end tests start several and SIGKILL one.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gitfleet_bus::cli::BusArgs;
use gitfleet_stack::{Services, StackConfig};

/// Driven by `Sandbox::spawn_node`.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    bus: BusArgs,
    #[arg(long)]
    member_id: String,
    /// Comma-separated service names, e.g. `renderer,diff-worker`.
    #[arg(long, value_delimiter = ',')]
    services: Vec<String>,
    #[arg(long)]
    ttl_seconds: u64,
    /// The sync executor's pause between waves.
    #[arg(long, default_value_t = 0)]
    wave_delay_ms: u64,
    #[arg(long)]
    work_dir: PathBuf,
    /// A folder of per-role NKey seeds: each service connects as its own user.
    #[arg(long)]
    nats_identities: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let has = |s: &str| args.services.iter().any(|x| x == s);
    let member = args.member_id.clone();
    let mut cfg = StackConfig::new(member.clone(), args.work_dir.clone());
    cfg.services = Services {
        git_watcher: has("git-watcher"),
        renderer: has("renderer"),
        diff_worker: has("diff-worker"),
        sync_executor: has("sync-executor"),
        api_gateway: has("api-gateway"),
        notifier: has("notifier"),
        appset_controller: has("appset-controller"),
    };
    cfg.ownership_ttl = Duration::from_secs(args.ttl_seconds);
    cfg.disable_auth = true;
    cfg.refresh_interval = Duration::from_secs(600);
    cfg.wave_delay = Duration::from_millis(args.wave_delay_ms);
    gitfleet_e2e::init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let config = args.bus.config(&format!("e2e-node-{member}"));
        let buses = match &args.nats_identities {
            Some(dir) => {
                let ids = gitfleet_bus::Identities::read_dir(dir).expect("identities");
                let key = config.credentials_key_file.as_ref().map(|path| {
                    std::sync::Arc::new(gitfleet_bus::CredentialKey::load(path).expect("key"))
                });
                gitfleet_stack::ServiceBuses::connect_locked(&config, &ids, key)
                    .await
                    .expect("bus")
            }
            None => gitfleet_stack::ServiceBuses::shared(
                gitfleet_bus::connect(&config).await.expect("bus"),
            ),
        };
        let mut stack = gitfleet_stack::start_with(cfg, buses)
            .await
            .expect("services start");
        println!("ready");
        stack.wait_any().await;
    });
}
