//! `Application` (argoproj.io/v1alpha1): spec, status, sync options, tracking ids and
//! validation, with Argo CD's field names.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectMeta, default_api_version, is_false, is_zero};
use crate::status::ApplicationStatus;
use crate::validate::{Problems, ValidationErrors, parse_duration};

/// The cluster Argo CD (and gitfleet) runs in, by server URL.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// The cluster Argo CD (and gitfleet) runs in, by name.
pub const IN_CLUSTER_NAME: &str = "in-cluster";
/// Annotation that marks a live resource as belonging to an app (Argo CD's default
/// tracking method); value from [`Application::tracking_id`].
pub const TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// Label used by the `label` tracking method; value from [`Application::instance_label_value`].
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_revision: String,
    /// Helm chart name, for Helm repositories (then `path` is unused).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chart: String,
    /// Name other sources use as `$ref/...` in multi-source apps.
    #[serde(rename = "ref", default, skip_serializing_if = "String::is_empty")]
    pub ref_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectorySource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginSource>,
}

impl ApplicationSource {
    /// Whether this source is a Helm chart from a Helm (or OCI) repository.
    pub fn is_helm_chart(&self) -> bool {
        !self.chart.is_empty()
    }

    /// The tool types explicitly configured on this source (Argo CD allows at most one).
    pub fn explicit_types(&self) -> Vec<&'static str> {
        let mut types = Vec::new();
        if self.helm.is_some() {
            types.push("helm");
        }
        if self.kustomize.is_some() {
            types.push("kustomize");
        }
        if self.directory.is_some() {
            types.push("directory");
        }
        if self.plugin.is_some() {
            types.push("plugin");
        }
        types
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_files: Vec<String>,
    /// Inline values as a YAML string.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub values: String,
    /// Inline values as an object; wins over `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_object: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<HelmParameter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_parameters: Vec<HelmFileParameter>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub release_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kube_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub pass_credentials: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_missing_value_files: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_crds: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_schema_validation: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_tests: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmParameter {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub force_string: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmFileParameter {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name_prefix: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name_suffix: String,
    /// Image overrides, `name=newName:tag` or `name:tag` (kustomize edit set image syntax).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub common_annotations_envsubst: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub force_common_labels: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub force_common_annotations: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub label_without_selector: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub label_include_templates: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `[{name, count}]`, count is an int or string.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<serde_json::Value>,
    /// Kustomize patches, kept as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_missing_components: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kube_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySource {
    #[serde(default, skip_serializing_if = "is_false")]
    pub recurse: bool,
    /// Glob of files to include, e.g. `{*.yml,*.yaml}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub include: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exclude: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonnet: Option<JsonnetSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonnetSource {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ext_vars: Vec<JsonnetVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tlas: Vec<JsonnetVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonnetVar {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
    /// The value is Jsonnet code rather than a string.
    #[serde(default, skip_serializing_if = "is_false")]
    pub code: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvEntry>,
    /// `[{name, string | array | map}]`, kept as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvEntry {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
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

impl From<Vec<String>> for SyncOptions {
    fn from(v: Vec<String>) -> Self {
        Self(v)
    }
}

/// Argo CD's retry defaults when `backoff` fields are unset.
pub const DEFAULT_RETRY_DURATION: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRY_FACTOR: i64 = 2;
pub const DEFAULT_RETRY_MAX_DURATION: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Maximum retries; 0 means none, negative means unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Argo CD 3.x: retry with the latest revision rather than the failed one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub refresh: bool,
}

impl RetryStrategy {
    pub fn is_unlimited(&self) -> bool {
        self.limit < 0
    }

    /// The effective backoff, with Argo CD's defaults (5s, x2, max 3m) for unset or
    /// unparsable fields (validation reports the unparsable ones).
    pub fn effective_backoff(&self) -> EffectiveBackoff {
        let b = self.backoff.as_ref();
        EffectiveBackoff {
            duration: b
                .and_then(|b| parse_duration(&b.duration))
                .unwrap_or(DEFAULT_RETRY_DURATION),
            factor: b.and_then(|b| b.factor).unwrap_or(DEFAULT_RETRY_FACTOR),
            max_duration: b
                .and_then(|b| parse_duration(&b.max_duration))
                .unwrap_or(DEFAULT_RETRY_MAX_DURATION),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// e.g. `5s`; a bare integer is seconds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_duration: String,
}

/// Backoff with durations parsed and defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveBackoff {
    pub duration: Duration,
    pub factor: i64,
    pub max_duration: Duration,
}

impl EffectiveBackoff {
    /// Delay before retry number `attempt` (0-based): duration * factor^attempt, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = u32::try_from(self.factor.max(1)).unwrap_or(u32::MAX);
        let mut d = self.duration;
        for _ in 0..attempt {
            d = d.saturating_mul(factor);
            if d >= self.max_duration {
                return self.max_duration;
            }
        }
        d.min(self.max_duration)
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

// ---------------------------------------------------------------------------------------
// Tracking and validation
// ---------------------------------------------------------------------------------------

/// The parts of an `argocd.argoproj.io/tracking-id` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackingId {
    /// App instance name: `<app>` or `<namespace>_<app>`.
    pub app: String,
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl TrackingId {
    /// Parses `<app>:<group>/<kind>:<namespace>/<name>`; `None` if malformed.
    pub fn parse(value: &str) -> Option<Self> {
        let (app, rest) = value.split_once(':')?;
        let (gk, nn) = rest.split_once(':')?;
        let (group, kind) = gk.split_once('/')?;
        let (namespace, name) = nn.split_once('/')?;
        if app.is_empty() || kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self {
            app: app.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for TrackingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}/{}:{}/{}",
            self.app, self.group, self.kind, self.namespace, self.name
        )
    }
}

impl Application {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The app's instance name: its name, or `<namespace>_<name>` when it lives in a
    /// namespace other than the control plane's (Argo CD's `InstanceName`).
    pub fn instance_name(&self, control_plane_namespace: &str) -> String {
        let ns = &self.metadata.namespace;
        if ns.is_empty() || ns == control_plane_namespace {
            self.metadata.name.clone()
        } else {
            format!("{ns}_{}", self.metadata.name)
        }
    }

    /// The `argocd.argoproj.io/tracking-id` value for one of this app's resources:
    /// `<app>:<group>/<kind>:<namespace>/<name>`. The core group is `""`, and
    /// cluster-scoped resources have `""` as namespace.
    pub fn tracking_id(
        &self,
        control_plane_namespace: &str,
        group: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> String {
        format!(
            "{}:{group}/{kind}:{namespace}/{name}",
            self.instance_name(control_plane_namespace)
        )
    }

    /// The `app.kubernetes.io/instance` label value (label tracking): the instance name
    /// truncated to 63 characters.
    pub fn instance_label_value(&self, control_plane_namespace: &str) -> String {
        self.instance_name(control_plane_namespace)
            .chars()
            .take(63)
            .collect()
    }

    /// Checks everything Argo CD would refuse, and returns every problem at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.object_name("metadata.name", &self.metadata.name);
        p.namespace("metadata.namespace", &self.metadata.namespace);
        validate_spec(&mut p, "spec", &self.spec);
        p.finish()
    }
}

/// Validates an Application spec at `prefix` (`spec`, or `spec.template.spec`).
pub(crate) fn validate_spec(p: &mut Problems, prefix: &str, spec: &ApplicationSpec) {
    if spec.project.is_empty() {
        p.push(format!("{prefix}.project"), "required");
    }
    if !spec.sources.is_empty() {
        for (i, source) in spec.sources.iter().enumerate() {
            validate_source(p, &format!("{prefix}.sources[{i}]"), source);
        }
    } else if let Some(source) = &spec.source {
        validate_source(p, &format!("{prefix}.source"), source);
    } else {
        p.push(
            format!("{prefix}.source"),
            "one of source or sources is required",
        );
    }
    validate_destination(p, &format!("{prefix}.destination"), &spec.destination);
    if let Some(policy) = &spec.sync_policy {
        validate_sync_policy(p, &format!("{prefix}.syncPolicy"), policy);
    }
    for (i, ignore) in spec.ignore_differences.iter().enumerate() {
        if ignore.kind.is_empty() {
            p.push(format!("{prefix}.ignoreDifferences[{i}].kind"), "required");
        }
    }
    if spec.revision_history_limit.is_some_and(|n| n < 0) {
        p.push(
            format!("{prefix}.revisionHistoryLimit"),
            "must not be negative",
        );
    }
}

fn validate_source(p: &mut Problems, path: &str, source: &ApplicationSource) {
    p.repo_url(&format!("{path}.repoURL"), &source.repo_url);
    let types = source.explicit_types();
    if types.len() > 1 {
        p.push(
            path,
            format!(
                "multiple source types set ({}); at most one of helm, kustomize, directory, plugin is allowed",
                types.join(", ")
            ),
        );
    }
}

fn validate_destination(p: &mut Problems, path: &str, dest: &Destination) {
    match (dest.server.is_empty(), dest.name.is_empty()) {
        (true, true) => p.push(path, "either server or name is required"),
        (false, false) => p.push(path, "server and name are mutually exclusive"),
        _ => {}
    }
    let server = &dest.server;
    if !server.is_empty() {
        let host = server
            .strip_prefix("https://")
            .or_else(|| server.strip_prefix("http://"))
            .unwrap_or("");
        if host.is_empty() || server.chars().any(char::is_whitespace) {
            p.push(
                format!("{path}.server"),
                format!("{server:?} is not a valid cluster URL (expected https:// or http://)"),
            );
        }
    }
    p.namespace(&format!("{path}.namespace"), &dest.namespace);
}

fn validate_sync_policy(p: &mut Problems, path: &str, policy: &SyncPolicy) {
    for (i, opt) in policy.sync_options.0.iter().enumerate() {
        let ok = opt
            .split_once('=')
            .is_some_and(|(k, _)| !k.trim().is_empty());
        if !ok {
            p.push(
                format!("{path}.syncOptions[{i}]"),
                format!("{opt:?} must be Key=Value"),
            );
        }
    }
    if let Some(backoff) = policy.retry.as_ref().and_then(|r| r.backoff.as_ref()) {
        p.duration(&format!("{path}.retry.backoff.duration"), &backoff.duration);
        p.duration(
            &format!("{path}.retry.backoff.maxDuration"),
            &backoff.max_duration,
        );
        if backoff.factor.is_some_and(|f| f < 1) {
            p.push(format!("{path}.retry.backoff.factor"), "must be at least 1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, namespace: &str) -> Application {
        let mut a = Application::default();
        a.metadata.name = name.into();
        a.metadata.namespace = namespace.into();
        a
    }

    #[test]
    fn tracking_ids() {
        let guestbook = app("guestbook", "argocd");
        assert_eq!(
            guestbook.tracking_id("argocd", "", "Service", "default", "guestbook-ui"),
            "guestbook:/Service:default/guestbook-ui"
        );
        assert_eq!(
            app("web-app", "").tracking_id(
                "argocd",
                "apps",
                "Deployment",
                "production",
                "web-server"
            ),
            "web-app:apps/Deployment:production/web-server"
        );
        assert_eq!(
            app("web", "team-a").tracking_id(
                "argocd",
                "rbac.authorization.k8s.io",
                "ClusterRole",
                "",
                "reader"
            ),
            "team-a_web:rbac.authorization.k8s.io/ClusterRole:/reader"
        );
        let parsed = TrackingId::parse("team-a_web:apps/Deployment:prod/web").unwrap();
        assert_eq!(parsed.app, "team-a_web");
        assert_eq!(parsed.group, "apps");
        assert_eq!(parsed.namespace, "prod");
        assert_eq!(parsed.to_string(), "team-a_web:apps/Deployment:prod/web");
        assert_eq!(
            TrackingId::parse("x:/Namespace:/prod").unwrap().namespace,
            ""
        );
        assert!(TrackingId::parse("garbage").is_none());
        let long = app(&"a".repeat(70), "");
        assert_eq!(long.instance_label_value("argocd").len(), 63);
    }

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
    fn backoff_defaults_and_delays() {
        let none = RetryStrategy::default().effective_backoff();
        assert_eq!(none.duration, Duration::from_secs(5));
        assert_eq!(none.factor, 2);
        assert_eq!(none.max_duration, Duration::from_secs(180));
        assert_eq!(none.delay(0), Duration::from_secs(5));
        assert_eq!(none.delay(2), Duration::from_secs(20));
        assert_eq!(none.delay(10), Duration::from_secs(180));
        let custom = RetryStrategy {
            limit: -1,
            backoff: Some(Backoff {
                duration: "10".into(),
                factor: Some(3),
                max_duration: "1m".into(),
            }),
            refresh: false,
        };
        assert!(custom.is_unlimited());
        let b = custom.effective_backoff();
        assert_eq!(
            (b.duration, b.factor, b.max_duration),
            (Duration::from_secs(10), 3, Duration::from_secs(60))
        );
        assert_eq!(b.delay(1), Duration::from_secs(30));
    }
}
