//! jqPathExpressions through the real helper process: the paths jq selects, each bad
//! expression stopped and named, and the engine hiding exactly what an expression selects.

use std::path::Path;
use std::time::{Duration, Instant};

use gitfleet_engine::diff::{DiffOptions, compare};
use gitfleet_jq::{Evaluator, Limits};
use gitfleet_model::{ResourceIgnoreDifferences, SyncStatusCode};
use serde_json::{Value, json};

fn evaluator(limits: Limits) -> Evaluator {
    Evaluator::with_helper(Path::new(env!("CARGO_BIN_EXE_gitfleet-jq")), limits)
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {"team": "a"}},
        "spec": {"replicas": 2, "template": {"spec": {
            "initContainers": [{"name": "setup", "image": "busybox"},
                               {"name": "istio-init", "image": "istio/proxy:1.0"}],
            "containers": [{"name": "web", "image": "nginx:1.25"}]}}}})
}

#[test]
fn expressions_select_the_paths_jq_gives() {
    let jq = evaluator(Limits::default());
    let obj = deployment();
    let paths = |e: &str| jq.evaluate(e, &obj);
    assert_eq!(
        paths(r#".spec.template.spec.initContainers[] | select(.name == "istio-init")"#).unwrap(),
        vec![vec![
            json!("spec"),
            json!("template"),
            json!("spec"),
            json!("initContainers"),
            json!(1)
        ]]
    );
    assert_eq!(
        paths(r#".metadata.annotations["team"]"#).unwrap(),
        vec![vec![json!("metadata"), json!("annotations"), json!("team")]]
    );
    assert_eq!(
        paths(".spec.template.spec.containers[].image")
            .unwrap()
            .len(),
        1
    );
    // Nothing there: no paths, as jq's `?` and select give.
    assert!(
        paths(".webhooks[]?.clientConfig.caBundle")
            .unwrap()
            .is_empty()
    );
    // No environment is offered: `$ENV` is not defined (and the helper runs with none).
    let err = paths("select($ENV | length == 0) | .spec.replicas").unwrap_err();
    assert!(err.contains("undefined $ENV"), "{err}");
}

#[test]
fn bad_expressions_are_refused_with_a_reason_and_the_next_one_works() {
    let limits = Limits {
        timeout: Duration::from_millis(500),
        memory_bytes: 256 << 20,
        max_paths: 100,
    };
    let jq = evaluator(limits);
    let obj = deployment();
    let err = jq.evaluate(".spec | select(", &obj).unwrap_err();
    assert!(err.contains("does not parse"), "{err}");
    let err = jq.evaluate(".spec | nosuchfilter", &obj).unwrap_err();
    assert!(err.contains("undefined nosuchfilter"), "{err}");
    let err = jq.evaluate(".spec.replicas.x", &obj).unwrap_err();
    assert!(err.starts_with("failed: "), "{err}");
    // Too many paths.
    let err = jq.evaluate("repeat(.)", &obj).unwrap_err();
    assert!(err.contains("more than 100 paths"), "{err}");

    // A loop that selects nothing: stopped at the time limit, then refused at once.
    let started = Instant::now();
    let err = jq.evaluate("def f: f; f", &obj).unwrap_err();
    assert!(err.contains("time limit"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let started = Instant::now();
    assert_eq!(jq.evaluate("def f: f; f", &obj).unwrap_err(), err);
    assert!(started.elapsed() < limits.timeout);

    // A flood: the helper's memory limit ends it, not the caller.
    let err = jq
        .evaluate(
            r#".spec | select((reduce range(40) as $i ("x"; . + .)) | length > 0)"#,
            &obj,
        )
        .unwrap_err();
    assert!(err.contains("ended its helper"), "{err}");
    // Recursion until the stack overflows: the same.
    let err = jq.evaluate("def f: (f | .a); f", &obj).unwrap_err();
    assert!(
        err.contains("ended its helper") || err.contains("time limit"),
        "{err}"
    );

    // A fresh helper answers the next expression.
    assert_eq!(jq.evaluate(".spec.replicas", &obj).unwrap().len(), 1);
    // A Secret's data never reaches an error.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"password": "c2VjcmV0LXZhbHVl"}});
    let err = jq.evaluate(".data.password.x", &secret).unwrap_err();
    assert!(!err.contains("c2VjcmV0LXZhbHVl"), "{err}");
}

#[test]
fn a_jq_rule_hides_exactly_what_it_selects_on_each_side() {
    assert!(gitfleet_engine::diff::install_jq(Box::new(evaluator(
        Limits::default()
    ))));
    let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 2, "template": {"spec": {
            "initContainers": [{"name": "setup", "image": "busybox"}],
            "containers": [{"name": "web", "image": "nginx:1.25"}]}}}});
    // A mutating webhook added an init container live, and someone bumped the image.
    let mut live = desired.clone();
    live["spec"]["template"]["spec"]["initContainers"] = json!([
        {"name": "istio-init", "image": "istio/proxy:1.0"},
        {"name": "setup", "image": "busybox"}]);
    let rule = |expr: &str| {
        DiffOptions::of(&[ResourceIgnoreDifferences {
            group: "apps".into(),
            kind: "Deployment".into(),
            jq_path_expressions: vec![expr.into()],
            ..Default::default()
        }])
    };
    let injected = r#".spec.template.spec.initContainers[] | select(.name == "istio-init")"#;
    // Without a rule the injected container is a difference (the list is a keyed list of
    // a built-in kind, so live-only items are not; a changed item is).
    live["spec"]["template"]["spec"]["initContainers"][1]["image"] = json!("busybox:2");
    let plain = compare(&desired, Some(&live), &DiffOptions::default()).unwrap();
    assert_eq!(plain.sync, SyncStatusCode::OutOfSync);
    // The injected container is hidden, the changed one is not.
    let verdict = compare(&desired, Some(&live), &rule(injected)).unwrap();
    assert_eq!(verdict.sync, SyncStatusCode::OutOfSync);
    assert!(
        verdict.changes.iter().all(|c| c.path.contains("setup")),
        "{:?}",
        verdict.changes
    );
    // Hiding the changed one makes the rest Synced.
    let both = r#".spec.template.spec.initContainers[] | select(.name == "istio-init" or .name == "setup") | .image"#;
    let verdict = compare(&desired, Some(&live), &rule(both)).unwrap();
    assert_eq!(
        verdict.sync,
        SyncStatusCode::Synced,
        "{:?}",
        verdict.changes
    );
    // A changed replica count is still seen under that rule.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let verdict = compare(&desired, Some(&scaled), &rule(both)).unwrap();
    assert_eq!(
        verdict
            .changes
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        [".spec.replicas"]
    );
    // A bad expression is an error naming it, not a verdict.
    let err = compare(&desired, Some(&live), &rule(".spec | nosuch")).unwrap_err();
    assert!(
        err.to_string()
            .contains("jqPathExpression \".spec | nosuch\""),
        "{err}"
    );
}
