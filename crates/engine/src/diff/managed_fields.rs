//! Server-side apply ownership read from a live object's `metadata.managedFields`: which
//! fields a manager's `fieldsV1` trie claims (`f:<field>`, `k:<key json>`, `v:<value json>`,
//! `i:<index>`, `.` for the node itself).

use serde_json::{Map, Value};

use super::path::Seg;
use crate::json::{array_at, str_at};

/// The `fieldsV1` tries of the managers matching `pred(manager, operation)`.
pub(crate) fn tries(live: &Value, pred: impl Fn(&str, &str) -> bool) -> Vec<&Map<String, Value>> {
    array_at(live, &["metadata", "managedFields"])
        .iter()
        .filter(|e| pred(str_at(e, &["manager"]), str_at(e, &["operation"])))
        .filter_map(|e| e.get("fieldsV1").and_then(Value::as_object))
        .collect()
}

/// Turns a trie key into a path step; `None` for `.` and keys this code cannot read.
pub(crate) fn seg_of(key: &str) -> Option<Seg> {
    let (tag, rest) = key.split_once(':')?;
    match tag {
        "f" => Some(Seg::Field(rest.to_owned())),
        "i" => rest.parse().ok().map(Seg::Index),
        "v" => serde_json::from_str(rest).ok().map(Seg::Value),
        "k" => {
            let Value::Object(m) = serde_json::from_str::<Value>(rest).ok()? else {
                return None;
            };
            Some(Seg::Key(m.into_iter().collect()))
        }
        _ => None,
    }
}

/// Whether any trie holds the chain of raw keys `keys`.
pub(crate) fn any_owns(tries: &[&Map<String, Value>], keys: &[&str]) -> bool {
    tries.iter().any(|t| {
        let mut node = Some(*t);
        for k in keys {
            node = node.and_then(|n| n.get(*k)).and_then(Value::as_object);
        }
        node.is_some()
    })
}

/// Every owned leaf: fields with no children, and list items owned whole (only `.`).
pub(crate) fn leaves(trie: &Map<String, Value>) -> Vec<Vec<Seg>> {
    fn walk(node: &Map<String, Value>, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        for (key, child) in node {
            let Some(seg) = seg_of(key) else { continue };
            let child = child.as_object();
            prefix.push(seg);
            match child {
                Some(c) if c.keys().any(|k| k != ".") => walk(c, prefix, out),
                _ => out.push(prefix.clone()),
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(trie, &mut Vec::new(), &mut out);
    out
}
