//! Resource actions, found as Argo CD finds them (`util/lua`'s `GetResourceActionDiscovery`
//! and `GetResourceAction`): `argocd-cm`'s `resource.customizations.actions.<group>_<kind>`
//! (or the legacy `resource.customizations` map's `actions`), by exact key; then the
//! predefined scripts of the kind: the operator's script library when it has the kind's
//! `actions/` folder, else gitfleet's own (restart, scale, pause and resume of the
//! workload kinds; suspend, resume and create-job of CronJobs; suspend and resume of
//! Jobs), written here in Argo CD's contract. A customization's discovery replaces the
//! predefined one unless it says `mergeBuiltinActions: true`; its definitions come first.
//! What an action returns becomes writes with [`writes`]: a JSON merge patch of the live
//! object (its `status` part separately, for kinds with a status subresource) or a create.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use gitfleet_lua::{ActionInfo, ActionOperation, Impacted, Library, Limits, LuaError, Script};
use serde::Deserialize;
use serde_json::Value;

use crate::diff::settings::{LEGACY_KEY, config_map_key, legacy_customizations, override_key};

const SPLIT_PREFIX: &str = "resource.customizations.actions.";

/// gitfleet's predefined actions, as `<group>/<kind>/actions/...` paths and their scripts.
const BUILTIN: &[(&str, &str)] = &[
    (
        "apps/DaemonSet/actions/discovery.lua",
        include_str!("lua/apps/DaemonSet/actions/discovery.lua"),
    ),
    (
        "apps/DaemonSet/actions/restart/action.lua",
        include_str!("lua/apps/DaemonSet/actions/restart/action.lua"),
    ),
    (
        "apps/Deployment/actions/discovery.lua",
        include_str!("lua/apps/Deployment/actions/discovery.lua"),
    ),
    (
        "apps/Deployment/actions/pause/action.lua",
        include_str!("lua/apps/Deployment/actions/pause/action.lua"),
    ),
    (
        "apps/Deployment/actions/restart/action.lua",
        include_str!("lua/apps/Deployment/actions/restart/action.lua"),
    ),
    (
        "apps/Deployment/actions/resume/action.lua",
        include_str!("lua/apps/Deployment/actions/resume/action.lua"),
    ),
    (
        "apps/Deployment/actions/scale/action.lua",
        include_str!("lua/apps/Deployment/actions/scale/action.lua"),
    ),
    (
        "apps/StatefulSet/actions/discovery.lua",
        include_str!("lua/apps/StatefulSet/actions/discovery.lua"),
    ),
    (
        "apps/StatefulSet/actions/restart/action.lua",
        include_str!("lua/apps/StatefulSet/actions/restart/action.lua"),
    ),
    (
        "apps/StatefulSet/actions/scale/action.lua",
        include_str!("lua/apps/StatefulSet/actions/scale/action.lua"),
    ),
    (
        "batch/CronJob/actions/create-job/action.lua",
        include_str!("lua/batch/CronJob/actions/create-job/action.lua"),
    ),
    (
        "batch/CronJob/actions/discovery.lua",
        include_str!("lua/batch/CronJob/actions/discovery.lua"),
    ),
    (
        "batch/CronJob/actions/resume/action.lua",
        include_str!("lua/batch/CronJob/actions/resume/action.lua"),
    ),
    (
        "batch/CronJob/actions/suspend/action.lua",
        include_str!("lua/batch/CronJob/actions/suspend/action.lua"),
    ),
    (
        "batch/Job/actions/discovery.lua",
        include_str!("lua/batch/Job/actions/discovery.lua"),
    ),
    (
        "batch/Job/actions/resume/action.lua",
        include_str!("lua/batch/Job/actions/resume/action.lua"),
    ),
    (
        "batch/Job/actions/suspend/action.lua",
        include_str!("lua/batch/Job/actions/suspend/action.lua"),
    ),
];

fn builtin() -> &'static Library {
    static BUILTIN_LIBRARY: OnceLock<Library> = OnceLock::new();
    BUILTIN_LIBRARY
        .get_or_init(|| Library::from_files("gitfleet's built-in ", BUILTIN.iter().copied()))
}

/// Why an action could not be listed or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No script defines the action for the kind (the caller's mistake: NotFound).
    #[error("action {action:?} is not defined for {key}")]
    Unknown { key: String, action: String },
    /// The kind's discovery offers the action as disabled (for this object as it is).
    #[error("action {action:?} is disabled for {key} {name:?}")]
    Disabled {
        key: String,
        name: String,
        action: String,
    },
    #[error("{setting}: {message}")]
    Setting { setting: String, message: String },
    /// A patch of another object than the one the action ran on.
    #[error("{origin}: returned a patch of {got}, not of the {expected} it ran on")]
    OtherObject {
        origin: String,
        expected: String,
        got: String,
    },
    #[error(transparent)]
    Lua(#[from] LuaError),
}

/// One kind's actions as `argocd-cm` customizes them (Argo CD's `ResourceActions`).
#[derive(Debug, Clone, Default, PartialEq)]
struct Customization {
    discovery: Option<Script>,
    definitions: BTreeMap<String, Script>,
    merge_builtin: bool,
}

/// The actions of every kind: `argocd-cm`'s customizations over the predefined scripts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actions {
    settings: BTreeMap<String, Result<Customization, ActionError>>,
    library: Library,
    limits: Limits,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionsYaml {
    #[serde(rename = "discovery.lua", default)]
    discovery: String,
    #[serde(default)]
    definitions: Vec<DefinitionYaml>,
    #[serde(default)]
    merge_builtin_actions: bool,
}

#[derive(Deserialize)]
struct DefinitionYaml {
    name: String,
    #[serde(rename = "action.lua", default)]
    action: String,
}

impl Actions {
    /// The actions `argocd-cm`'s data customizes, over `library` (the operator's copy of
    /// Argo CD's `resource_customizations`) and gitfleet's own. A customization that does
    /// not read is kept as its error, reported when its kind's actions are asked for (an
    /// action must not fall back to a script the operator meant to replace); the errors
    /// are also returned, for logs.
    pub fn from_settings(
        data: &BTreeMap<String, String>,
        library: &Library,
    ) -> (Self, Vec<String>) {
        let mut settings = BTreeMap::new();
        if let Some(Ok(map)) = legacy_customizations(data) {
            // A legacy map that does not read is reported by the health checks' reader.
            for (key, customization) in map {
                let Some(actions) = customization.get("actions") else {
                    continue;
                };
                let setting = format!("{LEGACY_KEY}[{key:?}][actions]");
                let parsed = match actions.as_str() {
                    Some(text) => customization_of(&setting, text),
                    None => Err(setting_error(&setting, "expected a string of YAML")),
                };
                settings.insert(key, parsed);
            }
        }
        for (name, text) in data {
            let Some(group_kind) = name.strip_prefix(SPLIT_PREFIX) else {
                continue;
            };
            match override_key(group_kind) {
                Some((group, kind)) => {
                    settings.insert(config_map_key(&group, &kind), customization_of(name, text));
                }
                None => {
                    settings.insert(
                        name.clone(),
                        Err(setting_error(
                            name,
                            &format!("expected <group>_<kind> or <kind> after {SPLIT_PREFIX}"),
                        )),
                    );
                }
            }
        }
        let errors = settings
            .values()
            .filter_map(|c| c.as_ref().err().map(ToString::to_string))
            .collect();
        let actions = Actions {
            settings,
            library: library.clone(),
            limits: Limits::default(),
        };
        (actions, errors)
    }

    /// Only gitfleet's predefined actions (no `argocd-cm`, no library).
    pub fn builtin() -> Self {
        Actions::default()
    }

    fn customization(&self, key: &str) -> Result<Option<&Customization>, ActionError> {
        match self.settings.get(key) {
            Some(Ok(c)) => Ok(Some(c)),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(None),
        }
    }

    /// The kind's predefined `actions/` folder: the library's when it has one, else
    /// gitfleet's own.
    fn predefined(&self, key: &str) -> Option<&gitfleet_lua::LibraryActions> {
        self.library.actions(key).or_else(|| builtin().actions(key))
    }

    /// The actions offered on `obj`, by name; the first script to name an action says
    /// what it is (the customization's before the predefined one).
    pub fn discover(&self, obj: &Value) -> Result<Vec<ActionInfo>, ActionError> {
        let key = key_of(obj);
        let mut scripts = Vec::new();
        let custom = self.customization(&key)?;
        if let Some(c) = custom
            && let Some(discovery) = &c.discovery
        {
            scripts.push(discovery);
        }
        if custom.is_none_or(|c| c.merge_builtin)
            && let Some(discovery) = self.predefined(&key).and_then(|p| p.discovery.as_ref())
        {
            scripts.push(discovery);
        }
        let mut found: BTreeMap<String, ActionInfo> = BTreeMap::new();
        for script in scripts {
            for action in script.discover_actions(obj, &self.limits)? {
                found.entry(action.name.clone()).or_insert(action);
            }
        }
        Ok(found.into_values().collect())
    }

    /// Runs `action` on `obj` with `params`: what it changes. Refused when the kind's
    /// discovery offers it disabled for `obj`.
    pub fn run(
        &self,
        obj: &Value,
        action: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<Impacted>, ActionError> {
        let key = key_of(obj);
        let script = self
            .customization(&key)?
            .and_then(|c| c.definitions.get(action))
            .or_else(|| self.predefined(&key).and_then(|p| p.actions.get(action)))
            .ok_or_else(|| ActionError::Unknown {
                key: key.clone(),
                action: action.to_owned(),
            })?;
        if self
            .discover(obj)?
            .iter()
            .any(|a| a.name == action && a.disabled)
        {
            return Err(ActionError::Disabled {
                key,
                name: crate::json::str_at(obj, &["metadata", "name"]).to_owned(),
                action: action.to_owned(),
            });
        }
        Ok(script.run_action(obj, params, &self.limits)?)
    }
}

fn setting_error(setting: &str, message: &str) -> ActionError {
    ActionError::Setting {
        setting: setting.to_owned(),
        message: message.to_owned(),
    }
}

fn customization_of(setting: &str, text: &str) -> Result<Customization, ActionError> {
    let parsed: ActionsYaml = serde_yaml_ng::from_str(text).map_err(|e| {
        setting_error(
            setting,
            &format!("expected discovery.lua, definitions (name, action.lua) and mergeBuiltinActions: {e}"),
        )
    })?;
    let discovery = (!parsed.discovery.trim().is_empty())
        .then(|| Script::new(format!("{setting}[discovery.lua]"), parsed.discovery));
    let mut definitions = BTreeMap::new();
    for d in parsed.definitions {
        if d.name.is_empty() {
            return Err(setting_error(setting, "a definition without a name"));
        }
        let origin = format!("{setting}[{}][action.lua]", d.name);
        definitions.insert(d.name, Script::new(origin, d.action));
    }
    Ok(Customization {
        discovery,
        definitions,
        merge_builtin: parsed.merge_builtin_actions,
    })
}

/// `group/Kind` of an object (Argo CD's `GetConfigMapKey`).
fn key_of(obj: &Value) -> String {
    let api_version = crate::json::str_at(obj, &["apiVersion"]);
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    config_map_key(group, crate::json::str_at(obj, &["kind"]))
}

/// One write an action asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionWrite {
    /// A JSON merge patch of the live object; `status` is patched through the status
    /// subresource first when the kind has one (else it goes with the rest).
    Patch {
        object: Value,
        patch: Value,
        status: Option<Value>,
    },
    Create {
        object: Value,
    },
}

/// The writes that turn `live` into what `action` returned, as Argo CD's server makes
/// them: a patch is the merge patch from the live object to the returned one (nothing
/// when they are equal), split into its `status` part and the rest. A patch must be of
/// the object the action ran on.
pub fn writes(
    live: &Value,
    action: &str,
    impacted: Vec<Impacted>,
) -> Result<Vec<ActionWrite>, ActionError> {
    let mut writes = Vec::new();
    for i in impacted {
        match i.operation {
            ActionOperation::Create => writes.push(ActionWrite::Create { object: i.object }),
            ActionOperation::Patch => {
                if identity(&i.object) != identity(live) {
                    return Err(ActionError::OtherObject {
                        origin: format!("action {action:?}"),
                        expected: identity(live),
                        got: identity(&i.object),
                    });
                }
                let mut patch = k8s_patch::create_merge_patch(live, &i.object);
                let status = patch.as_object_mut().and_then(|p| p.remove("status"));
                if patch.as_object().is_some_and(|p| p.is_empty()) && status.is_none() {
                    continue;
                }
                writes.push(ActionWrite::Patch {
                    object: i.object,
                    patch,
                    status,
                });
            }
        }
    }
    Ok(writes)
}

/// `group/Kind namespace/name`, as `app diff` heads a resource.
fn identity(obj: &Value) -> String {
    crate::app::diff_heading(&crate::ResourceRef::from_object(obj))
}

#[cfg(test)]
mod tests;
