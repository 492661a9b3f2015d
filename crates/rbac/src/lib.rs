//! Argo CD's RBAC, pure: its casbin model (`sub, res, act, obj` against `p` lines with an
//! allow/deny effect, where any deny wins), its built-in `role:readonly` and `role:admin`,
//! the user's `policy.csv` from `argocd-rbac-cm`, `policy.default`, SSO groups (the claims
//! named by `scopes`), and project roles (`proj:<project>:<role>`) whose policies come from
//! the AppProject at the time of the request, as Argo CD's `RBACPolicyEnforcer` decides.
//! Patterns in resources, actions and objects are Argo CD's globs (`*` crosses `/`).
//!
//! Nothing here reads a token or a store: callers say who is asking (an [`Identity`]) and
//! hand over the project the request is about ([`Rbac::for_project`]).

mod csv;

use std::collections::HashSet;

use casbin::function_map::OperatorFunction;
use casbin::rhai::Dynamic;
use casbin::{CoreApi, DefaultModel, MemoryAdapter, MgmtApi};
use gitfleet_engine::glob::Glob;
use gitfleet_model::AppProject;

pub use csv::{PolicyError, Rule, parse_policy};

/// Argo CD's `assets/model.conf`.
pub const MODEL: &str = "[request_definition]
r = sub, res, act, obj

[policy_definition]
p = sub, res, act, obj, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && globOrRegexMatch(r.res, p.res) && globOrRegexMatch(r.act, p.act) && globOrRegexMatch(r.obj, p.obj)
";

/// Argo CD's `assets/builtin-policy.csv`: `role:readonly`, `role:admin`, and `admin` in it.
pub const BUILTIN_POLICY: &str = include_str!("builtin-policy.csv");

/// The claims whose values are groups when `scopes` is not set (Argo CD's default).
pub const DEFAULT_SCOPES: [&str; 1] = ["groups"];

/// Resources, as policies name them.
pub mod resources {
    pub const CLUSTERS: &str = "clusters";
    pub const PROJECTS: &str = "projects";
    pub const APPLICATIONS: &str = "applications";
    pub const APPLICATION_SETS: &str = "applicationsets";
    pub const REPOSITORIES: &str = "repositories";
    pub const WRITE_REPOSITORIES: &str = "write-repositories";
    pub const CERTIFICATES: &str = "certificates";
    pub const ACCOUNTS: &str = "accounts";
    pub const GPG_KEYS: &str = "gpgkeys";
    pub const LOGS: &str = "logs";
    pub const EXEC: &str = "exec";
    pub const EXTENSIONS: &str = "extensions";
}

/// Actions, as policies name them.
pub mod actions {
    pub const GET: &str = "get";
    pub const CREATE: &str = "create";
    pub const UPDATE: &str = "update";
    pub const DELETE: &str = "delete";
    pub const SYNC: &str = "sync";
    pub const OVERRIDE: &str = "override";
    pub const ACTION: &str = "action";
    pub const INVOKE: &str = "invoke";
    pub const ROLLBACK: &str = "rollback";
}

/// Who is asking: the subject (`admin`, an SSO user's id, `proj:<project>:<role>` for a
/// project token) and the groups from their token's scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            groups: Vec::new(),
        }
    }

    /// `(project, role)` when the subject is a project role.
    pub fn project_role(&self) -> Option<(&str, &str)> {
        project_role(&self.subject)
    }
}

/// `(project, role)` of a `proj:<project>:<role>` subject.
pub fn project_role(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("proj:")?;
    let (project, role) = rest.split_once(':')?;
    (!project.is_empty() && !role.is_empty() && !role.contains(':')).then_some((project, role))
}

/// The project a request is about, as Argo CD reads it from the object: `<project>/...`
/// for applications, applicationsets, repositories, clusters, logs and exec, the object
/// itself for projects.
pub fn project_of<'a>(resource: &str, object: &'a str) -> Option<&'a str> {
    use resources::*;
    match resource {
        APPLICATIONS | APPLICATION_SETS | REPOSITORIES | CLUSTERS | LOGS | EXEC => {
            object.split_once('/').map(|(p, _)| p)
        }
        PROJECTS => Some(object),
        _ => None,
    }
}

/// A project's roles as policy (Argo CD's `ProjectPoliciesString`): each role may `get`
/// its project, its own lines, and its SSO groups bound to it.
pub fn project_policies(project: &AppProject) -> String {
    let name = &project.metadata.name;
    let mut lines = Vec::new();
    for role in &project.spec.roles {
        lines.push(format!(
            "p, proj:{name}:{}, projects, get, {name}, allow",
            role.name
        ));
        lines.extend(role.policies.iter().cloned());
        for group in &role.groups {
            lines.push(format!("g, {group}, proj:{name}:{}", role.name));
        }
    }
    lines.join("\n")
}

/// Whether a project token (role `role`, id `id`, or issued at `iat` for tokens without
/// an id) is still listed on the project: a token taken off the list is revoked.
pub fn project_token_listed(project: &AppProject, role: &str, id: &str, iat: i64) -> bool {
    project
        .spec
        .roles
        .iter()
        .find(|r| r.name == role)
        .is_some_and(|r| {
            r.jwt_tokens.iter().any(|t| {
                if id.is_empty() {
                    t.iat == iat
                } else {
                    t.id == id
                }
            })
        })
}

/// One casbin enforcer over a set of rules.
pub struct Enforcer {
    inner: casbin::Enforcer,
    /// The first element of every `g` line: the subjects worth trying a group as.
    grouped: HashSet<String>,
}

impl Enforcer {
    async fn new(rules: &[Rule]) -> Result<Self, casbin::Error> {
        let model = DefaultModel::from_str(MODEL).await?;
        let mut inner = casbin::Enforcer::new(model, MemoryAdapter::default()).await?;
        inner.add_function("globOrRegexMatch", OperatorFunction::Arg2(glob_match));
        // casbin adds a batch all or nothing: a line given twice would drop the batch.
        let mut seen = HashSet::new();
        let (mut policies, mut groupings) = (Vec::new(), Vec::new());
        let mut grouped = HashSet::new();
        for rule in rules {
            if !seen.insert(rule.clone()) {
                continue;
            }
            match rule {
                Rule::Policy(fields) => policies.push(fields.to_vec()),
                Rule::Grouping(member, role) => {
                    grouped.insert(member.clone());
                    groupings.push(vec![member.clone(), role.clone()]);
                }
            }
        }
        if !policies.is_empty() {
            inner.add_policies(policies).await?;
        }
        if !groupings.is_empty() {
            inner.add_grouping_policies(groupings).await?;
        }
        Ok(Self { inner, grouped })
    }

    fn allows(&self, subject: &str, resource: &str, action: &str, object: &str) -> bool {
        self.inner
            .enforce((subject, resource, action, object))
            .unwrap_or(false)
    }
}

fn glob_match(value: Dynamic, pattern: Dynamic) -> Dynamic {
    let (Ok(value), Ok(pattern)) = (value.into_string(), pattern.into_string()) else {
        return Dynamic::from_bool(false);
    };
    Dynamic::from_bool(Glob::new(&pattern).matches(&value))
}

/// The built-in and user policies, compiled; the default role and the group scopes.
pub struct Rbac {
    base: Enforcer,
    rules: Vec<Rule>,
    default_role: String,
    scopes: Vec<String>,
}

/// The policies for requests about one project: Argo CD's runtime policy (the project's
/// roles) on top of the built-in and user policies, whose denies still win.
pub struct ProjectEnforcer {
    project: String,
    enforcer: Enforcer,
}

impl Rbac {
    /// Compiles `policy_csv` (named `source` in errors) on top of the built-in policy.
    /// `scopes` empty means [`DEFAULT_SCOPES`].
    pub async fn new(
        source: &str,
        policy_csv: &str,
        default_role: &str,
        scopes: Vec<String>,
    ) -> Result<Self, PolicyError> {
        let mut rules = parse_policy("built-in policy", BUILTIN_POLICY)?;
        rules.extend(parse_policy(source, policy_csv)?);
        let base = Enforcer::new(&rules).await.map_err(|e| PolicyError {
            origin: source.to_owned(),
            line: 0,
            text: String::new(),
            message: e.to_string(),
        })?;
        let scopes = if scopes.is_empty() {
            DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect()
        } else {
            scopes
        };
        Ok(Self {
            base,
            rules,
            default_role: default_role.trim().to_owned(),
            scopes,
        })
    }

    /// The claims whose values are the caller's groups.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The enforcer for requests about `project`. Its roles' policies were checked when the
    /// project was stored; a line that still does not parse is left out (and named).
    pub async fn for_project(&self, project: &AppProject) -> Result<ProjectEnforcer, PolicyError> {
        let source = format!("project {}", project.metadata.name);
        let mut rules = self.rules.clone();
        rules.extend(parse_policy(&source, &project_policies(project))?);
        let enforcer = Enforcer::new(&rules).await.map_err(|e| PolicyError {
            origin: source,
            line: 0,
            text: String::new(),
            message: e.to_string(),
        })?;
        Ok(ProjectEnforcer {
            project: project.metadata.name.clone(),
            enforcer,
        })
    }

    /// Whether `who` may `action` the `resource` `object`. `project` is the enforcer of
    /// the project [`project_of`] names, when that project exists. As Argo CD's
    /// `EnforceClaims`: a project token is judged by its own project's policies only;
    /// anyone else by subject, then by each group some `g` line names, each time with
    /// the default role tried first.
    pub fn enforce(
        &self,
        who: &Identity,
        project: Option<&ProjectEnforcer>,
        resource: &str,
        action: &str,
        object: &str,
    ) -> bool {
        let enforcer = match project {
            Some(p) => {
                if let Some((token_project, _)) = who.project_role() {
                    return token_project == p.project
                        && self.allows(&p.enforcer, &who.subject, resource, action, object);
                }
                &p.enforcer
            }
            None => &self.base,
        };
        if self.allows(enforcer, &who.subject, resource, action, object) {
            return true;
        }
        who.groups
            .iter()
            .filter(|g| enforcer.grouped.contains(*g))
            .any(|g| self.allows(enforcer, g, resource, action, object))
    }

    fn allows(
        &self,
        enforcer: &Enforcer,
        subject: &str,
        resource: &str,
        action: &str,
        object: &str,
    ) -> bool {
        (!self.default_role.is_empty()
            && enforcer.allows(&self.default_role, resource, action, object))
            || enforcer.allows(subject, resource, action, object)
    }
}

#[cfg(test)]
mod tests;
