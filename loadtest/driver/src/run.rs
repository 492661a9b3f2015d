//! One run, in order: start the stack, time create-to-Synced, check the objects really
//! are in the clusters, time webhook-to-Synced, and put the report together.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use gitfleet_procs::Children;

use crate::apps::{HOOK_JOB, app_name};
use crate::args::{Args, Shape};
use crate::clusters::{admin_object_count, job_writes};
use crate::measure;
use crate::procfs::snapshot;
use crate::report::{Figures, HookFigures, Machine, Report, Snapshots};
use crate::stack;

/// Progress lines on stderr, stamped with the time since the run started.
pub struct Progress {
    started: Instant,
}

impl Progress {
    pub fn phase(&self, what: &str) {
        eprintln!(
            "loadtest: [{:>7.1} s] {what}",
            self.started.elapsed().as_secs_f64()
        )
    }
}

/// `children` is the caller's so that they are stopped however this ends, and `work`
/// too, so that it can keep the logs when it fails.
pub async fn run(args: &Args, children: &Children, work: &Path) -> Result<Report> {
    ensure!(
        args.apps > 0 && args.clusters > 0,
        "--apps and --clusters must be at least 1"
    );
    ensure!(
        args.appset_services == 0 || (!args.precreate_namespaces && args.shape == Shape::Configmap),
        "--appset-services goes with neither --precreate-namespaces nor --shape hooked"
    );
    ensure!(
        args.kill_after_seconds.is_none() || (args.diff_workers >= 2 && args.executors >= 2),
        "--kill-after-seconds needs --diff-workers and --executors of 2 or more (someone must take over)"
    );
    let progress = Progress {
        started: Instant::now(),
    };
    let stack = stack::start(args, children, work, &progress).await?;
    if args.precreate_namespaces {
        let names: Vec<String> = (0..args.apps).map(app_name).collect();
        stack.clusters.precreate_namespaces(&names).await?;
        // Let the executor's watch cache see them.
        tokio::time::sleep(Duration::from_secs(2)).await;
        progress.phase(&format!(
            "{} namespaces created ahead of the apps",
            args.apps
        ));
    }
    let ready = snapshot(children);
    let bus_ready = stack::bus_counts(&stack.nats_monitor_url).await;

    let created = measure::create_to_synced(args, &stack, children, &progress).await?;
    let converged = snapshot(children);
    let bus_create = stack::bus_counts(&stack.nats_monitor_url)
        .await
        .since(bus_ready);

    // The objects really are in the clusters.
    let found = stack.clusters.count_config_maps().await?;
    ensure!(
        found == args.apps,
        "{found} ConfigMaps named `load` in the clusters, expected {}",
        args.apps
    );
    let admin_objects = admin_object_count(&stack.admin_url)
        .await
        .unwrap_or_default();
    // Every app's hook ran, once: counted from what the clusters were asked to do.
    let mut hooks = match args.shape {
        Shape::Configmap => None,
        Shape::Hooked => {
            let h = hook_figures(args, &stack).await?;
            progress.phase(&format!(
                "hook Jobs: {} apps had theirs created exactly once, {} creations in all, {} apps none, {} apps more than once; {} Jobs left",
                h.exactly_once,
                h.created,
                h.never.len(),
                h.repeated.len(),
                h.jobs_left
            ));
            Some(h)
        }
    };

    // Steady state: the fleet synced, nothing changing; what does keeping it cost?
    let steady = if args.steady_seconds > 0 {
        progress.phase(&format!(
            "measuring CPU over {} idle seconds",
            args.steady_seconds
        ));
        let before = snapshot(children);
        tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
        Some((before, snapshot(children)))
    } else {
        None
    };

    let webhook =
        measure::webhook_to_synced(args.webhook_runs, &stack, children, &progress).await?;
    if let Some(h) = hooks.as_mut() {
        // Every sync runs its hooks again: one more for app 0 per webhook run.
        let end = job_writes(&stack.admin_url, &stack.clusters.names(), HOOK_JOB).await?;
        h.created_by_end = end.created.values().sum();
    }
    let end = snapshot(children);
    children.check_alive()?;

    Ok(Report {
        args: args.clone(),
        figures: Figures {
            converged: created.converged,
            writes_took: created.writes_took,
            per_app: created.per_app,
            webhook,
            found,
            admin_objects,
            hooks,
            bus_create,
            steady,
            kill: created.kill,
        },
        snapshots: Snapshots {
            ready,
            converged,
            end,
        },
        machine: Machine::this(),
    })
}

/// The hook Jobs created per app, from cluster-sim's write logs, and the Jobs left.
async fn hook_figures(args: &Args, stack: &stack::Stack) -> Result<HookFigures> {
    let writes = job_writes(&stack.admin_url, &stack.clusters.names(), HOOK_JOB).await?;
    let (mut exactly_once, mut never, mut repeated) = (0, Vec::new(), Vec::new());
    for name in (0..args.apps).map(app_name) {
        // The app's namespace is its name.
        match writes.created.get(&name).copied().unwrap_or(0) {
            0 => never.push(name),
            1 => exactly_once += 1,
            _ => repeated.push(name),
        }
    }
    Ok(HookFigures {
        exactly_once,
        created: writes.created.values().sum(),
        never,
        repeated,
        writes: writes.writes,
        deleted: writes.deleted,
        jobs_left: stack.clusters.count_jobs(HOOK_JOB).await?,
        created_by_end: 0,
    })
}
