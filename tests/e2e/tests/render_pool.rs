//! Two renderers as separate processes share one repository's renders (a queue group, no
//! serialization per repository), and SIGKILLing one in the middle of the first
//! comparisons loses no app: the questions it held fall silent, the diff worker hears that
//! within the liveness window and asks again, and the survivor answers.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use gitfleet_e2e::{Sandbox, Timings, application};
use gitfleet_messages::RenderRequest;
use gitfleet_stack::Services;

const NODE: &str = env!("CARGO_BIN_EXE_e2e-node");
const APPS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renderer_killed_mid_run_loses_no_render() {
    let mut files: Vec<(String, String)> = vec![
        (
            "base/kustomization.yaml".into(),
            "resources: [cm.yaml]\n".into(),
        ),
        (
            "base/cm.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  value: \"1\"\n"
                .into(),
        ),
    ];
    for i in 0..APPS {
        files.push((
            format!("overlays/o-{i}/kustomization.yaml"),
            format!("resources: [../../base]\nnamePrefix: o-{i}-\n"),
        ));
    }
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let sb = Sandbox::start_with(
        &borrowed,
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
        Services {
            renderer: false,
            diff_worker: false,
            ..Services::ALL
        },
    )
    .await;
    let mut doomed = sb.spawn_node(NODE, "renderer-a", "renderer");
    let _survivor = sb.spawn_node(NODE, "renderer-b", "renderer");
    // The apps first, the diff worker after: it then reconciles them all at once, so both
    // renderers have full queues and the one killed is sure to hold questions.
    for i in 0..APPS {
        let name = format!("o-{i}");
        let yaml = application(&name, &sb.repo_url(), &format!("overlays/o-{i}"), None);
        sb.create_app(&name, &yaml).await;
    }
    // Every render question, as the renderers' queue group receives them.
    let mut renders = sb
        .bus
        .client
        .subscribe(sb.bus.topology.render_subject())
        .await
        .unwrap();
    sb.bus.client.flush().await.unwrap();
    let _diff_worker = sb.spawn_node(NODE, "diff-worker", "diff-worker");

    // Kill one renderer once the run is under way.
    let mut asked: HashMap<String, usize> = HashMap::new();
    while asked.len() < APPS / 4 {
        let message = tokio::time::timeout(Duration::from_secs(60), renders.next())
            .await
            .expect("renders under way")
            .expect("subscription open");
        let request: RenderRequest = serde_json::from_slice(&message.payload).unwrap();
        *asked.entry(request.app_name).or_default() += 1;
    }
    doomed.kill();

    for i in 0..APPS {
        let s = sb
            .until_status(&format!("o-{i}"), 120, "its first comparison", |s| {
                Sandbox::sync_status(s) == "OutOfSync"
            })
            .await;
        assert!(
            s["conditions"]
                .as_array()
                .is_none_or(|c| c.iter().all(|c| c["type"] != "ComparisonError")),
            "o-{i}: {s:#?}"
        );
    }
    // The questions the killed renderer held were asked again.
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(300), renders.next()).await
    {
        let request: RenderRequest = serde_json::from_slice(&message.payload).unwrap();
        *asked.entry(request.app_name).or_default() += 1;
    }
    assert_eq!(asked.len(), APPS, "every app was rendered");
    let asked_again = asked.values().filter(|&&n| n > 1).count();
    println!(
        "{APPS} apps, one renderer killed mid-run: {asked_again} renders asked again, none lost"
    );
    assert!(
        asked_again > 0,
        "the killed renderer held no question, so the test proved nothing"
    );
}
