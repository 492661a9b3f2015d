//! Test fixtures shared by every crate that needs a real Git server: repositories made
//! with the `git` CLI, served by a real `git daemon` on a loopback port the OS picks, or
//! over SSH by a real `sshd` ([`ssh`]). For tests only (it panics instead of returning
//! errors).

pub mod ssh;
pub use ssh::{KeyPair, SshServer};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `git` with a fixed identity and without the host's configuration.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A bare repository under a served directory plus a working clone that pushes to it.
pub struct Upstream {
    pub dir: tempfile::TempDir,
    /// The repository name under the served base directory (`origin.git`).
    pub name: String,
    pub work: PathBuf,
}

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}

impl Upstream {
    pub fn new() -> Upstream {
        Upstream::at(tempfile::tempdir().unwrap())
    }

    /// Like [`Upstream::new`], in a directory under `parent` that outlives the fixture:
    /// it goes when `parent` goes. For a harness that keeps its work directory, the
    /// repository with it, when a run fails.
    pub fn new_in(parent: &Path) -> Upstream {
        let dir = tempfile::Builder::new()
            .prefix("upstream-")
            .disable_cleanup(true)
            .tempdir_in(parent)
            .unwrap();
        Upstream::at(dir)
    }

    fn at(dir: tempfile::TempDir) -> Upstream {
        let base = dir.path().join("served");
        std::fs::create_dir_all(&base).unwrap();
        git(
            &base,
            &["init", "--bare", "--initial-branch=main", "origin.git"],
        );
        let work = dir.path().join("work");
        git(
            dir.path(),
            &[
                "clone",
                "--quiet",
                base.join("origin.git").to_str().unwrap(),
                "work",
            ],
        );
        git(&work, &["checkout", "--quiet", "-b", "main"]);
        Upstream {
            dir,
            name: "origin.git".into(),
            work,
        }
    }

    pub fn base(&self) -> PathBuf {
        self.dir.path().join("served")
    }

    pub fn bare(&self) -> PathBuf {
        self.base().join(&self.name)
    }

    pub fn write(&self, path: &str, content: &str) {
        let full = self.work.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    /// Stages everything and commits; returns the new commit id.
    pub fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        );
        self.rev("HEAD")
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(&self.work, args)
    }

    pub fn rev(&self, rev: &str) -> String {
        git(&self.work, &["rev-parse", rev])
    }

    pub fn push_all(&self) {
        git(
            &self.work,
            &["push", "--quiet", "--force", "origin", "--all"],
        );
        git(
            &self.work,
            &["push", "--quiet", "--force", "origin", "--tags"],
        );
    }
}

/// Picks a free loopback port: bind port 0, read it, release it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls until something accepts connections on `addr`.
pub fn wait_until_listening(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `<git --exec-path>/git-daemon`.
pub fn git_daemon_binary() -> PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("git runs");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("git-daemon")
}

/// A `git daemon` serving a directory; killed on drop.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn serve(base: &Path) -> GitDaemon {
        GitDaemon::start(base, None)
    }

    /// As [`GitDaemon::serve`], logging every request to `log` (`--verbose`): a test
    /// counts the fetches a repository received with [`GitDaemon::upload_packs`].
    pub fn serve_logged(base: &Path, log: &Path) -> GitDaemon {
        GitDaemon::start(base, Some(log))
    }

    /// How many fetches (`upload-pack` requests) `log` records for repository `name`.
    pub fn upload_packs(log: &Path, name: &str) -> usize {
        let wanted = format!("Request upload-pack for '/{name}'");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(&wanted))
            .count()
    }

    fn start(base: &Path, log: Option<&Path>) -> GitDaemon {
        // Another process may grab the port between release and bind; retry a few times.
        for _ in 0..5 {
            let port = free_port();
            let mut command = GitDaemon::command_with(base, port, log.is_some());
            let stderr = match log {
                Some(log) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log)
                        .expect("daemon log opens"),
                ),
                None => Stdio::null(),
            };
            let mut child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("git daemon starts");
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return GitDaemon { child, port };
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("git daemon did not start");
    }

    /// The server `serve` runs, serving `base` on 127.0.0.1:`port`, for a caller that
    /// supervises its own processes. `git daemon` would fork `git-daemon` and wait:
    /// stopping it would orphan the server, so this is the server itself.
    pub fn command(base: &Path, port: u16) -> Command {
        GitDaemon::command_with(base, port, false)
    }

    fn command_with(base: &Path, port: u16, verbose: bool) -> Command {
        let mut cmd = Command::new(git_daemon_binary());
        if verbose {
            cmd.arg("--verbose");
        }
        cmd.arg("--reuseaddr")
            .arg(format!("--base-path={}", base.display()))
            .arg("--export-all")
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg(base)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1");
        cmd
    }

    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_in_a_parent_stays_until_the_parent_goes() {
        let parent = tempfile::tempdir().unwrap();
        let upstream = Upstream::new_in(parent.path());
        assert!(upstream.dir.path().starts_with(parent.path()));
        upstream.write("a/b.yaml", "x: 1\n");
        let head = upstream.commit("first");
        upstream.push_all();
        let bare = upstream.bare();
        drop(upstream);
        assert_eq!(git(&bare, &["rev-parse", "main"]), head);
    }

    #[test]
    fn the_daemon_command_serves_its_base() {
        let upstream = Upstream::new();
        upstream.write("f", "1\n");
        let head = upstream.commit("first");
        upstream.push_all();
        let port = free_port();
        let mut child = GitDaemon::command(&upstream.base(), port)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until_listening(([127, 0, 0, 1], port).into(), &mut child);
        let url = format!("git://127.0.0.1:{port}/{}", upstream.name);
        let listed = git(upstream.dir.path(), &["ls-remote", &url, "main"]);
        let _ = child.kill();
        let _ = child.wait();
        assert!(listed.starts_with(&head), "{listed}");
    }
}
