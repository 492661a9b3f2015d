//! A separate process running a chosen subset of gitfleet's services through the same
//! `gitfleet-stack` as `gitfleet up`: the end-to-end tests start several and SIGKILL one.

use std::time::Duration;

use gitfleet_bus::BusConfig;
use gitfleet_stack::{Services, StackConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| -> String {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| panic!("e2e-node: {name} is required"))
    };
    let services: Vec<String> = arg("--services").split(',').map(String::from).collect();
    let has = |s: &str| services.iter().any(|x| x == s);
    let member = arg("--member-id");
    let mut cfg = StackConfig::new(member.clone(), arg("--work-dir"));
    cfg.services = Services {
        git_watcher: has("git-watcher"),
        renderer: has("renderer"),
        diff_worker: has("diff-worker"),
        sync_executor: has("sync-executor"),
        api_gateway: has("api-gateway"),
        notifier: has("notifier"),
    };
    cfg.ownership_ttl = Duration::from_secs(arg("--ttl-seconds").parse().expect("--ttl-seconds is a number"));
    cfg.refresh_interval = Duration::from_secs(600);
    cfg.wave_delay = Duration::ZERO;
    gitfleet_e2e::init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let mut bus_config = BusConfig::new(arg("--nats-url"));
        bus_config.prefix = arg("--prefix");
        bus_config.name = format!("e2e-node-{member}");
        let bus = gitfleet_bus::connect(&bus_config).await.expect("bus");
        let mut stack = gitfleet_stack::start(cfg, bus).await.expect("services start");
        println!("ready");
        stack.wait_any().await;
    });
}
