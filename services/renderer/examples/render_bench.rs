//! Render throughput and cached latency through the real services: one nats-server, the
//! git watcher and one renderer in this process, a repository of `--apps` apps of each
//! kind (plain directory, Kustomize overlay on a shared base, Helm chart with its own
//! values file, and a plugin that waits 200 ms as a tool waiting on the network would).
//! Cold: every app rendered once, `--concurrency` at a time. Cached: the same requests
//! again, one at a time. `--renderers N` starts N renderers in the queue group, each
//! working on `--renderer-concurrency` renders at once (the pool's scaling); `--kinds`
//! picks the kinds (comma-separated). Figures go to BENCHMARKS.md.
//!
//! By content: after the cached pass, a commit that touches no app's inputs, and the same
//! requests at it, one at a time (answered from memory by the inputs' object ids, no
//! render); then every renderer is replaced by a fresh one and the requests are sent at a
//! third such commit (answered from NATS: KV `rendered`).
//!
//! `cargo run --release -p renderer --example render_bench -- --apps 200` (needs the tools
//! of `cargo xtask tools`: GITFLEET_NATS_SERVER, GITFLEET_KUBECTL, GITFLEET_HELM_C_LIB).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::write;
use futures::StreamExt;
use gitfleet_bus::Bus;
use gitfleet_messages::{RenderRequest, Rendered, Reply};
use gitfleet_model::{ApplicationSource, HelmSource, PluginSource};
use tokio_util::sync::CancellationToken;

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n";
const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";

fn write_repo(root: &Path, apps: usize) {
    write(
        root,
        "base/kustomization.yaml",
        "resources: [deploy.yaml, svc.yaml]\n",
    );
    write(root, "base/deploy.yaml", DEPLOY);
    write(root, "base/svc.yaml", SVC);
    write(
        root,
        "chart/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
    );
    write(
        root,
        "chart/values.yaml",
        "replicas: 1\nimage: nginx:1.25\n",
    );
    write(
        root,
        "chart/templates/_helpers.tpl",
        "{{- define \"web.name\" -}}{{ .Release.Name }}-web{{- end -}}\n",
    );
    write(
        root,
        "chart/templates/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"web.name\" . }}\nspec:\n  replicas: {{ .Values.replicas }}\n  template:\n    spec:\n      containers:\n      - name: web\n        image: {{ .Values.image }}\n",
    );
    write(
        root,
        "chart/templates/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ include \"web.name\" . }}\nspec:\n  ports: [{port: 80}]\n",
    );
    for i in 0..apps {
        write(
            root,
            &format!("dir/app-{i}/deploy.yaml"),
            &DEPLOY.replace("name: web\nspec", &format!("name: web-{i}\nspec")),
        );
        write(root, &format!("dir/app-{i}/svc.yaml"), SVC);
        write(
            root,
            &format!("overlays/app-{i}/kustomization.yaml"),
            &format!("resources: [../../base]\nnamePrefix: app-{i}-\n"),
        );
        // Beside the chart, not in it: each app reads the chart and its own file.
        write(
            root,
            &format!("envs/app-{i}.yaml"),
            &format!("replicas: {}\n", i % 5 + 1),
        );
    }
}

fn requests(repo: &str, commit: &str, kind: &str, apps: usize) -> Vec<RenderRequest> {
    (0..apps)
        .map(|i| {
            let mut source = ApplicationSource {
                repo_url: repo.to_owned(),
                ..ApplicationSource::default()
            };
            match kind {
                "directory" => source.path = format!("dir/app-{i}"),
                "plugin" => {
                    source.path = format!("dir/app-{i}");
                    source.plugin = Some(PluginSource {
                        name: "waits".into(),
                        ..PluginSource::default()
                    });
                }
                "kustomize" => source.path = format!("overlays/app-{i}"),
                _ => {
                    source.path = "chart".into();
                    source.helm = Some(HelmSource {
                        value_files: vec![format!("../envs/app-{i}.yaml")],
                        ..HelmSource::default()
                    });
                }
            }
            RenderRequest {
                repo: repo.to_owned(),
                commit: commit.to_owned(),
                source,
                app_name: format!("{kind}-{i}"),
                namespace: "bench".into(),
                refs: Vec::new(),
                local_files: Vec::new(),
            }
        })
        .collect()
}

async fn render(bus: &Bus, request: &RenderRequest) -> Duration {
    let start = Instant::now();
    let reply: Reply<Rendered> = common::ask(bus, bus.topology.render_subject(), request).await;
    let rendered = reply.into_result().expect("the render succeeds");
    assert!(!rendered.manifests.is_empty());
    start.elapsed()
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn arg(name: &str, default: usize) -> usize {
    arg_str(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A plugin whose time is spent waiting, not computing (a tool fetching secrets or charts).
fn waiting_plugin() -> renderer::Plugin {
    renderer::Plugin::parse(
        "apiVersion: argoproj.io/v1alpha1\nkind: ConfigManagementPlugin\nmetadata:\n  name: waits\nspec:\n  generate:\n    command: [sh, -c]\n    args: [\"sleep 0.2; cat deploy.yaml\"]\n",
    )
    .expect("plugin config")
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        gitfleet_bus::cli::init_tracing();
    }
    let apps = arg("--apps", 200);
    let concurrency = arg("--concurrency", 16);
    let renderers = arg("--renderers", 1);
    let per_renderer = arg("--renderer-concurrency", concurrency);
    let kinds_arg = arg_str("--kinds").unwrap_or_else(|| "directory,kustomize,helm".into());
    let kinds: Vec<&str> = kinds_arg.split(',').collect();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("repo");
    write_repo(&work, apps);
    let (repo, commit) = common::commit_all(&work);
    let mut config = renderer::Config {
        max_concurrent_renders: per_renderer,
        ..renderer::Config::default()
    };
    config.tools.plugins.plugins.push(waiting_plugin());
    let bus = gitfleet_bus::testkit::bus().await;
    let shutdown = CancellationToken::new();
    let watcher = git_watcher::start(
        git_watcher::Config::new(dir.path().join("mirrors")).allowing_local_repositories(),
        bus.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    tokio::spawn(watcher.wait());
    let (mut pool, mut counters) = start_renderers(&bus, &config, renderers).await;

    // Warm the mirror and the tools (first Kustomize exec, Helm library load).
    for &kind in &kinds {
        let mut warm = requests(&repo, &commit, kind, 1);
        warm[0].app_name = format!("warm-{kind}");
        render(&bus, &warm[0]).await;
    }
    let rss_before = rss_mib();
    println!(
        "| kind | apps | renderers x concurrency | in flight | cold renders/s | cached p50 ms | cached p99 ms | new commit p50 ms | new commit p99 ms | renders at it |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let bus = Arc::new(bus);
    let mut untouched = 0;
    for &kind in &kinds {
        let batch = requests(&repo, &commit, kind, apps);
        let start = Instant::now();
        futures::stream::iter(batch.iter())
            .map(|r| {
                let bus = bus.clone();
                async move { render(&bus, r).await }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        let cold = start.elapsed();
        let cached = serially(&bus, &batch).await;
        // A commit no app reads: every request again at it, one at a time.
        untouched += 1;
        let elsewhere = commit_untouched(&work, untouched);
        let renders_before = rendered(&counters);
        let at_new = serially(&bus, &requests(&repo, &elsewhere, kind, apps)).await;
        println!(
            "| {kind} | {apps} | {renderers} x {per_renderer} | {concurrency} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            apps as f64 / cold.as_secs_f64(),
            pct(&cached, 0.5),
            pct(&cached, 0.99),
            pct(&at_new, 0.5),
            pct(&at_new, 0.99),
            rendered(&counters) - renders_before,
        );
    }
    println!(
        "\nprocess RSS (nats client, git watcher, renderer): {rss_before:.0} MiB after warm-up, {:.0} MiB with {} apps' renders cached",
        rss_mib(),
        apps * kinds.len()
    );

    // Every renderer replaced: the new ones start with empty memory.
    for (stop, running) in pool.drain(..) {
        stop.cancel();
        let _ = running.wait().await;
    }
    (pool, counters) = start_renderers(&bus, &config, renderers).await;
    println!("\nafter a restart of every renderer, at a commit no app reads:\n");
    println!("| kind | p50 ms | p99 ms | renders | from NATS |");
    println!("|---|---|---|---|---|");
    for &kind in &kinds {
        untouched += 1;
        let elsewhere = commit_untouched(&work, untouched);
        let renders_before = rendered(&counters);
        let hits_before = from_store(&counters);
        let times = serially(&bus, &requests(&repo, &elsewhere, kind, apps)).await;
        println!(
            "| {kind} | {:.2} | {:.2} | {} | {} |",
            pct(&times, 0.5),
            pct(&times, 0.99),
            rendered(&counters) - renders_before,
            from_store(&counters) - hits_before,
        );
    }
    drop(pool);
    shutdown.cancel();
}

type Pool = Vec<(CancellationToken, gitfleet_bus::Running<renderer::Error>)>;

/// `n` renderers in the queue group, answering once this returns, and their counters.
async fn start_renderers(
    bus: &Bus,
    config: &renderer::Config,
    n: usize,
) -> (Pool, Vec<Arc<renderer::Counters>>) {
    let mut pool = Vec::new();
    let mut counters = Vec::new();
    for _ in 0..n.max(1) {
        let mine = Arc::new(renderer::Counters::default());
        let stop = CancellationToken::new();
        let config = renderer::Config {
            counters: mine.clone(),
            ..config.clone()
        };
        let running = renderer::start(config, bus.clone(), stop.clone())
            .await
            .unwrap();
        pool.push((stop, running));
        counters.push(mine);
    }
    (pool, counters)
}

fn rendered(counters: &[Arc<renderer::Counters>]) -> u64 {
    counters
        .iter()
        .map(|c| c.renders.load(Ordering::Relaxed))
        .sum()
}

fn from_store(counters: &[Arc<renderer::Counters>]) -> u64 {
    counters
        .iter()
        .map(|c| c.store_hits.load(Ordering::Relaxed))
        .sum()
}

/// Commits a file no app reads: the new commit.
fn commit_untouched(work: &Path, n: usize) -> String {
    write(work, "README.md", &format!("revision {n}\n"));
    gitfleet_gitkit::git(work, &["add", "-A"]);
    gitfleet_gitkit::git(work, &["commit", "--quiet", "-m", "readme"]);
    gitfleet_gitkit::git(work, &["rev-parse", "HEAD"])
}

/// Each request in turn: the round trip of each, sorted.
async fn serially(bus: &Bus, batch: &[RenderRequest]) -> Vec<Duration> {
    let mut times = Vec::with_capacity(batch.len());
    for r in batch {
        times.push(render(bus, r).await);
    }
    times.sort();
    times
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3
}
