//! `cargo xtask bench`: the emulator's own benchmark, built in release.

use anyhow::{Context, Result};
use std::ffi::OsString;

use crate::workspace::{cargo, exit_code};

pub fn run(sub: &str, extra: &[OsString]) -> Result<i32> {
    let status = cargo()
        .args(["run", "--release", "-p", "cluster-sim", "--", sub])
        .args(extra)
        .status()
        .context("cannot run `cargo run`")?;
    Ok(exit_code(status))
}
