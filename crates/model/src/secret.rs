//! `Redacted<T>`: a value that (de)serializes as itself but never prints, for credentials.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What `Debug` and `Display` print instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// The JSON fields of a stored [`crate::Cluster`] or [`crate::Repository`] (and a
/// credential template) that hold a credential: the fields sealed at rest. Every
/// [`Redacted`] field of those types serializes under one of these names (a test below
/// holds them to it).
pub const CREDENTIAL_FIELDS: [&str; 7] = [
    "password",
    "bearerToken",
    "keyData",
    "sshPrivateKey",
    "tlsClientCertKey",
    "githubAppPrivateKey",
    "gcpServiceAccountKey",
];

/// A secret (token, password, private key). Serde sees the real value, so manifests and
/// stored objects round-trip; `Debug` and `Display` print `<redacted>`, so a secret never
/// reaches a log line through `{:?}` on an enclosing struct. Read it with [`Redacted::expose`].
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself. Named so that every read of a secret is easy to find.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The secret itself, to replace in place (sealing and opening at rest).
    pub fn expose_mut(&mut self) -> &mut T {
        &mut self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Redacted<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_redacted_but_serializes_value() {
        let s = Redacted::new("hunter2".to_owned());
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        let back: Redacted<String> = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(back.expose(), "hunter2");
    }

    /// Where a marker string sits in a JSON document: the field names leading to it.
    fn fields_holding(value: &serde_json::Value, marker: &str, key: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if s == marker => out.push(key.to_owned()),
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    fields_holding(v, marker, k, out);
                }
            }
            serde_json::Value::Array(items) => {
                for v in items {
                    fields_holding(v, marker, key, out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_credential_serializes_under_a_credential_field() {
        let secret = || Some(Redacted::new("MARKER".to_owned()));
        let mut cluster = crate::Cluster::in_cluster();
        cluster.config.password = secret();
        cluster.config.bearer_token = secret();
        cluster.config.tls_client_config.key_data = secret();
        let repository = crate::Repository {
            repo: "https://git.example/a.git".into(),
            password: secret(),
            bearer_token: secret(),
            ssh_private_key: secret(),
            tls_client_cert_key: secret(),
            github_app_private_key: secret(),
            gcp_service_account_key: secret(),
            ..Default::default()
        };
        let mut found = Vec::new();
        fields_holding(
            &serde_json::to_value(&cluster).unwrap(),
            "MARKER",
            "",
            &mut found,
        );
        fields_holding(
            &serde_json::to_value(&repository).unwrap(),
            "MARKER",
            "",
            &mut found,
        );
        assert_eq!(found.len(), 9, "{found:?}");
        for field in &found {
            assert!(
                CREDENTIAL_FIELDS.contains(&field.as_str()),
                "{field} is not sealed at rest"
            );
        }
    }
}
