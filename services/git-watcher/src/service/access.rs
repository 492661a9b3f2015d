//! Mirrors and Helm repositories with the credentials of the `repositories` bucket
//! applied, else those of the longest matching credential template (`repo-creds`, as Argo
//! CD: a repository without credentials of its own takes the template whose URL is the
//! longest prefix of its own, case-insensitively): the one way the service gets at a
//! repository, so polls and requests fetch with the same credentials. A Git mirror gets the
//! username and password (used for http(s) URLs) and the `sshPrivateKey` with its
//! `insecure` flag (used for ssh URLs) of the same entry or template.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use gitfleet_model::{Repository, RepositoryType};

use crate::credentials::{GitCredentials, RepoCredentials};
use crate::error::Result;
use crate::helm_repo::{HelmRepoError, HelmRepos};
use crate::mirror::{Mirror, Mirrors};
use crate::url::RepoUrl;

#[derive(Clone)]
pub(crate) struct RepoAccess {
    mirrors: Mirrors,
    /// By normalized URL key (see [`RepoUrl::key`]), so any spelling of a repository finds
    /// its credentials.
    credentials: Arc<RwLock<HashMap<String, GitCredentials>>>,
    /// The URL of each `repositories` key: a deletion carries no value to read it from.
    urls_by_entry: Arc<RwLock<HashMap<String, String>>>,
    pub helm: HelmRepos,
    /// Credentials of Helm repositories and OCI registries (`type: helm` or `oci`
    /// entries), by [`helm_key`].
    helm_credentials: Arc<RwLock<HashMap<String, RepoCredentials>>>,
    /// Credential templates by `repo-creds` key: (URL prefix, lowercased; credentials).
    templates: Arc<RwLock<HashMap<String, (String, GitCredentials)>>>,
}

impl RepoAccess {
    pub fn new(mirrors: Mirrors, helm: HelmRepos) -> Self {
        RepoAccess {
            mirrors,
            credentials: Arc::default(),
            urls_by_entry: Arc::default(),
            helm,
            helm_credentials: Arc::default(),
            templates: Arc::default(),
        }
    }

    /// The credentials of the longest template whose URL prefixes `url`.
    fn template_for(&self, url: &str) -> Option<GitCredentials> {
        let url = url.to_lowercase();
        self.templates
            .read()
            .expect("templates lock poisoned")
            .values()
            .filter(|(prefix, _)| url.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, credentials)| credentials.clone())
    }

    /// The credentials a Git mirror fetches with: its entry's, else a template's.
    fn git_credentials(&self, mirror: &Mirror) -> Option<GitCredentials> {
        let own = self
            .credentials
            .read()
            .expect("credentials lock poisoned")
            .get(mirror.url().key())
            .cloned();
        own.or_else(|| self.template_for(mirror.url().as_str()))
    }

    /// Records (or, with `None`, drops) the credential template under `entry_key` and
    /// hands the open mirrors it concerns (old URL prefix or new) their credentials anew.
    /// Returns those mirrors' URLs, to be fetched again; the other repositories are not
    /// touched. Templates without credentials or URL are ignored.
    pub fn update_template(&self, entry_key: &str, template: Option<&Repository>) -> Vec<String> {
        let usable = template.and_then(|t| {
            let prefix = t.repo.trim().to_lowercase();
            let credentials = GitCredentials::of_repository(t)?;
            (!prefix.is_empty()).then_some((prefix, credentials))
        });
        let mut prefixes: Vec<String> = usable.iter().map(|(p, _)| p.clone()).collect();
        let old = {
            let mut templates = self.templates.write().expect("templates lock poisoned");
            match usable {
                Some(entry) => templates.insert(entry_key.to_owned(), entry),
                None => templates.remove(entry_key),
            }
        };
        prefixes.extend(old.map(|(prefix, _)| prefix));
        for prefix in &prefixes {
            self.helm.forget_prefixed(prefix);
        }
        self.mirrors
            .mirrors()
            .into_iter()
            .filter(|mirror| {
                let url = mirror.url().as_str().to_lowercase();
                prefixes.iter().any(|p| url.starts_with(p.as_str()))
            })
            .map(|mirror| {
                set_git_credentials(&mirror, self.git_credentials(&mirror));
                mirror.url().as_str().to_owned()
            })
            .collect()
    }

    /// The newest version of `chart` that `constraint` allows, from the Helm repository
    /// or OCI registry `repo` with its credentials.
    pub async fn resolve_chart(
        &self,
        repo: &str,
        chart: &str,
        constraint: &str,
    ) -> Result<String, HelmRepoError> {
        let credentials = self.helm_credentials(repo);
        if crate::oci::is_oci(repo) {
            self.helm
                .resolve_oci(repo, chart, constraint, credentials.as_ref())
                .await
        } else {
            self.helm
                .resolve(repo, chart, constraint, credentials.as_ref())
                .await
        }
    }

    /// The archive of `chart` at `version` from the Helm repository or OCI registry
    /// `repo`, with its credentials (to an archive on another host only when
    /// `pass_credentials`).
    pub async fn chart_archive(
        &self,
        repo: &str,
        chart: &str,
        version: &str,
        pass_credentials: bool,
    ) -> Result<Arc<Vec<u8>>, HelmRepoError> {
        let credentials = self.helm_credentials(repo);
        if crate::oci::is_oci(repo) {
            self.helm
                .archive_oci(repo, chart, version, credentials.as_ref())
                .await
        } else {
            self.helm
                .archive(repo, chart, version, credentials.as_ref(), pass_credentials)
                .await
        }
    }

    /// The credentials of the Helm repository `repo`, if an entry gives some.
    fn helm_credentials(&self, repo: &str) -> Option<RepoCredentials> {
        let own = self
            .helm_credentials
            .read()
            .expect("credentials lock poisoned")
            .get(helm_key(repo))
            .cloned();
        own.or_else(|| self.template_for(repo).and_then(|t| t.http))
    }

    /// The mirror of `repo`, carrying the bucket's credentials for it if there are any.
    pub fn mirror(&self, repo: &str) -> Result<Mirror> {
        let mirror = self.mirrors.mirror(repo)?;
        if let Some(credentials) = self.git_credentials(&mirror) {
            // Credentials written in the URL stay unless the entry has a password.
            if credentials.http.is_some() {
                mirror.set_credentials(credentials.http);
            }
            mirror.set_ssh_credentials(credentials.ssh);
            mirror.set_tls_credentials(credentials.tls);
        }
        Ok(mirror)
    }

    pub fn remember_key(&self, entry_key: &str, repo: &str) {
        self.urls_by_entry
            .write()
            .expect("urls lock poisoned")
            .insert(entry_key.to_owned(), repo.to_owned());
    }

    pub fn forget_key(&self, entry_key: &str) -> Option<String> {
        self.urls_by_entry
            .write()
            .expect("urls lock poisoned")
            .remove(entry_key)
    }

    /// Records the credentials of a repository entry (`None`: the entry was deleted) and
    /// hands them to its mirror if one is open. Returns the normalized key, or `None` for
    /// entries that are not Git repositories with a valid URL.
    pub fn update(&self, repo: &str, entry: Option<&Repository>) -> Option<String> {
        {
            let mut helm = self
                .helm_credentials
                .write()
                .expect("credentials lock poisoned");
            let key = helm_key(repo).to_owned();
            match entry {
                Some(entry)
                    if entry.type_ == RepositoryType::Helm
                        || entry.type_ == RepositoryType::Oci
                        || entry.enable_oci =>
                {
                    match RepoCredentials::of_repository(entry) {
                        Some(c) => helm.insert(key, c),
                        None => helm.remove(&key),
                    };
                    self.helm.forget(repo);
                    return None;
                }
                Some(_) => {}
                None => {
                    helm.remove(&key);
                }
            }
        }
        let url = RepoUrl::parse(repo).ok()?;
        let credentials = match entry {
            Some(entry) if entry.type_ != RepositoryType::Git => return None,
            Some(entry) => GitCredentials::of_repository(entry),
            None => None,
        };
        let key = url.key().to_owned();
        {
            let mut map = self.credentials.write().expect("credentials lock poisoned");
            match credentials {
                Some(c) => map.insert(key.clone(), c),
                None => map.remove(&key),
            };
        }
        for mirror in self.mirrors.mirrors() {
            if mirror.url().key() == key {
                // A deleted entry's repository falls back to a template.
                set_git_credentials(&mirror, self.git_credentials(&mirror));
            }
        }
        Some(key)
    }
}

/// A Helm repository's or OCI registry's URL as a key: no trailing slash, no `oci://`
/// (Argo CD writes OCI Helm repositories both ways).
fn helm_key(repo: &str) -> &str {
    crate::oci::without_scheme(repo).trim_end_matches('/')
}

/// Hands `mirror` the username and password and the SSH key of `credentials` (each `None`
/// when absent), replacing what it had.
fn set_git_credentials(mirror: &Mirror, credentials: Option<GitCredentials>) {
    let GitCredentials { http, ssh, tls } = credentials.unwrap_or_default();
    mirror.set_credentials(http);
    mirror.set_ssh_credentials(ssh);
    mirror.set_tls_credentials(tls);
}
