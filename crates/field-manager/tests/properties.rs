//! Properties that must hold for any configuration: re-applying is a no-op and stored
//! ownership always refers to fields that exist.

use field_manager::{FieldSet, ObjectInfo, Operation, apply, managed, record_update};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const INFO: ObjectInfo<'static> = ObjectInfo {
    kind: "Deployment",
    api_version: "apps/v1",
    builtin: true,
    has_status_subresource: true,
    subresource: None,
};

fn config(
    labels: &[(String, String)],
    replicas: Option<u8>,
    containers: &[(String, String)],
) -> Value {
    let labels: Map<String, Value> = labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut seen = std::collections::HashSet::new();
    let containers: Vec<Value> = containers
        .iter()
        .filter(|(name, _)| seen.insert(name.clone()))
        .map(|(name, image)| json!({"name": name, "image": image}))
        .collect();
    let mut spec = json!({"template": {"spec": {"containers": containers}}});
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": spec
    })
}

fn every_owned_path_exists(object: &Value) -> bool {
    managed::read(object)
        .unwrap_or_default()
        .iter()
        .all(|entry| {
            let mut kept = entry.fields.clone();
            kept.retain_existing(object);
            kept == entry.fields && !entry.fields.is_empty()
        })
}

fn arb_config() -> impl Strategy<Value = Value> {
    let name = "[a-c]";
    (
        prop::collection::vec((name, "[xy]"), 0..3),
        prop::option::of(0u8..3),
        prop::collection::vec((name, "[xy]"), 0..3),
    )
        .prop_map(|(labels, replicas, containers)| config(&labels, replicas, &containers))
}

proptest! {
    #[test]
    fn reapplying_the_same_configuration_changes_nothing(first in arb_config(), second in arb_config()) {
        let op = Operation { manager: "a", time: "2026-01-01T00:00:00Z" };
        let live = apply(None, &first, &INFO, &op, false).unwrap();
        let other = Operation { manager: "b", time: "2026-01-01T00:01:00Z" };
        let live = apply(Some(&live), &second, &INFO, &other, true).unwrap();
        prop_assert!(every_owned_path_exists(&live));
        let later = Operation { manager: "b", time: "2026-01-01T00:02:00Z" };
        let again = apply(Some(&live), &second, &INFO, &later, false).unwrap();
        prop_assert_eq!(again, live);
    }

    #[test]
    fn updates_keep_ownership_consistent(first in arb_config(), second in arb_config()) {
        let op = Operation { manager: "a", time: "2026-01-01T00:00:00Z" };
        let live = apply(None, &first, &INFO, &op, false).unwrap();
        let mut replaced = second.clone();
        replaced["metadata"]["managedFields"] = live["metadata"]["managedFields"].clone();
        let editor = Operation { manager: "edit", time: "2026-01-01T00:01:00Z" };
        record_update(Some(&live), &mut replaced, &INFO, &editor);
        prop_assert!(every_owned_path_exists(&replaced));
        for entry in managed::read(&replaced).unwrap_or_default() {
            let round_trip = FieldSet::from_fields_v1(&entry.fields.to_fields_v1());
            prop_assert_eq!(round_trip.as_ref(), Some(&entry.fields));
        }
    }
}
