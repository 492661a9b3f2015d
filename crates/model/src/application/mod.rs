//! `Application` (argoproj.io/v1alpha1) with Argo CD's field names: the object, its
//! spec and destination; sources, sync policy, retry, tracking and validation live in the
//! submodules and are re-exported here.

mod retry;
mod source;
mod sync_options;
mod tracking;
mod validation;

pub use retry::{
    Backoff, DEFAULT_RETRY_DURATION, DEFAULT_RETRY_FACTOR, DEFAULT_RETRY_MAX_DURATION,
    EffectiveBackoff, RetryStrategy,
};
pub use source::{
    ApplicationSource, DirectorySource, EnvEntry, HelmFileParameter, HelmParameter, HelmSource,
    JsonnetSource, JsonnetVar, KustomizeSource, PluginSource,
};
pub use sync_options::{
    Automated, ManagedNamespaceMetadata, SYNC_OPTION_KEYS, SyncOptions, SyncPolicy,
};
pub use tracking::{INSTANCE_LABEL, TRACKING_ANNOTATION, TrackingId};

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectMeta, default_api_version};
use crate::status::ApplicationStatus;

/// The cluster Argo CD (and gitfleet) runs in, by server URL.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// The cluster Argo CD (and gitfleet) runs in, by name.
pub const IN_CLUSTER_NAME: &str = "in-cluster";
/// Finalizer that makes deleting an app delete its resources (cascade).
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
/// The project an app with an empty `spec.project` falls into in Argo CD.
pub const DEFAULT_PROJECT: &str = "default";

fn default_kind() -> String {
    "Application".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ApplicationSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationStatus>,
}

impl Default for Application {
    fn default() -> Self {
        Self {
            api_version: default_api_version(),
            kind: default_kind(),
            metadata: ObjectMeta::default(),
            spec: ApplicationSpec::default(),
            status: None,
        }
    }
}

impl Application {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// Single source; ignored by Argo CD when `sources` is non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// Multi-source apps. Takes precedence over `source`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    /// Defaults to empty so that a missing destination is a validation error, not a
    /// parse error.
    #[serde(default)]
    pub destination: Destination,
    /// Empty means Argo CD's `default` project; see [`ApplicationSpec::project_or_default`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<ResourceIgnoreDifferences>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub info: Vec<Info>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// Argo CD 3.x source hydrator; carried through, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_hydrator: Option<serde_json::Value>,
}

impl ApplicationSpec {
    /// The sources Argo CD would render: `sources` if non-empty, else `source`.
    pub fn effective_sources(&self) -> Vec<&ApplicationSource> {
        if !self.sources.is_empty() {
            self.sources.iter().collect()
        } else {
            self.source.iter().collect()
        }
    }

    pub fn has_multiple_sources(&self) -> bool {
        !self.sources.is_empty()
    }

    /// `spec.project`, or `default` when empty (Argo CD's `GetProject`).
    pub fn project_or_default(&self) -> &str {
        if self.project.is_empty() {
            DEFAULT_PROJECT
        } else {
            &self.project
        }
    }
}

/// Where an app deploys: a cluster by `server` URL or by `name` (exactly one), and a
/// namespace. Also the shape of AppProject destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl Destination {
    /// Whether this is the cluster gitfleet runs in (`https://kubernetes.default.svc`
    /// or `in-cluster`).
    pub fn is_in_cluster(&self) -> bool {
        self.server.trim_end_matches('/') == IN_CLUSTER_SERVER || self.name == IN_CLUSTER_NAME
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIgnoreDifferences {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_pointers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jq_path_expressions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields_managers: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster() {
        let by_server = Destination {
            server: IN_CLUSTER_SERVER.into(),
            ..Default::default()
        };
        let by_name = Destination {
            name: "in-cluster".into(),
            ..Default::default()
        };
        let other = Destination {
            server: "https://10.0.0.1:6443".into(),
            ..Default::default()
        };
        assert!(by_server.is_in_cluster());
        assert!(by_name.is_in_cluster());
        assert!(!other.is_in_cluster());
    }
}
