//! The files under an app's path at a commit (what the renderer consumes), within the
//! limits that keep one oversized path from exhausting a renderer.

use std::collections::HashMap;
use std::sync::Arc;

use gix::ObjectId;
use gix::bstr::{BString, ByteSlice};
use gix::objs::tree::EntryMode;

use crate::error::{GitError, Result};
use crate::mirror::Mirror;

/// A tree's entries by name, decoded once per tree. In a monorepo an app's folder sits in
/// a folder of thousands of apps: inflating and scanning that folder's tree for each
/// app's request was most of the git watcher's CPU at 10,000 apps (`perf`: 57 % in
/// zlib), and the scan made each request cost in proportion to the fleet.
pub type TreeIndex = HashMap<BString, (EntryMode, ObjectId)>;

/// Decoded trees kept per mirror, by weight (names and ids), least used dropped first.
const TREE_CACHE_BYTES: u64 = 64 << 20;

pub(crate) fn tree_cache() -> moka::sync::Cache<ObjectId, Arc<TreeIndex>> {
    moka::sync::Cache::builder()
        .max_capacity(TREE_CACHE_BYTES)
        .weigher(|_, index: &Arc<TreeIndex>| {
            let bytes: usize = index.keys().map(|name| name.len() + 64).sum();
            u32::try_from(bytes).unwrap_or(u32::MAX)
        })
        .build()
}

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
        let root = self.commit_tree(&repo, commit)?.id;
        let dir = normalize_dir(path);
        let tree = if dir.is_empty() {
            root
        } else {
            let not_found = || GitError::PathNotFound {
                repo: self.url().to_string(),
                commit: commit.to_owned(),
                path: path.to_owned(),
            };
            let (mode, oid) = self.lookup(&repo, root, &dir)?.ok_or_else(not_found)?;
            if mode.is_blob() {
                // One file asked for by its path: that file alone, not its folder.
                let limits = self.read_limits();
                let header = repo
                    .find_header(oid)
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
                let blob = repo.find_blob(oid).map_err(|e| self.read_error(&dir, &e))?;
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
            oid
        };

        let limits = self.read_limits().clone();
        let mut total = 0u64;
        let mut files = Vec::new();
        let mut pending = vec![(dir.clone(), tree)];
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
                    match self.lookup(&repo, root, &resolved)? {
                        Some((found, found_oid)) if found.is_blob() => {
                            oid = found_oid;
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
        let root = self.commit_tree(&repo, commit)?.id;
        paths
            .iter()
            .map(|path| {
                let dir = normalize_dir(path);
                if dir.is_empty() {
                    return Ok(Some(root.to_string()));
                }
                Ok(self
                    .lookup(&repo, root, &dir)?
                    .map(|(_, oid)| oid.to_string()))
            })
            .collect()
    }

    /// The entry at `path` (normalized, not empty) below the tree `root`, through
    /// [`TreeIndex`]es: each folder on the way decoded once, whatever the number of
    /// lookups through it.
    fn lookup(
        &self,
        repo: &gix::Repository,
        root: ObjectId,
        path: &str,
    ) -> Result<Option<(EntryMode, ObjectId)>> {
        let mut tree = root;
        let mut parts = path.split('/').peekable();
        while let Some(name) = parts.next() {
            let index = self.tree_index(repo, tree, path)?;
            let Some(&(mode, oid)) = index.get(name.as_bytes().as_bstr()) else {
                return Ok(None);
            };
            if parts.peek().is_none() {
                return Ok(Some((mode, oid)));
            }
            if !mode.is_tree() {
                return Ok(None);
            }
            tree = oid;
        }
        Ok(None)
    }

    fn tree_index(
        &self,
        repo: &gix::Repository,
        id: ObjectId,
        path: &str,
    ) -> Result<Arc<TreeIndex>> {
        if let Some(index) = self.trees().get(&id) {
            return Ok(index);
        }
        let tree = repo.find_tree(id).map_err(|e| self.read_error(path, &e))?;
        let decoded = tree.decode().map_err(|e| self.read_error(path, &e))?;
        let index: TreeIndex = decoded
            .entries
            .iter()
            .map(|e| (e.filename.to_owned(), (e.mode, e.oid.to_owned())))
            .collect();
        let index = Arc::new(index);
        self.trees().insert(id, index.clone());
        Ok(index)
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
