//! One run, in order: start the stack, time create-to-Synced, check the objects really
//! are in the clusters, time webhook-to-Synced, and put the report together.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use gitfleet_procs::Children;

use crate::apps::app_name;
use crate::args::Args;
use crate::clusters::admin_object_count;
use crate::measure;
use crate::procfs::snapshot;
use crate::report::{Figures, Machine, Report, Snapshots};
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

    let created = measure::create_to_synced(args, &stack, children, &progress).await?;
    let converged = snapshot(children);

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

    let webhook =
        measure::webhook_to_synced(args.webhook_runs, &stack, children, &progress).await?;
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
        },
        snapshots: Snapshots {
            ready,
            converged,
            end,
        },
        machine: Machine::this(),
    })
}
