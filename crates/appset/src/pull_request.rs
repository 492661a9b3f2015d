//! The pull request generator, pure: what to ask each SCM provider's API (GitHub,
//! GitLab, Gitea, Bitbucket Server, Bitbucket Cloud, Azure DevOps, as Argo CD's
//! `applicationset/services/pull_request` asks them), how to read its answers page by
//! page, Argo CD's filters, and the parameters each pull request gives. The controller
//! does the HTTP and resolves the Secrets the generator names; nothing here sees a
//! token.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// Argo CD's default `requeueAfterSeconds` of a pull request generator: 30 minutes.
pub const DEFAULT_REQUEUE_AFTER_SECONDS: u64 = 1800;

/// Which API a generator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
    BitbucketServer,
    BitbucketCloud,
    AzureDevOps,
}

impl Provider {
    const ALL: [Provider; 6] = [
        Provider::GitHub,
        Provider::GitLab,
        Provider::Gitea,
        Provider::BitbucketServer,
        Provider::BitbucketCloud,
        Provider::AzureDevOps,
    ];

    /// The provider's key in the generator (`pullRequest.github`).
    pub fn key(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
            Provider::BitbucketServer => "bitbucketServer",
            Provider::BitbucketCloud => "bitbucket",
            Provider::AzureDevOps => "azuredevops",
        }
    }
}

/// A value in a Secret (`secretName`, `key`), as `tokenRef` and `passwordRef` name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    pub secret_name: String,
    pub key: String,
}

/// How the API is called: anonymously, with a token, or with a user and password.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Auth {
    Anonymous,
    Token(SecretRef),
    Basic {
        username: String,
        password: SecretRef,
    },
}

/// One API listing: what the controller fetches and keeps (by value: two sets asking
/// the same share it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PullRequestQuery {
    pub provider: Provider,
    /// The API's base URL, defaults filled in.
    pub api: String,
    /// Owner (GitHub, Gitea, Bitbucket Cloud workspace), project (GitLab's id or path,
    /// Bitbucket Server's key, Azure DevOps') and repository, as the provider needs them.
    pub owner: String,
    pub project: String,
    pub repo: String,
    pub organization: String,
    /// Every label a pull request must carry (GitHub, GitLab, Gitea, Azure DevOps).
    pub labels: Vec<String>,
    /// GitLab's `pullRequestState` (`opened`, `closed`, `merged`, `locked`; empty: all).
    pub state: String,
    pub auth: Auth,
    /// Skip TLS verification (GitLab, Gitea, Bitbucket Server).
    pub insecure: bool,
}

/// A pull request as every provider's answer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: i64,
    pub title: String,
    pub branch: String,
    pub target_branch: String,
    pub head_sha: String,
    pub author: String,
    pub labels: Vec<String>,
}

/// Where the next page of a listing is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Page(u32),
    Offset(u64),
    Url(String),
}

/// One filter of `filters`: each condition set must hold; any filter may match.
#[derive(Debug, Clone)]
pub struct Filter {
    branch: Option<regex::Regex>,
    target_branch: Option<regex::Regex>,
    title: Option<regex::Regex>,
}

/// A pull request generator's configuration, read and checked.
#[derive(Debug, Clone)]
pub struct PullRequestGenerator {
    pub query: PullRequestQuery,
    pub filters: Vec<Filter>,
    pub requeue_after_seconds: u64,
    pub continue_on_repo_not_found: bool,
}

/// A repository's URL in `provider`'s API at `api`: GitHub's, Gitea's and Bitbucket
/// Cloud's `owner/repo`, Bitbucket Server's project and repository, GitLab's project (id
/// or path, as `repo`). Azure DevOps' needs an organization too and is built where used.
pub(crate) fn repository_api(provider: Provider, api: &str, owner: &str, repo: &str) -> String {
    let (o, r) = (enc(owner), enc(repo));
    match provider {
        Provider::GitHub => format!("{api}/repos/{o}/{r}"),
        Provider::GitLab => format!("{api}/api/v4/projects/{r}"),
        Provider::Gitea => format!("{api}/api/v1/repos/{o}/{r}"),
        Provider::BitbucketServer => format!("{api}/rest/api/1.0/projects/{o}/repos/{r}"),
        Provider::BitbucketCloud => format!("{api}/repositories/{o}/{r}"),
        Provider::AzureDevOps => format!("{api}/{o}/_apis/git/repositories/{r}"),
    }
}

/// GitHub's API at `api` as go-github's enterprise client takes it (`<api>/api/v3`);
/// github.com's without one.
pub(crate) fn github_api(api: &str) -> String {
    let base = api.trim_end_matches('/');
    if base.is_empty() {
        "https://api.github.com".to_owned()
    } else if base.ends_with("/api/v3") {
        base.to_owned()
    } else {
        format!("{base}/api/v3")
    }
}

pub(crate) fn str_field(config: &Value, field: &str, at: &str) -> Result<String, String> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{at}.{field}: expected a string, got {other}")),
    }
}

pub(crate) fn required(config: &Value, field: &str, at: &str) -> Result<String, String> {
    let v = str_field(config, field, at)?;
    if v.is_empty() {
        return Err(format!("{at}.{field}: required"));
    }
    Ok(v)
}

pub(crate) fn secret_ref(config: &Value, at: &str) -> Result<SecretRef, String> {
    Ok(SecretRef {
        secret_name: required(config, "secretName", at)?,
        key: required(config, "key", at)?,
    })
}

pub(crate) fn labels(config: &Value, at: &str) -> Result<Vec<String>, String> {
    match config.get("labels") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{at}.labels[{i}]: expected a string, got {v}"))
            })
            .collect(),
        Some(other) => Err(format!(
            "{at}.labels: expected a list of strings, got {other}"
        )),
    }
}

pub(crate) fn regex_field(
    config: &Value,
    field: &str,
    at: &str,
) -> Result<Option<regex::Regex>, String> {
    let pattern = str_field(config, field, at)?;
    if pattern.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&pattern)
        .map(Some)
        .map_err(|e| format!("{at}.{field}: not a regular expression: {e}"))
}

/// `tokenRef` (GitHub, GitLab, Gitea, Azure DevOps), or Bitbucket's `bearerToken.tokenRef`
/// and `basicAuth` (a bearer token wins, as Argo CD's).
pub(crate) fn auth(provider: Provider, config: &Value, at: &str) -> Result<Auth, String> {
    let bitbucket = matches!(
        provider,
        Provider::BitbucketServer | Provider::BitbucketCloud
    );
    if !bitbucket {
        return match config.get("tokenRef") {
            None | Some(Value::Null) => Ok(Auth::Anonymous),
            Some(r) => Ok(Auth::Token(secret_ref(r, &format!("{at}.tokenRef"))?)),
        };
    }
    if let Some(bearer) = config.get("bearerToken").filter(|v| !v.is_null()) {
        let r = bearer
            .get("tokenRef")
            .ok_or_else(|| format!("{at}.bearerToken.tokenRef: required"))?;
        return Ok(Auth::Token(secret_ref(
            r,
            &format!("{at}.bearerToken.tokenRef"),
        )?));
    }
    if let Some(basic) = config.get("basicAuth").filter(|v| !v.is_null()) {
        let at = format!("{at}.basicAuth");
        let r = basic
            .get("passwordRef")
            .ok_or_else(|| format!("{at}.passwordRef: required"))?;
        return Ok(Auth::Basic {
            username: required(basic, "username", &at)?,
            password: secret_ref(r, &format!("{at}.passwordRef"))?,
        });
    }
    Ok(Auth::Anonymous)
}

impl PullRequestGenerator {
    /// Reads `pullRequest` (`at` names it in errors): exactly one provider, its required
    /// fields, the filters' regular expressions.
    pub fn parse(config: &Value, at: &str) -> Result<Self, String> {
        let present: Vec<Provider> = Provider::ALL
            .into_iter()
            .filter(|p| config.get(p.key()).is_some_and(|v| !v.is_null()))
            .collect();
        let provider = match present.as_slice() {
            [one] => *one,
            [] => {
                let keys: Vec<&str> = Provider::ALL.iter().map(|p| p.key()).collect();
                return Err(format!(
                    "{at}: no provider (expected one of {})",
                    keys.join(", ")
                ));
            }
            many => {
                let keys: Vec<&str> = many.iter().map(|p| p.key()).collect();
                return Err(format!(
                    "{at}: one provider per generator, found {}",
                    keys.join(" and ")
                ));
            }
        };
        let pat = format!("{at}.{}", provider.key());
        let p = &config[provider.key()];
        let api = str_field(p, "api", &pat)?;
        let mut query = PullRequestQuery {
            provider,
            api: String::new(),
            owner: String::new(),
            project: String::new(),
            repo: String::new(),
            organization: String::new(),
            labels: Vec::new(),
            state: String::new(),
            auth: auth(provider, p, &pat)?,
            insecure: p.get("insecure").and_then(Value::as_bool).unwrap_or(false),
        };
        match provider {
            Provider::GitHub => {
                query.owner = required(p, "owner", &pat)?;
                query.repo = required(p, "repo", &pat)?;
                query.labels = labels(p, &pat)?;
                query.api = github_api(&api);
            }
            Provider::GitLab => {
                query.project = required(p, "project", &pat)?;
                query.labels = labels(p, &pat)?;
                query.state = str_field(p, "pullRequestState", &pat)?;
                if !["", "opened", "closed", "merged", "locked"].contains(&query.state.as_str()) {
                    return Err(format!(
                        "{pat}.pullRequestState: {:?} is not one of opened, closed, merged, locked",
                        query.state
                    ));
                }
                query.api = if api.is_empty() {
                    "https://gitlab.com".to_owned()
                } else {
                    api.trim_end_matches('/').to_owned()
                };
            }
            Provider::Gitea => {
                query.owner = required(p, "owner", &pat)?;
                query.repo = required(p, "repo", &pat)?;
                query.labels = labels(p, &pat)?;
                query.api = required(p, "api", &pat)?.trim_end_matches('/').to_owned();
            }
            Provider::BitbucketServer => {
                query.project = required(p, "project", &pat)?;
                query.repo = required(p, "repo", &pat)?;
                query.api = required(p, "api", &pat)?.trim_end_matches('/').to_owned();
            }
            Provider::BitbucketCloud => {
                query.owner = required(p, "owner", &pat)?;
                query.repo = required(p, "repo", &pat)?;
                query.api = if api.is_empty() {
                    "https://api.bitbucket.org/2.0".to_owned()
                } else {
                    api.trim_end_matches('/').to_owned()
                };
            }
            Provider::AzureDevOps => {
                query.organization = required(p, "organization", &pat)?;
                query.project = required(p, "project", &pat)?;
                query.repo = required(p, "repo", &pat)?;
                query.labels = labels(p, &pat)?;
                query.api = if api.is_empty() {
                    "https://dev.azure.com".to_owned()
                } else {
                    api.trim_end_matches('/').to_owned()
                };
            }
        }
        if !(query.api.starts_with("https://") || query.api.starts_with("http://")) {
            return Err(format!("{pat}.api: {:?} is not an http(s) URL", query.api));
        }
        let filters = match config.get("filters") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let at = format!("{at}.filters[{i}]");
                    Ok(Filter {
                        branch: regex_field(f, "branchMatch", &at)?,
                        target_branch: regex_field(f, "targetBranchMatch", &at)?,
                        title: regex_field(f, "titleMatch", &at)?,
                    })
                })
                .collect::<Result<_, String>>()?,
            Some(other) => return Err(format!("{at}.filters: expected a list, got {other}")),
        };
        let requeue_after_seconds = match config.get("requeueAfterSeconds") {
            None | Some(Value::Null) => DEFAULT_REQUEUE_AFTER_SECONDS,
            Some(v) => v.as_u64().ok_or_else(|| {
                format!("{at}.requeueAfterSeconds: expected a whole number of seconds, got {v}")
            })?,
        };
        Ok(PullRequestGenerator {
            query,
            filters,
            requeue_after_seconds,
            continue_on_repo_not_found: config
                .get("continueOnRepoNotFoundError")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// The pull requests `filters` let through (all of them without filters).
    pub fn filter<'a>(&self, pulls: &'a [PullRequest]) -> Vec<&'a PullRequest> {
        pulls
            .iter()
            .filter(|pr| {
                self.filters.is_empty()
                    || self.filters.iter().any(|f| {
                        f.branch.as_ref().is_none_or(|r| r.is_match(&pr.branch))
                            && f.target_branch
                                .as_ref()
                                .is_none_or(|r| r.is_match(&pr.target_branch))
                            && f.title.as_ref().is_none_or(|r| r.is_match(&pr.title))
                    })
            })
            .collect()
    }
}

pub(crate) fn enc(segment: &str) -> String {
    // Path segments: everything but unreserved characters escaped (GitLab's project
    // paths carry `/`, which must arrive as `%2F`).
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Page sizes: the providers' maxima Argo CD's clients ask for.
const PER_PAGE: u32 = 100;
const GITEA_PER_PAGE: u32 = 50;

impl PullRequestQuery {
    /// The first page of the listing.
    pub fn first(&self) -> Cursor {
        match self.provider {
            Provider::BitbucketServer => Cursor::Offset(0),
            _ => Cursor::Page(1),
        }
    }

    /// The URL of the page at `cursor`.
    pub fn url(&self, cursor: &Cursor) -> String {
        let api = &self.api;
        let page = match cursor {
            Cursor::Url(url) => return url.clone(),
            Cursor::Page(n) => *n as u64,
            Cursor::Offset(n) => *n,
        };
        let (owner, repo) = match self.provider {
            Provider::GitLab => ("", self.project.as_str()),
            Provider::BitbucketServer => (self.project.as_str(), self.repo.as_str()),
            _ => (self.owner.as_str(), self.repo.as_str()),
        };
        let base = repository_api(self.provider, api, owner, repo);
        match self.provider {
            Provider::GitHub => {
                format!("{base}/pulls?state=open&per_page={PER_PAGE}&page={page}")
            }
            Provider::GitLab => {
                let mut url = format!("{base}/merge_requests?per_page={PER_PAGE}&page={page}");
                if !self.labels.is_empty() {
                    url.push_str(&format!("&labels={}", enc(&self.labels.join(","))));
                }
                if !self.state.is_empty() {
                    url.push_str(&format!("&state={}", enc(&self.state)));
                }
                url
            }
            Provider::Gitea => {
                format!("{base}/pulls?state=open&limit={GITEA_PER_PAGE}&page={page}")
            }
            Provider::BitbucketServer => {
                format!("{base}/pull-requests?state=OPEN&limit={PER_PAGE}&start={page}")
            }
            Provider::BitbucketCloud => format!("{base}/pullrequests?pagelen=50&page={page}"),
            Provider::AzureDevOps => format!(
                "{api}/{}/{}/_apis/git/repositories/{}/pullrequests?searchCriteria.status=active&$top={PER_PAGE}&$skip={}&api-version=7.1",
                enc(&self.organization),
                enc(&self.project),
                enc(&self.repo),
                (page.saturating_sub(1)) * u64::from(PER_PAGE)
            ),
        }
    }

    /// The `Authorization` (or GitLab's `PRIVATE-TOKEN`) header for the secret the
    /// controller read: `(name, value)`.
    pub fn auth_header(&self, secret: &str) -> Option<(&'static str, String)> {
        auth_header(self.provider, &self.auth, secret)
    }

    /// Whether a webhook's repository URL (`https://host/owner/repo(.git)`, `ssh://`,
    /// scp-like `git@host:owner/repo.git`) is this listing's repository: its path, case
    /// folded, is the one the provider's API names (GitHub, Gitea, Bitbucket Cloud:
    /// `owner/repo`; GitLab: the project's path, never a numeric id; Bitbucket Server:
    /// `.../<project>/<repo>`; Azure DevOps: `org/project/_git/repo`). Hosts are not
    /// compared (an API's host is often not the repository's): a match only makes a set
    /// generate again.
    pub fn matches_repository(&self, url: &str) -> bool {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let path = match rest.split_once('/') {
            // scp-like: `git@host:owner/repo.git`.
            _ if !url.contains("://") => rest.split_once(':').map_or("", |(_, p)| p),
            Some((_, p)) => p,
            None => "",
        };
        let path = path
            .trim_matches('/')
            .trim_end_matches(".git")
            .to_ascii_lowercase();
        if path.is_empty() {
            return false;
        }
        let lower = |s: &str| s.to_ascii_lowercase();
        match self.provider {
            Provider::GitHub | Provider::Gitea | Provider::BitbucketCloud => {
                path == lower(&format!("{}/{}", self.owner, self.repo))
            }
            Provider::GitLab => {
                !self.project.bytes().all(|b| b.is_ascii_digit()) && path == lower(&self.project)
            }
            Provider::BitbucketServer => {
                format!("/{path}").ends_with(&lower(&format!("/{}/{}", self.project, self.repo)))
            }
            Provider::AzureDevOps => {
                path == lower(&format!(
                    "{}/{}/_git/{}",
                    self.organization, self.project, self.repo
                ))
            }
        }
    }

    /// The secret the call needs, if any.
    pub fn secret(&self) -> Option<&SecretRef> {
        match &self.auth {
            Auth::Anonymous => None,
            Auth::Token(r) => Some(r),
            Auth::Basic { password, .. } => Some(password),
        }
    }

    /// Reads one page (`body` answered for `cursor`): its pull requests (labels
    /// filtered where the provider's API does not) and where the next page is.
    pub fn read_page(
        &self,
        body: &[u8],
        cursor: &Cursor,
    ) -> Result<(Vec<PullRequest>, Option<Cursor>), String> {
        let doc: Value = serde_json::from_slice(body)
            .map_err(|e| format!("the {} API's answer is not JSON: {e}", self.provider.key()))?;
        let what = |field: &str| format!("the {} API's answer has no {field}", self.provider.key());
        let s = |v: &Value, ptr: &str| {
            v.pointer(ptr)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let list = |v: &Value| -> Result<Vec<Value>, String> {
            v.as_array()
                .cloned()
                .ok_or_else(|| what("list of pull requests"))
        };
        let next_page = |n: usize, per_page: u32| match cursor {
            Cursor::Page(p) if n >= per_page as usize => Some(Cursor::Page(p + 1)),
            _ => None,
        };
        let mut pulls = Vec::new();
        let next = match self.provider {
            Provider::GitHub | Provider::Gitea => {
                let items = list(&doc)?;
                for item in &items {
                    pulls.push(PullRequest {
                        number: item["number"].as_i64().ok_or_else(|| what("number"))?,
                        title: s(item, "/title"),
                        branch: s(item, "/head/ref"),
                        target_branch: s(item, "/base/ref"),
                        head_sha: s(item, "/head/sha"),
                        author: s(item, "/user/login"),
                        labels: item["labels"]
                            .as_array()
                            .map(|ls| ls.iter().map(|l| s(l, "/name")).collect())
                            .unwrap_or_default(),
                    });
                }
                let per_page = if self.provider == Provider::Gitea {
                    GITEA_PER_PAGE
                } else {
                    PER_PAGE
                };
                next_page(items.len(), per_page)
            }
            Provider::GitLab => {
                let items = list(&doc)?;
                for item in &items {
                    pulls.push(PullRequest {
                        number: item["iid"].as_i64().ok_or_else(|| what("iid"))?,
                        title: s(item, "/title"),
                        branch: s(item, "/source_branch"),
                        target_branch: s(item, "/target_branch"),
                        head_sha: s(item, "/sha"),
                        author: s(item, "/author/username"),
                        labels: item["labels"]
                            .as_array()
                            .map(|ls| {
                                ls.iter()
                                    .filter_map(|l| l.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    });
                }
                next_page(items.len(), PER_PAGE)
            }
            Provider::BitbucketServer => {
                let items = list(&doc["values"])?;
                for item in &items {
                    pulls.push(PullRequest {
                        number: item["id"].as_i64().ok_or_else(|| what("id"))?,
                        title: s(item, "/title"),
                        branch: s(item, "/fromRef/displayId"),
                        target_branch: s(item, "/toRef/displayId"),
                        head_sha: s(item, "/fromRef/latestCommit"),
                        author: s(item, "/author/user/name"),
                        labels: Vec::new(),
                    });
                }
                match (doc["isLastPage"].as_bool(), doc["nextPageStart"].as_u64()) {
                    (Some(false), Some(start)) => Some(Cursor::Offset(start)),
                    _ => None,
                }
            }
            Provider::BitbucketCloud => {
                let items = list(&doc["values"])?;
                for item in &items {
                    pulls.push(PullRequest {
                        number: item["id"].as_i64().ok_or_else(|| what("id"))?,
                        title: s(item, "/title"),
                        branch: s(item, "/source/branch/name"),
                        target_branch: s(item, "/destination/branch/name"),
                        head_sha: s(item, "/source/commit/hash"),
                        author: s(item, "/author/nickname"),
                        labels: Vec::new(),
                    });
                }
                doc["next"].as_str().map(|u| Cursor::Url(u.to_owned()))
            }
            Provider::AzureDevOps => {
                let items = list(&doc["value"])?;
                for item in &items {
                    let branch = |ptr: &str| {
                        let r = s(item, ptr);
                        r.strip_prefix("refs/heads/").unwrap_or(&r).to_owned()
                    };
                    pulls.push(PullRequest {
                        number: item["pullRequestId"]
                            .as_i64()
                            .ok_or_else(|| what("pullRequestId"))?,
                        title: s(item, "/title"),
                        branch: branch("/sourceRefName"),
                        target_branch: branch("/targetRefName"),
                        head_sha: s(item, "/lastMergeSourceCommit/commitId"),
                        author: s(item, "/createdBy/uniqueName"),
                        labels: item["labels"]
                            .as_array()
                            .map(|ls| ls.iter().map(|l| s(l, "/name")).collect())
                            .unwrap_or_default(),
                    });
                }
                next_page(items.len(), PER_PAGE)
            }
        };
        // Providers whose API does not filter by label: every listed label must be there.
        if self.provider != Provider::GitLab && !self.labels.is_empty() {
            pulls.retain(|pr| self.labels.iter().all(|l| pr.labels.contains(l)));
        }
        Ok((pulls, next))
    }
}

/// The `Authorization` (or GitLab's `PRIVATE-TOKEN`) header `provider` takes for `auth`
/// with the `secret` the controller read: `(name, value)`.
pub fn auth_header(
    provider: Provider,
    auth: &Auth,
    secret: &str,
) -> Option<(&'static str, String)> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    match (auth, provider) {
        (Auth::Anonymous, _) => None,
        (Auth::Token(_), Provider::GitLab) => Some(("PRIVATE-TOKEN", secret.to_owned())),
        (Auth::Token(_), Provider::GitHub | Provider::Gitea) => {
            Some(("Authorization", format!("token {secret}")))
        }
        // Azure DevOps takes a personal access token as the password of basic auth.
        (Auth::Token(_), Provider::AzureDevOps) => Some((
            "Authorization",
            format!("Basic {}", b64(format!(":{secret}"))),
        )),
        (Auth::Token(_), _) => Some(("Authorization", format!("Bearer {secret}"))),
        (Auth::Basic { username, .. }, _) => Some((
            "Authorization",
            format!("Basic {}", b64(format!("{username}:{secret}"))),
        )),
    }
}

/// Argo CD's `branch_slug` (gosimple/slug with `_` as `-`, at most 50 characters, cut at
/// the last `-` within them): lower case, anything but letters, digits and `-` as `-`,
/// dashes collapsed and trimmed. Non-ASCII letters become `-` (slug transliterates them;
/// branch names rarely have any).
pub fn branch_slug(branch: &str) -> String {
    const MAX: usize = 50;
    let mut slug = String::new();
    for c in branch.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    if slug.len() <= MAX {
        return slug.to_owned();
    }
    let bytes = slug.as_bytes();
    match (0..=MAX).rev().find(|&i| bytes[i] == b'-') {
        Some(i) => slug[..i].to_owned(),
        None => slug[..MAX].to_owned(),
    }
}

/// The parameters of one pull request, as Argo CD names them; `labels` only with Go
/// templates (Argo CD's rule).
pub fn params(pr: &PullRequest, go_template: bool) -> Map<String, Value> {
    let short = |n: usize| pr.head_sha.chars().take(n).collect::<String>();
    let mut p = Map::new();
    p.insert("number".into(), json!(pr.number.to_string()));
    p.insert("title".into(), json!(pr.title));
    p.insert("branch".into(), json!(pr.branch));
    p.insert("branch_slug".into(), json!(branch_slug(&pr.branch)));
    p.insert("target_branch".into(), json!(pr.target_branch));
    p.insert(
        "target_branch_slug".into(),
        json!(branch_slug(&pr.target_branch)),
    );
    p.insert("head_sha".into(), json!(pr.head_sha));
    p.insert("head_short_sha".into(), json!(short(8)));
    p.insert("head_short_sha_7".into(), json!(short(7)));
    p.insert("author".into(), json!(pr.author));
    if go_template {
        p.insert("labels".into(), json!(pr.labels));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_slugs_are_argo_cds() {
        // Argo CD's own test cases (applicationset/generators/pull_request_test.go).
        assert_eq!(branch_slug("branch1"), "branch1");
        assert_eq!(branch_slug("my_branch"), "my-branch");
        assert_eq!(
            branch_slug(
                "feat/areally+long_pull_request_name_to_test_argo_slugification_and_branch_name_shortening_feature"
            ),
            "feat-areally-long-pull-request-name-to-test-argo"
        );
        assert_eq!(
            branch_slug(
                "feat/anotherreally+long_pull_request_name_to_test_argo_slugification_and_branch_name_shortening_feature"
            ),
            "feat-anotherreally-long-pull-request-name-to-test"
        );
        assert_eq!(
            branch_slug("Feature/UPPER__case--x"),
            "feature-upper-case-x"
        );
        assert_eq!(branch_slug(&"a".repeat(70)), "a".repeat(50));
    }

    #[test]
    fn params_are_named_as_argo_cd_names_them() {
        let pr = PullRequest {
            number: 7,
            title: "feat: x".into(),
            branch: "my_branch".into(),
            target_branch: "main".into(),
            head_sha: "089d92cbf9ff857a39e6feccd32798ca700fb958".into(),
            author: "alice".into(),
            labels: vec!["preview".into()],
        };
        let p = params(&pr, false);
        assert_eq!(p["number"], "7");
        assert_eq!(p["branch_slug"], "my-branch");
        assert_eq!(p["head_short_sha"], "089d92cb");
        assert_eq!(p["head_short_sha_7"], "089d92c");
        assert!(!p.contains_key("labels"));
        assert_eq!(params(&pr, true)["labels"], json!(["preview"]));
        let short = PullRequest {
            head_sha: "abcd".into(),
            ..pr
        };
        assert_eq!(params(&short, false)["head_short_sha"], "abcd");
    }

    #[test]
    fn a_generator_names_what_is_wrong() {
        let err = |v: Value| {
            PullRequestGenerator::parse(&v, "spec.generators[0].pullRequest").unwrap_err()
        };
        assert_eq!(
            err(json!({"github": {"repo": "r"}})),
            "spec.generators[0].pullRequest.github.owner: required"
        );
        assert!(err(json!({})).contains("no provider"));
        assert!(
            err(json!({"github": {"owner": "o", "repo": "r"}, "gitea": {}}))
                .contains("one provider")
        );
        assert!(
            err(json!({"github": {"owner": "o", "repo": "r"}, "filters": [{"branchMatch": "("}]}))
                .starts_with("spec.generators[0].pullRequest.filters[0].branchMatch: not a regular expression")
        );
        assert!(
            err(json!({"gitlab": {"project": "1", "pullRequestState": "open"}}))
                .contains("pullRequestState")
        );
        assert!(
            err(json!({"github": {"owner": "o", "repo": "r", "tokenRef": {"secretName": "s"}}}))
                .ends_with("tokenRef.key: required")
        );
        assert!(
            err(json!({"gitea": {"owner": "o", "repo": "r", "api": "ftp://x"}}))
                .contains("not an http(s) URL")
        );
    }

    #[test]
    fn each_provider_is_asked_and_read_as_argo_cd_does() {
        let g = |v: Value| PullRequestGenerator::parse(&v, "g").unwrap();
        // GitHub Enterprise's API under /api/v3, labels filtered here.
        let gh = g(
            json!({"github": {"owner": "org", "repo": "r", "api": "https://ghe.example/", "labels": ["preview"],
            "tokenRef": {"secretName": "github-token", "key": "token"}}}),
        );
        assert_eq!(
            gh.query.url(&gh.query.first()),
            "https://ghe.example/api/v3/repos/org/r/pulls?state=open&per_page=100&page=1"
        );
        assert_eq!(
            gh.query.auth_header("t0k"),
            Some(("Authorization", "token t0k".to_owned()))
        );
        let body = json!([
            {"number": 1, "title": "a", "head": {"ref": "feat-a", "sha": "aaa"}, "base": {"ref": "main"},
             "user": {"login": "alice"}, "labels": [{"name": "preview"}]},
            {"number": 2, "title": "b", "head": {"ref": "feat-b", "sha": "bbb"}, "base": {"ref": "main"},
             "user": {"login": "bob"}, "labels": []},
        ]);
        let (pulls, next) = gh
            .query
            .read_page(body.to_string().as_bytes(), &Cursor::Page(1))
            .unwrap();
        assert_eq!(pulls.len(), 1);
        assert_eq!(
            (pulls[0].branch.as_str(), pulls[0].author.as_str()),
            ("feat-a", "alice")
        );
        assert_eq!(next, None, "a short page is the last");

        // GitLab: the project path escaped, labels and state asked of the API.
        let gl = g(
            json!({"gitlab": {"project": "group/app", "labels": ["a", "b"], "pullRequestState": "opened",
            "tokenRef": {"secretName": "s", "key": "k"}}}),
        );
        assert_eq!(
            gl.query.url(&Cursor::Page(2)),
            "https://gitlab.com/api/v4/projects/group%2Fapp/merge_requests?per_page=100&page=2&labels=a%2Cb&state=opened"
        );
        assert_eq!(
            gl.query.auth_header("x"),
            Some(("PRIVATE-TOKEN", "x".to_owned()))
        );
        let full: Vec<Value> = (0..100)
            .map(|i| json!({"iid": i, "title": "t", "source_branch": "s", "target_branch": "main", "sha": "c",
                "author": {"username": "u"}, "labels": ["a", "b"]}))
            .collect();
        let (pulls, next) = gl
            .query
            .read_page(Value::Array(full).to_string().as_bytes(), &Cursor::Page(2))
            .unwrap();
        assert_eq!(pulls.len(), 100);
        assert_eq!(next, Some(Cursor::Page(3)));

        // Bitbucket Server: offsets; basic auth.
        let bbs = g(
            json!({"bitbucketServer": {"project": "PRJ", "repo": "r", "api": "https://bb.example",
            "basicAuth": {"username": "u", "passwordRef": {"secretName": "s", "key": "p"}}}}),
        );
        assert_eq!(
            bbs.query.url(&bbs.query.first()),
            "https://bb.example/rest/api/1.0/projects/PRJ/repos/r/pull-requests?state=OPEN&limit=100&start=0"
        );
        assert_eq!(
            bbs.query.auth_header("pw"),
            Some(("Authorization", "Basic dTpwdw==".to_owned()))
        );
        let body = json!({"values": [{"id": 5, "title": "t", "fromRef": {"displayId": "f", "latestCommit": "c5"},
            "toRef": {"displayId": "main"}, "author": {"user": {"name": "u"}}}], "isLastPage": false, "nextPageStart": 25});
        let (pulls, next) = bbs
            .query
            .read_page(body.to_string().as_bytes(), &Cursor::Offset(0))
            .unwrap();
        assert_eq!(pulls[0].head_sha, "c5");
        assert_eq!(next, Some(Cursor::Offset(25)));

        // Bitbucket Cloud: the answer names the next page; a bearer token wins over basic.
        let bbc = g(json!({"bitbucket": {"owner": "ws", "repo": "r",
            "bearerToken": {"tokenRef": {"secretName": "s", "key": "t"}},
            "basicAuth": {"username": "u", "passwordRef": {"secretName": "s", "key": "p"}}}}));
        assert_eq!(
            bbc.query.auth_header("t"),
            Some(("Authorization", "Bearer t".to_owned()))
        );
        let body = json!({"values": [{"id": 9, "title": "t", "source": {"branch": {"name": "f"}, "commit": {"hash": "c9"}},
            "destination": {"branch": {"name": "main"}}, "author": {"nickname": "n"}}], "next": "https://api.bitbucket.org/2.0/x?page=2"});
        let (_, next) = bbc
            .query
            .read_page(body.to_string().as_bytes(), &Cursor::Page(1))
            .unwrap();
        assert_eq!(
            next,
            Some(Cursor::Url("https://api.bitbucket.org/2.0/x?page=2".into()))
        );

        // An answer of the wrong shape is an error naming the provider.
        let e = gh
            .query
            .read_page(br#"{"message": "Not Found"}"#, &Cursor::Page(1))
            .unwrap_err();
        assert!(e.contains("github"), "{e}");
    }

    #[test]
    fn a_webhook_names_the_listing_by_its_repository() {
        let q = |v: Value| PullRequestGenerator::parse(&v, "g").unwrap().query;
        let gh = q(json!({"github": {"owner": "MyOrg", "repo": "app"}}));
        assert!(gh.matches_repository("https://github.com/myorg/app"));
        assert!(gh.matches_repository("https://github.com/MyOrg/app.git"));
        assert!(gh.matches_repository("git@github.com:myorg/app.git"));
        assert!(!gh.matches_repository("https://github.com/myorg/app2"));
        assert!(!gh.matches_repository("https://github.com/other/myorg/app"));
        let gl = q(json!({"gitlab": {"project": "group/sub/app"}}));
        assert!(gl.matches_repository("https://gitlab.com/group/sub/app.git"));
        let by_id = q(json!({"gitlab": {"project": "1234"}}));
        assert!(!by_id.matches_repository("https://gitlab.com/1234"));
        let bbs = q(
            json!({"bitbucketServer": {"project": "PRJ", "repo": "app", "api": "https://bb.example"}}),
        );
        assert!(bbs.matches_repository("https://bb.example/scm/prj/app.git"));
        assert!(bbs.matches_repository("ssh://git@bb.example:7999/prj/app.git"));
        let az = q(json!({"azuredevops": {"organization": "o", "project": "p", "repo": "r"}}));
        assert!(az.matches_repository("https://dev.azure.com/o/p/_git/r"));
    }

    #[test]
    fn filters_any_of_all_of() {
        let g = PullRequestGenerator::parse(
            &json!({"gitea": {"owner": "o", "repo": "r", "api": "https://g.example"},
                "filters": [{"branchMatch": ".*-argocd$", "targetBranchMatch": "^main$"}, {"titleMatch": "^feat:"}]}),
            "g",
        )
        .unwrap();
        let pr = |branch: &str, target: &str, title: &str| PullRequest {
            number: 1,
            title: title.into(),
            branch: branch.into(),
            target_branch: target.into(),
            head_sha: "c".into(),
            author: "a".into(),
            labels: vec![],
        };
        let pulls = [
            pr("x-argocd", "main", "fix"),
            pr("x-argocd", "dev", "fix"),
            pr("other", "dev", "feat: y"),
            pr("other", "main", "fix"),
        ];
        let kept: Vec<usize> = g
            .filter(&pulls)
            .iter()
            .map(|p| pulls.iter().position(|q| q == *p).unwrap())
            .collect();
        assert_eq!(kept, [0, 2]);
    }
}
