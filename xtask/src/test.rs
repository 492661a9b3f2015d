//! `cargo xtask test`: what CI runs. Formatting comes first because it fails within a
//! second; then the test build, linted by clippy as it compiles; then the whole suite
//! under cargo-nextest.
//!
//! Why clippy rides on the test build instead of running as `cargo clippy` beforehand:
//! `cargo clippy` is `cargo check` with `clippy-driver` as the workspace wrapper, and a
//! check compiles every dependency a second time (metadata only), which on 2 cores costs
//! about six minutes of a cold run. Building the tests with the same wrapper lints every
//! workspace target the suite compiles (libraries with and without `cfg(test)`, binaries,
//! integration tests, examples such as the renderer's bench; no benches) while dependencies build
//! once. The lint levels travel as `CLIPPY_ARGS`, the variable `cargo clippy` itself uses
//! to hand `-- ARGS` to the driver.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::tools;
use crate::workspace::{cargo, exit_code};

/// What `cargo clippy -- -D warnings` hands the driver: rustc warnings and clippy's
/// default lints both fail the build.
const CLIPPY_ARGS: &str = "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__";

/// A cargo command that must succeed before the suite runs.
struct Check {
    args: Vec<String>,
    /// What to do when it fails, for the error message.
    fix: &'static str,
}

pub fn run(extra: &[OsString]) -> Result<i32> {
    let t = tools::install()?;
    let runner = test_runner();
    let lint = Lint::find();

    Check {
        args: words(&["fmt", "--all", "--check"]),
        fix: "run `cargo fmt --all` (without rustfmt: `rustup component add rustfmt`)",
    }
    .run(&Lint::None)?;
    match &lint {
        Lint::Wrapper(_) => {}
        // No clippy-driver next to rustc: lint with `cargo clippy`, which says what is
        // missing in its own words.
        Lint::None => Check {
            args: words(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            fix: "fix what it reports above (without clippy: `rustup component add clippy`)",
        }
        .run(&Lint::None)?,
    }
    // Always over the whole workspace: arguments that select tests (`-p NAME`) must not
    // let warning-laden code through.
    let mut build = words(runner.build);
    build.push("--workspace".into());
    Check {
        args: build,
        fix: "fix what it reports above: with clippy as the compiler's wrapper, a clippy \
              lint or a rustc warning fails the build (without clippy: `rustup component \
              add clippy`)",
    }
    .run(&lint)?;

    let mut cmd = cargo();
    cmd.args(runner.run).arg("--no-fail-fast");
    // `--workspace` would override `-p NAME`: leave it out when packages are named.
    if !selects_packages(extra) {
        cmd.arg("--workspace");
    }
    cmd.args(extra);
    // The same wrapper as the build, so cargo finds every unit fresh and builds nothing.
    lint.apply(&mut cmd);
    t.apply_env(&mut cmd);
    let status = cmd
        .status()
        .with_context(|| format!("cannot run `cargo {}`", runner.run.join(" ")))?;
    Ok(exit_code(status))
}

/// How the workspace's code is linted while it builds.
enum Lint {
    /// `clippy-driver` wraps rustc for workspace members.
    Wrapper(PathBuf),
    /// No driver found: no wrapper (and `cargo clippy` runs as a separate check).
    None,
}

impl Lint {
    /// The toolchain's `clippy-driver`, beside the rustc that cargo uses.
    fn find() -> Lint {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = Command::new(rustc)
            .args(["--print", "sysroot"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        match sysroot.map(|s| PathBuf::from(s).join("bin/clippy-driver")) {
            Some(driver) if driver.is_file() => Lint::Wrapper(driver),
            _ => Lint::None,
        }
    }

    fn apply(&self, cmd: &mut Command) {
        if let Lint::Wrapper(driver) = self {
            cmd.env("RUSTC_WORKSPACE_WRAPPER", driver)
                .env("CLIPPY_ARGS", CLIPPY_ARGS);
        }
    }
}

/// The commands that build and run the suite.
struct Runner {
    build: &'static [&'static str],
    run: &'static [&'static str],
}

fn test_runner() -> Runner {
    let nextest = Runner {
        build: &["nextest", "run", "--no-run"],
        run: &["nextest", "run"],
    };
    if has_nextest() {
        return nextest;
    }
    eprintln!("xtask: cargo-nextest not found; installing: cargo install cargo-nextest --locked");
    let installed = cargo()
        .args(["install", "cargo-nextest", "--locked"])
        .status()
        .is_ok_and(|s| s.success());
    if installed && has_nextest() {
        return nextest;
    }
    eprintln!("xtask: could not install cargo-nextest; falling back to `cargo test --workspace`");
    Runner {
        build: &["test", "--no-run"],
        run: &["test"],
    }
}

impl Check {
    fn run(&self, lint: &Lint) -> Result<()> {
        let shown = format!("cargo {}", self.args.join(" "));
        eprintln!("xtask: {shown}");
        let mut cmd = cargo();
        cmd.args(&self.args);
        lint.apply(&mut cmd);
        let status = cmd
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

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
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
