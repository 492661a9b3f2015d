//! `AppProject` (argoproj.io/v1alpha1): what a group of apps may deploy, from where, to
//! where, and who may act on them; with validation of destinations, roles and policies.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::application::Destination;
use crate::meta::{ObjectMeta, default_api_version, is_false, is_zero};
use crate::validate::{Problems, ValidationErrors};

fn default_kind() -> String {
    "AppProject".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppProject {
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: AppProjectSpec,
    /// `jwtTokensByRole` and the like; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl Default for AppProject {
    fn default() -> Self {
        Self {
            api_version: default_api_version(),
            kind: default_kind(),
            metadata: ObjectMeta::default(),
            spec: AppProjectSpec::default(),
            status: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Allowed source repositories (globs; `*` allows any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_repos: Vec<String>,
    /// Allowed destinations (server/name and namespace globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<Destination>,
    /// Cluster-scoped kinds the project may deploy; empty allows none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_whitelist: Vec<ClusterResourceRestriction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_blacklist: Vec<ClusterResourceRestriction>,
    /// Namespaced kinds the project may deploy: absent allows all, present (even empty)
    /// allows only those listed, as in Argo CD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_resource_whitelist: Option<Vec<GroupKind>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_blacklist: Vec<GroupKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ProjectRole>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_windows: Vec<SyncWindow>,
    /// Namespaces (globs) in which Applications of this project may live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphaned_resources: Option<OrphanedResources>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_keys: Vec<SignatureKey>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub permit_only_project_scoped_clusters: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_service_accounts: Vec<DestinationServiceAccount>,
}

/// A Kubernetes group/kind pair (`group: ""` is the core group; `*` globs allowed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
}

/// A cluster-scoped group/kind, optionally narrowed to names (`filepath.Match` globs, as
/// group and kind are); no name means every object of the kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterResourceRestriction {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRole {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Casbin lines: `p, proj:<project>:<role>, <resource>, <action>, <project>/<object>, allow|deny`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// SSO groups bound to this role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_tokens: Vec<JwtToken>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtToken {
    /// Issued at (unix seconds).
    #[serde(default)]
    pub iat: i64,
    /// Expiry (unix seconds); 0 means never.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exp: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindow {
    /// `allow` or `deny`.
    #[serde(default)]
    pub kind: String,
    /// Cron schedule of the window's start, e.g. `10 1 * * *`.
    #[serde(default)]
    pub schedule: String,
    /// How long the window lasts, e.g. `1h`.
    #[serde(default)]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub manual_sync: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_zone: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub and_operator: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// An operation started while syncing was allowed may run on into a deny window.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sync_overrun: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanedResources {
    /// Raise an `OrphanedResourceWarning` condition; defaults to true when the block exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<OrphanedResourceKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanedResourceKey {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureKey {
    #[serde(rename = "keyID", default)]
    pub key_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationServiceAccount {
    #[serde(default)]
    pub server: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default)]
    pub default_service_account: String,
}

impl AppProject {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The `default` project as Argo CD creates it at start when none is stored: any
    /// repository, any destination, any kind.
    pub fn default_project(namespace: &str) -> Self {
        let mut metadata = ObjectMeta::named(crate::application::DEFAULT_PROJECT);
        metadata.namespace = namespace.to_owned();
        Self {
            metadata,
            spec: AppProjectSpec {
                source_repos: vec!["*".to_owned()],
                destinations: vec![Destination {
                    server: "*".to_owned(),
                    namespace: "*".to_owned(),
                    ..Destination::default()
                }],
                cluster_resource_whitelist: vec![ClusterResourceRestriction {
                    group: "*".to_owned(),
                    kind: "*".to_owned(),
                    name: String::new(),
                }],
                ..AppProjectSpec::default()
            },
            ..Self::default()
        }
    }

    /// Checks what Argo CD's project validation refuses, returning every problem:
    /// name, empty or duplicate source repos and destinations, role names, policy
    /// lines (subject, object and effect), duplicate groups, and sync windows.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        let project = &self.metadata.name;
        p.object_name("metadata.name", project);
        p.namespace("metadata.namespace", &self.metadata.namespace);
        let spec = &self.spec;

        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, repo) in spec.source_repos.iter().enumerate() {
            let path = format!("spec.sourceRepos[{i}]");
            if repo.trim().is_empty() {
                p.push(path, "must not be empty");
            } else if let Some(first) = seen.insert(repo.as_str(), i) {
                p.push(
                    path,
                    format!("{repo:?} duplicates spec.sourceRepos[{first}]"),
                );
            }
        }

        let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for (i, dest) in spec.destinations.iter().enumerate() {
            let path = format!("spec.destinations[{i}]");
            if dest.server.is_empty() && dest.name.is_empty() {
                p.push(path, "either server or name is required");
            } else if let Some(first) = seen.insert((&dest.server, &dest.name, &dest.namespace), i)
            {
                p.push(path, format!("duplicates spec.destinations[{first}]"));
            }
        }

        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, role) in spec.roles.iter().enumerate() {
            let path = format!("spec.roles[{i}]");
            if role.name.is_empty() {
                p.push(format!("{path}.name"), "required");
            } else if !is_role_name(&role.name) {
                p.push(
                    format!("{path}.name"),
                    format!(
                        "{:?} is not a valid role name (alphanumerics, '-' and '_', starting and ending with an alphanumeric)",
                        role.name
                    ),
                );
            } else if let Some(first) = seen.insert(role.name.as_str(), i) {
                p.push(
                    format!("{path}.name"),
                    format!("{:?} duplicates spec.roles[{first}]", role.name),
                );
            }
            for (j, policy) in role.policies.iter().enumerate() {
                if let Err(msg) = check_policy(project, &role.name, policy) {
                    p.push(format!("{path}.policies[{j}]"), msg);
                }
            }
            let mut groups: HashMap<&str, usize> = HashMap::new();
            for (j, group) in role.groups.iter().enumerate() {
                if group.trim().is_empty() {
                    p.push(format!("{path}.groups[{j}]"), "must not be empty");
                } else if let Some(first) = groups.insert(group.as_str(), j) {
                    p.push(
                        format!("{path}.groups[{j}]"),
                        format!("{group:?} duplicates groups[{first}]"),
                    );
                }
            }
        }

        for (i, window) in spec.sync_windows.iter().enumerate() {
            let path = format!("spec.syncWindows[{i}]");
            if window.kind != "allow" && window.kind != "deny" {
                p.push(
                    format!("{path}.kind"),
                    format!("{:?} must be allow or deny", window.kind),
                );
            }
            if window.schedule.split_whitespace().count() != 5 {
                p.push(
                    format!("{path}.schedule"),
                    format!(
                        "{:?} is not a cron schedule (5 fields, e.g. \"10 1 * * *\")",
                        window.schedule
                    ),
                );
            }
            if window.duration.is_empty() {
                p.push(format!("{path}.duration"), "required");
            } else {
                p.duration(&format!("{path}.duration"), &window.duration);
            }
            if window.applications.is_empty()
                && window.namespaces.is_empty()
                && window.clusters.is_empty()
            {
                p.push(
                    path,
                    "at least one of applications, namespaces or clusters is required",
                );
            }
        }
        p.finish()
    }

    /// The role's groups by role name, for RBAC.
    pub fn role_groups(&self) -> BTreeMap<&str, &[String]> {
        self.spec
            .roles
            .iter()
            .map(|r| (r.name.as_str(), r.groups.as_slice()))
            .collect()
    }
}

fn is_role_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Argo CD's `validatePolicy`: six comma-separated fields, `p`, subject
/// `proj:<project>:<role>`, object `<project>/...`, effect allow|deny.
fn check_policy(project: &str, role: &str, policy: &str) -> Result<(), String> {
    let parts: Vec<&str> = policy.split(',').map(str::trim).collect();
    if parts.len() != 6 || parts[0] != "p" {
        return Err(format!(
            "{policy:?} must be of the form 'p, proj:{project}:{role}, <resource>, <action>, {project}/<object>, allow|deny'"
        ));
    }
    let mut problems = Vec::new();
    let subject = format!("proj:{project}:{role}");
    if parts[1] != subject {
        problems.push(format!("subject must be {subject:?}, not {:?}", parts[1]));
    }
    if parts[2].is_empty() || parts[3].is_empty() {
        problems.push("resource and action are required".to_owned());
    }
    let object_ok = parts[4]
        .strip_prefix(project)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "*_-./".contains(c))
        });
    if !object_ok {
        problems.push(format!(
            "object must be {project}/* or {project}/<app>, not {:?}",
            parts[4]
        ));
    }
    if parts[5] != "allow" && parts[5] != "deny" {
        problems.push(format!("effect must be allow or deny, not {:?}", parts[5]));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "invalid policy {policy:?}: {}",
            problems.join("; ")
        ))
    }
}
