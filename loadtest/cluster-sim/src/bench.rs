//! `cluster-sim bench`: the emulator's own figures (peak memory with many clusters and
//! objects, list latency, write throughput, watch fan-out), measured over real HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::json;

use crate::{Sim, SimConfig};

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Clusters to start.
    #[arg(long, default_value_t = 100)]
    pub clusters: usize,
    /// ConfigMaps created in every cluster.
    #[arg(long, default_value_t = 1000)]
    pub objects: usize,
    /// Objects in the one namespace whose list is timed.
    #[arg(long, default_value_t = 10_000)]
    pub list_objects: usize,
    /// Concurrent requests while loading.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn configmap(i: usize) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i:06}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}},
        "data": {"key": format!("value-{i}"), "payload": "x".repeat(200)}})
}

/// Creates `n` ConfigMaps in `ns` of each cluster in `urls`, `concurrency` at a time; returns requests/s.
async fn load(
    client: &reqwest::Client,
    targets: &[(String, String)],
    ns: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let failures = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let jobs = targets
        .iter()
        .flat_map(|(url, token)| (0..n).map(move |i| (url.clone(), token.clone(), i)));
    futures::stream::iter(jobs)
        .for_each_concurrent(concurrency, |(url, token, i)| {
            let failures = failures.clone();
            let client = client.clone();
            async move {
                let r = client
                    .post(format!("{url}/api/v1/namespaces/{ns}/configmaps"))
                    .bearer_auth(&token)
                    .json(&configmap(i))
                    .send()
                    .await;
                if !r.is_ok_and(|r| r.status().is_success()) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    let secs = start.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} create requests failed");
    }
    Ok((targets.len() * n) as f64 / secs)
}

async fn create_ns(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    ns: &str,
) -> anyhow::Result<()> {
    let r = client
        .post(format!("{url}/api/v1/namespaces"))
        .bearer_auth(token)
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("creating namespace {ns}: {}", r.text().await?);
    }
    Ok(())
}

pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    println!(
        "# cluster-sim bench: {} clusters x {} objects, list of {}, concurrency {}",
        a.clusters, a.objects, a.list_objects, a.concurrency
    );
    let rss0 = peak_rss_mib();
    let t0 = Instant::now();
    let sim = Sim::start(SimConfig {
        clusters: a.clusters,
        ..SimConfig::default()
    })
    .await?;
    println!(
        "start {} clusters: {:.1} ms (peak RSS {:.0} MiB, before: {:.0} MiB)",
        a.clusters,
        t0.elapsed().as_secs_f64() * 1e3,
        peak_rss_mib(),
        rss0
    );
    let targets: Vec<(String, String)> = (0..a.clusters)
        .map(|i| (sim.url(i), sim.cluster(i).token.clone()))
        .collect();
    for (url, token) in &targets {
        create_ns(&client, url, token, "bench").await?;
    }

    // One watch per cluster, counting events while the clusters fill.
    let seen = Arc::new(AtomicU64::new(0));
    let mut watches = Vec::new();
    for (url, token) in &targets {
        let r = client
            .get(format!(
                "{url}/api/v1/namespaces/bench/configmaps?watch=true&resourceVersion=0"
            ))
            .bearer_auth(token)
            .send()
            .await?;
        let seen = seen.clone();
        watches.push(tokio::spawn(async move {
            let mut body = r.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                seen.fetch_add(
                    chunk.iter().filter(|b| **b == b'\n').count() as u64,
                    Ordering::Relaxed,
                );
            }
        }));
    }

    let rps = load(&client, &targets, "bench", a.objects, a.concurrency).await?;
    let total = a.clusters * a.objects;
    println!(
        "create {total} objects over {} clusters: {rps:.0} requests/s (concurrency {})",
        a.clusters, a.concurrency
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.load(Ordering::Relaxed) < total as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "watch events received: {} of {total} ({} watches)",
        seen.load(Ordering::Relaxed),
        a.clusters
    );
    let stored: usize = sim.clusters().iter().map(|c| c.object_count()).sum();
    println!(
        "objects stored: {stored}; peak RSS {:.0} MiB",
        peak_rss_mib()
    );

    // Single-cluster write throughput, no added latency.
    let one = vec![targets[0].clone()];
    create_ns(&client, &one[0].0, &one[0].1, "list").await?;
    let rps1 = load(&client, &one, "list", a.list_objects, a.concurrency).await?;
    println!(
        "write throughput, one cluster: {rps1:.0} creates/s ({} ConfigMaps, concurrency {})",
        a.list_objects, a.concurrency
    );

    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let r = client
            .get(format!("{}/api/v1/namespaces/list/configmaps", one[0].0))
            .bearer_auth(&one[0].1)
            .send()
            .await?;
        let body = r.bytes().await.context("reading list")?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if body.len() < a.list_objects * 100 {
            bail!("list returned only {} bytes", body.len());
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "list {} objects: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms (20 runs, full JSON body read)",
        a.list_objects, times[10], times[18], times[19]
    );
    println!("peak RSS at end: {:.0} MiB", peak_rss_mib());
    for w in watches {
        w.abort();
    }
    sim.shutdown().await;
    Ok(())
}

/// `cluster-sim bench-fleet`: memory at fleet scale (issue 12). Many clusters, each with
/// `apps` apps of {Deployment (1 replica), Service, ServiceAccount, Ingress}; the
/// simulated controllers add a ReplicaSet and a Pod per Deployment.
#[derive(clap::Args, Clone, Debug)]
pub struct FleetArgs {
    /// Clusters to start.
    #[arg(long, default_value_t = 500)]
    pub clusters: usize,
    /// Apps per cluster (4 objects each, plus a ReplicaSet and a Pod from the controllers).
    #[arg(long, default_value_t = 50)]
    pub apps: usize,
    /// Concurrent requests while loading.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Events kept per cluster for watch resumption (default: the emulator's default).
    #[arg(long)]
    pub history_limit: Option<usize>,
}

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN)
}

/// The four objects of app `i`, with the collection each is created in.
fn app(i: usize) -> [(&'static str, serde_json::Value); 4] {
    let name = format!("app-{i:03}");
    let labels = json!({"app": name, "app.kubernetes.io/managed-by": "gitfleet"});
    [
        (
            "/api/v1/namespaces/apps/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "labels": labels}}),
        ),
        (
            "/apis/apps/v1/namespaces/apps/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": labels}, "spec": {"serviceAccountName": name,
                        "containers": [{"name": "web", "image": "registry.example.com/web:1.4.2",
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [{"name": "APP", "value": name}],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}}}]}}}}),
        ),
        (
            "/api/v1/namespaces/apps/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
                "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/apps/ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "labels": labels},
                "spec": {"rules": [{"host": format!("{name}.example.com"), "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"name": "http"}}}}]}}]}}),
        ),
    ]
}

/// Every cluster's resourceVersion, summed: unchanged means nothing was written.
fn total_rv(sim: &Sim) -> u64 {
    sim.clusters().iter().map(|c| c.state.lock().rv).sum()
}

/// Pods that are Ready, over all clusters.
fn ready_pods(sim: &Sim) -> usize {
    let pods = crate::resources::ResourceKey {
        group: String::new(),
        plural: "pods".into(),
    };
    sim.clusters()
        .iter()
        .map(|c| {
            let st = c.state.lock();
            st.list(&pods).map_or(0, |m| {
                m.values()
                    .filter(|p| {
                        p.value["status"]["conditions"]
                            .as_array()
                            .is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                    })
                    .count()
            })
        })
        .sum()
}

pub async fn fleet(a: FleetArgs) -> anyhow::Result<()> {
    // Few idle connections per cluster: 500 clusters x 32 would run out of descriptors.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2)
        .build()?;
    println!(
        "# cluster-sim bench-fleet: {} clusters x {} apps (Deployment, Service, ServiceAccount, Ingress; 1 replica), concurrency {}",
        a.clusters, a.apps, a.concurrency
    );
    let rss0 = status_kib("VmHWM:") / 1024.0;
    let mut cluster = crate::ClusterConfig::default();
    if let Some(h) = a.history_limit {
        cluster.history_limit = h;
    }
    let t0 = Instant::now();
    let sim = Sim::start(SimConfig {
        clusters: a.clusters,
        cluster,
        ..SimConfig::default()
    })
    .await?;
    let started_kib = status_kib("VmHWM:");
    let bootstrap: usize = sim.clusters().iter().map(|c| c.object_count()).sum();
    println!(
        "start {} clusters: {:.1} s, peak RSS {:.0} MiB (before: {rss0:.0} MiB), {bootstrap} objects",
        a.clusters,
        t0.elapsed().as_secs_f64(),
        started_kib / 1024.0,
    );
    let targets: Vec<(String, String)> = (0..a.clusters)
        .map(|i| (sim.url(i), sim.cluster(i).token.clone()))
        .collect();
    for (url, token) in &targets {
        create_ns(&client, url, token, "apps").await?;
    }
    let failures = Arc::new(AtomicU64::new(0));
    let t1 = Instant::now();
    let jobs = targets.iter().flat_map(|(url, token)| {
        (0..a.apps).flat_map(move |i| {
            app(i)
                .into_iter()
                .map(move |(path, obj)| (format!("{url}{path}"), token.clone(), obj))
        })
    });
    futures::stream::iter(jobs)
        .for_each_concurrent(a.concurrency, |(url, token, obj)| {
            let failures = failures.clone();
            let client = client.clone();
            async move {
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&obj)
                    .send()
                    .await;
                let failed = match r {
                    Ok(r) if r.status().is_success() => None,
                    Ok(r) => Some(format!(
                        "{}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(why) = failed
                    && failures.fetch_add(1, Ordering::Relaxed) == 0
                {
                    eprintln!("first failure: POST {url}: {why}");
                }
            }
        })
        .await;
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} create requests failed");
    }
    let created = a.clusters * a.apps * 4;
    println!(
        "create {created} objects: {:.1} s ({:.0} requests/s)",
        t1.elapsed().as_secs_f64(),
        created as f64 / t1.elapsed().as_secs_f64()
    );
    // Settled: every Pod Ready and nothing written for two seconds.
    let want = a.clusters * a.apps;
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut last, mut since) = (total_rv(&sim), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let rv = total_rv(&sim);
        if rv != last {
            (last, since) = (rv, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(2) && ready_pods(&sim) >= want {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "controllers did not settle: {} of {want} Pods Ready",
                ready_pods(&sim)
            );
        }
    }
    println!(
        "settled {:.1} s after the first create ({want} Pods Ready)",
        t1.elapsed().as_secs_f64()
    );
    // Serving: a list of every cluster's Pods.
    for (url, token) in &targets {
        let r = client
            .get(format!("{url}/api/v1/namespaces/apps/pods"))
            .bearer_auth(token)
            .send()
            .await?;
        let v: serde_json::Value = r.json().await?;
        let n = v["items"].as_array().map_or(0, Vec::len);
        if n != a.apps {
            bail!("{url}: listed {n} Pods, want {}", a.apps);
        }
    }
    let mut by_kind = std::collections::BTreeMap::<String, (usize, usize)>::new();
    let mut history = 0;
    for c in sim.clusters() {
        let st = c.state.lock();
        history += st.history.len();
        for (k, m) in &st.objects {
            let e = by_kind.entry(k.plural.clone()).or_default();
            e.0 += m.len();
            e.1 += m.values().map(|s| s.json.len()).sum::<usize>();
        }
    }
    let objects: usize = by_kind.values().map(|(n, _)| n).sum();
    let json_bytes: usize = by_kind.values().map(|(_, b)| b).sum();
    for (k, (n, b)) in &by_kind {
        println!(
            "  {k}: {n} objects, {} bytes of JSON each on average",
            b / n.max(&1)
        );
    }
    let peak = status_kib("VmHWM:");
    let rss = status_kib("VmRSS:");
    println!(
        "objects stored: {objects} ({} bytes of JSON each on average); events in history: {history}",
        json_bytes / objects.max(1)
    );
    println!(
        "peak RSS {:.0} MiB, RSS now {:.0} MiB; after start {:.0} MiB",
        peak / 1024.0,
        rss / 1024.0,
        started_kib / 1024.0
    );
    println!(
        "bytes per object: {:.0} (peak RSS / objects), {:.0} (peak RSS growth since start / objects)",
        peak * 1024.0 / objects as f64,
        (peak - started_kib) * 1024.0 / objects as f64
    );
    sim.shutdown().await;
    Ok(())
}
