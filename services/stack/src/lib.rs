//! Every service of gitfleet in one process, each through its own `run(config, bus,
//! shutdown)` exactly as it runs alone: what `gitfleet up` starts and what the
//! end-to-end tests boot. Services still talk only over the bus.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use gitfleet_bus::{Bus, CredentialKey, Identities, Role};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What varies between a laptop run, a test and a load run.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Names this process in the diff-worker and sync-executor groups.
    pub member_id: String,
    /// Where the git-watcher keeps its mirrors.
    pub mirror_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Notifier webhooks.
    pub webhooks: Vec<String>,
    /// Repository poll interval (Argo CD: 120 s + jitter).
    pub poll_interval: Duration,
    /// Periodic re-comparison of every app (Argo CD: 120 s + 60 s jitter).
    pub refresh_interval: Duration,
    /// Delay between sync waves (Argo CD: 2 s).
    pub wave_delay: Duration,
    /// Ownership member and lease TTL (whole seconds): takeover time after a crash.
    pub ownership_ttl: Duration,
    /// Which services this process runs (all, for `gitfleet up`).
    pub services: Services,
    /// Every caller of the api gateway acts as admin (Argo CD's `server.disable.auth`):
    /// for tests and load runs, never `gitfleet up`.
    pub disable_auth: bool,
    /// Lua health scripts laid out as Argo CD's `resource_customizations`, for the diff
    /// worker and the sync executor.
    pub health_library: gitfleet_lua::Library,
}

/// A switch per service, so one process can run a subset (tests start several workers).
#[derive(Debug, Clone, Copy)]
pub struct Services {
    pub git_watcher: bool,
    pub renderer: bool,
    pub diff_worker: bool,
    pub sync_executor: bool,
    pub api_gateway: bool,
    pub notifier: bool,
    pub appset_controller: bool,
}

impl Services {
    pub const ALL: Services = Services {
        git_watcher: true,
        renderer: true,
        diff_worker: true,
        sync_executor: true,
        api_gateway: true,
        notifier: true,
        appset_controller: true,
    };
}

impl StackConfig {
    /// Argo CD's timings, ports 8080 (gRPC) and 8081 (webhooks).
    pub fn new(member_id: impl Into<String>, mirror_dir: impl Into<PathBuf>) -> Self {
        StackConfig {
            member_id: member_id.into(),
            mirror_dir: mirror_dir.into(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            webhooks: Vec::new(),
            poll_interval: Duration::from_secs(120),
            refresh_interval: Duration::from_secs(120),
            wave_delay: Duration::from_secs(2),
            ownership_ttl: Duration::from_secs(10),
            services: Services::ALL,
            disable_auth: false,
            health_library: gitfleet_lua::Library::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating the bus topology: {0}")]
    Bus(#[from] gitfleet_bus::BusError),
    #[error("starting the api gateway: {0}")]
    Gateway(#[from] api_gateway::Error),
    #[error("starting the git watcher: {0}")]
    GitWatcher(#[from] git_watcher::Error),
    #[error("starting the renderer: {0}")]
    Renderer(#[from] renderer::Error),
    #[error("starting the diff worker: {0}")]
    DiffWorker(#[from] diff_worker::Error),
    #[error("starting the ApplicationSet controller: {0}")]
    AppSetController(#[from] appset_controller::Error),
}

/// The running services.
pub struct Stack {
    /// Where the api gateway listens (the real ports when 0 was asked for).
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

fn spawn<E: std::fmt::Display>(
    tasks: &mut JoinSet<()>,
    name: &'static str,
    fut: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
) {
    tasks.spawn(async move {
        match fut.await {
            Ok(()) => tracing::info!(service = name, "stopped"),
            Err(e) => tracing::error!(service = name, error = %e, "service failed"),
        }
    });
}

/// The bus each service talks through: one connection for all, or, on a locked bus, one
/// per service as its own NATS user ([`gitfleet_bus::permissions`]).
#[derive(Debug, Clone)]
pub struct ServiceBuses {
    /// Makes the topology.
    pub admin: Bus,
    pub git_watcher: Bus,
    pub renderer: Bus,
    pub diff_worker: Bus,
    pub sync_executor: Bus,
    pub api_gateway: Bus,
    pub notifier: Bus,
    pub appset_controller: Bus,
}

impl ServiceBuses {
    pub fn shared(bus: Bus) -> Self {
        ServiceBuses {
            admin: bus.clone(),
            git_watcher: bus.clone(),
            renderer: bus.clone(),
            diff_worker: bus.clone(),
            sync_executor: bus.clone(),
            api_gateway: bus.clone(),
            notifier: bus.clone(),
            appset_controller: bus,
        }
    }

    /// One connection per role with its NKey from `identities`; only the roles that
    /// use credentials get `key`.
    pub async fn connect_locked(
        config: &gitfleet_bus::BusConfig,
        identities: &Identities,
        key: Option<Arc<CredentialKey>>,
    ) -> Result<Self, gitfleet_bus::BusError> {
        let connect = |role: Role| {
            let mut c = config.clone();
            c.creds_file = None;
            c.nkey_file = None;
            c.credentials_key_file = None;
            c.nkey_seed = Some(identities.seed(role).to_owned());
            c.name = format!("{} {}", config.name, role.name());
            let key = key.clone().filter(|_| role.holds_credentials_key());
            async move {
                let bus = gitfleet_bus::connect(&c).await?;
                Ok::<_, gitfleet_bus::BusError>(match key {
                    Some(key) => bus.with_credentials_key(key),
                    None => bus,
                })
            }
        };
        Ok(ServiceBuses {
            admin: connect(Role::Admin).await?,
            git_watcher: connect(Role::GitWatcher).await?,
            renderer: connect(Role::Renderer).await?,
            diff_worker: connect(Role::DiffWorker).await?,
            sync_executor: connect(Role::SyncExecutor).await?,
            api_gateway: connect(Role::ApiGateway).await?,
            notifier: connect(Role::Notifier).await?,
            appset_controller: connect(Role::AppSetController).await?,
        })
    }
}

/// Starts the chosen services on one bus connection; see [`start_with`].
pub async fn start(cfg: StackConfig, bus: Bus) -> Result<Stack, Error> {
    start_with(cfg, ServiceBuses::shared(bus)).await
}

/// Starts the chosen services, each on its bus; returns once the git watcher, renderer
/// and diff worker have their subscriptions (the gateway is bound), so callers need not
/// wait for readiness.
pub async fn start_with(cfg: StackConfig, buses: ServiceBuses) -> Result<Stack, Error> {
    buses.admin.ensure().await?;
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let s = cfg.services;
    let (mut grpc_addr, mut http_addr) = (None, None);
    if s.api_gateway {
        let gw = api_gateway::Config {
            grpc_addr: cfg.grpc_addr,
            http_addr: cfg.http_addr,
            disable_auth: cfg.disable_auth,
            ..Default::default()
        };
        let listeners = api_gateway::bind(&gw).await?;
        grpc_addr = Some(listeners.grpc_addr());
        http_addr = Some(listeners.http_addr());
        spawn(
            &mut tasks,
            "api-gateway",
            api_gateway::serve(gw, listeners, buses.api_gateway.clone(), shutdown.clone()),
        );
    }
    if s.git_watcher {
        let mut c = git_watcher::Config::new(&cfg.mirror_dir);
        c.poll_interval = cfg.poll_interval;
        c.poll_jitter = cfg.poll_interval / 2;
        let running = git_watcher::start(c, buses.git_watcher.clone(), shutdown.clone()).await?;
        spawn(&mut tasks, "git-watcher", running.wait());
    }
    if s.renderer {
        let running = renderer::start(
            renderer::Config::default(),
            buses.renderer.clone(),
            shutdown.clone(),
        )
        .await?;
        spawn(&mut tasks, "renderer", running.wait());
    }
    if s.diff_worker {
        let mut c = diff_worker::Config::new(&cfg.member_id);
        c.refresh_interval = cfg.refresh_interval;
        c.refresh_jitter = cfg.refresh_interval / 2;
        c.member_ttl = cfg.ownership_ttl;
        c.lease_ttl = cfg.ownership_ttl;
        c.health_library = cfg.health_library.clone();
        let running = diff_worker::start(c, buses.diff_worker.clone(), shutdown.clone()).await?;
        spawn(&mut tasks, "diff-worker", running.wait());
    }
    if s.sync_executor {
        let mut c = sync_executor::Config::new(&cfg.member_id);
        c.wave_delay = cfg.wave_delay;
        c.member_ttl = cfg.ownership_ttl;
        c.lease_ttl = cfg.ownership_ttl;
        // A dead executor's running operation is delivered to the cluster's next owner
        // once its ack wait runs out: a few lease lifetimes, so takeover time follows the
        // ownership TTL (30 s at the default 10 s; progress acks come every third of it).
        c.ack_wait = (cfg.ownership_ttl * 3).max(Duration::from_secs(6));
        c.health_library = cfg.health_library.clone();
        spawn(
            &mut tasks,
            "sync-executor",
            sync_executor::run(c, buses.sync_executor.clone(), shutdown.clone()),
        );
    }
    if s.appset_controller {
        let mut c = appset_controller::Config::new(&cfg.member_id);
        c.member_ttl = cfg.ownership_ttl;
        c.lease_ttl = cfg.ownership_ttl;
        c.requeue_interval = cfg.poll_interval;
        let running =
            appset_controller::start(c, buses.appset_controller.clone(), shutdown.clone()).await?;
        spawn(&mut tasks, "appset-controller", running.wait());
    }
    if s.notifier {
        let c = notifier::Config {
            webhooks: cfg.webhooks.clone(),
            ..Default::default()
        };
        spawn(
            &mut tasks,
            "notifier",
            notifier::run(c, buses.notifier.clone(), shutdown.clone()),
        );
    }
    Ok(Stack {
        grpc_addr,
        http_addr,
        shutdown,
        tasks,
    })
}

impl Stack {
    /// Stops every service (gracefully: ownership is handed over) and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Kills every service at once, as a crash would: nothing is handed over.
    pub fn abort(mut self) {
        self.tasks.abort_all();
    }

    /// Waits until a service stops by itself (or Ctrl-C in `gitfleet up`).
    pub async fn wait_any(&mut self) {
        self.tasks.join_next().await;
    }
}
