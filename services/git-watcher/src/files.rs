//! The files under an app's path at a commit (what the renderer consumes), within the
//! limits that keep one oversized path from exhausting a renderer.

use gix::bstr::ByteSlice;

use crate::error::{GitError, Result};
use crate::mirror::Mirror;

/// Bounds on [`Mirror::read_dir`], so one oversized app path cannot exhaust a renderer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest single file returned.
    pub max_file_bytes: u64,
    /// Largest sum of file sizes returned by one call.
    pub max_total_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        // Argo CD caps a rendered manifest set at a few tens of MB; inputs beyond that are a
        // mistake (vendored binaries, data dumps) rather than configuration.
        ReadLimits {
            max_file_bytes: 10 << 20,
            max_total_bytes: 100 << 20,
        }
    }
}

/// A file read from the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Repository-relative path, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
    /// Whether git records it as executable (plugins may care).
    pub executable: bool,
    /// For a symlink read as its target: the target's repository path.
    pub link: Option<String>,
}

/// Whether [`Mirror::read_dir`] descends into subdirectories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Only the files directly in the directory (Argo CD's default for plain manifests).
    TopLevel,
    /// Every file below it (`directory.recurse: true`, Helm charts, Kustomize bases).
    Recursive,
}

impl Mirror {
    /// The files under `path` (repository-relative, `""` or `.` for the root) at `commit`,
    /// sorted by path, within the mirror's [`ReadLimits`]; a path naming a file reads that
    /// file alone. A symlink to a file of the commit reads as that file; one pointing
    /// outside the repository is an error ([`GitError::SymlinkOutside`]); submodules and
    /// links to folders are left out.
    pub fn read_dir(&self, commit: &str, path: &str, depth: Depth) -> Result<Vec<RepoFile>> {
        let repo = self.repo();
        let root = self.commit_tree(&repo, commit)?;
        let dir = normalize_dir(path);
        let tree = if dir.is_empty() {
            root.clone()
        } else {
            let not_found = || GitError::PathNotFound {
                repo: self.url().to_string(),
                commit: commit.to_owned(),
                path: path.to_owned(),
            };
            let entry = root
                .lookup_entry_by_path(&dir)
                .map_err(|e| self.read_error(&dir, &e))?
                .ok_or_else(not_found)?;
            let mode = entry.mode();
            if mode.is_blob() {
                // One file asked for by its path: that file alone, not its folder.
                let limits = self.read_limits();
                let header = repo
                    .find_header(entry.oid())
                    .map_err(|e| self.read_error(&dir, &e))?;
                if header.size() > limits.max_file_bytes {
                    return Err(GitError::FileTooLarge {
                        repo: self.url().to_string(),
                        commit: commit.to_owned(),
                        path: dir,
                        size: header.size(),
                        limit: limits.max_file_bytes,
                    });
                }
                let blob = repo
                    .find_blob(entry.oid())
                    .map_err(|e| self.read_error(&dir, &e))?;
                return Ok(vec![RepoFile {
                    path: dir,
                    bytes: blob.data.clone(),
                    executable: mode.is_executable(),
                    link: None,
                }]);
            }
            if !mode.is_tree() {
                return Err(not_found());
            }
            entry
                .object()
                .map_err(|e| self.read_error(&dir, &e))?
                .into_tree()
        };

        let limits = self.read_limits().clone();
        let mut total = 0u64;
        let mut files = Vec::new();
        let mut pending = vec![(dir.clone(), tree.id)];
        while let Some((prefix, tree_id)) = pending.pop() {
            let tree = repo
                .find_tree(tree_id)
                .map_err(|e| self.read_error(&prefix, &e))?;
            for entry in tree.iter() {
                let entry = entry.map_err(|e| self.read_error(&prefix, &e))?;
                let name = entry.filename().to_str_lossy();
                let full = if prefix.is_empty() {
                    name.into_owned()
                } else {
                    format!("{prefix}/{name}")
                };
                let mode = entry.mode();
                if mode.is_tree() {
                    if depth == Depth::Recursive {
                        pending.push((full, entry.oid().to_owned()));
                    }
                    continue;
                }
                // A symlink is read as the file it points to, when that is a file of this
                // commit; one pointing outside the repository is refused (Argo CD had CVEs
                // where such links read the repo-server's own files).
                let mut oid = entry.oid().to_owned();
                let mut link = None;
                if mode.is_link() {
                    let target = repo
                        .find_blob(entry.oid())
                        .map_err(|e| self.read_error(&full, &e))?
                        .data
                        .to_str_lossy()
                        .into_owned();
                    let parent = full.rsplit_once('/').map_or("", |(p, _)| p);
                    let Some(resolved) = resolve_link(parent, &target) else {
                        return Err(GitError::SymlinkOutside {
                            repo: self.url().to_string(),
                            commit: commit.to_owned(),
                            path: full,
                            target,
                        });
                    };
                    match root
                        .lookup_entry_by_path(&resolved)
                        .map_err(|e| self.read_error(&resolved, &e))?
                    {
                        Some(found) if found.mode().is_blob() => {
                            oid = found.oid().to_owned();
                            link = Some(resolved);
                        }
                        // A link to a folder, another link or nothing: not a file to read.
                        _ => continue,
                    }
                } else if !mode.is_blob() {
                    continue;
                }
                let header = repo
                    .find_header(oid)
                    .map_err(|e| self.read_error(&full, &e))?;
                let size = header.size();
                if size > limits.max_file_bytes {
                    return Err(GitError::FileTooLarge {
                        repo: self.url().to_string(),
                        commit: commit.to_owned(),
                        path: full,
                        size,
                        limit: limits.max_file_bytes,
                    });
                }
                total += size;
                if total > limits.max_total_bytes {
                    return Err(GitError::DirectoryTooLarge {
                        repo: self.url().to_string(),
                        commit: commit.to_owned(),
                        path: if dir.is_empty() {
                            ".".to_owned()
                        } else {
                            dir.clone()
                        },
                        limit: limits.max_total_bytes,
                    });
                }
                let blob = repo
                    .find_blob(oid)
                    .map_err(|e| self.read_error(&full, &e))?;
                files.push(RepoFile {
                    path: full,
                    bytes: blob.data.clone(),
                    executable: mode.is_executable(),
                    link,
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

impl Mirror {
    /// The object id at each of `paths` at `commit` (a folder's tree, a file's blob, a
    /// link's own blob), `None` where nothing is. Hashes no content: a lookup per path.
    pub fn tree_ids(&self, commit: &str, paths: &[String]) -> Result<Vec<Option<String>>> {
        let repo = self.repo();
        let root = self.commit_tree(&repo, commit)?;
        paths
            .iter()
            .map(|path| {
                let dir = normalize_dir(path);
                if dir.is_empty() {
                    return Ok(Some(root.id.to_string()));
                }
                let entry = root
                    .lookup_entry_by_path(&dir)
                    .map_err(|e| self.read_error(&dir, &e))?;
                Ok(entry.map(|e| e.oid().to_string()))
            })
            .collect()
    }
}

/// A symlink's target, relative to the link's folder `parent`, as a repository path;
/// `None` when it is absolute or climbs out of the repository.
fn resolve_link(parent: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = parent.split('/').filter(|p| !p.is_empty()).collect();
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod link_tests {
    use super::resolve_link;

    #[test]
    fn links_resolve_inside_the_repository_only() {
        assert_eq!(
            resolve_link("apps/a", "../b/x.yaml").as_deref(),
            Some("apps/b/x.yaml")
        );
        assert_eq!(resolve_link("", "x.yaml").as_deref(), Some("x.yaml"));
        assert_eq!(resolve_link("apps", "../../etc/passwd"), None);
        assert_eq!(resolve_link("apps", "/etc/passwd"), None);
    }
}

/// `./apps/x/` and `apps/x` name the same directory; Argo CD app paths come in both forms.
fn normalize_dir(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::normalize_dir;

    #[test]
    fn dir_spellings() {
        assert_eq!(normalize_dir(""), "");
        assert_eq!(normalize_dir("."), "");
        assert_eq!(normalize_dir("./apps/x/"), "apps/x");
        assert_eq!(normalize_dir("apps//x"), "apps/x");
    }
}
