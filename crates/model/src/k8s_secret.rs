//! Reading the Kubernetes Secrets Argo CD stores clusters and repositories in
//! (`argocd.argoproj.io/secret-type: cluster|repository`): `data` (base64) and
//! `stringData`, merged as the API server would.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::secret::Redacted;

/// Label that marks a Secret as an Argo CD cluster or repository.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// A `v1` Secret. Every value is [`Redacted`]: this struct can be logged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretManifest {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Base64-encoded values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, Redacted<String>>,
    /// Plain values; win over `data` for the same key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, Redacted<String>>,
}

/// Why a Secret could not be read as an Argo CD cluster or repository. Never carries a
/// secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret {secret:?}: label {SECRET_TYPE_LABEL} is {found:?}, expected {expected:?}")]
    WrongType {
        secret: String,
        found: String,
        expected: &'static str,
    },
    #[error("secret {secret:?}: data.{key} is not valid base64")]
    Base64 { secret: String, key: String },
    #[error("secret {secret:?}: data.{key} is not valid utf-8")]
    Utf8 { secret: String, key: String },
    #[error("secret {secret:?}: {key} is required")]
    Missing { secret: String, key: &'static str },
    #[error("secret {secret:?}: {key} is {value:?}, expected {expected}")]
    InvalidValue {
        secret: String,
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    /// The position only: the message of a JSON error could quote a credential.
    #[error(
        "secret {secret:?}: config is not valid cluster config json ({category} error at line {line} column {column})"
    )]
    Config {
        secret: String,
        category: &'static str,
        line: usize,
        column: usize,
    },
}

impl SecretManifest {
    pub fn secret_type(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(SECRET_TYPE_LABEL)
            .map(String::as_str)
    }

    /// Decoded key/value pairs: `data` base64-decoded, overlaid by `stringData`.
    pub fn decoded(&self) -> Result<BTreeMap<String, Redacted<String>>, SecretError> {
        let mut out = BTreeMap::new();
        for (key, value) in &self.data {
            let bytes = decode_base64(value.expose()).ok_or_else(|| SecretError::Base64 {
                secret: self.metadata.name.clone(),
                key: key.clone(),
            })?;
            let text = String::from_utf8(bytes).map_err(|_| SecretError::Utf8 {
                secret: self.metadata.name.clone(),
                key: key.clone(),
            })?;
            out.insert(key.clone(), Redacted::new(text));
        }
        for (key, value) in &self.string_data {
            out.insert(key.clone(), value.clone());
        }
        Ok(out)
    }

    pub(crate) fn expect_type(&self, expected: &'static str) -> Result<(), SecretError> {
        match self.secret_type() {
            Some(t) if t == expected => Ok(()),
            other => Err(SecretError::WrongType {
                secret: self.metadata.name.clone(),
                found: other.unwrap_or_default().to_owned(),
                expected,
            }),
        }
    }

    /// Labels without Argo CD's secret-type label; annotations without
    /// `kubectl.kubernetes.io/last-applied-configuration` and `managed-by`.
    pub(crate) fn user_labels_and_annotations(
        &self,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let mut labels = self.metadata.labels.clone();
        labels.remove(SECRET_TYPE_LABEL);
        let mut annotations = self.metadata.annotations.clone();
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        annotations.remove("managed-by");
        (labels, annotations)
    }
}

/// Typed reads of decoded Secret values, with errors that name the key.
pub(crate) struct Fields<'a> {
    pub(crate) secret: &'a str,
    pub(crate) values: BTreeMap<String, Redacted<String>>,
}

impl Fields<'_> {
    pub(crate) fn string(&self, key: &str) -> String {
        self.values
            .get(key)
            .map(|v| v.expose().clone())
            .unwrap_or_default()
    }

    pub(crate) fn secret(&self, key: &str) -> Option<Redacted<String>> {
        self.values
            .get(key)
            .filter(|v| !v.expose().is_empty())
            .cloned()
    }

    pub(crate) fn required(&self, key: &'static str) -> Result<String, SecretError> {
        let v = self.string(key);
        if v.is_empty() {
            return Err(SecretError::Missing {
                secret: self.secret.to_owned(),
                key,
            });
        }
        Ok(v)
    }

    /// Go's `strconv.ParseBool`; absent or empty is false.
    pub(crate) fn bool(&self, key: &'static str) -> Result<bool, SecretError> {
        match self.string(key).as_str() {
            "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            other => Err(self.invalid(key, other, "a boolean")),
        }
    }

    pub(crate) fn int(&self, key: &'static str) -> Result<Option<i64>, SecretError> {
        let v = self.string(key);
        if v.is_empty() {
            return Ok(None);
        }
        v.trim()
            .parse()
            .map(Some)
            .map_err(|_| self.invalid(key, &v, "an integer"))
    }

    fn invalid(&self, key: &'static str, value: &str, expected: &'static str) -> SecretError {
        SecretError::InvalidValue {
            secret: self.secret.to_owned(),
            key,
            value: value.to_owned(),
            expected,
        }
    }
}

/// Standard base64 (RFC 4648, `+/`), padding optional, ASCII whitespace ignored.
pub fn decode_base64(input: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let clean: Vec<u8> = input.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let body = clean
        .strip_suffix(b"==")
        .or_else(|| clean.strip_suffix(b"="))
        .unwrap_or(&clean);
    if body.len() % 4 == 1 || (body.len() != clean.len() && !clean.len().is_multiple_of(4)) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
            2 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}

/// Writing clusters, repositories and credential templates back out as the Secrets Argo
/// CD's declarative setup reads (`gitfleet export`): `stringData`, so reading them again
/// gives the same objects.
impl SecretManifest {
    fn argocd(name: &str, secret_type: &str) -> Self {
        let mut metadata = ObjectMeta::named(name);
        metadata
            .labels
            .insert(SECRET_TYPE_LABEL.to_owned(), secret_type.to_owned());
        Self {
            api_version: "v1".to_owned(),
            kind: "Secret".to_owned(),
            metadata,
            type_: "Opaque".to_owned(),
            ..Self::default()
        }
    }

    fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        if !value.is_empty() {
            self.string_data
                .insert(key.to_owned(), Redacted::new(value));
        }
    }

    fn set_flag(&mut self, key: &str, on: bool) {
        if on {
            self.set(key, "true");
        }
    }

    /// A cluster Secret named `secret_name`.
    pub fn from_cluster(cluster: &crate::Cluster, secret_name: &str) -> Self {
        let mut s = Self::argocd(secret_name, "cluster");
        s.metadata.labels.extend(cluster.labels.clone());
        s.metadata.annotations.extend(cluster.annotations.clone());
        s.set("name", cluster.name.clone());
        s.set("server", cluster.server.clone());
        if cluster.config != crate::ClusterConfig::default() {
            s.set(
                "config",
                serde_json::to_string(&cluster.config).unwrap_or_default(),
            );
        }
        s.set("namespaces", cluster.namespaces.join(","));
        s.set_flag("clusterResources", cluster.cluster_resources);
        if let Some(shard) = cluster.shard {
            s.set("shard", shard.to_string());
        }
        s.set("project", cluster.project.clone());
        s
    }

    /// A repository (`secret_type` `repository`) or credential template (`repo-creds`)
    /// Secret named `secret_name`.
    pub fn from_repository(repo: &crate::Repository, secret_type: &str, secret_name: &str) -> Self {
        let mut s = Self::argocd(secret_name, secret_type);
        let secret = |v: &Option<Redacted<String>>| {
            v.as_ref().map(|v| v.expose().clone()).unwrap_or_default()
        };
        s.set("url", repo.repo.clone());
        if repo.type_ != crate::RepositoryType::Git {
            s.set("type", repo.type_.as_str());
        }
        s.set("name", repo.name.clone());
        s.set("project", repo.project.clone());
        s.set("username", repo.username.clone());
        s.set("password", secret(&repo.password));
        s.set("bearerToken", secret(&repo.bearer_token));
        s.set("sshPrivateKey", secret(&repo.ssh_private_key));
        s.set("tlsClientCertData", repo.tls_client_cert_data.clone());
        s.set("tlsClientCertKey", secret(&repo.tls_client_cert_key));
        s.set_flag("insecure", repo.insecure);
        s.set_flag("insecureIgnoreHostKey", repo.insecure_ignore_host_key);
        s.set_flag("enableLfs", repo.enable_lfs);
        s.set_flag("enableOCI", repo.enable_oci);
        s.set("proxy", repo.proxy.clone());
        s.set("noProxy", repo.no_proxy.clone());
        if let Some(id) = repo.github_app_id {
            s.set("githubAppID", id.to_string());
        }
        if let Some(id) = repo.github_app_installation_id {
            s.set("githubAppInstallationID", id.to_string());
        }
        s.set("githubAppPrivateKey", secret(&repo.github_app_private_key));
        s.set(
            "githubAppEnterpriseBaseUrl",
            repo.github_app_enterprise_base_url.clone(),
        );
        s.set(
            "gcpServiceAccountKey",
            secret(&repo.gcp_service_account_key),
        );
        s.set_flag("forceHttpBasicAuth", repo.force_http_basic_auth);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64() {
        assert_eq!(
            decode_base64("aHR0cHM6Ly9naXRodWIuY29t").unwrap(),
            b"https://github.com"
        );
        assert_eq!(decode_base64("Z2l0").unwrap(), b"git");
        assert_eq!(decode_base64("aGVsbQ==").unwrap(), b"helm");
        assert_eq!(decode_base64("aGVsbQ").unwrap(), b"helm");
        assert_eq!(decode_base64("dHJ1ZQ==\n").unwrap(), b"true");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("ab$d").is_none());
        assert!(decode_base64("aGVsbQ=").is_none());
    }
}
