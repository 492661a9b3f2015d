//! Properties of diff normalization over random objects.

use gitfleet_engine::diff::{DiffOptions, compare};
use gitfleet_model::SyncStatusCode;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Non-zero leaves, so that changing one is always visible (zero values match absence).
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        (1i64..1000).prop_map(Value::from),
        "[a-z]{1,8}".prop_map(Value::from),
        Just(Value::Bool(true)),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::btree_map("[a-z]{1,6}", inner.clone(), 1..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            prop::collection::vec(inner, 1..3).prop_map(Value::Array),
        ]
    })
}

/// A custom resource (atomic lists everywhere) or a ConfigMap-like built-in.
fn object() -> impl Strategy<Value = Value> {
    (prop::bool::ANY, prop::collection::btree_map("[a-z]{1,6}", tree(), 1..4)).prop_map(|(builtin, spec)| {
        let spec: Map<String, Value> = spec.into_iter().collect();
        if builtin {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "d"}, "spec": spec})
        } else {
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}, "spec": spec})
        }
    })
}

/// Paths of every leaf as (json pointer tokens).
fn leaves(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            prefix.push(k.clone());
            leaves(x, prefix, out);
            prefix.pop();
        }),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| {
            prefix.push(i.to_string());
            leaves(x, prefix, out);
            prefix.pop();
        }),
        _ => out.push(prefix.clone()),
    }
}

/// Adds live-only keys to every map, and server-side metadata.
fn with_extras(v: &Value, salt: &str) -> Value {
    match v {
        Value::Object(m) => {
            let mut out: Map<String, Value> = m
                .iter()
                .map(|(k, x)| (k.clone(), with_extras(x, salt)))
                .collect();
            out.insert(format!("zz-live-only-{salt}"), json!({"defaulted": 1}));
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| with_extras(x, salt)).collect()),
        other => other.clone(),
    }
}

fn bump(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_i64().unwrap() + 1),
        Value::String(s) => json!(format!("{s}-changed")),
        Value::Bool(b) => json!(!b),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn identical_objects_are_synced(obj in object()) {
        let d = compare(&obj, Some(&obj), &DiffOptions::default()).unwrap();
        prop_assert_eq!(d.sync, SyncStatusCode::Synced);
        prop_assert!(d.changes.is_empty());
    }

    #[test]
    fn live_only_fields_are_not_differences(obj in object(), salt in "[a-z]{1,4}") {
        let mut live = with_extras(&obj, &salt);
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["resourceVersion"] = json!("9");
        live["status"] = json!({"phase": "Ready"});
        let d = compare(&obj, Some(&live), &DiffOptions::default()).unwrap();
        prop_assert_eq!(d.sync, SyncStatusCode::Synced, "{:?}", d.changes);
    }

    #[test]
    fn changing_a_desired_leaf_is_reported_at_its_path(obj in object(), pick in any::<prop::sample::Index>()) {
        let mut all = Vec::new();
        leaves(&obj["spec"], &mut vec!["spec".to_owned()], &mut all);
        let tokens = pick.get(&all);
        let pointer = format!("/{}", tokens.join("/"));
        let mut desired = obj.clone();
        let leaf = desired.pointer_mut(&pointer).unwrap();
        *leaf = bump(leaf);
        let d = compare(&desired, Some(&obj), &DiffOptions::default()).unwrap();
        prop_assert_eq!(d.sync, SyncStatusCode::OutOfSync);
        let expected: String = tokens
            .iter()
            .map(|t| if t.parse::<usize>().is_ok() { format!("[{t}]") } else { format!(".{t}") })
            .collect();
        prop_assert!(
            d.changes.iter().any(|c| c.path == expected),
            "expected {} among {:?}", expected, d.changes
        );
    }
}
