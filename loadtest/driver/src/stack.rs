//! Starting the system under test, each part its own process under the driver's
//! [`Children`]: nats-server, cluster-sim, the repository served by git-daemon, and the
//! five services.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use gitfleet_bus::{Bus, BusConfig};
use gitfleet_gitkit::{GitDaemon, Upstream};
use gitfleet_procs::{Children, free_port};

use crate::args::Args;
use crate::clusters::Clusters;
use crate::run::Progress;
use crate::{apps, wait};

/// The bus subject prefix every process is started with.
const PREFIX: &str = "gf";

const SERVICES: [&str; 6] = [
    "git-watcher",
    "renderer",
    "diff-worker",
    "sync-executor",
    "api-gateway",
    "appset-controller",
];

/// Everything up and ready: every app and cluster partition has an owner.
pub struct Stack {
    /// The driver's own connection: it writes the load and watches statuses through it.
    pub bus: Bus,
    pub clusters: Clusters,
    pub admin_url: String,
    /// The work tree the webhook runs commit to.
    pub upstream: Upstream,
    pub repo_url: String,
    pub webhook_url: String,
    /// nats-server's monitoring endpoint (`/varz`, `/jsz`): what the bus carried.
    pub nats_monitor_url: String,
}

/// The binaries the stack is made of; checked before anything starts, so a missing build
/// fails in a second with the command that makes it.
struct Binaries {
    dir: PathBuf,
    nats_server: PathBuf,
}

impl Binaries {
    fn find(args: &Args) -> Result<Binaries> {
        let dir = match &args.bin_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("driver has no directory")?
                .to_path_buf(),
        };
        for b in SERVICES.iter().chain(["cluster-sim"].iter()) {
            ensure!(
                dir.join(b).is_file(),
                "{} not found: build the release binaries first (`cargo build --release --workspace --bins`, or run `cargo xtask loadtest -- ...`)",
                dir.join(b).display()
            );
        }
        let nats_server = args.nats_server.clone().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/bin/nats-server")
        });
        ensure!(
            nats_server.is_file(),
            "nats-server not found at {}: run `cargo xtask tools`",
            nats_server.display()
        );
        Ok(Binaries { dir, nats_server })
    }
}

pub async fn start(
    args: &Args,
    children: &Children,
    work: &Path,
    progress: &Progress,
) -> Result<Stack> {
    let bins = Binaries::find(args)?;
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = |name: &str| logs.join(format!("{name}.log"));

    // 1. nats-server with JetStream.
    let nats_port = free_port().context("picking a port for nats-server")?;
    let monitor_port = free_port().context("picking a port for nats-server's monitoring")?;
    let mut cmd = Command::new(&bins.nats_server);
    cmd.args([
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        &nats_port.to_string(),
        "-m",
        &monitor_port.to_string(),
        "-sd",
    ])
    .arg(work.join("nats"));
    children.spawn_logged("nats-server", cmd, &log("nats-server"))?;
    wait::tcp(children, "nats-server", nats_port, Duration::from_secs(20)).await?;
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    // Credentials at rest are sealed with this run's key, which every service reads.
    let key_file = work.join("credentials.key");
    gitfleet_bus::CredentialKey::load_or_create(&key_file).context("making the credentials key")?;
    let bus = gitfleet_bus::connect(&BusConfig {
        url: nats_url.clone(),
        prefix: PREFIX.into(),
        name: "loadtest".into(),
        ..BusConfig::default()
    })
    .await
    .context("connecting to nats-server")?;
    bus.ensure().await.context("creating the topology")?;
    progress.phase("nats-server up");

    // 2. cluster-sim, its own process.
    let kubeconfig = work.join("kubeconfig");
    let mut cmd = Command::new(bins.dir.join("cluster-sim"));
    cmd.args([
        "serve",
        "--clusters",
        &args.clusters.to_string(),
        "--tls",
        "--listen",
        "127.0.0.1:0",
        "--latency-ms",
        &args.latency_ms.to_string(),
        "--ready-delay-ms",
        &args.ready_delay_ms.to_string(),
    ])
    .arg("--kubeconfig")
    .arg(&kubeconfig)
    .env("RUST_LOG", &args.log);
    children.spawn_logged("cluster-sim", cmd, &log("cluster-sim"))?;
    // Logged once every listener is bound and the kubeconfig written.
    let admin_url = wait::log_value(
        children,
        &log("cluster-sim"),
        "admin at ",
        Duration::from_secs(30),
    )
    .await?;
    let clusters = Clusters::read(&kubeconfig)?;
    ensure!(
        clusters.list.len() == args.clusters,
        "cluster-sim's kubeconfig has {} clusters, not {}",
        clusters.list.len(),
        args.clusters
    );
    clusters.register(&bus).await?;
    progress.phase(&format!(
        "cluster-sim up: {} clusters over HTTPS, {} ms added latency, {} ms ready delay, admin {admin_url}",
        clusters.list.len(),
        args.latency_ms,
        args.ready_delay_ms
    ));

    // 3. The repository: one directory per app, one ConfigMap in each (and a hook Job).
    let upstream = if args.appset_services > 0 {
        apps::service_repository(work, args.appset_services)
    } else {
        apps::repository(work, args.apps, args.shape)
    };
    let git_port = free_port().context("picking a port for git-daemon")?;
    children.spawn_logged(
        "git daemon",
        GitDaemon::command(&upstream.base(), git_port),
        &log("git-daemon"),
    )?;
    wait::tcp(children, "git daemon", git_port, Duration::from_secs(20)).await?;
    let repo_url = format!("git://127.0.0.1:{git_port}/{}", upstream.name);
    let directories = if args.appset_services > 0 {
        format!("{} service directories", args.appset_services)
    } else {
        format!("{} app directories", args.apps)
    };
    progress.phase(&format!(
        "git daemon up: {repo_url}, {directories} ({})",
        args.shape.as_str()
    ));

    // 4. The services, each its own process, event-driven only (poll and periodic
    //    refresh pushed out of the run's window).
    let (grpc_port, http_port) = (free_port()?, free_port()?);
    let replicas = |s: &str| match s {
        "diff-worker" => args.diff_workers,
        "sync-executor" => args.executors,
        "renderer" => args.renderers,
        _ => 1,
    };
    for (s, i) in SERVICES
        .iter()
        .flat_map(|s| (0..replicas(s).max(1)).map(move |i| (*s, i)))
    {
        let name = process_name(s, i);
        let mut cmd = Command::new(bins.dir.join(s));
        cmd.args(["--nats-url", &nats_url, "--prefix", PREFIX])
            .env(gitfleet_bus::sealed::KEY_FILE_ENV, &key_file)
            .env("RUST_LOG", &args.log);
        match s {
            "git-watcher" => {
                cmd.arg("--mirror-dir")
                    .arg(work.join("mirrors"))
                    .args(["--poll-seconds", "3600"]);
            }
            "appset-controller" => {
                cmd.args(["--member-id", "asc-0", "--requeue-seconds", "3600"]);
            }
            "diff-worker" => {
                cmd.args(["--member-id", &format!("dw-{i}"), "--refresh-seconds"])
                    .arg(args.refresh_seconds.to_string());
            }
            "sync-executor" => {
                cmd.args(["--member-id", &format!("se-{i}")]);
                if let Some(d) = args.wave_delay_seconds {
                    cmd.args(["--wave-delay-seconds", &d.to_string()]);
                }
                if let Some(c) = args.cluster_concurrency {
                    cmd.args(["--cluster-concurrency", &c.to_string()]);
                }
            }
            "api-gateway" => {
                cmd.args([
                    "--grpc-addr",
                    &format!("127.0.0.1:{grpc_port}"),
                    "--http-addr",
                    &format!("127.0.0.1:{http_port}"),
                ]);
            }
            _ => {}
        }
        children.spawn_logged(&name, cmd, &log(&name))?;
    }
    wait::tcp(
        children,
        "api-gateway (webhooks)",
        http_port,
        Duration::from_secs(30),
    )
    .await?;
    wait::partitions_owned(children, &bus, Duration::from_secs(90)).await?;
    progress.phase("services up; every app and cluster partition has an owner");

    Ok(Stack {
        bus,
        clusters,
        admin_url,
        upstream,
        repo_url,
        webhook_url: format!("http://127.0.0.1:{http_port}/api/webhook"),
        nats_monitor_url: format!("http://127.0.0.1:{monitor_port}"),
    })
}

/// The driver's name for replica `i` of service `s`: the service's own name for the
/// first, `<s>-<i>` for the others.
pub fn process_name(s: &str, i: usize) -> String {
    if i == 0 {
        s.to_string()
    } else {
        format!("{s}-{i}")
    }
}

/// What the bus has carried so far, from nats-server's monitoring endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusCounts {
    /// Messages published to the server (requests, replies, KV writes, stream appends).
    pub messages: u64,
    pub bytes: u64,
    /// JetStream API calls (KV reads, consumer creation, stream info).
    pub jetstream_api: u64,
}

impl BusCounts {
    pub fn since(self, before: BusCounts) -> BusCounts {
        BusCounts {
            messages: self.messages.saturating_sub(before.messages),
            bytes: self.bytes.saturating_sub(before.bytes),
            jetstream_api: self.jetstream_api.saturating_sub(before.jetstream_api),
        }
    }
}

/// Reads `/varz` and `/jsz`; zeros when the endpoint does not answer (the run does not
/// depend on it).
pub async fn bus_counts(monitor_url: &str) -> BusCounts {
    async fn get(url: String) -> Option<serde_json::Value> {
        reqwest::get(url).await.ok()?.json().await.ok()
    }
    let varz = get(format!("{monitor_url}/varz")).await.unwrap_or_default();
    let jsz = get(format!("{monitor_url}/jsz")).await.unwrap_or_default();
    BusCounts {
        messages: varz["in_msgs"].as_u64().unwrap_or(0),
        bytes: varz["in_bytes"].as_u64().unwrap_or(0),
        jetstream_api: jsz["api"]["total"].as_u64().unwrap_or(0),
    }
}
