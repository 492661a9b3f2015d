//! 100 clusters with 1,000 objects each in one process start, serve lists and feed a
//! watch per cluster (the figures themselves come from `cluster-sim bench`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cluster_sim::api::{Params, Target};
use cluster_sim::{ClusterConfig, Sim, SimConfig};
use futures::StreamExt;
use serde_json::json;

const CLUSTERS: usize = 100;
const OBJECTS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clusters_of_a_thousand_objects() {
    let sim = Sim::start(SimConfig {
        clusters: CLUSTERS,
        cluster: ClusterConfig {
            controllers: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let ns_rt = sim
        .cluster(0)
        .state
        .lock()
        .registry
        .find("", "v1", "namespaces")
        .cloned()
        .unwrap();
    let cm_rt = sim
        .cluster(0)
        .state
        .lock()
        .registry
        .find("", "v1", "configmaps")
        .cloned()
        .unwrap();
    // What every new cluster holds already (system namespaces, the kubernetes Service).
    let system: usize = sim.clusters().iter().map(|c| c.object_count()).sum();
    let p = Params::default();
    // Filled through the same verbs the HTTP layer calls, to keep the debug-build test quick.
    for c in sim.clusters() {
        let t = Target {
            rt: ns_rt.clone(),
            namespace: None,
            name: None,
            subresource: None,
        };
        c.create(
            &t,
            &p,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "load"}}),
            "test",
        )
        .unwrap();
        let t = Target {
            rt: cm_rt.clone(),
            namespace: Some("load".into()),
            name: None,
            subresource: None,
        };
        for i in 0..OBJECTS - 1 {
            c.create(&t, &p, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}}), "test").unwrap();
        }
    }
    assert_eq!(
        sim.clusters()
            .iter()
            .map(|c| c.object_count())
            .sum::<usize>(),
        system + CLUSTERS * OBJECTS
    );

    let http = reqwest::Client::new();
    let seen = Arc::new(AtomicUsize::new(0));
    for i in 0..CLUSTERS {
        let url = format!(
            "{}/api/v1/namespaces/load/configmaps?watch=true&resourceVersion={}",
            sim.url(i),
            sim.cluster(i).state.lock().rv
        );
        let r = http
            .get(url)
            .bearer_auth(&sim.cluster(i).token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut body = r.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                seen.fetch_add(
                    chunk.iter().filter(|b| **b == b'\n').count(),
                    Ordering::SeqCst,
                );
            }
        });
    }
    for i in 0..CLUSTERS {
        let r = http
            .post(format!("{}/api/v1/namespaces/load/configmaps", sim.url(i)))
            .bearer_auth(&sim.cluster(i).token)
            .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "last"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.load(Ordering::SeqCst) < CLUSTERS && tokio::time::Instant::now() < deadline {
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        CLUSTERS,
        "every cluster's watch saw exactly its one new object"
    );
    for i in [0, CLUSTERS / 2, CLUSTERS - 1] {
        let list: serde_json::Value = http
            .get(format!("{}/api/v1/namespaces/load/configmaps", sim.url(i)))
            .bearer_auth(&sim.cluster(i).token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), OBJECTS);
    }
}
