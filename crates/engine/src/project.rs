//! AppProject rules, as Argo CD applies them: whether an application's sources,
//! destination and namespace, and each resource it deploys, are permitted by its project.
//! Every refusal names the rule (the project field) that refused it.
//!
//! - `sourceRepos`: globs over normalised repository URLs with `/` as separator (`*` is one
//!   path segment, `**` any), `!` negation; a deny pattern refuses what it names and, as
//!   in Argo CD's code, counts as a match for everything else.
//! - `destinations`: server or name, and namespace, globs with `!` negation; the resolved
//!   cluster's server and name both count, so `name: in-cluster` permits an app written
//!   with `server: https://kubernetes.default.svc`.
//! - `clusterResourceWhitelist` (empty: no cluster-scoped kind) and `...Blacklist`, with
//!   optional names; `namespaceResourceWhitelist` (absent: every namespaced kind) and
//!   `...Blacklist`; group and kind are `filepath.Match` globs.
//! - `permitOnlyProjectScopedClusters`: the destination must be a cluster scoped to the
//!   project. `sourceNamespaces`: Applications outside the control plane's namespace.

use gitfleet_model::{AppProject, Application, Cluster, IN_CLUSTER_NAME, IN_CLUSTER_SERVER};

use crate::glob::Glob;

/// Why a project refuses an application or one of its resources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("application references project {project} which does not exist")]
    ProjectMissing { project: String },
    #[error(
        "application repo {repo} is not permitted in project '{project}' (not allowed by spec.sourceRepos)"
    )]
    Source { repo: String, project: String },
    #[error(
        "application destination server '{server}' and namespace '{namespace}' do not match any of the allowed destinations in project '{project}' (spec.destinations)"
    )]
    Destination {
        server: String,
        namespace: String,
        project: String,
    },
    #[error(
        "application destination cluster '{cluster}' is not scoped to project '{project}' (spec.permitOnlyProjectScopedClusters)"
    )]
    ClusterNotScoped { cluster: String, project: String },
    #[error(
        "application '{app}' in namespace '{namespace}' is not permitted to use project '{project}' (spec.sourceNamespaces)"
    )]
    AppNamespace {
        app: String,
        namespace: String,
        project: String,
    },
    #[error("resource {group}:{kind} is not permitted in project {project} ({rule})")]
    Resource {
        group: String,
        kind: String,
        name: String,
        project: String,
        rule: KindRule,
    },
    #[error("namespace {namespace} is not permitted in project '{project}' (spec.destinations)")]
    Namespace { namespace: String, project: String },
}

/// Which kind list refused a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindRule {
    NotInClusterWhitelist,
    InClusterBlacklist,
    NotInNamespaceWhitelist,
    InNamespaceBlacklist,
}

impl std::fmt::Display for KindRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotInClusterWhitelist => "not in spec.clusterResourceWhitelist",
            Self::InClusterBlacklist => "in spec.clusterResourceBlacklist",
            Self::NotInNamespaceWhitelist => "not in spec.namespaceResourceWhitelist",
            Self::InNamespaceBlacklist => "in spec.namespaceResourceBlacklist",
        })
    }
}

/// A pattern that may be negated with a leading `!`.
#[derive(Debug, Clone)]
struct Pattern {
    deny: bool,
    /// `*` alone matches anything, before any compilation (Argo CD's `globMatch`).
    any: bool,
    glob: Glob,
}

impl Pattern {
    fn new(raw: &str, separator: Option<char>) -> Self {
        let (deny, body) = match raw.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let glob = match separator {
            Some(sep) => Glob::with_separator(body, sep),
            None => Glob::new(body),
        };
        Self {
            deny,
            any: !deny && body == "*",
            glob,
        }
    }

    /// Argo CD's `globMatch` with negation: a deny pattern "matches" what it does not name.
    fn matches(&self, text: &str) -> bool {
        if self.deny {
            !self.glob.matches(text)
        } else {
            self.any || self.glob.matches(text)
        }
    }
}

#[derive(Debug, Clone)]
struct KindPattern {
    group: Glob,
    kind: Glob,
    /// `None`: every name.
    name: Option<Glob>,
}

impl KindPattern {
    fn matches(&self, group: &str, kind: &str, name: &str) -> bool {
        self.kind.matches(kind)
            && self.group.matches(group)
            && self.name.as_ref().is_none_or(|n| n.matches(name))
    }
}

#[derive(Debug, Clone)]
struct DestinationPattern {
    server: Pattern,
    name: Pattern,
    namespace: Pattern,
}

/// A project compiled for checking: its globs built once, so checking every resource of
/// every app of a fleet costs no pattern compilation.
#[derive(Debug, Clone)]
pub struct ProjectRules {
    name: String,
    source_repos: Vec<Pattern>,
    destinations: Vec<DestinationPattern>,
    cluster_whitelist: Vec<KindPattern>,
    cluster_blacklist: Vec<KindPattern>,
    /// `None`: every namespaced kind.
    namespace_whitelist: Option<Vec<KindPattern>>,
    namespace_blacklist: Vec<KindPattern>,
    source_namespaces: Vec<Glob>,
    permit_only_project_scoped_clusters: bool,
}

impl ProjectRules {
    pub fn new(project: &AppProject) -> Self {
        let spec = &project.spec;
        let kinds = |list: &mut dyn Iterator<Item = (&str, &str, &str)>| -> Vec<KindPattern> {
            list.map(|(group, kind, name)| KindPattern {
                group: Glob::new(group),
                kind: Glob::new(kind),
                name: (!name.is_empty()).then(|| Glob::new(name)),
            })
            .collect()
        };
        Self {
            name: project.metadata.name.clone(),
            source_repos: spec
                .source_repos
                .iter()
                .map(|repo| {
                    let (bang, body) = match repo.strip_prefix('!') {
                        Some(rest) => ("!", rest),
                        None => ("", repo.as_str()),
                    };
                    Pattern::new(&format!("{bang}{}", normalize_git_url(body)), Some('/'))
                })
                .collect(),
            destinations: spec
                .destinations
                .iter()
                .map(|d| DestinationPattern {
                    server: Pattern::new(&d.server, None),
                    name: Pattern::new(&d.name, None),
                    namespace: Pattern::new(&d.namespace, None),
                })
                .collect(),
            cluster_whitelist: kinds(
                &mut spec
                    .cluster_resource_whitelist
                    .iter()
                    .map(|r| (r.group.as_str(), r.kind.as_str(), r.name.as_str())),
            ),
            cluster_blacklist: kinds(
                &mut spec
                    .cluster_resource_blacklist
                    .iter()
                    .map(|r| (r.group.as_str(), r.kind.as_str(), r.name.as_str())),
            ),
            namespace_whitelist: spec.namespace_resource_whitelist.as_ref().map(|list| {
                kinds(&mut list.iter().map(|r| (r.group.as_str(), r.kind.as_str(), "")))
            }),
            namespace_blacklist: kinds(
                &mut spec
                    .namespace_resource_blacklist
                    .iter()
                    .map(|r| (r.group.as_str(), r.kind.as_str(), "")),
            ),
            source_namespaces: spec
                .source_namespaces
                .iter()
                .map(|p| Glob::new(p))
                .collect(),
            permit_only_project_scoped_clusters: spec.permit_only_project_scoped_clusters,
        }
    }

    /// Argo CD's `IsSourcePermitted`: some pattern matches and no deny pattern refuses.
    pub fn source_permitted(&self, repo_url: &str) -> bool {
        let repo = normalize_git_url(repo_url);
        let mut any = false;
        for pattern in &self.source_repos {
            if pattern.matches(&repo) {
                any = true;
            } else if pattern.deny {
                return false;
            }
        }
        any
    }

    /// Argo CD's `isDestinationMatched` for a resolved cluster (its server and name) and a
    /// namespace.
    fn destination_matched(&self, cluster: &Cluster, namespace: &str) -> bool {
        let mut any = false;
        for d in &self.destinations {
            let name_matched = !cluster.name.is_empty() && d.name.matches(&cluster.name);
            let server_matched = !cluster.server.is_empty() && d.server.matches(&cluster.server);
            let namespace_matched = d.namespace.matches(namespace);
            // Go's precedence, kept: the name clause refuses whatever the namespace.
            let refused_by_cluster = (!name_matched && d.name.deny)
                || (!server_matched && d.server.deny && namespace_matched);
            let refused_by_namespace = !namespace_matched && d.namespace.deny && server_matched;
            if (server_matched || name_matched) && namespace_matched {
                any = true;
            } else if refused_by_cluster || refused_by_namespace {
                return false;
            }
        }
        any
    }

    /// Whether `namespace` of `cluster` is an allowed destination (with
    /// `permitOnlyProjectScopedClusters`, only on a cluster whose `project` is this one).
    pub fn destination_permitted(
        &self,
        cluster: &Cluster,
        namespace: &str,
    ) -> Result<(), Violation> {
        if !self.destination_matched(cluster, namespace) {
            return Err(Violation::Destination {
                server: cluster.server.clone(),
                namespace: namespace.to_owned(),
                project: self.name.clone(),
            });
        }
        if self.permit_only_project_scoped_clusters && cluster.project != self.name {
            return Err(Violation::ClusterNotScoped {
                cluster: if cluster.name.is_empty() {
                    cluster.server.clone()
                } else {
                    cluster.name.clone()
                },
                project: self.name.clone(),
            });
        }
        Ok(())
    }

    /// Argo CD's `IsGroupKindNamePermitted`.
    pub fn kind_permitted(
        &self,
        group: &str,
        kind: &str,
        name: &str,
        namespaced: bool,
    ) -> Result<(), KindRule> {
        let listed = |list: &[KindPattern]| list.iter().any(|p| p.matches(group, kind, name));
        if namespaced {
            if self
                .namespace_whitelist
                .as_ref()
                .is_some_and(|list| !listed(list))
            {
                return Err(KindRule::NotInNamespaceWhitelist);
            }
            if listed(&self.namespace_blacklist) {
                return Err(KindRule::InNamespaceBlacklist);
            }
        } else {
            if !listed(&self.cluster_whitelist) {
                return Err(KindRule::NotInClusterWhitelist);
            }
            if listed(&self.cluster_blacklist) {
                return Err(KindRule::InClusterBlacklist);
            }
        }
        Ok(())
    }

    /// Argo CD's `validateSyncPermissions` for one object: its kind, and for a namespaced
    /// one its namespace as a destination on `cluster`.
    #[allow(clippy::too_many_arguments)]
    pub fn resource_permitted(
        &self,
        group: &str,
        kind: &str,
        name: &str,
        namespace: &str,
        namespaced: bool,
        cluster: &Cluster,
    ) -> Result<(), Violation> {
        self.kind_permitted(group, kind, name, namespaced)
            .map_err(|rule| Violation::Resource {
                group: group.to_owned(),
                kind: kind.to_owned(),
                name: name.to_owned(),
                project: self.name.clone(),
                rule,
            })?;
        if namespaced && !self.destination_matched(cluster, namespace) {
            return Err(Violation::Namespace {
                namespace: namespace.to_owned(),
                project: self.name.clone(),
            });
        }
        Ok(())
    }

    /// Every way `app`'s spec breaks this project: each source's repository, the
    /// destination on `cluster` (see [`destination_of`]), and the app's own namespace
    /// (`control_ns` is always permitted).
    pub fn check_application(
        &self,
        app: &Application,
        cluster: &Cluster,
        control_ns: &str,
    ) -> Vec<Violation> {
        let mut violations = Vec::new();
        for source in app.spec.effective_sources() {
            if !self.source_permitted(&source.repo_url) {
                violations.push(Violation::Source {
                    repo: source.repo_url.clone(),
                    project: self.name.clone(),
                });
            }
        }
        if let Err(v) = self.destination_permitted(cluster, &app.spec.destination.namespace) {
            violations.push(v);
        }
        let ns = &app.metadata.namespace;
        if !ns.is_empty()
            && ns != control_ns
            && !self.source_namespaces.iter().any(|g| g.matches(ns))
        {
            violations.push(Violation::AppNamespace {
                app: app.metadata.name.clone(),
                namespace: ns.clone(),
                project: self.name.clone(),
            });
        }
        violations
    }
}

/// The cluster `app` deploys to, with both its server and its name, from the known
/// `clusters`; when it is not known, what the app wrote (the missing cluster is reported
/// on its own).
pub fn destination_of<'a>(
    app: &Application,
    clusters: impl IntoIterator<Item = &'a Cluster>,
) -> Cluster {
    let dest = &app.spec.destination;
    let server = dest.server.trim_end_matches('/');
    let found = clusters.into_iter().find(|c| {
        if dest.name.is_empty() {
            !server.is_empty() && c.server.trim_end_matches('/') == server
        } else {
            c.name == dest.name
        }
    });
    match found {
        Some(c) => c.clone(),
        None if dest.is_in_cluster() => Cluster {
            server: IN_CLUSTER_SERVER.to_owned(),
            name: IN_CLUSTER_NAME.to_owned(),
            ..Cluster::default()
        },
        None => Cluster {
            server: dest.server.clone(),
            name: dest.name.clone(),
            ..Cluster::default()
        },
    }
}

/// Argo CD's `NormalizeGitURL`, for comparison only: lower case, `git@host:path` read as
/// `git@host/path`, `ssh://` and a trailing `.git` dropped.
pub fn normalize_git_url(url: &str) -> String {
    let mut repo = url.trim().to_lowercase();
    if let Some(rest) = repo.strip_prefix("ssh://") {
        repo = rest.to_owned();
    } else if is_scp_like(&repo) {
        repo = repo.replacen(':', "/", 1);
    }
    repo.strip_suffix(".git").map(str::to_owned).unwrap_or(repo)
}

/// `user@host:path`: Argo CD's `^(ssh://)?([^/:]*?)@[^@]+$` without the scheme.
fn is_scp_like(url: &str) -> bool {
    match url.split_once('@') {
        Some((user, rest)) => !user.contains(['/', ':']) && !rest.contains('@'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use gitfleet_model::{
        ApplicationSource, ClusterResourceRestriction, Destination, GroupKind, ObjectMeta,
    };

    use super::*;

    fn project(f: impl FnOnce(&mut AppProject)) -> ProjectRules {
        let mut p = AppProject {
            metadata: ObjectMeta::named("p"),
            ..AppProject::default()
        };
        f(&mut p);
        ProjectRules::new(&p)
    }

    fn cluster(server: &str, name: &str) -> Cluster {
        Cluster {
            server: server.into(),
            name: name.into(),
            ..Cluster::default()
        }
    }

    fn dest(server: &str, name: &str, namespace: &str) -> Destination {
        Destination {
            server: server.into(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    #[test]
    fn source_repos_as_argo_cd_matches_them() {
        let rules = project(|p| {
            p.spec.source_repos = vec![
                "https://github.com/org/*".into(),
                "!https://github.com/org/secret".into(),
                "git@gitlab.com:team/app.git".into(),
            ]
        });
        assert!(rules.source_permitted("https://github.com/org/web"));
        assert!(rules.source_permitted("https://GitHub.com/org/web.git"));
        assert!(!rules.source_permitted("https://github.com/org/secret"));
        // A deny pattern "matches" every repository it does not name, so beside one the
        // other patterns permit nothing more (Argo CD's `IsSourcePermitted`).
        assert!(rules.source_permitted("https://github.com/other/web"));
        assert!(rules.source_permitted("git@gitlab.com:team/app"));
        let plain = project(|p| p.spec.source_repos = vec!["https://github.com/org/*".into()]);
        assert!(!plain.source_permitted("https://github.com/org/a/b"));
        assert!(!plain.source_permitted("https://github.com/other/web"));
        assert!(rules.source_permitted("ssh://git@gitlab.com/team/app.git"));

        let any = project(|p| p.spec.source_repos = vec!["*".into()]);
        assert!(any.source_permitted("https://example.com/a/b/c.git"));
        let none = project(|_| {});
        assert!(!none.source_permitted("https://example.com/a"));
        let only_deny = project(|p| p.spec.source_repos = vec!["!https://x/y".into()]);
        assert!(only_deny.source_permitted("https://x/z"));
        assert!(!only_deny.source_permitted("https://x/y"));
        let deny_and_any = project(|p| {
            p.spec.source_repos = vec!["!https://x/y".into(), "*".into()];
        });
        assert!(deny_and_any.source_permitted("https://x/z"));
        assert!(!deny_and_any.source_permitted("https://x/y"));
    }

    #[test]
    fn destinations_by_server_or_name_with_negation() {
        let rules = project(|p| {
            p.spec.destinations = vec![
                dest("", "in-cluster", "team-*"),
                dest("https://prod.example.com", "", "!kube-system"),
            ]
        });
        let local = cluster(IN_CLUSTER_SERVER, IN_CLUSTER_NAME);
        let prod = cluster("https://prod.example.com", "prod");
        assert!(rules.destination_permitted(&local, "team-a").is_ok());
        assert!(rules.destination_permitted(&local, "other").is_err());
        assert!(rules.destination_permitted(&prod, "apps").is_ok());
        let err = rules
            .destination_permitted(&prod, "kube-system")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "application destination server 'https://prod.example.com' and namespace 'kube-system' do not match any of the allowed destinations in project 'p' (spec.destinations)"
        );
        assert!(
            rules
                .destination_permitted(&cluster("https://other", "other"), "team-a")
                .is_err()
        );

        let any_but_prod = project(|p| {
            p.spec.destinations = vec![
                dest("!https://prod.example.com", "", "*"),
                dest("*", "", "*"),
            ]
        });
        assert!(any_but_prod.destination_permitted(&local, "x").is_ok());
        assert!(any_but_prod.destination_permitted(&prod, "x").is_err());
    }

    #[test]
    fn project_scoped_clusters_only() {
        let rules = project(|p| {
            p.spec.destinations = vec![dest("*", "", "*")];
            p.spec.permit_only_project_scoped_clusters = true;
        });
        let mut c = cluster("https://a", "a");
        assert!(matches!(
            rules.destination_permitted(&c, "x"),
            Err(Violation::ClusterNotScoped { .. })
        ));
        c.project = "p".into();
        assert!(rules.destination_permitted(&c, "x").is_ok());
    }

    #[test]
    fn kind_lists() {
        let gk = |group: &str, kind: &str| GroupKind {
            group: group.into(),
            kind: kind.into(),
        };
        let default = project(|_| {});
        assert_eq!(
            default.kind_permitted("", "Namespace", "x", false),
            Err(KindRule::NotInClusterWhitelist)
        );
        assert!(
            default
                .kind_permitted("apps", "Deployment", "x", true)
                .is_ok()
        );

        let rules = project(|p| {
            p.spec.cluster_resource_whitelist = vec![
                ClusterResourceRestriction {
                    group: "".into(),
                    kind: "Namespace".into(),
                    name: String::new(),
                },
                ClusterResourceRestriction {
                    group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: "team-*".into(),
                },
            ];
            p.spec.namespace_resource_whitelist = Some(vec![gk("apps", "*"), gk("", "*")]);
            p.spec.namespace_resource_blacklist = vec![gk("", "ResourceQuota")];
        });
        assert!(rules.kind_permitted("", "Namespace", "n", false).is_ok());
        assert!(
            rules
                .kind_permitted("rbac.authorization.k8s.io", "ClusterRole", "team-a", false)
                .is_ok()
        );
        assert_eq!(
            rules.kind_permitted("rbac.authorization.k8s.io", "ClusterRole", "admin", false),
            Err(KindRule::NotInClusterWhitelist)
        );
        assert!(
            rules
                .kind_permitted("apps", "Deployment", "d", true)
                .is_ok()
        );
        assert_eq!(
            rules.kind_permitted("batch", "Job", "j", true),
            Err(KindRule::NotInNamespaceWhitelist)
        );
        assert_eq!(
            rules.kind_permitted("", "ResourceQuota", "q", true),
            Err(KindRule::InNamespaceBlacklist)
        );
        // An empty whitelist, written, permits no namespaced kind.
        let empty = project(|p| p.spec.namespace_resource_whitelist = Some(Vec::new()));
        assert!(empty.kind_permitted("", "ConfigMap", "c", true).is_err());
        let blacklisted = project(|p| {
            p.spec.cluster_resource_whitelist = vec![ClusterResourceRestriction {
                group: "*".into(),
                kind: "*".into(),
                name: String::new(),
            }];
            p.spec.cluster_resource_blacklist = vec![ClusterResourceRestriction {
                group: "".into(),
                kind: "Namespace".into(),
                name: "kube-*".into(),
            }];
        });
        assert!(
            blacklisted
                .kind_permitted("", "Namespace", "team", false)
                .is_ok()
        );
        assert_eq!(
            blacklisted.kind_permitted("", "Namespace", "kube-system", false),
            Err(KindRule::InClusterBlacklist)
        );
    }

    #[test]
    fn resources_name_the_rule_and_check_namespaces() {
        let rules = project(|p| p.spec.destinations = vec![dest("*", "", "apps")]);
        let c = cluster("https://a", "a");
        let err = rules
            .resource_permitted(
                "rbac.authorization.k8s.io",
                "ClusterRole",
                "x",
                "",
                false,
                &c,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource rbac.authorization.k8s.io:ClusterRole is not permitted in project p (not in spec.clusterResourceWhitelist)"
        );
        assert!(
            rules
                .resource_permitted("", "ConfigMap", "c", "apps", true, &c)
                .is_ok()
        );
        assert_eq!(
            rules
                .resource_permitted("", "ConfigMap", "c", "other", true, &c)
                .unwrap_err()
                .to_string(),
            "namespace other is not permitted in project 'p' (spec.destinations)"
        );
    }

    #[test]
    fn applications_are_checked_source_by_source() {
        let rules = project(|p| {
            p.spec.source_repos = vec!["https://git/allowed".into()];
            p.spec.destinations = vec![dest("*", "", "*")];
        });
        let mut app = Application::default();
        app.metadata.name = "a".into();
        app.spec.sources = vec![
            ApplicationSource {
                repo_url: "https://git/allowed".into(),
                ..ApplicationSource::default()
            },
            ApplicationSource {
                repo_url: "https://git/other".into(),
                ..ApplicationSource::default()
            },
        ];
        app.spec.destination = dest(IN_CLUSTER_SERVER, "", "x");
        let c = destination_of(&app, []);
        assert_eq!(c.name, IN_CLUSTER_NAME);
        let found = rules.check_application(&app, &c, "argocd");
        assert_eq!(
            found,
            [Violation::Source {
                repo: "https://git/other".into(),
                project: "p".into()
            }]
        );
        app.metadata.namespace = "team-ns".into();
        let found = rules.check_application(&app, &c, "argocd");
        assert!(
            matches!(found[1], Violation::AppNamespace { .. }),
            "{found:?}"
        );
    }

    #[test]
    fn the_default_project_permits_everything() {
        let rules = ProjectRules::new(&AppProject::default_project("argocd"));
        let c = cluster("https://anywhere", "x");
        assert!(rules.source_permitted("https://any/repo/at/all.git"));
        assert!(rules.destination_permitted(&c, "any").is_ok());
        assert!(
            rules
                .resource_permitted("", "Namespace", "n", "", false, &c)
                .is_ok()
        );
        assert!(
            rules
                .resource_permitted("apps", "Deployment", "d", "ns", true, &c)
                .is_ok()
        );
    }

    #[test]
    fn git_urls_normalise_as_argo_cd_does() {
        assert_eq!(
            normalize_git_url(" https://GitHub.com/Org/Repo.git "),
            "https://github.com/org/repo"
        );
        assert_eq!(
            normalize_git_url("git@github.com:org/repo.git"),
            "git@github.com/org/repo"
        );
        assert_eq!(
            normalize_git_url("ssh://git@github.com/org/repo"),
            "git@github.com/org/repo"
        );
        assert_eq!(
            normalize_git_url("https://user@host/x"),
            "https://user@host/x"
        );
    }
}
