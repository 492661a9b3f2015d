//! Child processes started, watched and stopped as one set: what `cargo xtask up` and the
//! load driver do with nats-server, cluster-sim, git-daemon and the services.
//!
//! Children are stopped in the reverse of their start order, so a service goes before the
//! bus it talks to, and they are stopped when the set is dropped, so an error or a panic
//! in the parent leaves no server behind. `std::process::Child` alone does neither: its
//! drop leaves the process running.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start {name} ({program})")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot create the log file {}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Exited(#[from] Exited),
    #[error("nothing listening on 127.0.0.1:{port} after {within:?}")]
    NotListening { port: u16, within: Duration },
}

/// How the children are stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL at once, to the child and everything it started (each child is started in
    /// its own process group): for children whose state is thrown away with them.
    Kill,
    /// Wait `grace` for each child to exit by itself, then SIGTERM, then SIGKILL after
    /// `term_grace`. The first wait is there because Ctrl-C in a terminal has sent SIGINT
    /// to every process in the foreground group already, and a child that is shutting
    /// down cleanly should not be interrupted by a second signal.
    Gentle {
        grace: Duration,
        term_grace: Duration,
    },
}

/// A child that has exited, with the end of its log when it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} exited ({status}){}", log_excerpt(.log, .tail))]
pub struct Exited {
    pub name: String,
    pub status: ExitStatus,
    pub log: Option<PathBuf>,
    /// The last lines of `log` (empty without one).
    pub tail: String,
}

fn log_excerpt(log: &Option<PathBuf>, tail: &str) -> String {
    match log {
        Some(path) => format!("; last lines of {}:\n{tail}", path.display()),
        None => String::new(),
    }
}

/// Lines of a child's log quoted when it exits: enough for a panic message or a bind
/// error, short enough to read in a terminal.
const TAIL_LINES: usize = 20;

struct Member {
    name: String,
    child: Child,
    log: Option<PathBuf>,
}

/// The children of this process, in start order. Shared by reference: every method
/// takes `&self`, so async code can check on them while the owner keeps the set.
pub struct Children {
    members: Mutex<Vec<Member>>,
    stop: Stop,
}

impl Children {
    pub fn new(stop: Stop) -> Children {
        Children {
            members: Mutex::new(Vec::new()),
            stop,
        }
    }

    /// Starts `cmd` with the stdio the caller set (by default, this process's own).
    pub fn spawn(&self, name: &str, cmd: Command) -> Result<u32> {
        self.start(name, cmd, None)
    }

    /// Starts `cmd` with stdin closed and stdout and stderr written to `log`, which
    /// [`Exited`] quotes if the child exits.
    pub fn spawn_logged(&self, name: &str, mut cmd: Command, log: &Path) -> Result<u32> {
        let log_err = |source| Error::Log {
            path: log.to_path_buf(),
            source,
        };
        let out = File::create(log).map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        self.start(name, cmd, Some(log.to_path_buf()))
    }

    fn start(&self, name: &str, mut cmd: Command, log: Option<PathBuf>) -> Result<u32> {
        if self.stop == Stop::Kill {
            // Its own process group, ended whole: what the child starts (git's
            // upload-packs, a service's helpers) goes with it.
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            name: name.to_string(),
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let pid = child.id();
        self.lock().push(Member {
            name: name.to_string(),
            child,
            log,
        });
        Ok(pid)
    }

    /// The first child found to have exited, if any. It stays in the set (and is reaped),
    /// so stopping the set later skips it.
    pub fn exited(&self) -> Option<Exited> {
        let mut members = self.lock();
        members.iter_mut().find_map(|m| match m.child.try_wait() {
            Ok(Some(status)) => Some(Exited {
                name: m.name.clone(),
                status,
                tail: m.log.as_deref().map(last_lines).unwrap_or_default(),
                log: m.log.clone(),
            }),
            _ => None,
        })
    }

    /// Fails, naming the child and quoting its log, if any child has exited.
    pub fn check_alive(&self) -> Result<(), Exited> {
        match self.exited() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Name and pid of every child, in start order.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.lock()
            .iter()
            .map(|m| (m.name.clone(), m.child.id()))
            .collect()
    }

    /// Blocks until something accepts on 127.0.0.1:`port`; fails early if a child exits.
    pub fn wait_listening(&self, port: u16, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                return Err(Error::NotListening { port, within });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Blocks until a child exits (`Some`) or `stop` is set (`None`); stops nothing.
    pub fn wait_any(&self, stop: &AtomicBool) -> Option<Exited> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(e) = self.exited() {
                return Some(e);
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILLs the child named `name` (with its process group under [`Stop::Kill`]) and
    /// takes it out of the set, so its end is not an [`Exited`]; its pid, or `None` when
    /// no child has that name.
    pub fn kill(&self, name: &str) -> Option<u32> {
        let mut member = {
            let mut members = self.lock();
            let at = members.iter().position(|m| m.name == name)?;
            members.remove(at)
        };
        let pid = member.child.id();
        if self.stop == Stop::Kill {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = member.child.kill();
        let _ = member.child.wait();
        Some(pid)
    }

    /// Stops every child, last started first, as [`Stop`] says, and waits for each.
    pub fn stop_all(&self) {
        let mut members = self.lock();
        while let Some(Member {
            name, mut child, ..
        }) = members.pop()
        {
            match self.stop {
                Stop::Kill => {
                    // `Child` can only signal the child itself, and libc calls would need
                    // `unsafe`.
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{}", child.id())])
                        .stderr(Stdio::null())
                        .status();
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Stop::Gentle { grace, term_grace } => {
                    if exits_within(&mut child, grace) {
                        continue;
                    }
                    // `Child` can only SIGKILL, and libc calls would need `unsafe`.
                    let _ = Command::new("kill")
                        .args(["-TERM", &child.id().to_string()])
                        .stderr(Stdio::null())
                        .status();
                    if exits_within(&mut child, term_grace) {
                        continue;
                    }
                    eprintln!(
                        "{}: {name} did not stop on SIGTERM; killing it",
                        this_program()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Member>> {
        // Stopping must work while unwinding from a panic that poisoned the lock.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Picks a free loopback port: bind port 0, read it, release it. Another process may
/// take it before the child binds it; the callers start few servers, on a quiet host.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

const POLL: Duration = Duration::from_millis(100);

/// True once the child has exited (and been reaped) within `timeout`.
fn exits_within(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn last_lines(log: &Path) -> String {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return String::new(),
        Err(e) => return format!("(cannot read it: {e})"),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// The name messages are prefixed with, as the parent's own messages are (`xtask: ...`).
fn this_program() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "procs".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    fn gentle() -> Stop {
        Stop::Gentle {
            grace: Duration::from_millis(100),
            term_grace: Duration::from_secs(10),
        }
    }

    fn is_running(pid: u32) -> bool {
        // A reaped child has no /proc entry; a zombie would still have one.
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn dropping_the_set_stops_every_child() {
        for stop in [Stop::Kill, gentle()] {
            let children = Children::new(stop);
            let a = children.spawn("a", sh("exec sleep 30")).unwrap();
            let b = children
                .spawn("b", sh("trap '' INT; exec sleep 30"))
                .unwrap();
            let started = Instant::now();
            drop(children);
            assert!(!is_running(a) && !is_running(b), "{stop:?}");
            assert!(started.elapsed() < Duration::from_secs(5), "{stop:?}");
        }
    }

    /// Running and not a zombie waiting for a parent (init, once orphaned) to reap it.
    fn is_alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .next()?
                    .to_owned();
                Some(state != "Z" && state != "X")
            })
            .unwrap_or(false)
    }

    #[test]
    fn killing_a_child_ends_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild");
        let children = Children::new(Stop::Kill);
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        children.spawn("parent", sh(&script)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild: u32 = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "the grandchild never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(is_alive(grandchild));
        drop(children);
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_alive(grandchild) {
            assert!(Instant::now() < deadline, "the grandchild outlived the set");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_child_killed_by_name_leaves_the_set_and_is_not_an_exit() {
        let children = Children::new(Stop::Kill);
        let a = children.spawn("a", sh("exec sleep 30")).unwrap();
        let b = children.spawn("b", sh("exec sleep 30")).unwrap();
        assert_eq!(children.kill("a"), Some(a));
        assert!(!is_running(a));
        assert!(is_running(b));
        assert!(children.check_alive().is_ok());
        assert_eq!(children.pids(), [("b".to_string(), b)]);
        assert_eq!(children.kill("a"), None);
    }

    #[test]
    fn a_child_that_ignores_sigterm_is_killed() {
        let children = Children::new(Stop::Gentle {
            grace: Duration::from_millis(50),
            term_grace: Duration::from_millis(200),
        });
        // Ignored signals stay ignored across exec.
        let pid = children
            .spawn("deaf", sh("trap '' TERM INT; exec sleep 30"))
            .unwrap();
        children.stop_all();
        assert!(!is_running(pid));
    }

    #[test]
    fn an_exited_child_is_named_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let children = Children::new(Stop::Kill);
        children
            .spawn("sleeper", sh("exec sleep 30"))
            .expect("sleeper starts");
        let log = dir.path().join("failing.log");
        let script = "for i in $(seq 1 30); do echo line $i; done; echo oops >&2; exit 3";
        children.spawn_logged("failing", sh(script), &log).unwrap();
        let exited = children.wait_any(&AtomicBool::new(false)).unwrap();
        assert_eq!(exited.name, "failing");
        assert_eq!(exited.status.code(), Some(3));
        assert_eq!(exited.tail.lines().count(), TAIL_LINES);
        assert!(exited.tail.ends_with("line 30\noops"), "{}", exited.tail);
        let message = children.check_alive().unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "failing exited (exit status: 3); last lines of {}:\nline 12\n",
                log.display()
            )),
            "{message}"
        );
    }

    #[test]
    fn wait_any_returns_when_asked_to_stop() {
        let children = Children::new(Stop::Kill);
        children.spawn("sleeper", sh("exec sleep 30")).unwrap();
        assert_eq!(children.wait_any(&AtomicBool::new(true)), None);
        assert!(children.check_alive().is_ok());
        assert_eq!(children.pids().len(), 1);
    }

    #[test]
    fn waiting_for_a_port_fails_early_when_the_server_exits() {
        let children = Children::new(Stop::Kill);
        children.spawn("quitter", sh("exit 1")).unwrap();
        let port = free_port().unwrap();
        let started = Instant::now();
        let err = children
            .wait_listening(port, Duration::from_secs(30))
            .unwrap_err();
        assert!(matches!(err, Error::Exited(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        let children = Children::new(Stop::Kill);
        children
            .wait_listening(open, Duration::from_secs(5))
            .unwrap();
        let err = children
            .wait_listening(port, Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, Error::NotListening { .. }), "{err}");
    }

    #[test]
    fn a_missing_program_is_named() {
        let children = Children::new(Stop::Kill);
        let err = children
            .spawn("ghost", Command::new("/nonexistent/ghost"))
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot start ghost (/nonexistent/ghost)");
    }
}
