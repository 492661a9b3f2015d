use super::*;
use serde_json::json;

fn deployment(paused: bool) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
        "spec": {"replicas": 2, "paused": paused, "template": {"spec": {
            "containers": [{"name": "web", "image": "nginx"}]}}},
        "status": {"replicas": 2}})
}

fn names(actions: &[ActionInfo]) -> Vec<(&str, bool)> {
    actions
        .iter()
        .map(|a| (a.name.as_str(), a.disabled))
        .collect()
}

fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn a_deployment_restarts_with_gitfleets_own_actions() {
    let actions = Actions::builtin();
    let live = deployment(false);
    let found = actions.discover(&live).unwrap();
    assert_eq!(
        names(&found),
        [
            ("pause", false),
            ("restart", false),
            ("resume", true),
            ("scale", false)
        ]
    );
    let scale = found.iter().find(|a| a.name == "scale").unwrap();
    assert_eq!(scale.params, ["replicas"]);

    let impacted = actions.run(&live, "restart", &BTreeMap::new()).unwrap();
    let planned = super::writes(&live, "restart", impacted).unwrap();
    let [ActionWrite::Patch { patch, status, .. }] = planned.as_slice() else {
        panic!("{planned:?}");
    };
    // Only the restart annotation changes: the patch names nothing else.
    let at =
        patch["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .unwrap();
    assert!(at.ends_with('Z') && at.len() == 20, "{at}");
    assert_eq!(
        patch,
        &json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": at}}}}})
    );
    assert_eq!(status, &None);

    // Resume is offered disabled while not paused, and refused.
    let err = actions.run(&live, "resume", &BTreeMap::new()).unwrap_err();
    assert!(matches!(err, ActionError::Disabled { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "action \"resume\" is disabled for apps/Deployment \"web\""
    );
    // Paused, it resumes: `paused` is removed.
    let paused = deployment(true);
    let impacted = actions.run(&paused, "resume", &BTreeMap::new()).unwrap();
    let planned = super::writes(&paused, "resume", impacted).unwrap();
    assert!(
        matches!(&planned[..], [ActionWrite::Patch { patch, .. }] if *patch == json!({"spec": {"paused": null}})),
        "{planned:?}"
    );

    let err = actions.run(&live, "explode", &BTreeMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "action \"explode\" is not defined for apps/Deployment"
    );
    // A kind without actions offers none.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert!(actions.discover(&cm).unwrap().is_empty());
}

#[test]
fn scale_takes_its_parameter_and_refuses_a_bad_one() {
    let actions = Actions::builtin();
    let live = deployment(false);
    let params = BTreeMap::from([("replicas".to_owned(), "5".to_owned())]);
    let planned = super::writes(
        &live,
        "scale",
        actions.run(&live, "scale", &params).unwrap(),
    )
    .unwrap();
    assert!(
        matches!(&planned[..], [ActionWrite::Patch { patch, .. }] if *patch == json!({"spec": {"replicas": 5}})),
        "{planned:?}"
    );
    for bad in ["-1", "two", "1.5"] {
        let params = BTreeMap::from([("replicas".to_owned(), bad.to_owned())]);
        let err = actions
            .run(&live, "scale", &params)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("replicas: expected a whole number") && err.contains(bad),
            "{err}"
        );
    }
}

#[test]
fn a_cronjob_creates_a_job_it_owns() {
    let actions = Actions::builtin();
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "ops", "uid": "c-1"},
        "spec": {"schedule": "@daily", "jobTemplate": {
            "metadata": {"labels": {"team": "ops"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "r", "image": "busybox"}]}}}}}});
    assert_eq!(
        names(&actions.discover(&cron).unwrap()),
        [("create-job", false), ("resume", true), ("suspend", false)]
    );
    let impacted = actions.run(&cron, "create-job", &BTreeMap::new()).unwrap();
    let planned = super::writes(&cron, "create-job", impacted).unwrap();
    let [ActionWrite::Create { object: job }] = planned.as_slice() else {
        panic!("{planned:?}");
    };
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["namespace"], "ops");
    assert!(
        job["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("report-")
    );
    assert_eq!(job["metadata"]["labels"], json!({"team": "ops"}));
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "c-1");
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
}

const CUSTOM: &str = r#"
discovery.lua: |
  return {restart = {disabled = true}, ["bump-image"] = {}}
definitions:
- name: bump-image
  action.lua: |
    obj.spec.template.spec.containers[1].image = "nginx:2"
    obj.status.note = "bumped"
    return obj
"#;

#[test]
fn argocd_cm_customizations_replace_or_join_the_predefined_actions() {
    let live = deployment(false);
    // Without mergeBuiltinActions: only the customization's discovery.
    let data = settings(&[("resource.customizations.actions.apps_Deployment", CUSTOM)]);
    let (actions, errors) = Actions::from_settings(&data, &Library::default());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        names(&actions.discover(&live).unwrap()),
        [("bump-image", false), ("restart", true)]
    );
    // The customization's discovery says restart is disabled: refused.
    assert!(matches!(
        actions.run(&live, "restart", &BTreeMap::new()),
        Err(ActionError::Disabled { .. })
    ));
    let impacted = actions.run(&live, "bump-image", &BTreeMap::new()).unwrap();
    let planned = super::writes(&live, "bump-image", impacted).unwrap();
    let [ActionWrite::Patch { patch, status, .. }] = planned.as_slice() else {
        panic!("{planned:?}");
    };
    // A list is replaced whole by a merge patch; status goes apart.
    assert_eq!(
        patch,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})
    );
    assert_eq!(status, &Some(json!({"note": "bumped"})));

    // With mergeBuiltinActions: the customization's first, then gitfleet's.
    let merged = CUSTOM.replace(
        "discovery.lua:",
        "mergeBuiltinActions: true\ndiscovery.lua:",
    );
    let data = settings(&[("resource.customizations.actions.apps_Deployment", &merged)]);
    let (actions, _) = Actions::from_settings(&data, &Library::default());
    assert_eq!(
        names(&actions.discover(&live).unwrap()),
        [
            ("bump-image", false),
            ("pause", false),
            ("restart", true),
            ("resume", true),
            ("scale", false)
        ]
    );

    // The legacy map's `actions` string reads the same.
    let legacy = format!(
        "apps/Deployment:\n  actions: |\n{}",
        CUSTOM
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let data = settings(&[("resource.customizations", &legacy)]);
    let (actions, errors) = Actions::from_settings(&data, &Library::default());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        names(&actions.discover(&live).unwrap()),
        [("bump-image", false), ("restart", true)]
    );
}

#[test]
fn a_customization_that_does_not_read_fails_its_kind_only() {
    let data = settings(&[
        (
            "resource.customizations.actions.apps_Deployment",
            "definitions: {not: a list}",
        ),
        ("resource.customizations.actions.a_b_c", "{}"),
    ]);
    let (actions, errors) = Actions::from_settings(&data, &Library::default());
    assert_eq!(errors.len(), 2, "{errors:?}");
    let err = actions
        .discover(&deployment(false))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("resource.customizations.actions.apps_Deployment: expected discovery.lua"),
        "{err}"
    );
    // Not a silent fall back to the predefined restart either.
    assert!(
        actions
            .run(&deployment(false), "restart", &BTreeMap::new())
            .is_err()
    );
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"}, "spec": {"template": {}}});
    assert_eq!(
        names(&actions.discover(&sts).unwrap()),
        [("restart", false), ("scale", false)]
    );
}

#[test]
fn the_script_library_replaces_gitfleets_actions_for_its_kinds() {
    let library = Library::from_files(
        "lib/",
        [
            (
                "apps/Deployment/actions/discovery.lua",
                "return {nudge = {}}",
            ),
            (
                "apps/Deployment/actions/nudge/action.lua",
                "obj.metadata.labels = {nudged = 'yes'}\nreturn obj",
            ),
        ],
    );
    let (actions, _) = Actions::from_settings(&BTreeMap::new(), &library);
    let live = deployment(false);
    assert_eq!(names(&actions.discover(&live).unwrap()), [("nudge", false)]);
    assert!(matches!(
        actions.run(&live, "restart", &BTreeMap::new()),
        Err(ActionError::Unknown { .. })
    ));
    let planned = super::writes(
        &live,
        "nudge",
        actions.run(&live, "nudge", &BTreeMap::new()).unwrap(),
    )
    .unwrap();
    assert!(
        matches!(&planned[..], [ActionWrite::Patch { patch, .. }] if *patch == json!({"metadata": {"labels": {"nudged": "yes"}}})),
        "{planned:?}"
    );
}

#[test]
fn a_patch_of_another_object_or_of_nothing() {
    let live = deployment(false);
    let mut other = live.clone();
    other["metadata"]["name"] = json!("not-web");
    let impacted = vec![Impacted {
        operation: ActionOperation::Patch,
        object: other,
    }];
    let err = super::writes(&live, "odd", impacted).unwrap_err();
    assert_eq!(
        err.to_string(),
        "action \"odd\": returned a patch of apps/Deployment shop/not-web, not of the apps/Deployment shop/web it ran on"
    );
    // An action that changes nothing writes nothing.
    let same = vec![Impacted {
        operation: ActionOperation::Patch,
        object: live.clone(),
    }];
    assert!(super::writes(&live, "noop", same).unwrap().is_empty());
}
