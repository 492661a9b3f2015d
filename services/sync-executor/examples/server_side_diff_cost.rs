//! What a server-side diff costs per resource, for BENCHMARKS.md: the dry run (a forced
//! server-side apply with `dryRun=All`, through the executor's client stack over HTTPS to
//! the emulator), and the comparison of its answer with live in the engine (what a cached
//! answer costs), against the plain comparison.
//! `cargo run --release -p sync-executor --example server_side_diff_cost`

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use gitfleet_engine::diff::{DiffOptions, FIELD_MANAGER, compare, server_side};
use gitfleet_model::{Application, Cluster, Redacted};
use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let sim = cluster_sim::Sim::start(cluster_sim::SimConfig {
        tls: true,
        ..Default::default()
    })
    .await
    .expect("emulator");
    let mut spec = Cluster {
        server: sim.url(0),
        name: "bench".into(),
        ..Cluster::default()
    };
    spec.config.bearer_token = Some(Redacted::new(sim.cluster(0).token.clone()));
    spec.config.tls_client_config.ca_data =
        base64::engine::general_purpose::STANDARD.encode(sim.ca_pem().expect("tls"));
    let limiter = Arc::new(sync_executor::limiter::RateLimiter::new(10_000.0, 10_000));
    let client = sync_executor::client::build("bench", &spec, "bench", limiter).expect("client");
    let api: Api<DynamicObject> = Api::namespaced_with(
        client,
        "default",
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        )),
    );
    let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "web", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}}});
    let apply = |dry_run: bool| {
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        params.field_validation = Some(ValidationDirective::Ignore);
        params
    };
    let live: Value = serde_json::to_value(
        api.patch("web", &apply(false), &Patch::Apply(&desired))
            .await
            .expect("apply"),
    )
    .unwrap();

    let n = 2_000u32;
    let start = Instant::now();
    let mut predicted = Value::Null;
    for _ in 0..n {
        predicted = serde_json::to_value(
            api.patch("web", &apply(true), &Patch::Apply(&desired))
                .await
                .expect("dry run"),
        )
        .unwrap();
    }
    println!(
        "dry run (forced server-side apply, dryRun=All), one at a time: {:.0} µs",
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    let start = Instant::now();
    let calls = (0..n).map(|_| {
        let api = api.clone();
        let desired = desired.clone();
        async move {
            api.patch("web", &apply(true), &Patch::Apply(&desired))
                .await
                .expect("dry run")
        }
    });
    futures::future::join_all(calls).await;
    println!(
        "dry runs, all at once on one HTTP/2 connection: {:.0} µs each",
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );

    let app: Application = match gitfleet_model::from_yaml_str(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  annotations:\n    argocd.argoproj.io/compare-options: ServerSideDiff=true\nspec:\n  destination: {server: 'https://kubernetes.default.svc', namespace: default}\n  source: {repoURL: 'https://git.example/r.git', path: web}\n",
    )
    .unwrap()
    {
        gitfleet_model::Manifest::Application(a) => *a,
        other => panic!("{other:?}"),
    };
    let opts = DiffOptions::default();
    let n = 20_000u32;
    let start = Instant::now();
    for _ in 0..n {
        let verdict = compare(&desired, Some(&live), &opts).unwrap();
        assert_eq!(verdict.sync, gitfleet_model::SyncStatusCode::Synced);
    }
    println!(
        "plain comparison: {:.1} µs",
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    let start = Instant::now();
    for _ in 0..n {
        let compared =
            server_side::compared_object(&app, &desired, &predicted, &live, FIELD_MANAGER);
        let verdict = compare(&compared, Some(&live), &opts).unwrap();
        assert_eq!(verdict.sync, gitfleet_model::SyncStatusCode::Synced);
    }
    println!(
        "server-side comparison of a kept answer (answer merged over live, then compared): {:.1} µs",
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    println!(
        "bytes a live request carries per server-side resource (the desired object): {}",
        serde_json::to_vec(&desired).unwrap().len()
    );
}
