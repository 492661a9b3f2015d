//! The SCM provider generator, pure: an organization's repositories (and their default
//! branch, or every branch) as GitHub, GitLab, Gitea and Bitbucket Server's APIs list
//! them, Argo CD's filters in Argo CD's order, and the parameters each repository and
//! branch gives. The controller does the HTTP (and the path checks `pathsExist` and
//! `pathsDoNotExist` need); nothing here sees a token.

use serde_json::{Map, Value, json};

use crate::params::sanitize_name;
use crate::pull_request::{
    Auth, Cursor, Provider, auth, enc, regex_field, repository_api, required, str_field,
};

/// Page sizes the providers' APIs allow.
const PER_PAGE: u32 = 100;
const GITEA_PER_PAGE: u32 = 50;

/// One scan of one organization: what the controller lists (a set's filters included,
/// since path checks cost calls).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScmQuery {
    pub provider: Provider,
    pub api: String,
    /// GitHub's organization, Gitea's owner, GitLab's group (id or path), Bitbucket
    /// Server's project key.
    pub organization: String,
    pub all_branches: bool,
    /// `https` or `ssh` (Argo CD's default where the provider has it).
    pub clone_protocol: String,
    pub auth: Auth,
    pub insecure: bool,
    /// GitHub's `excludeArchivedRepos` (false: archived included), GitLab's
    /// `includeArchivedRepos` (false: excluded), as each provider's option says.
    pub archived: bool,
    /// GitLab: `includeSubgroups`, `includeSharedProjects` (default true), `topic`.
    pub include_subgroups: bool,
    pub include_shared_projects: bool,
    pub topic: String,
    /// The filters, as written (compiled by [`ScmQuery::filters`]).
    pub filters: Vec<FilterSpec>,
}

/// A filter as written: regular expressions and paths.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FilterSpec {
    pub repository_match: String,
    pub label_match: String,
    pub branch_match: String,
    pub paths_exist: Vec<String>,
    pub paths_do_not_exist: Vec<String>,
}

/// A filter compiled. Argo CD's kinds: one with only repository and label conditions is
/// applied to repositories before their branches are listed; one with a branch or path
/// condition to each repository's branches.
#[derive(Debug, Clone)]
pub struct Filter {
    repository: Option<regex::Regex>,
    label: Option<regex::Regex>,
    branch: Option<regex::Regex>,
    pub paths_exist: Vec<String>,
    pub paths_do_not_exist: Vec<String>,
}

impl Filter {
    /// Whether the filter has a branch or path condition (Argo CD's branch filter).
    pub fn on_branches(&self) -> bool {
        self.branch.is_some() || !self.paths_exist.is_empty() || !self.paths_do_not_exist.is_empty()
    }

    /// The repository, label and branch conditions (paths are the controller's calls).
    pub fn matches(&self, repo: &Repository, branch: Option<&str>) -> bool {
        self.repository
            .as_ref()
            .is_none_or(|r| r.is_match(&repo.name))
            && self
                .label
                .as_ref()
                .is_none_or(|r| repo.labels.iter().any(|l| r.is_match(l)))
            && match (&self.branch, branch) {
                (Some(r), Some(b)) => r.is_match(b),
                _ => true,
            }
    }
}

/// A repository as the listing reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub organization: String,
    pub name: String,
    pub id: String,
    pub url: String,
    pub default_branch: String,
    pub labels: Vec<String>,
    pub archived: bool,
    /// What the branch and path calls name it by (GitLab's project id; else the name).
    pub key: String,
}

/// A branch: its name and the commit at its head.
pub type Branch = (String, String);

/// One repository at one branch: what a parameter set is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryBranch {
    pub repository: Repository,
    pub branch: String,
    pub sha: String,
}

/// An SCM provider generator's configuration, read and checked.
#[derive(Debug, Clone)]
pub struct ScmProviderGenerator {
    pub query: ScmQuery,
}

impl ScmProviderGenerator {
    /// Reads `scmProvider` (`at` names it in errors).
    pub fn parse(config: &Value, at: &str) -> Result<Self, String> {
        const KEYS: [(&str, Option<Provider>); 6] = [
            ("github", Some(Provider::GitHub)),
            ("gitlab", Some(Provider::GitLab)),
            ("gitea", Some(Provider::Gitea)),
            ("bitbucketServer", Some(Provider::BitbucketServer)),
            ("bitbucket", None),
            ("azureDevOps", None),
        ];
        let present: Vec<(&str, Option<Provider>)> = KEYS
            .into_iter()
            .chain([("awsCodeCommit", None)])
            .filter(|(k, _)| config.get(*k).is_some_and(|v| !v.is_null()))
            .collect();
        let (key, provider) = match present.as_slice() {
            [one] => *one,
            [] => {
                return Err(format!(
                    "{at}: no provider (expected one of github, gitlab, gitea, bitbucketServer)"
                ));
            }
            many => {
                let keys: Vec<&str> = many.iter().map(|(k, _)| *k).collect();
                return Err(format!(
                    "{at}: one provider per generator, found {}",
                    keys.join(" and ")
                ));
            }
        };
        let pat = format!("{at}.{key}");
        let Some(provider) = provider else {
            return Err(format!(
                "{pat}: this provider is not supported yet (github, gitlab, gitea and bitbucketServer are)"
            ));
        };
        let p = &config[key];
        let api = str_field(p, "api", &pat)?.trim_end_matches('/').to_owned();
        let flag =
            |name: &str, default: bool| p.get(name).and_then(Value::as_bool).unwrap_or(default);
        let clone_protocol = match str_field(config, "cloneProtocol", at)?.as_str() {
            "" => "ssh".to_owned(),
            proto @ ("ssh" | "https") => proto.to_owned(),
            other => {
                return Err(format!(
                    "{at}.cloneProtocol: {other:?} is not one of ssh, https"
                ));
            }
        };
        let mut query = ScmQuery {
            provider,
            api: String::new(),
            organization: String::new(),
            all_branches: flag("allBranches", false),
            clone_protocol,
            auth: auth(provider, p, &pat)?,
            insecure: flag("insecure", false),
            archived: false,
            include_subgroups: false,
            include_shared_projects: true,
            topic: String::new(),
            filters: Vec::new(),
        };
        match provider {
            Provider::GitHub => {
                query.organization = required(p, "organization", &pat)?;
                query.archived = !flag("excludeArchivedRepos", false);
                query.api = crate::pull_request::github_api(&api);
            }
            Provider::GitLab => {
                query.organization = required(p, "group", &pat)?;
                query.archived = flag("includeArchivedRepos", false);
                query.include_subgroups = flag("includeSubgroups", false);
                query.include_shared_projects = flag("includeSharedProjects", true);
                query.topic = str_field(p, "topic", &pat)?;
                query.api = if api.is_empty() {
                    "https://gitlab.com".to_owned()
                } else {
                    api
                };
            }
            Provider::Gitea => {
                query.organization = required(p, "owner", &pat)?;
                query.api = required(p, "api", &pat)?.trim_end_matches('/').to_owned();
            }
            Provider::BitbucketServer => {
                query.organization = required(p, "project", &pat)?;
                query.api = required(p, "api", &pat)?.trim_end_matches('/').to_owned();
            }
            _ => unreachable!("only the providers above are read"),
        }
        if !(query.api.starts_with("https://") || query.api.starts_with("http://")) {
            return Err(format!("{pat}.api: {:?} is not an http(s) URL", query.api));
        }
        query.filters = match config.get("filters") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let at = format!("{at}.filters[{i}]");
                    let paths = |field: &str| -> Result<Vec<String>, String> {
                        match f.get(field) {
                            None | Some(Value::Null) => Ok(Vec::new()),
                            Some(Value::Array(ps)) => ps
                                .iter()
                                .map(|p| {
                                    p.as_str()
                                        .map(|p| p.trim_end_matches('/').to_owned())
                                        .ok_or_else(|| {
                                            format!("{at}.{field}: expected a list of paths")
                                        })
                                })
                                .collect(),
                            Some(_) => Err(format!("{at}.{field}: expected a list of paths")),
                        }
                    };
                    let spec = FilterSpec {
                        repository_match: str_field(f, "repositoryMatch", &at)?,
                        label_match: str_field(f, "labelMatch", &at)?,
                        branch_match: str_field(f, "branchMatch", &at)?,
                        paths_exist: paths("pathsExist")?,
                        paths_do_not_exist: paths("pathsDoNotExist")?,
                    };
                    // Compiled once here so a bad expression is named where it is written.
                    for field in ["repositoryMatch", "labelMatch", "branchMatch"] {
                        regex_field(f, field, &at)?;
                    }
                    Ok(spec)
                })
                .collect::<Result<_, String>>()?,
            Some(other) => return Err(format!("{at}.filters: expected a list, got {other}")),
        };
        Ok(ScmProviderGenerator { query })
    }
}

fn compile(pattern: &str) -> Option<regex::Regex> {
    // Checked when the generator was read.
    (!pattern.is_empty())
        .then(|| regex::Regex::new(pattern).ok())
        .flatten()
}

impl ScmQuery {
    /// The filters, compiled.
    pub fn filters(&self) -> Vec<Filter> {
        self.filters
            .iter()
            .map(|f| Filter {
                repository: compile(&f.repository_match),
                label: compile(&f.label_match),
                branch: compile(&f.branch_match),
                paths_exist: f.paths_exist.clone(),
                paths_do_not_exist: f.paths_do_not_exist.clone(),
            })
            .collect()
    }

    pub fn first(&self) -> Cursor {
        match self.provider {
            Provider::BitbucketServer => Cursor::Offset(0),
            _ => Cursor::Page(1),
        }
    }

    fn page(&self, cursor: &Cursor) -> (u64, Option<String>) {
        match cursor {
            Cursor::Page(n) => (u64::from(*n), None),
            Cursor::Offset(n) => (*n, None),
            Cursor::Url(u) => (0, Some(u.clone())),
        }
    }

    /// The URL of a page of the organization's repositories.
    pub fn repositories_url(&self, cursor: &Cursor) -> String {
        let (page, url) = self.page(cursor);
        if let Some(url) = url {
            return url;
        }
        let (api, org) = (&self.api, enc(&self.organization));
        match self.provider {
            Provider::GitHub => format!("{api}/orgs/{org}/repos?per_page={PER_PAGE}&page={page}"),
            Provider::GitLab => {
                let mut url = format!(
                    "{api}/api/v4/groups/{org}/projects?per_page={PER_PAGE}&page={page}&include_subgroups={}&with_shared={}",
                    self.include_subgroups, self.include_shared_projects
                );
                if !self.archived {
                    url.push_str("&archived=false");
                }
                if !self.topic.is_empty() {
                    url.push_str(&format!("&topic={}", enc(&self.topic)));
                }
                url
            }
            Provider::Gitea => {
                format!("{api}/api/v1/orgs/{org}/repos?limit={GITEA_PER_PAGE}&page={page}")
            }
            Provider::BitbucketServer => {
                format!("{api}/rest/api/1.0/projects/{org}/repos?limit={PER_PAGE}&start={page}")
            }
            _ => String::new(),
        }
    }

    fn repo_base(&self, repo: &Repository) -> String {
        // GitLab's projects go by id; the others by organization and name.
        let owner = if self.provider == Provider::GitLab {
            ""
        } else {
            repo.organization.as_str()
        };
        repository_api(self.provider, &self.api, owner, &repo.key)
    }

    /// The URL of a page of a repository's branches.
    pub fn branches_url(&self, repo: &Repository, cursor: &Cursor) -> String {
        let (page, url) = self.page(cursor);
        if let Some(url) = url {
            return url;
        }
        let base = self.repo_base(repo);
        match self.provider {
            Provider::GitLab => {
                format!("{base}/repository/branches?per_page={PER_PAGE}&page={page}")
            }
            Provider::Gitea => format!("{base}/branches?limit={GITEA_PER_PAGE}&page={page}"),
            Provider::BitbucketServer => format!("{base}/branches?limit={PER_PAGE}&start={page}"),
            _ => format!("{base}/branches?per_page={PER_PAGE}&page={page}"),
        }
    }

    /// The URL of one branch (the default branch, for its commit).
    pub fn branch_url(&self, repo: &Repository, branch: &str) -> String {
        let base = self.repo_base(repo);
        match self.provider {
            Provider::GitLab => format!("{base}/repository/branches/{}", enc(branch)),
            Provider::BitbucketServer => format!(
                "{base}/branches?limit=1&filterText={}&boostMatches=true",
                enc(branch)
            ),
            _ => format!("{base}/branches/{}", enc(branch)),
        }
    }

    /// The URLs that tell whether `path` exists at `branch`: it does when one answers
    /// 200 with something in it (GitLab needs two: a file, or a folder's tree).
    pub fn path_urls(&self, repo: &Repository, branch: &str, path: &str) -> Vec<String> {
        let base = self.repo_base(repo);
        let path = path.trim_matches('/');
        let (p, b) = (enc_path(path), enc(branch));
        match self.provider {
            Provider::GitHub | Provider::Gitea => vec![format!("{base}/contents/{p}?ref={b}")],
            Provider::GitLab => vec![
                format!("{base}/repository/files/{}?ref={b}", enc(path)),
                format!(
                    "{base}/repository/tree?path={}&ref={b}&per_page=1",
                    enc(path)
                ),
            ],
            Provider::BitbucketServer => vec![format!("{base}/browse/{p}?at={b}&type=true")],
            _ => Vec::new(),
        }
    }

    /// Reads a page of repositories.
    pub fn read_repositories(
        &self,
        body: &[u8],
        cursor: &Cursor,
    ) -> Result<(Vec<Repository>, Option<Cursor>), String> {
        let doc = self.json(body)?;
        let s = |v: &Value, ptr: &str| {
            v.pointer(ptr)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let id = |v: &Value| match v.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let ssh = self.clone_protocol == "ssh";
        let mut repos = Vec::new();
        let items: Vec<Value> = match self.provider {
            Provider::BitbucketServer => doc["values"].as_array().cloned(),
            _ => doc.as_array().cloned(),
        }
        .ok_or_else(|| self.missing("list of repositories"))?;
        for item in &items {
            let repo = match self.provider {
                Provider::GitHub | Provider::Gitea => Repository {
                    organization: self.organization.clone(),
                    name: s(item, "/name"),
                    id: id(item),
                    url: s(item, if ssh { "/ssh_url" } else { "/clone_url" }),
                    default_branch: s(item, "/default_branch"),
                    labels: strings(item.get("topics")),
                    archived: item["archived"].as_bool().unwrap_or(false),
                    key: s(item, "/name"),
                },
                Provider::GitLab => Repository {
                    organization: s(item, "/namespace/full_path"),
                    name: s(item, "/path"),
                    id: id(item),
                    url: s(
                        item,
                        if ssh {
                            "/ssh_url_to_repo"
                        } else {
                            "/http_url_to_repo"
                        },
                    ),
                    default_branch: s(item, "/default_branch"),
                    labels: {
                        let topics = strings(item.get("topics"));
                        if topics.is_empty() {
                            strings(item.get("tag_list"))
                        } else {
                            topics
                        }
                    },
                    archived: item["archived"].as_bool().unwrap_or(false),
                    key: id(item),
                },
                Provider::BitbucketServer => Repository {
                    organization: self.organization.clone(),
                    name: s(item, "/slug"),
                    id: id(item),
                    url: item["links"]["clone"]
                        .as_array()
                        .and_then(|links| {
                            links
                                .iter()
                                .find(|l| l["name"] == if ssh { "ssh" } else { "http" })
                        })
                        .map(|l| s(l, "/href"))
                        .unwrap_or_default(),
                    // Asked for separately (the repository does not say).
                    default_branch: String::new(),
                    labels: Vec::new(),
                    archived: item["archived"].as_bool().unwrap_or(false),
                    key: s(item, "/slug"),
                },
                _ => continue,
            };
            if repo.name.is_empty() {
                return Err(self.missing("repository name"));
            }
            repos.push(repo);
        }
        // GitHub lists archived repositories unless asked not to; Gitea's option is not
        // Argo CD's: only GitHub's and GitLab's say.
        if self.provider == Provider::GitHub && !self.archived {
            repos.retain(|r| !r.archived);
        }
        Ok((repos, self.next(&doc, items.len(), cursor)))
    }

    /// Reads a page of branches: name and commit.
    pub fn read_branches(
        &self,
        body: &[u8],
        cursor: &Cursor,
    ) -> Result<(Vec<Branch>, Option<Cursor>), String> {
        let doc = self.json(body)?;
        let items: Vec<Value> = match self.provider {
            Provider::BitbucketServer => doc["values"].as_array().cloned(),
            _ => doc.as_array().cloned(),
        }
        .ok_or_else(|| self.missing("list of branches"))?;
        let branches = items
            .iter()
            .map(|b| self.branch_of(b))
            .collect::<Result<_, _>>()?;
        Ok((branches, self.next(&doc, items.len(), cursor)))
    }

    /// Reads one branch (`branch_url`'s answer): name and commit.
    pub fn read_branch(&self, body: &[u8]) -> Result<Branch, String> {
        let doc = self.json(body)?;
        match self.provider {
            // Bitbucket Server answers a branch search as a page (its default branch as
            // the branch itself).
            Provider::BitbucketServer if doc.get("values").is_some() => doc["values"]
                .as_array()
                .and_then(|v| v.first())
                .ok_or_else(|| self.missing("branch"))
                .and_then(|b| self.branch_of(b)),
            _ => self.branch_of(&doc),
        }
    }

    /// The default branch of a Bitbucket Server repository (`<repo>/branches/default`).
    pub fn default_branch_url(&self, repo: &Repository) -> Option<String> {
        (self.provider == Provider::BitbucketServer)
            .then(|| format!("{}/branches/default", self.repo_base(repo)))
    }

    fn branch_of(&self, b: &Value) -> Result<Branch, String> {
        let s = |ptr: &str| {
            b.pointer(ptr)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let (name, sha) = match self.provider {
            Provider::GitHub => (s("/name"), s("/commit/sha")),
            Provider::Gitea | Provider::GitLab => (s("/name"), s("/commit/id")),
            Provider::BitbucketServer => (s("/displayId"), s("/latestCommit")),
            _ => (String::new(), String::new()),
        };
        if name.is_empty() {
            return Err(self.missing("branch name"));
        }
        Ok((name, sha))
    }

    fn json(&self, body: &[u8]) -> Result<Value, String> {
        serde_json::from_slice(body)
            .map_err(|e| format!("the {} API's answer is not JSON: {e}", self.provider.key()))
    }

    fn missing(&self, what: &str) -> String {
        format!("the {} API's answer has no {what}", self.provider.key())
    }

    fn next(&self, doc: &Value, n: usize, cursor: &Cursor) -> Option<Cursor> {
        match (self.provider, cursor) {
            (Provider::BitbucketServer, _) => {
                match (doc["isLastPage"].as_bool(), doc["nextPageStart"].as_u64()) {
                    (Some(false), Some(start)) => Some(Cursor::Offset(start)),
                    _ => None,
                }
            }
            (Provider::Gitea, Cursor::Page(p)) if n >= GITEA_PER_PAGE as usize => {
                Some(Cursor::Page(p + 1))
            }
            (Provider::Gitea, _) => None,
            (_, Cursor::Page(p)) if n >= PER_PAGE as usize => Some(Cursor::Page(p + 1)),
            _ => None,
        }
    }

    /// The header for the secret the controller read.
    pub fn auth_header(&self, secret: &str) -> Option<(&'static str, String)> {
        crate::pull_request::auth_header(self.provider, &self.auth, secret)
    }
}

/// A path in a URL: each segment escaped, the slashes kept.
fn enc_path(path: &str) -> String {
    path.split('/').map(enc).collect::<Vec<_>>().join("/")
}

/// The parameters of one repository at one branch, as Argo CD names them.
pub fn params(rb: &RepositoryBranch) -> Map<String, Value> {
    let short = |n: usize| rb.sha.chars().take(n).collect::<String>();
    let r = &rb.repository;
    let mut p = Map::new();
    p.insert("organization".into(), json!(r.organization));
    p.insert("repository".into(), json!(r.name));
    p.insert("repository_id".into(), json!(r.id));
    p.insert("url".into(), json!(r.url));
    p.insert("branch".into(), json!(rb.branch));
    p.insert("sha".into(), json!(rb.sha));
    p.insert("short_sha".into(), json!(short(8)));
    p.insert("short_sha_7".into(), json!(short(7)));
    p.insert("labels".into(), json!(r.labels.join(",")));
    p.insert("branchNormalized".into(), json!(sanitize_name(&rb.branch)));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: Value) -> ScmQuery {
        ScmProviderGenerator::parse(&v, "g").unwrap().query
    }

    #[test]
    fn a_generator_names_what_is_wrong() {
        let err = |v: Value| ScmProviderGenerator::parse(&v, "g").unwrap_err();
        assert_eq!(
            err(json!({"github": {}})),
            "g.github.organization: required"
        );
        assert!(err(json!({"bitbucket": {"owner": "o"}})).contains("not supported yet"));
        assert!(
            err(json!({"github": {"organization": "o"}, "cloneProtocol": "git"}))
                .contains("cloneProtocol")
        );
        assert!(
            err(json!({"github": {"organization": "o"}, "filters": [{"repositoryMatch": "["}]}))
                .starts_with("g.filters[0].repositoryMatch: not a regular expression")
        );
    }

    #[test]
    fn github_lists_repositories_topics_and_branches() {
        let gh = q(
            json!({"github": {"organization": "myorg", "excludeArchivedRepos": true}, "cloneProtocol": "https"}),
        );
        assert_eq!(
            gh.repositories_url(&gh.first()),
            "https://api.github.com/orgs/myorg/repos?per_page=100&page=1"
        );
        let body = json!([
            {"id": 1, "name": "app", "clone_url": "https://github.com/myorg/app.git", "ssh_url": "git@github.com:myorg/app.git",
             "default_branch": "main", "topics": ["deploy-ok"], "archived": false},
            {"id": 2, "name": "old", "clone_url": "https://github.com/myorg/old.git", "default_branch": "main", "archived": true},
        ]);
        let (repos, next) = gh
            .read_repositories(body.to_string().as_bytes(), &Cursor::Page(1))
            .unwrap();
        assert_eq!(repos.len(), 1, "archived excluded");
        assert_eq!(repos[0].url, "https://github.com/myorg/app.git");
        assert_eq!(next, None);
        assert_eq!(
            gh.branch_url(&repos[0], "main"),
            "https://api.github.com/repos/myorg/app/branches/main"
        );
        assert_eq!(
            gh.read_branch(br#"{"name": "main", "commit": {"sha": "abc123"}}"#)
                .unwrap(),
            ("main".to_owned(), "abc123".to_owned())
        );
        assert_eq!(
            gh.path_urls(&repos[0], "main", "kubernetes/kustomization.yaml/"),
            [
                "https://api.github.com/repos/myorg/app/contents/kubernetes/kustomization.yaml?ref=main"
            ]
        );
        let p = params(&RepositoryBranch {
            repository: repos[0].clone(),
            branch: "Feature_X".into(),
            sha: "0123456789abcdef".into(),
        });
        assert_eq!(p["organization"], "myorg");
        assert_eq!(p["repository_id"], "1");
        assert_eq!(p["short_sha"], "01234567");
        assert_eq!(p["labels"], "deploy-ok");
        assert_eq!(p["branchNormalized"], sanitize_name("Feature_X"));
    }

    #[test]
    fn gitlab_names_projects_by_id_and_checks_files_and_folders() {
        let gl = q(
            json!({"gitlab": {"group": "platform/apps", "includeSubgroups": true, "topic": "k8s"}}),
        );
        assert_eq!(
            gl.repositories_url(&Cursor::Page(1)),
            "https://gitlab.com/api/v4/groups/platform%2Fapps/projects?per_page=100&page=1&include_subgroups=true&with_shared=true&archived=false&topic=k8s"
        );
        let body = json!([{"id": 42, "path": "api", "namespace": {"full_path": "platform/apps"},
            "ssh_url_to_repo": "git@gitlab.com:platform/apps/api.git", "default_branch": "main", "topics": ["k8s"]}]);
        let (repos, _) = gl
            .read_repositories(body.to_string().as_bytes(), &Cursor::Page(1))
            .unwrap();
        assert_eq!(repos[0].organization, "platform/apps");
        assert_eq!(
            repos[0].url, "git@gitlab.com:platform/apps/api.git",
            "ssh by default"
        );
        assert_eq!(
            gl.path_urls(&repos[0], "main", "helm"),
            [
                "https://gitlab.com/api/v4/projects/42/repository/files/helm?ref=main",
                "https://gitlab.com/api/v4/projects/42/repository/tree?path=helm&ref=main&per_page=1"
            ]
        );
    }

    #[test]
    fn filters_split_as_argo_cds() {
        let gh = q(json!({"github": {"organization": "o"}, "filters": [
            {"repositoryMatch": "^myapp", "labelMatch": "deploy-ok"},
            {"repositoryMatch": "^otherapp", "pathsExist": ["helm"], "pathsDoNotExist": ["disabledrepo.txt"]},
            {"branchMatch": "^release-"},
        ]}));
        let filters = gh.filters();
        assert!(!filters[0].on_branches());
        assert!(filters[1].on_branches() && filters[2].on_branches());
        let repo = |name: &str, labels: &[&str]| Repository {
            organization: "o".into(),
            name: name.into(),
            id: "1".into(),
            url: String::new(),
            default_branch: "main".into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            archived: false,
            key: name.into(),
        };
        assert!(filters[0].matches(&repo("myapp-api", &["x", "deploy-ok"]), None));
        assert!(!filters[0].matches(&repo("myapp-api", &["x"]), None));
        assert!(filters[2].matches(&repo("any", &[]), Some("release-1")));
        assert!(!filters[2].matches(&repo("any", &[]), Some("main")));
        assert_eq!(filters[1].paths_do_not_exist, ["disabledrepo.txt"]);
    }
}
