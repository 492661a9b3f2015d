//! What changed between two commits: the paths that decide which apps re-render.

use std::collections::BTreeSet;

use gix::bstr::ByteSlice;

use crate::error::Result;
use crate::mirror::Mirror;

impl Mirror {
    /// Repository-relative paths of files that differ between commits `from` and `to`:
    /// added, modified, deleted, type-changed; a rename shows as both its old and new path.
    /// Sorted and without duplicates. Both commits must be in the mirror.
    ///
    /// Tree walk only, no blob reads: subtrees with equal ids are skipped whole, so the cost
    /// follows the size of the change, not of the repository. Blocking; call it from a
    /// blocking thread when the trees may be large.
    pub fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let repo = self.repo();
        let from_tree = self.commit_tree(&repo, from)?;
        let to_tree = self.commit_tree(&repo, to)?;
        let kind = repo.object_hash();
        let mut recorder = gix::diff::tree::Recorder::default();
        let mut state = gix::diff::tree::State::default();
        gix::diff::tree(
            gix::objs::TreeRefIter::from_bytes(&from_tree.data, kind),
            gix::objs::TreeRefIter::from_bytes(&to_tree.data, kind),
            &mut state,
            &repo.objects,
            &mut recorder,
        )
        .map_err(|e| self.read_error(&format!("diff {from}..{to}"), &e))?;

        use gix::diff::tree::recorder::Change;
        let mut paths = BTreeSet::new();
        for change in recorder.records {
            let (path, modes) = match &change {
                Change::Addition {
                    path, entry_mode, ..
                }
                | Change::Deletion {
                    path, entry_mode, ..
                } => (path, [*entry_mode, *entry_mode]),
                Change::Modification {
                    path,
                    previous_entry_mode,
                    entry_mode,
                    ..
                } => (path, [*previous_entry_mode, *entry_mode]),
            };
            // A directory's own entry is not a file; the files inside it are reported apart.
            // A tree replaced by a file (or back) still names the file side.
            if modes.iter().all(|mode| mode.is_tree()) {
                continue;
            }
            paths.insert(path.to_str_lossy().into_owned());
        }
        Ok(paths.into_iter().collect())
    }
}
