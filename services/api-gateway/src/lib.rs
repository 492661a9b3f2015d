//! The api gateway: gitfleet's front door. Serves gRPC (`gitfleet.v1`) for the CLI and
//! Argo CD's REST paths on one port, and a webhook endpoint for Git hosts. It keeps no state of its own and does no Git or
//! cluster I/O: it reads and writes KV buckets and asks the owning services over the bus.
//!
//! ```text
//! CLI --gRPC--> applications / projects / clusters / repositories --KV--> applications, ...
//!                                  \--bus--> sync requests, refreshes, render/live questions
//! Git host --POST /api/webhook--> webhook --gf.webhook--> git watcher
//! ```

mod app_index;
mod applications;
mod apply;
mod appsets;
mod audit;
pub mod auth;
mod clusters;
mod config;
mod diff;
mod error;
mod oidc;
mod projects;
mod repositories;
mod rest;
mod sessions;
mod store;
pub mod webhook;

use std::net::SocketAddr;

use gitfleet_bus::Bus;
use gitfleet_proto::v1::account_service_server::AccountServiceServer;
use gitfleet_proto::v1::application_service_server::ApplicationServiceServer;
use gitfleet_proto::v1::application_set_service_server::ApplicationSetServiceServer;
use gitfleet_proto::v1::apply_service_server::ApplyServiceServer;
use gitfleet_proto::v1::cluster_service_server::ClusterServiceServer;
use gitfleet_proto::v1::project_service_server::ProjectServiceServer;
use gitfleet_proto::v1::project_token_service_server::ProjectTokenServiceServer;
use gitfleet_proto::v1::repository_service_server::RepositoryServiceServer;
use gitfleet_proto::v1::session_service_server::SessionServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;

pub use applications::{codes, parse_application};
pub use config::Config;
pub use diff::AppDiff;
pub use error::{Error, Result};

/// The gateway's sockets, bound before serving so callers (tests, `gitfleet up`) learn
/// the real ports when they asked for port 0.
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound listener has an address")
    }
}

pub async fn bind(config: &Config) -> Result<Listeners> {
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr).await.map_err(|source| Error::Io {
            what: format!("binding the {what} listener on {addr}"),
            source,
        })
    };
    Ok(Listeners {
        grpc: bind(config.grpc_addr, "grpc").await?,
        http: bind(config.http_addr, "webhook").await?,
    })
}

/// Binds the configured addresses and serves until `shutdown`.
pub async fn run(config: Config, bus: Bus, shutdown: CancellationToken) -> Result<()> {
    let listeners = bind(&config).await?;
    serve(config, listeners, bus, shutdown).await
}

/// The REST routes, method and Argo CD's path, as the router is built from them.
pub fn rest_route_table() -> Vec<(&'static str, &'static str)> {
    rest::routes().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// The largest REST request body taken; larger ones are answered 413.
pub const REST_MAX_BODY_BYTES: usize = rest::MAX_BODY_BYTES;

/// Serves on already-bound listeners until `shutdown`.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    bus: Bus,
    shutdown: CancellationToken,
) -> Result<()> {
    // `app diff` honours jqPathExpressions: the helper evaluates them.
    gitfleet_jq::install();
    let grpc_addr = listeners.grpc_addr();
    let http_addr = listeners.http_addr();
    let auth = auth::Auth::start(&bus, config.disable_auth, shutdown.clone()).await?;
    let projects = std::sync::Arc::new(
        projects::Projects::new(&bus, &config.control_plane_namespace, auth.clone()).await?,
    );
    let apps = std::sync::Arc::new(
        applications::Applications::new(
            bus.clone(),
            config.clone(),
            projects.clone(),
            auth.clone(),
            shutdown.clone(),
        )
        .await?,
    );
    let apply = apply::Apply::new(&bus, apps.clone(), projects.clone(), auth.clone()).await?;
    let clusters = std::sync::Arc::new(clusters::Clusters::new(&bus, auth.clone()).await?);
    let repos = std::sync::Arc::new(repositories::Repositories::new(&bus, auth.clone()).await?);
    let sessions = std::sync::Arc::new(sessions::Sessions::new(auth.clone()));
    let appsets = std::sync::Arc::new(appsets::AppSets::new(&bus, auth.clone()).await?);

    // Every service passes the interceptor: it reads and verifies the caller's token.
    let check = auth.interceptor();
    let mut grpc_routes = tonic::service::Routes::builder();
    grpc_routes
        .add_service(InterceptedService::new(
            ApplicationServiceServer::from_arc(apps.clone()),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            ApplyServiceServer::new(apply),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            ApplicationSetServiceServer::from_arc(appsets.clone()),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            ClusterServiceServer::from_arc(clusters.clone()),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            ProjectServiceServer::from_arc(projects.clone()),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            ProjectTokenServiceServer::from_arc(projects.clone()),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            RepositoryServiceServer::from_arc(repos.clone()),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            SessionServiceServer::from_arc(sessions.clone()),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            AccountServiceServer::from_arc(sessions.clone()),
            check.clone(),
        ));
    // gRPC (HTTP/2) and Argo CD's REST paths (HTTP/1.1 or 2) on one port, as Argo CD
    // serves them.
    let rest = rest::Rest {
        check: std::sync::Arc::new(check),
        apps,
        projects,
        clusters,
        repos,
        sessions,
    };
    let front = grpc_routes
        .routes()
        .into_axum_router()
        .merge(rest::router(rest))
        .layer(axum::middleware::from_fn(rest::connect_info));
    // Without TCP_NODELAY a large answer's last segment waits for the client's delayed
    // ACK: 40 ms added to every `app list` page (BENCHMARKS.md).
    let grpc = axum::serve(
        axum::serve::ListenerExt::tap_io(listeners.grpc, |tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        front.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let http = axum::serve(
        listeners.http,
        webhook::router(
            bus.clone(),
            config.webhook_secrets.clone(),
            config.webhook_max_payload_bytes,
        ),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tracing::info!(grpc = %grpc_addr, http = %http_addr, "api gateway serving");

    let (grpc, http) = tokio::join!(grpc, http);
    grpc.map_err(|source| Error::Io {
        what: "serving gRPC and REST".to_string(),
        source,
    })?;
    http.map_err(|source| Error::Io {
        what: "serving webhooks".to_string(),
        source,
    })?;
    tracing::info!("api gateway stopped");
    Ok(())
}
