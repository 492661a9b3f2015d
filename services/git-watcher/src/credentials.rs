//! Repository credentials: where they come from (a `repositories` entry, or a URL's
//! `user:password@`, see [`crate::url`]) and how they are kept out of logs. http(s)
//! fetches use the username and password, through gix's credentials callback
//! ([`crate::mirror`]); ssh fetches use the private key, through the OpenSSH client
//! ([`crate::ssh`]).

use gitfleet_model::{Redacted, Repository};

use crate::tls::TlsCredentials;

/// Username and password (or token) for an http(s) repository.
///
/// Debug output redacts the password so that the struct can sit inside logged values.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoCredentials {
    username: String,
    password: String,
}

impl RepoCredentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        RepoCredentials {
            username: username.into(),
            password: password.into(),
        }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The credentials of a `repositories` entry: username and password (a token goes in
    /// the password, as Argo CD documents for GitHub and GitLab); `None` without a password.
    /// SSH keys are [`SshCredentials`]; TLS client certificates and GitHub App credentials
    /// are not supported by the mirrors yet.
    pub(crate) fn of_repository(entry: &Repository) -> Option<Self> {
        let password = entry.password.as_ref()?.expose();
        if password.is_empty() {
            return None;
        }
        Some(RepoCredentials::new(
            entry.username.clone(),
            password.clone(),
        ))
    }
}

impl std::fmt::Debug for RepoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The private key an ssh repository is fetched with, and whether its host key is checked.
///
/// The key is [`Redacted`], so Debug output never shows it; it is only ever written to the
/// private file one fetch hands to `ssh -i` ([`crate::ssh`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCredentials {
    private_key: Redacted<String>,
    insecure: bool,
}

impl SshCredentials {
    /// `private_key` is the key file's text (OpenSSH or PEM format, without a passphrase,
    /// as Argo CD requires); `insecure` skips the host key check.
    pub fn new(private_key: impl Into<String>, insecure: bool) -> Self {
        SshCredentials {
            private_key: Redacted::new(private_key.into()),
            insecure,
        }
    }

    /// The key itself; read only to write the fetch's key file.
    pub fn private_key(&self) -> &str {
        self.private_key.expose()
    }

    /// Argo CD's `insecure` (or the older `insecureIgnoreHostKey`): the server's host key is
    /// not checked against the known hosts.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// The `sshPrivateKey` of a `repositories` entry, with Argo CD's `IsInsecure()`
    /// (`insecure` or `insecureIgnoreHostKey`); `None` without a key.
    pub(crate) fn of_repository(entry: &Repository) -> Option<Self> {
        let key = entry.ssh_private_key.as_ref()?.expose();
        if key.trim().is_empty() {
            return None;
        }
        Some(SshCredentials::new(
            key.clone(),
            entry.insecure || entry.insecure_ignore_host_key,
        ))
    }
}

/// What a `repositories` entry or credential template gives a Git repository: a username
/// and password for http(s) URLs, a private key for ssh ones. Argo CD picks one of the two
/// from the entry (the password first); here each URL scheme takes its own, so an entry
/// holding both works for either spelling of the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitCredentials {
    pub http: Option<RepoCredentials>,
    pub ssh: Option<SshCredentials>,
    /// Client certificate and `insecure`, for https URLs.
    pub tls: Option<TlsCredentials>,
}

impl GitCredentials {
    /// `None` when the entry holds no password, SSH key, client certificate or `insecure`.
    pub(crate) fn of_repository(entry: &Repository) -> Option<Self> {
        let credentials = GitCredentials {
            http: RepoCredentials::of_repository(entry),
            ssh: SshCredentials::of_repository(entry),
            tls: TlsCredentials::of_repository(entry),
        };
        (credentials != GitCredentials::default()).then_some(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn ssh_keys_come_from_entries_with_argo_cds_insecure_flags() {
        let mut entry = Repository {
            repo: "git@github.com:org/repo.git".into(),
            ssh_private_key: Some(Redacted::new(KEY.to_owned())),
            ..Repository::default()
        };
        let creds = GitCredentials::of_repository(&entry).unwrap();
        assert!(creds.http.is_none());
        let ssh = creds.ssh.unwrap();
        assert_eq!(ssh.private_key(), KEY);
        assert!(!ssh.insecure());
        assert!(!format!("{ssh:?}").contains("b3BlbnNzaC1rZXktdjEAAAAA"));

        entry.insecure_ignore_host_key = true;
        assert!(SshCredentials::of_repository(&entry).unwrap().insecure());
        entry.insecure_ignore_host_key = false;
        entry.insecure = true;
        assert!(SshCredentials::of_repository(&entry).unwrap().insecure());

        entry.ssh_private_key = Some(Redacted::new(" \n".to_owned()));
        // No key: what is left of the entry is `insecure`, for https.
        assert_eq!(
            GitCredentials::of_repository(&entry),
            Some(GitCredentials {
                tls: Some(TlsCredentials::insecure()),
                ..GitCredentials::default()
            })
        );
        entry.insecure = false;
        assert_eq!(GitCredentials::of_repository(&entry), None);
    }
}
