//! Operations survive their executor: two sync executors as separate processes, the one
//! running a sync is SIGKILLed after the PreSync hook completed and before wave 0, and
//! the other resumes the operation from its record: the hook is created exactly once,
//! and every resource is written by one executor only (from the emulator's write log,
//! which records each request's user agent, naming the executor).

use std::time::Duration;

use gitfleet_bus::{Bucket, subject_token};
use gitfleet_e2e::{AUTOMATED, Node, Sandbox, Timings, application};
use gitfleet_messages::Operation;
use gitfleet_stack::Services;

const NODE: &str = env!("CARGO_BIN_EXE_e2e-node");

const HOOK: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: HookSucceeded
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: busybox:1.36
"#;
const CONFIG: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  k: v\n";
const LATER: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\ndata:\n  k: v\n";

async fn operation(sb: &Sandbox, app: &str) -> Option<Operation> {
    let kv = sb.bus.kv(Bucket::Operations).await.ok()?;
    let body = kv.get(subject_token(app)).await.ok()??;
    serde_json::from_slice(&body).ok()
}

/// The writes (not dry runs) to `resource` named `name`, as (verb, user agent).
fn writes(sb: &Sandbox, resource: &str, name: &str) -> Vec<(String, String)> {
    sb.sim
        .cluster(0)
        .write_log()
        .into_iter()
        .filter(|w| w.resource == resource && w.name.as_deref() == Some(name) && !w.dry_run)
        .map(|w| (w.verb, w.user_agent.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_executors_operation_is_resumed_and_its_hook_not_run_again() {
    let sb = Sandbox::start_with(
        &[
            ("app/hook.yaml", HOOK),
            ("app/config.yaml", CONFIG),
            ("app/later.yaml", LATER),
        ],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
        Services {
            sync_executor: false,
            ..Services::ALL
        },
    )
    .await;
    // The pause between waves is the window in which the test kills the executor.
    let delay = ["--wave-delay-ms", "4000"];
    let mut nodes: Vec<(&str, Node)> = ["ex-a", "ex-b"]
        .into_iter()
        .map(|m| (m, sb.spawn_node_with(NODE, m, "sync-executor", &delay)))
        .collect();
    sb.create_app(
        "durable",
        &application("durable", &sb.repo_url(), "app", Some(AUTOMATED)),
    )
    .await;

    // The PreSync step finished and recorded; wave 0 not begun.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let first = loop {
        if let Some(op) = operation(&sb, "durable").await
            && op
                .progress
                .as_ref()
                .and_then(|p| p.finished.as_ref())
                .is_some_and(|s| s.phase == "PreSync")
        {
            break op;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the PreSync step was never recorded finished: {:?}",
            operation(&sb, "durable").await
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let hook_writes = writes(&sb, "jobs.batch", "migrate");
    assert_eq!(hook_writes.len(), 1, "{hook_writes:?}");
    let running = nodes
        .iter()
        .position(|(m, _)| hook_writes[0].1.contains(&format!("({m})")))
        .unwrap_or_else(|| panic!("no executor named in {hook_writes:?}"));
    let (killed, mut node) = nodes.remove(running);
    let survivor = nodes[0].0;
    node.kill();
    assert!(
        writes(&sb, "configmaps", "settings").is_empty(),
        "wave 0 began before the kill; the test's window is too short"
    );

    // The survivor takes the cluster over and finishes the same operation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let done = loop {
        let op = operation(&sb, "durable").await.expect("an operation");
        if op.finished_at.is_some() {
            break op;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operation was not finished by {survivor}: {op:?}"
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.id, first.id, "the same operation, not a new one");
    assert_eq!(
        done.phase,
        gitfleet_model::OperationPhase::Succeeded,
        "{done:?}"
    );
    assert!(
        done.progress.is_none(),
        "an ended operation keeps no progress"
    );
    // The hook's result, from the first executor's run, is kept.
    assert!(
        done.resources
            .iter()
            .any(|r| r.name == "migrate" && r.hook_type == "PreSync"),
        "{:?}",
        done.resources
    );

    // The hook ran once, created by the killed executor and deleted (HookSucceeded) by
    // the survivor; each of wave 0 and wave 1 written once, by the survivor.
    let hook_writes = writes(&sb, "jobs.batch", "migrate");
    let created: Vec<_> = hook_writes.iter().filter(|(v, _)| v != "delete").collect();
    assert_eq!(
        created.len(),
        1,
        "the hook was created again: {hook_writes:?}"
    );
    assert!(created[0].1.contains(&format!("({killed})")));
    assert!(
        hook_writes
            .iter()
            .any(|(v, ua)| v == "delete" && ua.contains(&format!("({survivor})"))),
        "{hook_writes:?}"
    );
    for name in ["settings", "later"] {
        let w = writes(&sb, "configmaps", name);
        assert_eq!(w.len(), 1, "{name}: {w:?}");
        assert!(w[0].1.contains(&format!("({survivor})")), "{name}: {w:?}");
    }
    sb.until_status("durable", 60, "Synced and Healthy", |s| {
        Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
    })
    .await;
}
