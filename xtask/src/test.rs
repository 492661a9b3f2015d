//! `cargo xtask test`: the whole test suite under cargo-nextest (installed if missing),
//! with the tools on PATH.

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::process::Stdio;

use crate::tools;
use crate::workspace::{cargo, exit_code};

pub fn run(extra: &[OsString]) -> Result<i32> {
    let t = tools::install()?;
    let mut runner: &[&str] = &["nextest", "run"];
    if !has_nextest() {
        eprintln!(
            "xtask: cargo-nextest not found; installing: cargo install cargo-nextest --locked"
        );
        let installed = cargo()
            .args(["install", "cargo-nextest", "--locked"])
            .status()
            .is_ok_and(|s| s.success());
        if !installed || !has_nextest() {
            eprintln!(
                "xtask: could not install cargo-nextest; falling back to `cargo test --workspace`"
            );
            runner = &["test"];
        }
    }
    let mut cmd = cargo();
    cmd.args(runner).arg("--no-fail-fast");
    // `--workspace` would override `-p NAME`: leave it out when packages are named.
    if !selects_packages(extra) {
        cmd.arg("--workspace");
    }
    cmd.args(extra);
    t.apply_env(&mut cmd);
    let status = cmd
        .status()
        .with_context(|| format!("cannot run `cargo {}`", runner.join(" ")))?;
    Ok(exit_code(status))
}

fn selects_packages(extra: &[OsString]) -> bool {
    extra.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "-p" || a == "--package" || a.starts_with("--package=") || a.starts_with("-p")
    })
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
