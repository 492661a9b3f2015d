//! Git over SSH as Argo CD does it: the machine's OpenSSH client, started for one fetch with
//! the repository's private key in a private file, the server's host key checked against the
//! known hosts unless the repository is `insecure`, never the host's own keys, agent, config
//! or prompts.
//!
//! Argo CD runs `git` with `GIT_SSH_COMMAND="ssh -i KEYFILE -o StrictHostKeyChecking=yes
//! -o UserKnownHostsFile=$ARGOCD_SSH_DATA_PATH/ssh_known_hosts"` (or
//! `StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null` when insecure), the key
//! written with a trailing newline to a temporary file in `/dev/shm` and removed after the
//! command (argo-cd `util/git/creds.go`, `SSHCreds.Environ`). Here the `ssh` process is
//! started directly, without a shell, its arguments and environment set on that one
//! process only (many fetches run at once in this process), and gix speaks the Git
//! protocol over its stdin and stdout. Owning the process means a fetch that outlives its
//! timeout is ended by killing `ssh`, and what `ssh` says on stderr (an unknown host key,
//! a refused key) becomes the error's message.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gix::bstr::{BString, ByteSlice};
use gix::protocol::transport::Protocol;
use gix::protocol::transport::client::git::ConnectMode;
use gix::protocol::transport::client::git::blocking_io::Connection;

use crate::credentials::SshCredentials;

/// The Git protocol over one `ssh` process's stdout and stdin.
pub(crate) type SshConnection = Connection<ChildStdout, ChildStdin>;

/// What is kept of `ssh`'s stderr for an error message.
const STDERR_LIMIT: u64 = 16 * 1024;
/// How long a failed fetch waits for `ssh` to finish saying why.
const STDERR_GRACE: Duration = Duration::from_secs(5);

/// Argo CD's known hosts file: `$ARGOCD_SSH_DATA_PATH/ssh_known_hosts`, by default
/// `/app/config/ssh/ssh_known_hosts`, where Argo CD's manifests mount the
/// `argocd-ssh-known-hosts-cm` ConfigMap (argo-cd `util/cert/cert.go`,
/// `GetSSHKnownHostsDataPath`; `common/common.go`, `DefaultPathSSHConfig`).
pub fn default_known_hosts() -> PathBuf {
    match std::env::var_os("ARGOCD_SSH_DATA_PATH") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("ssh_known_hosts"),
        _ => PathBuf::from("/app/config/ssh/ssh_known_hosts"),
    }
}

/// Settings of every ssh fetch of a [`crate::Mirrors`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    /// The `known_hosts` file host keys are checked against (unless a repository is
    /// `insecure`); see [`default_known_hosts`]. A missing file knows no host.
    pub known_hosts: PathBuf,
    /// The OpenSSH client, `ssh` from `PATH` by default.
    pub program: PathBuf,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            known_hosts: default_known_hosts(),
            program: PathBuf::from("ssh"),
        }
    }
}

/// Starts `ssh` for a fetch from `url` and returns the Git connection over it, and the
/// session that owns the process and the key file (dropping it kills `ssh` and removes the
/// key). `ssh` is killed after `timeout` whatever happens, so a stalled server cannot pin
/// the fetch thread.
pub(crate) fn connect(
    url: &gix::Url,
    credentials: Option<&SshCredentials>,
    settings: &SshSettings,
    timeout: Duration,
) -> Result<(SshConnection, SshSession), String> {
    let key = credentials
        .map(|c| KeyFile::write(c.private_key()))
        .transpose()
        .map_err(|e| format!("writing the private key to a temporary file: {e}"))?;
    let insecure = credentials.is_some_and(SshCredentials::insecure);
    let invocation = Invocation::new(
        url,
        key.as_ref().map(KeyFile::path).as_deref(),
        &settings.known_hosts,
        insecure,
        timeout,
    )?;
    let mut child = Command::new(&settings.program)
        .args(&invocation.args)
        // Asks the server for protocol v2 (`-o SendEnv=GIT_PROTOCOL`); a server that does not
        // accept the variable answers in v0, which gix understands as well.
        .env("GIT_PROTOCOL", "version=2")
        // English messages: they are what the error reports.
        .env("LANG", "C")
        .env("LC_ALL", "C")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", settings.program.display()))?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let child = Arc::new(Mutex::new(child));
    let no_thread = |e: std::io::Error| {
        let mut child = child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        format!("cannot start a thread: {e}")
    };
    let (stderr_tx, stderr_rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("ssh stderr".into())
        .spawn(move || {
            let mut kept = Vec::new();
            let _ = (&mut stderr).take(STDERR_LIMIT).read_to_end(&mut kept);
            // Drained to the end so that `ssh` never blocks on a full pipe.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            let _ = stderr_tx.send(kept);
        })
        .map_err(no_thread)?;
    let (stop_watchdog, stopped) = mpsc::channel::<()>();
    {
        let child = child.clone();
        std::thread::Builder::new()
            .name("ssh watchdog".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(timeout) {
                    let _ = child.lock().unwrap_or_else(|p| p.into_inner()).kill();
                }
            })
            .map_err(no_thread)?;
    }
    let connection = Connection::new(
        stdout,
        stdin,
        Protocol::V2,
        invocation.path,
        None::<(&str, Option<u16>)>,
        ConnectMode::Process,
        false,
    )
    .custom_url(Some(url.to_bstring()));
    let session = SshSession {
        child,
        stderr: stderr_rx,
        _stop_watchdog: stop_watchdog,
        key_path: key.as_ref().map(KeyFile::path),
        key_lines: credentials.map(key_lines).unwrap_or_default(),
        known_hosts: settings.known_hosts.clone(),
        has_key: key.is_some(),
        _key: key,
    };
    Ok((connection, session))
}

/// The `ssh` process of one fetch and its key file.
pub(crate) struct SshSession {
    child: Arc<Mutex<Child>>,
    /// `ssh`'s stderr (its first [`STDERR_LIMIT`] bytes), once `ssh` has closed it.
    stderr: mpsc::Receiver<Vec<u8>>,
    /// Dropped with the session, which ends the watchdog without a kill.
    _stop_watchdog: mpsc::Sender<()>,
    key_path: Option<PathBuf>,
    /// The key's lines, to keep them out of messages whatever `ssh` prints.
    key_lines: Vec<String>,
    known_hosts: PathBuf,
    has_key: bool,
    _key: Option<KeyFile>,
}

impl SshSession {
    /// The message of a failed fetch: what `ssh` said (the reason, usually) and then the
    /// protocol error `gix_message`, with a hint for the usual causes. Call it once the
    /// connection is dropped: `ssh` then ends and closes its stderr.
    pub(crate) fn explain(&self, gix_message: &str) -> String {
        let said = match self.stderr.recv_timeout(STDERR_GRACE) {
            Ok(bytes) => self.scrub(&bytes.to_str_lossy()),
            Err(_) => {
                self.kill();
                self.stderr
                    .recv_timeout(STDERR_GRACE)
                    .map(|bytes| self.scrub(&bytes.to_str_lossy()))
                    .unwrap_or_default()
            }
        };
        let mut message = if said.is_empty() {
            gix_message.to_owned()
        } else {
            format!("ssh: {said} ({gix_message})")
        };
        if said.contains("Host key verification failed")
            || said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        {
            message.push_str(&format!(
                "; the server's host key is checked against {} (Argo CD's ssh_known_hosts: \
                 add the host's key there, or set `insecure: true` on the repository to skip \
                 the check)",
                self.known_hosts.display()
            ));
        } else if said.contains("Permission denied") {
            message.push_str(if self.has_key {
                "; the server did not accept the repository's sshPrivateKey"
            } else {
                "; the repository has no sshPrivateKey (a `repositories` entry or credential \
                 template with one)"
            });
        }
        message
    }

    /// `ssh`'s stderr as one line, without the key file's path or anything of the key.
    fn scrub(&self, text: &str) -> String {
        let mut lines = Vec::new();
        // Trimmed of the `@@@` frame of ssh's changed host key warning.
        let framing = |c: char| c == '@' || c.is_whitespace();
        for line in text
            .lines()
            .map(|l| l.trim_matches(framing))
            .filter(|l| !l.is_empty())
        {
            let leaks = line.contains("PRIVATE KEY")
                || self
                    .key_lines
                    .iter()
                    .any(|k| k.len() >= 8 && line.contains(k.as_str()));
            if leaks {
                continue;
            }
            let line = match &self.key_path {
                Some(path) => line.replace(&path.display().to_string(), "<sshPrivateKey>"),
                None => line.to_owned(),
            };
            lines.push(line);
        }
        let mut said = lines.join(" ");
        if said.len() > 2000 {
            let mut end = 2000;
            while !said.is_char_boundary(end) {
                end -= 1;
            }
            said.truncate(end);
            said.push_str("...");
        }
        said
    }

    fn kill(&self) {
        let _ = self.child.lock().unwrap_or_else(|p| p.into_inner()).kill();
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        // The key file goes with `_key`, after `ssh` is gone.
    }
}

/// The lines of a key, for [`SshSession::scrub`].
fn key_lines(credentials: &SshCredentials) -> Vec<String> {
    credentials
        .private_key()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

/// A private key in a file of its own (mode 0600) in a folder of its own (mode 0700), in
/// `/dev/shm` when there is one (memory, as Argo CD does), else the temporary folder;
/// both removed on drop.
struct KeyFile {
    dir: PathBuf,
}

impl KeyFile {
    fn write(key: &str) -> std::io::Result<KeyFile> {
        let shm = Path::new("/dev/shm");
        let mut bases = Vec::new();
        if shm.is_dir() {
            bases.push(shm.to_path_buf());
        }
        bases.push(std::env::temp_dir());
        let mut last_err = None;
        for base in bases {
            match KeyFile::write_in(&base, key) {
                Ok(file) => return Ok(file),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one folder was tried"))
    }

    fn write_in(base: &Path, key: &str) -> std::io::Result<KeyFile> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "gitfleet-ssh-{}-{}-{nanos:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let file = KeyFile { dir };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file.path())?;
        // OpenSSH wants the final newline (Argo CD appends one too) and no CRs.
        let text = key.replace("\r\n", "\n");
        out.write_all(text.trim().as_bytes())?;
        out.write_all(b"\n")?;
        out.sync_all()?;
        Ok(file)
    }

    fn path(&self) -> PathBuf {
        self.dir.join("key")
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `ssh` command line of a fetch, and the repository path as the server's
/// `git-upload-pack` gets it.
#[derive(Debug)]
struct Invocation {
    args: Vec<OsString>,
    path: BString,
}

impl Invocation {
    fn new(
        url: &gix::Url,
        key: Option<&Path>,
        known_hosts: &Path,
        insecure: bool,
        timeout: Duration,
    ) -> Result<Invocation, String> {
        let host = url
            .host()
            .filter(|h| !h.is_empty())
            .ok_or("ssh url without a host")?;
        // `ssh://host/~/repo` means `~/repo` on the server, as git reads it.
        let path = gix::url::expand_path::for_shell(url.path.clone());
        if path.is_empty() {
            return Err("ssh url without a repository path".into());
        }
        if path.first() == Some(&b'-') {
            return Err("the repository path starts with '-'".into());
        }
        let mut args: Vec<OsString> = Vec::new();
        let mut option = |value: String| {
            args.push("-o".into());
            args.push(value.into());
        };
        // Only what is given here counts: not ~/.ssh/config nor /etc/ssh/ssh_config, not
        // the agent's keys nor the default identities, and never a prompt.
        option("BatchMode=yes".into());
        option("IdentitiesOnly=yes".into());
        option("IdentityAgent=none".into());
        if key.is_none() {
            option("IdentityFile=none".into());
        }
        if insecure {
            // Argo CD's insecure: no check, and the key is not remembered anywhere.
            option("StrictHostKeyChecking=no".into());
            option("UserKnownHostsFile=/dev/null".into());
        } else {
            option("StrictHostKeyChecking=yes".into());
            option(format!("UserKnownHostsFile={}", config_path(known_hosts)?));
        }
        option("GlobalKnownHostsFile=/dev/null".into());
        option("ControlMaster=no".into());
        option("ControlPath=none".into());
        option(format!("ConnectTimeout={}", timeout.as_secs().max(1)));
        option("LogLevel=ERROR".into());
        option("SendEnv=GIT_PROTOCOL".into());
        let mut all: Vec<OsString> = vec!["-F".into(), "/dev/null".into()];
        all.append(&mut args);
        if let Some(key) = key {
            all.push("-i".into());
            all.push(config_path(key)?.into());
        }
        if let Some(port) = url.port {
            all.push("-p".into());
            all.push(port.to_string().into());
        }
        let destination = match url.user() {
            Some(user) if !user.is_empty() => format!("{user}@{host}"),
            _ => host.to_owned(),
        };
        // `--`: a host or user that starts with '-' cannot be taken for an option.
        all.push("--".into());
        all.push(destination.into());
        all.push(format!("git-upload-pack {}", shell_quote(&path.to_str_lossy())).into());
        Ok(Invocation { args: all, path })
    }
}

/// A path as an ssh option value: ssh expands `%` tokens, `${VAR}` and `~` in these, and
/// splits on whitespace, so such paths are refused rather than misread.
fn config_path(path: &Path) -> Result<String, String> {
    let text = path.to_str().ok_or_else(|| {
        format!(
            "the path {} is not UTF-8, which ssh cannot be given",
            path.display()
        )
    })?;
    if text.is_empty()
        || text.starts_with('~')
        || text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '%' | '$' | '"' | '\'' | '\\'))
    {
        return Err(format!(
            "the path {text:?} holds characters that ssh would expand or split"
        ));
    }
    Ok(text.to_owned())
}

/// `value` in single quotes for the server's shell, as git quotes the path it sends
/// (`'` and `!` are closed over and escaped).
fn shell_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        match c {
            '\'' | '!' => {
                quoted.push('\'');
                quoted.push('\\');
                quoted.push(c);
                quoted.push('\'');
            }
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(url: &str, key: Option<&str>, insecure: bool) -> Vec<String> {
        let url = gix::url::parse(url.as_bytes().as_bstr()).unwrap();
        Invocation::new(
            &url,
            key.map(Path::new),
            Path::new("/app/config/ssh/ssh_known_hosts"),
            insecure,
            Duration::from_secs(90),
        )
        .unwrap()
        .args
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect()
    }

    fn tail(args: &[String], n: usize) -> Vec<&str> {
        args[args.len() - n..].iter().map(String::as_str).collect()
    }

    fn has(args: &[String], option: &str) -> bool {
        args.windows(2).any(|w| w[0] == "-o" && w[1] == option)
    }

    #[test]
    fn ssh_urls_become_ssh_arguments() {
        let args = invocation(
            "ssh://git@127.0.0.1:2222/srv/repo.git",
            Some("/k/key"),
            false,
        );
        assert_eq!(args[..2], ["-F", "/dev/null"]);
        assert_eq!(
            tail(&args, 7),
            [
                "-i",
                "/k/key",
                "-p",
                "2222",
                "--",
                "git@127.0.0.1",
                "git-upload-pack '/srv/repo.git'"
            ]
        );
        for expected in [
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "StrictHostKeyChecking=yes",
            "UserKnownHostsFile=/app/config/ssh/ssh_known_hosts",
            "GlobalKnownHostsFile=/dev/null",
            "ControlMaster=no",
            "SendEnv=GIT_PROTOCOL",
        ] {
            assert!(has(&args, expected), "{expected}: {args:?}");
        }
        assert!(!has(&args, "IdentityFile=none"));
    }

    #[test]
    fn scp_like_urls_use_the_home_relative_path_and_ssh_s_port() {
        let args = invocation("git@github.com:org/repo.git", Some("/k/key"), false);
        assert_eq!(
            tail(&args, 5),
            [
                "-i",
                "/k/key",
                "--",
                "git@github.com",
                "git-upload-pack 'org/repo.git'"
            ]
        );
        let args = invocation("ssh://git@host/~/repo.git", Some("/k/key"), false);
        assert_eq!(tail(&args, 1), ["git-upload-pack '~/repo.git'"]);
    }

    #[test]
    fn insecure_skips_the_check_and_remembers_nothing() {
        let args = invocation("ssh://git@host/r.git", Some("/k/key"), true);
        assert!(has(&args, "StrictHostKeyChecking=no"));
        assert!(has(&args, "UserKnownHostsFile=/dev/null"));
        assert!(!args.iter().any(|a| a.contains("ssh_known_hosts")));
    }

    #[test]
    fn without_a_key_no_identity_is_offered() {
        let args = invocation("ssh://host/r.git", None, false);
        assert!(has(&args, "IdentityFile=none"));
        assert!(!args.iter().any(|a| a == "-i"));
        assert_eq!(tail(&args, 3), ["--", "host", "git-upload-pack '/r.git'"]);
    }

    #[test]
    fn paths_are_quoted_for_the_server_shell_and_odd_local_paths_refused() {
        assert_eq!(shell_quote("/a b/it's!"), "'/a b/it'\\''s'\\!''");
        let url = gix::url::parse(b"ssh://host/r.git".as_bstr()).unwrap();
        for bad in ["/x/%d/hosts", "/x/${HOME}", "/x y", "~/hosts"] {
            let err = Invocation::new(&url, None, Path::new(bad), false, Duration::from_secs(1))
                .unwrap_err();
            assert!(err.contains("expand or split"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_key_file_is_private_and_goes_with_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let file = KeyFile::write("-----BEGIN KEY-----\r\nabc\r\n-----END KEY-----").unwrap();
        let path = file.path();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
        );
        drop(file);
        assert!(!path.exists());
        assert!(!path.parent().unwrap().exists());
    }
}
