//! `cargo xtask loadtest`: builds every release binary, then runs the load driver.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;

use crate::tools;
use crate::workspace::{cargo, exit_code};

/// The load harness (`loadtest/driver`) starts the release service binaries, cluster-sim
/// and nats-server as separate processes: build them all, then run it.
pub fn run(extra: &[OsString]) -> Result<i32> {
    let t = tools::install()?;
    let status = cargo()
        .args(["build", "--release", "--workspace", "--bins"])
        .status()
        .context("cannot run `cargo build`")?;
    if !status.success() {
        bail!("`cargo build --release --workspace --bins` failed ({status}); see the errors above");
    }
    // `cargo xtask loadtest -- --apps 100` hands us the `--` too.
    let extra = match extra.first() {
        Some(a) if a == "--" => &extra[1..],
        _ => extra,
    };
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "loadtest-driver", "--"])
        .args(extra);
    t.apply_env(&mut cmd);
    let status = cmd.status().context("cannot run `cargo run`")?;
    Ok(exit_code(status))
}
