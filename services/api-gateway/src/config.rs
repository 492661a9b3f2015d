//! What the gateway is told at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use crate::webhook::WebhookSecrets;

#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC for the CLI and other clients; port 0 picks a free port (see [`crate::bind`]).
    pub grpc_addr: SocketAddr,
    /// Plain HTTP for Git host webhooks.
    pub http_addr: SocketAddr,
    /// Each Git host's webhook secret; a host without one is not authenticated.
    pub webhook_secrets: WebhookSecrets,
    /// Larger webhook bodies are refused (413).
    pub webhook_max_payload_bytes: usize,
    /// How long `app sync` and `app delete --cascade` wait for the operation to finish.
    pub operation_timeout: Duration,
    /// How long a request to another service (render, live state) may take.
    pub request_timeout: Duration,
    /// How long `app refresh` waits for a fresher status before answering with the
    /// current one.
    pub refresh_wait: Duration,
    /// The namespace Applications live in (Argo CD's `argocd`), for tracking ids: the
    /// same as the diff workers'.
    pub control_plane_namespace: String,
    /// Argo CD's `server.disable.auth`: every caller acts as admin. For tests and local
    /// experiments only.
    pub disable_auth: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            webhook_secrets: WebhookSecrets::default(),
            webhook_max_payload_bytes: crate::webhook::DEFAULT_MAX_PAYLOAD_BYTES,
            operation_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            refresh_wait: Duration::from_secs(5),
            control_plane_namespace: "argocd".to_string(),
            disable_auth: false,
        }
    }
}
