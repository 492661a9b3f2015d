//! The git-watcher service over a real nats-server and a real `git daemon`: apps in KV are
//! followed, moves are published (on webhook at once, or by polling), and the resolve and
//! files requests are answered.

mod common;

use std::time::{Duration, Instant};

use common::{GitDaemon, fixture};
use futures::StreamExt;
use gitfleet_bus::testkit;
use gitfleet_bus::{Bucket, Bus, subject_token};
use gitfleet_messages::{
    ErrorCode, Files, FilesRequest, RefreshRequest, Reply, ResolveRequest, Resolved, RevisionEvent,
    ServiceError,
};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

fn app(name: &str, repo: &str, revision: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "path": "apps/a", "targetRevision": revision},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "default"}
        }
    })
}

async fn put_app(bus: &Bus, name: &str, value: serde_json::Value) {
    let kv = bus.kv(Bucket::Applications).await.unwrap();
    kv.put(
        subject_token(name),
        serde_json::to_vec(&value).unwrap().into(),
    )
    .await
    .unwrap();
}

/// The service under test, stopped (and awaited) on drop of the guard's token.
struct Running {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), git_watcher::Error>>,
    _mirrors: tempfile::TempDir,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("service stops on shutdown")
            .unwrap()
            .unwrap();
    }
}

async fn start(bus: &Bus, poll: Duration) -> Running {
    let mirrors = tempfile::tempdir().unwrap();
    let mut config = git_watcher::Config::new(mirrors.path());
    config.poll_interval = poll;
    config.poll_jitter = Duration::ZERO;
    config.fetch_timeout = Duration::from_secs(20);
    let shutdown = CancellationToken::new();
    // Once started, its subscriptions and watches exist.
    let service = git_watcher::start(config, bus.clone(), shutdown.clone())
        .await
        .expect("git-watcher starts");
    let handle = tokio::spawn(service.wait());
    Running {
        shutdown,
        handle,
        _mirrors: mirrors,
    }
}

async fn next_event(events: &mut gitfleet_bus::async_nats::Subscriber) -> RevisionEvent {
    let message = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("a revision event within 20 s")
        .expect("subscription open");
    serde_json::from_slice(&message.payload).unwrap()
}

async fn request<Req: serde::Serialize, Resp: DeserializeOwned>(
    bus: &Bus,
    subject: String,
    body: &Req,
) -> Reply<Resp> {
    let message = tokio::time::timeout(
        Duration::from_secs(30),
        bus.client
            .request(subject, serde_json::to_vec(body).unwrap().into()),
    )
    .await
    .expect("reply in time")
    .expect("reply");
    let body = bus.read_payload(&message).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_apps_acts_on_webhooks_and_answers_requests() {
    let fx = fixture();
    let up = &fx.upstream;
    let daemon = GitDaemon::serve(&up.base());
    let repo = daemon.url("origin.git");
    let bus = testkit::bus().await;
    let prefix = bus.topology.prefix().to_owned();
    let mut events = bus
        .client
        .subscribe(format!("{prefix}.revision.>"))
        .await
        .unwrap();

    put_app(&bus, "web", app("web", &repo, "main")).await;
    // A long poll interval: every event below comes from subscribing or a webhook.
    let running = start(&bus, Duration::from_secs(3600)).await;

    let first = next_event(&mut events).await;
    assert_eq!(
        first,
        RevisionEvent {
            repo: repo.clone(),
            target_revision: "main".into(),
            from: None,
            to: fx.second.clone(),
            changed_paths: None,
        }
    );

    // A second app on the same (repo, revision) hears the current commit too.
    put_app(&bus, "web-2", app("web-2", &repo, "main")).await;
    let joined = next_event(&mut events).await;
    assert_eq!((joined.from, joined.to), (None, fx.second.clone()));

    // A push, then a webhook naming the repository in another spelling.
    up.write(
        "apps/a/deploy.yaml",
        "kind: Deployment\nspec: {replicas: 2}\n",
    );
    up.write("apps/a/big.yaml", &"# padding\n".repeat(150_000));
    let third = up.commit("third");
    up.push_all();
    let webhook_at = Instant::now();
    let alias = format!("git://127.0.0.1:{}/origin/", daemon.port);
    bus.client
        .publish(
            bus.topology.webhook_subject(),
            serde_json::to_vec(&RefreshRequest {
                repo: Some(alias),
                app: None,
            })
            .unwrap()
            .into(),
        )
        .await
        .unwrap();
    let moved = next_event(&mut events).await;
    let took = webhook_at.elapsed();
    assert_eq!(moved.repo, repo);
    assert_eq!(moved.from.as_deref(), Some(fx.second.as_str()));
    assert_eq!(moved.to, third);
    assert_eq!(
        moved.changed_paths,
        Some(vec![
            "apps/a/big.yaml".to_owned(),
            "apps/a/deploy.yaml".to_owned()
        ])
    );
    assert!(
        took < Duration::from_secs(5),
        "webhook to event took {took:?}"
    );

    // Resolve: branch, tag, unknown.
    let resolve = |revision: &str| ResolveRequest {
        chart: String::new(),
        repo: repo.clone(),
        revision: revision.into(),
    };
    let subject = bus.topology.git_resolve_subject();
    let main: Reply<Resolved> = request(&bus, subject.clone(), &resolve("main")).await;
    assert_eq!(
        main,
        Reply::Ok(Resolved {
            commit: third.clone()
        })
    );
    let v1: Reply<Resolved> = request(&bus, subject.clone(), &resolve("v1")).await;
    assert_eq!(
        v1,
        Reply::Ok(Resolved {
            commit: fx.first.clone()
        })
    );
    let nope: Reply<Resolved> = request(&bus, subject.clone(), &resolve("nope")).await;
    assert_eq!(
        nope,
        Reply::Error(ServiceError::not_found(format!(
            "revision \"nope\" not found in {repo}"
        )))
    );

    // Files: a reply over the message size limit travels through the payload store.
    let files: Reply<Files> = request(
        &bus,
        bus.topology.git_files_subject(),
        &FilesRequest {
            chart: String::new(),
            repo: repo.clone(),
            commit: third.clone(),
            path: "apps".into(),
            recurse: true,
            pass_credentials: false,
        },
    )
    .await;
    let files = files.into_result().unwrap().files;
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["apps/a/big.yaml", "apps/a/deploy.yaml", "apps/b/cm.yaml"]
    );
    assert_eq!(files[1].content, "kind: Deployment\nspec: {replicas: 2}\n");
    assert_eq!(files[0].content.len(), 1_500_000);

    // Files at a path that does not exist: an error reply, not a hang.
    let missing: Reply<Files> = request(
        &bus,
        bus.topology.git_files_subject(),
        &FilesRequest {
            chart: String::new(),
            repo: repo.clone(),
            commit: third.clone(),
            path: "nowhere".into(),
            recurse: false,
            pass_credentials: false,
        },
    )
    .await;
    assert!(
        matches!(&missing, Reply::Error(e)
            if e.code == ErrorCode::NotFound && e.message.contains("\"nowhere\" not found")),
        "{missing:?}"
    );

    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_finds_pushes_without_webhooks() {
    let fx = fixture();
    let up = &fx.upstream;
    let daemon = GitDaemon::serve(&up.base());
    let repo = daemon.url("origin.git");
    let bus = testkit::bus().await;
    let mut events = bus
        .client
        .subscribe(format!("{}.revision.>", bus.topology.prefix()))
        .await
        .unwrap();
    let running = start(&bus, Duration::from_millis(300)).await;
    // Written after the start: the service follows the bucket live, not only at start.
    put_app(&bus, "web", app("web", &repo, "v1")).await;
    put_app(&bus, "api", app("api", &repo, "main")).await;

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = next_event(&mut events).await;
        assert_eq!(event.from, None);
        seen.push((event.target_revision, event.to));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("main".to_owned(), fx.second.clone()),
            ("v1".to_owned(), fx.first.clone())
        ]
    );

    up.write("apps/b/cm.yaml", "kind: ConfigMap\ndata: {a: b}\n");
    let third = up.commit("third");
    up.push_all();
    let moved = next_event(&mut events).await;
    assert_eq!(
        (
            moved.target_revision.as_str(),
            moved.from.as_deref(),
            moved.to.as_str()
        ),
        ("main", Some(fx.second.as_str()), third.as_str())
    );
    assert_eq!(moved.changed_paths, Some(vec!["apps/b/cm.yaml".to_owned()]));

    // Once no app follows the repository, pushes are no longer reported.
    let kv = bus.kv(Bucket::Applications).await.unwrap();
    kv.delete(subject_token("api")).await.unwrap();
    kv.delete(subject_token("web")).await.unwrap();
    // Time-driven: the watcher shows nothing when it drops a repository, so this gives its
    // KV watch time to deliver the deletes. Were one late, the event below would arrive
    // and fail the test loudly; it cannot make the test pass wrongly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    up.write("apps/b/cm.yaml", "kind: ConfigMap\ndata: {a: c}\n");
    up.commit("fourth");
    up.push_all();
    let quiet = tokio::time::timeout(Duration::from_millis(1500), events.next()).await;
    assert!(quiet.is_err(), "unexpected event: {quiet:?}");

    running.stop().await;
}

/// One revision check per repository per poll, however many apps follow it: 1,000 apps on
/// one repository (all on `main`, a tenth pinned to `v1`), polled every 300 ms; the
/// daemon's own log counts the fetches. The figure goes to BENCHMARKS.md.
#[tokio::test]
async fn a_thousand_apps_on_one_repository_cost_one_check_per_poll() {
    const APPS: usize = 1000;
    let poll = Duration::from_millis(300);
    let fx = fixture();
    let log = fx.upstream.base().join("daemon.log");
    let daemon = GitDaemon::serve_logged(&fx.upstream.base(), &log);
    let repo = daemon.url("origin.git");
    let bus = testkit::bus().await;
    let mut events = bus
        .client
        .subscribe(format!("{}.revision.>", bus.topology.prefix()))
        .await
        .unwrap();
    let running = start(&bus, poll).await;
    for i in 0..APPS {
        let revision = if i % 10 == 0 { "v1" } else { "main" };
        put_app(
            &bus,
            &format!("app-{i}"),
            app(&format!("app-{i}"), &repo, revision),
        )
        .await;
    }
    // Both subscriptions are followed once each has been announced.
    let mut announced = std::collections::BTreeSet::new();
    while announced.len() < 2 {
        announced.insert(next_event(&mut events).await.target_revision);
    }

    let before = GitDaemon::upload_packs(&log, "origin.git");
    let window_start = Instant::now();
    // A measuring window, not a wait for a condition: the count below is bounded by the
    // number of polls that fit in it, whatever the machine's speed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = window_start.elapsed();
    let checks = GitDaemon::upload_packs(&log, "origin.git") - before;
    let polls = (window.as_secs_f64() / poll.as_secs_f64()).ceil() as usize + 1;
    println!(
        "{APPS} apps on one repository: {checks} revision checks in {:.1} s of {} ms polls ({:.2} per poll)",
        window.as_secs_f64(),
        poll.as_millis(),
        checks as f64 / (window.as_secs_f64() / poll.as_secs_f64())
    );
    assert!(checks >= 1, "the repository was not polled at all");
    assert!(
        checks <= polls,
        "{checks} fetches in {window:?}: more than one per {poll:?} poll"
    );

    // And a push is still seen by every subscription through that one check.
    fx.upstream
        .write("apps/a/cm.yaml", "kind: ConfigMap\ndata: {a: z}\n");
    let moved_to = fx.upstream.commit("for a thousand apps");
    fx.upstream.push_all();
    // (Announcements to apps that joined a followed subscription may still be queued.)
    let moved = loop {
        let event = next_event(&mut events).await;
        if event.to == moved_to {
            break event;
        }
    };
    assert_eq!(moved.target_revision, "main");
    running.stop().await;
}
