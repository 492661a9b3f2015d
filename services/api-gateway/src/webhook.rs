//! Git host webhooks over HTTP: `POST /api/webhook` with a push from GitHub, GitLab,
//! Bitbucket (Cloud and Server), Gogs/Gitea or Azure DevOps becomes `RefreshRequest`s for
//! the git watcher, one per URL the payload gives the repository. Each host is told by its
//! event header and checked the way Argo CD checks it, when its secret is configured:
//! GitHub's and Bitbucket Server's HMAC signature, GitLab's token, Bitbucket Cloud's hook
//! UUID, Gogs' and Gitea's HMAC, Azure DevOps' basic auth. A body over the size limit is
//! refused before it is read whole. Answers at once; the work happens downstream.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gitfleet_bus::Bus;
use gitfleet_messages::RefreshRequest;
use gitfleet_model::Redacted;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// GitHub's signature header: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The secrets of each Git host's webhooks, as Argo CD keeps them in `argocd-secret`
/// (`webhook.github.secret`, `webhook.gitlab.secret`, `webhook.bitbucket.uuid`,
/// `webhook.bitbucketserver.secret`, `webhook.gogs.secret`,
/// `webhook.azuredevops.username`/`password`). A host without one is not authenticated.
#[derive(Debug, Clone, Default)]
pub struct WebhookSecrets {
    pub github: Option<Redacted<String>>,
    pub gitlab: Option<Redacted<String>>,
    pub bitbucket_uuid: Option<Redacted<String>>,
    pub bitbucket_server: Option<Redacted<String>>,
    /// Gogs and Gitea.
    pub gogs: Option<Redacted<String>>,
    pub azure_devops_username: Option<String>,
    pub azure_devops_password: Option<Redacted<String>>,
}

/// Argo CD's default `webhook.maxPayloadSizeMB`.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 50 << 20;

struct Hook {
    bus: Bus,
    secrets: WebhookSecrets,
}

pub fn router(bus: Bus, secrets: WebhookSecrets, max_payload_bytes: usize) -> Router {
    Router::new()
        .route("/api/webhook", post(receive))
        .layer(DefaultBodyLimit::max(max_payload_bytes))
        .with_state(Arc::new(Hook { bus, secrets }))
}

/// The Git hosts, told apart by their event headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    GitHub,
    GitLab,
    BitbucketCloud,
    BitbucketServer,
    Gogs,
    AzureDevOps,
}

impl Host {
    fn of(headers: &HeaderMap) -> Host {
        let has = |name: &str| headers.contains_key(name);
        if has("x-gitlab-event") {
            Host::GitLab
        } else if has("x-gitea-event") || has("x-gogs-event") {
            Host::Gogs
        } else if has("x-event-key") && has("x-hook-uuid") {
            Host::BitbucketCloud
        } else if has("x-event-key") {
            Host::BitbucketServer
        } else if has("x-vss-activityid") {
            Host::AzureDevOps
        } else {
            // GitHub, and anything sending its payload without its header.
            Host::GitHub
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the delivery proves it comes from the host (always, with no secret set);
/// else what is wrong, for the 401.
fn authenticate(
    host: Host,
    secrets: &WebhookSecrets,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), &'static str> {
    let ok = |good: bool, why: &'static str| if good { Ok(()) } else { Err(why) };
    match host {
        Host::GitHub => match &secrets.github {
            None => Ok(()),
            Some(secret) => ok(
                header(headers, SIGNATURE_HEADER)
                    .is_some_and(|s| verify(secret.expose().as_bytes(), body, s)),
                "invalid or missing X-Hub-Signature-256",
            ),
        },
        Host::BitbucketServer => match &secrets.bitbucket_server {
            None => Ok(()),
            Some(secret) => ok(
                header(headers, "x-hub-signature")
                    .is_some_and(|s| verify(secret.expose().as_bytes(), body, s)),
                "invalid or missing X-Hub-Signature",
            ),
        },
        Host::GitLab => match &secrets.gitlab {
            None => Ok(()),
            Some(secret) => ok(
                header(headers, "x-gitlab-token")
                    .is_some_and(|t| constant_eq(t.as_bytes(), secret.expose().as_bytes())),
                "invalid or missing X-Gitlab-Token",
            ),
        },
        Host::BitbucketCloud => match &secrets.bitbucket_uuid {
            None => Ok(()),
            Some(uuid) => ok(
                header(headers, "x-hook-uuid")
                    .is_some_and(|t| constant_eq(t.as_bytes(), uuid.expose().as_bytes())),
                "invalid X-Hook-UUID",
            ),
        },
        Host::Gogs => match &secrets.gogs {
            None => Ok(()),
            Some(secret) => {
                let signature = header(headers, "x-gitea-signature")
                    .or_else(|| header(headers, "x-gogs-signature"));
                // Gogs and Gitea send the HMAC's hex without a `sha256=` prefix.
                ok(
                    signature.is_some_and(|s| {
                        verify(secret.expose().as_bytes(), body, &format!("sha256={s}"))
                    }),
                    "invalid or missing X-Gitea-Signature / X-Gogs-Signature",
                )
            }
        },
        Host::AzureDevOps => match &secrets.azure_devops_password {
            None => Ok(()),
            Some(password) => {
                use base64::Engine as _;
                let user = secrets.azure_devops_username.as_deref().unwrap_or_default();
                let expected = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()));
                ok(
                    header(headers, "authorization")
                        .and_then(|a| a.strip_prefix("Basic "))
                        .is_some_and(|a| constant_eq(a.as_bytes(), expected.as_bytes())),
                    "invalid or missing basic authentication",
                )
            }
        },
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The URLs a push payload gives its repository, in the host's own shape.
fn repository_urls(host: Host, payload: &Value) -> Vec<String> {
    let at = |pointer: &str| {
        payload
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut urls: Vec<String> = match host {
        Host::GitHub | Host::Gogs => [
            "/repository/clone_url",
            "/repository/html_url",
            "/repository/ssh_url",
        ]
        .iter()
        .filter_map(|p| at(p))
        .collect(),
        Host::GitLab => [
            "/project/git_http_url",
            "/project/web_url",
            "/project/git_ssh_url",
        ]
        .iter()
        .filter_map(|p| at(p))
        .collect(),
        Host::BitbucketCloud => {
            let mut urls: Vec<String> = at("/repository/links/html/href").into_iter().collect();
            if let Some(full_name) = at("/repository/full_name") {
                urls.push(format!("https://bitbucket.org/{full_name}"));
                urls.push(format!("git@bitbucket.org:{full_name}.git"));
            }
            urls
        }
        Host::BitbucketServer => payload
            .pointer("/repository/links/clone")
            .and_then(Value::as_array)
            .map(|links| {
                links
                    .iter()
                    .filter_map(|l| l.get("href").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Host::AzureDevOps => [
            "/resource/repository/remoteUrl",
            "/resource/repository/sshUrl",
        ]
        .iter()
        .filter_map(|p| at(p))
        .collect(),
    };
    let mut seen = Vec::new();
    urls.retain(|u| {
        !u.is_empty() && !seen.contains(u) && {
            seen.push(u.clone());
            true
        }
    });
    urls
}

async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> Response {
    let host = Host::of(&headers);
    if let Err(why) = authenticate(host, &hook.secrets, &headers, &body) {
        tracing::warn!(?host, "webhook rejected: {why}");
        return (StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response();
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("webhook payload is not valid json: {e}\n"),
            )
                .into_response();
        }
    };
    let urls = repository_urls(host, &payload);
    if urls.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            format!("webhook payload ({host:?}) names no repository URL\n"),
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
    tracing::info!(?host, repos = ?urls, "webhook refresh published");
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
    use serde_json::json;

    #[test]
    fn each_host_is_told_by_its_headers_and_gives_its_urls() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            Host::of(&m)
        };
        assert_eq!(h(&[("x-github-event", "push")]), Host::GitHub);
        assert_eq!(h(&[("x-gitlab-event", "Push Hook")]), Host::GitLab);
        assert_eq!(
            h(&[("x-event-key", "repo:push"), ("x-hook-uuid", "u")]),
            Host::BitbucketCloud
        );
        assert_eq!(
            h(&[("x-event-key", "repo:refs_changed")]),
            Host::BitbucketServer
        );
        assert_eq!(h(&[("x-gitea-event", "push")]), Host::Gogs);
        assert_eq!(h(&[("x-vss-activityid", "1")]), Host::AzureDevOps);
        assert_eq!(
            repository_urls(
                Host::GitLab,
                &json!({"project": {"git_http_url": "https://gl/a.git", "web_url": "https://gl/a"}})
            ),
            ["https://gl/a.git", "https://gl/a"]
        );
        assert_eq!(
            repository_urls(
                Host::BitbucketCloud,
                &json!({"repository": {"full_name": "o/r", "links": {"html": {"href": "https://bitbucket.org/o/r"}}}})
            ),
            ["https://bitbucket.org/o/r", "git@bitbucket.org:o/r.git"]
        );
        assert_eq!(
            repository_urls(
                Host::BitbucketServer,
                &json!({"repository": {"links": {"clone": [{"href": "https://bb/scm/p/r.git"}]}}})
            ),
            ["https://bb/scm/p/r.git"]
        );
        assert_eq!(
            repository_urls(
                Host::AzureDevOps,
                &json!({"resource": {"repository": {"remoteUrl": "https://dev.azure.com/o/p/_git/r"}}})
            ),
            ["https://dev.azure.com/o/p/_git/r"]
        );
    }

    #[test]
    fn each_host_is_checked_its_own_way() {
        let secrets = WebhookSecrets {
            github: Some("gh".to_string().into()),
            gitlab: Some("gl".to_string().into()),
            bitbucket_uuid: Some("uuid-1".to_string().into()),
            bitbucket_server: Some("bbs".to_string().into()),
            gogs: Some("gg".to_string().into()),
            azure_devops_username: Some("u".into()),
            azure_devops_password: Some("p".to_string().into()),
        };
        let body = b"{}";
        let check = |host, pairs: &[(&'static str, String)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            authenticate(host, &secrets, &m, body).is_ok()
        };
        assert!(check(
            Host::GitHub,
            &[(SIGNATURE_HEADER, sign(b"gh", body))]
        ));
        assert!(!check(
            Host::GitHub,
            &[(SIGNATURE_HEADER, sign(b"x", body))]
        ));
        assert!(check(Host::GitLab, &[("x-gitlab-token", "gl".into())]));
        assert!(!check(Host::GitLab, &[("x-gitlab-token", "nope".into())]));
        assert!(check(
            Host::BitbucketCloud,
            &[("x-hook-uuid", "uuid-1".into())]
        ));
        assert!(!check(Host::BitbucketCloud, &[]));
        assert!(check(
            Host::BitbucketServer,
            &[("x-hub-signature", sign(b"bbs", body))]
        ));
        let gitea = sign(b"gg", body).trim_start_matches("sha256=").to_owned();
        assert!(check(Host::Gogs, &[("x-gitea-signature", gitea.clone())]));
        assert!(check(Host::Gogs, &[("x-gogs-signature", gitea)]));
        assert!(!check(Host::Gogs, &[("x-gitea-signature", "00".into())]));
        use base64::Engine as _;
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:p")
        );
        assert!(check(Host::AzureDevOps, &[("authorization", basic)]));
        assert!(!check(
            Host::AzureDevOps,
            &[("authorization", "Basic dTp4".into())]
        ));
        // Without a secret, a host is not authenticated.
        assert!(
            authenticate(
                Host::GitLab,
                &WebhookSecrets::default(),
                &HeaderMap::new(),
                body
            )
            .is_ok()
        );
    }

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
