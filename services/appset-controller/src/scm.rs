//! Pull request listings from SCM providers' APIs, for the pull request generator: the
//! calls `gitfleet_appset::pull_request` plans, page by page, with the token its Secret
//! holds. As in Argo CD, every generation asks the provider (a set's requeue interval,
//! `requeueAfterSeconds`, says how often); one generation asks once per listing.
//!
//! Secrets: `tokenRef` and `passwordRef` may name a key of Argo CD's settings Secrets
//! (`argocd-secret`, `argocd-notifications-secret`), which gitfleet keeps sealed in KV
//! `settings`; a token never appears in a message, a log line or a status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gitfleet_appset::pull_request::{PullRequest, PullRequestQuery, SecretRef};
use gitfleet_bus::Bucket;
use gitfleet_messages::ServiceError;

use crate::controller::Shared;

/// Pages read at most per listing (10,000 pull requests at GitHub's page size).
const MAX_PAGES: usize = 100;

/// A listing: its pull requests, or `None` for a repository the provider does not have.
pub(crate) type Listing = Option<Arc<Vec<PullRequest>>>;

/// The controller's HTTP clients for providers' APIs.
pub(crate) struct Listings {
    client: reqwest::Client,
    /// For providers marked `insecure: true` (self-signed certificates).
    insecure: reqwest::Client,
}

impl Listings {
    pub(crate) fn new(timeout: Duration) -> Self {
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .timeout(timeout)
                .user_agent(concat!(
                    "gitfleet-applicationset/",
                    env!("CARGO_PKG_VERSION")
                ))
                .danger_accept_invalid_certs(insecure)
                .build()
                .unwrap_or_default()
        };
        Listings {
            client: build(false),
            insecure: build(true),
        }
    }
}

/// The pull requests `query` lists; `None` when the provider says the repository does
/// not exist. A provider that fails or answers an error is `Unavailable` (the set keeps
/// its apps and is generated again after the error retry).
pub(crate) async fn pull_requests(
    shared: &Shared,
    query: &PullRequestQuery,
) -> Result<Listing, ServiceError> {
    let listings = &shared.listings;
    let header = match query.secret() {
        None => None,
        Some(r) => query.auth_header(&secret(shared, r).await?),
    };
    let client = if query.insecure {
        &listings.insecure
    } else {
        &listings.client
    };
    let provider = query.provider.key();
    let mut pulls = Vec::new();
    let mut cursor = Some(query.first());
    let mut pages = 0;
    while let Some(at) = cursor.take() {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(ServiceError::unavailable(format!(
                "the {provider} API listed more than {MAX_PAGES} pages of pull requests"
            )));
        }
        let url = query.url(&at);
        // The URL names the API and repository, never a credential (those go in headers).
        let shown = url.split('?').next().unwrap_or(&url).to_owned();
        let mut request = client.get(&url).header("Accept", "application/json");
        if let Some((name, value)) = &header {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| {
            ServiceError::unavailable(format!(
                "asking the {provider} API at {shown}: {}",
                gitfleet_messages::error_chain(&e)
            ))
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            tracing::info!(provider, url = %shown, "repository not found");
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ServiceError::unavailable(format!(
                "the {provider} API answered {status} at {shown}"
            )));
        }
        let body = response.bytes().await.map_err(|e| {
            ServiceError::unavailable(format!(
                "reading the {provider} API's answer at {shown}: {e}"
            ))
        })?;
        let (page, next) = query
            .read_page(&body, &at)
            .map_err(|m| ServiceError::unavailable(format!("{m} (at {shown})")))?;
        pulls.extend(page);
        cursor = next;
    }
    Ok(Some(Arc::new(pulls)))
}

/// The value a `tokenRef`/`passwordRef` names, from the settings Secrets gitfleet keeps.
async fn secret(shared: &Shared, r: &SecretRef) -> Result<String, ServiceError> {
    let name = r.secret_name.as_str();
    if !gitfleet_model::SETTINGS_SECRETS.contains(&name) {
        return Err(ServiceError::invalid(format!(
            "Secret {name:?} is not one gitfleet keeps: the pull request generator reads its token from a key of {}",
            gitfleet_model::SETTINGS_SECRETS.join(" or ")
        )));
    }
    let store = shared
        .bus
        .kv(Bucket::Settings)
        .await
        .map_err(|e| ServiceError::unavailable(format!("opening the settings bucket: {e}")))?;
    let bytes = store
        .get(name)
        .await
        .map_err(|e| ServiceError::unavailable(format!("reading Secret {name:?}: {e}")))?
        .ok_or_else(|| ServiceError::invalid(format!("Secret {name:?} is not stored")))?;
    let data: BTreeMap<String, String> = shared
        .bus
        .decode_document(Bucket::Settings, name, &bytes)
        .map_err(|e| ServiceError::unavailable(format!("opening Secret {name:?}: {e}")))?;
    data.get(&r.key)
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| ServiceError::invalid(format!("Secret {name:?} has no key {:?}", r.key)))
}
