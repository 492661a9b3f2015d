//! Sync operations end to end: work queue → executor → cluster-sim over HTTPS, with the
//! results read back from KV `operations`, the events stream and the sim's write log.

mod common;

use common::*;
use futures::StreamExt;
use gitfleet_bus::testkit;
use gitfleet_messages::{Reply, ResultCode};
use gitfleet_model::OperationPhase;

/// The applies that wrote (not the dry run every sync of two or more objects starts with).
fn applies(sim: &cluster_sim::Sim, i: usize) -> Vec<cluster_sim::WriteRecord> {
    sim.cluster(i)
        .write_log()
        .into_iter()
        .filter(|w| w.verb == "apply" && !w.dry_run)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_applies_with_argocd_field_manager_and_is_idempotent() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let mut events = bus
        .client
        .subscribe(bus.topology.event_subject("guestbook"))
        .await
        .unwrap();

    let desired = vec![
        namespace("demo"),
        config_map("demo", "settings", None),
        deployment("demo", "web", None),
    ];
    let done = sync(&bus, &op("op-1", "guestbook", "c0", desired.clone())).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(done.resources.len(), 3, "{done:?}");
    assert!(
        done.resources
            .iter()
            .all(|r| r.status == ResultCode::Synced),
        "{done:?}"
    );

    let log = applies(&sim, 0);
    for resource in ["namespaces", "configmaps", "deployments.apps"] {
        let w = log
            .iter()
            .find(|w| w.resource == resource)
            .unwrap_or_else(|| panic!("no apply of {resource}: {log:?}"));
        assert_eq!(
            w.field_manager.as_deref(),
            Some("argocd-controller"),
            "{w:?}"
        );
        assert!(w.code == 200 || w.code == 201, "{w:?}");
    }
    // Kind order: Namespace, ConfigMap, Deployment.
    let order: Vec<&str> = log.iter().map(|w| w.resource.as_str()).collect();
    assert_eq!(order, ["namespaces", "configmaps", "deployments.apps"]);

    let client = kube_client(&sim, 0);
    let cm = get(&client, "/api/v1/namespaces/demo/configmaps/settings")
        .await
        .expect("configmap exists");
    assert_eq!(cm["data"]["k"], "v");
    assert_eq!(
        cm["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "guestbook:/ConfigMap:demo/settings"
    );
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"argocd-controller"), "{managers:?}");

    let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap();
    let event: gitfleet_messages::AppEvent = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(
        (event.app.as_str(), event.kind.as_str()),
        ("guestbook", "SyncSucceeded")
    );

    // Again: same result, nothing new in the cluster.
    let objects = sim.cluster(0).object_count();
    let again = sync(&bus, &op("op-2", "guestbook", "c0", desired)).await;
    assert_eq!(again.phase, OperationPhase::Succeeded, "{again:?}");
    assert_eq!(sim.cluster(0).object_count(), objects);
    let cm2 = get(&client, "/api/v1/namespaces/demo/configmaps/settings")
        .await
        .unwrap();
    assert_eq!(cm2["data"], cm["data"]);
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_apply_in_order_after_the_previous_is_healthy() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));

    let desired = vec![
        namespace("w"),
        deployment("w", "api", Some(1)),
        config_map("w", "first", Some(-1)),
        deployment("w", "middle", None),
    ];
    let done = sync(&bus, &op("op-1", "waves", "c0", desired)).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let names: Vec<String> = applies(&sim, 0)
        .iter()
        .map(|w| format!("{}/{}", w.resource, w.name.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        names,
        [
            "namespaces/w",
            "configmaps/first",
            "deployments.apps/middle",
            "deployments.apps/api"
        ]
    );
    exec.stop().await;
}

/// A deep wave list (100 waves, listed in reverse) runs wave by wave, the app's lease read
/// again before each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_waves_run_in_order() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));

    let mut desired = vec![namespace("deep")];
    desired.extend(
        (0..100)
            .rev()
            .map(|w| config_map("deep", &format!("w{w}"), Some(w))),
    );
    let done = sync(&bus, &op("op-1", "deep", "c0", desired)).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(done.resources.len(), 101, "{done:?}");
    let names: Vec<String> = applies(&sim, 0)
        .iter()
        .filter(|w| w.resource == "configmaps")
        .map(|w| w.name.clone().unwrap_or_default())
        .collect();
    let expected: Vec<String> = (0..100).map(|w| format!("w{w}")).collect();
    assert_eq!(names, expected);
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_what_is_no_longer_desired() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let client = kube_client(&sim, 0);

    let all = vec![
        namespace("p"),
        config_map("p", "keep", None),
        config_map("p", "old", None),
    ];
    assert_eq!(
        sync(&bus, &op("op-1", "pruned", "c0", all)).await.phase,
        OperationPhase::Succeeded
    );
    let fewer = vec![namespace("p"), config_map("p", "keep", None)];

    let without = sync(&bus, &op("op-2", "pruned", "c0", fewer.clone())).await;
    assert_eq!(without.phase, OperationPhase::Succeeded, "{without:?}");
    assert!(
        without
            .resources
            .iter()
            .any(|r| r.name == "old" && r.status == ResultCode::PruneSkipped),
        "{without:?}"
    );
    assert!(
        get(&client, "/api/v1/namespaces/p/configmaps/old")
            .await
            .is_some()
    );

    let mut with = op("op-3", "pruned", "c0", fewer);
    with.prune = true;
    let done = sync(&bus, &with).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert!(
        done.resources
            .iter()
            .any(|r| r.name == "old" && r.status == ResultCode::Pruned),
        "{done:?}"
    );
    let deletes: Vec<_> = sim
        .cluster(0)
        .write_log()
        .into_iter()
        .filter(|w| w.verb == "delete")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].name.as_deref(), Some("old"));
    assert!(
        get(&client, "/api/v1/namespaces/p/configmaps/old")
            .await
            .is_none()
    );
    assert!(
        get(&client, "/api/v1/namespaces/p/configmaps/keep")
            .await
            .is_some()
    );
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_resource_fails_the_operation_with_the_clusters_message() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let mut events = bus
        .client
        .subscribe(bus.topology.event_subject("bad"))
        .await
        .unwrap();

    let desired = vec![namespace("b"), config_map("b", "Bad_Name", None)];
    let done = sync(&bus, &op("op-1", "bad", "c0", desired)).await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert!(
        done.message.contains("Bad_Name") && done.message.contains("Invalid value"),
        "{}",
        done.message
    );
    let failed = done
        .resources
        .iter()
        .find(|r| r.name == "Bad_Name")
        .expect("result for Bad_Name");
    assert_eq!(failed.status, ResultCode::SyncFailed);
    assert!(failed.message.contains("RFC 1123"), "{}", failed.message);
    let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap();
    let event: gitfleet_messages::AppEvent = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event.kind, gitfleet_messages::AppEventKind::SyncFailed);
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_fencing_tokens_are_refused() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    // A diff worker owning every app partition.
    let worker = gitfleet_bus::Membership::start(
        &bus,
        gitfleet_bus::MembershipConfig::new(
            gitfleet_messages::DIFF_WORKERS,
            "dw-0",
            gitfleet_messages::APP_PARTITIONS,
        )
        .with_ttls(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(5),
        ),
    )
    .await
    .unwrap();
    let p = gitfleet_bus::partition("fenced", gitfleet_messages::APP_PARTITIONS);
    let token = eventually(30, "the diff worker's lease", || {
        let owned = worker.owned();
        async move { owned.get(&p).copied() }
    })
    .await;

    let mut stale = op("op-1", "fenced", "c0", vec![namespace("f")]);
    stale.fencing.partition = p;
    stale.fencing.revision = token - 1;
    let refused = sync(&bus, &stale).await;
    assert_eq!(refused.phase, OperationPhase::Error, "{refused:?}");
    assert!(
        refused.message.contains("fencing token")
            && refused.message.contains("not the current lease's"),
        "{}",
        refused.message
    );
    assert!(
        applies(&sim, 0).is_empty(),
        "a refused operation must not touch the cluster"
    );
    // A token above the lease's (forged) is refused too, and does not shut out the owner.
    let mut forged = op("op-3", "fenced", "c0", vec![namespace("f")]);
    forged.fencing.partition = p;
    forged.fencing.revision = u64::MAX;
    assert_eq!(sync(&bus, &forged).await.phase, OperationPhase::Error);
    assert!(applies(&sim, 0).is_empty());

    let mut current = op("op-2", "fenced", "c0", vec![namespace("f")]);
    current.fencing.partition = p;
    current.fencing.revision = token;
    assert_eq!(sync(&bus, &current).await.phase, OperationPhase::Succeeded);

    // A stale one arriving after the owner's own ran (a dead owner's, redelivered) is
    // refused without hiding the one that ran.
    let mut events = bus
        .client
        .subscribe(bus.topology.event_subject("fenced"))
        .await
        .unwrap();
    bus.client.flush().await.unwrap();
    let mut late = op("op-4", "fenced", "c0", vec![namespace("f")]);
    late.fencing.partition = p;
    late.fencing.revision = token - 1;
    enqueue(&bus, &late).await;
    let refusal = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let message = events.next().await.expect("event stream");
            let event: gitfleet_messages::AppEvent =
                serde_json::from_slice(&message.payload).unwrap();
            if event.message.contains("fencing token") {
                break event;
            }
        }
    })
    .await
    .expect("the late operation refused");
    assert!(refusal.message.contains("not the current lease's"));
    let stored = completed(&bus, "fenced", "op-2").await;
    assert_eq!(
        (stored.id.as_str(), stored.phase, stored.refused),
        ("op-2", OperationPhase::Succeeded, false)
    );
    worker.shutdown().await;
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_requests_return_the_apps_tracked_objects_and_changes_are_routed() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let p = gitfleet_bus::partition("shop", gitfleet_messages::APP_PARTITIONS);
    let mut changes = bus
        .client
        .subscribe(bus.topology.live_subject(p))
        .await
        .unwrap();

    let shop = vec![namespace("shop"), config_map("shop", "cfg", None)];
    assert_eq!(
        sync(&bus, &op("op-1", "shop", "c0", shop)).await.phase,
        OperationPhase::Succeeded
    );
    let other = vec![config_map("shop", "not-mine", None)];
    assert_eq!(
        sync(&bus, &op("op-2", "other", "c0", other)).await.phase,
        OperationPhase::Succeeded
    );

    let live = eventually(30, "the shop's objects in the live cache", || {
        let bus = bus.clone();
        async move {
            match live(&bus, "shop", "c0").await {
                Reply::Ok(l) if l.resources.len() == 2 => Some(l),
                _ => None,
            }
        }
    })
    .await;
    let mut names: Vec<String> = live
        .resources
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["cfg", "shop"]);
    assert!(
        live.namespaces.contains(&"shop".to_string()),
        "{:?}",
        live.namespaces
    );

    let changed = eventually(30, "a LiveChanged for shop", || {
        let next = futures::FutureExt::now_or_never(changes.next()).flatten();
        async move {
            let m: gitfleet_messages::LiveChanged = serde_json::from_slice(&next?.payload).ok()?;
            (m.app == "shop").then_some(m)
        }
    })
    .await;
    assert_eq!(changed.app, "shop");
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_fails_clearly_and_does_not_block_another() {
    let bus = testkit::bus().await;
    let sim = sim(2).await;
    register(&bus, &sim, 0, "c0").await;
    register(&bus, &sim, 1, "c1").await;
    sim.cluster(0).set_faults(cluster_sim::Faults {
        down: true,
        ..Default::default()
    });
    let exec = Executor::start(&bus, test_config("exec-0"));

    enqueue(&bus, &op("op-down", "on-c0", "c0", vec![namespace("x")])).await;
    let up = sync(&bus, &op("op-up", "on-c1", "c1", vec![namespace("y")])).await;
    assert_eq!(up.phase, OperationPhase::Succeeded, "{up:?}");

    let down = completed(&bus, "on-c0", "op-down").await;
    assert_eq!(down.phase, OperationPhase::Failed, "{down:?}");
    assert!(
        down.message.starts_with("cluster c0 unreachable: "),
        "{}",
        down.message
    );
    match live(&bus, "on-c0", "c0").await {
        Reply::Error(e) => {
            assert_eq!(e.code, gitfleet_messages::ErrorCode::Unavailable, "{e:?}");
            assert!(e.message.starts_with("cluster c0 unreachable: "), "{e}");
        }
        Reply::Ok(l) => panic!("live state of a down cluster: {l:?}"),
    }
    assert!(matches!(live(&bus, "on-c1", "c1").await, Reply::Ok(_)));
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let mut dry = op(
        "op-1",
        "dry",
        "c0",
        vec![
            namespace("dry"),
            config_map("dry", "cm", Some(-1)),
            deployment("dry", "web", Some(2)),
        ],
    );
    dry.sync_options = gitfleet_model::SyncOptions(vec!["CreateNamespace=true".into()]);
    dry.dry_run = true;
    let done = sync(&bus, &dry).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let log = sim.cluster(0).write_log();
    assert!(!log.is_empty() && log.iter().all(|w| w.dry_run), "{log:?}");
    assert!(
        get(&kube_client(&sim, 0), "/api/v1/namespaces/dry")
            .await
            .is_none()
    );
    exec.stop().await;
}

fn hook_job(ns: &str, name: &str, fail: bool) -> serde_json::Value {
    let mut annotations = serde_json::json!({
        "argocd.argoproj.io/hook": "PreSync",
        "argocd.argoproj.io/hook-delete-policy": "HookSucceeded",
    });
    if fail {
        annotations["sim.gitfleet.dev/outcome"] = "fail".into();
    }
    serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"job": name}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presync_hooks_complete_before_the_sync_and_a_failing_hook_stops_it() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let client = kube_client(&sim, 0);
    // Hooks run before the app's own resources, so their namespace exists beforehand.
    assert_eq!(
        sync(&bus, &op("op-0", "hook-ns", "c0", vec![namespace("h")]))
            .await
            .phase,
        OperationPhase::Succeeded
    );
    sim.cluster(0).clear_write_log();

    let good = vec![
        hook_job("h", "migrate", false),
        config_map("h", "app-config", None),
    ];
    let done = sync(&bus, &op("op-1", "hooked", "c0", good)).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let log: Vec<String> = sim
        .cluster(0)
        .write_log()
        .iter()
        .filter(|w| !w.dry_run)
        .map(|w| {
            format!(
                "{} {}/{}",
                w.verb,
                w.resource,
                w.name.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        log,
        [
            "apply jobs.batch/migrate",
            "apply configmaps/app-config",
            "delete jobs.batch/migrate"
        ],
        "HookSucceeded deletes the hook"
    );

    let bad = vec![
        hook_job("h", "broken", true),
        config_map("h", "never", None),
    ];
    let failed = sync(&bus, &op("op-2", "hooked-bad", "c0", bad)).await;
    assert_eq!(failed.phase, OperationPhase::Failed, "{failed:?}");
    assert!(
        failed.message.contains("Job h/broken is Degraded"),
        "{}",
        failed.message
    );
    assert!(
        get(&client, "/api/v1/namespaces/h/configmaps/never")
            .await
            .is_none()
    );
    assert!(
        get(&client, "/apis/batch/v1/namespaces/h/jobs/broken")
            .await
            .is_some(),
        "a failed HookSucceeded hook is kept"
    );
    exec.stop().await;
}

/// A hook Job of `phase` with these delete policies (none: Argo CD's default,
/// BeforeHookCreation); `fail` makes the emulator fail it.
fn hook(ns: &str, name: &str, phase: &str, policies: &str, fail: bool) -> serde_json::Value {
    let mut job = hook_job(ns, name, fail);
    job["metadata"]["annotations"]["argocd.argoproj.io/hook"] = phase.into();
    if policies.is_empty() {
        job["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("argocd.argoproj.io/hook-delete-policy");
    } else {
        job["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"] = policies.into();
    }
    job
}

/// Issue 8's hook lifecycle through the executor, from the write log: a failing PreSync
/// hook stops the sync (nothing of Sync applied), the SyncFail hook runs, the operation
/// says the Job's failure, and HookFailed deletes the failed hook; a PreSync/PostSync
/// pair with HookSucceeded runs around the app's resources and is gone after; a hook of
/// the default policy (BeforeHookCreation) stays until the next sync deletes it before
/// creating it again; a `generateName` hook gets Argo CD's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_and_go_as_their_phases_and_policies_say() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let client = kube_client(&sim, 0);
    assert_eq!(
        sync(&bus, &op("h-0", "hooks-ns", "c0", vec![namespace("hk")]))
            .await
            .phase,
        OperationPhase::Succeeded
    );
    let log = |sim: &cluster_sim::Sim| -> Vec<String> {
        let l: Vec<String> = sim
            .cluster(0)
            .write_log()
            .iter()
            .filter(|w| !w.dry_run)
            .map(|w| format!("{} {}", w.verb, w.name.clone().unwrap_or_default()))
            .collect();
        sim.cluster(0).clear_write_log();
        l
    };
    log(&sim);

    let failing = vec![
        hook("hk", "pre-bad", "PreSync", "HookFailed", true),
        hook("hk", "on-fail", "SyncFail", "HookSucceeded", false),
        config_map("hk", "never", None),
    ];
    let done = sync(&bus, &op("h-1", "hooks", "c0", failing)).await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert!(
        done.message.contains("Job hk/pre-bad is Degraded"),
        "{done:?}"
    );
    assert_eq!(
        log(&sim),
        ["apply pre-bad", "apply on-fail", "delete pre-bad"],
        "SyncFail runs, HookFailed deletes the failed hook, nothing of Sync is applied"
    );
    let pre = done.resources.iter().find(|r| r.name == "pre-bad").unwrap();
    assert_eq!(
        (pre.hook_type.as_str(), pre.sync_phase.as_str()),
        ("PreSync", "PreSync")
    );
    assert!(
        get(&client, "/api/v1/namespaces/hk/configmaps/never")
            .await
            .is_none()
    );

    let pair = vec![
        hook("hk", "post", "PostSync", "HookSucceeded", false),
        hook("hk", "pre", "PreSync", "HookSucceeded", false),
        config_map("hk", "app", None),
    ];
    let done = sync(&bus, &op("h-2", "hooks", "c0", pair)).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(
        log(&sim),
        [
            "apply pre",
            "apply app",
            "apply post",
            "delete pre",
            "delete post"
        ]
    );

    let kept = || {
        vec![
            hook("hk", "kept", "PreSync", "", false),
            config_map("hk", "app", None),
        ]
    };
    let done = sync(&bus, &op("h-3", "hooks", "c0", kept())).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(log(&sim), ["apply kept", "apply app"]);
    assert!(
        get(&client, "/apis/batch/v1/namespaces/hk/jobs/kept")
            .await
            .is_some()
    );
    eventually(30, "the executor's cache to hold the kept hook", || async {
        let Reply::Ok(live) = live(&bus, "hooks", "c0").await else {
            return None;
        };
        live.resources
            .iter()
            .any(|r| r["metadata"]["name"] == "kept")
            .then_some(())
    })
    .await;
    let done = sync(&bus, &op("h-4", "hooks", "c0", kept())).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(log(&sim), ["delete kept", "apply kept", "apply app"]);

    let mut generated = hook("hk", "", "PreSync", "HookSucceeded", false);
    generated["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    generated["metadata"]["generateName"] = "migrate-".into();
    let done = sync(&bus, &op("h-5", "hooks", "c0", vec![generated])).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let name = done.resources[0].name.clone();
    assert!(name.starts_with("migrate-0123456-presync-"), "{name}");
    assert_eq!(
        log(&sim),
        [format!("apply {name}"), format!("delete {name}")]
    );
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_namespace_makes_the_destination_first() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    // No namespace in the manifest: the destination namespace applies.
    let mut cm = config_map("", "cfg", None);
    cm["metadata"].as_object_mut().unwrap().remove("namespace");
    let mut create = op("op-1", "auto-ns", "c0", vec![]);
    create.desired = vec![tracked("auto-ns", {
        let mut c = cm.clone();
        c["metadata"]["namespace"] = "auto".into();
        c
    })];
    create.desired[0]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    create.destination_namespace = "auto".into();
    create.sync_options = gitfleet_model::SyncOptions(vec!["CreateNamespace=true".into()]);
    let done = sync(&bus, &create).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let log: Vec<String> = applies(&sim, 0)
        .iter()
        .map(|w| format!("{}/{}", w.resource, w.name.clone().unwrap_or_default()))
        .collect();
    assert_eq!(log, ["namespaces/auto", "configmaps/cfg"]);
    assert!(
        get(
            &kube_client(&sim, 0),
            "/api/v1/namespaces/auto/configmaps/cfg"
        )
        .await
        .is_some()
    );
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_operations_and_live_replies_travel_through_the_object_store() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let blob = "x".repeat(60 * 1024);
    let mut desired = vec![namespace("big")];
    for i in 0..24 {
        let mut cm = config_map("big", &format!("cm-{i}"), None);
        cm["data"]["blob"] = blob.clone().into();
        desired.push(cm);
    }
    let big = op("op-1", "big", "c0", desired);
    let body = serde_json::to_vec(&big).unwrap();
    assert!(
        body.len() > bus.payload_limit(),
        "the operation must not fit one message"
    );
    let subject = bus.topology.sync_subject(gitfleet_bus::partition(
        "c0",
        gitfleet_messages::CLUSTER_PARTITIONS,
    ));
    bus.publish_large(subject, body.into()).await.unwrap();
    let done = completed(&bus, "big", "op-1").await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{}", done.message);

    let live = eventually(30, "all 25 objects in the live reply", || {
        let bus = bus.clone();
        async move {
            match live(&bus, "big", "c0").await {
                Reply::Ok(l) if l.resources.len() == 25 => Some(l),
                _ => None,
            }
        }
    })
    .await;
    assert!(serde_json::to_vec(&live).unwrap().len() > bus.payload_limit());
    exec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_create_namespace_step_costs_no_wave_delay() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let delay = std::time::Duration::from_secs(5);
    let mut config = test_config("exec-0");
    config.wave_delay = delay;
    let exec = Executor::start(&bus, config);

    // Two user waves in an existing namespace: the delay applies between them (this also
    // warms the executor up: the cluster is owned and its cache listed afterwards).
    let waves = vec![
        namespace("user"),
        config_map("user", "first", Some(-1)),
        config_map("user", "second", None),
    ];
    let started = std::time::Instant::now();
    let done = sync(&bus, &op("op-1", "waves", "c0", waves)).await;
    let two_waves = started.elapsed();
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert!(
        two_waves >= delay,
        "two user waves took {two_waves:?}, less than the {delay:?} wave delay"
    );

    // CreateNamespace + one ConfigMap: a PreSync namespace step, then the Sync wave, with
    // no delay between them.
    let mut create = op("op-2", "auto-ns", "c0", vec![]);
    create.desired = vec![tracked("auto-ns", config_map("auto", "cfg", None))];
    create.destination_namespace = "auto".into();
    create.sync_options = gitfleet_model::SyncOptions(vec!["CreateNamespace=true".into()]);
    let started = std::time::Instant::now();
    let done = sync(&bus, &create).await;
    let created = started.elapsed();
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert!(
        created < delay / 2,
        "CreateNamespace + ConfigMap took {created:?}; the {delay:?} wave delay must not apply"
    );
    let log: Vec<String> = applies(&sim, 0)
        .iter()
        .map(|w| format!("{}/{}", w.resource, w.name.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        log,
        [
            "namespaces/user",
            "configmaps/first",
            "configmaps/second",
            "namespaces/auto",
            "configmaps/cfg"
        ]
    );
    exec.stop().await;
}

/// `retry` (Argo CD's `syncPolicy.retry`): a run that fails (its namespace does not exist
/// yet) stays Running, says which attempt comes when, and runs again after the backoff,
/// until the namespace appears; with the limit reached it ends Failed, saying how often it
/// was retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_is_retried_with_backoff_until_it_succeeds_or_the_limit() {
    use gitfleet_bus::{Bucket, subject_token};
    use gitfleet_messages::Operation;
    use gitfleet_model::{Backoff, RetryStrategy};

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let every_second = |limit: i64| RetryStrategy {
        limit,
        backoff: Some(Backoff {
            duration: "1s".into(),
            factor: Some(1),
            max_duration: String::new(),
        }),
        refresh: false,
    };

    let mut first = op(
        "op-r1",
        "later",
        "c0",
        vec![config_map("later-ns", "settings", None)],
    );
    first.retry = Some(every_second(5));
    enqueue(&bus, &first).await;
    let operations = bus.kv(Bucket::Operations).await.unwrap();
    let retrying = eventually(60, "a retry of op-r1", || {
        let operations = operations.clone();
        async move {
            let entry = operations.get(subject_token("later")).await.ok()??;
            let op: Operation = serde_json::from_slice(&entry).ok()?;
            (op.id == "op-r1" && op.retry_count >= 1).then_some(op)
        }
    })
    .await;
    assert_eq!(retrying.phase, OperationPhase::Running, "{retrying:?}");
    assert!(
        retrying.message.contains("later-ns")
            && retrying.message.contains("Retrying attempt #1 at"),
        "{}",
        retrying.message
    );

    // The namespace appears: the next run succeeds, with no new operation.
    let client = kube_client(&sim, 0);
    let create = http::Request::post("/api/v1/namespaces")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&namespace("later-ns")).unwrap())
        .unwrap();
    client.request::<serde_json::Value>(create).await.unwrap();
    let done = completed(&bus, "later", "op-r1").await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert!(done.retry_count >= 1);
    assert!(
        get(&client, "/api/v1/namespaces/later-ns/configmaps/settings")
            .await
            .is_some()
    );

    // Never there: two retries, then Failed.
    let mut second = op(
        "op-r2",
        "never",
        "c0",
        vec![config_map("never-ns", "settings", None)],
    );
    second.retry = Some(every_second(2));
    let done = sync(&bus, &second).await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert_eq!(done.retry_count, 2);
    assert!(
        done.message.ends_with("(retried 2 times)."),
        "{}",
        done.message
    );
    assert!(done.message.contains("never-ns"), "{}", done.message);

    // Without a retry strategy, one run.
    let third = op(
        "op-r3",
        "once",
        "c0",
        vec![config_map("once-ns", "settings", None)],
    );
    let done = sync(&bus, &third).await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert_eq!(done.retry_count, 0);
    exec.stop().await;
}

/// Sync options that change how resources are written: `Validate=false` (an unknown field
/// fails the apply unless it is set, on the app or on the resource), `FailOnSharedResource`
/// (another app's resource fails the sync before anything is written), and
/// `PrunePropagationPolicy=orphan` (a pruned Deployment leaves its ReplicaSet; by default
/// the dependents go too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_shared_resources_and_prune_propagation_follow_their_options() {
    use gitfleet_model::SyncOptions;

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let client = kube_client(&sim, 0);

    // An unknown field: refused as kubectl apply --validate refuses it.
    let mut odd = config_map("v", "odd", None);
    odd["spec"] = serde_json::json!({"unknown": true});
    let done = sync(
        &bus,
        &op("op-v1", "val", "c0", vec![namespace("v"), odd.clone()]),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert!(done.message.contains("unknown field"), "{}", done.message);
    let mut lenient = op("op-v2", "val", "c0", vec![namespace("v"), odd.clone()]);
    lenient.sync_options = SyncOptions::from_annotation("Validate=false");
    let done = sync(&bus, &lenient).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    odd["metadata"]["annotations"] =
        serde_json::json!({"argocd.argoproj.io/sync-options": "Validate=false"});
    let done = sync(&bus, &op("op-v3", "val", "c0", vec![namespace("v"), odd])).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");

    // Another app's ConfigMap: taken over by default (Argo CD only warns), refused with
    // FailOnSharedResource, before anything is written.
    let done = sync(
        &bus,
        &op(
            "op-s1",
            "one",
            "c0",
            vec![namespace("s"), config_map("s", "shared", None)],
        ),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let applies_before = sim.cluster(0).write_log().len();
    let mut careful = op("op-s2", "two", "c0", vec![config_map("s", "shared", None)]);
    careful.sync_options = SyncOptions::from_annotation("FailOnSharedResource=true");
    let done = sync(&bus, &careful).await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert_eq!(
        done.message,
        "Shared resource found: ConfigMap/shared is part of applications two and one"
    );
    assert_eq!(
        sim.cluster(0).write_log().len(),
        applies_before,
        "nothing written"
    );
    let done = sync(
        &bus,
        &op("op-s3", "two", "c0", vec![config_map("s", "shared", None)]),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");

    // Prune propagation: orphan keeps the ReplicaSet, the default (foreground) does not.
    let replica_sets = |ns: &'static str| {
        let client = client.clone();
        async move {
            get(
                &client,
                &format!("/apis/apps/v1/namespaces/{ns}/replicasets"),
            )
            .await
            .and_then(|l| l["items"].as_array().map(Vec::len))
            .unwrap_or(0)
        }
    };
    for (ns, options, kept) in [("po", "PrunePropagationPolicy=orphan", 1), ("pf", "", 0)] {
        let app = format!("prop-{ns}");
        let done = sync(
            &bus,
            &op(
                &format!("{app}-1"),
                &app,
                "c0",
                vec![namespace(ns), deployment(ns, "web", None)],
            ),
        )
        .await;
        assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
        eventually(30, "the Deployment's ReplicaSet", || async {
            (replica_sets(ns).await == 1).then_some(())
        })
        .await;
        let mut prune = op(&format!("{app}-2"), &app, "c0", vec![namespace(ns)]);
        prune.prune = true;
        prune.sync_options = SyncOptions::from_annotation(options);
        let done = sync(&bus, &prune).await;
        assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
        eventually(30, "the Deployment gone", || async {
            get(
                &client,
                &format!("/apis/apps/v1/namespaces/{ns}/deployments/web"),
            )
            .await
            .is_none()
            .then_some(())
        })
        .await;
        eventually(30, &format!("{kept} ReplicaSets left in {ns}"), || async {
            (replica_sets(ns).await == kept).then_some(())
        })
        .await;
    }
    exec.stop().await;
}

/// `Replace=true` writes as `kubectl create`/`kubectl replace` instead of applying, and with
/// `Force=true` deletes and creates again; the option may sit on the app or the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_and_force_write_as_kubectl_replace_does() {
    use gitfleet_model::SyncOptions;

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let client = kube_client(&sim, 0);
    let verbs = |name: &'static str| {
        let sim = &sim;
        move || -> Vec<String> {
            sim.cluster(0)
                .write_log()
                .into_iter()
                .filter(|w| {
                    w.name.as_deref() == Some(name) && w.resource == "configmaps" && !w.dry_run
                })
                .map(|w| w.verb)
                .collect()
        }
    };
    let settings = |data: &str| {
        let mut cm = config_map("r", "settings", None);
        cm["data"] = serde_json::json!({"size": data});
        cm
    };
    let size = || async {
        get(&client, "/api/v1/namespaces/r/configmaps/settings")
            .await
            .map(|cm| cm["data"]["size"].clone())
    };

    let done = sync(
        &bus,
        &op("rep-1", "rep", "c0", vec![namespace("r"), settings("s")]),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(verbs("settings")(), ["apply"]);

    let mut replaced = op("rep-2", "rep", "c0", vec![namespace("r"), settings("m")]);
    replaced.sync_options = SyncOptions::from_annotation("Replace=true");
    let done = sync(&bus, &replaced).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(verbs("settings")(), ["apply", "update"]);
    assert_eq!(size().await, Some(serde_json::json!("m")));
    let result = done
        .resources
        .iter()
        .find(|r| r.name == "settings")
        .unwrap();
    assert_eq!(result.message, "configmap/settings replaced");

    // On the resource, with Force: deleted and created again.
    let mut forced_cm = settings("l");
    forced_cm["metadata"]["annotations"] =
        serde_json::json!({"argocd.argoproj.io/sync-options": "Replace=true,Force=true"});
    let done = sync(
        &bus,
        &op("rep-3", "rep", "c0", vec![namespace("r"), forced_cm]),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(verbs("settings")(), ["apply", "update", "delete", "create"]);
    assert_eq!(size().await, Some(serde_json::json!("l")));

    // Nothing live: created.
    let mut fresh = config_map("r", "fresh", None);
    fresh["metadata"]["annotations"] =
        serde_json::json!({"argocd.argoproj.io/sync-options": "Replace=true"});
    let done = sync(&bus, &op("rep-4", "rep2", "c0", vec![fresh])).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(verbs("fresh")(), ["create"]);
    exec.stop().await;
}

/// `ApplyOutOfSyncOnly=true`: only resources whose live object differs from the manifest
/// are applied again; without it every resource is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_out_of_sync_only_applies_only_what_drifted() {
    use gitfleet_model::SyncOptions;

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let client = kube_client(&sim, 0);
    let desired = || {
        vec![
            namespace("o"),
            config_map("o", "a", None),
            config_map("o", "b", None),
        ]
    };
    let applied_since = |from: usize| -> Vec<String> {
        applies(&sim, 0)
            .into_iter()
            .skip(from)
            .filter_map(|w| w.name)
            .collect()
    };
    let done = sync(&bus, &op("o-1", "oos", "c0", desired())).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");

    // Drift on `a` only, made by someone else; wait until the executor's cache has it.
    let patch = http::Request::patch("/api/v1/namespaces/o/configmaps/a")
        .header("content-type", "application/merge-patch+json")
        .body(br#"{"data":{"k":"drifted"}}"#.to_vec())
        .unwrap();
    client.request::<serde_json::Value>(patch).await.unwrap();
    eventually(30, "the executor's cache to see the drift", || async {
        let Reply::Ok(live) = live(&bus, "oos", "c0").await else {
            return None;
        };
        live.resources
            .iter()
            .any(|r| r["metadata"]["name"] == "a" && r["data"]["k"] == "drifted")
            .then_some(())
    })
    .await;

    let before = applies(&sim, 0).len();
    let mut only = op("o-2", "oos", "c0", desired());
    only.sync_options = SyncOptions::from_annotation("ApplyOutOfSyncOnly=true");
    let done = sync(&bus, &only).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(applied_since(before), ["a"]);
    let a = get(&client, "/api/v1/namespaces/o/configmaps/a")
        .await
        .unwrap();
    assert_eq!(a["data"]["k"], "v");

    let before = applies(&sim, 0).len();
    let done = sync(&bus, &op("o-3", "oos", "c0", desired())).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(applied_since(before), ["o", "a", "b"]);
    exec.stop().await;
}

/// `RespectIgnoreDifferences=true`: a field the app's `ignoreDifferences` covers keeps the
/// value someone else set (an autoscaler's replicas); without the option the sync puts
/// the manifest's back. With `ApplyOutOfSyncOnly=true` the ignored drift alone is no
/// reason to apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respect_ignore_differences_keeps_the_live_value_of_ignored_fields() {
    use gitfleet_model::{ResourceIgnoreDifferences, SyncOptions};

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let client = kube_client(&sim, 0);
    let desired = || vec![namespace("r"), deployment("r", "web", None)];
    let done = sync(&bus, &op("r-1", "respect", "c0", desired())).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");

    // An autoscaler scales it; the executor's cache sees it.
    let scale = http::Request::patch("/apis/apps/v1/namespaces/r/deployments/web")
        .header("content-type", "application/merge-patch+json")
        .body(br#"{"spec":{"replicas":5}}"#.to_vec())
        .unwrap();
    client.request::<serde_json::Value>(scale).await.unwrap();
    eventually(30, "the executor's cache to see the scale", || async {
        let Reply::Ok(live) = live(&bus, "respect", "c0").await else {
            return None;
        };
        live.resources
            .iter()
            .any(|r| r["metadata"]["name"] == "web" && r["spec"]["replicas"] == 5)
            .then_some(())
    })
    .await;
    let replicas = || async {
        get(&client, "/apis/apps/v1/namespaces/r/deployments/web")
            .await
            .unwrap()["spec"]["replicas"]
            .clone()
    };
    let ignored = vec![ResourceIgnoreDifferences {
        group: "apps".into(),
        kind: "Deployment".into(),
        json_pointers: vec!["/spec/replicas".into()],
        ..Default::default()
    }];

    let before = applies(&sim, 0).len();
    let mut only = op("r-2", "respect", "c0", desired());
    only.sync_options = SyncOptions::from_annotation("ApplyOutOfSyncOnly=true");
    only.ignore_differences = ignored.clone();
    let done = sync(&bus, &only).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(
        applies(&sim, 0).len(),
        before,
        "ignored drift is no reason to apply"
    );

    let mut respect = op("r-3", "respect", "c0", desired());
    respect.sync_options = SyncOptions::from_annotation("RespectIgnoreDifferences=true");
    respect.ignore_differences = ignored.clone();
    let done = sync(&bus, &respect).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(replicas().await, 5);

    let mut plain = op("r-4", "respect", "c0", desired());
    plain.ignore_differences = ignored;
    let done = sync(&bus, &plain).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(replicas().await, 1);
    exec.stop().await;
}

/// `ServerSideApply=false`: a client-side `kubectl apply`, as Argo CD's default: the
/// last-applied annotation is kept, a field dropped from Git is removed while a field
/// another client set stays, and the resource's own option wins over the app's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_keeps_the_last_applied_configuration() {
    use gitfleet_model::SyncOptions;

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let client = kube_client(&sim, 0);
    let web = |image: &str, debug: bool| {
        let mut d = deployment("csa", "web", None);
        d["spec"]["template"]["spec"]["containers"][0]["image"] = image.into();
        if debug {
            d["spec"]["template"]["spec"]["containers"][0]["env"] =
                serde_json::json!([{"name": "DEBUG", "value": "1"}]);
        }
        d
    };
    let csa = |id: &str, desired: Vec<serde_json::Value>| {
        let mut o = op(id, "csa", "c0", desired);
        o.sync_options = SyncOptions::from_annotation("ServerSideApply=false");
        o
    };
    let writes = |name: &str| -> Vec<(String, Option<String>)> {
        sim.cluster(0)
            .write_log()
            .into_iter()
            .filter(|w| w.name.as_deref() == Some(name) && !w.dry_run)
            .map(|w| (w.verb, w.field_manager))
            .collect()
    };
    let path = "/apis/apps/v1/namespaces/csa/deployments/web";

    let done = sync(
        &bus,
        &csa("c-1", vec![namespace("csa"), web("nginx:1", true)]),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let live = get(&client, path).await.unwrap();
    let last: serde_json::Value = serde_json::from_str(
        live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("the last-applied annotation"),
    )
    .unwrap();
    assert_eq!(
        last["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"],
        "DEBUG"
    );
    assert_eq!(
        writes("web"),
        [("create".to_owned(), Some("argocd-controller".to_owned()))]
    );

    // Another client labels it; the next apply drops DEBUG and changes the image.
    let label = http::Request::patch(path)
        .header("content-type", "application/merge-patch+json")
        .body(br#"{"metadata":{"labels":{"team":"ops"}}}"#.to_vec())
        .unwrap();
    client.request::<serde_json::Value>(label).await.unwrap();
    let done = sync(
        &bus,
        &csa("c-2", vec![namespace("csa"), web("nginx:2", false)]),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let live = get(&client, path).await.unwrap();
    let container = &live["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:2");
    assert!(container.get("env").is_none(), "{container}");
    assert_eq!(live["metadata"]["labels"]["team"], "ops");
    assert_eq!(writes("web").last().unwrap().0, "update");

    // Unchanged: nothing written. The resource's own option wins over the app's.
    let before = writes("web").len();
    let done = sync(
        &bus,
        &csa("c-3", vec![namespace("csa"), web("nginx:2", false)]),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(writes("web").len(), before);
    let mut server_side = web("nginx:3", false);
    server_side["metadata"]["annotations"] =
        serde_json::json!({"argocd.argoproj.io/sync-options": "ServerSideApply=true"});
    let done = sync(&bus, &csa("c-4", vec![namespace("csa"), server_side])).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(writes("web").last().unwrap().0, "apply");
    exec.stop().await;
}

/// Argo CD's dry run before the first step: an object the cluster refuses (an unknown
/// field, a kind it does not serve) fails the sync before anything is written.
/// `SkipDryRunOnMissingResource=true` (the resource's or the app's) and a
/// CustomResourceDefinition in the same sync let a kind the cluster does not serve yet
/// through the dry run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_refuses_before_anything_is_written() {
    use gitfleet_model::SyncOptions;

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let written = |name: &str| {
        applies(&sim, 0)
            .iter()
            .any(|w| w.name.as_deref() == Some(name))
    };
    let gadget = |mut annotations: serde_json::Value| {
        annotations["argocd.argoproj.io/sync-wave"] = "1".into();
        serde_json::json!({"apiVersion": "example.com/v1", "kind": "Gadget",
            "metadata": {"name": "g1", "namespace": "dry", "annotations": annotations},
            "spec": {"size": 1}})
    };

    // A typo in a later wave: nothing of the sync is written.
    let mut typo = config_map("dry", "typo", Some(1));
    typo["dta"] = serde_json::json!({"k": "v"});
    let done = sync(
        &bus,
        &op(
            "d-1",
            "dry",
            "c0",
            vec![namespace("dry"), config_map("dry", "first", Some(0)), typo],
        ),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert!(
        done.message
            .starts_with("one or more objects failed to apply (dry run), reason:")
            && done.message.contains("dta"),
        "{done:?}"
    );
    assert!(
        !written("dry") && !written("first"),
        "{:?}",
        applies(&sim, 0)
    );

    // A kind the cluster does not serve: refused by the dry run...
    let desired =
        |g: serde_json::Value| vec![namespace("dry"), config_map("dry", "first", Some(0)), g];
    let done = sync(
        &bus,
        &op("d-2", "dry", "c0", desired(gadget(serde_json::json!({})))),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert!(done.message.contains("(dry run)"), "{done:?}");
    assert!(!written("first"));
    // ...unless it says SkipDryRunOnMissingResource: the sync goes ahead and fails only
    // at the object itself.
    let skip =
        serde_json::json!({"argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"});
    let done = sync(&bus, &op("d-3", "dry", "c0", desired(gadget(skip)))).await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert!(!done.message.contains("(dry run)"), "{done:?}");
    assert!(written("first"));
    // The app's option does the same.
    let mut app_level = op("d-4", "dry", "c0", desired(gadget(serde_json::json!({}))));
    app_level.sync_options = SyncOptions::from_annotation("SkipDryRunOnMissingResource=true");
    let done = sync(&bus, &app_level).await;
    assert!(!done.message.contains("(dry run)"), "{done:?}");
    exec.stop().await;
}

/// A running operation that a sync window blocks waits, Running with Argo CD's "Sync
/// operation blocked by sync window", and applies nothing until it is allowed (here:
/// terminated instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_window_holds_a_running_operation() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let mut project = gitfleet_model::AppProject::default_project("argocd");
    project.spec.sync_windows = vec![gitfleet_model::SyncWindow {
        kind: "deny".into(),
        schedule: "* * * * *".into(),
        duration: "1h".into(),
        applications: vec!["held".into()],
        ..Default::default()
    }];
    let mut held = op(
        "w-1",
        "held",
        "c0",
        vec![namespace("win"), config_map("win", "cm", None)],
    );
    held.project = Some(project);
    enqueue(&bus, &held).await;
    let kv = bus.kv(gitfleet_bus::Bucket::Operations).await.unwrap();
    let running = eventually(60, "the operation to wait for the window", || {
        let kv = kv.clone();
        async move {
            let body = kv.get("held").await.ok()??;
            let op: gitfleet_messages::Operation = serde_json::from_slice(&body).ok()?;
            (op.message == "Sync operation blocked by sync window").then_some(op)
        }
    })
    .await;
    assert_eq!(running.phase, OperationPhase::Running);
    let log = sim.cluster(0).write_log();
    assert!(log.is_empty(), "not even a dry run: {log:?}");

    let mut terminating = running.clone();
    terminating.phase = OperationPhase::Terminating;
    kv.put("held", serde_json::to_vec(&terminating).unwrap().into())
        .await
        .unwrap();
    let done = completed(&bus, "held", "w-1").await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert_eq!(done.message, "Operation terminated");
    assert!(applies(&sim, 0).is_empty());
    exec.stop().await;
}

/// A Deployment in `wave` whose pods the emulator never starts: Progressing for good.
fn never_ready(ns: &str, name: &str, wave: i32) -> serde_json::Value {
    let mut d = deployment(ns, name, Some(wave));
    d["spec"]["template"]["metadata"]["annotations"] =
        serde_json::json!({"sim.gitfleet.dev/outcome": "fail"});
    d
}

/// Argo CD's sync timeout: an operation still waiting for a wave that never becomes
/// healthy is terminated once the timeout from its start runs out; the later wave is
/// never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_timeout_terminates_an_operation_that_runs_too_long() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let config = sync_executor::Config {
        sync_timeout: std::time::Duration::from_secs(2),
        ..test_config("exec-0")
    };
    let exec = Executor::start(&bus, config);
    let desired = vec![
        namespace("t"),
        never_ready("t", "stuck", 0),
        config_map("t", "later", Some(1)),
    ];
    let done = sync(&bus, &op("t-1", "slow", "c0", desired)).await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert_eq!(
        done.message,
        "Operation terminated, triggered by controller sync timeout"
    );
    assert!(
        !applies(&sim, 0)
            .iter()
            .any(|w| w.name.as_deref() == Some("later")),
        "the next wave ran"
    );
    exec.stop().await;
}

/// Cascade delete with Argo CD 3.3's deletion hooks: the PreDelete hook Job runs to
/// completion before anything is deleted, the PostDelete one once the app's resources are
/// gone, and both are removed at the end; a failing PreDelete hook stops the deletion
/// (nothing deleted) and is removed, so the next attempt creates it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_hooks_run_around_a_cascade_delete() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let deletion_hook = |ns: &str, name: &str, kind: &str, fail: bool| {
        let mut job = hook_job(ns, name, fail);
        job["metadata"]["annotations"]["argocd.argoproj.io/hook"] = kind.into();
        job
    };
    let writes = |sim: &cluster_sim::Sim| -> Vec<String> {
        sim.cluster(0)
            .write_log()
            .into_iter()
            .filter(|w| w.verb == "create" || w.verb == "delete" || w.verb == "apply")
            .map(|w| format!("{} {}/{}", w.verb, w.resource, w.name.unwrap_or_default()))
            .collect()
    };

    // The namespace belongs to another app: the PostDelete hook has somewhere to run.
    let done = sync(
        &bus,
        &op(
            "d-0",
            "namespaces",
            "c0",
            vec![namespace("d"), namespace("s")],
        ),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let done = sync(
        &bus,
        &op("d-1", "gone", "c0", vec![config_map("d", "settings", None)]),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    sim.cluster(0).clear_write_log();
    let mut delete = op(
        "d-2",
        "gone",
        "c0",
        vec![
            deletion_hook("d", "before", "PreDelete", false),
            deletion_hook("d", "after", "PostDelete", false),
        ],
    );
    delete.prune = true;
    delete.deleting = true;
    let done = sync(&bus, &delete).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let log = writes(&sim);
    let at = |entry: &str| {
        log.iter()
            .position(|w| w == entry)
            .unwrap_or_else(|| panic!("{entry} not in {log:?}"))
    };
    assert!(
        at("apply jobs.batch/before") < at("delete configmaps/settings"),
        "{log:?}"
    );
    assert!(
        at("delete configmaps/settings") < at("apply jobs.batch/after"),
        "{log:?}"
    );
    assert!(
        at("apply jobs.batch/after") < at("delete jobs.batch/after"),
        "{log:?}"
    );
    assert!(
        at("apply jobs.batch/before") < at("delete jobs.batch/before"),
        "{log:?}"
    );
    let client = kube_client(&sim, 0);
    assert!(
        get(&client, "/api/v1/namespaces/d/configmaps/settings")
            .await
            .is_none()
    );

    // A PreDelete hook that fails: nothing is deleted, the hook is removed.
    let done = sync(
        &bus,
        &op("s-1", "stuck", "c0", vec![config_map("s", "kept", None)]),
    )
    .await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let mut delete = op(
        "s-2",
        "stuck",
        "c0",
        vec![deletion_hook("s", "guard", "PreDelete", true)],
    );
    delete.prune = true;
    delete.deleting = true;
    let done = sync(&bus, &delete).await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert!(done.message.contains("guard"), "{}", done.message);
    assert!(
        get(&client, "/api/v1/namespaces/s/configmaps/kept")
            .await
            .is_some()
    );
    eventually(30, "the failed hook removed", || async {
        get(&client, "/apis/batch/v1/namespaces/s/jobs/guard")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    exec.stop().await;
}

/// A cluster answering 429 to everything for 5 s, then recovering: the sync that ran into
/// the storm ends Succeeded with no new operation. (Which layer carries it through, the
/// requests' own backoff or the operation's retry, this does not tell apart: the retry
/// itself is proven by `a_failed_sync_is_retried_with_backoff_until_it_succeeds_or_the_limit`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_then_recovery_ends_synced_without_a_new_operation() {
    use gitfleet_model::{Backoff, RetryStrategy};

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    // The cluster is known to the executor before the storm starts.
    let done = sync(&bus, &op("w-0", "warm", "c0", vec![namespace("storm")])).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");

    sim.cluster(0).set_faults(cluster_sim::Faults {
        error_rate: 1.0,
        error_code: Some(429),
        ..Default::default()
    });
    let mut stormy = op(
        "w-1",
        "stormy",
        "c0",
        vec![config_map("storm", "settings", None)],
    );
    stormy.retry = Some(RetryStrategy {
        limit: 10,
        backoff: Some(Backoff {
            duration: "1s".into(),
            factor: Some(2),
            max_duration: "4s".into(),
        }),
        refresh: false,
    });
    enqueue(&bus, &stormy).await;
    // The storm's length: time-driven behaviour, not a wait for a condition.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    sim.cluster(0).set_faults(cluster_sim::Faults::default());
    let done = completed(&bus, "stormy", "w-1").await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let client = kube_client(&sim, 0);
    assert!(
        get(&client, "/api/v1/namespaces/storm/configmaps/settings")
            .await
            .is_some()
    );
    exec.stop().await;
}

/// A 429 with `Retry-After: 3`: the executor asks again no sooner, although its own
/// backoff is 100 ms. The cluster recovers as soon as the first 429 was answered: a retry
/// at the executor's backoff would come within a fraction of a second; the one the
/// server asked for comes three seconds later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429s_retry_after_is_waited_for_before_the_next_request() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let done = sync(&bus, &op("w-0", "warm", "c0", vec![namespace("later")])).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");

    sim.cluster(0).set_faults(cluster_sim::Faults {
        error_rate: 1.0,
        error_code: Some(429),
        retry_after_seconds: Some(3),
        ..Default::default()
    });
    let before = sim.cluster(0).injected_errors();
    let patient = op(
        "w-1",
        "patient",
        "c0",
        vec![config_map("later", "settings", None)],
    );
    enqueue(&bus, &patient).await;
    eventually(60, "the first 429", || async {
        (sim.cluster(0).injected_errors() > before).then_some(())
    })
    .await;
    let answered = std::time::Instant::now();
    sim.cluster(0).set_faults(cluster_sim::Faults::default());
    let done = completed(&bus, "patient", "w-1").await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    // Three seconds from the 429, which came a little before it was seen here.
    assert!(
        answered.elapsed() >= std::time::Duration::from_secs(2),
        "the apply came before the Retry-After ran out: {:?}",
        answered.elapsed()
    );
    assert_eq!(
        applies(&sim, 0)
            .iter()
            .filter(|w| w.name.as_deref() == Some("settings"))
            .count(),
        1
    );
    exec.stop().await;
}

/// Issue 8's retry case: a resource the cluster refuses twice (an admission webhook,
/// injected) and then accepts is synced on the third try, after the configured backoff
/// (1 s, then 2 s), in one operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_refused_twice_is_synced_on_the_third_try() {
    use gitfleet_model::{Backoff, RetryStrategy};

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let done = sync(&bus, &op("r-0", "warm", "c0", vec![namespace("thrice")])).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");

    sim.cluster(0).set_faults(cluster_sim::Faults {
        reject_writes: 2,
        ..Default::default()
    });
    let mut third = op(
        "r-1",
        "third",
        "c0",
        vec![config_map("thrice", "settings", None)],
    );
    third.retry = Some(RetryStrategy {
        limit: 5,
        backoff: Some(Backoff {
            duration: "1s".into(),
            factor: Some(2),
            max_duration: "1m".into(),
        }),
        refresh: false,
    });
    let done = sync(&bus, &third).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert_eq!(done.retry_count, 2, "{done:?}");
    let tries: Vec<(u16, chrono::DateTime<chrono::FixedOffset>)> = sim
        .cluster(0)
        .write_log()
        .into_iter()
        .filter(|w| w.name.as_deref() == Some("settings"))
        .map(|w| {
            (
                w.code,
                chrono::DateTime::parse_from_rfc3339(&w.time).unwrap(),
            )
        })
        .collect();
    let codes: Vec<u16> = tries.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes[..2], [400, 400], "{tries:?}");
    assert!(codes[2] < 300, "{tries:?}");
    assert_eq!(codes.len(), 3, "{tries:?}");
    let gap = |a: usize, b: usize| (tries[b].1 - tries[a].1).num_milliseconds();
    assert!(gap(0, 1) >= 1000 && gap(1, 2) >= 2000, "{tries:?}");
    exec.stop().await;
}

/// A wave waits for the one before to be healthy: a Deployment whose pods never start
/// stops the sync when the wave's wait runs out, and the next wave is never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_that_never_becomes_healthy_holds_back_the_next() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    // Its pods never start, so the Deployment stays Progressing: a short wave timeout.
    let config = sync_executor::Config {
        wave_timeout: std::time::Duration::from_secs(3),
        ..test_config("exec-0")
    };
    let exec = Executor::start(&bus, config);
    let desired = vec![
        namespace("h"),
        never_ready("h", "broken", 0),
        config_map("h", "later", Some(1)),
    ];
    let done = sync(&bus, &op("h-1", "held", "c0", desired)).await;
    assert_ne!(done.phase, OperationPhase::Succeeded, "{done:?}");
    assert!(done.message.contains("broken"), "{}", done.message);
    let names: Vec<String> = applies(&sim, 0)
        .into_iter()
        .filter_map(|w| w.name)
        .collect();
    assert!(names.contains(&"broken".to_string()), "{names:?}");
    assert!(
        !names.contains(&"later".to_string()),
        "wave 1 applied: {names:?}"
    );
    exec.stop().await;
}

/// `managedNamespaceMetadata` with `CreateNamespace=true`: the namespace is created with
/// its labels and annotations, and an existing one gets them added on the next sync while
/// what others set stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_namespace_metadata_is_applied_to_the_destination_namespace() {
    use gitfleet_model::ManagedNamespaceMetadata;

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let client = kube_client(&sim, 0);
    let managed = |team: &str| ManagedNamespaceMetadata {
        labels: [("team".to_string(), team.to_string())].into(),
        annotations: [("owner".to_string(), "platform".to_string())].into(),
    };
    let with_metadata = |id: &str, team: &str| {
        let mut sync_op = op(id, "meta", "c0", vec![config_map("meta", "cfg", None)]);
        sync_op.destination_namespace = "meta".into();
        sync_op.sync_options = gitfleet_model::SyncOptions(vec!["CreateNamespace=true".into()]);
        sync_op.managed_namespace_metadata = Some(managed(team));
        sync_op
    };
    let done = sync(&bus, &with_metadata("m-1", "web")).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let ns = get(&client, "/api/v1/namespaces/meta").await.unwrap();
    assert_eq!(ns["metadata"]["labels"]["team"], "web");
    assert_eq!(ns["metadata"]["annotations"]["owner"], "platform");

    // Someone else labels it; the next sync changes the managed label and keeps theirs.
    let patch = http::Request::patch("/api/v1/namespaces/meta")
        .header("content-type", "application/merge-patch+json")
        .body(br#"{"metadata":{"labels":{"cost-center":"42"}}}"#.to_vec())
        .unwrap();
    client.request::<serde_json::Value>(patch).await.unwrap();
    let done = sync(&bus, &with_metadata("m-2", "shop")).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let ns = get(&client, "/api/v1/namespaces/meta").await.unwrap();
    assert_eq!(ns["metadata"]["labels"]["team"], "shop");
    assert_eq!(ns["metadata"]["labels"]["cost-center"], "42");
    exec.stop().await;
}

/// When an operation ends, the app's owner hears of it (a `LiveChanged` for the app), even
/// when the operation changed nothing live (a dry run): otherwise a status read just before
/// the result was stored would show the operation Running until the next refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_an_operation_is_announced_to_the_apps_owner() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    let mut changes = bus
        .client
        .subscribe(bus.topology.live_subject(gitfleet_bus::partition(
            "quiet",
            gitfleet_messages::APP_PARTITIONS,
        )))
        .await
        .unwrap();
    bus.client.flush().await.unwrap();
    let mut dry = op("q-1", "quiet", "c0", vec![namespace("quiet")]);
    dry.dry_run = true;
    let done = sync(&bus, &dry).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let heard = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(message) = changes.next().await {
            let changed: gitfleet_messages::LiveChanged =
                serde_json::from_slice(&message.payload).unwrap();
            if changed.app == "quiet" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        heard,
        Ok(true),
        "no LiveChanged for the app after its operation"
    );
    exec.stop().await;
}

/// The app's project travels with the operation and is checked with the cluster's own
/// discovery before anything is applied: a custom kind the cluster serves cluster-scoped
/// meets the cluster-scoped lists even when the diff worker (which cannot know its scope)
/// gave it a namespace, so a project that permits no cluster-scoped kinds refuses it,
/// naming the rule, and nothing of the operation is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_is_checked_with_the_clusters_discovery_before_any_apply() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let _exec = Executor::start(&bus, test_config("exec-0"));

    let crd = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    });
    let done = sync(&bus, &op("crd", "platform", "c0", vec![crd])).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");

    let mut project = gitfleet_model::AppProject::default_project("argocd");
    project.metadata.name = "team".into();
    project.spec.cluster_resource_whitelist.clear();
    let widget = serde_json::json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "apps"},
    });
    let rule = "resource example.com:Widget is not permitted in project team (not in spec.clusterResourceWhitelist)";
    let mut attempt = 0;
    let refused = eventually(60, "the refusal by discovery", || {
        attempt += 1;
        let mut op = op(
            &format!("w-{attempt}"),
            "team-app",
            "c0",
            vec![config_map("apps", "c", None), widget.clone()],
        );
        op.project = Some(project.clone());
        let bus = bus.clone();
        async move {
            let done = sync(&bus, &op).await;
            done.message.contains(rule).then_some(done)
        }
    })
    .await;
    assert_eq!(refused.phase, OperationPhase::Failed);
    assert_eq!(
        refused.message,
        format!("one or more synchronization tasks are not valid: {rule}")
    );
    let client = kube_client(&sim, 0);
    assert!(
        get(&client, "/apis/example.com/v1/widgets/w1")
            .await
            .is_none()
    );
    assert!(
        get(&client, "/api/v1/namespaces/apps/configmaps/c")
            .await
            .is_none()
    );
}

/// Established TCP connections from this process's host to `port` on 127.0.0.1, from
/// `/proc/net/tcp` (the sim and the executor share the test process, so both ends are
/// there: counted from the client side, whose remote port is `port`).
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // remote address `0100007F:PORT` (hex), state `01` = ESTABLISHED.
            fields.len() > 3
                && fields[3] == "01"
                && fields[2]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
        .count()
}

/// Every watch and request to a cluster shares one HTTP/2 connection, as kubectl's do:
/// with one connection per watch (HTTP/1.1), 1,000 clusters exhausted the executor's
/// file descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_every_watch_of_a_cluster() {
    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    // A sync waits for the cluster's cache: every kind watched by then.
    let desired = vec![namespace("conn"), config_map("conn", "settings", None)];
    let done = sync(&bus, &op("op-1", "conns", "c0", desired)).await;
    assert_eq!(done.phase, OperationPhase::Succeeded, "{done:?}");
    let port: u16 = sim
        .url(0)
        .rsplit_once(':')
        .and_then(|(_, p)| p.trim_end_matches('/').parse().ok())
        .expect("the cluster's port");
    let connections = connections_to(port);
    assert!(
        (1..=2).contains(&connections),
        "{connections} connections to the cluster"
    );
    exec.stop().await;
}

/// A job delivered again (its executor died, or its ack was lost) is checked against the
/// app's operation record: an operation that ended is not run again, and one a user
/// terminated while no executor ran it ends "Operation terminated" with nothing applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_operation_that_ended_or_was_terminated_runs_no_more() {
    use gitfleet_bus::async_nats::jetstream::{self, AckKind, consumer::pull};
    use gitfleet_bus::{Bucket, StreamName, partition, subject_token};
    use gitfleet_messages::{CLUSTER_PARTITIONS, Operation, SyncOperation};

    let bus = testkit::bus().await;
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let ended = op(
        "op-ended",
        "ended",
        "c0",
        vec![config_map("default", "ended", None)],
    );
    let terminated = op(
        "op-term",
        "terminated",
        "c0",
        vec![config_map("default", "terminated", None)],
    );
    let record = |op: &SyncOperation, phase: &str, finished: bool| -> Operation {
        let mut r = serde_json::json!({"id": op.id, "app": op.app, "phase": phase,
            "revision": op.revision, "startedAt": "2026-01-01T00:00:00.000Z",
            "progress": {"finished": {"phase": "PreSync", "wave": 0}}});
        if finished {
            r["finishedAt"] = "2026-01-01T00:00:01.000Z".into();
            r.as_object_mut().unwrap().remove("progress");
        }
        serde_json::from_value(r).unwrap()
    };
    let kv = bus.kv(Bucket::Operations).await.unwrap();
    for (op, stored) in [
        (&ended, record(&ended, "Succeeded", true)),
        (&terminated, record(&terminated, "Terminating", false)),
    ] {
        kv.put(
            subject_token(&op.app),
            serde_json::to_vec(&stored).unwrap().into(),
        )
        .await
        .unwrap();
        enqueue(&bus, op).await;
    }
    // A first delivery, never acked: the executor gets both again.
    let p = partition("c0", CLUSTER_PARTITIONS);
    let consumer = bus
        .js
        .get_stream(bus.topology.stream(StreamName::SyncWork))
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some(sync_executor::queue::consumer_name(p)),
            filter_subject: bus.topology.sync_subject(p),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut first = consumer.fetch().max_messages(2).messages().await.unwrap();
    for _ in 0..2 {
        let msg = first.next().await.unwrap().unwrap();
        msg.ack_with(AckKind::Nak(None)).await.unwrap();
    }
    drop(first);

    let exec = Executor::start(&bus, test_config("exec-0"));
    let done = completed(&bus, "terminated", "op-term").await;
    assert_eq!(done.phase, OperationPhase::Failed, "{done:?}");
    assert_eq!(done.message, "Operation terminated");
    assert!(done.progress.is_none() && done.finished_at.is_some());
    eventually(30, "both jobs acked", || {
        let consumer = consumer.clone();
        async move {
            let info = consumer.clone().info().await.ok()?.clone();
            (info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
        }
    })
    .await;
    let kept = completed(&bus, "ended", "op-ended").await;
    assert_eq!(
        kept,
        record(&ended, "Succeeded", true),
        "the ended record stands"
    );
    let writes: Vec<_> = sim
        .cluster(0)
        .write_log()
        .into_iter()
        .filter(|w| w.resource == "configmaps")
        .collect();
    assert!(writes.is_empty(), "nothing runs again: {writes:?}");
    exec.stop().await;
}
