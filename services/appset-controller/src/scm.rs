//! Pull request listings from SCM providers' APIs, for the pull request generator: the
//! calls `gitfleet_appset::pull_request` plans, page by page, with the token its Secret
//! holds. As in Argo CD, every generation asks the provider (a set's requeue interval,
//! `requeueAfterSeconds`, says how often); one generation asks once per listing.
//!
//! Secrets: `tokenRef` and `passwordRef` name a key of a Secret labelled
//! `app.kubernetes.io/part-of: argocd` (KV `secrets`) or of Argo CD's settings Secrets
//! (`argocd-secret`, `argocd-notifications-secret`, KV `settings`), both sealed; a token
//! never appears in a message, a log line or a status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gitfleet_appset::pull_request::{Auth, PullRequest, PullRequestQuery, SecretRef};
use gitfleet_appset::scm_provider::{Filter, Repository, RepositoryBranch, ScmQuery};
use gitfleet_bus::Bucket;
use gitfleet_messages::ServiceError;

use crate::controller::Shared;

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

/// One provider's API as a generation calls it: the client, the auth header, and errors
/// that name the provider and the URL without its query (never a credential: those go in
/// headers).
struct Api<'a> {
    client: &'a reqwest::Client,
    header: Option<(&'static str, String)>,
    provider: &'static str,
    calls: usize,
}

/// Calls one generation may make to one provider (pages, branches, path checks).
const MAX_CALLS: usize = 2000;

impl<'a> Api<'a> {
    async fn new(
        shared: &'a Shared,
        provider: &'static str,
        secret_ref: Option<&SecretRef>,
        insecure: bool,
        header: impl Fn(&str) -> Option<(&'static str, String)>,
    ) -> Result<Api<'a>, ServiceError> {
        let header = match secret_ref {
            None => None,
            Some(r) => header(&secret(shared, r).await?),
        };
        let listings = &shared.listings;
        Ok(Api {
            client: if insecure {
                &listings.insecure
            } else {
                &listings.client
            },
            header,
            provider,
            calls: 0,
        })
    }

    /// GETs `url`: its body, or `None` when the provider answers 404.
    async fn get(&mut self, url: &str) -> Result<Option<bytes::Bytes>, ServiceError> {
        let provider = self.provider;
        self.calls += 1;
        if self.calls > MAX_CALLS {
            return Err(ServiceError::unavailable(format!(
                "one generation would call the {provider} API more than {MAX_CALLS} times"
            )));
        }
        let shown = url.split('?').next().unwrap_or(url).to_owned();
        let mut request = self.client.get(url).header("Accept", "application/json");
        if let Some((name, value)) = &self.header {
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
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ServiceError::unavailable(format!(
                "the {provider} API answered {status} at {shown}"
            )));
        }
        response.bytes().await.map(Some).map_err(|e| {
            ServiceError::unavailable(format!(
                "reading the {provider} API's answer at {shown}: {e}"
            ))
        })
    }

    /// GETs `url`, which must exist.
    async fn get_found(&mut self, url: &str) -> Result<bytes::Bytes, ServiceError> {
        self.get(url).await?.ok_or_else(|| {
            let shown = url.split('?').next().unwrap_or(url);
            ServiceError::unavailable(format!("the {} API answered 404 at {shown}", self.provider))
        })
    }
}

fn unreadable(m: String, url: &str) -> ServiceError {
    let shown = url.split('?').next().unwrap_or(url);
    ServiceError::unavailable(format!("{m} (at {shown})"))
}

/// The pull requests `query` lists; `None` when the provider says the repository does
/// not exist. A provider that fails or answers an error is `Unavailable` (the set keeps
/// its apps and is generated again after the error retry).
pub(crate) async fn pull_requests(
    shared: &Shared,
    query: &PullRequestQuery,
) -> Result<Listing, ServiceError> {
    let mut api = Api::new(
        shared,
        query.provider.key(),
        query.secret(),
        query.insecure,
        |s| query.auth_header(s),
    )
    .await?;
    let mut pulls = Vec::new();
    let mut cursor = Some(query.first());
    while let Some(at) = cursor.take() {
        let url = query.url(&at);
        let Some(body) = api.get(&url).await? else {
            tracing::info!(provider = api.provider, "repository not found");
            return Ok(None);
        };
        let (page, next) = query
            .read_page(&body, &at)
            .map_err(|m| unreadable(m, &url))?;
        pulls.extend(page);
        cursor = next;
    }
    Ok(Some(Arc::new(pulls)))
}

/// What an SCM provider scan finds, as Argo CD's `ListRepos` finds it: the
/// organization's repositories, those of the repository-only filters (any of them), each
/// at its default branch or every branch, those of the branch and path filters (any of
/// them; paths asked of the API only for what the other conditions let through).
pub(crate) async fn repositories(
    shared: &Shared,
    query: &ScmQuery,
) -> Result<Arc<Vec<RepositoryBranch>>, ServiceError> {
    let secret_ref = match &query.auth {
        Auth::Anonymous => None,
        Auth::Token(r) => Some(r),
        Auth::Basic { password, .. } => Some(password),
    };
    let mut api = Api::new(
        shared,
        query.provider.key(),
        secret_ref,
        query.insecure,
        |s| query.auth_header(s),
    )
    .await?;
    let filters = query.filters();
    let (branch_filters, repo_filters): (Vec<&Filter>, Vec<&Filter>) =
        filters.iter().partition(|f| f.on_branches());
    let mut repos = Vec::new();
    let mut cursor = Some(query.first());
    while let Some(at) = cursor.take() {
        let url = query.repositories_url(&at);
        let body = api.get_found(&url).await?;
        let (page, next) = query
            .read_repositories(&body, &at)
            .map_err(|m| unreadable(m, &url))?;
        repos.extend(page);
        cursor = next;
    }
    if !repo_filters.is_empty() {
        repos.retain(|r| repo_filters.iter().any(|f| f.matches(r, None)));
    }
    let mut found = Vec::new();
    for repo in repos {
        let mut branches = Vec::new();
        if query.all_branches {
            let mut cursor = Some(query.first());
            while let Some(at) = cursor.take() {
                let url = query.branches_url(&repo, &at);
                let Some(body) = api.get(&url).await? else {
                    break;
                };
                let (page, next) = query
                    .read_branches(&body, &at)
                    .map_err(|m| unreadable(m, &url))?;
                branches.extend(page);
                cursor = next;
            }
        } else {
            // An empty repository has no default branch: nothing to generate for it.
            let url = match query.default_branch_url(&repo) {
                Some(url) => url,
                None if repo.default_branch.is_empty() => continue,
                None => query.branch_url(&repo, &repo.default_branch),
            };
            if let Some(body) = api.get(&url).await? {
                branches.push(query.read_branch(&body).map_err(|m| unreadable(m, &url))?);
            }
        }
        for (branch, sha) in branches {
            let mut keep = branch_filters.is_empty();
            for f in &branch_filters {
                if f.matches(&repo, Some(&branch))
                    && paths_hold(&mut api, query, &repo, &branch, f).await?
                {
                    keep = true;
                    break;
                }
            }
            if keep {
                found.push(RepositoryBranch {
                    repository: repo.clone(),
                    branch,
                    sha,
                });
            }
        }
    }
    Ok(Arc::new(found))
}

/// `pathsExist` and `pathsDoNotExist` of filter `f`, asked of the API.
async fn paths_hold(
    api: &mut Api<'_>,
    query: &ScmQuery,
    repo: &Repository,
    branch: &str,
    f: &Filter,
) -> Result<bool, ServiceError> {
    for (path, wanted) in f
        .paths_exist
        .iter()
        .map(|p| (p, true))
        .chain(f.paths_do_not_exist.iter().map(|p| (p, false)))
    {
        let mut exists = false;
        for url in query.path_urls(repo, branch, path) {
            if let Some(body) = api.get(&url).await? {
                // A folder's tree that lists nothing is no folder.
                exists = !matches!(
                    serde_json::from_slice::<serde_json::Value>(&body),
                    Ok(serde_json::Value::Array(items)) if items.is_empty()
                );
                if exists {
                    break;
                }
            }
        }
        if exists != wanted {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The value a `tokenRef`/`passwordRef` names: a key of one of Argo CD's settings
/// Secrets, or of a Secret labelled `app.kubernetes.io/part-of: argocd` (Argo CD's rule
/// for the Secrets its generators read), as `gitfleet apply` stores them.
async fn secret(shared: &Shared, r: &SecretRef) -> Result<String, ServiceError> {
    let name = r.secret_name.as_str();
    let bucket = if gitfleet_model::SETTINGS_SECRETS.contains(&name) {
        Bucket::Settings
    } else {
        Bucket::Secrets
    };
    let store = shared
        .bus
        .kv(bucket)
        .await
        .map_err(|e| ServiceError::unavailable(format!("opening the secrets: {e}")))?;
    let bytes = store
        .get(gitfleet_bus::subject_token(name))
        .await
        .map_err(|e| ServiceError::unavailable(format!("reading Secret {name:?}: {e}")))?
        .ok_or_else(|| {
            ServiceError::invalid(format!(
                "Secret {name:?} is not stored: apply it labelled {}: argocd",
                gitfleet_model::PART_OF_LABEL
            ))
        })?;
    let data: BTreeMap<String, String> = shared
        .bus
        .decode_document(bucket, name, &bytes)
        .map_err(|e| ServiceError::unavailable(format!("opening Secret {name:?}: {e}")))?;
    data.get(&r.key)
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| ServiceError::invalid(format!("Secret {name:?} has no key {:?}", r.key)))
}
