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
