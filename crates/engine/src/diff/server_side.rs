//! Server-side diff (Argo CD's `compare-options: ServerSideDiff=true`, gitops-engine's
//! `serverSideDiff`): a desired object is applied to the cluster as a server-side dry run
//! by [`FIELD_MANAGER`](super::FIELD_MANAGER), and the object the API server answers (its
//! defaults, its admission webhooks' changes, its pruning of unknown fields) is what live is
//! compared with, instead of the manifest. Not for objects that do not exist yet (Argo CD
//! saves the call: the comparison is the plain one).
//!
//! Mutation webhooks: by default (Argo CD's `removeWebhookMutation`) only the fields the
//! dry run says the manager owns are taken from the answer, and every other field keeps
//! its live value, so what a webhook adds on its own is not a difference; a field the
//! manifest sets that a webhook changes is owned by the manager and compared at its
//! changed value. `IncludeMutationWebhook=true` compares the whole answer.

use gitfleet_model::Application;
use serde_json::{Map, Value};

use super::managed_fields::{seg_of, tries};
use super::path::{Seg, item_matches};
use crate::app::COMPARE_OPTIONS;
use crate::json::annotation_list;

pub const SERVER_SIDE_DIFF: &str = "ServerSideDiff";
pub const INCLUDE_MUTATION_WEBHOOK: &str = "IncludeMutationWebhook";

/// A compare option's value on the resource, else on the app (`true`/`false`).
fn option(app: &Application, obj: &Value, name: &str) -> Option<bool> {
    let read = |list: Vec<&str>| {
        list.into_iter().find_map(|o| {
            let (k, v) = o.split_once('=')?;
            (k.trim() == name).then(|| v.trim().eq_ignore_ascii_case("true"))
        })
    };
    read(annotation_list(obj, COMPARE_OPTIONS)).or_else(|| {
        read(
            app.metadata
                .annotations
                .get(COMPARE_OPTIONS)
                .map(|v| v.split(',').map(str::trim).collect())
                .unwrap_or_default(),
        )
    })
}

/// Whether `obj` of `app` is compared server-side: the resource's compare option, else
/// the app's; off by default, as Argo CD's `controller.diff.server.side`.
pub fn wanted(app: &Application, obj: &Value) -> bool {
    option(app, obj, SERVER_SIDE_DIFF).unwrap_or(false)
}

/// What live is compared with for a server-side diff: `predicted` (the dry run's answer)
/// whole with `IncludeMutationWebhook=true`, else `live` with the fields `manager` owns in
/// `predicted` taken from it (and those it owns that `predicted` no longer has removed).
pub fn compared_object(
    app: &Application,
    desired: &Value,
    predicted: &Value,
    live: &Value,
    manager: &str,
) -> Value {
    if option(app, desired, INCLUDE_MUTATION_WEBHOOK).unwrap_or(false) {
        return predicted.clone();
    }
    let mut out = live.clone();
    // What the apply removed (a field the manager owned that the manifest dropped) stays
    // removed: gitops-engine's `comparison.Removed`.
    prune_absent(&mut out, predicted);
    for trie in tries(predicted, |m, op| m == manager && op == "Apply") {
        overlay(&mut out, predicted, trie);
    }
    // The answer's own metadata (managedFields, resourceVersion) is normalized away.
    out
}

/// Removes from `into` what `from` does not have: map keys, and list items by their
/// `name` (the key of most keyed lists) where both lists' items have one.
fn prune_absent(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            into.retain(|k, _| from.contains_key(k));
            for (k, v) in into.iter_mut() {
                prune_absent(v, &from[k]);
            }
        }
        (Value::Array(into), Value::Array(from)) => {
            let name = |v: &Value| v.get("name").cloned();
            if into.iter().chain(from.iter()).all(|v| name(v).is_some()) {
                into.retain(|v| from.iter().any(|f| name(f) == name(v)));
                for v in into.iter_mut() {
                    if let Some(f) = from.iter().find(|f| name(f) == name(v)) {
                        prune_absent(v, f);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Copies what `trie` owns from `from` into `into`, removing what it owns that `from`
/// lacks.
fn overlay(into: &mut Value, from: &Value, trie: &Map<String, Value>) {
    for (key, child) in trie {
        let Some(seg) = seg_of(key) else { continue };
        let sub = child.as_object().filter(|c| c.keys().any(|k| k != "."));
        match seg {
            Seg::Field(name) => {
                let (Some(into), Some(from_map)) = (into.as_object_mut(), from.as_object()) else {
                    continue;
                };
                match (from_map.get(&name), sub) {
                    (None, _) => {
                        into.remove(&name);
                    }
                    (Some(v), None) => {
                        into.insert(name, v.clone());
                    }
                    (Some(v), Some(sub)) => {
                        let slot = into.entry(name).or_insert(Value::Null);
                        if !same_shape(slot, v) {
                            *slot = v.clone();
                        } else {
                            overlay(slot, v, sub);
                        }
                    }
                }
            }
            Seg::Key(keys) => item(into, from, sub, |_, i| item_matches(i, &keys, false)),
            Seg::Value(value) => item(into, from, sub, |_, i| *i == value),
            Seg::Index(index) => item(into, from, sub, |n, _| n == index),
        }
    }
}

/// The list item `picks` chooses (by position and value), in `from` and `into` alike.
fn item(
    into: &mut Value,
    from: &Value,
    sub: Option<&Map<String, Value>>,
    picks: impl Fn(usize, &Value) -> bool,
) {
    let (Some(into), Some(from)) = (into.as_array_mut(), from.as_array()) else {
        return;
    };
    let position = |list: &[Value]| list.iter().enumerate().position(|(n, v)| picks(n, v));
    match (position(from).map(|w| &from[w]), position(into)) {
        (None, Some(n)) => {
            into.remove(n);
        }
        (None, None) => {}
        (Some(v), None) => into.push(v.clone()),
        (Some(v), Some(n)) => match sub {
            Some(sub) if same_shape(&into[n], v) => overlay(&mut into[n], v, sub),
            _ => into[n] = v.clone(),
        },
    }
}

fn same_shape(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
    )
}

#[cfg(test)]
mod tests;
