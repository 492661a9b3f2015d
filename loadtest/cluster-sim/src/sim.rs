//! Starting and stopping a set of simulated clusters: one listener per cluster (so one
//! can be "down" with connection refused), the admin endpoint, kubeconfig, TLS and the
//! optional on-disk state.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, ClusterConfig, Faults, TokenBucket};
use crate::persist;
use crate::store::ClusterState;

/// How to start the simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub clusters: usize,
    /// The admin endpoint's address. With port 0 every listener takes an ephemeral port;
    /// otherwise cluster `i` listens on `port + 1 + i`.
    pub listen: SocketAddr,
    pub tls: bool,
    pub state_dir: Option<PathBuf>,
    pub cluster: ClusterConfig,
    /// Faults every cluster starts with.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            clusters: 1,
            listen: "127.0.0.1:0".parse().expect("valid address"),
            tls: false,
            state_dir: None,
            cluster: ClusterConfig::default(),
            faults: Faults::default(),
        }
    }
}

/// A running simulator. Dropping it without `shutdown` leaves tasks to die with the runtime.
pub struct Sim {
    clusters: Vec<Arc<Cluster>>,
    addrs: Vec<SocketAddr>,
    admin_addr: SocketAddr,
    tls: Option<crate::tls::Tls>,
    state_dir: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sim {
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Sim> {
        let tls = if cfg.tls {
            Some(
                crate::tls::Tls::generate()
                    .context("generating the simulator's TLS certificates")?,
            )
        } else {
            None
        };
        let (shutdown, _) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut clusters = Vec::new();
        let mut addrs = Vec::new();
        if let Some(dir) = &cfg.state_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating state dir {}", dir.display()))?;
        }
        for i in 0..cfg.clusters {
            let name = format!("c{i}");
            let (events, _) = broadcast::channel(cfg.cluster.watch_buffer.max(1));
            let mut state = ClusterState::new(cfg.cluster.history_limit, events.clone());
            let mut token = random_token();
            if let Some(dir) = &cfg.state_dir
                && let Some(saved) = persist::load(dir, &name)?
            {
                token = saved.token.clone();
                persist::restore(&mut state, saved);
            }
            crate::bootstrap::ensure(&mut state);
            let (controller_tx, controller_rx) = mpsc::unbounded_channel();
            let (faults, _) = watch::channel(cfg.faults.clone());
            let cluster = Arc::new(Cluster {
                name,
                token,
                tls: cfg.tls,
                ca_pem: tls.as_ref().map(|t| t.ca_pem.clone()),
                config: cfg.cluster.clone(),
                state: Mutex::new(state),
                events,
                faults,
                write_log: Mutex::new(Vec::new()),
                watches: Default::default(),
                compactions: watch::channel(0).0,
                rate: Mutex::new(TokenBucket::new()),
                injected: std::sync::atomic::AtomicU64::new(0),
                controller_tx,
            });
            if cfg.cluster.controllers {
                crate::controllers::initial_pass(&cluster);
                tasks.push(tokio::spawn(crate::controllers::run(
                    Arc::downgrade(&cluster),
                    controller_rx,
                )));
            }
            let port = if cfg.listen.port() == 0 {
                0
            } else {
                cfg.listen.port() + 1 + i as u16
            };
            let addr = SocketAddr::new(cfg.listen.ip(), port);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding cluster {} to {addr}", cluster.name))?;
            let addr = listener.local_addr()?;
            addrs.push(addr);
            tasks.push(tokio::spawn(serve_cluster(
                cluster.clone(),
                listener,
                addr,
                tls.as_ref().map(|t| t.acceptor.clone()),
                shutdown.subscribe(),
            )));
            clusters.push(cluster);
        }
        let admin_listener = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding the admin endpoint to {}", cfg.listen))?;
        let admin_addr = admin_listener.local_addr()?;
        let sim = Sim {
            clusters,
            addrs,
            admin_addr,
            tls,
            state_dir: cfg.state_dir.clone(),
            shutdown,
            tasks: Mutex::new(tasks),
        };
        let admin = crate::admin::router(crate::admin::AdminState {
            clusters: sim.clusters.clone(),
            kubeconfig: sim.kubeconfig(),
        });
        let mut sd = sim.shutdown.subscribe();
        sim.tasks.lock().push(tokio::spawn(async move {
            let _ = axum::serve(admin_listener, admin)
                .with_graceful_shutdown(async move {
                    let _ = sd.changed().await;
                })
                .await;
        }));
        if let Some(dir) = sim.state_dir.clone() {
            let clusters = sim.clusters.clone();
            let mut sd = sim.shutdown.subscribe();
            sim.tasks.lock().push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = sd.changed() => return,
                    }
                    for c in &clusters {
                        if let Err(e) = persist::save_if_dirty(&dir, c) {
                            tracing::warn!(cluster = %c.name, error = %e, "saving cluster state failed");
                        }
                    }
                }
            }));
        }
        Ok(sim)
    }

    pub fn clusters(&self) -> &[Arc<Cluster>] {
        &self.clusters
    }

    pub fn cluster(&self, i: usize) -> &Arc<Cluster> {
        &self.clusters[i]
    }

    /// The base URL of cluster `i` (`http://127.0.0.1:port` or `https://…`).
    pub fn url(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addrs[i])
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The CA certificate (PEM) clients must trust, when TLS is on.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// A kubeconfig with one context per cluster, named after it; the first is current.
    pub fn kubeconfig(&self) -> String {
        crate::kubeconfig::render(
            &self
                .clusters
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), self.url(i), c.token.clone()))
                .collect::<Vec<_>>(),
            self.ca_pem(),
        )
    }

    /// Stops every listener and task, saving state first when a state dir is set.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(dir) = &self.state_dir {
            for c in &self.clusters {
                if let Err(e) = persist::save(dir, c) {
                    tracing::warn!(cluster = %c.name, error = %e, "saving cluster state failed");
                }
            }
        }
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            t.abort();
        }
    }
}

/// Accepts connections while the cluster is up; when a fault takes it down the listener
/// is closed (connection refused) and open connections are dropped; when it comes back
/// the same address is bound again.
async fn serve_cluster(
    cluster: Arc<Cluster>,
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = crate::server::router(cluster.clone());
    let mut faults = cluster.faults.subscribe();
    let mut listener = Some(listener);
    loop {
        if faults.borrow_and_update().down {
            listener = None;
            tokio::select! {
                _ = faults.changed() => continue,
                _ = shutdown.changed() => return,
            }
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(cluster = %cluster.name, %addr, error = %e, "rebinding failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let (stop_conns, _) = broadcast::channel::<()>(1);
        loop {
            tokio::select! {
                accepted = l.accept() => {
                    let Ok((sock, _)) = accepted else { continue };
                    let _ = sock.set_nodelay(true);
                    tokio::spawn(serve_connection(sock, tls.clone(), router.clone(), stop_conns.subscribe()));
                }
                _ = faults.changed() => {
                    if faults.borrow().down {
                        let _ = stop_conns.send(());
                        break;
                    }
                }
                _ = shutdown.changed() => {
                    let _ = stop_conns.send(());
                    return;
                }
            }
        }
        drop(l);
    }
}

async fn serve_connection(
    sock: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: axum::Router,
    mut stop: broadcast::Receiver<()>,
) {
    let svc = TowerToHyperService::new(router);
    let builder = auto::Builder::new(TokioExecutor::new());
    match tls {
        Some(acceptor) => {
            let Ok(stream) = acceptor.accept(sock).await else {
                return;
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            tokio::select! { _ = conn => {}, _ = stop.recv() => {} }
        }
        None => {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(sock), svc);
            tokio::select! { _ = conn => {}, _ = stop.recv() => {} }
        }
    }
}
