//! Git host webhooks over HTTP: `POST /api/webhook` with a GitHub push payload becomes a
//! `RefreshRequest` for the git watcher. Answers at once; the work happens downstream.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gitfleet_bus::Bus;
use gitfleet_messages::RefreshRequest;
use gitfleet_model::Redacted;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// GitHub's signature header: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

struct Hook {
    bus: Bus,
    secret: Option<Redacted<String>>,
}

pub fn router(bus: Bus, secret: Option<Redacted<String>>) -> Router {
    Router::new()
        .route("/api/webhook", post(receive))
        .with_state(Arc::new(Hook { bus, secret }))
}

#[derive(Deserialize)]
struct Push {
    repository: Option<PushRepository>,
}

#[derive(Deserialize)]
struct PushRepository {
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    ssh_url: Option<String>,
}

async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(secret) = &hook.secret {
        let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        if !signature.is_some_and(|s| verify(secret.expose().as_bytes(), &body, s)) {
            tracing::warn!(present = signature.is_some(), "webhook signature rejected");
            return (
                StatusCode::UNAUTHORIZED,
                "invalid or missing X-Hub-Signature-256\n",
            )
                .into_response();
        }
    }
    let push: Push = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("webhook payload is not valid json: {e}\n"),
            )
                .into_response();
        }
    };
    let urls = push.repository.map_or_else(Vec::new, |r| {
        let mut urls = Vec::new();
        for url in [r.clone_url, r.html_url, r.ssh_url].into_iter().flatten() {
            if !url.is_empty() && !urls.contains(&url) {
                urls.push(url);
            }
        }
        urls
    });
    if urls.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "webhook payload has no repository.clone_url or repository.html_url\n",
        )
            .into_response();
    }
    let subject = hook.bus.topology.webhook_subject();
    for url in &urls {
        let request = RefreshRequest {
            repo: Some(url.clone()),
            app: None,
        };
        let body = match serde_json::to_vec(&request) {
            Ok(b) => b,
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        };
        if let Err(e) = hook.bus.client.publish(subject.clone(), body.into()).await {
            tracing::warn!(error = %e, "publishing a webhook refresh failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "bus unavailable\n").into_response();
        }
    }
    if let Err(e) = hook.bus.client.flush().await {
        tracing::warn!(error = %e, "flushing webhook refreshes failed");
        return (StatusCode::SERVICE_UNAVAILABLE, "bus unavailable\n").into_response();
    }
    tracing::info!(repos = ?urls, "webhook refresh published");
    (StatusCode::OK, "ok\n").into_response()
}

/// Checks `sha256=<hex>` against the HMAC of `body`, in constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// `sha256=<hex>` for `body`: what a Git host sends, for tests and tools.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let sig = sign(b"s3cret", b"{\"a\":1}");
        assert!(verify(b"s3cret", b"{\"a\":1}", &sig));
        assert!(!verify(b"s3cret", b"{\"a\":2}", &sig));
        assert!(!verify(b"other", b"{\"a\":1}", &sig));
        assert!(!verify(
            b"s3cret",
            b"{\"a\":1}",
            sig.trim_start_matches("sha256=")
        ));
        assert!(!verify(b"s3cret", b"{\"a\":1}", "sha256=zz"));
    }
}
