//! Waiting for the processes under test to be ready. Every wait has a deadline and fails
//! at once, naming the child and quoting its log, if a child has exited: a crashed
//! service would otherwise look like a slow one until the deadline.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use futures::StreamExt;
use gitfleet_bus::{Bucket, Bus, subject_token};
use gitfleet_procs::Children;

/// Until something accepts on 127.0.0.1:`port`.
pub async fn tcp(children: &Children, what: &str, port: u16, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        children.check_alive()?;
        ensure!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Until a line of `log` contains `marker`; returns the word after it.
pub async fn log_value(
    children: &Children,
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
        children.check_alive()?;
        ensure!(
            Instant::now() < deadline,
            "no `{marker}` in {} within {within:?}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Until every app partition (diff workers) and cluster partition (sync executors) has a
/// lease holder, so the timed run does not include start-up.
pub async fn partitions_owned(children: &Children, bus: &Bus, within: Duration) -> Result<()> {
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
        children.check_alive()?;
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
