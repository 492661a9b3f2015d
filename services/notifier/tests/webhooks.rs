//! Sync outcomes on the real event stream reach a webhook, retried through failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use gitfleet_messages::{AppEvent, AppEventKind};
use serde_json::Value;

/// What the test webhook got, in order.
type Received = Arc<std::sync::Mutex<Vec<Value>>>;

fn event(app: &str, kind: AppEventKind) -> AppEvent {
    AppEvent {
        app: app.into(),
        kind,
        message: format!("{kind} for {app}"),
        revision: "abc123".into(),
        sync_status: None,
        time: "2026-11-29T20:00:00Z".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_outcomes_are_posted_and_retried() {
    let bus = gitfleet_bus::testkit::bus().await;
    bus.ensure().await.unwrap();
    // A webhook that fails its first two calls.
    let received: Received = Default::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, c) = (received.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |Json(v): Json<Value>| {
            let (r, c) = (r.clone(), c.clone());
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                r.lock().unwrap().push(v);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    for e in [
        event("web", AppEventKind::SyncSucceeded),
        event("web", AppEventKind::OutOfSync),
        event("api", AppEventKind::SyncFailed),
    ] {
        let subject = bus.topology.event_subject(&e.app);
        bus.js
            .publish(subject, serde_json::to_vec(&e).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = notifier::Config {
        webhooks: vec![url],
        backoff: Duration::from_millis(50),
        ..Default::default()
    };
    let task = tokio::spawn(notifier::run(config, bus.clone(), shutdown.clone()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while received.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhook got {:?}",
            received.lock().unwrap()
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = received.lock().unwrap().clone();
    let events: Vec<(&str, &str)> = got
        .iter()
        .map(|v| (v["app"].as_str().unwrap(), v["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        vec![("web", "SyncSucceeded"), ("api", "SyncFailed")],
        "OutOfSync is not a notified kind"
    );
    assert_eq!(got[0]["revision"], "abc123");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "two refusals, then one call per event"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
