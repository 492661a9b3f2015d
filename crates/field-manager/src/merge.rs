//! Structured merge of an applied configuration into the live object, and the removal of
//! fields an applier stopped applying.

use k8s_patch::schema::ListType;
use serde_json::Value;

use crate::fields::{Schema, keyed_items};
use crate::fieldset::FieldSet;
use crate::path::{self, PathElement};

/// Merges `applied` into `live`: maps recursively, keyed lists by key (live order kept,
/// new items appended), set lists as a union, atomic lists and scalars replaced.
pub(crate) fn merge(live: &mut Value, applied: &Value, schema: &Schema) {
    merge_at(live, applied, schema, &mut Vec::new());
}

fn merge_at<'v>(live: &mut Value, applied: &'v Value, schema: &Schema, names: &mut Vec<&'v str>) {
    match (live, applied) {
        (Value::Object(live_map), Value::Object(applied_map)) => {
            for (key, value) in applied_map {
                names.push(key);
                match live_map.get_mut(key) {
                    Some(existing) => merge_at(existing, value, schema, names),
                    None => {
                        live_map.insert(key.clone(), value.clone());
                    }
                }
                names.pop();
            }
        }
        (live @ Value::Array(_), Value::Array(applied_items)) => match schema.list_type(names) {
            ListType::Set => {
                let Value::Array(live_items) = live else {
                    unreachable!()
                };
                for item in applied_items {
                    if !live_items.contains(item) {
                        live_items.push(item.clone());
                    }
                }
            }
            ListType::Map(keys) => merge_keyed(live, applied_items, keys, schema, names),
            ListType::Atomic => *live = applied.clone(),
        },
        (live, applied) => *live = applied.clone(),
    }
}

fn merge_keyed<'v>(
    live: &mut Value,
    applied_items: &'v [Value],
    keys: &[&str],
    schema: &Schema,
    names: &mut Vec<&'v str>,
) {
    let live_keys: Option<Vec<String>> = match live.as_array() {
        Some(items) => {
            keyed_items(items, keys).map(|k| k.into_iter().map(|(key, _)| key).collect())
        }
        None => None,
    };
    // A live list we cannot key (never validated) is replaced like an atomic one.
    let Some(live_keys) = live_keys else {
        *live = Value::Array(applied_items.to_vec());
        return;
    };
    let Value::Array(live_items) = live else {
        unreachable!()
    };
    for item in applied_items {
        // `applied_set` has already rejected items without a key.
        let Ok(key) = path::item_key(item, keys) else {
            continue;
        };
        let key = PathElement::key(&key);
        match live_keys.iter().position(|k| *k == key) {
            Some(i) => merge_at(&mut live_items[i], item, schema, names),
            None => live_items.push(item.clone()),
        }
    }
}

/// Removes from `value` what `dropped` lists unless `kept` owns that path or anything
/// below it. Key fields of a kept list item stay (the item would lose its identity),
/// and a map emptied by the removal goes too unless someone owns the map itself.
pub(crate) fn prune(value: &mut Value, dropped: &FieldSet, kept: &FieldSet) {
    prune_at(value, dropped, Some(kept), &[], true);
}

fn prune_at(
    value: &mut Value,
    dropped: &FieldSet,
    kept: Option<&FieldSet>,
    key_fields: &[String],
    root: bool,
) {
    for (element, dropped_child) in dropped.children() {
        let kept_child = kept.and_then(|k| k.child(element));
        let owned = kept_child.is_some_and(|k| !k.is_empty());
        let is_key_field = element
            .strip_prefix("f:")
            .is_some_and(|f| key_fields.iter().any(|k| k == f));
        if dropped_child.is_member() && !owned && !is_key_field {
            path::remove_child(value, element);
            continue;
        }
        let child_keys: Vec<String> = match PathElement::decode(element) {
            Some(PathElement::Key(key)) => key.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let Some(child) = path::child_mut(value, element) else {
            continue;
        };
        let was_empty = child.as_object().is_some_and(|m| m.is_empty());
        prune_at(child, dropped_child, kept_child, &child_keys, false);
        let now_empty = child.as_object().is_some_and(|m| m.is_empty());
        let map_owned = kept_child.is_some_and(FieldSet::is_member);
        let protected = root && element == "f:metadata";
        if now_empty && !was_empty && !map_owned && !protected && element.starts_with("f:") {
            path::remove_child(value, element);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ObjectInfo;

    fn schema() -> Schema<'static> {
        Schema::new(&ObjectInfo {
            kind: "Deployment",
            api_version: "apps/v1",
            builtin: true,
            has_status_subresource: true,
            subresource: None,
        })
    }

    #[test]
    fn keyed_lists_merge_by_key_keeping_live_order() {
        let mut live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "args": ["x"]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let applied = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "c:1"},
            {"name": "a", "image": "a:2", "args": ["y"]}
        ]}}}});
        merge(&mut live, &applied, &schema());
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "a", "image": "a:2", "args": ["y"]},
                {"name": "b", "image": "b:1"},
                {"name": "c", "image": "c:1"}
            ])
        );
    }

    #[test]
    fn set_lists_union_and_atomic_lists_replace() {
        let mut live = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"x": [1, 2]}});
        merge(
            &mut live,
            &json!({"metadata": {"finalizers": ["c", "a"]}, "spec": {"x": [3]}}),
            &schema(),
        );
        assert_eq!(
            live,
            json!({"metadata": {"finalizers": ["a", "b", "c"]}, "spec": {"x": [3]}})
        );
    }

    #[test]
    fn prune_keeps_what_others_own_and_key_fields() {
        let mut value = json!({
            "metadata": {"labels": {"a": "1"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "main", "image": "m"},
                {"name": "side", "image": "s", "args": ["x"]}
            ]}}}
        });
        let side = r#"k:{"name":"side"}"#;
        let p = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut dropped = FieldSet::new();
        dropped.insert(&p(&["f:metadata", "f:labels", "f:a"]));
        for leaf in [vec![], vec!["f:name"], vec!["f:image"], vec!["f:args"]] {
            let mut path = p(&["f:spec", "f:template", "f:spec", "f:containers", side]);
            path.extend(leaf.iter().map(|s| s.to_string()));
            dropped.insert(&path);
        }
        let mut kept = FieldSet::new();
        kept.insert(&p(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            side,
            "f:image",
        ]));
        prune(&mut value, &dropped, &kept);
        assert_eq!(
            value,
            json!({
                "metadata": {},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "main", "image": "m"},
                    {"name": "side", "image": "s"}
                ]}}}
            })
        );
        // Nobody owns the item any more: it goes whole.
        prune(&mut value, &dropped, &FieldSet::new());
        assert_eq!(
            value["spec"]["template"]["spec"]["containers"],
            json!([{"name": "main", "image": "m"}])
        );
    }
}
