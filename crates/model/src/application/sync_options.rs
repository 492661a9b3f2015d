//! `spec.syncPolicy`: automated sync, the `Key=Value` sync options (also read from the
//! `argocd.argoproj.io/sync-options` annotation) and managed namespace metadata.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RetryStrategy;
use crate::meta::is_false;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<Automated>,
    #[serde(default, skip_serializing_if = "SyncOptions::is_empty")]
    pub sync_options: SyncOptions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
}

impl SyncPolicy {
    /// Automated sync is on: `automated` is present and not `enabled: false`.
    pub fn is_automated(&self) -> bool {
        self.automated
            .as_ref()
            .is_some_and(|a| a.enabled != Some(false))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Automated {
    /// Delete resources that are no longer in Git.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prune: bool,
    /// Re-sync when the live state drifts from Git.
    #[serde(default, skip_serializing_if = "is_false")]
    pub self_heal: bool,
    /// Allow a sync that would leave the app with no resources.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_empty: bool,
    /// Argo CD 2.14+: `enabled: false` keeps the block but turns automation off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `syncOptions`: a list of `Key=Value` strings (`CreateNamespace=true`, ...), the same
/// syntax as the `argocd.argoproj.io/sync-options` annotation (comma-separated there).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncOptions(pub Vec<String>);

impl SyncOptions {
    /// Parses the `argocd.argoproj.io/sync-options` annotation value.
    pub fn from_annotation(value: &str) -> Self {
        Self(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The value of `key` (the last entry wins); `None` if absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .filter_map(|opt| opt.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    }

    /// Whether `key=true` is set (Argo CD compares the literal `true`).
    pub fn is_true(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }

    /// Whether `key=false` is set.
    pub fn is_false(&self, key: &str) -> bool {
        self.get(key) == Some("false")
    }

    pub fn create_namespace(&self) -> bool {
        self.is_true("CreateNamespace")
    }

    pub fn server_side_apply(&self) -> bool {
        self.is_true("ServerSideApply")
    }

    pub fn prune_last(&self) -> bool {
        self.is_true("PruneLast")
    }

    pub fn apply_out_of_sync_only(&self) -> bool {
        self.is_true("ApplyOutOfSyncOnly")
    }

    pub fn replace(&self) -> bool {
        self.is_true("Replace")
    }

    pub fn respect_ignore_differences(&self) -> bool {
        self.is_true("RespectIgnoreDifferences")
    }

    pub fn fail_on_shared_resource(&self) -> bool {
        self.is_true("FailOnSharedResource")
    }

    /// `Validate=false` turns off schema validation; on by default.
    pub fn validate(&self) -> bool {
        !self.is_false("Validate")
    }

    /// `Prune=false` (on a resource's annotation) keeps it from being pruned.
    pub fn prune_disabled(&self) -> bool {
        self.is_false("Prune")
    }

    /// `PrunePropagationPolicy`: foreground (default), background or orphan.
    pub fn prune_propagation_policy(&self) -> &str {
        self.get("PrunePropagationPolicy").unwrap_or("foreground")
    }
}

/// The sync option keys Argo CD reads (app-level `syncOptions` and the resource
/// annotation), from gitops-engine's `sync/common` and Argo CD's controller.
pub const SYNC_OPTION_KEYS: &[&str] = &[
    "ApplyOutOfSyncOnly",
    "ClientSideApplyMigration",
    "CreateNamespace",
    "Delete",
    "FailOnSharedResource",
    "Force",
    "Prune",
    "PruneLast",
    "PrunePropagationPolicy",
    "Replace",
    "RespectIgnoreDifferences",
    "ServerSideApply",
    "SkipDryRunOnMissingResource",
    "Validate",
];

impl SyncOptions {
    /// The entries Argo CD would not read: an unknown key, or no `Key=Value` form.
    pub fn unknown(&self) -> Vec<&str> {
        self.iter()
            .filter(|opt| {
                opt.split_once('=')
                    .is_none_or(|(k, _)| !SYNC_OPTION_KEYS.contains(&k.trim()))
            })
            .collect()
    }
}

impl From<Vec<String>> for SyncOptions {
    fn from(v: Vec<String>) -> Self {
        Self(v)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedNamespaceMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_options() {
        let opts = SyncOptions::from_annotation(
            "CreateNamespace=true, ServerSideApply=true,Validate=false",
        );
        assert!(opts.create_namespace());
        assert!(opts.server_side_apply());
        assert!(!opts.prune_last());
        assert!(!opts.validate());
        assert_eq!(opts.prune_propagation_policy(), "foreground");
        let opts = SyncOptions(vec![
            "PruneLast=true".into(),
            "PrunePropagationPolicy=background".into(),
        ]);
        assert!(opts.prune_last());
        assert!(opts.validate());
        assert_eq!(opts.prune_propagation_policy(), "background");
        assert!(!SyncOptions(vec!["CreateNamespace=false".into()]).create_namespace());
    }

    #[test]
    fn unknown_options_are_named() {
        let opts = SyncOptions::from_annotation(
            "CreateNamespace=true,CreateNamspace=true, Prune=confirm,ServerSideApply",
        );
        assert_eq!(
            opts.unknown(),
            vec!["CreateNamspace=true", "ServerSideApply"]
        );
        assert!(SyncOptions::default().unknown().is_empty());
    }
}
