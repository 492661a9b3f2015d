//! Repository URLs: the normalized key that decides which spellings share a mirror, and
//! the credential-free form that is the only one ever fetched from, logged or published.

use crate::credentials::RepoCredentials;
use crate::error::{GitError, Result};

/// A parsed repository URL, split into what identifies the repository and what authenticates.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// Identity of the repository: `https://host/org/repo` for every spelling of it.
    key: String,
    /// What is handed to gix and shown to people: the URL as given, minus any `user:password@`.
    display: String,
    /// Credentials that were embedded in the URL, moved out so the URL can be shown.
    embedded: Option<RepoCredentials>,
    scheme: gix::url::Scheme,
}

impl std::fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoUrl")
            .field("key", &self.key)
            .field("display", &self.display)
            .finish()
    }
}

impl RepoUrl {
    /// Parses `input` in any form Argo CD accepts (`https://`, `http://`, `git://`, `file://`,
    /// `ssh://`, scp-like `git@host:org/repo`, or an absolute local path).
    pub fn parse(input: &str) -> Result<Self> {
        let trimmed = input.trim();
        let invalid = |reason: &str| GitError::InvalidUrl {
            url: redact(trimmed),
            reason: reason.to_owned(),
        };
        if trimmed.is_empty() {
            return Err(invalid("empty url"));
        }
        // Schemes are case-insensitive (RFC 3986) but gix only knows the lowercase ones.
        let input = match trimmed.split_once("://") {
            Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
            None => trimmed.to_owned(),
        };
        let mut url = gix::url::parse(input.as_bytes()).map_err(|_| invalid("not a git url"))?;
        use gix::url::Scheme;
        if !matches!(
            url.scheme,
            Scheme::File | Scheme::Git | Scheme::Ssh | Scheme::Http | Scheme::Https
        ) {
            return Err(invalid("unsupported scheme"));
        }
        if url.scheme != Scheme::File && url.host().is_none_or(str::is_empty) {
            return Err(invalid("missing host"));
        }
        // Credentials only travel through the credentials callback; an ssh user name is not a
        // secret and is part of how the server is reached, so it stays.
        let embedded = match url.scheme {
            Scheme::Http | Scheme::Https => {
                let username = url.set_user(None);
                let password = url.set_password(None);
                match (username, password) {
                    (Some(username), Some(password)) => {
                        Some(RepoCredentials::new(username, password))
                    }
                    _ => None,
                }
            }
            _ => {
                url.set_password(None);
                None
            }
        };
        let display = url.to_bstring().to_string();
        let key = normalize(&url);
        Ok(RepoUrl {
            key,
            display,
            embedded,
            scheme: url.scheme.clone(),
        })
    }

    /// The normalized identity of the repository; equal keys share one mirror.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The URL without credentials, safe to log and to put in messages.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// Credentials that were written into the URL itself (`https://user:pass@host/...`).
    pub fn embedded_credentials(&self) -> Option<&RepoCredentials> {
        self.embedded.as_ref()
    }

    /// Whether credentials can be used with this URL at all (only http and https).
    pub fn accepts_credentials(&self) -> bool {
        matches!(
            self.scheme,
            gix::url::Scheme::Http | gix::url::Scheme::Https
        )
    }

    /// The path of a local repository (`file://` or a bare path), `None` for a remote one.
    pub fn local_path(&self) -> Option<std::path::PathBuf> {
        (self.scheme == gix::url::Scheme::File)
            .then(|| self.key.strip_prefix("file://").unwrap_or(&self.key).into())
    }

    pub(crate) fn scheme(&self) -> gix::url::Scheme {
        self.scheme.clone()
    }
}

impl std::fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// Argo CD's `NormalizeGitURL` lowercases the whole URL; the path keeps its case here because
/// some servers are case-sensitive, and merging two repositories into one mirror would be a
/// correctness bug while two mirrors of one repository only cost disk.
fn normalize(url: &gix::Url) -> String {
    use gix::url::Scheme;
    let scheme = url.scheme.as_str();
    let mut path = url.path.to_string();
    if url.scheme == Scheme::File {
        while path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        return format!("file://{path}");
    }
    let host = url.host().unwrap_or_default().to_ascii_lowercase();
    let default_port = match url.scheme {
        Scheme::Http => Some(80),
        Scheme::Https => Some(443),
        Scheme::Git => Some(9418),
        Scheme::Ssh => Some(22),
        _ => None,
    };
    let port = match url.port {
        Some(port) if Some(port) != default_port => format!(":{port}"),
        _ => String::new(),
    };
    loop {
        let before = path.len();
        while path.ends_with('/') {
            path.pop();
        }
        if let Some(stripped) = path.strip_suffix(".git") {
            path.truncate(stripped.len());
        }
        if path.len() == before {
            break;
        }
    }
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    format!("{scheme}://{host}{port}{path}")
}

/// Removes a `user:password@` part from a string that may not even parse as a URL, so that
/// invalid input can still be quoted in an error.
pub(crate) fn redact(input: &str) -> String {
    let Some(scheme_end) = input.find("://") else {
        return input.to_owned();
    };
    let rest = &input[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://{}", &input[..scheme_end], &rest[at + 1..]),
        None => input.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(input: &str) -> String {
        RepoUrl::parse(input).unwrap().key().to_owned()
    }

    #[test]
    fn https_spellings_share_a_key() {
        let expected = "https://github.com/org/repo";
        for spelling in [
            "https://github.com/org/repo",
            "https://github.com/org/repo.git",
            "https://github.com/org/repo/",
            "https://github.com/org/repo.git/",
            "HTTPS://GitHub.com/org/repo",
            "https://github.com:443/org/repo",
            "https://user:secret@github.com/org/repo.git",
            "  https://github.com/org/repo  ",
        ] {
            assert_eq!(key(spelling), expected, "{spelling}");
        }
        assert_ne!(key("https://github.com/org/Repo"), expected);
        assert_ne!(key("http://github.com/org/repo"), expected);
        assert_eq!(key("https://h:8443/r.git"), "https://h:8443/r");
    }

    #[test]
    fn other_schemes() {
        assert_eq!(key("git://127.0.0.1:9418/a.git"), "git://127.0.0.1/a");
        assert_eq!(key("git://127.0.0.1:1234/a"), "git://127.0.0.1:1234/a");
        assert_eq!(
            key("git@github.com:org/repo.git"),
            "ssh://github.com/org/repo"
        );
        assert_eq!(key("file:///srv/repo.git/"), "file:///srv/repo.git");
        assert_eq!(key("/srv/repo"), "file:///srv/repo");
    }

    #[test]
    fn credentials_move_out_of_the_url() {
        let url = RepoUrl::parse("https://alice:s3cret@example.com/org/repo.git").unwrap();
        assert_eq!(url.as_str(), "https://example.com/org/repo.git");
        assert!(!format!("{url:?}").contains("s3cret"));
        let creds = url.embedded_credentials().unwrap();
        assert_eq!(creds.username(), "alice");
        assert_eq!(creds.password(), "s3cret");
    }

    #[test]
    fn invalid_urls_are_reported_without_credentials() {
        for bad in [
            "",
            "ftp://user:s3cret@host/repo",
            "https://user:s3cret@/repo",
        ] {
            let err = RepoUrl::parse(bad).unwrap_err();
            assert!(matches!(err, GitError::InvalidUrl { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn redact_handles_garbage() {
        assert_eq!(redact("https://a:b@h/x@y"), "https://h/x@y");
        assert_eq!(redact("nonsense"), "nonsense");
    }
}
