//! Turning an Application's `targetRevision` into a commit, with Argo CD's rules.

use gix::bstr::ByteSlice;
use serde::{Deserialize, Serialize};

use crate::error::{GitError, Result};
use gitfleet_messages::error_chain;

use crate::mirror::Mirror;

/// What a `targetRevision` named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevisionKind {
    /// The remote's default branch (`""` or `HEAD`).
    Head,
    Branch,
    Tag,
    /// A full or abbreviated commit id.
    Commit,
}

/// A `targetRevision` resolved against the mirror.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResolvedRevision {
    /// The commit id in full hex; annotated tags are peeled to their commit.
    pub commit: String,
    pub kind: RevisionKind,
}

impl Mirror {
    /// Resolves `target_revision` against what the last fetch brought in.
    ///
    /// Order follows Argo CD: `""`/`HEAD` is the remote's default branch; then a full ref
    /// name (`refs/heads/x`, `refs/tags/x`); then a branch, before a tag of the same name (as
    /// `git ls-remote` lists heads first); then a full or abbreviated (7+ hex) commit id that
    /// the mirror holds. Cheap (ref lookups), so it is fine to call from async code.
    pub fn resolve(&self, target_revision: &str) -> Result<ResolvedRevision> {
        let revision = target_revision.trim();
        let repo = self.repo();
        let not_found = || GitError::RevisionNotFound {
            repo: self.url().to_string(),
            revision: target_revision.to_owned(),
        };
        let read_err = |what: &str, e: &(dyn std::error::Error + 'static)| GitError::Read {
            repo: self.url().to_string(),
            what: what.to_owned(),
            message: error_chain(e),
        };

        if revision.is_empty() || revision == "HEAD" {
            let head = repo
                .find_reference("HEAD")
                .map_err(|e| read_err("HEAD", &e))?;
            let target = match head.target() {
                gix::refs::TargetRef::Symbolic(name) => name.as_bstr().to_str_lossy().into_owned(),
                // A detached HEAD in the mirror only comes from outside meddling; use it anyway.
                gix::refs::TargetRef::Object(_) => "HEAD".to_owned(),
            };
            return match self.peel_ref(&repo, &target)? {
                Some(commit) => Ok(ResolvedRevision {
                    commit,
                    kind: RevisionKind::Head,
                }),
                None => Err(not_found()),
            };
        }

        let candidates: Vec<(String, RevisionKind)> =
            if let Some(branch) = revision.strip_prefix("refs/heads/") {
                vec![(format!("refs/heads/{branch}"), RevisionKind::Branch)]
            } else if let Some(tag) = revision.strip_prefix("refs/tags/") {
                vec![(format!("refs/tags/{tag}"), RevisionKind::Tag)]
            } else if revision.starts_with("refs/") {
                // Only heads and tags are mirrored.
                Vec::new()
            } else {
                vec![
                    (format!("refs/heads/{revision}"), RevisionKind::Branch),
                    (format!("refs/tags/{revision}"), RevisionKind::Tag),
                ]
            };
        for (name, kind) in candidates {
            // Names git would refuse are simply not refs of this repository.
            if gix::refs::FullName::try_from(name.as_str()).is_err() {
                continue;
            }
            if let Some(commit) = self.peel_ref(&repo, &name)? {
                return Ok(ResolvedRevision { commit, kind });
            }
        }

        if is_commit_prefix(revision) {
            let lowered = revision.to_ascii_lowercase();
            let prefix = gix::hash::Prefix::from_hex(&lowered).map_err(|_| not_found())?;
            let Ok(Some(Ok(id))) = repo.objects.lookup_prefix(prefix, None) else {
                // Missing, or ambiguous: an ambiguous prefix names no single commit.
                return Err(not_found());
            };
            let object = repo.find_object(id).map_err(|e| read_err(&lowered, &e))?;
            return match object.peel_to_commit() {
                Ok(commit) => Ok(ResolvedRevision {
                    commit: commit.id.to_hex().to_string(),
                    kind: RevisionKind::Commit,
                }),
                Err(_) => Err(not_found()),
            };
        }
        Err(not_found())
    }

    /// The commit a reference ends at, `None` if there is no such reference or it ends at
    /// something other than a commit (a tag of a tree, say).
    fn peel_ref(&self, repo: &gix::Repository, name: &str) -> Result<Option<String>> {
        let reference = match repo.try_find_reference(name) {
            Ok(Some(reference)) => reference,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(GitError::Read {
                    repo: self.url().to_string(),
                    what: name.to_owned(),
                    message: error_chain(&e),
                });
            }
        };
        let mut reference = reference;
        Ok(reference
            .peel_to_commit()
            .ok()
            .map(|commit| commit.id.to_hex().to_string()))
    }
}

/// Argo CD's `IsTruncatedCommitSHA`/`IsCommitSHA`: 7 to 40 hex digits.
pub fn is_commit_prefix(revision: &str) -> bool {
    (7..=40).contains(&revision.len()) && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::is_commit_prefix;

    #[test]
    fn commit_prefixes() {
        assert!(is_commit_prefix("abcdef0"));
        assert!(is_commit_prefix(&"a".repeat(40)));
        assert!(!is_commit_prefix("abcdef"));
        assert!(!is_commit_prefix(&"a".repeat(41)));
        assert!(!is_commit_prefix("main123"));
    }
}
