//! `cargo xtask up`: the local stack in the foreground, under the git-ignored `.state/`:
//! nats-server, cluster-sim, git-daemon serving the demo repository, and `gitfleet up`;
//! then the demo Application. Ctrl-C stops it all.

use anyhow::{Context, Result, bail};
use gitfleet_procs::{Children, Stop};
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::workspace::{cargo, root};
use crate::{demo, tools};

/// How the children are stopped: the terminal's Ctrl-C has reached them too, so each gets
/// 2 s to finish by itself before SIGTERM, and 10 s more before SIGKILL.
const STOP: Stop = Stop::Gentle {
    grace: Duration::from_secs(2),
    term_grace: Duration::from_secs(10),
};

pub fn run() -> Result<i32> {
    let root = root();
    let t = tools::install()?;

    let status = cargo()
        .args([
            "build",
            "--release",
            "-p",
            "cluster-sim",
            "-p",
            "gitfleet",
            "-p",
            "gitfleet-jq",
        ])
        .status()
        .context("cannot run `cargo build`")?;
    if !status.success() {
        bail!(
            "`cargo build --release -p cluster-sim -p gitfleet -p gitfleet-jq` failed ({status}); see the errors above"
        );
    }
    let target = root.join(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()));
    let state = root.join(".state");
    for dir in ["cluster-sim", "nats", "git", "gitfleet"] {
        fs::create_dir_all(state.join(dir))
            .with_context(|| format!("cannot create {}", state.join(dir).display()))?;
    }
    let repo_url = demo::repo(&state)?;

    // Ctrl-C reaches every process in the terminal's foreground group; we catch it
    // (and SIGTERM) so we can make sure the children stop and are waited for.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install signal handler")?;
    }

    // Dropped on every early return below, which stops whatever had started.
    let children = Children::new(STOP);

    // 1. NATS with JetStream: gitfleet's only state store and bus, locked: each service
    //    connects as its own user with its role's permissions (made once, then kept).
    let gitfleet = target.join("release/gitfleet");
    let ids = Command::new(&gitfleet)
        .current_dir(&root)
        .args(["admin", "bus-identities", ".state/nats-identities"])
        .output()
        .context("cannot run gitfleet admin bus-identities")?;
    if !ids.status.success() {
        bail!(
            "making the NATS users failed: {}",
            String::from_utf8_lossy(&ids.stderr).trim()
        );
    }
    let mut nats = Command::new(t.exe("nats-server"));
    nats.current_dir(&root).args([
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        "4222",
        "-sd",
        ".state/nats",
        "-c",
        ".state/nats-identities/authorization.conf",
    ]);
    children.spawn("nats-server", nats)?;

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
    children.spawn("cluster-sim", sim)?;

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
    children.spawn("git-daemon", daemon)?;

    // (git daemon is not probed: a bare connection makes it log "the remote end hung up";
    // it is up long before the services' first fetch, which retries anyway.)
    for (what, port) in [("nats-server", 4222), ("cluster-sim", 6444)] {
        if let Err(e) = children.wait_listening(port, Duration::from_secs(30)) {
            bail!("{what} did not start listening on 127.0.0.1:{port} ({e}); see its output above");
        }
    }
    // kubeconfig is written once the cluster listens.
    std::thread::sleep(Duration::from_millis(200));

    // 4. Every gitfleet service in one process, the emulated cluster as in-cluster.
    let mut up = Command::new(&gitfleet);
    up.current_dir(&root).args([
        "up",
        "--in-cluster-context",
        "c0",
        "--kubeconfig",
        ".state/kubeconfig",
        "--state-dir",
        ".state/gitfleet",
        "--credentials-key-file",
        ".state/credentials.key",
        "--nats-identities",
        ".state/nats-identities",
        "--poll-seconds",
        "10",
    ]);
    // The renderer's Kustomize (kubectl) and Helm library come from tools/.
    t.apply_env(&mut up);
    children.spawn("gitfleet", up)?;
    if let Err(e) = children.wait_listening(8080, Duration::from_secs(60)) {
        bail!("gitfleet did not start serving on 127.0.0.1:8080 ({e}); see its output above");
    }

    // 5. A session as admin (kept in the CLI's config, as `argocd login` does), with the
    //    password generated at the first start: it goes by environment, not argument.
    let password = Command::new(&gitfleet)
        .args(["admin", "initial-password"])
        .env(
            "GITFLEET_CREDENTIALS_KEY_FILE",
            state.join("credentials.key"),
        )
        .env("GITFLEET_NATS_NKEY", state.join("nats-identities/admin.nk"))
        .output()
        .context("cannot run gitfleet admin initial-password")?;
    if !password.status.success() {
        bail!(
            "reading the initial admin password failed: {}",
            String::from_utf8_lossy(&password.stderr).trim()
        );
    }
    let password = String::from_utf8_lossy(&password.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let logged_in = Command::new(&gitfleet)
        .args(["--server", "127.0.0.1:8080", "login"])
        .env("GITFLEET_PASSWORD", &password)
        .status()
        .context("cannot run gitfleet login")?;
    if !logged_in.success() {
        bail!("logging in as admin failed; see above");
    }

    // 6. The demo Application, as Argo CD users write it.
    let app = state.join("guestbook-app.yaml");
    fs::write(&app, demo::application(&repo_url)).context("cannot write the demo application")?;
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
        bail!("creating the demo application failed; see above");
    }

    let g = gitfleet.display();
    let k = t.exe("kubectl");
    println!(
        "\ngitfleet is running (Ctrl-C stops everything), and you are logged in as admin \
         (again: GITFLEET_CREDENTIALS_KEY_FILE={key} GITFLEET_NATS_NKEY={nk} {g} admin initial-password, then {g} login). Try:\n\
         \x20   {g} app list\n\
         \x20   {g} app get guestbook\n\
         \x20   KUBECONFIG={kc} {k} -n guestbook get deploy,svc,cm\n\
         \x20   # change the app in Git and watch it follow (polled every 10 s, or at once with a webhook):\n\
         \x20   cd {work} && sed -i 's/replicas: 2/replicas: 3/' deployment.yaml && git commit -qam scale && git push -q\n\
         \x20   curl -s -XPOST http://127.0.0.1:8081/api/webhook -H 'X-GitHub-Event: push' -d '{{\"ref\":\"refs/heads/main\",\"repository\":{{\"clone_url\":\"{repo_url}\"}}}}'\n",
        kc = state.join("kubeconfig").display(),
        key = state.join("credentials.key").display(),
        nk = state.join("nats-identities/admin.nk").display(),
        k = k.display(),
        work = state.join("demo-work/guestbook").display(),
    );
    supervise(children, &stop)
}

/// Runs until a child exits or `stop` is set, then stops the rest: the stack is only
/// useful whole.
fn supervise(children: Children, stop: &AtomicBool) -> Result<i32> {
    let Some(exited) = children.wait_any(stop) else {
        eprintln!("xtask: stopping");
        children.stop_all();
        return Ok(130);
    };
    children.stop_all();
    if !exited.status.success() {
        bail!(
            "{} exited with {}; see its output above",
            exited.name,
            exited.status
        );
    }
    eprintln!("xtask: {} exited", exited.name);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn quick() -> Children {
        Children::new(Stop::Gentle {
            grace: Duration::from_millis(100),
            term_grace: Duration::from_secs(10),
        })
    }

    #[test]
    fn stop_flag_stops_children_even_if_they_ignore_sigint() {
        let children = quick();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' INT; exec sleep 30"]);
        children.spawn("stubborn", cmd).unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        children.spawn("sleeper", cmd).unwrap();
        let stop = AtomicBool::new(true);
        let started = Instant::now();
        assert_eq!(supervise(children, &stop).unwrap(), 130);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_failing_child_stops_the_rest() {
        let children = quick();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        children.spawn("sleeper", cmd).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        children.spawn("failing", cmd).unwrap();
        let err = supervise(children, &AtomicBool::new(false)).unwrap_err();
        assert!(err.to_string().contains("failing exited"), "{err}");
    }
}
