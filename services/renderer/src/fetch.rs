//! The repository files one render reads, fetched through the git watcher. What was
//! fetched is also what the render depends on: its `inputs`, which let a commit that
//! touches none of them skip the render.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gitfleet_bus::Bus;
use gitfleet_messages::{ErrorCode, Files, FilesRequest, RepoFile, ServiceError};

/// A path of the source that leaves the repository (`..` past the root).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} leaves the repository")]
pub struct OutsideRepository {
    pub path: String,
}

/// `a/./b/../c/` → `a/c`; the root is `""`. `..` past the root, or an absolute path, is
/// refused: Argo CD had CVEs where values files and symlinks read outside the repository.
pub fn clean(path: &str) -> Result<String, OutsideRepository> {
    let outside = || OutsideRepository {
        path: path.to_owned(),
    };
    if path.starts_with('/') {
        return Err(outside());
    }
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(outside)?;
            }
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

/// `path` joined to the directory `dir`, cleaned.
pub fn join(dir: &str, path: &str) -> Result<String, OutsideRepository> {
    if path.starts_with('/') {
        return Err(OutsideRepository {
            path: path.to_owned(),
        });
    }
    let joined = if dir.is_empty() {
        path.to_owned()
    } else {
        format!("{dir}/{path}")
    };
    clean(&joined).map_err(|_| OutsideRepository {
        path: path.to_owned(),
    })
}

/// Whether `path` is `dir` or below it (`dir` `""` is the whole repository).
pub fn is_below(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// What a path named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listed {
    Directory,
    File,
}

/// The files of one repository at one commit that a render has fetched so far.
pub struct Fetcher {
    bus: Bus,
    repo: String,
    commit: String,
    timeout: Duration,
    files: BTreeMap<String, RepoFile>,
    /// Directories fetched with everything below them.
    recursive: BTreeSet<String>,
    /// Directories fetched with only the files directly in them.
    top_level: BTreeSet<String>,
    /// Files the render depends on that no fetched directory covers.
    single_files: BTreeSet<String>,
    /// Every file is already here (a chart unpacked from a Helm repository): nothing is
    /// asked of the git watcher.
    sealed: bool,
    /// Chart archives on another host than their repository get its credentials too (the
    /// source's `helm.passCredentials`).
    pass_credentials: bool,
    /// The render read something that can change without a commit (a dependency chart
    /// version picked from a range): its inputs are unknown.
    outside_git: bool,
}

impl Fetcher {
    pub fn new(bus: Bus, repo: String, commit: String, timeout: Duration) -> Fetcher {
        Fetcher {
            bus,
            repo,
            commit,
            timeout,
            files: BTreeMap::new(),
            recursive: BTreeSet::new(),
            top_level: BTreeSet::new(),
            single_files: BTreeSet::new(),
            sealed: false,
            pass_credentials: false,
            outside_git: false,
        }
    }

    /// Sends chart repositories' credentials to archives on other hosts too.
    pub fn pass_credentials(&mut self, pass: bool) {
        self.pass_credentials = pass;
    }

    /// A fetcher for another repository (a multi-source app's `ref` source), through the
    /// same bus.
    pub fn elsewhere(&self, repo: &str, commit: &str) -> Fetcher {
        Fetcher::new(
            self.bus.clone(),
            repo.to_owned(),
            commit.to_owned(),
            self.timeout,
        )
    }

    /// The archive of `chart` at this fetcher's commit (a chart version), from the Helm
    /// repository that is this fetcher's repository.
    pub async fn chart_archive(&self, chart: &str) -> Result<Vec<u8>, ServiceError> {
        self.chart_archive_from(&self.repo, chart, &self.commit)
            .await
    }

    /// The newest version of `chart` in the Helm repository or registry `repo` that
    /// `constraint` allows, as the git watcher resolves it.
    pub async fn resolve_chart(
        &self,
        repo: &str,
        chart: &str,
        constraint: &str,
    ) -> Result<String, ServiceError> {
        let resolved: gitfleet_messages::Resolved = self
            .bus
            .ask(
                "git watcher",
                self.bus.topology.git_resolve_subject(),
                &gitfleet_messages::ResolveRequest {
                    repo: repo.to_owned(),
                    revision: constraint.to_owned(),
                    chart: chart.to_owned(),
                },
                self.timeout,
            )
            .await?;
        Ok(resolved.commit)
    }

    /// The archive of `chart` at `version` from the Helm repository or registry `repo`.
    pub async fn chart_archive_from(
        &self,
        repo: &str,
        chart: &str,
        version: &str,
    ) -> Result<Vec<u8>, ServiceError> {
        let files = self
            .ask_files(FilesRequest {
                repo: repo.to_owned(),
                commit: version.to_owned(),
                path: String::new(),
                recurse: false,
                chart: chart.to_owned(),
                pass_credentials: self.pass_credentials,
            })
            .await?;
        files
            .files
            .into_iter()
            .next()
            .and_then(|f| f.bytes())
            .ok_or_else(|| {
                ServiceError::internal(format!(
                    "the git watcher sent no archive of chart {chart:?} {version}"
                ))
            })
    }

    /// Takes `files` as everything there is: later fetches read them and never the bus.
    pub fn seal(&mut self, files: Vec<RepoFile>) {
        for file in files {
            self.files.insert(file.path.clone(), file);
        }
        self.sealed = true;
    }

    /// Fetches the files in `dir` (and below it when `recurse`), unless already fetched.
    pub async fn dir(&mut self, dir: &str, recurse: bool) -> Result<(), ServiceError> {
        if self.covers_dir(dir, recurse) {
            return Ok(());
        }
        if self.list(dir, recurse).await? == Listed::File {
            return Err(ServiceError::invalid(format!(
                "{dir} is a file, and a source path names a directory"
            )));
        }
        if recurse {
            self.recursive.insert(dir.to_owned());
        } else {
            self.top_level.insert(dir.to_owned());
        }
        Ok(())
    }

    async fn ask_files(&self, request: FilesRequest) -> Result<Files, ServiceError> {
        self.bus
            .ask(
                "git watcher",
                self.bus.topology.git_files_subject(),
                &request,
                self.timeout,
            )
            .await
    }

    /// Asks for what is at `path`: a directory's files, or one file (the git watcher
    /// answers a file's path with that file alone).
    async fn list(&mut self, path: &str, recurse: bool) -> Result<Listed, ServiceError> {
        if self.sealed {
            return if self.files.contains_key(path) {
                Ok(Listed::File)
            } else if self.files.keys().any(|f| is_below(f, path)) {
                Ok(Listed::Directory)
            } else {
                Err(ServiceError::not_found(format!(
                    "path {path:?} not found in the chart"
                )))
            };
        }
        let files = self
            .ask_files(FilesRequest {
                repo: self.repo.clone(),
                commit: self.commit.clone(),
                path: path.to_owned(),
                recurse,
                chart: String::new(),
                pass_credentials: false,
            })
            .await?;
        let listed = match files.files.as_slice() {
            [one] if one.path == path => Listed::File,
            _ => Listed::Directory,
        };
        for file in files.files {
            // A link read as its target: the target is read too, wherever it is.
            if !file.link.is_empty() {
                self.single_files.insert(file.link.clone());
            }
            self.files.insert(file.path.clone(), file);
        }
        Ok(listed)
    }

    /// Fetches what a relative reference names, directory or file, unless fetched. Returns
    /// false when it names neither: the tool reading it will say so in its own words. A
    /// file is read alone and is an input by itself, not its folder (so is one that is not
    /// there: adding it changes the render).
    pub async fn reference(&mut self, path: &str) -> Result<bool, ServiceError> {
        if self.recursive.iter().any(|d| is_below(path, d)) || self.files.contains_key(path) {
            return Ok(true);
        }
        match self.list(path, true).await {
            Ok(Listed::Directory) => {
                self.recursive.insert(path.to_owned());
                Ok(true)
            }
            Ok(Listed::File) => {
                self.single_files.insert(path.to_owned());
                Ok(true)
            }
            Err(err) if err.code == ErrorCode::NotFound => {
                // Its adding would change the render: an input all the same.
                self.single_files.insert(path.to_owned());
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    fn covers_dir(&self, dir: &str, recurse: bool) -> bool {
        self.recursive.iter().any(|d| is_below(dir, d))
            || (!recurse && self.top_level.contains(dir))
    }

    /// Every file fetched, by repository-relative path.
    pub fn files(&self) -> &BTreeMap<String, RepoFile> {
        &self.files
    }

    /// The files directly in `dir`.
    pub fn files_in(&self, dir: &str) -> impl Iterator<Item = &RepoFile> {
        self.files.values().filter(move |f| {
            let parent = f.path.rsplit_once('/').map_or("", |(parent, _)| parent);
            parent == dir
        })
    }

    /// Writes every fetched file below `root` (a private scratch copy for a tool). Paths come from the git watcher, which reads
    /// only regular files of the tree; each is checked again so nothing lands outside.
    pub fn write_to(&self, root: &Path) -> Result<(), ServiceError> {
        self.write_below(root, "")
    }

    /// Writes the fetched files below the directory `dir` (`""`: all) below `root`.
    pub fn write_below(&self, root: &Path, dir: &str) -> Result<(), ServiceError> {
        let io = |what: &str, err: std::io::Error| {
            ServiceError::internal(format!("writing the scratch copy ({what}): {err}"))
        };
        for file in self.files.values().filter(|f| is_below(&f.path, dir)) {
            let clean = clean(&file.path)
                .ok()
                .filter(|c| *c == file.path && !c.is_empty())
                .ok_or_else(|| {
                    ServiceError::internal(format!(
                        "the git watcher sent a bad path {:?}",
                        file.path
                    ))
                })?;
            let target: PathBuf = root.join(&clean);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(&clean, e))?;
            }
            let bytes = file.bytes().ok_or_else(|| {
                ServiceError::internal(format!("the git watcher sent {clean:?} as bad base64"))
            })?;
            std::fs::write(&target, bytes).map_err(|e| io(&clean, e))?;
        }
        Ok(())
    }

    /// Marks the render as reading something that changes without a commit.
    pub fn reads_outside_git(&mut self) {
        self.outside_git = true;
    }

    /// What the render read: directories (with what is below them) and single files.
    /// Empty (unknown: any commit may matter) when it read something outside Git.
    pub fn inputs(&self) -> Vec<String> {
        if self.outside_git {
            return Vec::new();
        }
        let dirs = self.recursive.iter().chain(&self.top_level);
        let mut inputs: BTreeSet<String> = dirs.cloned().collect();
        inputs.extend(self.single_files.iter().cloned());
        // A directory below another input adds nothing.
        let all: Vec<String> = inputs.iter().cloned().collect();
        inputs.retain(|p| !all.iter().any(|q| q != p && is_below(p, q)));
        inputs.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_refuses_paths_that_leave_the_repository() {
        assert_eq!(clean("./apps/x/").unwrap(), "apps/x");
        assert_eq!(clean("apps/x/../y").unwrap(), "apps/y");
        assert_eq!(clean("").unwrap(), "");
        assert!(clean("../other").is_err());
        assert!(clean("apps/../../etc").is_err());
        assert!(clean("/etc/passwd").is_err());
        assert_eq!(
            join("apps/x/overlays/prod", "../../base").unwrap(),
            "apps/x/base"
        );
        assert!(join("apps", "../../x").is_err());
        assert_eq!(join("", "values.yaml").unwrap(), "values.yaml");
        assert!(join("", "../x").is_err());
        assert!(join("apps", "/abs").is_err());
    }

    #[test]
    fn below_is_by_whole_segments() {
        assert!(is_below("apps/x/a.yaml", "apps/x"));
        assert!(is_below("apps/x", "apps/x"));
        assert!(!is_below("apps/xy/a.yaml", "apps/x"));
        assert!(is_below("anything", ""));
    }
}
