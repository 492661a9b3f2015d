//! `ApplicationSet` (argoproj.io/v1alpha1): generators (kept as written, with their kind),
//! the Application template, and the set's own sync policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::application::ApplicationSpec;
use crate::meta::{ObjectMeta, default_api_version, is_false};
use crate::validate::{Problems, ValidationErrors};

fn default_kind() -> String {
    "ApplicationSet".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSet {
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ApplicationSetSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl Default for ApplicationSet {
    fn default() -> Self {
        Self {
            api_version: default_api_version(),
            kind: default_kind(),
            metadata: ObjectMeta::default(),
            spec: ApplicationSetSpec::default(),
            status: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSpec {
    /// Use Go templates (`{{.path.basename}}`) instead of fasttemplate (`{{path.basename}}`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub go_template: bool,
    /// e.g. `missingkey=error`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub go_template_options: Vec<String>,
    #[serde(default)]
    pub generators: Vec<Generator>,
    #[serde(default)]
    pub template: ApplicationTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<ApplicationSetSyncPolicy>,
    /// Rolling sync strategy; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserved_fields: Option<PreservedFields>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_application_differences: Vec<serde_json::Value>,
    /// A templated YAML/JSON patch applied to each generated Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_patch: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub apply_nested_selectors: bool,
}

/// The Application every generator element is rendered into. Strings may hold template
/// expressions, so it is not validated as an Application until rendered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationTemplate {
    #[serde(default)]
    pub metadata: TemplateMeta,
    #[serde(default)]
    pub spec: ApplicationSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSyncPolicy {
    /// Keep generated Applications' resources when the set is deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub preserve_resources_on_deletion: bool,
    /// `create-only`, `create-update`, `create-delete` or `sync` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications_sync: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreservedFields {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// One entry of `spec.generators`, kept exactly as written (generators have many
/// options and nest in matrix/merge); [`Generator::kind`] says which generator it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Generator(pub serde_json::Value);

/// The generator kinds Argo CD knows, by their key in a generator entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeneratorKind {
    List,
    Cluster,
    Git,
    Matrix,
    Merge,
    ScmProvider,
    PullRequest,
    ClusterDecisionResource,
    Plugin,
}

impl GeneratorKind {
    pub const ALL: [GeneratorKind; 9] = [
        Self::List,
        Self::Cluster,
        Self::Git,
        Self::Matrix,
        Self::Merge,
        Self::ScmProvider,
        Self::PullRequest,
        Self::ClusterDecisionResource,
        Self::Plugin,
    ];

    /// The key of this generator in a generator entry (`clusters` for the cluster generator).
    pub fn key(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Cluster => "clusters",
            Self::Git => "git",
            Self::Matrix => "matrix",
            Self::Merge => "merge",
            Self::ScmProvider => "scmProvider",
            Self::PullRequest => "pullRequest",
            Self::ClusterDecisionResource => "clusterDecisionResource",
            Self::Plugin => "plugin",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == key)
    }
}

impl Generator {
    /// Which generator this entry is (the first known generator key present), or `None`
    /// if it names no known generator.
    pub fn kind(&self) -> Option<GeneratorKind> {
        let map = self.0.as_object()?;
        map.keys().find_map(|k| GeneratorKind::from_key(k))
    }

    /// The generator's own options (the value under its key).
    pub fn config(&self) -> Option<&serde_json::Value> {
        self.0.get(self.kind()?.key())
    }

    /// The entry's `selector` (label selector over generated parameters), if any.
    pub fn selector(&self) -> Option<&serde_json::Value> {
        self.0.get("selector")
    }

    /// Child generators of a `matrix` or `merge` generator.
    pub fn children(&self) -> Vec<Generator> {
        match self.kind() {
            Some(GeneratorKind::Matrix | GeneratorKind::Merge) => self
                .config()
                .and_then(|c| c.get("generators"))
                .and_then(|g| g.as_array())
                .map(|a| a.iter().cloned().map(Generator).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

impl ApplicationSet {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Checks the set itself, returning every problem: name, at least one generator,
    /// each generator (nested ones too) of a known kind, and `applicationsSync`. The
    /// template is not validated: it holds template expressions until rendered.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.object_name("metadata.name", &self.metadata.name);
        p.namespace("metadata.namespace", &self.metadata.namespace);
        if self.spec.generators.is_empty() {
            p.push("spec.generators", "at least one generator is required");
        }
        for (i, generator) in self.spec.generators.iter().enumerate() {
            check_generator(&mut p, &format!("spec.generators[{i}]"), generator);
        }
        if let Some(mode) = self
            .spec
            .sync_policy
            .as_ref()
            .and_then(|s| s.applications_sync.as_deref())
            && !["create-only", "create-update", "create-delete", "sync"].contains(&mode)
        {
            p.push(
                "spec.syncPolicy.applicationsSync",
                format!("{mode:?} must be one of create-only, create-update, create-delete, sync"),
            );
        }
        p.finish()
    }
}

fn check_generator(p: &mut Problems, path: &str, generator: &Generator) {
    let Some(kind) = generator.kind() else {
        let keys: Vec<&'static str> = GeneratorKind::ALL.iter().map(|k| k.key()).collect();
        p.push(
            path,
            format!("no known generator (expected one of {})", keys.join(", ")),
        );
        return;
    };
    if matches!(kind, GeneratorKind::Matrix | GeneratorKind::Merge) {
        for (i, child) in generator.children().iter().enumerate() {
            check_generator(p, &format!("{path}.{}.generators[{i}]", kind.key()), child);
        }
    }
}
