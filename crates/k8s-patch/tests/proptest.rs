//! Property tests: merge patch and strategic merge patch against small independent models.

use std::collections::BTreeMap;

use k8s_patch::{apply_merge_patch, apply_strategic_merge_patch, create_merge_patch};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        "[xyz]{0,2}".prop_map(Value::from),
    ]
}

/// Objects over a tiny key alphabet so target and patch keys collide often. `nulls` allows
/// null values (deletions, in a patch); `lists` allows arrays (atomic: no key is a list
/// field of the schema).
fn object(depth: u32, nulls: bool, lists: bool) -> BoxedStrategy<Value> {
    let leaf = {
        let mut options = vec![scalar().boxed()];
        if nulls {
            options.push(Just(Value::Null).boxed());
        }
        if lists {
            options.push(
                prop::collection::vec(scalar(), 0..3)
                    .prop_map(Value::Array)
                    .boxed(),
            );
        }
        proptest::strategy::Union::new(options).boxed()
    };
    let value = if depth == 0 {
        leaf
    } else {
        prop_oneof![3 => leaf, 1 => object(depth - 1, nulls, lists)].boxed()
    };
    prop::collection::vec(("[abcd]", value), 0..5)
        .prop_map(|entries| Value::Object(entries.into_iter().collect()))
        .boxed()
}

/// RFC 7386 written from the definition, on sorted maps, independently of the crate.
fn model_merge(target: &Value, patch: &Value) -> Value {
    let Some(patch) = patch.as_object() else {
        return patch.clone();
    };
    let empty = Map::new();
    let target = target.as_object().unwrap_or(&empty);
    let mut out: BTreeMap<String, Value> = target.clone().into_iter().collect();
    for (key, value) in patch {
        match value {
            Value::Null => {
                out.remove(key);
            }
            _ => {
                let old = out.remove(key).unwrap_or(Value::Null);
                out.insert(key.clone(), model_merge(&old, value));
            }
        }
    }
    Value::Object(out.into_iter().collect())
}

/// A merge patch turning `a` into `b` (`b` without nulls).
fn model_diff(a: &Value, b: &Value) -> Value {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return b.clone();
    };
    let mut patch = Map::new();
    for key in a.keys() {
        if !b.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, new) in b {
        match a.get(key) {
            Some(old) if old == new => {}
            Some(old) => {
                patch.insert(key.clone(), model_diff(old, new));
            }
            None => {
                patch.insert(key.clone(), new.clone());
            }
        }
    }
    Value::Object(patch)
}

fn keys(value: &Value) -> Vec<String> {
    value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// A container: its name plus map fields that are not lists in the schema.
fn container(name: String, nulls: bool) -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("image"),
        Just("workingDir"),
        Just("resources"),
        Just("stdin")
    ];
    prop::collection::vec((field, object(1, nulls, false)), 0..3).prop_map(move |fields| {
        let mut map = Map::new();
        map.insert("name".into(), Value::from(name.clone()));
        for (field, value) in fields {
            // Scalars for scalar fields, objects for `resources`; nulls pass through.
            let value = match (field, value) {
                ("resources", v) => v,
                (_, Value::Object(m)) => m.values().next().cloned().unwrap_or(Value::from("v")),
                (_, v) => v,
            };
            map.insert(field.into(), value);
        }
        Value::Object(map)
    })
}

const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// Containers with unique names drawn from `NAMES`, in a random order.
fn containers(nulls: bool) -> impl Strategy<Value = Vec<Value>> {
    prop::sample::subsequence(NAMES.to_vec(), 0..=NAMES.len())
        .prop_shuffle()
        .prop_flat_map(move |names| {
            names
                .into_iter()
                .map(|n| container(n.to_string(), nulls))
                .collect::<Vec<_>>()
        })
}

fn deployment(containers: Vec<Value>, replicas: Option<i64>) -> Value {
    let mut spec = json!({"template": {"spec": {"containers": containers}}});
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({"kind": "Deployment", "spec": spec})
}

fn containers_of(obj: &Value) -> &Vec<Value> {
    obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
}

fn name(c: &Value) -> &str {
    c["name"].as_str().unwrap()
}

/// The model of (b): each patch container merges into the same-named target container
/// (merge-patch semantics), else is appended; other containers are untouched.
fn model_containers(target: &[Value], patch: &[Value]) -> Vec<Value> {
    let mut out = target.to_vec();
    for p in patch {
        match out.iter_mut().find(|c| name(c) == name(p)) {
            Some(c) => *c = model_merge(c, p),
            None => out.push(model_merge(&Value::Null, p)),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A created merge patch turns the original into the modified object (neither holds
    /// nulls, which a merge patch cannot set), touches only what differs, and is `{}` for
    /// equal objects.
    #[test]
    fn a_created_merge_patch_applies_back(
        original in object(3, false, true),
        modified in object(3, false, true),
    ) {
        let patch = create_merge_patch(&original, &modified);
        prop_assert_eq!(&apply_merge_patch(&original, &patch), &modified);
        for (key, value) in patch.as_object().unwrap() {
            prop_assert_ne!(original.get(key), modified.get(key), "{} = {}", key, value);
        }
        prop_assert_eq!(create_merge_patch(&modified, &modified), json!({}));
    }

    /// (a) Without keyed lists, strategic merge patch is JSON merge patch.
    #[test]
    fn strategic_equals_merge_without_keyed_lists(
        target in object(3, false, true),
        patch in object(3, true, true),
    ) {
        let merged = apply_merge_patch(&target, &patch);
        let strategic = apply_strategic_merge_patch(&target, &patch, "ConfigMap").unwrap();
        prop_assert_eq!(&merged, &model_merge(&target, &patch));
        prop_assert_eq!(&strategic, &merged);
        // Value equality ignores key order; the serialisations must agree too.
        prop_assert_eq!(strategic.to_string(), merged.to_string());
        // Surviving keys keep the target's order; new ones follow in patch order.
        let out_keys = keys(&merged);
        let target_keys = keys(&target);
        let mut expected: Vec<String> = target_keys.iter().filter(|k| out_keys.contains(k)).cloned().collect();
        expected.extend(keys(&patch).into_iter().filter(|k| out_keys.contains(k) && !target_keys.contains(k)));
        prop_assert_eq!(out_keys, expected);
    }

    /// (b) kubectl-style patch: patched containers in target order, new ones after, and a
    /// `$setElementOrder` listing the final order. Result: the append model, exactly.
    #[test]
    fn strategic_containers_with_element_order_follow_the_append_model(
        target in containers(false),
        patched in prop::collection::vec(any::<bool>(), 6),
        new in containers(true),
        replicas in prop::option::of(0i64..5),
        patch_replicas in prop::option::of(0i64..5),
    ) {
        let target_names: Vec<&str> = target.iter().map(name).collect();
        let mut patch_list: Vec<Value> = Vec::new();
        for (i, c) in target.iter().enumerate() {
            if patched[i] {
                // Re-use the generated content of some new container as this one's patch.
                let mut p = new.get(i).cloned().unwrap_or(json!({}));
                p["name"] = json!(name(c));
                patch_list.push(p);
            }
        }
        let fresh: Vec<Value> = new.into_iter().filter(|c| !target_names.contains(&name(c))).collect();
        patch_list.extend(fresh.iter().cloned());
        let order: Vec<Value> = target_names
            .iter()
            .copied()
            .chain(fresh.iter().map(name))
            .map(|n| json!({"name": n}))
            .collect();

        let target_obj = deployment(target.clone(), replicas);
        let mut patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": order,
            "containers": patch_list.clone(),
        }}}});
        if let Some(r) = patch_replicas {
            patch["spec"]["replicas"] = json!(r);
        }
        let out = apply_strategic_merge_patch(&target_obj, &patch, "Deployment").unwrap();
        let want = model_containers(&target, &patch_list);
        prop_assert_eq!(containers_of(&out), &want);
        prop_assert_eq!(&out["spec"]["replicas"], &json!(patch_replicas.or(replicas)));
        prop_assert_eq!(&out["kind"], &json!("Deployment"));
    }

    /// (b') Without `$setElementOrder`, in any patch order: same contents as the model,
    /// target-only containers keep their relative order, patch containers follow the patch.
    #[test]
    fn strategic_containers_without_element_order_merge_by_name(
        target in containers(false),
        patch_list in containers(true),
    ) {
        let out = apply_strategic_merge_patch(
            &deployment(target.clone(), None),
            &deployment(patch_list.clone(), None),
            "Deployment",
        ).unwrap();
        let got = containers_of(&out);
        let want = model_containers(&target, &patch_list);
        prop_assert_eq!(got.len(), want.len());
        for c in &want {
            prop_assert_eq!(got.iter().find(|g| name(g) == name(c)), Some(c));
        }
        let in_patch = |n: &str| patch_list.iter().any(|p| name(p) == n);
        let got_names: Vec<&str> = got.iter().map(name).collect();
        let target_only: Vec<&str> = target.iter().map(name).filter(|n| !in_patch(n)).collect();
        let patch_names: Vec<&str> = patch_list.iter().map(name).collect();
        prop_assert_eq!(got_names.iter().copied().filter(|n| !in_patch(n)).collect::<Vec<_>>(), target_only);
        prop_assert_eq!(got_names.iter().copied().filter(|n| in_patch(n)).collect::<Vec<_>>(), patch_names);
        // A patch touching only existing containers, in their order, keeps the order.
        let target_names: Vec<&str> = target.iter().map(name).collect();
        let existing: Vec<Value> = target_names
            .iter()
            .filter(|n| in_patch(n))
            .map(|n| patch_list.iter().find(|p| name(p) == *n).unwrap().clone())
            .collect();
        let out = apply_strategic_merge_patch(
            &deployment(target.clone(), None),
            &deployment(existing, None),
            "Deployment",
        ).unwrap();
        prop_assert_eq!(containers_of(&out).iter().map(name).collect::<Vec<_>>(), target_names);
    }

    /// (c) The merge patch law: applying the diff from a to b yields b.
    #[test]
    fn merge_patch_of_diff_reaches_the_goal(
        a in object(3, true, true),
        b in object(3, false, true),
    ) {
        let patch = model_diff(&a, &b);
        prop_assert_eq!(apply_merge_patch(&a, &patch), b.clone());
        prop_assert_eq!(apply_strategic_merge_patch(&a, &patch, "ConfigMap").unwrap(), b);
    }
}
