//! gitfleet's load harness. Starts, each as its own process, a nats-server (JetStream),
//! cluster-sim with N emulated clusters over HTTPS, `git-daemon` serving a generated
//! repository, and the five service binaries (git-watcher, renderer, diff-worker,
//! sync-executor, api-gateway); then measures
//!
//! 1. create-to-Synced: N Applications (one directory `apps/app-NNNN/` with one ConfigMap
//!    each, and with `--shape hooked` a PreSync hook Job too; destinations round-robin over
//!    clusters c0..c{N-1} by name, automated sync with CreateNamespace) written straight
//!    into KV `applications` (as the gateway stores them), timed from the first write until
//!    every app's KV `app-status` says Synced and Healthy with its operation Succeeded;
//!    then the ConfigMaps are counted in the emulated clusters, and the hook Jobs created
//!    counted per app from cluster-sim's write log (each must be exactly one);
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
//!
//! The run in order: [`stack`] starts the processes, [`apps`] is the load, [`measure`]
//! times it, [`report`] prints it; [`run`] strings them together.

pub mod apps;
pub mod args;
pub mod clusters;
pub mod measure;
pub mod procfs;
pub mod report;
pub mod run;
pub mod stack;
pub mod wait;

pub use args::{Args, Shape};
pub use run::run;
