//! A library of Lua scripts laid out as Argo CD's `resource_customizations` directory:
//! `<group>/<kind>/health.lua` (where `_` in a directory name is a wildcard,
//! `_.crossplane.io/_`), `<group>/<kind>/actions/discovery.lua` and
//! `<group>/<kind>/actions/<action>/action.lua`, so an operator can point gitfleet at a
//! copy of the scripts Argo CD ships, or at their own.

use std::path::{Path, PathBuf};

use crate::Script;

/// The health scripts found, each under its key: `<group>/<kind>`, with `*` where the
/// directory name had `_` (Argo CD's `GetConfigMapKey` form, which the engine matches).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Library {
    health: Vec<(String, Script)>,
    /// `<group>/<kind>` (exact: Argo CD looks actions up by exact key only) to its
    /// actions.
    actions: std::collections::BTreeMap<String, LibraryActions>,
}

/// One kind's `actions/` folder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LibraryActions {
    pub discovery: Option<Script>,
    /// Action name to its `action.lua`.
    pub actions: std::collections::BTreeMap<String, Script>,
}

#[derive(Debug, thiserror::Error)]
#[error("reading the Lua script library {path}: {source}")]
pub struct LibraryError {
    path: PathBuf,
    source: std::io::Error,
}

const HEALTH_FILE: &str = "health.lua";
const DISCOVERY_FILE: &str = "discovery.lua";
const ACTION_FILE: &str = "action.lua";

impl Library {
    /// Reads every `<group>/<kind>/health.lua` and `<group>/<kind>/actions/` under `dir`.
    /// Other files are ignored; a script with a syntax error is kept and reported where
    /// it is used.
    pub fn load(dir: &Path) -> Result<Library, LibraryError> {
        let mut library = Library::default();
        for group in sorted_dirs(dir)? {
            for kind in sorted_dirs(&group)? {
                let key = format!("{}/{}", file_name(&group), file_name(&kind));
                if let Some(script) = read_script(&kind.join(HEALTH_FILE))? {
                    library.health.push((key.replace('_', "*"), script));
                }
                let folder = kind.join("actions");
                if !folder.is_dir() {
                    continue;
                }
                let mut actions = LibraryActions {
                    discovery: read_script(&folder.join(DISCOVERY_FILE))?,
                    ..Default::default()
                };
                for action in sorted_dirs(&folder)? {
                    if let Some(script) = read_script(&action.join(ACTION_FILE))? {
                        actions.actions.insert(file_name(&action), script);
                    }
                }
                library.actions.insert(key, actions);
            }
        }
        Ok(library)
    }

    /// A library of scripts given in memory, as (`<group>/<kind>/...` path, source) pairs
    /// laid out as [`Library::load`] reads a directory; each script's origin is `origin`
    /// followed by its path. Paths of other shapes are ignored.
    pub fn from_files<'a>(
        origin: &str,
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Library {
        let mut library = Library::default();
        for (path, source) in files {
            let script = Script::new(format!("{origin}{path}"), source);
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                [group, kind, HEALTH_FILE] => library
                    .health
                    .push((format!("{group}/{kind}").replace('_', "*"), script)),
                [group, kind, "actions", DISCOVERY_FILE] => {
                    library
                        .actions
                        .entry(format!("{group}/{kind}"))
                        .or_default()
                        .discovery = Some(script);
                }
                [group, kind, "actions", action, ACTION_FILE] => {
                    library
                        .actions
                        .entry(format!("{group}/{kind}"))
                        .or_default()
                        .actions
                        .insert((*action).to_owned(), script);
                }
                _ => {}
            }
        }
        library
    }

    /// The `actions/` folder of `<group>/<kind>`, if the library has one.
    pub fn actions(&self, key: &str) -> Option<&LibraryActions> {
        self.actions.get(key)
    }

    /// The health scripts with their keys; exact keys first, then the wildcard ones, each
    /// in name order.
    pub fn health_scripts(&self) -> impl Iterator<Item = (&str, &Script)> {
        let exact = self.health.iter().filter(|(k, _)| !k.contains('*'));
        let wild = self.health.iter().filter(|(k, _)| k.contains('*'));
        exact.chain(wild).map(|(k, s)| (k.as_str(), s))
    }
}

fn read_script(file: &Path) -> Result<Option<Script>, LibraryError> {
    match std::fs::read_to_string(file) {
        Ok(source) => Ok(Some(Script::new(file.display().to_string(), source))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LibraryError {
            path: file.to_owned(),
            source,
        }),
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
