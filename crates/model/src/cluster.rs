//! `Cluster`: a destination cluster and how to reach it. Argo CD stores clusters as
//! Secrets labelled `argocd.argoproj.io/secret-type: cluster`; this is the logical
//! cluster (Argo CD's `Cluster` JSON shape), readable from such a Secret. Credentials are
//! [`Redacted`], so `Debug` never prints them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::application::{IN_CLUSTER_NAME, IN_CLUSTER_SERVER};
use crate::k8s_secret::{Fields, SecretError, SecretManifest};
use crate::meta::is_false;
use crate::secret::Redacted;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// API server URL, e.g. `https://kubernetes.default.svc`.
    #[serde(default)]
    pub server: String,
    /// Name used by `destination.name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub config: ClusterConfig,
    /// When non-empty, Argo CD only manages these namespaces in the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// With `namespaces` set: whether cluster-scoped resources may still be managed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cluster_resources: bool,
    /// Controller shard pinned for this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<i64>,
    /// Project the cluster is scoped to, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Redacted<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Redacted<String>>,
    #[serde(default)]
    pub tls_client_config: TlsClientConfig,
    /// EKS IAM auth (`clusterName`, `roleARN`, `profile`), carried as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_auth_config: Option<serde_json::Value>,
    /// Exec credential plugin (`command`, `args`, `env`, `apiVersion`), carried as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_provider_config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_compression: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsClientConfig {
    /// Skip server certificate verification.
    #[serde(default)]
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    /// PEM, base64-encoded (as Argo CD writes `[]byte` in JSON).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert_data: String,
    /// Client private key, PEM base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_data: Option<Redacted<String>>,
    /// CA bundle, PEM base64-encoded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_data: String,
}

impl Cluster {
    /// The cluster gitfleet runs in, as Argo CD defines it when no Secret exists for it.
    pub fn in_cluster() -> Self {
        Self {
            server: IN_CLUSTER_SERVER.to_owned(),
            name: IN_CLUSTER_NAME.to_owned(),
            ..Self::default()
        }
    }

    pub fn is_in_cluster(&self) -> bool {
        self.server.trim_end_matches('/') == IN_CLUSTER_SERVER
    }

    /// Reads a cluster Secret: keys `name`, `server`, `namespaces` (comma-separated),
    /// `clusterResources`, `shard`, `project` and `config` (JSON), from `data` or
    /// `stringData`.
    pub fn from_secret(secret: &SecretManifest) -> Result<Self, SecretError> {
        secret.expect_type("cluster")?;
        let name = secret.metadata.name.as_str();
        let f = Fields {
            secret: name,
            values: secret.decoded()?,
        };
        let config_json = f.string("config");
        let config = if config_json.trim().is_empty() {
            ClusterConfig::default()
        } else {
            serde_json::from_str(&config_json).map_err(|e| SecretError::Config {
                secret: name.to_owned(),
                category: match e.classify() {
                    serde_json::error::Category::Io => "io",
                    serde_json::error::Category::Syntax => "syntax",
                    serde_json::error::Category::Data => "data",
                    serde_json::error::Category::Eof => "eof",
                },
                line: e.line(),
                column: e.column(),
            })?
        };
        let (labels, annotations) = secret.user_labels_and_annotations();
        Ok(Self {
            server: f.required("server")?,
            name: f.string("name"),
            config,
            namespaces: f
                .string("namespaces")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            cluster_resources: f.bool("clusterResources")?,
            shard: f.int("shard")?,
            project: f.string("project"),
            labels,
            annotations,
        })
    }
}
