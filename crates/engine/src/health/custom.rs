//! Custom health checks in Lua, found as Argo CD finds them (`util/lua`'s
//! `GetHealthScript`): `argocd-cm`'s `resource.customizations.health.<group>_<kind>` (or
//! `<kind>` for the core group) and the legacy `resource.customizations` map's `health.lua`,
//! by exact key then by wildcard key (`*.crossplane.io/*`); then the operator's script
//! library ([`gitfleet_lua::Library`], a copy of Argo CD's `resource_customizations`), by
//! exact key then by wildcard directory. A custom check comes before the built-in one for
//! its kind, as in Argo CD.

use std::collections::BTreeMap;

use gitfleet_lua::{Library, Script};

use crate::diff::settings::{LEGACY_KEY, config_map_key, legacy_customizations, override_key};
use crate::glob::Glob;

const SPLIT_PREFIX: &str = "resource.customizations.health.";

/// One script and the keys it answers for.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Custom {
    /// `group/Kind`, or `Kind` for the core group (Argo CD's `GetConfigMapKey`), or a
    /// pattern of them.
    key: String,
    /// `Some` for a wildcard key.
    pattern: Option<Glob>,
    pub(super) script: Script,
}

impl Custom {
    fn exact(&self, key: &str) -> bool {
        self.pattern.is_none() && self.key == key
    }

    fn wildcard(&self, key: &str) -> bool {
        self.pattern.as_ref().is_some_and(|p| p.matches(key))
    }
}

/// The scripts in the order they are tried: `argocd-cm` exact keys, `argocd-cm`
/// wildcards, library exact keys, library wildcards.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Customs {
    settings: Vec<Custom>,
    library: Vec<Custom>,
}

impl Customs {
    /// The script that judges objects of `group`/`kind`, if any.
    pub(super) fn find(&self, group: &str, kind: &str) -> Option<&Script> {
        if self.is_empty() {
            return None;
        }
        let key = config_map_key(group, kind);
        [&self.settings, &self.library]
            .into_iter()
            .find_map(|tier| {
                tier.iter()
                    .find(|c| c.exact(&key))
                    .or_else(|| tier.iter().find(|c| c.wildcard(&key)))
            })
            .map(|c| &c.script)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.settings.is_empty() && self.library.is_empty()
    }

    /// The scripts `argocd-cm`'s data and the library hold, and what did not read (each
    /// naming its key), so the rest still apply.
    pub(super) fn read(data: &BTreeMap<String, String>, library: &Library) -> (Self, Vec<String>) {
        let mut errors = Vec::new();
        // Split keys win over the legacy map's entry for the same kind, as Argo CD merges.
        let mut scripts: BTreeMap<String, Script> = BTreeMap::new();
        if let Some(legacy) = legacy_customizations(data) {
            match legacy {
                Ok(map) => {
                    for (key, customization) in map {
                        if let Some(source) = customization.get("health.lua") {
                            match source.as_str() {
                                Some(source) if !source.trim().is_empty() => {
                                    let origin = format!("{LEGACY_KEY}[{key:?}][health.lua]");
                                    scripts.insert(key, Script::new(origin, source));
                                }
                                Some(_) => {}
                                None => errors.push(format!(
                                    "{LEGACY_KEY} {key:?}: health.lua is not a string"
                                )),
                            }
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        for (name, source) in data {
            let Some(group_kind) = name.strip_prefix(SPLIT_PREFIX) else {
                continue;
            };
            if source.trim().is_empty() {
                continue;
            }
            match override_key(group_kind) {
                Some((group, kind)) => {
                    scripts.insert(
                        config_map_key(&group, &kind),
                        Script::new(name.clone(), source.clone()),
                    );
                }
                None => errors.push(format!(
                    "{name}: expected <group>_<kind> or <kind> after {SPLIT_PREFIX}"
                )),
            }
        }
        let settings = scripts
            .into_iter()
            .map(|(key, script)| custom(key, script, Glob::new))
            .collect();
        let library = library
            .health_scripts()
            .map(|(key, script)| {
                custom(key.to_owned(), script.clone(), |p| {
                    Glob::with_separator(p, '/')
                })
            })
            .collect();
        (Customs { settings, library }, errors)
    }
}

fn custom(key: String, script: Script, glob: impl Fn(&str) -> Glob) -> Custom {
    let pattern = key.contains(['*', '?', '[', '{']).then(|| glob(&key));
    Custom {
        key,
        pattern,
        script,
    }
}
