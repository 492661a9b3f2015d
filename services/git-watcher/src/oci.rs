//! Helm charts in OCI registries (`repoURL: oci://host/path` or `host/path`, `chart:
//! name`), through the OCI distribution API as `helm pull oci://` does: versions are the
//! repository's tags (`+` spelled `_`), the chart is the manifest's layer of Helm's chart
//! media type, checked against its digest. Registries' token auth (a `Bearer` challenge
//! answered at its realm, with the repository's credentials if any) and basic auth both
//! work. Loopback registries are spoken to over plain HTTP, as Docker treats them.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, LINK, WWW_AUTHENTICATE};
use serde::Deserialize;

use crate::credentials::RepoCredentials;
use crate::helm_repo::{
    Constraint, HelmRepoError, HelmRepos, MAX_ARCHIVE_BYTES, check_digest, newest_match,
    read_response, send,
};

/// Helm's media type for the chart archive layer.
const CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Largest manifest or tag page read.
const MAX_DOCUMENT_BYTES: usize = 4 << 20;
/// Tag pages followed at most.
const MAX_TAG_PAGES: usize = 100;

/// Whether `repo` names an OCI registry rather than a Helm repository over HTTP.
pub fn is_oci(repo: &str) -> bool {
    repo.starts_with("oci://") || !repo.contains("://")
}

/// `oci://host/path` → `host/path`.
pub fn without_scheme(repo: &str) -> &str {
    repo.strip_prefix("oci://").unwrap_or(repo)
}

/// Where one chart lives in a registry.
struct ChartRepository {
    host: String,
    base: String,
    /// The repository name in the registry (`path/chart`).
    name: String,
}

impl ChartRepository {
    fn of(repo: &str, chart: &str) -> Result<ChartRepository, HelmRepoError> {
        let rest = without_scheme(repo).trim_end_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || chart.is_empty() || chart.contains("..") {
            return Err(HelmRepoError::Invalid {
                repo: repo.to_owned(),
                message: format!("not an OCI chart reference: chart {chart:?}"),
            });
        }
        let hostname = host
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(h, _)| h);
        let loopback = hostname == "localhost"
            || hostname == "[::1]"
            || hostname
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        let scheme = if loopback { "http" } else { "https" };
        let name = if path.is_empty() {
            chart.to_owned()
        } else {
            format!("{path}/{chart}")
        };
        Ok(ChartRepository {
            host: host.to_owned(),
            base: format!("{scheme}://{host}"),
            name,
        })
    }

    fn key(&self) -> String {
        format!("{}/{}", self.host, self.name)
    }
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
}

impl HelmRepos {
    /// The newest tag of `chart` in the registry `repo` that `constraint` allows.
    pub async fn resolve_oci(
        &self,
        repo: &str,
        chart: &str,
        constraint: &str,
        credentials: Option<&RepoCredentials>,
    ) -> Result<String, HelmRepoError> {
        let wanted = Constraint::parse(constraint)?;
        let target = ChartRepository::of(repo, chart)?;
        let tags = self.oci_tags(repo, &target, credentials).await?;
        if tags.is_empty() {
            return Err(HelmRepoError::ChartNotFound {
                repo: repo.to_owned(),
                chart: chart.to_owned(),
            });
        }
        let versions: Vec<String> = tags.iter().map(|t| t.replace('_', "+")).collect();
        newest_match(versions.iter().map(String::as_str), &wanted).map_err(|newest| {
            HelmRepoError::NoVersion {
                repo: repo.to_owned(),
                chart: chart.to_owned(),
                constraint: constraint.to_owned(),
                newest,
            }
        })
    }

    /// The chart archive of `chart` at `version` from the registry `repo`.
    pub async fn archive_oci(
        &self,
        repo: &str,
        chart: &str,
        version: &str,
        credentials: Option<&RepoCredentials>,
    ) -> Result<Arc<Vec<u8>>, HelmRepoError> {
        if let Some(archive) = self.cached_archive(repo, chart, version) {
            return Ok(archive);
        }
        let target = ChartRepository::of(repo, chart)?;
        let tag = version.replace('+', "_");
        let manifest = self
            .oci_get(
                repo,
                &target,
                &format!("manifests/{tag}"),
                Some(MANIFEST),
                credentials,
                MAX_DOCUMENT_BYTES,
            )
            .await
            .map_err(|err| match err {
                HelmRepoError::Invalid { message, .. } if message.contains("404") => {
                    HelmRepoError::NoVersion {
                        repo: repo.to_owned(),
                        chart: chart.to_owned(),
                        constraint: version.to_owned(),
                        newest: "see the registry's tags".to_owned(),
                    }
                }
                other => other,
            })?;
        let manifest: Manifest =
            serde_json::from_slice(&manifest).map_err(|err| HelmRepoError::Invalid {
                repo: repo.to_owned(),
                message: format!("the manifest of {}:{tag}: {err}", target.name),
            })?;
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.media_type == CHART_LAYER)
            .ok_or_else(|| HelmRepoError::Invalid {
                repo: repo.to_owned(),
                message: format!(
                    "{}:{tag} is not a Helm chart (no {CHART_LAYER} layer)",
                    target.name
                ),
            })?;
        let expected = layer
            .digest
            .strip_prefix("sha256:")
            .filter(|d| d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| HelmRepoError::Invalid {
                repo: repo.to_owned(),
                message: format!(
                    "{}:{tag}: unsupported layer digest {:?}",
                    target.name, layer.digest
                ),
            })?;
        let archive = self
            .oci_get(
                repo,
                &target,
                &format!("blobs/{}", layer.digest),
                None,
                credentials,
                MAX_ARCHIVE_BYTES,
            )
            .await?;
        let what = format!("{}:{tag}", target.name);
        check_digest(repo, &what, &archive, expected, "the manifest")?;
        let archive = Arc::new(archive);
        self.keep_archive(repo, chart, version, archive.clone());
        Ok(archive)
    }

    async fn oci_tags(
        &self,
        repo: &str,
        target: &ChartRepository,
        credentials: Option<&RepoCredentials>,
    ) -> Result<Arc<Vec<String>>, HelmRepoError> {
        let key = target.key();
        if let Some(tags) = self.tags.fresh(&key, self.index_ttl) {
            return Ok(tags);
        }
        let epoch = self.tags.epoch();
        let mut tags = Vec::new();
        let mut page = "tags/list".to_owned();
        for _ in 0..MAX_TAG_PAGES {
            let (body, next) = match self
                .oci_get_with_link(repo, target, &page, None, credentials, MAX_DOCUMENT_BYTES)
                .await
            {
                Ok(answer) => answer,
                // An unknown repository: the registry's way of saying no such chart.
                Err(HelmRepoError::Invalid { message, .. }) if message.contains("404") => {
                    (br#"{"tags": []}"#.to_vec(), None)
                }
                Err(err) => return Err(err),
            };
            let list: TagList =
                serde_json::from_slice(&body).map_err(|err| HelmRepoError::Invalid {
                    repo: repo.to_owned(),
                    message: format!("the tags of {}: {err}", target.name),
                })?;
            tags.extend(list.tags.unwrap_or_default());
            match next {
                Some(next) => page = next,
                None => break,
            }
        }
        Ok(self.tags.keep(epoch, key, tags))
    }

    async fn oci_get(
        &self,
        repo: &str,
        target: &ChartRepository,
        path: &str,
        accept: Option<&str>,
        credentials: Option<&RepoCredentials>,
        limit: usize,
    ) -> Result<Vec<u8>, HelmRepoError> {
        self.oci_get_with_link(repo, target, path, accept, credentials, limit)
            .await
            .map(|(body, _)| body)
    }

    /// GETs `/v2/<name>/<path>`, answering an auth challenge once; returns the body and
    /// the next page (`Link: <...>; rel="next"`), relative to `/v2/<name>/`.
    async fn oci_get_with_link(
        &self,
        repo: &str,
        target: &ChartRepository,
        path: &str,
        accept: Option<&str>,
        credentials: Option<&RepoCredentials>,
        limit: usize,
    ) -> Result<(Vec<u8>, Option<String>), HelmRepoError> {
        let url = format!("{}/v2/{}/{path}", target.base, target.name);
        let key = target.key();
        let request = |auth: Option<String>| {
            let mut r = self.client().get(&url);
            if let Some(accept) = accept {
                r = r.header(ACCEPT, accept);
            }
            if let Some(auth) = auth {
                r = r.header(AUTHORIZATION, auth);
            }
            r
        };
        let token = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let mut response = send(repo, &url, request(token.map(|t| format!("Bearer {t}")))).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let auth = self.answer(repo, &challenge, credentials).await?;
            if let Some(token) = auth.strip_prefix("Bearer ") {
                self.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, token.to_owned());
            }
            response = send(repo, &url, request(Some(auth))).await?;
        }
        let next = response
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_page)
            .and_then(|link| {
                link.strip_prefix(&format!("/v2/{}/", target.name))
                    .map(str::to_owned)
            });
        let body = read_response(repo, &url, response, limit).await?;
        Ok((body, next))
    }

    /// The `Authorization` value answering a `WWW-Authenticate` challenge.
    async fn answer(
        &self,
        repo: &str,
        challenge: &str,
        credentials: Option<&RepoCredentials>,
    ) -> Result<String, HelmRepoError> {
        use base64::Engine as _;
        let basic = |c: &RepoCredentials| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    c.username(),
                    c.password()
                ))
            )
        };
        let refused = || HelmRepoError::Invalid {
            repo: repo.to_owned(),
            message: "the registry wants credentials (HTTP 401 Unauthorized)".to_owned(),
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return credentials.map(basic).ok_or_else(refused);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(refused());
        }
        let params = challenge_params(params);
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(refused)?;
        let query: Vec<(&str, &str)> = params
            .iter()
            .filter(|(k, _)| k == "service" || k == "scope")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut request = self.client().get(&realm).query(&query);
        if let Some(c) = credentials {
            request = request.header(AUTHORIZATION, basic(c));
        }
        let response = send(repo, &realm, request).await?;
        let body = read_response(repo, &realm, response, MAX_DOCUMENT_BYTES).await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|err| HelmRepoError::Invalid {
                repo: repo.to_owned(),
                message: format!("the registry's token answer: {err}"),
            })?;
        let token = if answer.token.is_empty() {
            answer.access_token
        } else {
            answer.token
        };
        if token.is_empty() {
            return Err(refused());
        }
        Ok(format!("Bearer {token}"))
    }
}

/// `realm="https://auth",service="registry",scope="repository:x:pull"` as pairs.
fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.push((key, value.to_owned()));
        rest = next.trim_start_matches(',').trim();
    }
    params
}

/// The target of a `Link` header's `rel="next"` entry.
fn next_page(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (target, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
            .map(|t| {
                t.split_once("://")
                    .map_or(t, |(_, rest)| rest.find('/').map_or(rest, |i| &rest[i..]))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_the_registry_and_the_chart() {
        let r = ChartRepository::of("oci://registry.example.com/charts/", "web").unwrap();
        assert_eq!(
            (r.base.as_str(), r.name.as_str()),
            ("https://registry.example.com", "charts/web")
        );
        let r = ChartRepository::of("127.0.0.1:5000", "web").unwrap();
        assert_eq!(
            (r.base.as_str(), r.name.as_str()),
            ("http://127.0.0.1:5000", "web")
        );
        assert!(ChartRepository::of("oci://", "web").is_err());
        assert!(
            is_oci("oci://r/x")
                && is_oci("r.example.com/x")
                && !is_oci("https://charts.example.com")
        );
    }

    #[test]
    fn challenges_and_links_parse() {
        let p = challenge_params(
            r#"realm="http://h/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            p,
            [
                ("realm".to_owned(), "http://h/token".to_owned()),
                ("service".to_owned(), "reg".to_owned()),
                ("scope".to_owned(), "repository:a/b:pull,push".to_owned()),
            ]
        );
        assert_eq!(
            next_page(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(
            next_page(r#"<https://h/v2/a/tags/list?last=x>; rel="next""#),
            Some("/v2/a/tags/list?last=x")
        );
        assert_eq!(next_page(r#"</v2/a>; rel="prev""#), None);
    }
}
