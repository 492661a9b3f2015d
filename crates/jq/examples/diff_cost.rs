//! What one resource's comparison costs: plain, with a JSON-pointer ignore rule, and with a
//! jq ignore rule evaluated by the helper (a round trip per side), for BENCHMARKS.md:
//! `cargo build --release -p gitfleet-jq && cargo run --release -p gitfleet-jq --example diff_cost`.

use std::time::Instant;

use gitfleet_engine::diff::{DiffOptions, compare};
use gitfleet_model::ResourceIgnoreDifferences;
use serde_json::json;

fn main() {
    assert!(gitfleet_engine::diff::install_jq(Box::new(
        gitfleet_jq::Evaluator::new(gitfleet_jq::Limits::default())
    )));
    let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "initContainers": [{"name": "setup", "image": "busybox"}],
                "containers": [{"name": "web", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}}});
    let mut live = desired.clone();
    live["spec"]["template"]["spec"]["initContainers"] = json!([
        {"name": "istio-init", "image": "istio/proxy:1.0"},
        {"name": "setup", "image": "busybox"}]);
    live["spec"]["replicas"] = json!(5);
    let rule = |pointers: Vec<String>, jq: Vec<String>| {
        DiffOptions::of(&[ResourceIgnoreDifferences {
            group: "apps".into(),
            kind: "Deployment".into(),
            json_pointers: pointers,
            jq_path_expressions: jq,
            ..Default::default()
        }])
    };
    let cases = [
        ("plain", DiffOptions::default()),
        (
            "JSON pointer /spec/replicas",
            rule(vec!["/spec/replicas".into()], vec![]),
        ),
        (
            "jq .spec.template.spec.initContainers[] | select(.name == \"istio-init\")",
            rule(
                vec![],
                vec![
                    r#".spec.template.spec.initContainers[] | select(.name == "istio-init")"#
                        .into(),
                ],
            ),
        ),
    ];
    for (label, opts) in cases {
        let n = 5_000u32;
        compare(&desired, Some(&live), &opts).expect("compares");
        let start = Instant::now();
        for _ in 0..n {
            compare(&desired, Some(&live), &opts).expect("compares");
        }
        let took = start.elapsed();
        println!("{label}: {n} comparisons in {took:?} ({:?} each)", took / n);
    }
}
