//! Which fields an object or a change touches: the tracked part of an object, the field
//! set of an applied configuration, and the fields an update added or modified.

use std::collections::HashSet;

use k8s_patch::schema::{ListType, list_type};
use serde_json::{Map, Value};

use crate::ObjectInfo;
use crate::error::ApplyError;
use crate::fieldset::FieldSet;
use crate::path::{self, PathElement};

/// Metadata the API server owns: never part of anyone's field set.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// How lists of one object merge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema<'a> {
    kind: &'a str,
    builtin: bool,
}

impl<'a> Schema<'a> {
    pub(crate) fn new(info: &ObjectInfo<'a>) -> Self {
        Schema {
            kind: info.kind,
            builtin: info.builtin,
        }
    }

    /// Custom resources carry no list-map markers we could know of, so all their lists
    /// are atomic.
    pub(crate) fn list_type(&self, names: &[&str]) -> ListType {
        if self.builtin {
            list_type(self.kind, names)
        } else {
            ListType::Atomic
        }
    }
}

/// Which top-level part of the object one write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The main resource; `status` is left out when a status subresource owns it.
    Main { without_status: bool },
    /// The status subresource: only `status`.
    Status,
}

impl Scope {
    pub(crate) fn new(info: &ObjectInfo) -> Self {
        if info.subresource == Some("status") {
            Scope::Status
        } else {
            Scope::Main {
                without_status: info.has_status_subresource,
            }
        }
    }

    fn tracks(self, top_level: &str) -> bool {
        match self {
            Scope::Status => top_level == "status",
            Scope::Main { without_status } => {
                let identity = matches!(top_level, "apiVersion" | "kind");
                let hidden_status = without_status && top_level == "status";
                !(identity || hidden_status)
            }
        }
    }
}

/// The part of `object` field ownership is about in `scope`: identity and server-owned
/// metadata removed. Always an object.
pub(crate) fn tracked(object: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            if !scope.tracks(key) {
                continue;
            }
            if key == "metadata" {
                let mut meta = value.as_object().cloned().unwrap_or_default();
                meta.retain(|k, _| !UNTRACKED_METADATA.contains(&k.as_str()));
                if !meta.is_empty() {
                    out.insert(key.clone(), Value::Object(meta));
                }
            } else {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

/// Removes `null` map values at every depth: in an applied configuration a null field is
/// the same as an absent one.
pub(crate) fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn invalid(message: String) -> ApplyError {
    ApplyError::Invalid { message }
}

/// The field set of an applied configuration (already `tracked`): every leaf, plus every
/// keyed list item as a node of its own. Maps are not members themselves, as in
/// structured-merge-diff's `ToFieldSet`; an empty map or list is owned as a leaf so that
/// applying `{}` or `[]` claims the field.
pub(crate) fn applied_set(object: &Value, schema: &Schema) -> Result<FieldSet, ApplyError> {
    let mut set = FieldSet::new();
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            let mut names = vec![key.as_str()];
            let mut shown = format!(".{key}");
            set.insert_child(
                PathElement::field(key),
                value_set(value, schema, &mut names, &mut shown)?,
            );
        }
    }
    Ok(set)
}

fn value_set<'v>(
    value: &'v Value,
    schema: &Schema,
    names: &mut Vec<&'v str>,
    shown: &mut String,
) -> Result<FieldSet, ApplyError> {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut node = FieldSet::new();
            for (key, child) in map {
                names.push(key);
                let len = shown.len();
                shown.push('.');
                shown.push_str(key);
                node.insert_child(
                    PathElement::field(key),
                    value_set(child, schema, names, shown)?,
                );
                shown.truncate(len);
                names.pop();
            }
            Ok(node)
        }
        Value::Array(items) if !items.is_empty() => match schema.list_type(names) {
            ListType::Atomic => Ok(FieldSet::leaf()),
            // A "set" of objects cannot be keyed by value sensibly; own it whole.
            ListType::Set if !items.iter().all(is_scalar) => Ok(FieldSet::leaf()),
            ListType::Set => {
                let mut node = FieldSet::new();
                let mut seen = HashSet::new();
                for item in items {
                    let encoded = PathElement::value(item);
                    if !seen.insert(encoded.clone()) {
                        return Err(invalid(format!(
                            "{shown}: duplicate entries for value {item}"
                        )));
                    }
                    node.insert_child(encoded, FieldSet::leaf());
                }
                Ok(node)
            }
            ListType::Map(keys) => {
                let mut node = FieldSet::new();
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let len = shown.len();
                    shown.push_str(&format!("[{i}]"));
                    if !item.is_object() {
                        return Err(invalid(format!(
                            "{shown}: expected an object keyed by {keys:?}"
                        )));
                    }
                    let key = path::item_key(item, keys).map_err(|field| {
                        invalid(format!("{shown}: missing key field {field:?}"))
                    })?;
                    let encoded = PathElement::key(&key);
                    shown.truncate(len);
                    if !seen.insert(encoded.clone()) {
                        let printed = path::display(std::slice::from_ref(&encoded));
                        return Err(invalid(format!(
                            "{shown}: duplicate entries for key {printed}"
                        )));
                    }
                    shown.push_str(&path::display(std::slice::from_ref(&encoded)));
                    let mut item_set = value_set(item, schema, names, shown)?;
                    shown.truncate(len);
                    item_set.set_member(true);
                    node.insert_child(encoded, item_set);
                }
                Ok(node)
            }
        },
        _ => Ok(FieldSet::leaf()),
    }
}

fn is_scalar(value: &Value) -> bool {
    !value.is_object() && !value.is_array()
}

/// Items of a keyed list by encoded key; `None` when an item has no key or two share
/// one, and the list then counts as atomic (stored objects are not validated here).
pub(crate) fn keyed_items<'v>(
    items: &'v [Value],
    keys: &[&str],
) -> Option<Vec<(String, &'v Value)>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let key = PathElement::key(&path::item_key(item, keys).ok()?);
        if !seen.insert(key.clone()) {
            return None;
        }
        out.push((key, item));
    }
    Some(out)
}

/// The fields `new` adds or modifies compared with `old` (both `tracked`), which is what
/// an update takes ownership of. A map, list or list item that did not exist before is a
/// member itself (`"."`), like structured-merge-diff's `Added`; top-level fields of
/// built-in kinds are not, since Go's zero value of the type already has them.
pub(crate) fn changed_set(old: &Value, new: &Value, schema: &Schema) -> FieldSet {
    let mut set = FieldSet::new();
    let old_map = old.as_object();
    if let Some(map) = new.as_object() {
        for (key, value) in map {
            let before = old_map.and_then(|m| m.get(key));
            let may_mark = !schema.builtin && key != "metadata";
            let mut names = vec![key.as_str()];
            set.insert_child(
                PathElement::field(key),
                diff(before, value, schema, &mut names, may_mark),
            );
        }
    }
    set
}

fn diff<'v>(
    old: Option<&Value>,
    new: &'v Value,
    schema: &Schema,
    names: &mut Vec<&'v str>,
    may_mark: bool,
) -> FieldSet {
    let leaf_if_changed = || {
        if old == Some(new) {
            FieldSet::new()
        } else {
            FieldSet::leaf()
        }
    };
    match new {
        Value::Object(map) if !map.is_empty() => {
            let old_map = old.and_then(Value::as_object);
            let mut node = FieldSet::new();
            node.set_member(old_map.is_none() && may_mark);
            for (key, value) in map {
                names.push(key);
                let before = old_map.and_then(|m| m.get(key));
                node.insert_child(
                    PathElement::field(key),
                    diff(before, value, schema, names, true),
                );
                names.pop();
            }
            node
        }
        Value::Array(items) if !items.is_empty() => {
            let old_items = old.and_then(Value::as_array);
            match schema.list_type(names) {
                ListType::Set if items.iter().all(is_scalar) => {
                    let mut node = FieldSet::new();
                    node.set_member(old_items.is_none() && may_mark);
                    for item in items {
                        if !old_items.is_some_and(|l| l.contains(item)) {
                            node.insert_child(PathElement::value(item), FieldSet::leaf());
                        }
                    }
                    node
                }
                ListType::Map(keys) => {
                    let new_keyed = keyed_items(items, keys);
                    let old_keyed = match old_items {
                        Some(list) => keyed_items(list, keys).map(Some),
                        None => Some(None),
                    };
                    let (Some(new_keyed), Some(old_keyed)) = (new_keyed, old_keyed) else {
                        return leaf_if_changed();
                    };
                    let mut node = FieldSet::new();
                    node.set_member(old_keyed.is_none() && may_mark);
                    for (key, item) in new_keyed {
                        let before = old_keyed
                            .as_ref()
                            .and_then(|l| l.iter().find(|(k, _)| *k == key).map(|(_, v)| *v));
                        let mut child = diff(before, item, schema, names, true);
                        if before.is_none() {
                            child.set_member(true);
                        }
                        node.insert_child(key, child);
                    }
                    node
                }
                _ => leaf_if_changed(),
            }
        }
        _ => leaf_if_changed(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment_info() -> ObjectInfo<'static> {
        ObjectInfo {
            kind: "Deployment",
            api_version: "apps/v1",
            builtin: true,
            has_status_subresource: true,
            subresource: None,
        }
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "args": ["-g", "daemon off;"],
                        "ports": [{"containerPort": 80}]
                    }]}
                }
            },
            "status": {"replicas": 2}
        })
    }

    #[test]
    fn applied_set_of_a_deployment_has_the_kubernetes_trie_shape() {
        let info = deployment_info();
        let object = tracked(&deployment(), Scope::new(&info));
        let set = applied_set(&object, &Schema::new(&info)).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {"f:matchLabels": {"f:app": {}}},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:args": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {},
                                "f:containerPort": {}
                            }}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn custom_resources_own_lists_whole() {
        let info = ObjectInfo {
            kind: "Widget",
            builtin: false,
            ..deployment_info()
        };
        let object = json!({"spec": {"containers": [{"name": "a"}], "tags": ["x"]}});
        let set = applied_set(&object, &Schema::new(&info)).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {"f:containers": {}, "f:tags": {}}})
        );
    }

    #[test]
    fn keyed_items_without_their_key_are_rejected_with_the_path() {
        let info = deployment_info();
        let object = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"image": "b"}]}}}});
        let err = applied_set(&object, &Schema::new(&info)).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#".spec.template.spec.containers[1]: missing key field "name""#
        );
        let object =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        let err = applied_set(&object, &Schema::new(&info)).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#".spec.template.spec.containers: duplicate entries for key [name="a"]"#
        );
    }

    #[test]
    fn tracked_drops_identity_server_metadata_and_status_of_the_main_resource() {
        let info = deployment_info();
        let object = tracked(&deployment(), Scope::new(&info));
        assert_eq!(object["metadata"], json!({"labels": {"app": "web"}}));
        assert!(object.get("status").is_none() && object.get("kind").is_none());
        let status_only = tracked(&deployment(), Scope::Status);
        assert_eq!(status_only, json!({"status": {"replicas": 2}}));
    }

    #[test]
    fn changed_set_marks_new_maps_and_items_but_not_unchanged_fields() {
        let info = deployment_info();
        let scope = Scope::new(&info);
        let old = tracked(&deployment(), scope);
        let mut new_object = deployment();
        new_object["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        new_object["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "busybox"}));
        new_object["metadata"]["annotations"] = json!({"note": "x"});
        let set = changed_set(&old, &tracked(&new_object, scope), &Schema::new(&info));
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:annotations": {".": {}, "f:note": {}}},
                "f:spec": {"f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"nginx\"}": {"f:image": {}},
                    "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}
                }}}}
            })
        );
    }

    #[test]
    fn changed_set_from_nothing_owns_everything() {
        let info = deployment_info();
        let object = tracked(&deployment(), Scope::new(&info));
        let set = changed_set(&json!({}), &object, &Schema::new(&info));
        let v1 = set.to_fields_v1();
        assert_eq!(
            v1["f:metadata"],
            json!({"f:labels": {".": {}, "f:app": {}}})
        );
        assert!(
            v1["f:spec"].get(".").is_none(),
            "top-level fields of built-ins are not members"
        );
        assert_eq!(v1["f:spec"]["f:replicas"], json!({}));
        let cr = ObjectInfo {
            builtin: false,
            ..info
        };
        let v1 = changed_set(&json!({}), &object, &Schema::new(&cr)).to_fields_v1();
        assert_eq!(v1["f:spec"]["."], json!({}));
    }
}
