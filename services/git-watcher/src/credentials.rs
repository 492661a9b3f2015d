//! Repository credentials: where they come from (a `repositories` entry, or a URL's
//! `user:password@`, see [`crate::url`]) and how they are kept out of logs. Only http(s)
//! fetches use them, through gix's credentials callback ([`crate::mirror`]).

use gitfleet_model::Repository;

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
    /// SSH keys, TLS client certificates and GitHub App credentials are not supported by
    /// the mirrors yet.
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
