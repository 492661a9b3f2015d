//! End-to-end server-side apply scenarios through the public API, checked against what a
//! real API server stores in managedFields.

use field_manager::{ApplyError, ObjectInfo, Operation, apply, record_update};
use serde_json::{Value, json};

const T0: &str = "2026-11-29T20:00:00Z";
const T1: &str = "2026-11-29T20:05:00Z";
const T2: &str = "2026-11-29T20:10:00Z";

fn deploy_info() -> ObjectInfo<'static> {
    ObjectInfo {
        kind: "Deployment",
        api_version: "apps/v1",
        builtin: true,
        has_status_subresource: true,
        subresource: None,
    }
}

fn op<'a>(manager: &'a str, time: &'a str) -> Operation<'a> {
    Operation { manager, time }
}

fn deployment(replicas: u64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]}
            }
        }
    })
}

fn entries(object: &Value) -> &Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
}

fn entry<'v>(object: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn fields<'v>(object: &'v Value, manager: &str, operation: &str) -> &'v Value {
    &entry(object, manager, operation)
        .unwrap_or_else(|| panic!("no {operation} entry for {manager}"))["fieldsV1"]
}

fn conflicts(err: ApplyError) -> (Vec<(String, String)>, String) {
    match err {
        ApplyError::Conflicts { conflicts, message } => (
            conflicts
                .into_iter()
                .map(|c| (c.manager, c.field))
                .collect(),
            message,
        ),
        other => panic!("expected conflicts, got {other:?}"),
    }
}

#[test]
fn create_by_apply_records_one_apply_entry() {
    let object = apply(
        None,
        &deployment(2, "nginx:1.27"),
        &deploy_info(),
        &op("kubectl", T0),
        false,
    )
    .unwrap();
    assert_eq!(
        entries(&object),
        &vec![json!({
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {"f:matchLabels": {"f:app": {}}},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {}, "f:image": {}, "f:name": {}
                        }}}
                    }
                }
            }
        })]
    );
    let mut without = object.clone();
    without["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    assert_eq!(without, deployment(2, "nginx:1.27"));
}

#[test]
fn apply_keeps_server_metadata_and_takes_identity_from_the_configuration() {
    let mut live = apply(
        None,
        &deployment(2, "a"),
        &deploy_info(),
        &op("kubectl", T0),
        false,
    )
    .unwrap();
    live["metadata"]["uid"] = json!("1234");
    live["metadata"]["resourceVersion"] = json!("7");
    live["metadata"]["generation"] = json!(1);
    live["status"] = json!({"replicas": 2});
    let object = apply(
        Some(&live),
        &deployment(3, "a"),
        &deploy_info(),
        &op("kubectl", T1),
        false,
    )
    .unwrap();
    assert_eq!(object["metadata"]["uid"], "1234");
    assert_eq!(object["metadata"]["resourceVersion"], "7");
    assert_eq!(object["metadata"]["generation"], 1);
    assert_eq!(object["status"], json!({"replicas": 2}));
    assert_eq!(object["spec"]["replicas"], 3);
    assert_eq!(object["metadata"]["name"], "web");
    assert_eq!(entry(&object, "kubectl", "Apply").unwrap()["time"], T1);
}

#[test]
fn reapply_without_a_field_removes_it() {
    let live = apply(
        None,
        &deployment(2, "a"),
        &deploy_info(),
        &op("kubectl", T0),
        false,
    )
    .unwrap();
    let mut config = deployment(2, "a");
    config["spec"].as_object_mut().unwrap().remove("replicas");
    config["metadata"].as_object_mut().unwrap().remove("labels");
    let object = apply(
        Some(&live),
        &config,
        &deploy_info(),
        &op("kubectl", T1),
        false,
    )
    .unwrap();
    assert!(object["spec"].get("replicas").is_none());
    assert!(
        object["metadata"].get("labels").is_none(),
        "a map emptied by pruning goes too"
    );
    let owned = fields(&object, "kubectl", "Apply");
    assert!(owned["f:spec"].get("f:replicas").is_none());
    assert!(owned.get("f:metadata").is_none());
}

#[test]
fn removing_a_keyed_item_from_the_config_removes_it_from_the_object() {
    let mut config = deployment(1, "a");
    config["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox", "ports": [{"containerPort": 9090}]}));
    let live = apply(None, &config, &deploy_info(), &op("kubectl", T0), false).unwrap();
    let sidecar = r#"k:{"name":"sidecar"}"#;
    assert_eq!(
        fields(&live, "kubectl", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"]
            [sidecar]["f:ports"],
        json!({r#"k:{"containerPort":9090,"protocol":"TCP"}"#: {".": {}, "f:containerPort": {}}})
    );

    let object = apply(
        Some(&live),
        &deployment(1, "a"),
        &deploy_info(),
        &op("kubectl", T1),
        false,
    )
    .unwrap();
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"],
        json!([{"name": "nginx", "image": "a"}])
    );
    assert!(
        fields(&object, "kubectl", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"]
            .get(sidecar)
            .is_none()
    );
}

#[test]
fn a_dropped_item_stays_while_another_manager_owns_part_of_it() {
    let mut config = deployment(1, "a");
    config["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox", "args": ["sleep"]}));
    let live = apply(None, &config, &deploy_info(), &op("kubectl", T0), false).unwrap();
    // `kubectl set image` on the sidecar.
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][1]["image"] = json!("busybox:2");
    record_update(
        Some(&live),
        &mut edited,
        &deploy_info(),
        &op("kubectl-set", T1),
    );

    let object = apply(
        Some(&edited),
        &deployment(1, "a"),
        &deploy_info(),
        &op("kubectl", T2),
        false,
    )
    .unwrap();
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"],
        json!([{"name": "nginx", "image": "a"}, {"name": "sidecar", "image": "busybox:2"}])
    );
}

#[test]
fn equal_values_are_co_owned_and_survive_one_owner_leaving() {
    let live = apply(
        None,
        &deployment(2, "a"),
        &deploy_info(),
        &op("alice", T0),
        false,
    )
    .unwrap();
    let bob_config = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2}
    });
    let object = apply(
        Some(&live),
        &bob_config,
        &deploy_info(),
        &op("bob", T1),
        false,
    )
    .unwrap();
    assert_eq!(
        fields(&object, "bob", "Apply"),
        &json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        fields(&object, "alice", "Apply")["f:spec"]["f:replicas"],
        json!({})
    );

    // Alice stops managing replicas; Bob still does, so the value stays.
    let mut alice_config = deployment(2, "a");
    alice_config["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let object = apply(
        Some(&object),
        &alice_config,
        &deploy_info(),
        &op("alice", T2),
        false,
    )
    .unwrap();
    assert_eq!(object["spec"]["replicas"], 2);
    assert!(
        fields(&object, "alice", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
}

#[test]
fn a_differing_value_conflicts_with_the_kubernetes_message() {
    // Created by client-side apply (an update).
    let mut live = deployment(2, "nginx:1.27");
    record_update(
        None,
        &mut live,
        &deploy_info(),
        &op("kubectl-client-side-apply", T0),
    );
    let config = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3}
    });
    let err = apply(
        Some(&live),
        &config,
        &deploy_info(),
        &op("kubectl", T1),
        false,
    )
    .unwrap_err();
    let (list, message) = conflicts(err.clone());
    assert_eq!(
        list,
        vec![(
            "kubectl-client-side-apply".to_owned(),
            ".spec.replicas".to_owned()
        )]
    );
    assert_eq!(
        message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    assert_eq!(err.to_string(), message);
    let ApplyError::Conflicts { conflicts, .. } = err else {
        unreachable!()
    };
    assert_eq!(
        conflicts[0].cause_message(),
        r#"conflict with "kubectl-client-side-apply" using apps/v1"#
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let live = apply(
        None,
        &deployment(2, "nginx:1.27"),
        &deploy_info(),
        &op("m1", T0),
        false,
    )
    .unwrap();
    let mut scaled = live.clone();
    scaled["metadata"]["labels"]["app"] = json!("web2");
    record_update(Some(&live), &mut scaled, &deploy_info(), &op("m0", T1));

    let mut config = deployment(3, "nginx:1.28");
    config["metadata"]["labels"]["app"] = json!("web3");
    let err = apply(Some(&scaled), &config, &deploy_info(), &op("m2", T2), false).unwrap_err();
    let (list, message) = conflicts(err);
    assert_eq!(list.len(), 3);
    assert_eq!(
        message,
        "Apply failed with 3 conflicts: conflicts with \"m0\" using apps/v1:\n\
         - .metadata.labels.app\n\
         conflicts with \"m1\":\n\
         - .spec.replicas\n\
         - .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn force_moves_ownership_and_the_loser_loses_the_field() {
    let live = apply(
        None,
        &deployment(2, "a"),
        &deploy_info(),
        &op("alice", T0),
        false,
    )
    .unwrap();
    let config = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 5}
    });
    assert!(apply(Some(&live), &config, &deploy_info(), &op("hpa", T1), false).is_err());
    let object = apply(Some(&live), &config, &deploy_info(), &op("hpa", T1), true).unwrap();
    assert_eq!(object["spec"]["replicas"], 5);
    assert_eq!(
        fields(&object, "hpa", "Apply"),
        &json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(
        fields(&object, "alice", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    assert_eq!(
        entry(&object, "alice", "Apply").unwrap()["time"],
        T0,
        "the loser's time is untouched"
    );

    // Alice re-applies her old value: now she is the one in conflict.
    let (list, _) = conflicts(
        apply(
            Some(&object),
            &deployment(2, "a"),
            &deploy_info(),
            &op("alice", T2),
            false,
        )
        .unwrap_err(),
    );
    assert_eq!(list, vec![("hpa".to_owned(), ".spec.replicas".to_owned())]);
}

#[test]
fn a_manager_whose_fields_are_all_taken_disappears() {
    let config = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 5}
    });
    let live = apply(None, &config, &deploy_info(), &op("hpa", T0), false).unwrap();
    let mut updated = live.clone();
    updated["spec"]["replicas"] = json!(6);
    record_update(
        Some(&live),
        &mut updated,
        &deploy_info(),
        &op("kubectl-scale", T1),
    );
    assert!(entry(&updated, "hpa", "Apply").is_none());
    assert_eq!(entries(&updated).len(), 1);
}

#[test]
fn an_update_after_apply_takes_ownership_without_conflict() {
    let live = apply(
        None,
        &deployment(2, "a"),
        &deploy_info(),
        &op("kubectl", T0),
        false,
    )
    .unwrap();
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
    edited["metadata"]["annotations"] = json!({"note": "hi"});
    record_update(
        Some(&live),
        &mut edited,
        &deploy_info(),
        &op("kubectl-edit", T1),
    );

    assert_eq!(
        fields(&edited, "kubectl-edit", "Update"),
        &json!({
            "f:metadata": {"f:annotations": {".": {}, "f:note": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}
        })
    );
    assert_eq!(
        entry(&edited, "kubectl-edit", "Update").unwrap()["time"],
        T1
    );
    let applier = fields(&edited, "kubectl", "Apply");
    assert_eq!(
        applier["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"],
        json!({".": {}, "f:name": {}})
    );
    // Apply entries come first, as the API server sorts them.
    assert_eq!(entries(&edited)[0]["operation"], "Apply");

    // Re-applying the old image now conflicts with the editor.
    let (list, message) = conflicts(
        apply(
            Some(&edited),
            &deployment(2, "a"),
            &deploy_info(),
            &op("kubectl", T2),
            false,
        )
        .unwrap_err(),
    );
    assert_eq!(
        list,
        vec![(
            "kubectl-edit".to_owned(),
            r#".spec.template.spec.containers[name="nginx"].image"#.to_owned()
        )]
    );
    assert!(message.contains(r#"conflict with "kubectl-edit" using apps/v1: "#));
}

#[test]
fn updates_drop_ownership_of_removed_fields_and_ignore_no_ops() {
    let live = apply(
        None,
        &deployment(2, "a"),
        &deploy_info(),
        &op("kubectl", T0),
        false,
    )
    .unwrap();
    let mut same = live.clone();
    record_update(Some(&live), &mut same, &deploy_info(), &op("noop", T1));
    assert_eq!(same, live, "an update that changes nothing records nothing");

    let mut removed = live.clone();
    removed["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    record_update(
        Some(&live),
        &mut removed,
        &deploy_info(),
        &op("cleaner", T1),
    );
    assert!(
        fields(&removed, "kubectl", "Apply")
            .get("f:metadata")
            .is_none()
    );
    assert!(
        entry(&removed, "cleaner", "Update").is_none(),
        "removing fields owns nothing"
    );
}

#[test]
fn create_by_update_owns_every_field() {
    let mut object = deployment(1, "a");
    record_update(None, &mut object, &deploy_info(), &op("kubectl-create", T0));
    let e = entry(&object, "kubectl-create", "Update").unwrap();
    assert_eq!(e["time"], T0);
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(
        e["fieldsV1"]["f:metadata"],
        json!({"f:labels": {".": {}, "f:app": {}}})
    );
    assert_eq!(
        e["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
        // A list that did not exist before is itself owned, like `f:ports: {".": {}}` in
        // real entries.
        json!({".": {}, "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );
}

#[test]
fn status_subresource_apply_tracks_and_changes_only_status() {
    let mut live = apply(
        None,
        &deployment(2, "a"),
        &deploy_info(),
        &op("kubectl", T0),
        false,
    )
    .unwrap();
    live["status"] = json!({"replicas": 0});
    let status_info = ObjectInfo {
        subresource: Some("status"),
        ..deploy_info()
    };
    let mut config = deployment(9, "z");
    config["status"] =
        json!({"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
    let object = apply(
        Some(&live),
        &config,
        &status_info,
        &op("controller", T1),
        false,
    )
    .unwrap();

    assert_eq!(
        object["spec"], live["spec"],
        "spec is not the status subresource's to change"
    );
    assert_eq!(object["status"]["replicas"], 2);
    let e = entry(&object, "controller", "Apply").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {
            "f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
            "f:replicas": {}
        }})
    );
    assert!(
        entry(&object, "kubectl", "Apply")
            .unwrap()
            .get("subresource")
            .is_none()
    );

    // The main resource's applier neither sees nor owns status.
    let object = apply(
        Some(&object),
        &config,
        &deploy_info(),
        &op("kubectl", T2),
        true,
    )
    .unwrap();
    assert_eq!(object["status"]["replicas"], 2);
    assert!(
        fields(&object, "kubectl", "Apply")
            .get("f:status")
            .is_none()
    );
    assert!(apply(None, &config, &status_info, &op("controller", T1), false).is_err());
}

#[test]
fn custom_resources_own_lists_atomically() {
    let info = ObjectInfo {
        kind: "Widget",
        api_version: "example.com/v1",
        builtin: false,
        has_status_subresource: false,
        subresource: None,
    };
    let cr = |containers: Value| {
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"containers": containers}
        })
    };
    let live = apply(
        None,
        &cr(json!([{"name": "a", "image": "1"}])),
        &info,
        &op("alice", T0),
        false,
    )
    .unwrap();
    assert_eq!(
        fields(&live, "alice", "Apply"),
        &json!({"f:spec": {"f:containers": {}}})
    );

    // Adding an item is a change of the whole list, so it conflicts...
    let two = cr(json!([{"name": "b", "image": "2"}]));
    let (list, _) = conflicts(apply(Some(&live), &two, &info, &op("bob", T1), false).unwrap_err());
    assert_eq!(
        list,
        vec![("alice".to_owned(), ".spec.containers".to_owned())]
    );
    // ...and forcing replaces it instead of merging by name.
    let object = apply(Some(&live), &two, &info, &op("bob", T1), true).unwrap();
    assert_eq!(
        object["spec"]["containers"],
        json!([{"name": "b", "image": "2"}])
    );
    assert!(entry(&object, "alice", "Apply").is_none());
}

#[test]
fn invalid_configurations_are_rejected() {
    let invalid = |config: Value| match apply(None, &config, &deploy_info(), &op("m", T0), false) {
        Err(ApplyError::Invalid { message }) => message,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert_eq!(
        invalid(json!([1])),
        "the applied configuration must be an object"
    );
    let mut missing = deployment(1, "a");
    missing["spec"]["template"]["spec"]["containers"] = json!([{"name": "a"}, {"image": "b"}]);
    assert_eq!(
        invalid(missing),
        r#".spec.template.spec.containers[1]: missing key field "name""#
    );
    let mut duplicate = deployment(1, "a");
    duplicate["spec"]["template"]["spec"]["containers"] = json!([{"name": "a"}, {"name": "a"}]);
    assert_eq!(
        invalid(duplicate),
        r#".spec.template.spec.containers: duplicate entries for key [name="a"]"#
    );
    let mut with_managed = deployment(1, "a");
    with_managed["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    assert_eq!(invalid(with_managed), "metadata.managedFields must be nil");
}

#[test]
fn an_untracked_object_is_owned_by_before_first_apply() {
    let live = deployment(2, "a");
    let (list, _) = conflicts(
        apply(
            Some(&live),
            &deployment(3, "a"),
            &deploy_info(),
            &op("kubectl", T1),
            false,
        )
        .unwrap_err(),
    );
    assert_eq!(
        list,
        vec![("before-first-apply".to_owned(), ".spec.replicas".to_owned())]
    );
    let object = apply(
        Some(&live),
        &deployment(2, "a"),
        &deploy_info(),
        &op("kubectl", T1),
        false,
    )
    .unwrap();
    assert!(entry(&object, "before-first-apply", "Update").is_some());
    assert!(entry(&object, "kubectl", "Apply").is_some());
}

#[test]
fn set_lists_merge_as_a_union_owned_per_item() {
    let mut config = deployment(1, "a");
    config["metadata"]["finalizers"] = json!(["example.com/a"]);
    let live = apply(None, &config, &deploy_info(), &op("alice", T0), false).unwrap();
    let bob = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "finalizers": ["example.com/b"]}
    });
    let object = apply(Some(&live), &bob, &deploy_info(), &op("bob", T1), false).unwrap();
    assert_eq!(
        object["metadata"]["finalizers"],
        json!(["example.com/a", "example.com/b"])
    );
    assert_eq!(
        fields(&object, "bob", "Apply"),
        &json!({"f:metadata": {"f:finalizers": {"v:\"example.com/b\"": {}}}})
    );
    // Bob lets go of his finalizer: only his item goes.
    let bob_gone = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 1}});
    let object = apply(
        Some(&object),
        &bob_gone,
        &deploy_info(),
        &op("bob", T2),
        false,
    )
    .unwrap();
    assert_eq!(object["metadata"]["finalizers"], json!(["example.com/a"]));
}

#[test]
fn managed_fields_sent_with_an_update_replace_the_stored_ones() {
    let live = apply(
        None,
        &deployment(2, "a"),
        &deploy_info(),
        &op("kubectl", T0),
        false,
    )
    .unwrap();
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    record_update(Some(&live), &mut reset, &deploy_info(), &op("x", T1));
    assert!(reset["metadata"].get("managedFields").is_none());
}
