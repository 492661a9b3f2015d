//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds, as
//! apimachinery's `strategicpatch.StrategicMergeMapPatch` applies it on the API server.
//!
//! Rules, per field of the patch:
//! - `null` deletes the key (and is ignored when the key is absent); scalars and values of a
//!   different JSON type replace; objects merge recursively.
//! - Lists follow [`crate::schema::list_type`]: atomic lists are replaced whole; sets
//!   (`finalizers`) are unioned; lists with a merge key merge item by item, new items added.
//! - Directives, all stripped from the result:
//!   - `"$patch": "replace"` in an object replaces the object with the rest of the patch;
//!     `"$patch": "delete"` deletes the object. The key is removed — a deliberate difference:
//!     apimachinery leaves `{}` under it, which then decodes into an empty struct.
//!   - In a keyed list, an item `{"<key>": v, "$patch": "delete"}` removes every item with
//!     that key, and an item `{"$patch": "replace"}` makes the list exactly the other items.
//!   - `"$retainKeys": [..]` drops the target's keys not listed (the patch may only set listed
//!     keys).
//!   - `"$deleteFromPrimitiveList/<field>": [..]` removes those values from the list.
//!   - `"$setElementOrder/<field>": [..]` orders the merged list (see below).
//!
//! Ordering, exactly apimachinery's `normalizeElementOrder`: the merged list is split into
//! items named by the order list (`$setElementOrder`, or else the patch list itself) and
//! server-only items. Named items take the order list's order; server-only items keep the
//! target's order; then the two are interleaved: a server-only item goes before the next
//! named item only when both were in the target and it came first there. So a server-only
//! item stays right after the item it followed, and a new item that no `$setElementOrder`
//! places lands *before* the server-only items that precede no named item — as with
//! `kubectl patch`, a new container comes first unless the patch orders it.

use serde_json::{Map, Value};

use crate::error::{PatchError, type_name};
use crate::schema::{ListType, list_type};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to an object of the built-in `kind` ("Deployment",
/// "Service", ...), whose list fields merge as [`crate::schema::list_type`] says.
/// Custom resources do not support strategic merge patch; the caller must refuse it.
pub fn apply_strategic_merge_patch(
    target: &Value,
    patch: &Value,
    kind: &str,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject {
            found: type_name(patch),
        });
    };
    let Value::Object(target) = target else {
        return Err(PatchError::TargetNotAnObject {
            found: type_name(target),
        });
    };
    let mut merger = Merger {
        kind,
        path: Vec::new(),
    };
    // The root cannot be deleted, only emptied.
    let merged = merger.merge_map(Some(target.clone()), patch)?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

enum Seg<'a> {
    Field(&'a str),
    Index(usize),
}

struct Merger<'a> {
    kind: &'a str,
    /// Where we are in the patch document.
    path: Vec<Seg<'a>>,
}

impl<'a> Merger<'a> {
    fn pointer(&self) -> String {
        if self.path.is_empty() {
            return "/".to_string();
        }
        let mut out = String::new();
        for seg in &self.path {
            out.push('/');
            match seg {
                Seg::Field(f) => out.push_str(&f.replace('~', "~0").replace('/', "~1")),
                Seg::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }

    fn pointer_with(&mut self, seg: Seg<'a>) -> String {
        self.path.push(seg);
        let out = self.pointer();
        self.path.pop();
        out
    }

    fn in_seg<T>(&mut self, seg: Seg<'a>, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(seg);
        let out = f(self);
        self.path.pop();
        out
    }

    fn list_type_of(&self, field: &str) -> ListType {
        let mut fields: Vec<&str> = self
            .path
            .iter()
            .filter_map(|seg| match seg {
                Seg::Field(f) => Some(*f),
                Seg::Index(_) => None,
            })
            .collect();
        fields.push(field);
        list_type(self.kind, &fields)
    }

    fn bad_directive(&mut self, seg: Seg<'a>, reason: String) -> PatchError {
        PatchError::BadDirective {
            path: self.pointer_with(seg),
            reason,
        }
    }

    /// Merges an object; `None` in means no target value, `None` out means delete it.
    fn merge_map(
        &mut self,
        original: Option<Map<String, Value>>,
        patch: &'a Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        match patch.get(PATCH) {
            None => Ok(Some(
                self.merge_fields(original.unwrap_or_default(), patch)?,
            )),
            Some(Value::String(s)) if s == "replace" => {
                // Merging into nothing strips nested directives and nulls from the new value.
                Ok(Some(self.merge_fields(Map::new(), patch)?))
            }
            Some(Value::String(s)) if s == "delete" => Ok(None),
            Some(other) => Err(self.bad_directive(
                Seg::Field(PATCH),
                format!(
                    "unknown $patch value {other} in an object (expected \"replace\" or \"delete\")"
                ),
            )),
        }
    }

    /// Merges the fields of `patch` into `original`, honouring every directive but `$patch`.
    fn merge_fields(
        &mut self,
        mut original: Map<String, Value>,
        patch: &'a Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            self.retain_keys(&mut original, patch, retain)?;
        }
        let ordered = self.apply_element_orders(&mut original, patch)?;
        for (key, value) in patch {
            if key == PATCH || key == RETAIN_KEYS || key.starts_with(SET_ORDER) {
                continue;
            }
            if let Some(field) = key.strip_prefix(DELETE_FROM) {
                self.delete_from_primitive_list(&mut original, key, field, value)?;
                continue;
            }
            if ordered.contains(&key.as_str()) {
                continue;
            }
            // Only lists need the schema; looking it up for every scalar would be waste.
            let list_type = match value {
                Value::Array(_) => self.list_type_of(key),
                _ => ListType::Atomic,
            };
            self.in_seg(Seg::Field(key), |m| {
                m.merge_field(&mut original, key, list_type, value)
            })?;
        }
        Ok(original)
    }

    fn merge_field(
        &mut self,
        original: &mut Map<String, Value>,
        key: &str,
        list_type: ListType,
        patch: &'a Value,
    ) -> Result<(), PatchError> {
        if patch.is_null() {
            // shift, not swap: deleting a key must not reorder the others.
            original.shift_remove(key);
            return Ok(());
        }
        // Taking the value out (leaving null in its slot) keeps the key's position.
        let current = original.get_mut(key).map(std::mem::take);
        match self.merge_value(list_type, current, patch)? {
            Some(value) => {
                original.insert(key.to_string(), value);
            }
            None => {
                original.shift_remove(key);
            }
        }
        Ok(())
    }

    /// `list_type` is the schema's type for the field, used if `patch` is a list.
    fn merge_value(
        &mut self,
        list_type: ListType,
        current: Option<Value>,
        patch: &'a Value,
    ) -> Result<Option<Value>, PatchError> {
        Ok(match (current, patch) {
            (_, Value::Null) => None,
            (Some(Value::Object(o)), Value::Object(p)) => {
                self.merge_map(Some(o), p)?.map(Value::Object)
            }
            (_, Value::Object(p)) => self.merge_map(None, p)?.map(Value::Object),
            (Some(Value::Array(o)), Value::Array(p)) => {
                Some(Value::Array(self.merge_list(list_type, o, p)?))
            }
            (_, Value::Array(p)) => {
                Some(Value::Array(self.merge_list(list_type, Vec::new(), p)?))
            }
            (_, scalar) => Some(scalar.clone()),
        })
    }

    fn merge_list(
        &mut self,
        list_type: ListType,
        original: Vec<Value>,
        patch: &'a [Value],
    ) -> Result<Vec<Value>, PatchError> {
        match list_type {
            ListType::Atomic => Ok(patch.to_vec()),
            ListType::Set => Ok(merge_set(original, patch)),
            ListType::Map(_) => match list_type.merge_key() {
                Some(key) => self.merge_keyed(original, patch, key),
                // A keyed list without keys cannot merge; replacing is the safe reading.
                None => Ok(patch.to_vec()),
            },
        }
    }

    fn merge_keyed(
        &mut self,
        original: Vec<Value>,
        patch: &'a [Value],
        key: &'static str,
    ) -> Result<Vec<Value>, PatchError> {
        for (i, item) in original.iter().enumerate() {
            self.check_keyed_item("target", i, item, key)?;
        }
        let mut base = original;
        let mut replace = false;
        let mut items: Vec<(usize, &'a Map<String, Value>)> = Vec::new();
        for (i, item) in patch.iter().enumerate() {
            let Value::Object(fields) = item else {
                return Err(PatchError::NotAMergeItem {
                    document: "patch",
                    path: self.pointer_with(Seg::Index(i)),
                    key,
                    found: type_name(item),
                });
            };
            match fields.get(PATCH) {
                None => {
                    self.check_keyed_item("patch", i, item, key)?;
                    items.push((i, fields));
                }
                Some(Value::String(s)) if s == "delete" => {
                    self.check_keyed_item("patch", i, item, key)?;
                    let doomed = &fields[key];
                    base.retain(|o| !same(&o[key], doomed));
                }
                Some(Value::String(s)) if s == "replace" => replace = true,
                Some(Value::String(s)) if s == "merge" => {
                    self.path.push(Seg::Index(i));
                    let err = self.bad_directive(
                        Seg::Field(PATCH),
                        "merging lists cannot yet be specified in the patch".to_string(),
                    );
                    self.path.pop();
                    return Err(err);
                }
                Some(other) => {
                    self.path.push(Seg::Index(i));
                    let err = self.bad_directive(
                        Seg::Field(PATCH),
                        format!(
                            "unknown $patch value {other} in a list item (expected \"delete\" or \"replace\")"
                        ),
                    );
                    self.path.pop();
                    return Err(err);
                }
            }
        }
        if replace {
            return items
                .into_iter()
                .map(|(i, fields)| {
                    self.in_seg(Seg::Index(i), |m| m.merge_fields(Map::new(), fields))
                        .map(Value::Object)
                })
                .collect();
        }

        let server_order: Vec<Value> = base.iter().map(|o| o[key].clone()).collect();
        let mut merged = base;
        for &(i, fields) in &items {
            let id = &fields[key];
            let existing = merged.iter().position(|o| same(&o[key], id));
            self.in_seg(Seg::Index(i), |m| -> Result<(), PatchError> {
                match existing {
                    Some(pos) => {
                        let Value::Object(o) = std::mem::take(&mut merged[pos]) else {
                            unreachable!("target items were checked to be objects");
                        };
                        merged[pos] = Value::Object(m.merge_fields(o, fields)?);
                    }
                    None => merged.push(Value::Object(m.merge_fields(Map::new(), fields)?)),
                }
                Ok(())
            })?;
        }
        let patch_order: Vec<Value> = items.iter().map(|(_, f)| f[key].clone()).collect();
        Ok(order_items(merged, Some(key), &patch_order, &server_order))
    }

    fn check_keyed_item(
        &mut self,
        document: &'static str,
        index: usize,
        item: &Value,
        key: &'static str,
    ) -> Result<(), PatchError> {
        match item {
            Value::Object(fields) if fields.contains_key(key) => Ok(()),
            Value::Object(_) => Err(PatchError::MissingMergeKey {
                document,
                path: self.pointer_with(Seg::Index(index)),
                key,
            }),
            other => Err(PatchError::NotAMergeItem {
                document,
                path: self.pointer_with(Seg::Index(index)),
                key,
                found: type_name(other),
            }),
        }
    }

    fn retain_keys(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &Map<String, Value>,
        retain: &Value,
    ) -> Result<(), PatchError> {
        let keys: Option<Vec<&str>> = match retain {
            Value::Array(keys) => keys.iter().map(Value::as_str).collect(),
            _ => None,
        };
        let Some(keys) = keys else {
            return Err(self.bad_directive(
                Seg::Field(RETAIN_KEYS),
                format!("$retainKeys must be a list of field names, got {retain}"),
            ));
        };
        // apimachinery rejects a patch that sets a field its own $retainKeys would drop.
        for (key, value) in patch {
            if !value.is_null() && !key.starts_with('$') && !keys.contains(&key.as_str()) {
                return Err(self.bad_directive(
                    Seg::Field(RETAIN_KEYS),
                    format!("the patch sets \"{key}\", which $retainKeys does not list"),
                ));
            }
        }
        original.retain(|key, _| keys.contains(&key.as_str()));
        Ok(())
    }

    fn delete_from_primitive_list(
        &mut self,
        original: &mut Map<String, Value>,
        key: &'a str,
        field: &'a str,
        doomed: &Value,
    ) -> Result<(), PatchError> {
        if field.is_empty() {
            return Err(self.bad_directive(
                Seg::Field(key),
                "no field name after $deleteFromPrimitiveList/".to_string(),
            ));
        }
        let Value::Array(doomed) = doomed else {
            return Err(self.bad_directive(
                Seg::Field(key),
                format!(
                    "expected a list of values to delete, got {}",
                    type_name(doomed)
                ),
            ));
        };
        match original.get_mut(field) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Array(items)) => {
                items.retain(|v| !doomed.iter().any(|d| same(v, d)));
                Ok(())
            }
            Some(other) => Err(PatchError::NotAList {
                path: format!("target field {}", self.pointer_with(Seg::Field(field))),
                found: type_name(other),
            }),
        }
    }

    /// Handles every `$setElementOrder/<field>` of `patch`, merging that field's patch list
    /// too, and returns the fields done so the main loop skips them.
    fn apply_element_orders(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &'a Map<String, Value>,
    ) -> Result<Vec<&'a str>, PatchError> {
        let mut done = Vec::new();
        for (directive, order) in patch {
            let Some(field) = directive.strip_prefix(SET_ORDER) else {
                continue;
            };
            if field.is_empty() {
                return Err(self.bad_directive(
                    Seg::Field(directive),
                    "no field name after $setElementOrder/".to_string(),
                ));
            }
            let Value::Array(order) = order else {
                return Err(self.bad_directive(
                    Seg::Field(directive),
                    format!("expected a list, got {}", type_name(order)),
                ));
            };
            let list_type = self.list_type_of(field);
            let key = match (list_type, list_type.merge_key()) {
                (ListType::Set, _) => None,
                (ListType::Map(_), Some(key)) => Some(key),
                // Order of a replaced list is the patch's own; nothing to do.
                _ => continue,
            };
            let order_ids: Vec<Value> = match key {
                None => order.clone(),
                Some(key) => {
                    let mut ids = Vec::with_capacity(order.len());
                    for (i, item) in order.iter().enumerate() {
                        self.path.push(Seg::Field(directive));
                        let checked = self.check_keyed_item("patch", i, item, key);
                        self.path.pop();
                        checked?;
                        ids.push(item[key].clone());
                    }
                    ids
                }
            };
            let patch_list = match patch.get(field) {
                None => None,
                // Deleting the list: the main loop does it, there is nothing to order.
                Some(Value::Null) => continue,
                Some(Value::Array(items)) => Some(items),
                Some(other) => {
                    return Err(PatchError::NotAList {
                        path: self.pointer_with(Seg::Field(field)),
                        found: type_name(other),
                    });
                }
            };
            let original_list = match original.get_mut(field) {
                None | Some(Value::Null) => None,
                Some(Value::Array(items)) => Some(std::mem::take(items)),
                Some(other) => {
                    return Err(PatchError::NotAList {
                        path: format!("target field {}", self.pointer_with(Seg::Field(field))),
                        found: type_name(other),
                    });
                }
            };
            if let Some(items) = patch_list
                && !order_matches(items, &order_ids, key)
            {
                return Err(self.bad_directive(
                    Seg::Field(directive),
                    format!(
                        "the items of the patch list \"{field}\" are not in the order it gives"
                    ),
                ));
            }
            let server_order: Vec<Value> = original_list
                .iter()
                .flatten()
                .map(|item| identity(item, key).clone())
                .collect();
            let merged = match (original_list, patch_list) {
                (None, None) => continue,
                (Some(original), None) => original,
                (original, Some(items)) => self.in_seg(Seg::Field(field), |m| {
                    m.merge_list(list_type, original.unwrap_or_default(), items)
                })?,
            };
            let ordered = order_items(merged, key, &order_ids, &server_order);
            original.insert(field.to_string(), Value::Array(ordered));
            done.push(field);
        }
        Ok(done)
    }
}

/// Union of two scalar lists, each value once, ordered as apimachinery orders merged lists.
fn merge_set(original: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    let server_order = original.clone();
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for value in original.into_iter().chain(patch.iter().cloned()) {
        if !merged.iter().any(|m| same(m, &value)) {
            merged.push(value);
        }
    }
    order_items(merged, None, patch, &server_order)
}

/// What identifies a list item: its merge key value, or the item itself in a set.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> &'v Value {
    match key {
        Some(key) => &item[key],
        None => item,
    }
}

fn position(ids: &[Value], id: &Value) -> Option<usize> {
    ids.iter().position(|x| same(x, id))
}

/// apimachinery's `normalizeElementOrder` + `mergeSortedSlice`; see the module docs.
/// `named_order` and `server_order` hold identities (see [`identity`]).
fn order_items(
    merged: Vec<Value>,
    key: Option<&str>,
    named_order: &[Value],
    server_order: &[Value],
) -> Vec<Value> {
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position(named_order, identity(item, key)).is_some());
    named.sort_by_key(|item| position(named_order, identity(item, key)));
    server_only
        .sort_by_key(|item| position(server_order, identity(item, key)).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    while let (Some(left), Some(right)) = (server_only.peek(), named.peek()) {
        let left_first = match (
            position(server_order, identity(left, key)),
            position(server_order, identity(right, key)),
        ) {
            (Some(l), Some(r)) => l < r,
            _ => false,
        };
        let next = if left_first {
            server_only.next()
        } else {
            named.next()
        };
        out.extend(next);
    }
    out.extend(server_only);
    out.extend(named);
    out
}

/// apimachinery's `validatePatchWithSetOrderList`: the patch list's items (deletions and
/// directive items aside) must appear in the order list, in the same relative order.
fn order_matches(patch_list: &[Value], order_ids: &[Value], key: Option<&str>) -> bool {
    let items: Vec<&Value> = patch_list
        .iter()
        .filter(|item| key.is_none() || item.get(PATCH).is_none())
        .filter(|item| key.is_none_or(|k| item.get(k).is_some()))
        .collect();
    if items.is_empty() || order_ids.is_empty() {
        return true;
    }
    let mut next = 0;
    for id in order_ids {
        if next < items.len() && same(identity(items[next], key), id) {
            next += 1;
        }
    }
    next == items.len()
}

/// JSON equality, except numbers compare by value (`80` and `80.0` are one port), as Go's
/// `interface{}` comparison of decoded float64s does.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value) -> Value {
        apply_strategic_merge_patch(&target, &patch, "Deployment").unwrap()
    }

    fn smp_err(target: Value, patch: Value) -> String {
        apply_strategic_merge_patch(&target, &patch, "Deployment")
            .unwrap_err()
            .to_string()
    }

    fn names(list: &Value) -> Vec<&str> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|item| {
                item.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| item.as_str().unwrap())
            })
            .collect()
    }

    fn pod(containers: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    fn containers(obj: &Value) -> &Value {
        &obj["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn kubectl_apply_patch_updates_one_container_and_keeps_the_other() {
        let target = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "a", "image": "nginx:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "b", "image": "redis:7", "args": ["--port", "6379"]}
            ]}}}
        });
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"image": "nginx:2", "name": "a"}]
            }}}
        });
        let out = smp(target, patch);
        assert_eq!(
            out,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}"}},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [
                    {"name": "a", "image": "nginx:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                    {"name": "b", "image": "redis:7", "args": ["--port", "6379"]}
                ]}}}
            })
        );
    }

    #[test]
    fn env_merges_by_name() {
        let target = pod(json!([{"name": "a", "env": [
            {"name": "X", "value": "1"}, {"name": "Y", "value": "2"}, {"name": "Z", "value": "3"}
        ]}]));
        let patch = pod(json!([{"name": "a",
            "$setElementOrder/env": [{"name": "X"}, {"name": "Y"}, {"name": "Z"}, {"name": "W"}],
            "env": [{"name": "Y", "value": "two"}, {"name": "W", "value": "4"}, {"name": "Z", "$patch": "delete"}]
        }]));
        let out = smp(target, patch);
        assert_eq!(
            containers(&out)[0]["env"],
            json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "two"}, {"name": "W", "value": "4"}])
        );
    }

    #[test]
    fn maps_merge_nulls_delete_scalars_replace() {
        let target = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "name": "x"}, "spec": {"replicas": 1, "paused": true}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3", "gone": null}}, "spec": {"replicas": 5, "paused": null}});
        assert_eq!(
            smp(target, patch),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}, "name": "x"}, "spec": {"replicas": 5}})
        );
    }

    #[test]
    fn type_changes_replace() {
        let target = json!({"a": {"x": 1}, "b": [1], "c": "s"});
        let patch = json!({"a": "now a string", "b": {"k": null, "v": 1}, "c": {"d": 1}});
        assert_eq!(
            smp(target, patch),
            json!({"a": "now a string", "b": {"v": 1}, "c": {"d": 1}})
        );
    }

    #[test]
    fn atomic_lists_are_replaced_whole() {
        let target = pod(json!([{"name": "a", "command": ["sh", "-c"], "args": ["x", "y"]}]));
        let target = {
            let mut t = target;
            t["spec"]["template"]["spec"]["tolerations"] =
                json!([{"key": "k1", "operator": "Exists"}]);
            t
        };
        let mut patch = pod(json!([{"name": "a", "args": ["z"]}]));
        patch["spec"]["template"]["spec"]["tolerations"] =
            json!([{"key": "k2", "operator": "Exists"}]);
        let out = smp(target, patch);
        assert_eq!(
            containers(&out)[0],
            json!({"name": "a", "command": ["sh", "-c"], "args": ["z"]})
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "k2", "operator": "Exists"}])
        );
    }

    #[test]
    fn new_item_without_element_order_goes_first() {
        // The kubectl docs' "patch-demo" example: the added container is listed first.
        let target = pod(json!([{"name": "patch-demo-ctr", "image": "nginx"}]));
        let patch = pod(json!([{"name": "patch-demo-ctr-2", "image": "redis"}]));
        let out = smp(target, patch);
        assert_eq!(
            names(containers(&out)),
            ["patch-demo-ctr-2", "patch-demo-ctr"]
        );
    }

    #[test]
    fn merged_items_keep_their_place_without_element_order() {
        let target = pod(json!([{"name": "x"}, {"name": "a", "image": "1"}, {"name": "y"}]));
        let patch = pod(json!([{"name": "a", "image": "2"}, {"name": "n"}]));
        let out = smp(target, patch);
        assert_eq!(names(containers(&out)), ["x", "a", "n", "y"]);
        assert_eq!(containers(&out)[1]["image"], "2");
    }

    #[test]
    fn element_order_places_new_items() {
        let target = pod(json!([{"name": "a"}, {"name": "b"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}, {"name": "b"}],
            "containers": [{"name": "c", "image": "c:1"}]
        }}}});
        let out = smp(target, patch);
        assert_eq!(names(containers(&out)), ["a", "c", "b"]);
        assert_eq!(containers(&out)[1], json!({"name": "c", "image": "c:1"}));
    }

    #[test]
    fn element_order_with_server_only_items() {
        // apimachinery's "set elements order in a list with server-only items 3".
        let target = pod(json!([
            {"name": "1", "other": "a"}, {"name": "2", "value": "2"}, {"name": "7"}, {"name": "9"},
            {"name": "8"}, {"name": "3", "value": "3"}, {"name": "4", "value": "4"}
        ]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]
        }}}});
        let out = smp(target, patch);
        assert_eq!(names(containers(&out)), ["2", "1", "7", "9", "8", "4", "3"]);
        assert_eq!(containers(&out)[1], json!({"name": "1", "other": "a"}));

        // ... and "with server-only items": a trailing server-only item stays last.
        let target =
            pod(json!([{"name": "1"}, {"name": "3"}, {"name": "4"}, {"name": "2"}, {"name": "9"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}]
        }}}});
        assert_eq!(
            names(containers(&smp(target, patch))),
            ["4", "2", "3", "1", "9"]
        );
    }

    #[test]
    fn element_order_creates_missing_list() {
        let target = json!({"spec": {"template": {"spec": {}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/initContainers": [{"name": "b"}, {"name": "a"}],
            "initContainers": [{"name": "b"}, {"name": "a", "$setElementOrder/env": [{"name": "E"}], "env": [{"name": "E"}]}]
        }}}});
        assert_eq!(
            smp(target, patch),
            json!({"spec": {"template": {"spec": {"initContainers": [{"name": "b"}, {"name": "a", "env": [{"name": "E"}]}]}}}})
        );
    }

    #[test]
    fn element_order_that_contradicts_the_patch_is_rejected() {
        let target = pod(json!([{"name": "a"}, {"name": "b"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b"}, {"name": "a"}]
        }}}});
        assert_eq!(
            smp_err(target, patch),
            "strategic merge patch: invalid directive at /spec/template/spec/$setElementOrder~1containers: \
             the items of the patch list \"containers\" are not in the order it gives"
        );
    }

    #[test]
    fn list_item_delete_directive() {
        let target = pod(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let patch =
            pod(json!([{"name": "b", "$patch": "delete"}, {"name": "zz", "$patch": "delete"}]));
        assert_eq!(names(containers(&smp(target, patch))), ["a", "c"]);
    }

    #[test]
    fn list_replace_directive() {
        let target = pod(json!([{"name": "a", "image": "1"}, {"name": "b"}]));
        let patch = pod(json!([{"name": "c", "image": "3"}, {"$patch": "replace"}, {"name": "a"}]));
        assert_eq!(
            containers(&smp(target, patch)),
            &json!([{"name": "c", "image": "3"}, {"name": "a"}])
        );
    }

    #[test]
    fn map_replace_directive() {
        let target = json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}});
        let patch = json!({"spec": {"selector": {"matchLabels": {"$patch": "replace", "c": "3", "d": null}}}});
        assert_eq!(
            smp(target, patch),
            json!({"spec": {"selector": {"matchLabels": {"c": "3"}}}})
        );
    }

    #[test]
    fn map_delete_directive() {
        let target = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "replicas": 1}});
        let patch = json!({"spec": {"strategy": {"$patch": "delete"}}});
        assert_eq!(smp(target, patch), json!({"spec": {"replicas": 1}}));
        // At the root there is nothing to delete the object from: it is emptied.
        assert_eq!(smp(json!({"a": 1}), json!({"$patch": "delete"})), json!({}));
    }

    #[test]
    fn retain_keys_drops_unlisted_keys() {
        // A volume switching source: the old emptyDir must go.
        let target = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "data", "emptyDir": {}}, {"name": "other", "emptyDir": {}}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/data"}}
        ]}}}});
        assert_eq!(
            smp(target, patch),
            json!({"spec": {"template": {"spec": {"volumes": [
                {"name": "data", "hostPath": {"path": "/data"}}, {"name": "other", "emptyDir": {}}
            ]}}}})
        );
    }

    #[test]
    fn retain_keys_must_cover_the_patch() {
        let err = smp_err(
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        );
        assert_eq!(
            err,
            "strategic merge patch: invalid directive at /spec/strategy/$retainKeys: \
             the patch sets \"rollingUpdate\", which $retainKeys does not list"
        );
        let err = smp_err(json!({}), json!({"spec": {"$retainKeys": "type"}}));
        assert_eq!(
            err,
            "strategic merge patch: invalid directive at /spec/$retainKeys: \
             $retainKeys must be a list of field names, got \"type\""
        );
    }

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let target = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
        let patch = json!({"metadata": {"finalizers": ["b", "d"], "$deleteFromPrimitiveList/finalizers": ["c", "zz"]}});
        // "d" is new and no $setElementOrder places it: it follows "b", the patch item before
        // it, ahead of the server-only "c" (which is then deleted).
        assert_eq!(
            smp(target, patch),
            json!({"metadata": {"finalizers": ["a", "b", "d"]}})
        );
        let patch = json!({"metadata": {"finalizers": ["d", "b"]}});
        assert_eq!(
            smp(json!({"metadata": {"finalizers": ["a", "b", "c"]}}), patch),
            json!({"metadata": {"finalizers": ["d", "a", "b", "c"]}})
        );

        let target = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["a", "b", "c"],
            "finalizers": ["c"]
        }});
        assert_eq!(
            smp(target, patch),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}})
        );

        // Deleting from an absent list is a no-op, not a list of the deleted values.
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}});
        assert_eq!(smp(json!({"metadata": {}}), patch), json!({"metadata": {}}));
    }

    #[test]
    fn int_set_order_with_deletion() {
        // apimachinery's "add and delete an item in a int list and preserve order".
        let target = json!({"metadata": {"finalizers": ["1", "2", "3"]}});
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["4", "2", "1"],
            "finalizers": ["4"],
            "$deleteFromPrimitiveList/finalizers": ["3"]
        }});
        assert_eq!(
            smp(target, patch),
            json!({"metadata": {"finalizers": ["4", "2", "1"]}})
        );
    }

    #[test]
    fn ports_merge_by_their_own_keys() {
        let target = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
        let out = apply_strategic_merge_patch(&target, &patch, "Service").unwrap();
        assert_eq!(
            out,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}})
        );

        let target = pod(json!([{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]));
        let patch = pod(json!([{"name": "a", "ports": [{"containerPort": 80.0, "name": "web"}]}]));
        // One item: 80.0 matched 80. The patch's spelling of the key wins, as any patch value.
        assert_eq!(
            containers(&smp(target, patch))[0]["ports"],
            json!([{"containerPort": 80.0, "name": "web"}])
        );
    }

    #[test]
    fn directives_are_stripped_from_new_values() {
        let target = json!({"spec": {}});
        let patch = json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "a": "1"}},
            "spec": {"containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}, {"name": "Y"}]}, {"$patch": "replace"}]}}}});
        assert_eq!(
            smp(target, patch),
            json!({"spec": {"template": {"metadata": {"labels": {"a": "1"}},
                "spec": {"containers": [{"name": "a", "env": [{"name": "Y"}]}]}}}})
        );
    }

    #[test]
    fn empty_patch_list_leaves_a_merge_list_alone() {
        let target = pod(json!([{"name": "a"}]));
        assert_eq!(smp(target.clone(), pod(json!([]))), target);
    }

    #[test]
    fn key_order_is_kept() {
        let out = smp(
            json!({"a": 1, "b": {"x": 1, "y": 2}, "c": 3}),
            json!({"b": {"x": null}, "a": null, "d": 4}),
        );
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"b":{"y":2},"c":3,"d":4}"#
        );
    }

    #[test]
    fn missing_merge_key_names_the_path() {
        let target = pod(json!([{"name": "a"}]));
        assert_eq!(
            smp_err(target.clone(), pod(json!([{"name": "a"}, {"image": "x"}]))),
            "strategic merge patch: patch list item /spec/template/spec/containers/1 has no merge key \"name\""
        );
        assert_eq!(
            smp_err(
                target.clone(),
                pod(json!([{"name": "a", "env": [{"value": "1"}]}]))
            ),
            "strategic merge patch: patch list item /spec/template/spec/containers/0/env/0 has no merge key \"name\""
        );
        assert_eq!(
            smp_err(target.clone(), pod(json!(["a"]))),
            "strategic merge patch: patch list item /spec/template/spec/containers/0 must be an object \
             (merge key \"name\"), got string"
        );
        assert_eq!(
            smp_err(pod(json!([{"image": "x"}])), pod(json!([{"name": "a"}]))),
            "strategic merge patch: target list item /spec/template/spec/containers/0 has no merge key \"name\""
        );
        assert_eq!(
            smp_err(target, pod(json!([{"$patch": "delete"}]))),
            "strategic merge patch: patch list item /spec/template/spec/containers/0 has no merge key \"name\""
        );
    }

    #[test]
    fn bad_documents_and_directives() {
        assert_eq!(
            apply_strategic_merge_patch(&json!({}), &json!([1]), "Pod").unwrap_err(),
            PatchError::NotAnObject { found: "array" }
        );
        assert_eq!(
            apply_strategic_merge_patch(&json!("x"), &json!({}), "Pod")
                .unwrap_err()
                .to_string(),
            "strategic merge patch target must be a json object, got string"
        );
        assert_eq!(
            smp_err(json!({}), json!({"spec": {"$patch": "merge"}})),
            "strategic merge patch: invalid directive at /spec/$patch: \
             unknown $patch value \"merge\" in an object (expected \"replace\" or \"delete\")"
        );
        assert_eq!(
            smp_err(
                pod(json!([])),
                pod(json!([{"name": "a", "$patch": "merge"}]))
            ),
            "strategic merge patch: invalid directive at /spec/template/spec/containers/0/$patch: \
             merging lists cannot yet be specified in the patch"
        );
        assert_eq!(
            smp_err(
                json!({}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}})
            ),
            "strategic merge patch: invalid directive at /metadata/$deleteFromPrimitiveList~1finalizers: \
             expected a list of values to delete, got string"
        );
        assert_eq!(
            smp_err(
                json!({"metadata": {"finalizers": "a"}}),
                json!({"metadata": {"$setElementOrder/finalizers": ["a"]}})
            ),
            "strategic merge patch: target field /metadata/finalizers must be a list, got string"
        );
        assert_eq!(
            smp_err(
                pod(json!([])),
                json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"image": "a"}]}}}})
            ),
            "strategic merge patch: patch list item /spec/template/spec/$setElementOrder~1containers/0 \
             has no merge key \"name\""
        );
    }
}
