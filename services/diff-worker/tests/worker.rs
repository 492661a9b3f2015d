//! The diff worker against a real nats-server, with scripted peers: status from desired
//! and live, errors as conditions, automated and requested syncs, ownership takeover and
//! render avoidance.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use gitfleet_bus::{Bucket, StreamName, ownership::read_lease, partition};
use gitfleet_messages::{
    APP_PARTITIONS, DIFF_WORKERS, LiveChanged, Operation, RefreshRequest, Reply, SyncOperation,
    SyncRequest,
};
use gitfleet_model::{OperationPhase, TRACKING_ANNOTATION};
use serde_json::json;

fn live_changed_subject(bus: &gitfleet_bus::Bus, app: &str) -> String {
    bus.topology.live_subject(partition(app, APP_PARTITIONS))
}

async fn live_changed(bus: &gitfleet_bus::Bus, app: &str) {
    publish(
        bus,
        live_changed_subject(bus, app),
        &LiveChanged { app: app.into() },
    )
    .await;
}

/// Triggers reconciliations of `app` until `n` more have asked for live state after the
/// first: the worker runs one at a time per app, so every decision of the ones before has
/// been made when this returns.
async fn settle(bus: &gitfleet_bus::Bus, peers: &Peers, app: &str, n: usize) {
    for _ in 0..=n {
        let before = peers.live_requests();
        live_changed(bus, app).await;
        wait_until("a reconciliation", || async {
            peers.live_requests() > before
        })
        .await;
    }
}

/// A sync of `revision` that finished well, as the executor reports it.
fn succeeded(id: &str, app: &str, revision: &str) -> Operation {
    Operation {
        id: id.into(),
        app: app.into(),
        phase: OperationPhase::Succeeded,
        message: String::new(),
        revision: revision.into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        finished_at: Some("2025-01-01T00:00:05Z".into()),
        resources: vec![],
        retry_count: 0,
        source: None,
        dry_run: false,
        initiated_by: String::new(),
        refused: false,
        progress: None,
        self_heal_attempts: 0,
    }
}

#[tokio::test]
async fn out_of_sync_until_live_matches() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    let app = app("guestbook", "apps/guestbook");
    let manifests = vec![config_map("settings", "blue")];
    peers.set_manifests("apps/guestbook", Ok(manifests.clone()));
    put_app(&bus, &app).await;
    let _worker = start_worker(&bus, config("w1"));

    let s = wait_status(&bus, "guestbook", "OutOfSync", |s| {
        sync_of(s).0 == "OutOfSync"
    })
    .await;
    assert_eq!(sync_of(&s).1, "c1");
    assert_eq!(health_of(&s), "Missing");
    assert_eq!(s.resources.len(), 1);
    assert_eq!(
        (
            s.resources[0].kind.as_str(),
            s.resources[0].namespace.as_str()
        ),
        ("ConfigMap", "web")
    );
    // Becoming OutOfSync is an event.
    let events = bus
        .js
        .get_stream(bus.topology.stream(StreamName::Events))
        .await
        .unwrap();
    let event = events
        .get_last_raw_message_by_subject(&bus.topology.event_subject("guestbook"))
        .await
        .unwrap();
    let event: gitfleet_messages::AppEvent = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event.kind, gitfleet_messages::AppEventKind::OutOfSync);

    peers.set_live("guestbook", Ok(as_live(&app, &manifests)));
    live_changed(&bus, "guestbook").await;
    let s = wait_status(&bus, "guestbook", "Synced", |s| sync_of(s).0 == "Synced").await;
    assert_eq!(health_of(&s), "Healthy");
    assert!(s.conditions.is_empty(), "{:?}", s.conditions);
}

#[tokio::test]
async fn health_follows_live_status() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    let app = app("web", "apps/web");
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 1}});
    peers.set_manifests("apps/web", Ok(vec![deployment.clone()]));
    let live_with = |status: serde_json::Value| {
        let mut live = as_live(&app, std::slice::from_ref(&deployment));
        live[0]["metadata"]["generation"] = json!(1);
        live[0]["status"] = status;
        Ok(live)
    };
    peers.set_live(
        "web",
        live_with(json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0})),
    );
    put_app(&bus, &app).await;
    let _worker = start_worker(&bus, config("w1"));

    let s = wait_status(&bus, "web", "Progressing", |s| {
        health_of(s) == "Progressing"
    })
    .await;
    assert_eq!(sync_of(&s).0, "Synced");

    peers.set_live(
        "web",
        live_with(
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
            "availableReplicas": 1, "readyReplicas": 1}),
        ),
    );
    live_changed(&bus, "web").await;
    wait_status(&bus, "web", "Healthy", |s| health_of(s) == "Healthy").await;
}

#[tokio::test]
async fn render_and_resolve_errors_are_comparison_errors() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    let message = "apps/bad/cm.yaml: line 3: mapping values are not allowed in this context";
    peers.set_manifests("apps/bad", Err(message.into()));
    put_app(&bus, &app("bad", "apps/bad")).await;
    let mut lost = app("lost", "apps/bad");
    lost.spec.source.as_mut().unwrap().target_revision = "nope".into();
    put_app(&bus, &lost).await;
    let _worker = start_worker(&bus, config("w1"));

    let s = wait_status(&bus, "bad", "a comparison error", |s| {
        !s.conditions.is_empty()
    })
    .await;
    assert_eq!(s.conditions[0].type_, diff_worker::COMPARISON_ERROR);
    assert_eq!(s.conditions[0].message, message);
    assert_eq!(sync_of(&s).0, "Unknown");

    let s = wait_status(&bus, "lost", "a comparison error", |s| {
        !s.conditions.is_empty()
    })
    .await;
    assert_eq!(s.conditions[0].type_, "ComparisonError");
    assert!(
        s.conditions[0]
            .message
            .contains(&format!("revision \"nope\" not found in {REPO}")),
        "{}",
        s.conditions[0].message
    );
}

#[tokio::test]
async fn live_error_makes_status_unknown() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    peers.set_manifests("apps/x", Ok(vec![config_map("c", "v")]));
    peers.set_live(
        "x",
        Err("cluster in-cluster is unreachable: connection refused".into()),
    );
    put_app(&bus, &app("x", "apps/x")).await;
    let _worker = start_worker(&bus, config("w1"));

    let s = wait_status(&bus, "x", "Unknown", |s| !s.conditions.is_empty()).await;
    assert_eq!(sync_of(&s), ("Unknown".to_string(), "c1".to_string()));
    assert_eq!(health_of(&s), "Unknown");
    assert!(
        s.conditions[0].message.contains("connection refused"),
        "{:?}",
        s.conditions
    );
}

#[tokio::test]
async fn automated_sync_is_fenced_and_never_doubled() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    peers.set_manifests("apps/auto", Ok(vec![config_map("c", "v")]));
    put_app(&bus, &automated(app("auto", "apps/auto"), false)).await;
    let _worker = start_worker(&bus, config("w1"));

    wait_until("a sync operation", || async {
        !sync_ops(&bus).await.is_empty()
    })
    .await;
    let ops = sync_ops(&bus).await;
    assert_eq!(ops.len(), 1);
    let op = &ops[0];
    let p = partition("auto", APP_PARTITIONS);
    let lease = read_lease(&bus, DIFF_WORKERS, p).await.unwrap().unwrap();
    assert_eq!(lease.holder, "w1");
    assert_eq!(op.fencing.group, DIFF_WORKERS);
    assert_eq!(op.fencing.partition, p);
    assert_eq!(op.fencing.revision, lease.token);
    assert_eq!(
        (op.app.as_str(), op.cluster.as_str(), op.revision.as_str()),
        ("auto", "in-cluster", "c1")
    );
    assert!(op.prune);
    assert_eq!(
        op.desired[0]["metadata"]["annotations"][TRACKING_ANNOTATION],
        "auto:/ConfigMap:web/c"
    );

    // The executor reports the operation running: nothing more is enqueued meanwhile.
    let running = Operation {
        id: op.id.clone(),
        app: "auto".into(),
        phase: OperationPhase::Running,
        message: String::new(),
        revision: "c1".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        finished_at: None,
        resources: vec![],
        retry_count: 0,
        source: None,
        dry_run: false,
        initiated_by: String::new(),
        refused: false,
        progress: None,
        self_heal_attempts: 0,
    };
    put_json(&bus, Bucket::Operations, "auto", &running).await;
    settle(&bus, &peers, "auto", 2).await;
    assert_eq!(sync_ops(&bus).await.len(), 1);
    wait_status(&bus, "auto", "operation state", |s| {
        s.operation_state
            .as_ref()
            .is_some_and(|o| o.phase == OperationPhase::Running)
    })
    .await;

    // It failed: the same revision is not tried again.
    let failed = Operation {
        phase: OperationPhase::Failed,
        finished_at: Some("2025-01-01T00:01:00Z".into()),
        ..running.clone()
    };
    put_json(&bus, Bucket::Operations, "auto", &failed).await;
    settle(&bus, &peers, "auto", 2).await;
    assert_eq!(sync_ops(&bus).await.len(), 1);

    // A new commit is, once the git watcher announces it.
    peers.set_commit("HEAD", "c2");
    revision_moved(&bus, "c1", "c2", None).await;
    wait_until("a second sync operation", || async {
        sync_ops(&bus).await.len() == 2
    })
    .await;
    assert_eq!(sync_ops(&bus).await[1].revision, "c2");
}

#[tokio::test]
async fn self_heal_resyncs_drift_and_plain_automation_only_reports_it() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    for name in ["heal", "report"] {
        peers.set_manifests(&format!("apps/{name}"), Ok(vec![config_map("c", "v")]));
        put_json(
            &bus,
            Bucket::Operations,
            name,
            &succeeded(&format!("earlier-{name}"), name, "c1"),
        )
        .await;
    }
    put_app(&bus, &automated(app("heal", "apps/heal"), true)).await;
    put_app(&bus, &automated(app("report", "apps/report"), false)).await;
    let _worker = start_worker(&bus, config("w1"));

    wait_until("a self-heal operation", || async {
        sync_ops(&bus).await.iter().any(|o| o.app == "heal")
    })
    .await;
    wait_status(&bus, "report", "OutOfSync", |s| sync_of(s).0 == "OutOfSync").await;
    settle(&bus, &peers, "report", 2).await;
    assert!(!sync_ops(&bus).await.iter().any(|o| o.app == "report"));

    // The first self-heal of c1 is the first in a row. It succeeds; the drift comes back
    // at once: the second waits Argo CD's backoff (2 s after the first ended).
    let heals = |ops: Vec<SyncOperation>| -> Vec<SyncOperation> {
        ops.into_iter().filter(|o| o.app == "heal").collect()
    };
    let first = heals(sync_ops(&bus).await).remove(0);
    assert_eq!(first.self_heal_attempts, 1);
    let ended = std::time::Instant::now();
    let mut done = succeeded(&first.id, "heal", "c1");
    done.self_heal_attempts = first.self_heal_attempts;
    done.finished_at =
        Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    put_json(&bus, Bucket::Operations, "heal", &done).await;
    live_changed(&bus, "heal").await;
    wait_until("a second self-heal operation", || async {
        heals(sync_ops(&bus).await).len() == 2
    })
    .await;
    assert!(
        ended.elapsed() >= Duration::from_millis(1900),
        "the second self-heal did not wait: {:?}",
        ended.elapsed()
    );
    assert_eq!(heals(sync_ops(&bus).await)[1].self_heal_attempts, 2);
}

#[tokio::test]
async fn user_sync_request_is_answered_with_the_operation() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    peers.set_manifests("apps/manual", Ok(vec![config_map("c", "v")]));
    put_app(&bus, &app("manual", "apps/manual")).await;
    let _worker = start_worker(&bus, config("w1"));
    wait_status(&bus, "manual", "OutOfSync", |s| sync_of(s).0 == "OutOfSync").await;
    assert!(sync_ops(&bus).await.is_empty(), "not automated");

    let subject = bus
        .topology
        .sync_request_subject(partition("manual", APP_PARTITIONS));
    let request = SyncRequest {
        app: "manual".into(),
        prune: true,
        dry_run: false,
        revision: String::new(),
        initiated_by: "alice".into(),
        ..SyncRequest::default()
    };
    let answer = bus
        .client
        .request(subject, serde_json::to_vec(&request).unwrap().into())
        .await
        .unwrap();
    let reply: Reply<String> = serde_json::from_slice(&answer.payload).unwrap();
    let id = reply.into_result().unwrap();
    let ops = sync_ops(&bus).await;
    assert_eq!(ops.len(), 1);
    assert_eq!(
        (ops[0].id.as_str(), ops[0].initiated_by.as_str()),
        (id.as_str(), "alice")
    );
    assert!(ops[0].prune);
    // And the audit trail says who asked.
    let stream = bus
        .js
        .get_stream(bus.topology.stream(StreamName::Audit))
        .await
        .unwrap();
    let last = stream
        .get_last_raw_message_by_subject(&bus.topology.audit_subject("sync"))
        .await
        .unwrap();
    let record: gitfleet_messages::AuditRecord = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(
        (
            record.who.as_str(),
            record.action.as_str(),
            record.object.as_str()
        ),
        ("alice", "sync", "default/manual")
    );
    assert_eq!(record.result, format!("enqueued {id}"));
}

#[tokio::test]
async fn a_commit_elsewhere_in_the_repo_neither_renders_nor_compares_the_app() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    peers.set_manifests("apps/one", Ok(vec![config_map("c", "v")]));
    peers.set_manifests("apps/two", Ok(vec![config_map("d", "v")]));
    put_app(&bus, &app("one", "apps/one")).await;
    put_app(&bus, &app("two", "apps/two")).await;
    let _worker = start_worker(&bus, config("w1"));
    wait_status(&bus, "one", "revision c1", |s| sync_of(s).1 == "c1").await;
    wait_status(&bus, "two", "revision c1", |s| sync_of(s).1 == "c1").await;
    assert_eq!(peers.renders(), 2);

    // Two commits touching only `two`: it is rendered and compared at each; `one` is
    // left alone (a commit costs work for the apps it changes).
    for (from, to) in [("c1", "c2"), ("c2", "c3")] {
        peers.set_commit("HEAD", to);
        revision_moved(&bus, from, to, Some(&["apps/two/cm.yaml"])).await;
        wait_status(&bus, "two", &format!("two at {to}"), |s| sync_of(s).1 == to).await;
    }
    assert_eq!(peers.renders(), 4, "only `two` was rendered again");
    assert_eq!(
        sync_of(&status(&bus, "one").await.unwrap()).1,
        "c1",
        "`one` was compared again for commits that do not touch it"
    );

    // Its next refresh shows the new revision, with the manifests it had: no render.
    publish(
        &bus,
        bus.topology.webhook_subject(),
        &RefreshRequest {
            repo: None,
            app: Some("one".into()),
        },
    )
    .await;
    wait_status(&bus, "one", "revision c3", |s| sync_of(s).1 == "c3").await;
    assert_eq!(
        peers.renders(),
        4,
        "an unrelated commit re-rendered the app"
    );

    peers.set_commit("HEAD", "c4");
    revision_moved(&bus, "c3", "c4", Some(&["apps/one/cm.yaml"])).await;
    wait_status(&bus, "one", "revision c4", |s| sync_of(s).1 == "c4").await;
    assert_eq!(peers.renders(), 5);
}

/// A burst of apps on one branch asks the git watcher what the branch is once, not once
/// per app; a revision event tells the worker the branch moved without asking.
#[tokio::test]
async fn a_burst_on_one_branch_resolves_it_once() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    let names: Vec<String> = (0..20).map(|i| format!("burst-{i}")).collect();
    for name in &names {
        let path = format!("apps/{name}");
        peers.set_manifests(&path, Ok(vec![config_map("c", "v")]));
    }
    let mut config = config("w1");
    // However slow the machine, the branch is not asked again for its age.
    config.revision_cache = Duration::from_secs(600);
    let _worker = start_worker(&bus, config);
    // The first app alone, so the branch is known before the others arrive.
    put_app(&bus, &app(&names[0], &format!("apps/{}", names[0]))).await;
    wait_status(&bus, &names[0], "revision c1", |s| sync_of(s).1 == "c1").await;
    for name in &names[1..] {
        put_app(&bus, &app(name, &format!("apps/{name}"))).await;
    }
    for name in &names {
        wait_status(&bus, name, "revision c1", |s| sync_of(s).1 == "c1").await;
    }
    assert_eq!(peers.resolves(), 1, "one question for the branch");

    // The branch moves: the event says where, every app follows, nobody asks.
    peers.set_commit("HEAD", "c2");
    revision_moved(&bus, "c1", "c2", None).await;
    for name in &names {
        wait_status(&bus, name, "revision c2", |s| sync_of(s).1 == "c2").await;
    }
    assert_eq!(peers.resolves(), 1);
}

#[tokio::test]
async fn a_crashed_workers_apps_are_taken_over() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    let names: Vec<String> = (0..12).map(|i| format!("app-{i}")).collect();
    let manifests = vec![config_map("c", "v")];
    for name in &names {
        let path = format!("apps/{name}");
        peers.set_manifests(&path, Ok(manifests.clone()));
        put_app(&bus, &app(name, &path)).await;
    }
    let worker_a = start_worker(&connect_like(&bus).await, config("w-a"));
    let _worker_b = start_worker(&connect_like(&bus).await, config("w-b"));

    let holder = |name: String| {
        let bus = bus.clone();
        async move {
            read_lease(&bus, DIFF_WORKERS, partition(&name, APP_PARTITIONS))
                .await
                .unwrap()
                .map(|l| l.holder)
        }
    };
    // Both workers hold a share, each app is reported once by its owner.
    wait_until("both workers owning apps", || async {
        let mut holders = BTreeSet::new();
        for name in &names {
            holders.insert(holder(name.clone()).await);
        }
        holders == BTreeSet::from([Some("w-a".to_string()), Some("w-b".to_string())])
    })
    .await;
    for name in &names {
        wait_status(&bus, name, "OutOfSync", |s| sync_of(s).0 == "OutOfSync").await;
    }
    let mut of_a = Vec::new();
    for name in &names {
        if holder(name.clone()).await.as_deref() == Some("w-a") {
            of_a.push(name.clone());
        }
    }
    assert!(!of_a.is_empty());

    // w-a dies without releasing anything; meanwhile every app's live state catches up.
    worker_a.handle.abort();
    let crashed = Instant::now();
    for name in &names {
        let app = app(name, &format!("apps/{name}"));
        peers.set_live(name, Ok(as_live(&app, &manifests)));
        live_changed(&bus, name).await;
    }
    for name in &names {
        wait_status(&bus, name, "Synced", |s| sync_of(s).0 == "Synced").await;
    }
    let took = crashed.elapsed();
    // Lease TTL 2 s; the margin covers expiry markers, takeover and reconciliation.
    assert!(took < Duration::from_secs(12), "takeover took {took:?}");
    for name in &of_a {
        assert_eq!(holder(name.clone()).await.as_deref(), Some("w-b"), "{name}");
    }
}

/// An AppProject's sync windows: an open deny window holds automated sync back and refuses
/// a user's sync, unless it says `manualSync`; once the window is gone, automation goes on.
#[tokio::test]
async fn a_deny_window_holds_syncs_back_and_manual_sync_lets_users_through() {
    use gitfleet_messages::ErrorCode;
    use gitfleet_model::{AppProject, SyncWindow};

    let bus = bus().await;
    let peers = start_peers(&bus).await;
    peers.set_manifests("apps/a", Ok(vec![config_map("c", "v")]));
    peers.set_manifests("apps/m", Ok(vec![config_map("c", "v")]));
    // Always open: fires every minute, lasts an hour.
    let deny = |manual_sync: bool| SyncWindow {
        kind: "deny".into(),
        schedule: "* * * * *".into(),
        duration: "1h".into(),
        applications: vec!["*".into()],
        manual_sync,
        ..SyncWindow::default()
    };
    let mut project = AppProject::default_project("argocd");
    project.spec.sync_windows = vec![deny(false)];
    put_json(&bus, Bucket::Projects, "default", &project).await;
    put_app(&bus, &automated(app("a", "apps/a"), false)).await;
    put_app(&bus, &app("m", "apps/m")).await;
    let _worker = start_worker(&bus, config("w1"));
    wait_status(&bus, "a", "OutOfSync", |s| sync_of(s).0 == "OutOfSync").await;
    wait_status(&bus, "m", "OutOfSync", |s| sync_of(s).0 == "OutOfSync").await;
    settle(&bus, &peers, "a", 2).await;
    assert!(sync_ops(&bus).await.is_empty(), "automated sync held back");

    let ask = |manual: &'static str| {
        let bus = bus.clone();
        async move {
            let subject = bus
                .topology
                .sync_request_subject(partition(manual, APP_PARTITIONS));
            let request = SyncRequest {
                app: manual.into(),
                initiated_by: "alice".into(),
                ..SyncRequest::default()
            };
            let answer = bus
                .client
                .request(subject, serde_json::to_vec(&request).unwrap().into())
                .await
                .unwrap();
            serde_json::from_slice::<Reply<String>>(&answer.payload)
                .unwrap()
                .into_result()
        }
    };
    let refused = ask("m").await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::PermissionDenied);
    assert_eq!(
        refused.message,
        "cannot sync application m: blocked by sync window"
    );

    // manualSync: a user gets through, automation still does not.
    project.spec.sync_windows = vec![deny(true)];
    put_json(&bus, Bucket::Projects, "default", &project).await;
    ask("m").await.unwrap();
    assert_eq!(sync_ops(&bus).await.len(), 1);
    settle(&bus, &peers, "a", 2).await;
    assert!(sync_ops(&bus).await.iter().all(|op| op.app == "m"));

    // The window gone: the automated app syncs.
    project.spec.sync_windows.clear();
    put_json(&bus, Bucket::Projects, "default", &project).await;
    live_changed(&bus, "a").await;
    wait_until("the automated sync", || async {
        sync_ops(&bus).await.iter().any(|op| op.app == "a")
    })
    .await;
}

/// AppProject rules: an app whose source the project does not permit is neither rendered
/// nor synced (InvalidSpecError); a commit that adds a kind the project does not permit
/// holds automated sync back with a SyncError condition naming the rule, and a user's sync
/// is refused with the same words; a project naming nothing that exists is an error.
#[tokio::test]
async fn project_rules_hold_back_what_the_project_does_not_permit() {
    use gitfleet_messages::ErrorCode;
    use gitfleet_model::{AppProject, ObjectMeta};

    let bus = bus().await;
    let peers = start_peers(&bus).await;
    let mut team = AppProject::default_project("argocd");
    team.metadata = ObjectMeta::named("team");
    team.spec.source_repos = vec![REPO.into()];
    // No cluster-scoped kinds at all.
    team.spec.cluster_resource_whitelist.clear();
    put_json(&bus, Bucket::Projects, "team", &team).await;

    let in_team = |mut a: gitfleet_model::Application| {
        a.spec.project = "team".into();
        a
    };
    peers.set_manifests("apps/ok", Ok(vec![config_map("c", "v")]));
    put_app(&bus, &in_team(automated(app("ok", "apps/ok"), false))).await;
    let mut foreign = in_team(automated(app("foreign", "apps/ok"), false));
    foreign.spec.source.as_mut().unwrap().repo_url = "https://elsewhere.example/repo.git".into();
    put_app(&bus, &foreign).await;
    let mut orphan = app("orphan", "apps/ok");
    orphan.spec.project = "nowhere".into();
    put_app(&bus, &orphan).await;
    let _worker = start_worker(&bus, config("w1"));

    wait_until("the permitted app's sync", || async {
        sync_ops(&bus).await.iter().any(|op| op.app == "ok")
    })
    .await;
    // The executor's part: the sync of c1 finished.
    let first = sync_ops(&bus)
        .await
        .into_iter()
        .find(|op| op.app == "ok")
        .unwrap();
    put_json(
        &bus,
        Bucket::Operations,
        "ok",
        &succeeded(&first.id, "ok", "c1"),
    )
    .await;
    let s = wait_status(&bus, "foreign", "an invalid spec", |s| {
        !s.conditions.is_empty()
    })
    .await;
    assert_eq!(s.conditions[0].type_, diff_worker::INVALID_SPEC_ERROR);
    assert_eq!(
        s.conditions[0].message,
        "application spec for foreign is invalid: InvalidSpecError: application repo https://elsewhere.example/repo.git is not permitted in project 'team' (not allowed by spec.sourceRepos)"
    );
    let s = wait_status(&bus, "orphan", "a missing project", |s| {
        !s.conditions.is_empty()
    })
    .await;
    assert_eq!(
        s.conditions[0].message,
        "application spec for orphan is invalid: InvalidSpecError: application references project nowhere which does not exist"
    );

    // A commit adds a Namespace: cluster-scoped, not whitelisted.
    let renders = peers.renders();
    peers.set_manifests(
        "apps/ok",
        Ok(vec![
            config_map("c", "v2"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}),
        ]),
    );
    peers.set_commit("HEAD", "c2");
    revision_moved(&bus, "c1", "c2", Some(&["apps/ok/ns.yaml"])).await;
    let rule = "resource :Namespace is not permitted in project team (not in spec.clusterResourceWhitelist)";
    let s = wait_status(&bus, "ok", "the SyncError condition", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == diff_worker::SYNC_ERROR)
    })
    .await;
    assert!(peers.renders() > renders);
    assert_eq!(s.conditions[0].message, rule);
    let ns = s.resources.iter().find(|r| r.kind == "Namespace").unwrap();
    assert_eq!(ns.status.map(|c| c.to_string()).as_deref(), Some("Unknown"));
    settle(&bus, &peers, "ok", 2).await;
    assert!(
        sync_ops(&bus).await.iter().all(|op| op.revision != "c2"),
        "no sync of the commit the project refuses"
    );

    let subject = bus
        .topology
        .sync_request_subject(partition("ok", APP_PARTITIONS));
    let request = SyncRequest {
        app: "ok".into(),
        initiated_by: "alice".into(),
        ..SyncRequest::default()
    };
    let answer = bus
        .client
        .request(subject, serde_json::to_vec(&request).unwrap().into())
        .await
        .unwrap();
    let refused = serde_json::from_slice::<Reply<String>>(&answer.payload)
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::PermissionDenied);
    assert_eq!(
        refused.message,
        format!("cannot sync application ok: {rule}")
    );

    // The project allows Namespaces now: the automated sync of c2 goes ahead.
    team.spec.cluster_resource_whitelist = vec![gitfleet_model::ClusterResourceRestriction {
        group: String::new(),
        kind: "Namespace".into(),
        name: String::new(),
    }];
    put_json(&bus, Bucket::Projects, "team", &team).await;
    wait_until("the sync of c2", || async {
        sync_ops(&bus)
            .await
            .iter()
            .any(|op| op.app == "ok" && op.revision == "c2")
    })
    .await;
}

/// A sync option Argo CD would not read is a condition naming it and where it is; the
/// others still apply and the sync goes ahead.
#[tokio::test]
async fn an_unknown_sync_option_is_a_condition_and_the_sync_goes_on() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    let mut app = automated(app("typo", "apps/typo"), false);
    app.spec.sync_policy.as_mut().unwrap().sync_options =
        vec!["CreateNamespace=true".into(), "CreateNamspace=true".into()].into();
    let mut cm = config_map("settings", "blue");
    cm["metadata"]["annotations"] = json!({"argocd.argoproj.io/sync-options": "Replce=true"});
    peers.set_manifests("apps/typo", Ok(vec![cm]));
    put_app(&bus, &app).await;
    let _worker = start_worker(&bus, config("w1"));

    let s = wait_status(&bus, "typo", "two warnings", |s| {
        s.conditions
            .iter()
            .filter(|c| c.type_ == diff_worker::SYNC_OPTION_WARNING)
            .count()
            == 2
    })
    .await;
    let messages: Vec<&str> = s.conditions.iter().map(|c| c.message.as_str()).collect();
    assert!(
        messages[0].contains("\"CreateNamspace=true\" in spec.syncPolicy.syncOptions"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("\"Replce=true\" in the argocd.argoproj.io/sync-options annotation")
            && messages[1].contains("settings"),
        "{messages:?}"
    );
    wait_until("the sync goes ahead", || async {
        sync_ops(&bus)
            .await
            .iter()
            .any(|op| op.app == "typo" && op.sync_options.create_namespace())
    })
    .await;
}

/// `argocd-cm`'s system-level `ignoreDifferences` hide their field in every app's
/// comparison, beside the app's own rules; changing argocd-cm compares the apps again.
#[tokio::test]
async fn argocd_cm_ignore_differences_apply_to_every_app() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    let app = app("sys", "apps/sys");
    let manifests = vec![config_map("settings", "blue")];
    peers.set_manifests("apps/sys", Ok(manifests.clone()));
    let mut live = as_live(&app, &manifests);
    live[0]["data"]["k"] = json!("green");
    peers.set_live("sys", Ok(live));
    let settings = bus.kv(Bucket::Settings).await.unwrap();
    let put_cm = |data: serde_json::Value| {
        let (bus, settings) = (bus.clone(), settings.clone());
        async move {
            let body = bus
                .encode_document(Bucket::Settings, "argocd-cm", &data)
                .unwrap();
            settings.put("argocd-cm", body.into()).await.unwrap();
        }
    };
    put_cm(json!({
        "resource.customizations.ignoreDifferences.ConfigMap": "jsonPointers:\n- /data/k\n"
    }))
    .await;
    put_app(&bus, &app).await;
    let _worker = start_worker(&bus, config("w1"));
    wait_status(&bus, "sys", "Synced with the field ignored", |s| {
        sync_of(s).0 == "Synced"
    })
    .await;

    // The rule goes: the app is compared again at once and the difference shows.
    put_cm(json!({"resource.customizations.ignoreDifferences.apps_Deployment": "jsonPointers: [/spec/replicas]"})).await;
    wait_status(&bus, "sys", "OutOfSync without the rule", |s| {
        sync_of(s).0 == "OutOfSync"
    })
    .await;
}

/// jqPathExpressions, app-level and from argocd-cm, evaluated by the gitfleet-jq helper:
/// the selected field is hidden; an expression that never ends is stopped and named in its
/// app's condition while the other app stays Synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_path_expressions_hide_their_fields_and_a_looping_one_is_named() {
    let bus = bus().await;
    let peers = start_peers(&bus).await;
    let rule = |expression: &str| gitfleet_model::ResourceIgnoreDifferences {
        kind: "ConfigMap".into(),
        jq_path_expressions: vec![expression.into()],
        ..Default::default()
    };
    let mut quiet = app("quiet", "apps/quiet");
    quiet.spec.ignore_differences = vec![rule(".data | .k")];
    let mut stuck = app("stuck", "apps/stuck");
    stuck.spec.ignore_differences = vec![rule("def f: f; f")];
    for (a, path) in [(&quiet, "apps/quiet"), (&stuck, "apps/stuck")] {
        let manifests = vec![config_map("settings", "blue")];
        peers.set_manifests(path, Ok(manifests.clone()));
        let mut live = as_live(a, &manifests);
        live[0]["data"]["k"] = json!("green");
        peers.set_live(&a.metadata.name, Ok(live));
        put_app(&bus, a).await;
    }
    let _worker = start_worker(&bus, config("w1"));
    wait_status(&bus, "quiet", "Synced with .data.k ignored", |s| {
        sync_of(s).0 == "Synced"
    })
    .await;
    let s = wait_status(&bus, "stuck", "a condition naming the expression", |s| {
        s.conditions.iter().any(|c| {
            c.type_ == "ComparisonError"
                && c.message.contains("def f: f; f")
                && c.message.contains("time limit")
        })
    })
    .await;
    assert_eq!(sync_of(&s).0, "Unknown");
    assert_eq!(sync_of(&status(&bus, "quiet").await.unwrap()).0, "Synced");
}
