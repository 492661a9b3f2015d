use super::*;
use crate::diff::{DiffOptions, FIELD_MANAGER, compare};
use gitfleet_model::SyncStatusCode;
use serde_json::json;

fn app(annotation: Option<&str>) -> Application {
    let mut yaml = String::from(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n",
    );
    if let Some(a) = annotation {
        yaml.push_str(&format!(
            "  annotations:\n    argocd.argoproj.io/compare-options: {a}\n"
        ));
    }
    yaml.push_str("spec:\n  destination: {server: 'https://kubernetes.default.svc', namespace: web}\n  source: {repoURL: 'https://git.example/r.git', path: web}\n");
    match gitfleet_model::from_yaml_str(&yaml).unwrap() {
        gitfleet_model::Manifest::Application(a) => *a,
        other => panic!("{other:?}"),
    }
}

fn deployment(pull_policy: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "web"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.25", "imagePullPolicy": pull_policy}]}}}})
}

/// What the manifest's fields look like in `managedFields`, owned by `manager`.
fn owned_by(manager: &str) -> Value {
    json!({"manager": manager, "operation": "Apply", "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                ".": {}, "f:name": {}, "f:image": {}, "f:imagePullPolicy": {}}}}}}}})
}

/// The API server's answer: defaults, a webhook's `imagePullPolicy: Always` over the
/// manifest's, and optionally a label the webhook adds.
fn answered(label: bool) -> Value {
    let mut obj = deployment("Always");
    obj["metadata"]["uid"] = json!("u-1");
    obj["metadata"]["resourceVersion"] = json!("7");
    obj["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] =
        json!("/dev/termination-log");
    obj["spec"]["revisionHistoryLimit"] = json!(10);
    obj["metadata"]["managedFields"] = json!([owned_by(FIELD_MANAGER)]);
    if label {
        obj["metadata"]["labels"] = json!({"injected-by": "policy"});
    }
    obj
}

fn status(desired: &Value, live: &Value) -> SyncStatusCode {
    compare(desired, Some(live), &DiffOptions::default())
        .unwrap()
        .sync
}

#[test]
fn a_field_a_webhook_changes_is_synced_server_side_and_out_of_sync_client_side() {
    let desired = deployment("IfNotPresent");
    let live = answered(false);
    assert_eq!(status(&desired, &live), SyncStatusCode::OutOfSync);
    for option in [
        "ServerSideDiff=true",
        "ServerSideDiff=true,IncludeMutationWebhook=true",
    ] {
        let app = app(Some(option));
        assert!(wanted(&app, &desired));
        let compared = compared_object(&app, &desired, &answered(false), &live, FIELD_MANAGER);
        assert_eq!(status(&compared, &live), SyncStatusCode::Synced, "{option}");
    }
}

#[test]
fn what_a_webhook_adds_counts_only_when_mutation_webhooks_are_included() {
    // The webhook came after the last sync: live lacks its label, the dry run has it.
    let desired = deployment("IfNotPresent");
    let live = answered(false);
    let predicted = answered(true);
    let plain = app(Some("ServerSideDiff=true"));
    let compared = compared_object(&plain, &desired, &predicted, &live, FIELD_MANAGER);
    assert_eq!(status(&compared, &live), SyncStatusCode::Synced);
    let include = app(Some("ServerSideDiff=true,IncludeMutationWebhook=true"));
    let compared = compared_object(&include, &desired, &predicted, &live, FIELD_MANAGER);
    let verdict = compare(&compared, Some(&live), &DiffOptions::default()).unwrap();
    assert_eq!(verdict.sync, SyncStatusCode::OutOfSync);
}

#[test]
fn a_field_the_manifest_dropped_is_a_difference_server_side_too() {
    // Live has replicas from the last sync; the new manifest does not set them, so the dry
    // run's manager owns them no more and the answer has them at another manager's value.
    let live = answered(false);
    let mut predicted = answered(false);
    predicted["metadata"]["managedFields"] = json!([{"manager": FIELD_MANAGER,
        "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
            "f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {},
                "f:image": {}, "f:imagePullPolicy": {}}}}}}}}]);
    predicted["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    for option in [
        "ServerSideDiff=true",
        "ServerSideDiff=true,IncludeMutationWebhook=true",
    ] {
        let app = app(Some(option));
        let compared = compared_object(
            &app,
            &deployment("Always"),
            &predicted,
            &live,
            FIELD_MANAGER,
        );
        assert_eq!(
            status(&compared, &live),
            SyncStatusCode::OutOfSync,
            "{option}"
        );
    }
}

#[test]
fn a_changed_image_is_a_difference_server_side() {
    let live = answered(false);
    let mut predicted = answered(false);
    predicted["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    let app = app(Some("ServerSideDiff=true"));
    let compared = compared_object(
        &app,
        &deployment("IfNotPresent"),
        &predicted,
        &live,
        FIELD_MANAGER,
    );
    assert_eq!(status(&compared, &live), SyncStatusCode::OutOfSync);
}

#[test]
fn the_resources_option_comes_before_the_apps() {
    let mut desired = deployment("Always");
    assert!(!wanted(&app(None), &desired));
    assert!(wanted(&app(Some("ServerSideDiff=true")), &desired));
    desired["metadata"]["annotations"] =
        json!({"argocd.argoproj.io/compare-options": "ServerSideDiff=false"});
    assert!(!wanted(&app(Some("ServerSideDiff=true")), &desired));
    desired["metadata"]["annotations"] =
        json!({"argocd.argoproj.io/compare-options": "IgnoreExtraneous, ServerSideDiff=true"});
    assert!(wanted(&app(None), &desired));
}
