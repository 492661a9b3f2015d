//! Helm chart repositories (HTTP, `index.yaml`): which version of a chart a
//! `targetRevision` names (Helm's constraint syntax: `1.2.3`, `^1.2`, `~1.2.0`,
//! `>=1.0 <2.0`, `1.2.x`, `a || b`, `1.0 - 1.4`), and the chart's archive, checked against
//! the index's digest. One index fetch per repository per refresh interval, shared by
//! every app on it; archives kept by version, since a published version does not change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitfleet_messages::{ErrorCode, ServiceError};
use semver::{Comparator, Version, VersionReq};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::credentials::RepoCredentials;

/// Largest `index.yaml` read (public indexes reach tens of MB).
const MAX_INDEX_BYTES: usize = 64 << 20;
/// Largest chart archive read.
pub(crate) const MAX_ARCHIVE_BYTES: usize = 20 << 20;
/// Archives kept in memory.
const MAX_ARCHIVES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelmRepoError {
    #[error("Helm repository {}: {message}", redact(repo))]
    Unreachable { repo: String, message: String },
    #[error("Helm repository {}: {message}", redact(repo))]
    Invalid { repo: String, message: String },
    #[error("chart {chart:?} not found in Helm repository {}", redact(repo))]
    ChartNotFound { repo: String, chart: String },
    #[error(
        "no version of chart {chart:?} in Helm repository {} matches {constraint:?} (newest: {newest})",
        redact(repo)
    )]
    NoVersion {
        repo: String,
        chart: String,
        constraint: String,
        newest: String,
    },
    #[error("chart version constraint {constraint:?}: {reason}")]
    BadConstraint { constraint: String, reason: String },
}

/// `repo` without any `user:password@` written into it, for messages.
pub fn redact(repo: &str) -> String {
    match repo.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => repo.to_owned(),
    }
}

impl From<HelmRepoError> for ServiceError {
    fn from(err: HelmRepoError) -> Self {
        let code = match &err {
            HelmRepoError::Unreachable { .. } => ErrorCode::Unavailable,
            HelmRepoError::Invalid { .. } | HelmRepoError::BadConstraint { .. } => {
                ErrorCode::Invalid
            }
            HelmRepoError::ChartNotFound { .. } | HelmRepoError::NoVersion { .. } => {
                ErrorCode::NotFound
            }
        };
        ServiceError::new(code, err.to_string())
    }
}

/// The parts of `index.yaml` read here.
#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    entries: HashMap<String, Vec<ChartVersion>>,
}

#[derive(Debug, Clone, Deserialize)]
struct ChartVersion {
    version: String,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    digest: String,
}

/// What was read, by key, and when: answers younger than the time to live are reused.
pub(crate) struct Timed<T> {
    map: Mutex<HashMap<String, (Instant, Arc<T>)>>,
    /// Bumped by every forget: a read that started before one (with credentials since
    /// replaced, say) answers its caller but is not kept.
    forgets: AtomicU64,
}

impl<T> Default for Timed<T> {
    fn default() -> Self {
        Timed {
            map: Mutex::new(HashMap::new()),
            forgets: AtomicU64::new(0),
        }
    }
}

impl<T> Timed<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<T>)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Taken before a read whose answer is then [`Timed::keep`]t.
    pub(crate) fn epoch(&self) -> u64 {
        self.forgets.load(Ordering::SeqCst)
    }

    /// The value kept for `key`, if read less than `ttl` ago.
    pub(crate) fn fresh(&self, key: &str, ttl: Duration) -> Option<Arc<T>> {
        self.map()
            .get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value`, read since `epoch`, unless something was forgotten meanwhile.
    pub(crate) fn keep(&self, epoch: u64, key: String, value: T) -> Arc<T> {
        let value = Arc::new(value);
        let mut map = self.map();
        if self.forgets.load(Ordering::SeqCst) == epoch {
            map.insert(key, (Instant::now(), value.clone()));
        }
        value
    }

    fn forget(&self, keep: impl Fn(&str) -> bool) {
        let mut map = self.map();
        self.forgets.fetch_add(1, Ordering::SeqCst);
        map.retain(|key, _| keep(key));
    }
}

/// Checks an archive against the sha256 (hex) its index or manifest (`source`) gives.
pub(crate) fn check_digest(
    repo: &str,
    what: &str,
    archive: &[u8],
    expected: &str,
    source: &str,
) -> Result<(), HelmRepoError> {
    let actual = hex(&Sha256::digest(archive));
    if actual.eq_ignore_ascii_case(expected) {
        return Ok(());
    }
    Err(HelmRepoError::Invalid {
        repo: repo.to_owned(),
        message: format!("{what}: the archive's sha256 is {actual}, {source} says {expected}"),
    })
}
/// Repository, chart, version.
type ArchiveKey = (String, String, String);

/// The Helm repositories this process reads, with their indexes and archives cached.
#[derive(Clone)]
pub struct HelmRepos {
    client: reqwest::Client,
    pub(crate) index_ttl: Duration,
    indexes: Arc<Timed<Index>>,
    /// OCI tags by repository name (`host/path/chart`).
    pub(crate) tags: Arc<Timed<Vec<String>>>,
    /// OCI bearer tokens by repository name.
    pub(crate) tokens: Arc<Mutex<HashMap<String, String>>>,
    archives: Arc<Mutex<HashMap<ArchiveKey, Arc<Vec<u8>>>>>,
}

impl HelmRepos {
    pub fn new(index_ttl: Duration, timeout: Duration) -> HelmRepos {
        HelmRepos {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client with default TLS settings builds"),
            index_ttl,
            indexes: Arc::default(),
            tags: Arc::default(),
            tokens: Arc::default(),
            archives: Arc::default(),
        }
    }

    /// Forgets the cached indexes and tag lists of every repository whose URL starts with
    /// `prefix` (lowercase; a credential template changed for them).
    pub fn forget_prefixed(&self, prefix: &str) {
        self.indexes
            .forget(|key| !key.to_lowercase().starts_with(prefix));
        let prefix = crate::oci::without_scheme(prefix);
        self.tags
            .forget(|name| !name.to_lowercase().starts_with(prefix));
    }

    /// Forgets the cached index of `repo`, so the next question fetches it (a refresh).
    pub fn forget(&self, repo: &str) {
        self.indexes.forget(|key| key != base(repo));
        let prefix = crate::oci::without_scheme(repo);
        self.tags.forget(|name| !name.starts_with(prefix));
    }

    /// An archive already downloaded.
    pub(crate) fn cached_archive(
        &self,
        repo: &str,
        chart: &str,
        version: &str,
    ) -> Option<Arc<Vec<u8>>> {
        let key = (base(repo).to_owned(), chart.to_owned(), version.to_owned());
        self.archives
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    pub(crate) fn keep_archive(
        &self,
        repo: &str,
        chart: &str,
        version: &str,
        archive: Arc<Vec<u8>>,
    ) {
        let key = (base(repo).to_owned(), chart.to_owned(), version.to_owned());
        let mut archives = self.archives.lock().unwrap_or_else(|e| e.into_inner());
        if archives.len() >= MAX_ARCHIVES {
            archives.clear();
        }
        archives.insert(key, archive);
    }

    /// The newest version of `chart` in `repo` that `constraint` allows.
    pub async fn resolve(
        &self,
        repo: &str,
        chart: &str,
        constraint: &str,
        credentials: Option<&RepoCredentials>,
    ) -> Result<String, HelmRepoError> {
        let wanted = Constraint::parse(constraint)?;
        let index = self.index(repo, credentials).await?;
        let versions = versions_of(&index, repo, chart)?;
        newest_match(versions.iter().map(|v| v.version.as_str()), &wanted).map_err(|newest| {
            HelmRepoError::NoVersion {
                repo: repo.to_owned(),
                chart: chart.to_owned(),
                constraint: constraint.to_owned(),
                newest,
            }
        })
    }

    /// The archive (`.tgz`) of `chart` at exactly `version`. The credentials go with it
    /// when the index points at the repository's own scheme, host and port, or anywhere
    /// with `pass_credentials` (Helm's rule, and its `--pass-credentials`).
    pub async fn archive(
        &self,
        repo: &str,
        chart: &str,
        version: &str,
        credentials: Option<&RepoCredentials>,
        pass_credentials: bool,
    ) -> Result<Arc<Vec<u8>>, HelmRepoError> {
        if let Some(archive) = self.cached_archive(repo, chart, version) {
            return Ok(archive);
        }
        let index = self.index(repo, credentials).await?;
        let entry = versions_of(&index, repo, chart)?
            .iter()
            .find(|v| v.version == version)
            .cloned()
            .ok_or_else(|| HelmRepoError::NoVersion {
                repo: repo.to_owned(),
                chart: chart.to_owned(),
                constraint: version.to_owned(),
                newest: "see the index".to_owned(),
            })?;
        let url = entry.urls.first().ok_or_else(|| HelmRepoError::Invalid {
            repo: repo.to_owned(),
            message: format!("chart {chart:?} {version} has no download URL in index.yaml"),
        })?;
        let url = if url.contains("://") {
            url.clone()
        } else {
            format!("{}/{}", base(repo), url.trim_start_matches('/'))
        };
        let credentials = credentials.filter(|_| pass_credentials || same_origin(repo, &url));
        let archive = self.get(repo, &url, credentials, MAX_ARCHIVE_BYTES).await?;
        if !entry.digest.is_empty() {
            let what = format!("chart {chart:?} {version}");
            check_digest(repo, &what, &archive, &entry.digest, "the index")?;
        }
        let archive = Arc::new(archive);
        self.keep_archive(repo, chart, version, archive.clone());
        Ok(archive)
    }

    async fn index(
        &self,
        repo: &str,
        credentials: Option<&RepoCredentials>,
    ) -> Result<Arc<Index>, HelmRepoError> {
        let key = base(repo).to_owned();
        if let Some(index) = self.indexes.fresh(&key, self.index_ttl) {
            return Ok(index);
        }
        let epoch = self.indexes.epoch();
        let body = self
            .get(
                repo,
                &format!("{key}/index.yaml"),
                credentials,
                MAX_INDEX_BYTES,
            )
            .await?;
        let index: Index =
            serde_yaml_ng::from_slice(&body).map_err(|err| HelmRepoError::Invalid {
                repo: repo.to_owned(),
                message: format!("index.yaml: {err}"),
            })?;
        Ok(self.indexes.keep(epoch, key, index))
    }

    /// GETs `url`, within `limit` bytes. Errors name the repository, never the credentials.
    async fn get(
        &self,
        repo: &str,
        url: &str,
        credentials: Option<&RepoCredentials>,
        limit: usize,
    ) -> Result<Vec<u8>, HelmRepoError> {
        let mut request = self.client.get(url);
        if let Some(c) = credentials {
            request = request.basic_auth(c.username(), Some(c.password()));
        }
        read_body(repo, url, request, limit).await
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// Whether `url` is on the scheme, host and port of the repository `repo`.
fn same_origin(repo: &str, url: &str) -> bool {
    match (reqwest::Url::parse(repo), reqwest::Url::parse(url)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// Sends `request` and reads the body within `limit` bytes.
pub(crate) async fn read_body(
    repo: &str,
    url: &str,
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Vec<u8>, HelmRepoError> {
    let response = send(repo, url, request).await?;
    read_response(repo, url, response, limit).await
}

/// Sends `request`; reqwest's errors lose the URL (it holds no credentials, which go in a
/// header, but may hold a query string).
pub(crate) async fn send(
    repo: &str,
    url: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, HelmRepoError> {
    request
        .send()
        .await
        .map_err(|err| HelmRepoError::Unreachable {
            repo: repo.to_owned(),
            message: format!("GET {}: {}", path_of(url), without_url(err)),
        })
}

/// The body of `response` within `limit` bytes; a status other than success is an error
/// naming the URL's last segment and the status.
pub(crate) async fn read_response(
    repo: &str,
    url: &str,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, HelmRepoError> {
    let unreachable = |message: String| HelmRepoError::Unreachable {
        repo: repo.to_owned(),
        message,
    };
    let status = response.status();
    if !status.is_success() {
        let message = format!("GET {}: HTTP {status}", path_of(url));
        return Err(if status.is_client_error() {
            HelmRepoError::Invalid {
                repo: repo.to_owned(),
                message,
            }
        } else {
            unreachable(message)
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| unreachable(format!("GET {}: {}", path_of(url), without_url(err))))?
    {
        if body.len() + chunk.len() > limit {
            return Err(HelmRepoError::Invalid {
                repo: repo.to_owned(),
                message: format!("GET {}: more than {limit} bytes", path_of(url)),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's message without the URL (it may carry a query string) but with its cause.
pub(crate) fn without_url(err: reqwest::Error) -> String {
    let err = err.without_url();
    match std::error::Error::source(&err) {
        Some(source) => format!("{err}: {source}"),
        None => err.to_string(),
    }
}

/// The last path segment of a URL, for messages.
pub(crate) fn path_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

fn base(repo: &str) -> &str {
    repo.trim_end_matches('/')
}

fn versions_of<'i>(
    index: &'i Index,
    repo: &str,
    chart: &str,
) -> Result<&'i [ChartVersion], HelmRepoError> {
    index
        .entries
        .get(chart)
        .map(Vec::as_slice)
        .ok_or_else(|| HelmRepoError::ChartNotFound {
            repo: repo.to_owned(),
            chart: chart.to_owned(),
        })
}

/// The newest of `versions` that `wanted` allows; else the newest of all (or `none`), for
/// the message.
pub fn newest_match<'v>(
    versions: impl Iterator<Item = &'v str>,
    wanted: &Constraint,
) -> Result<String, String> {
    let mut parsed: Vec<(Version, &str)> = versions
        .filter_map(|v| lenient_version(v).map(|p| (p, v)))
        .collect();
    parsed.sort_by(|a, b| b.0.cmp(&a.0));
    parsed
        .iter()
        .find(|(v, _)| wanted.matches(v))
        .map(|(_, text)| (*text).to_owned())
        .ok_or_else(|| {
            parsed
                .first()
                .map_or_else(|| "none".to_owned(), |(_, t)| (*t).to_owned())
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A version as Helm reads it: a leading `v` and missing minor or patch allowed.
fn lenient_version(text: &str) -> Option<Version> {
    let text = text.trim().trim_start_matches(['v', 'V']);
    if let Ok(v) = Version::parse(text) {
        return Some(v);
    }
    let (core, rest) = match text.find(['-', '+']) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut padded: Vec<&str> = parts;
    while padded.len() < 3 {
        padded.push("0");
    }
    Version::parse(&format!("{}{rest}", padded.join("."))).ok()
}

/// A Helm (Masterminds semver) constraint: alternatives (`||`) of comparators that must
/// all hold.
#[derive(Debug, Clone)]
pub struct Constraint {
    alternatives: Vec<(VersionReq, Vec<Version>)>,
}

impl Constraint {
    /// `""`, `HEAD` and `*` mean the newest stable version, as in Argo CD.
    pub fn parse(text: &str) -> Result<Constraint, HelmRepoError> {
        let bad = |reason: String| HelmRepoError::BadConstraint {
            constraint: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed == "HEAD" {
            return Ok(Constraint {
                alternatives: vec![(VersionReq::STAR, Vec::new())],
            });
        }
        let mut alternatives = Vec::new();
        for alternative in trimmed.split("||") {
            let mut tokens: Vec<String> = Vec::new();
            for token in alternative.replace(',', " ").split_whitespace() {
                // An operator written apart from its version (`>= 1.2`).
                match tokens.last_mut() {
                    Some(last) if is_operator(last) => last.push_str(token),
                    _ => tokens.push(token.to_owned()),
                }
            }
            let mut comparators = Vec::new();
            let mut excluded = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                if tokens.get(i + 1).map(String::as_str) == Some("-") {
                    let (Some(low), Some(high)) = (tokens.get(i), tokens.get(i + 2)) else {
                        return Err(bad("a range needs a version on each side of -".into()));
                    };
                    comparators.extend(comparator(&format!(">={low}")).map_err(bad)?);
                    comparators.extend(comparator(&format!("<={high}")).map_err(bad)?);
                    i += 3;
                    continue;
                }
                let token = &tokens[i];
                if let Some(version) = token.strip_prefix("!=") {
                    excluded.push(
                        lenient_version(version)
                            .ok_or_else(|| bad(format!("{version:?} is not a version")))?,
                    );
                } else {
                    comparators.extend(comparator(token).map_err(bad)?);
                }
                i += 1;
            }
            alternatives.push((VersionReq { comparators }, excluded));
        }
        Ok(Constraint { alternatives })
    }

    pub fn matches(&self, version: &Version) -> bool {
        self.alternatives
            .iter()
            .any(|(req, excluded)| req.matches(version) && !excluded.contains(version))
    }
}

fn is_operator(token: &str) -> bool {
    matches!(
        token,
        "=" | "!=" | ">" | "<" | ">=" | "<=" | "~" | "~>" | "^"
    )
}

/// One comparator in Rust's `semver` terms (`None`: any version): a bare version is exact
/// in Helm (`^` in Cargo), `~>` is `~`, `x` and `X` are wildcards, a leading `v` is dropped.
fn comparator(token: &str) -> Result<Option<Comparator>, String> {
    let split = token
        .find(|c: char| c.is_ascii_digit() || matches!(c, 'x' | 'X' | '*' | 'v' | 'V'))
        .unwrap_or(token.len());
    let (op, version) = token.split_at(split);
    let version = version
        .trim_start_matches(['v', 'V'])
        .replace(['x', 'X'], "*");
    let op = match op {
        "" | "=" => "=",
        "~>" => "~",
        other => other,
    };
    if version.is_empty() {
        return Err(format!("{token:?} has no version"));
    }
    if version == "*" {
        return Ok(None);
    }
    // `=1.2.*` reads in Cargo as `1.2.*`.
    let text = if version.contains('*') {
        version.clone()
    } else {
        format!("{op}{version}")
    };
    Comparator::parse(&text)
        .map(Some)
        .map_err(|err| format!("{token:?}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_with_the_repositorys_origin() {
        let repo = "https://charts.example.com/stable";
        assert!(same_origin(
            repo,
            "https://charts.example.com/stable/web-1.0.0.tgz"
        ));
        assert!(same_origin(
            repo,
            "https://CHARTS.example.com:443/other/web.tgz"
        ));
        assert!(!same_origin(repo, "https://cdn.example.com/web-1.0.0.tgz"));
        assert!(!same_origin(
            repo,
            "http://charts.example.com/web-1.0.0.tgz"
        ));
        assert!(!same_origin(
            repo,
            "https://charts.example.com:8443/web.tgz"
        ));
    }

    #[test]
    fn a_read_that_began_before_a_forget_is_not_kept() {
        let timed: Timed<u32> = Timed::default();
        let ttl = Duration::from_secs(60);
        let before = timed.epoch();
        // New credentials arrive while the read is on its way.
        timed.forget(|_| false);
        assert_eq!(*timed.keep(before, "r".into(), 1), 1);
        assert!(timed.fresh("r", ttl).is_none());
        let after = timed.epoch();
        timed.keep(after, "r".into(), 2);
        assert_eq!(timed.fresh("r", ttl).as_deref(), Some(&2));
    }

    fn newest<'a>(constraint: &str, versions: &[&'a str]) -> Option<&'a str> {
        let c = Constraint::parse(constraint).unwrap();
        let mut parsed: Vec<(Version, &str)> = versions
            .iter()
            .map(|v| (lenient_version(v).unwrap(), *v))
            .collect();
        parsed.sort_by(|a, b| b.0.cmp(&a.0));
        parsed
            .into_iter()
            .find(|(v, _)| c.matches(v))
            .map(|(_, s)| s)
    }

    const VERSIONS: &[&str] = &[
        "1.0.0",
        "1.2.0",
        "1.2.5",
        "1.3.0",
        "2.0.0",
        "2.1.0-rc.1",
        "v0.9",
    ];

    #[test]
    fn credentials_in_a_repository_url_never_reach_a_message() {
        assert_eq!(
            redact("https://u:s3cret@charts.example.com/x"),
            "https://charts.example.com/x"
        );
        assert_eq!(
            redact("https://charts.example.com"),
            "https://charts.example.com"
        );
        let err = HelmRepoError::ChartNotFound {
            repo: "https://u:s3cret@h/c".into(),
            chart: "web".into(),
        };
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn helm_constraints_pick_the_newest_match() {
        assert_eq!(newest("", VERSIONS), Some("2.0.0"), "stable only");
        assert_eq!(newest("*", VERSIONS), Some("2.0.0"));
        assert_eq!(newest("1.2.0", VERSIONS), Some("1.2.0"), "bare is exact");
        assert_eq!(newest("^1.2", VERSIONS), Some("1.3.0"));
        assert_eq!(newest("~1.2.0", VERSIONS), Some("1.2.5"));
        assert_eq!(newest("1.2.x", VERSIONS), Some("1.2.5"));
        assert_eq!(newest(">= 1.0, < 1.3", VERSIONS), Some("1.2.5"));
        assert_eq!(newest(">=1.0 <1.3 !=1.2.5", VERSIONS), Some("1.2.0"));
        assert_eq!(newest("1.0.0 - 1.2.0", VERSIONS), Some("1.2.0"));
        assert_eq!(newest("<1.0.0 || ^2", VERSIONS), Some("2.0.0"));
        assert_eq!(newest("<1.0.0", VERSIONS), Some("v0.9"));
        assert_eq!(newest(">=2.1.0-rc.0", VERSIONS), Some("2.1.0-rc.1"));
        assert_eq!(newest("3.x", VERSIONS), None);
        assert!(Constraint::parse(">=").is_err());
        assert!(Constraint::parse("banana").is_err());
    }
}
