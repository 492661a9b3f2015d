//! A library of health scripts laid out as Argo CD's `resource_customizations` directory:
//! `<group>/<kind>/health.lua`, where `_` in a directory name is a wildcard
//! (`_.crossplane.io/_`), so an operator can point gitfleet at a copy of the scripts Argo
//! CD ships, or at their own.

use std::path::{Path, PathBuf};

use crate::Script;

/// The health scripts found, each under its key: `<group>/<kind>`, with `*` where the
/// directory name had `_` (Argo CD's `GetConfigMapKey` form, which the engine matches).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Library {
    health: Vec<(String, Script)>,
}

#[derive(Debug, thiserror::Error)]
#[error("reading the Lua script library {path}: {source}")]
pub struct LibraryError {
    path: PathBuf,
    source: std::io::Error,
}

const HEALTH_FILE: &str = "health.lua";

impl Library {
    /// Reads every `<group>/<kind>/health.lua` under `dir`. Other files are ignored; a
    /// script with a syntax error is kept and reported by the objects it judges.
    pub fn load(dir: &Path) -> Result<Library, LibraryError> {
        let mut health = Vec::new();
        for group in sorted_dirs(dir)? {
            for kind in sorted_dirs(&group)? {
                let file = kind.join(HEALTH_FILE);
                let source = match std::fs::read_to_string(&file) {
                    Ok(source) => source,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => return Err(LibraryError { path: file, source }),
                };
                let key = format!("{}/{}", file_name(&group), file_name(&kind)).replace('_', "*");
                health.push((key, Script::new(file.display().to_string(), source)));
            }
        }
        Ok(Library { health })
    }

    /// The health scripts with their keys; exact keys first, then the wildcard ones, each
    /// in name order.
    pub fn health_scripts(&self) -> impl Iterator<Item = (&str, &Script)> {
        let exact = self.health.iter().filter(|(k, _)| !k.contains('*'));
        let wild = self.health.iter().filter(|(k, _)| k.contains('*'));
        exact.chain(wild).map(|(k, s)| (k.as_str(), s))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, LibraryError> {
    let err = |source| LibraryError {
        path: dir.to_owned(),
        source,
    };
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        if entry.file_type().map_err(err)?.is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}
