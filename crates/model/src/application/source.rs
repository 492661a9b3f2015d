//! An Application's sources: the repository, path and revision to render, and the
//! tool-specific settings (Helm, Kustomize, plain directories and Jsonnet, plugins).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::is_false;

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
