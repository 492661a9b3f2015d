//! The Application's sync options reach the sync that applies them: `PruneLast=true` in
//! `syncPolicy.syncOptions` makes the prune wait until every wave is applied, as the
//! emulator's write log shows.

use std::time::Duration;

use gitfleet_e2e::{AUTOMATED, Sandbox, Timings, application};

const CM_A: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n";
const CM_OLD: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\ndata:\n  k: v\n";
const CM_B_WAVE_1: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\ndata:\n  k: v\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_level_prune_last_prunes_after_the_last_wave() {
    let sb = Sandbox::start(
        &[("app/a.yaml", CM_A), ("app/old.yaml", CM_OLD)],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    let yaml = application("last", &sb.repo_url(), "app", Some(AUTOMATED)).replace(
        "    - CreateNamespace=true\n",
        "    - CreateNamespace=true\n    - PruneLast=true\n",
    );
    assert!(yaml.contains("PruneLast=true"), "{yaml}");
    sb.create_app("last", &yaml).await;
    sb.until_status("last", 60, "Synced", |s| {
        Sandbox::sync_status(s) == "Synced"
    })
    .await;
    assert!(sb.live("", "configmaps", "last", "old").is_some());

    // One commit drops `old` (wave 0) and adds `b` in wave 1. Without PruneLast, `old`
    // would be pruned in its own wave 0, before `b` is applied.
    sb.sim.cluster(0).clear_write_log();
    let commit = sb.commit(
        &[("app/old.yaml", None), ("app/b.yaml", Some(CM_B_WAVE_1))],
        "drop old, add b in wave 1",
    );
    assert!(sb.github_push().await.is_success());
    sb.until_status("last", 60, "Synced at the new commit", |s| {
        Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == commit
    })
    .await;
    sb.until(30, "old to be pruned", |sb| {
        sb.live("", "configmaps", "last", "old").is_none()
    })
    .await;

    let log = sb.sim.cluster(0).write_log();
    let seq_of = |verb: &str, name: &str| {
        log.iter()
            .find(|w| w.verb == verb && w.name.as_deref() == Some(name) && !w.dry_run)
            .map(|w| w.seq)
            .unwrap_or_else(|| panic!("no {verb} of {name} in the write log: {log:#?}"))
    };
    let applied_b = seq_of("apply", "b");
    let pruned_old = seq_of("delete", "old");
    assert!(
        pruned_old > applied_b,
        "PruneLast: the prune (#{pruned_old}) must follow the last wave's apply (#{applied_b})"
    );
}

/// `app sync --resource` syncs the named resources only, `--sync-option` adds an option for
/// this sync, and `app wait` waits for Synced and Healthy (or says what it saw when its
/// timeout runs out), as `argocd app sync` and `argocd app wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn selective_sync_options_per_sync_and_wait() {
    use gitfleet_e2e::{CONFIGMAP, DEPLOYMENT};

    let sb = Sandbox::start(
        &[("app/cm.yaml", CONFIGMAP), ("app/deploy.yaml", DEPLOYMENT)],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app("sel", &application("sel", &sb.repo_url(), "app", None))
        .await;
    sb.until_status("sel", 60, "OutOfSync", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
    })
    .await;

    // The ConfigMap alone (CreateNamespace still makes its namespace, as in Argo CD).
    let one = sb
        .cli(&[
            "app",
            "sync",
            "sel",
            "--resource",
            ":ConfigMap:sel/web-config",
        ])
        .await;
    assert_eq!(one.code, 0, "{}", one.stdout);
    assert!(sb.live("", "configmaps", "sel", "web-config").is_some());
    assert!(
        sb.live("apps", "deployments", "sel", "web").is_none(),
        "only the named resource is synced"
    );
    let bad = sb
        .cli(&["app", "sync", "sel", "--resource", "Deployment"])
        .await;
    assert_ne!(bad.code, 0);
    assert!(bad.stdout.contains("GROUP:KIND:NAME"), "{}", bad.stdout);

    // Still OutOfSync: a short wait gives up and says so.
    let waited = sb
        .cli(&["app", "wait", "sel", "--sync", "--timeout", "2"])
        .await;
    assert_ne!(waited.code, 0);
    assert!(waited.stdout.contains("OutOfSync"), "{}", waited.stdout);

    // The rest, with an option for this sync only; then wait for Synced and Healthy.
    sb.sim.cluster(0).clear_write_log();
    let all = sb
        .cli(&["app", "sync", "sel", "--sync-option", "Replace=true"])
        .await;
    assert_eq!(all.code, 0, "{}", all.stdout);
    let verbs: Vec<(String, String)> = sb
        .sim
        .cluster(0)
        .write_log()
        .into_iter()
        .filter(|w| w.name.as_deref() == Some("web"))
        .map(|w| (w.resource, w.verb))
        .collect();
    assert!(
        verbs.contains(&("deployments.apps".to_string(), "create".to_string())),
        "Replace=true creates what is not live: {verbs:?}"
    );
    let waited = sb.cli(&["app", "wait", "sel", "--timeout", "60"]).await;
    assert_eq!(waited.code, 0, "{}", waited.stdout);
    assert!(
        waited.stdout.contains("Synced") && waited.stdout.contains("Healthy"),
        "{}",
        waited.stdout
    );
}

async fn operation_message(sb: &Sandbox, app: &str) -> String {
    let kv = sb
        .bus
        .kv(gitfleet_bus::Bucket::Operations)
        .await
        .expect("operations bucket");
    let Ok(Some(body)) = kv.get(gitfleet_bus::subject_token(app)).await else {
        return String::new();
    };
    serde_json::from_slice::<gitfleet_messages::Operation>(&body)
        .map(|op| op.message)
        .unwrap_or_default()
}

/// Waits until app `guard`'s operation says it waits for the confirmation of `resource`.
async fn until_waiting(sb: &Sandbox, what: &str, resource: &str) {
    let want = format!("waiting for pruning confirmation of {resource}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !operation_message(sb, "guard").await.contains(&want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never waited: {}",
            operation_message(sb, "guard").await
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Approvals count in whole seconds, as Argo CD compares them: waits until the clock is
/// past the second of app `guard`'s last approval, so an operation started now is not
/// confirmed by it.
async fn past_the_approval(sb: &Sandbox) {
    let app = sb.stored_app("guard").await.expect("the app");
    let approved_at = chrono::DateTime::parse_from_rfc3339(
        app["metadata"]["annotations"]["argocd.argoproj.io/deletion-approved"]
            .as_str()
            .expect("an approval"),
    )
    .expect("an RFC 3339 approval")
    .timestamp();
    while chrono::Utc::now().timestamp() <= approved_at {
        // Poll interval of a wait for the clock's next second (at most one second).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `Prune=confirm` and `Delete=confirm`, as Argo CD: the sync (or the cascade delete)
/// waits, Running with "waiting for pruning confirmation of ...", until `app
/// confirm-deletion` sets the app's `argocd.argoproj.io/deletion-approved`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_and_delete_wait_for_confirmation() {
    const CRITICAL: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: critical\n  annotations:\n    argocd.argoproj.io/sync-options: Prune=confirm\ndata:\n  k: v\n";
    const GUARDED: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    argocd.argoproj.io/sync-options: Delete=confirm\ndata:\n  k: v\n";
    let spare = CRITICAL.replace("name: critical", "name: spare");
    let sb = Sandbox::start(
        &[
            ("app/a.yaml", GUARDED),
            ("app/critical.yaml", CRITICAL),
            ("app/spare.yaml", &spare),
        ],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app("guard", &application("guard", &sb.repo_url(), "app", None))
        .await;
    assert_eq!(sb.cli(&["app", "sync", "guard"]).await.code, 0);
    sb.commit(&[("app/critical.yaml", None)], "drop critical");
    assert!(sb.github_push().await.is_success());
    sb.until_status("guard", 60, "OutOfSync", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
    })
    .await;

    let (synced, ()) = tokio::join!(sb.cli(&["app", "sync", "guard", "--prune"]), async {
        until_waiting(&sb, "the sync", "/ConfigMap/critical").await;
        assert!(
            sb.live("", "configmaps", "guard", "critical").is_some(),
            "pruned before it was confirmed"
        );
        let confirmed = sb.cli(&["app", "confirm-deletion", "guard"]).await;
        assert_eq!(confirmed.code, 0, "{}", confirmed.stdout);
        assert!(confirmed.stdout.contains("updated successfully"));
    });
    assert_eq!(synced.code, 0, "{}", synced.stdout);
    assert!(sb.live("", "configmaps", "guard", "critical").is_none());
    // Confirmed with the sync itself: no wait. The approval above must not carry it, so
    // the sync starts in a later second (without --prune-confirm it would wait for good).
    past_the_approval(&sb).await;
    sb.commit(&[("app/spare.yaml", None)], "drop spare");
    assert!(sb.github_push().await.is_success());
    sb.until_status("guard", 60, "OutOfSync", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
    })
    .await;
    let synced = sb
        .cli(&["app", "sync", "guard", "--prune", "--prune-confirm"])
        .await;
    assert_eq!(synced.code, 0, "{}", synced.stdout);
    assert!(sb.live("", "configmaps", "guard", "spare").is_none());

    let approved = sb.stored_app("guard").await.expect("the app");
    assert!(
        approved["metadata"]["annotations"]["argocd.argoproj.io/deletion-approved"].is_string(),
        "{approved}"
    );

    // Deleting the app: `a` says Delete=confirm, and the approval above came before this
    // operation started, so it does not count.
    past_the_approval(&sb).await;
    let (deleted, ()) = tokio::join!(sb.cli(&["app", "delete", "guard"]), async {
        until_waiting(&sb, "the cascade delete", "/ConfigMap/a").await;
        assert!(sb.live("", "configmaps", "guard", "a").is_some());
        let confirmed = sb.cli(&["app", "confirm-deletion", "guard"]).await;
        assert_eq!(confirmed.code, 0, "{}", confirmed.stdout);
    });
    assert_eq!(deleted.code, 0, "{}", deleted.stdout);
    assert!(sb.live("", "configmaps", "guard", "a").is_none());
    assert!(sb.stored_app("guard").await.is_none());
}
