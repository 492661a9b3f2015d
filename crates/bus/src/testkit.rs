//! A real nats-server for tests: start, restart on the same port and store, stop on drop.
//!
//! Most tests share one server per test binary ([`shared`]) and isolate themselves with a
//! [`unique_prefix`]; tests that restart or kill the server start their own.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::connect::Bus;
use crate::topology::Topology;

/// A nats-server with JetStream, on 127.0.0.1 and a port of its own choosing.
///
/// The server runs under a small `sh` supervisor that kills it and removes its store
/// when our end of its stdin closes, which also happens when the test process dies
/// without running destructors (a shared server lives in a `static`).
pub struct NatsServer {
    port: u16,
    store_dir: PathBuf,
    log_file: PathBuf,
    /// A configuration file (`-c`), for servers with users and permissions.
    config_file: Option<PathBuf>,
    supervisor: Option<(Child, ChildStdin)>,
}

const SUPERVISOR: &str = r#"
bin="$1"; dir="$2"; shift 2
"$bin" "$@" &
pid=$!
read cmd
kill "$pid" 2>/dev/null
wait "$pid"
[ "$cmd" = keep ] || rm -rf "$dir"
"#;

impl NatsServer {
    /// Starts a server with a fresh store.
    ///
    /// # Panics
    /// If the binary is missing or the server does not come up within 20 s.
    pub fn start() -> NatsServer {
        Self::start_with_config(None)
    }

    /// Starts a server whose users are `identities`, each with its role's permissions
    /// under `topology`'s prefix: the locked bus of a deployment.
    pub fn start_locked(topology: &Topology, identities: &crate::Identities) -> NatsServer {
        Self::start_with_config(Some(
            topology.server_authorization(&identities.public_keys()),
        ))
    }

    fn start_with_config(config: Option<String>) -> NatsServer {
        let store_dir = tempfile::Builder::new()
            .prefix("gitfleet-nats-")
            .tempdir()
            .expect("creating a store dir for nats-server")
            .keep();
        let log_file = store_dir.join("nats-server.log");
        let config_file = config.map(|text| {
            let path = store_dir.join("nats-server.conf");
            std::fs::write(&path, text).expect("writing the nats-server config");
            path
        });
        let mut server = NatsServer {
            port: 0,
            store_dir,
            log_file,
            config_file,
            supervisor: None,
        };
        server.spawn(None);
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// Stops the server (clients see the connection drop) and starts it again on the
    /// same port with the same store, so JetStream state survives.
    pub fn restart(&mut self) {
        self.stop(true);
        self.spawn(Some(self.port));
    }

    /// Stops the server, keeping its store for a later [`NatsServer::restart`]-like
    /// [`NatsServer::resume`].
    pub fn pause(&mut self) {
        self.stop(true);
    }

    /// Starts a paused server again on its port.
    pub fn resume(&mut self) {
        assert!(self.supervisor.is_none(), "nats-server is already running");
        self.spawn(Some(self.port));
    }

    fn spawn(&mut self, port: Option<u16>) {
        let bin = server_binary();
        let _ = std::fs::remove_file(&self.log_file);
        let port_arg = port.map_or("-1".to_string(), |p| p.to_string());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(&bin)
            .arg(&self.store_dir)
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(&self.store_dir)
            .arg("-l")
            .arg(&self.log_file)
            .args(
                self.config_file
                    .iter()
                    .flat_map(|c| [std::ffi::OsStr::new("-c"), c.as_os_str()]),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", bin.display()));
        let stdin = child.stdin.take().expect("supervisor stdin");
        self.supervisor = Some((child, stdin));
        self.port = self.wait_ready();
    }

    /// Waits for the log to say where the server listens, then for it to accept.
    fn wait_ready(&mut self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut port = None;
        while Instant::now() < deadline {
            if let Some((child, _)) = &mut self.supervisor
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("nats-server exited with {status}: {}", self.log());
            }
            let log = self.log();
            if port.is_none() {
                port = log
                    .lines()
                    .find_map(|l| l.split("Listening for client connections on ").nth(1))
                    .and_then(|addr| addr.trim().rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
            }
            if let Some(p) = port
                && log.contains("Server is ready")
                && TcpStream::connect(("127.0.0.1", p)).is_ok()
            {
                return p;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "nats-server did not become ready within 20 s: {}",
            self.log()
        );
    }

    /// What the server logged so far (permission violations among it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    fn stop(&mut self, keep_store: bool) {
        if let Some((mut child, mut stdin)) = self.supervisor.take() {
            if keep_store {
                let _ = stdin.write_all(b"keep\n");
            }
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop(false);
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

/// `$GITFLEET_NATS_SERVER`, else `<workspace>/tools/bin/nats-server`.
///
/// # Panics
/// If neither exists.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GITFLEET_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/bin/nats-server");
    assert!(
        path.exists(),
        "nats-server not found at {} and GITFLEET_NATS_SERVER is unset: run `cargo xtask tools`",
        path.display()
    );
    path
}

/// One server for the whole test binary, started on first use.
pub fn shared() -> &'static NatsServer {
    static SERVER: OnceLock<NatsServer> = OnceLock::new();
    SERVER.get_or_init(NatsServer::start)
}

/// A prefix no other test in this process uses, e.g. `t3x41872`.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}x{}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::process::id()
    )
}

/// This test process's credentials key, in a file (for CLI commands that take
/// `--credentials-key-file`) and loaded.
fn credentials_key() -> &'static (tempfile::TempDir, std::sync::Arc<crate::CredentialKey>) {
    static KEY: OnceLock<(tempfile::TempDir, std::sync::Arc<crate::CredentialKey>)> =
        OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir for the credentials key");
        let key = crate::CredentialKey::load_or_create(&dir.path().join("credentials.key"))
            .expect("making the credentials key");
        (dir, std::sync::Arc::new(key))
    })
}

/// The file holding the key every [`bus_on`] bus seals credentials with.
pub fn credentials_key_file() -> PathBuf {
    credentials_key().0.path().join("credentials.key")
}

/// A bus on `server` under a fresh prefix, with the whole topology ensured and this
/// process's credentials key, so every test stores credentials sealed as a deployment
/// does.
pub async fn bus_on(server: &NatsServer) -> Bus {
    let topology = Topology::new(&unique_prefix()).expect("unique prefix is valid");
    let client = async_nats::connect(server.url())
        .await
        .expect("connecting to the test nats-server");
    let bus = Bus::new(client, topology).with_credentials_key(credentials_key().1.clone());
    bus.ensure().await.expect("ensuring the topology");
    bus
}

/// A bus on the [`shared`] server under a fresh prefix, with the topology ensured.
pub async fn bus() -> Bus {
    bus_on(shared()).await
}
