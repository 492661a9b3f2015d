//! `loadtest`: the load harness's binary (see the library for what it measures). Owns
//! what must outlive the run: the work directory, kept when the run fails, and the child
//! processes, stopped however it ends.

use std::time::Duration;

use anyhow::anyhow;
use clap::Parser;
use gitfleet_procs::{Children, Stop};
use loadtest_driver::{Args, run};

fn main() {
    let mut args = Args::parse();
    if args.appset_services > 0 {
        args.apps = args.clusters * args.appset_services;
        args.webhook_runs = 0;
    }
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
    // Their state lives in `work` and is thrown away (or kept) with it: no need to wait
    // for a clean stop.
    let children = Children::new(Stop::Kill);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        tokio::select! {
            r = run(&args, &children, work.path()) => r,
            s = stop_signal() => Err(anyhow!("stopped by {s}")),
        }
    });
    drop(children);
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(report) => {
            println!("{report}");
            let dir = args.results_dir.clone().unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results")
            });
            match report.write_json(&dir) {
                Ok(file) => eprintln!("loadtest: report written to {}", file.display()),
                Err(e) => eprintln!(
                    "loadtest: error: writing a report into {}: {e}",
                    dir.display()
                ),
            }
            let problems = report.problems();
            for p in &problems {
                eprintln!("loadtest: error: {p}");
            }
            if args.keep || !problems.is_empty() {
                eprintln!("loadtest: work directory kept: {}", work.keep().display());
            }
            if !problems.is_empty() {
                std::process::exit(1);
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
