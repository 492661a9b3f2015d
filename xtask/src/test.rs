//! `cargo xtask test`: what CI runs. Formatting and clippy come first because they fail
//! within a minute where the suite takes many; then the whole suite under cargo-nextest.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::process::Stdio;

use crate::tools;
use crate::workspace::{cargo, exit_code};

/// A cargo command that must succeed before the suite runs.
struct Check {
    args: &'static [&'static str],
    /// What to do when it fails, for the error message.
    fix: &'static str,
}

/// Always over the whole workspace: arguments that select tests (`-p NAME`) must not let
/// unformatted or warning-laden code through.
const CHECKS: &[Check] = &[
    Check {
        args: &["fmt", "--all", "--check"],
        fix: "run `cargo fmt --all` (without rustfmt: `rustup component add rustfmt`)",
    },
    Check {
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        fix: "fix what it reports above (without clippy: `rustup component add clippy`)",
    },
];

pub fn run(extra: &[OsString]) -> Result<i32> {
    let t = tools::install()?;
    for check in CHECKS {
        check.run()?;
    }

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

impl Check {
    fn run(&self) -> Result<()> {
        let shown = format!("cargo {}", self.args.join(" "));
        eprintln!("xtask: {shown}");
        let status = cargo()
            .args(self.args)
            .status()
            .with_context(|| format!("cannot run `{shown}`"))?;
        if !status.success() {
            bail!(
                "`{shown}` failed ({status}), so the tests were not run; {}",
                self.fix
            );
        }
        Ok(())
    }
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
