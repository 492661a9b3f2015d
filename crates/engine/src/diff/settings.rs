//! System-level `ignoreDifferences` from `argocd-cm`'s resource customizations, read as
//! Argo CD reads them (`util/settings`): the split keys
//! `resource.customizations.ignoreDifferences.<group_kind>` (`<group>_<kind>`, a bare
//! `<kind>` for the core group, `all` for every kind) and the legacy
//! `resource.customizations` map (`<group>/<kind>` to an `ignoreDifferences` YAML text).
//! They apply to every app, beside the app's own rules.

use std::collections::BTreeMap;

use gitfleet_model::ResourceIgnoreDifferences;
use serde::Deserialize;
use serde_json::Value;

const SPLIT_PREFIX: &str = "resource.customizations.ignoreDifferences.";
/// `argocd-cm`'s older form: one YAML map from `<group>/<kind>` to each kind's
/// customizations (`ignoreDifferences`, `health.lua`, ...).
pub(crate) const LEGACY_KEY: &str = "resource.customizations";

/// What one customization ignores (Argo CD's `OverrideIgnoreDiff`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ignore {
    #[serde(default)]
    json_pointers: Vec<String>,
    #[serde(default)]
    jq_path_expressions: Vec<String>,
    #[serde(default)]
    managed_fields_managers: Vec<String>,
}

/// The rules `argocd-cm`'s `data` sets, and what did not read (each naming its key), so
/// the rest still apply.
pub fn system_ignore_differences(
    data: &BTreeMap<String, String>,
) -> (Vec<ResourceIgnoreDifferences>, Vec<String>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (key, text) in data {
        if let Some(group_kind) = key.strip_prefix(SPLIT_PREFIX) {
            let parsed = split_group_kind(group_kind)
                .ok_or_else(|| {
                    format!("{key}: expected <group>_<kind>, <kind> or all after {SPLIT_PREFIX}")
                })
                .and_then(|gk| {
                    read(text)
                        .map(|ignore| (gk, ignore))
                        .map_err(|e| format!("{key}: {e}"))
                });
            match parsed {
                Ok(((group, kind), ignore)) => rules.push(rule(group, kind, ignore)),
                Err(e) => errors.push(e),
            }
        } else if key == LEGACY_KEY {
            match legacy_customizations(data).expect("the key is there") {
                Ok(map) => {
                    for (group_kind, customization) in map {
                        let Some(text) = customization.get("ignoreDifferences") else {
                            continue;
                        };
                        let (group, kind) = match group_kind.rsplit_once('/') {
                            Some((g, k)) => (g.to_owned(), k.to_owned()),
                            None => (String::new(), group_kind.clone()),
                        };
                        let ignore = match text {
                            Value::String(t) => read(t),
                            other => {
                                serde_json::from_value(other.clone()).map_err(|e| e.to_string())
                            }
                        };
                        match ignore {
                            Ok(ignore) => rules.push(rule(group, kind, ignore)),
                            Err(e) => errors.push(format!("{LEGACY_KEY} {group_kind:?}: {e}")),
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    (rules, errors)
}

/// The legacy `resource.customizations` map (Argo CD's resource overrides by
/// `group/Kind`, each with `health.lua`, `actions`, `ignoreDifferences`): `None` when
/// `argocd-cm` has none, `Err` saying so when it is not a YAML map. The one reader of it
/// for the health checks, the actions and the ignore rules.
pub(crate) fn legacy_customizations(
    data: &BTreeMap<String, String>,
) -> Option<Result<BTreeMap<String, Value>, String>> {
    let text = data.get(LEGACY_KEY)?;
    Some(serde_yaml_ng::from_str(text).map_err(|e| format!("{LEGACY_KEY}: not a YAML map: {e}")))
}

fn read(text: &str) -> Result<Ignore, String> {
    serde_yaml_ng::from_str::<Option<Ignore>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

/// `<group>_<kind>` (Argo CD's `convertToOverrideKey`), `<kind>` (core group), `all`.
fn split_group_kind(group_kind: &str) -> Option<(String, String)> {
    if group_kind == "all" {
        return Some(("*".to_owned(), "*".to_owned()));
    }
    override_key(group_kind)
}

/// The group and kind a split key's `<group>_<kind>` (or bare `<kind>`, the core group)
/// names, as Argo CD's `convertToOverrideKey` reads it.
pub(crate) fn override_key(group_kind: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = group_kind.split('_').collect();
    match parts.as_slice() {
        [group, kind] if !kind.is_empty() => Some(((*group).to_owned(), (*kind).to_owned())),
        [kind] if !kind.is_empty() => Some((String::new(), (*kind).to_owned())),
        _ => None,
    }
}

/// `group/Kind`, or `Kind` for the core group (Argo CD's `GetConfigMapKey`): how
/// customizations are keyed.
pub(crate) fn config_map_key(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{group}/{kind}")
    }
}

fn rule(group: String, kind: String, ignore: Ignore) -> ResourceIgnoreDifferences {
    ResourceIgnoreDifferences {
        group,
        kind,
        json_pointers: ignore.json_pointers,
        jq_path_expressions: ignore.jq_path_expressions,
        managed_fields_managers: ignore.managed_fields_managers,
        ..ResourceIgnoreDifferences::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{DiffOptions, compare};
    use serde_json::json;

    #[test]
    fn split_and_legacy_keys_as_argocd_reads_them() {
        let data = BTreeMap::from([
            (
                "resource.customizations.ignoreDifferences.apps_Deployment".to_owned(),
                "jsonPointers:\n- /spec/replicas\n".to_owned(),
            ),
            (
                "resource.customizations.ignoreDifferences.all".to_owned(),
                "managedFieldsManagers:\n- kube-controller-manager\n".to_owned(),
            ),
            (
                "resource.customizations.ignoreDifferences.Service".to_owned(),
                "jsonPointers: [/spec/clusterIP]".to_owned(),
            ),
            (
                "resource.customizations.ignoreDifferences.a_b_c".to_owned(),
                "jsonPointers: [/x]".to_owned(),
            ),
            (
                "resource.customizations".to_owned(),
                "admissionregistration.k8s.io/MutatingWebhookConfiguration:\n  ignoreDifferences: |\n    jsonPointers:\n    - /webhooks/0/clientConfig/caBundle\n".to_owned(),
            ),
            ("resource.customizations.health.apps_Deployment".to_owned(), "hs = {}".to_owned()),
        ]);
        let (rules, errors) = system_ignore_differences(&data);
        let summary: Vec<(String, String, Vec<String>, Vec<String>)> = rules
            .iter()
            .map(|r| {
                (
                    r.group.clone(),
                    r.kind.clone(),
                    r.json_pointers.clone(),
                    r.managed_fields_managers.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "admissionregistration.k8s.io".into(),
                    "MutatingWebhookConfiguration".into(),
                    vec!["/webhooks/0/clientConfig/caBundle".to_owned()],
                    vec![]
                ),
                (
                    "".into(),
                    "Service".into(),
                    vec!["/spec/clusterIP".to_owned()],
                    vec![]
                ),
                (
                    "*".into(),
                    "*".into(),
                    vec![],
                    vec!["kube-controller-manager".to_owned()]
                ),
                (
                    "apps".into(),
                    "Deployment".into(),
                    vec!["/spec/replicas".to_owned()],
                    vec![]
                ),
            ]
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("ignoreDifferences.a_b_c"), "{errors:?}");

        // They hide their field in a comparison, as an app's own rule does.
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "n"}, "spec": {"replicas": 2}});
        let mut live = desired.clone();
        live["spec"]["replicas"] = json!(5);
        let opts = DiffOptions::of(&rules);
        assert_eq!(
            compare(&desired, Some(&live), &opts).unwrap().sync,
            gitfleet_model::SyncStatusCode::Synced
        );
        assert_eq!(
            compare(&desired, Some(&live), &DiffOptions::default())
                .unwrap()
                .sync,
            gitfleet_model::SyncStatusCode::OutOfSync
        );
    }
}
