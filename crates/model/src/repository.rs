//! `Repository`: a Git, Helm or OCI repository and its credentials. Argo CD stores
//! repositories as Secrets labelled `argocd.argoproj.io/secret-type: repository`; this
//! is Argo CD's `Repository` JSON shape, readable from such a Secret. Credentials are
//! [`Redacted`], so `Debug` never prints them.

use serde::{Deserialize, Serialize};

use crate::k8s_secret::{Fields, SecretError, SecretManifest};
use crate::meta::is_false;
use crate::secret::Redacted;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepositoryType {
    #[default]
    Git,
    Helm,
    Oci,
}

impl RepositoryType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Git => "git",
            Self::Helm => "helm",
            Self::Oci => "oci",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// Repository URL (`url` in the Secret, `repo` in Argo CD's JSON).
    #[serde(default)]
    pub repo: String,
    #[serde(rename = "type", default)]
    pub type_: RepositoryType,
    /// Display name; required by Argo CD for Helm repositories.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Redacted<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Redacted<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_private_key: Option<Redacted<String>>,
    /// Client certificate (PEM); not secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_client_cert_data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_cert_key: Option<Redacted<String>>,
    /// Skip TLS verification (and SSH host key checking).
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_ignore_host_key: bool,
    /// Git LFS (Argo CD spells it `enableLfs`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_lfs: bool,
    /// Helm repository served over OCI.
    #[serde(rename = "enableOCI", default, skip_serializing_if = "is_false")]
    pub enable_oci: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub proxy: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub no_proxy: String,
    #[serde(
        rename = "githubAppID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub github_app_id: Option<i64>,
    #[serde(
        rename = "githubAppInstallationID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub github_app_installation_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_app_private_key: Option<Redacted<String>>,
    #[serde(
        rename = "githubAppEnterpriseBaseUrl",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub github_app_enterprise_base_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_service_account_key: Option<Redacted<String>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub force_http_basic_auth: bool,
}

impl Repository {
    /// Reads a repository Secret (keys `url`, `type`, `name`, `project`, `username`,
    /// `password`, `sshPrivateKey`, `tlsClientCertData`, `tlsClientCertKey`,
    /// `insecure`, `enableLfs`, `proxy`, ... as Argo CD's declarative setup documents).
    pub fn from_secret(secret: &SecretManifest) -> Result<Self, SecretError> {
        secret.expect_type("repository")?;
        Self::from_secret_fields(secret)
    }

    /// Reads a credential template Secret (`secret-type: repo-creds`): the same keys, its
    /// `url` a prefix of the repositories it serves.
    pub fn from_creds_secret(secret: &SecretManifest) -> Result<Self, SecretError> {
        secret.expect_type("repo-creds")?;
        Self::from_secret_fields(secret)
    }

    fn from_secret_fields(secret: &SecretManifest) -> Result<Self, SecretError> {
        let f = Fields {
            secret: &secret.metadata.name,
            values: secret.decoded()?,
        };
        let type_ = match f.string("type").as_str() {
            "" | "git" => RepositoryType::Git,
            "helm" => RepositoryType::Helm,
            "oci" => RepositoryType::Oci,
            other => {
                return Err(SecretError::InvalidValue {
                    secret: secret.metadata.name.clone(),
                    key: "type",
                    value: other.to_owned(),
                    expected: "git, helm or oci",
                });
            }
        };
        Ok(Self {
            repo: f.required("url")?,
            type_,
            name: f.string("name"),
            project: f.string("project"),
            username: f.string("username"),
            password: f.secret("password"),
            bearer_token: f.secret("bearerToken"),
            ssh_private_key: f.secret("sshPrivateKey"),
            tls_client_cert_data: f.string("tlsClientCertData"),
            tls_client_cert_key: f.secret("tlsClientCertKey"),
            insecure: f.bool("insecure")?,
            insecure_ignore_host_key: f.bool("insecureIgnoreHostKey")?,
            enable_lfs: f.bool("enableLfs")?,
            enable_oci: f.bool("enableOCI")?,
            proxy: f.string("proxy"),
            no_proxy: f.string("noProxy"),
            github_app_id: f.int("githubAppID")?,
            github_app_installation_id: f.int("githubAppInstallationID")?,
            github_app_private_key: f.secret("githubAppPrivateKey"),
            github_app_enterprise_base_url: f.string("githubAppEnterpriseBaseUrl"),
            gcp_service_account_key: f.secret("gcpServiceAccountKey"),
            force_http_basic_auth: f.bool("forceHttpBasicAuth")?,
        })
    }
}
