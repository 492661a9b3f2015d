//! `loadtest`: gitfleet's load harness. Starts, each as its own process, a nats-server
//! (JetStream), cluster-sim with N emulated clusters over HTTPS, a `git daemon` serving a
//! generated repository, and the five service binaries (git-watcher, renderer,
//! diff-worker, sync-executor, api-gateway); then measures
//!
//! 1. create-to-Synced: N Applications (one directory `apps/app-NNNN/` with one ConfigMap
//!    each, destinations round-robin over clusters c0..c{N-1} by name, automated sync with
//!    CreateNamespace) written straight into KV `applications` (as the gateway stores
//!    them), timed from the first write until every app's KV `app-status` says Synced and
//!    Healthy; then the ConfigMaps are counted in the emulated clusters;
//! 2. webhook-to-Synced: a commit that changes one app, a GitHub push webhook to the
//!    gateway, timed until that app reports Synced at the new commit (median of 5);
//! 3. CPU time (user + system, from `/proc/<pid>/stat`) and peak RSS (`VmHWM`) of every
//!    process.
//!
//! Build everything first (`cargo xtask loadtest -- ARGS` does both):
//!
//! ```text
//! cargo build --release --workspace --bins
//! target/release/loadtest --apps 100 --clusters 10 --latency-ms 0
//! ```
//!
//! Every child is killed when the driver exits, on error and on Ctrl-C or SIGTERM too;
//! every wait has a deadline. On failure the work directory (logs of every process) is
//! kept and its path printed.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use futures::StreamExt;
use gitfleet_bus::{Bucket, Bus, BusConfig, subject_token, token_to_name};
use loadtest_driver::{ProcSample, percentile, sample, secs};
use serde_json::{Value, json};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadtest",
    about = "gitfleet load harness: create-to-Synced and webhook-to-Synced, with CPU and peak memory per process"
)]
struct Args {
    /// Applications to create (one ConfigMap each, in its own directory).
    #[arg(long, default_value_t = 100)]
    apps: usize,
    /// Emulated clusters (c0..cN-1); apps are spread over them round-robin.
    #[arg(long, default_value_t = 10)]
    clusters: usize,
    /// Latency cluster-sim adds to every Kubernetes API request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Webhook-to-Synced measurements (the median is reported).
    #[arg(long, default_value_t = 5)]
    webhook_runs: usize,
    /// Deadline for all apps to become Synced and Healthy.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
    /// Application writes in flight at once.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Where the release binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The nats-server binary (default: tools/bin/nats-server of the workspace).
    #[arg(long, env = "GITFLEET_NATS_SERVER")]
    nats_server: Option<PathBuf>,
    /// RUST_LOG of the services (their logs go to files in the work directory).
    #[arg(long, default_value = "warn")]
    log: String,
    /// Create every app's namespace in its cluster before the timed phase, so syncs
    /// have no PreSync wave for CreateNamespace (and hence no wave delay after it).
    #[arg(long)]
    precreate_namespaces: bool,
    /// Passed to the sync-executor as `--wave-delay-seconds` (its default, Argo CD's 2 s,
    /// when unset).
    #[arg(long)]
    wave_delay_seconds: Option<f64>,
    /// Passed to the sync-executor as `--cluster-concurrency` (its default, 4, when unset).
    #[arg(long)]
    cluster_concurrency: Option<usize>,
    /// Keep the work directory (logs, repository, nats store) after a successful run.
    #[arg(long)]
    keep: bool,
}

const PREFIX: &str = "gf";
const SERVICES: [&str; 5] = [
    "git-watcher",
    "renderer",
    "diff-worker",
    "sync-executor",
    "api-gateway",
];

fn main() {
    let args = Args::parse();
    let work = match tempfile::Builder::new()
        .prefix("gitfleet-loadtest-")
        .tempdir()
    {
        Ok(w) => w,
        Err(e) => {
            eprintln!("loadtest: error: cannot create a work directory: {e}");
            std::process::exit(1);
        }
    };
    let procs = Procs::default();
    let guard = KillOnDrop(procs.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        tokio::select! {
            r = run(&args, &procs, work.path()) => r,
            s = stop_signal() => Err(anyhow!("stopped by {s}")),
        }
    });
    drop(guard);
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(report) => {
            println!("{report}");
            if args.keep {
                eprintln!("loadtest: work directory kept: {}", work.keep().display());
            }
        }
        Err(e) => {
            eprintln!("loadtest: error: {e:#}");
            eprintln!(
                "loadtest: logs of every process kept in {}",
                work.keep().display()
            );
            std::process::exit(1);
        }
    }
}

async fn stop_signal() -> &'static str {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}

// ------------------------------------------------------------------ child processes

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// Every child the driver started, killed (SIGKILL) in reverse order by [`KillOnDrop`].
#[derive(Default, Clone)]
struct Procs(Arc<Mutex<Vec<Proc>>>);

impl Procs {
    fn spawn(&self, name: &str, mut cmd: Command, logs: &Path) -> Result<u32> {
        let log = logs.join(format!("{name}.log"));
        let f = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f);
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {name} ({})",
                cmd.get_program().to_string_lossy()
            )
        })?;
        let pid = child.id();
        self.0.lock().unwrap().push(Proc {
            name: name.to_string(),
            child,
            log,
        });
        Ok(pid)
    }

    /// Fails, naming the process and quoting its log, if any child has exited.
    fn check_alive(&self) -> Result<()> {
        let mut procs = self.0.lock().unwrap();
        for p in procs.iter_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{} exited ({status}); last lines of {}:\n{}",
                    p.name,
                    p.log.display(),
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    fn samples(&self) -> Vec<(String, u32, ProcSample)> {
        let procs = self.0.lock().unwrap();
        let mut out: Vec<_> = procs
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.child.id(),
                    sample(p.child.id()).unwrap_or_default(),
                )
            })
            .collect();
        out.push((
            "loadtest (this driver)".to_string(),
            std::process::id(),
            sample(std::process::id()).unwrap_or_default(),
        ));
        out
    }

    fn kill_all(&self) {
        let mut procs = self.0.lock().unwrap();
        while let Some(mut p) = procs.pop() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

struct KillOnDrop(Procs);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill_all();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .context("binding a free port")?
        .local_addr()?
        .port())
}

async fn wait_tcp(procs: &Procs, what: &str, port: u16, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        procs.check_alive()?;
        ensure!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=loadtest",
            "-c",
            "user.email=loadtest@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("running git {args:?}"))?;
    ensure!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ------------------------------------------------------------------ the run

struct ClusterInfo {
    name: String,
    server: String,
    token: String,
    ca_data: String,
}

fn app_name(i: usize) -> String {
    format!("app-{i:04}")
}

fn config_map(app: &str, generation: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: load\ndata:\n  app: {app}\n  generation: \"{generation}\"\n"
    )
}

fn application(name: &str, repo: &str, cluster: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": format!("apps/{name}")},
            "destination": {"name": cluster, "namespace": name},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
        },
    })
}

async fn run(args: &Args, procs: &Procs, work: &Path) -> Result<String> {
    ensure!(
        args.apps > 0 && args.clusters > 0,
        "--apps and --clusters must be at least 1"
    );
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("driver has no directory")?
            .to_path_buf(),
    };
    for b in SERVICES.iter().chain(["cluster-sim"].iter()) {
        ensure!(
            bin_dir.join(b).is_file(),
            "{} not found: build the release binaries first (`cargo build --release --workspace --bins`, or run `cargo xtask loadtest -- ...`)",
            bin_dir.join(b).display()
        );
    }
    let nats_bin = args
        .nats_server
        .clone()
        .unwrap_or_else(|| workspace_root().join("tools/bin/nats-server"));
    ensure!(
        nats_bin.is_file(),
        "nats-server not found at {}: run `cargo xtask tools`",
        nats_bin.display()
    );
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let started = Instant::now();
    let phase = |what: &str| {
        eprintln!(
            "loadtest: [{:>7.1} s] {what}",
            started.elapsed().as_secs_f64()
        )
    };

    // 1. nats-server with JetStream.
    let nats_port = free_port()?;
    let mut cmd = Command::new(&nats_bin);
    cmd.args([
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        &nats_port.to_string(),
        "-sd",
    ])
    .arg(work.join("nats"));
    procs.spawn("nats-server", cmd, &logs)?;
    wait_tcp(procs, "nats-server", nats_port, Duration::from_secs(20)).await?;
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let bus = gitfleet_bus::connect(&BusConfig {
        url: nats_url.clone(),
        prefix: PREFIX.into(),
        name: "loadtest".into(),
        ..BusConfig::default()
    })
    .await
    .context("connecting to nats-server")?;
    bus.ensure().await.context("creating the topology")?;
    phase("nats-server up");

    // 2. cluster-sim, its own process.
    let kubeconfig_path = work.join("kubeconfig");
    let mut cmd = Command::new(bin_dir.join("cluster-sim"));
    cmd.args([
        "serve",
        "--clusters",
        &args.clusters.to_string(),
        "--tls",
        "--listen",
        "127.0.0.1:0",
        "--latency-ms",
        &args.latency_ms.to_string(),
    ])
    .arg("--kubeconfig")
    .arg(&kubeconfig_path)
    .env("RUST_LOG", &args.log);
    procs.spawn("cluster-sim", cmd, &logs)?;
    let admin_url = wait_for_log_value(
        procs,
        &logs.join("cluster-sim.log"),
        "admin at ",
        Duration::from_secs(30),
    )
    .await?;
    let kubeconfig =
        std::fs::read_to_string(&kubeconfig_path).context("reading cluster-sim's kubeconfig")?;
    let clusters = parse_kubeconfig(&kubeconfig)?;
    ensure!(
        clusters.len() == args.clusters,
        "cluster-sim's kubeconfig has {} clusters, not {}",
        clusters.len(),
        args.clusters
    );
    let clusters_kv = bus.kv(Bucket::Clusters).await?;
    for c in &clusters {
        let v = json!({"name": c.name, "server": c.server, "config": {"bearerToken": c.token, "tlsClientConfig": {"caData": c.ca_data}}});
        serde_json::from_value::<gitfleet_model::Cluster>(v.clone()).context("cluster document")?;
        clusters_kv
            .put(subject_token(&c.name), serde_json::to_vec(&v)?.into())
            .await
            .context("registering a cluster")?;
    }
    phase(&format!(
        "cluster-sim up: {} clusters over HTTPS, {} ms added latency, admin {admin_url}",
        clusters.len(),
        args.latency_ms
    ));

    // 3. The repository: one directory per app, one ConfigMap in each, served by git daemon.
    let src = work.join("git/src");
    let base = work.join("git/base");
    std::fs::create_dir_all(&src)?;
    std::fs::create_dir_all(&base)?;
    git(&src, &["init", "-q", "-b", "main"])?;
    for i in 0..args.apps {
        let name = app_name(i);
        let dir = src.join("apps").join(&name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cm.yaml"), config_map(&name, 0))?;
    }
    git(&src, &["add", "-A"])?;
    git(&src, &["commit", "-q", "-m", "apps"])?;
    git(
        &base,
        &[
            "clone",
            "-q",
            "--bare",
            src.to_str().context("utf-8 path")?,
            "apps.git",
        ],
    )?;
    git(
        &src,
        &[
            "remote",
            "add",
            "origin",
            base.join("apps.git").to_str().context("utf-8 path")?,
        ],
    )?;
    let git_port = free_port()?;
    let mut cmd = Command::new("git");
    cmd.arg("daemon")
        .arg("--reuseaddr")
        .arg(format!("--base-path={}", base.display()))
        .arg("--export-all")
        .arg(format!("--port={git_port}"))
        .arg("--listen=127.0.0.1")
        .arg(&base);
    procs.spawn("git daemon", cmd, &logs)?;
    wait_tcp(procs, "git daemon", git_port, Duration::from_secs(20)).await?;
    let repo_url = format!("git://127.0.0.1:{git_port}/apps.git");
    phase(&format!(
        "git daemon up: {repo_url}, {} app directories",
        args.apps
    ));

    // 4. The services, each its own process, event-driven only (poll and periodic
    //    refresh pushed out of the run's window).
    let (grpc_port, http_port) = (free_port()?, free_port()?);
    for s in SERVICES {
        let mut cmd = Command::new(bin_dir.join(s));
        cmd.args(["--nats-url", &nats_url, "--prefix", PREFIX])
            .env("RUST_LOG", &args.log);
        match s {
            "git-watcher" => {
                cmd.arg("--mirror-dir")
                    .arg(work.join("mirrors"))
                    .args(["--poll-seconds", "3600"]);
            }
            "diff-worker" => {
                cmd.args(["--member-id", "dw-0", "--refresh-seconds", "3600"]);
            }
            "sync-executor" => {
                cmd.args(["--member-id", "se-0"]);
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
        procs.spawn(s, cmd, &logs)?;
    }
    wait_tcp(
        procs,
        "api-gateway (webhooks)",
        http_port,
        Duration::from_secs(30),
    )
    .await?;
    wait_owned(procs, &bus, Duration::from_secs(90)).await?;
    phase("services up; every app and cluster partition has an owner");
    if args.precreate_namespaces {
        precreate_namespaces(&kubeconfig, &clusters, args.apps).await?;
        // Let the executor's watch cache see them.
        tokio::time::sleep(Duration::from_secs(2)).await;
        phase(&format!(
            "{} namespaces created ahead of the apps",
            args.apps
        ));
    }
    let s_ready = procs.samples();

    // 5. Create-to-Synced.
    let status_kv = bus.kv(Bucket::AppStatus).await?;
    let mut watch = status_kv.watch_all().await.context("watching app-status")?;
    let apps_kv = bus.kv(Bucket::Applications).await?;
    let mut docs = Vec::with_capacity(args.apps);
    for i in 0..args.apps {
        let name = app_name(i);
        let v = application(&name, &repo_url, &clusters[i % clusters.len()].name);
        let app: gitfleet_model::Application =
            serde_json::from_value(v).context("application document")?;
        docs.push((subject_token(&name), bytes_of(&app)?));
    }
    let t0 = Instant::now();
    let writer = {
        let kv = apps_kv.clone();
        let c = args.create_concurrency.max(1);
        tokio::spawn(async move {
            let results: Vec<_> = futures::stream::iter(docs)
                .map(|(k, v)| kv.put(k, v))
                .buffer_unordered(c)
                .collect()
                .await;
            let failed = results.iter().filter(|r| r.is_err()).count();
            (t0.elapsed(), failed)
        })
    };
    phase(&format!("creating {} applications", args.apps));
    let deadline = tokio::time::Instant::from_std(t0 + Duration::from_secs(args.timeout_seconds));
    let mut done: HashMap<String, Duration> = HashMap::new();
    let mut state: HashMap<String, (String, String)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    while done.len() < args.apps {
        tokio::select! {
            entry = tokio::time::timeout_at(deadline, watch.next()) => {
                let entry = match entry {
                    Err(_) => bail!(
                        "not converged: {} of {} apps Synced and Healthy after {} s (latest states: {})",
                        done.len(), args.apps, args.timeout_seconds, state_summary(&state)
                    ),
                    Ok(None) => bail!("the app-status watch ended"),
                    Ok(Some(e)) => e.context("watching app-status")?,
                };
                let name = token_to_name(&entry.key).unwrap_or_else(|| entry.key.clone());
                let v: Value = serde_json::from_slice(&entry.value).unwrap_or(Value::Null);
                let (sync, health) = (str_at(&v, "/sync/status"), str_at(&v, "/health/status"));
                if sync == "Synced" && health == "Healthy" && name.starts_with("app-") {
                    done.entry(name.clone()).or_insert_with(|| t0.elapsed());
                }
                state.insert(name, (sync, health));
            }
            _ = tick.tick() => {
                procs.check_alive()?;
                eprintln!("loadtest: [{:>7.1} s] {} of {} Synced and Healthy ({})", started.elapsed().as_secs_f64(), done.len(), args.apps, state_summary(&state));
            }
        }
    }
    let converged = t0.elapsed();
    let s_converged = procs.samples();
    let (writes_took, failed_writes) = writer.await?;
    ensure!(
        failed_writes == 0,
        "{failed_writes} application writes failed"
    );
    phase(&format!(
        "all {} apps Synced and Healthy after {}",
        args.apps,
        secs(converged)
    ));
    let per_app: Vec<Duration> = done.values().copied().collect();

    // The objects really are in the clusters.
    let found = count_config_maps(&kubeconfig, &clusters).await?;
    ensure!(
        found == args.apps,
        "{found} ConfigMaps named `load` in the clusters, expected {}",
        args.apps
    );
    let admin_counts = admin_object_counts(&admin_url).await.unwrap_or_default();

    // 6. Webhook-to-Synced for one app.
    let target = app_name(0);
    let webhook_url = format!("http://127.0.0.1:{http_port}/api/webhook");
    let http = reqwest::Client::new();
    let mut webhook = Vec::new();
    for run in 1..=args.webhook_runs {
        std::fs::write(
            src.join("apps").join(&target).join("cm.yaml"),
            config_map(&target, run),
        )?;
        git(
            &src,
            &[
                "commit",
                "-q",
                "-a",
                "-m",
                &format!("{target}: generation {run}"),
            ],
        )?;
        git(&src, &["push", "-q", "origin", "main"])?;
        let sha = git(&src, &["rev-parse", "HEAD"])?;
        let t = Instant::now();
        let body = json!({"ref": "refs/heads/main", "repository": {"clone_url": repo_url, "html_url": repo_url}});
        let resp = http
            .post(&webhook_url)
            .header("X-GitHub-Event", "push")
            .json(&body)
            .send()
            .await
            .context("posting the webhook")?;
        ensure!(
            resp.status().is_success(),
            "webhook answered {}",
            resp.status()
        );
        let limit = Duration::from_secs(120);
        loop {
            if let Some(e) = status_kv.get(subject_token(&target)).await? {
                let v: Value = serde_json::from_slice(&e).unwrap_or(Value::Null);
                if str_at(&v, "/sync/status") == "Synced"
                    && str_at(&v, "/sync/revision") == sha
                    && str_at(&v, "/health/status") == "Healthy"
                {
                    break;
                }
            }
            if t.elapsed() > limit {
                procs.check_alive()?;
                bail!("{target} not Synced at {sha} within {limit:?} of the webhook");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = t.elapsed();
        phase(&format!(
            "webhook run {run}: {target} Synced at {} after {}",
            &sha[..8],
            secs(took)
        ));
        webhook.push(took);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let s_end = procs.samples();
    procs.check_alive()?;

    Ok(report(
        args,
        Figures {
            converged,
            writes_took,
            per_app,
            webhook,
            found,
            admin_counts,
        },
        &[&s_ready, &s_converged, &s_end],
    ))
}

fn bytes_of(app: &gitfleet_model::Application) -> Result<bytes::Bytes> {
    Ok(serde_json::to_vec(app)?.into())
}

fn str_at(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn state_summary(state: &HashMap<String, (String, String)>) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for (s, h) in state.values() {
        let s = if s.is_empty() { "-" } else { s };
        let h = if h.is_empty() { "-" } else { h };
        *by.entry(format!("{s}/{h}")).or_default() += 1;
    }
    if by.is_empty() {
        return "no status yet".into();
    }
    by.iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until every app partition (diff workers) and cluster partition (sync
/// executors) has a lease holder, so the timed run does not include start-up.
async fn wait_owned(procs: &Procs, bus: &Bus, within: Duration) -> Result<()> {
    let leases = bus.kv(Bucket::Leases).await?;
    let deadline = Instant::now() + within;
    let groups = [
        (
            subject_token(gitfleet_messages::DIFF_WORKERS),
            gitfleet_messages::APP_PARTITIONS as usize,
        ),
        (
            subject_token(gitfleet_messages::SYNC_EXECUTORS),
            gitfleet_messages::CLUSTER_PARTITIONS as usize,
        ),
    ];
    loop {
        let mut keys = leases.keys().await?;
        let mut counts = [0usize; 2];
        while let Some(k) = keys.next().await {
            let k = k?;
            for (i, (g, _)) in groups.iter().enumerate() {
                if k.starts_with(&format!("{g}.p.")) {
                    counts[i] += 1;
                }
            }
        }
        if counts[0] >= groups[0].1 && counts[1] >= groups[1].1 {
            return Ok(());
        }
        procs.check_alive()?;
        ensure!(
            Instant::now() < deadline,
            "partitions not all owned within {within:?}: diff workers hold {}/{}, sync executors {}/{}",
            counts[0],
            groups[0].1,
            counts[1],
            groups[1].1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls a log file until a line contains `marker`; returns the word after it.
async fn wait_for_log_value(
    procs: &Procs,
    log: &Path,
    marker: &str,
    within: Duration,
) -> Result<String> {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text
            .lines()
            .find_map(|l| l.split_once(marker).map(|(_, r)| r.to_string()))
        {
            return Ok(rest.split_whitespace().next().unwrap_or("").to_string());
        }
        procs.check_alive()?;
        ensure!(
            Instant::now() < deadline,
            "no `{marker}` in {} within {within:?}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn parse_kubeconfig(text: &str) -> Result<Vec<ClusterInfo>> {
    let doc: Value = serde_yaml_ng::from_str(text).context("parsing cluster-sim's kubeconfig")?;
    let users: HashMap<String, String> = doc["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            Some((
                u["name"].as_str()?.to_string(),
                u["user"]["token"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut out = Vec::new();
    for c in doc["clusters"]
        .as_array()
        .context("kubeconfig has no clusters")?
    {
        let name = c["name"]
            .as_str()
            .context("cluster without a name")?
            .to_string();
        out.push(ClusterInfo {
            server: c["cluster"]["server"]
                .as_str()
                .context("cluster without a server")?
                .to_string(),
            ca_data: c["cluster"]["certificate-authority-data"]
                .as_str()
                .context("cluster without a CA (is --tls on?)")?
                .to_string(),
            token: users
                .get(&name)
                .cloned()
                .with_context(|| format!("no token for {name}"))?,
            name,
        });
    }
    Ok(out)
}

/// ConfigMaps named `load` in all clusters, read through the Kubernetes API as any client would.
async fn count_config_maps(kubeconfig: &str, clusters: &[ClusterInfo]) -> Result<usize> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig)?;
    let mut n = 0;
    for c in clusters {
        let client = client_for(&kc, &c.name).await?;
        let list = kube::Api::<ConfigMap>::all(client)
            .list(&kube::api::ListParams::default())
            .await
            .with_context(|| format!("listing ConfigMaps in {}", c.name))?;
        n += list
            .items
            .iter()
            .filter(|cm| cm.metadata.name.as_deref() == Some("load"))
            .count();
    }
    Ok(n)
}

async fn client_for(kc: &kube::config::Kubeconfig, cluster: &str) -> Result<kube::Client> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let opts = kube::config::KubeConfigOptions {
        context: Some(cluster.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc.clone(), &opts).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Namespace `app-NNNN` in the cluster app NNNN is sent to.
async fn precreate_namespaces(
    kubeconfig: &str,
    clusters: &[ClusterInfo],
    apps: usize,
) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig)?;
    let mut apis = Vec::new();
    for c in clusters {
        apis.push(kube::Api::<Namespace>::all(client_for(&kc, &c.name).await?));
    }
    let results: Vec<Result<()>> = futures::stream::iter(0..apps)
        .map(|i| {
            let api = apis[i % apis.len()].clone();
            async move {
                let ns: Namespace =
                    serde_json::from_value(json!({"metadata": {"name": app_name(i)}}))?;
                api.create(&kube::api::PostParams::default(), &ns)
                    .await
                    .with_context(|| format!("creating namespace {}", app_name(i)))?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn admin_object_counts(admin_url: &str) -> Result<u64> {
    let v: Value = reqwest::get(format!("{admin_url}/clusters"))
        .await?
        .json()
        .await?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["objects"].as_u64())
        .sum())
}

// ------------------------------------------------------------------ the report

struct Figures {
    converged: Duration,
    writes_took: Duration,
    per_app: Vec<Duration>,
    webhook: Vec<Duration>,
    found: usize,
    admin_counts: u64,
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_string()))
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores ({cpu}), {mem} memory")
}

fn report(args: &Args, f: Figures, samples: &[&[(String, u32, ProcSample)]; 3]) -> String {
    let tck = clk_tck();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let p = |v: &[Duration], q: f64| percentile(v, q).map(secs).unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let mut pre = String::new();
    if args.precreate_namespaces {
        pre += " --precreate-namespaces";
    }
    if let Some(d) = args.wave_delay_seconds {
        pre += &format!(" --wave-delay-seconds {d}");
    }
    if let Some(c) = args.cluster_concurrency {
        pre += &format!(" --cluster-concurrency {c}");
    }
    let cmd = format!(
        "cargo xtask loadtest -- --apps {} --clusters {} --latency-ms {}{pre}",
        args.apps, args.clusters, args.latency_ms
    );
    out += &format!(
        "\n## loadtest: {} apps on {} clusters, {} ms API latency{}\n\n",
        args.apps,
        args.clusters,
        args.latency_ms,
        if args.precreate_namespaces {
            ", namespaces created beforehand"
        } else {
            ""
        }
    );
    out += &format!(
        "Command: `{cmd}`  \nDate: {date}  \nMachine: {}\n\n",
        machine()
    );
    out += "| what | figure |\n|---|---|\n";
    out += &format!(
        "| create-to-Synced, all {} apps Synced and Healthy (from the first write to KV `applications`) | {} s |\n",
        args.apps,
        secs(f.converged)
    );
    out += &format!(
        "| per app, from the first write: p50 / p90 / max | {} / {} / {} s |\n",
        p(&f.per_app, 50.0),
        p(&f.per_app, 90.0),
        p(&f.per_app, 100.0)
    );
    out += &format!(
        "| throughput | {:.1} apps/s |\n",
        f.per_app.len() as f64 / f.converged.as_secs_f64()
    );
    out += &format!(
        "| writing the {} Applications ({} in flight) | {} s |\n",
        args.apps,
        args.create_concurrency,
        secs(f.writes_took)
    );
    out += &format!(
        "| ConfigMaps found through the Kubernetes API / objects in cluster-sim | {} / {} |\n",
        f.found, f.admin_counts
    );
    out += &format!(
        "| webhook-to-Synced, one app, {} runs: median (min, max) | {} s ({}, {}) |\n",
        f.webhook.len(),
        p(&f.webhook, 50.0),
        p(&f.webhook, 0.0),
        p(&f.webhook, 100.0)
    );
    out += "\n| process | CPU s, start-up | CPU s, create-to-Synced | CPU s, webhook runs | CPU s, total | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|\n";
    let [ready, converged, end] = samples;
    let cpu = |s: &ProcSample| s.cpu.total() as f64 / tck;
    let find = |set: &[(String, u32, ProcSample)], name: &str| {
        set.iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, s)| *s)
            .unwrap_or_default()
    };
    let mut total = [0.0f64; 4];
    for (name, _, last) in end.iter() {
        let (r, c) = (find(ready, name), find(converged, name));
        let row = [cpu(&r), cpu(&c) - cpu(&r), cpu(last) - cpu(&c), cpu(last)];
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
        out += &format!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |\n",
            row[0],
            row[1],
            row[2],
            row[3],
            last.peak_rss_kib as f64 / 1024.0
        );
    }
    out += &format!(
        "| all | {:.2} | {:.2} | {:.2} | {:.2} | |\n",
        total[0], total[1], total[2], total[3]
    );
    out += &format!(
        "\nCreate-to-Synced wall time {} s on {} cores: {:.0}% of the machine's CPU was busy in that phase.\n",
        secs(f.converged),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        100.0 * total[1]
            / (f.converged.as_secs_f64()
                * std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1) as f64)
    );
    out
}
