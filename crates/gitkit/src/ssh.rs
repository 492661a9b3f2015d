//! A real OpenSSH `sshd` serving the repositories on this machine's disk over SSH, for
//! tests of Git over SSH: `ssh://USER@127.0.0.1:PORT/abs/path/repo.git`, where USER is
//! whoever runs the tests, authenticated by a key pair generated for the server.
//!
//! sshd comes from `cargo xtask tools` (Debian's openssh-server, unpacked into
//! `tools/openssh`): `$GITFLEET_SSHD` and `$GITFLEET_SSHD_LIBS` (its `LD_LIBRARY_PATH`, for
//! libwrap), else the same paths under the workspace's `tools/`. Run as root, sshd needs
//! the `sshd` privilege separation user (`cargo xtask tools` creates it) and `/run/sshd`
//! (created here when missing).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// An OpenSSH key pair made by `ssh-keygen` (ed25519, no passphrase).
pub struct KeyPair {
    /// The private key file's text (`-----BEGIN OPENSSH PRIVATE KEY-----` ...).
    pub private: String,
    /// The public key line (`ssh-ed25519 AAAA... comment`).
    pub public: String,
}

impl KeyPair {
    /// A fresh key pair; its files are made in `dir` as `name` and `name.pub`.
    pub fn generate_in(dir: &Path, name: &str) -> KeyPair {
        let path = dir.join(name);
        let output = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("ssh-keygen runs (it comes with the OpenSSH client)");
        assert!(
            output.status.success(),
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        KeyPair {
            private: std::fs::read_to_string(&path).unwrap(),
            public: std::fs::read_to_string(path.with_extension("pub"))
                .unwrap()
                .trim()
                .to_owned(),
        }
    }

    /// A fresh key pair whose files go with the process's temporary folder.
    pub fn generate() -> KeyPair {
        let dir = tempfile::tempdir().unwrap();
        KeyPair::generate_in(dir.path(), "key")
    }
}

/// `sshd -D -e` on a loopback port, accepting [`SshServer::client_key`] for the user that
/// runs the tests; killed on drop.
pub struct SshServer {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    /// The login name in URLs: the user running the tests (sshd run by another user than
    /// root only lets that user in).
    pub user: String,
    /// The key pair the server accepts.
    pub client_key: KeyPair,
    /// The server's host key as a `known_hosts` line: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub known_hosts_line: String,
}

impl SshServer {
    pub fn start() -> SshServer {
        let sshd = sshd_binary();
        let dir = tempfile::Builder::new().prefix("sshd-").tempdir().unwrap();
        let host_key = KeyPair::generate_in(dir.path(), "host_key");
        let client_key = KeyPair::generate_in(dir.path(), "client_key");
        let user = current_user();
        if is_root() {
            // As root, sshd's pre-authentication child runs as the `sshd` user, chrooted
            // to /run/sshd; sshd refuses to start without either.
            let user = Command::new("getent")
                .args(["passwd", "sshd"])
                .stdout(Stdio::null())
                .status()
                .expect("getent runs");
            assert!(
                user.success(),
                "sshd run as root needs the `sshd` user: run `cargo xtask tools`"
            );
            std::fs::create_dir_all("/run/sshd").expect("/run/sshd can be created");
        }
        let log = dir.path().join("sshd.log");
        // Another process may grab the port between release and bind; retry a few times.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("sshd_config");
            std::fs::write(&config, sshd_config(dir.path(), port)).unwrap();
            let stderr = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            let mut child = Command::new(&sshd)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .env("LD_LIBRARY_PATH", sshd_lib_path(&sshd))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {}: {e}; run `cargo xtask tools`",
                        sshd.display()
                    )
                });
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    let host_public = host_key
                        .public
                        .split_whitespace()
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ");
                    return SshServer {
                        child,
                        dir,
                        port,
                        user,
                        client_key,
                        known_hosts_line: format!("[127.0.0.1]:{port} {host_public}"),
                    };
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "sshd did not start; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `ssh://USER@127.0.0.1:PORT/abs/path`: the repository at `path` on this machine.
    pub fn url(&self, path: &Path) -> String {
        let path = path.to_str().expect("a UTF-8 path");
        assert!(path.starts_with('/'), "an absolute path: {path}");
        format!("ssh://{}@127.0.0.1:{}{path}", self.user, self.port)
    }

    /// What sshd logged so far (`-e`: connections, accepted and refused keys), for a
    /// failing test to show.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A `known_hosts` file holding only this server's host key, in `dir`.
    pub fn write_known_hosts(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ssh_known_hosts");
        std::fs::write(&path, format!("{}\n", self.known_hosts_line)).unwrap();
        path
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration: only the generated client key gets in, as the user running the tests;
/// sessions find `git-upload-pack` through `PATH` (git's exec path first).
fn sshd_config(dir: &Path, port: u16) -> String {
    let path = |name: &str| dir.join(name).display().to_string();
    let git_exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let session_path = std::env::join_paths(
        std::iter::once(PathBuf::from(git_exec_path))
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ))
            .filter(|p| !p.as_os_str().is_empty()),
    )
    .unwrap()
    .to_string_lossy()
    .into_owned();
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         AuthorizedKeysFile {authorized}\n\
         PidFile {pid}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         StrictModes no\n\
         UsePAM no\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         AllowTcpForwarding no\n\
         X11Forwarding no\n\
         AcceptEnv GIT_PROTOCOL\n\
         SetEnv PATH={session_path}\n\
         LogLevel VERBOSE\n",
        host_key = path("host_key"),
        authorized = path("client_key.pub"),
        pid = path("sshd.pid"),
    )
}

/// `$GITFLEET_SSHD`, else `<workspace>/tools/openssh/usr/sbin/sshd` (absolute: sshd
/// re-executes itself by its path).
///
/// # Panics
/// If neither exists.
pub fn sshd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GITFLEET_SSHD") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/openssh/usr/sbin/sshd");
    assert!(
        path.exists(),
        "sshd not found at {} and GITFLEET_SSHD is unset: run `cargo xtask tools`",
        path.display()
    );
    path.canonicalize().unwrap()
}

/// `$GITFLEET_SSHD_LIBS`, else the library folders of the unpacked packages around `sshd`
/// (`<root>/usr/lib/<arch>` holding libwrap.so.0).
fn sshd_lib_path(sshd: &Path) -> std::ffi::OsString {
    if let Some(libs) = std::env::var_os("GITFLEET_SSHD_LIBS") {
        return libs;
    }
    let Some(root) = sshd.ancestors().nth(3) else {
        return Default::default();
    };
    let mut dirs = Vec::new();
    for base in ["usr/lib", "lib"] {
        for entry in std::fs::read_dir(root.join(base)).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.join("libwrap.so.0").exists() {
                dirs.push(path);
            }
        }
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

fn id(flag: &str) -> String {
    let output = Command::new("id").arg(flag).output().expect("id runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn current_user() -> String {
    id("-un")
}

fn is_root() -> bool {
    id("-u") == "0"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Upstream;

    /// The fixture itself, with the OpenSSH client: the right key lists the refs, another
    /// key is refused.
    #[test]
    fn serves_a_repository_to_its_client_key_only() {
        let upstream = Upstream::new();
        upstream.write("f", "1\n");
        let head = upstream.commit("first");
        upstream.push_all();
        let server = SshServer::start();
        let keys = tempfile::tempdir().unwrap();
        let known_hosts = server.write_known_hosts(keys.path());
        let ls_remote = |key: &str| {
            let key_path = keys.path().join("id");
            std::fs::write(&key_path, key).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let ssh = format!(
                "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
                 -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
                key_path.display(),
                known_hosts.display()
            );
            Command::new("git")
                .args(["ls-remote", &server.url(&upstream.bare()), "main"])
                .env("GIT_SSH_COMMAND", ssh)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap()
        };
        let listed = ls_remote(&server.client_key.private);
        assert!(
            listed.status.success(),
            "{}\nsshd log:\n{}",
            String::from_utf8_lossy(&listed.stderr),
            server.log()
        );
        assert!(String::from_utf8_lossy(&listed.stdout).starts_with(&head));
        let refused = ls_remote(&KeyPair::generate().private);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("Permission denied"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
}
