//! The two timings: create-to-Synced over the whole fleet, and webhook-to-Synced for one
//! app on the full fleet afterwards.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use gitfleet_bus::{Bucket, subject_token, token_to_name};
use gitfleet_procs::Children;
use serde_json::{Value, json};

use crate::apps::{self, app_name};
use crate::args::Args;
use crate::procfs::snapshot;
use crate::report::secs;
use crate::run::Progress;
use crate::stack::Stack;

pub struct Created {
    /// From the first write until the last app was Synced and Healthy.
    pub converged: Duration,
    /// With `--kill-after-seconds`: when the first diff worker and executor were killed,
    /// and how long until others held all their partitions.
    pub kill: Option<Kill>,
    pub writes_took: Duration,
    /// Each app's time from the first write to Synced and Healthy.
    pub per_app: Vec<Duration>,
}

/// Writes every Application into KV `applications` and waits, on a KV watch of
/// `app-status`, until each is what a user would call done ([`done`]).
pub async fn create_to_synced(
    args: &Args,
    stack: &Stack,
    children: &Children,
    progress: &Progress,
) -> Result<Created> {
    let status_kv = stack.bus.kv(Bucket::AppStatus).await?;
    // Opened before the first write, so no status is missed.
    let mut watch = status_kv.watch_all().await.context("watching app-status")?;
    let apps_kv = stack.bus.kv(Bucket::Applications).await?;
    let docs = if args.appset_services > 0 {
        Vec::new()
    } else {
        apps::documents(
            args.apps,
            &stack.repo_url,
            &stack.clusters.names(),
            args.compare_options.as_deref(),
        )?
    };
    let t0 = Instant::now();
    let writer = if args.appset_services > 0 {
        // One write: the ApplicationSet controller writes the apps.
        let (key, set) = apps::application_set(args.appset_services, &stack.repo_url)?;
        let kv = stack.bus.kv(Bucket::AppSets).await?;
        tokio::spawn(async move {
            let failed = usize::from(kv.put(key, set).await.is_err());
            (t0.elapsed(), failed)
        })
    } else {
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
    progress.phase(&format!("creating {} applications", args.apps));
    let deadline = tokio::time::Instant::from_std(t0 + Duration::from_secs(args.timeout_seconds));
    let mut done_at: HashMap<String, Duration> = HashMap::new();
    let mut state: HashMap<String, [String; 3]> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let clk_tck = crate::report::Machine::this().clk_tck;
    let cpu_ticks = || -> u64 { snapshot(children).iter().map(|(_, s)| s.cpu.total()).sum() };
    let (mut last_done, mut last_cpu, mut last_at) = (0usize, cpu_ticks(), Instant::now());
    let kill_at = args
        .kill_after_seconds
        .map(|s| tokio::time::Instant::from_std(t0 + Duration::from_secs_f64(s)));
    let mut killed: Option<Instant> = None;
    let mut owned_again: Option<Duration> = None;
    while done_at.len() < args.apps {
        tokio::select! {
            _ = async { tokio::time::sleep_until(kill_at.expect("guarded")).await }, if kill_at.is_some() && killed.is_none() => {
                for victim in ["diff-worker", "sync-executor"] {
                    let pid = children.kill(victim);
                    progress.phase(&format!("SIGKILL {victim} (pid {pid:?})"));
                }
                killed = Some(Instant::now());
            }
            entry = tokio::time::timeout_at(deadline, watch.next()) => {
                let entry = match entry {
                    Err(_) => bail!(
                        "not converged: {} of {} apps Synced, Healthy and their operation Succeeded after {} s (latest sync/health/operation: {})",
                        done_at.len(), args.apps, args.timeout_seconds, state_summary(&state)
                    ),
                    Ok(None) => bail!("the app-status watch ended"),
                    Ok(Some(e)) => e.context("watching app-status")?,
                };
                let name = token_to_name(&entry.key).unwrap_or_else(|| entry.key.clone());
                let v: Value = serde_json::from_slice(&entry.value).unwrap_or(Value::Null);
                if done(&v, None) && (args.appset_services > 0 || name.starts_with("app-")) {
                    done_at.entry(name.clone()).or_insert_with(|| t0.elapsed());
                }
                state.insert(name, ["/sync/status", "/health/status", "/operationState/phase"].map(|p| str_at(&v, p)));
            }
            _ = tick.tick() => {
                children.check_alive()?;
                let (cpu, at) = (cpu_ticks(), Instant::now());
                let window = at.duration_since(last_at).as_secs_f64().max(1e-3);
                progress.phase(&format!(
                    "{} of {} done, {:.0} apps/s, CPU {:.0}% of a core ({})",
                    done_at.len(),
                    args.apps,
                    (done_at.len() - last_done) as f64 / window,
                    100.0 * (cpu.saturating_sub(last_cpu)) as f64 / clk_tck / window,
                    state_summary(&state)
                ));
                (last_done, last_cpu, last_at) = (done_at.len(), cpu, at);
                if let Some(at) = killed && owned_again.is_none() && owned_by_survivors(&stack.bus).await {
                    owned_again = Some(at.elapsed());
                    progress.phase(&format!("the killed members' partitions all held again after {}", secs(at.elapsed())));
                }
            }
        }
    }
    let converged = t0.elapsed();
    if let Some(at) = killed {
        while owned_again.is_none() && at.elapsed() < Duration::from_secs(120) {
            if owned_by_survivors(&stack.bus).await {
                owned_again = Some(at.elapsed());
            } else {
                // Poll interval of a wait bounded by the 120 s above.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let kill = killed.map(|at| Kill {
        after: at.duration_since(t0),
        owned_again,
    });
    let (writes_took, failed_writes) = writer.await?;
    ensure!(
        failed_writes == 0,
        "{failed_writes} application writes failed"
    );
    progress.phase(&format!(
        "all {} apps Synced, Healthy, operation Succeeded after {}",
        args.apps,
        secs(converged)
    ));
    Ok(Created {
        converged,
        kill,
        writes_took,
        per_app: done_at.into_values().collect(),
    })
}

pub struct Kill {
    /// From the first write.
    pub after: Duration,
    /// From the kill until every partition of both groups was held by another member;
    /// `None` if not within 120 s.
    pub owned_again: Option<Duration>,
}

/// Every app and cluster partition held, and none by the killed members (`dw-0`,
/// `se-0`, whose leases outlive them by their TTL).
async fn owned_by_survivors(bus: &gitfleet_bus::Bus) -> bool {
    use gitfleet_messages::{APP_PARTITIONS, CLUSTER_PARTITIONS, DIFF_WORKERS, SYNC_EXECUTORS};
    for (group, partitions, dead) in [
        (DIFF_WORKERS, APP_PARTITIONS, "dw-0"),
        (SYNC_EXECUTORS, CLUSTER_PARTITIONS, "se-0"),
    ] {
        for p in 0..partitions {
            match gitfleet_bus::read_lease(bus, group, p).await {
                Ok(Some(lease)) if lease.holder != dead => {}
                _ => return false,
            }
        }
    }
    true
}

/// `runs` times: a commit to app 0, pushed, a GitHub push webhook, and the time until the
/// app is [`done`] at that commit.
pub async fn webhook_to_synced(
    runs: usize,
    stack: &Stack,
    children: &Children,
    progress: &Progress,
) -> Result<Vec<Duration>> {
    let status_kv = stack.bus.kv(Bucket::AppStatus).await?;
    let target = app_name(0);
    let http = reqwest::Client::new();
    let mut took = Vec::new();
    for run in 1..=runs {
        stack.upstream.write(
            &apps::config_map_path(&target),
            &apps::config_map(&target, run),
        );
        let sha = stack
            .upstream
            .commit(&format!("{target}: generation {run}"));
        stack.upstream.push_all();
        let t = Instant::now();
        let body = json!({"ref": "refs/heads/main", "repository": {"clone_url": stack.repo_url, "html_url": stack.repo_url}});
        let resp = http
            .post(&stack.webhook_url)
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
                if done(&v, Some(&sha)) {
                    break;
                }
            }
            if t.elapsed() > limit {
                children.check_alive()?;
                bail!("{target} not Synced at {sha} within {limit:?} of the webhook");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = t.elapsed();
        progress.phase(&format!(
            "webhook run {run}: {target} Synced at {} after {}",
            &sha[..8],
            secs(elapsed)
        ));
        took.push(elapsed);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(took)
}

/// What the user sees as finished, from an app's `status`: Synced and Healthy, and the
/// last operation Succeeded (a sync whose PreSync hook has not run yet, or whose hook is
/// still being deleted, is Running even when the ConfigMap is already in place). At
/// `revision` when given: both the compared and the synced revision.
pub fn done(status: &Value, revision: Option<&str>) -> bool {
    str_at(status, "/sync/status") == "Synced"
        && str_at(status, "/health/status") == "Healthy"
        && str_at(status, "/operationState/phase") == "Succeeded"
        && revision.is_none_or(|r| {
            str_at(status, "/sync/revision") == r
                && str_at(status, "/operationState/syncResult/revision") == r
        })
}

fn str_at(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// `Synced/Healthy/Succeeded: 90, OutOfSync/Missing/Running: 10` (sync, health, operation
/// phase), for progress lines and the timeout error.
fn state_summary(state: &HashMap<String, [String; 3]>) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for fields in state.values() {
        let key = fields
            .iter()
            .map(|f| if f.is_empty() { "-" } else { f.as_str() })
            .collect::<Vec<_>>()
            .join("/");
        *by.entry(key).or_default() += 1;
    }
    if by.is_empty() {
        return "no status yet".into();
    }
    by.iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_needs_the_operation_to_have_succeeded() {
        let status = |phase: &str, rev: &str| {
            json!({"sync": {"status": "Synced", "revision": rev}, "health": {"status": "Healthy"},
                "operationState": {"phase": phase, "syncResult": {"revision": rev}}})
        };
        assert!(done(&status("Succeeded", "a"), None));
        assert!(done(&status("Succeeded", "a"), Some("a")));
        assert!(!done(&status("Succeeded", "a"), Some("b")));
        assert!(!done(&status("Running", "a"), None));
        let no_operation = json!({"sync": {"status": "Synced"}, "health": {"status": "Healthy"}});
        assert!(!done(&no_operation, None));
    }

    #[test]
    fn the_summary_counts_sync_health_and_operation() {
        let state = HashMap::from([
            (
                "a".to_string(),
                ["Synced".into(), "Healthy".into(), "Succeeded".into()],
            ),
            (
                "b".to_string(),
                ["OutOfSync".into(), "Missing".into(), "Running".into()],
            ),
            (
                "c".to_string(),
                ["OutOfSync".into(), "Missing".into(), String::new()],
            ),
        ]);
        assert_eq!(
            state_summary(&state),
            "OutOfSync/Missing/-: 1, OutOfSync/Missing/Running: 1, Synced/Healthy/Succeeded: 1"
        );
    }
}
