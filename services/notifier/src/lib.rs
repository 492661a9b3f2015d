//! The notifier: reads application events from the `events` stream and POSTs each sync
//! outcome (SyncSucceeded, SyncFailed) as JSON to the configured webhook URLs, retrying
//! with exponential backoff. Triggers and templates (Argo CD notifications) come later.

use std::time::Duration;

use async_nats::jetstream::consumer;
use gitfleet_bus::{Bus, StreamName};
use gitfleet_messages::{AppEvent, AppEventKind};
use tokio_util::sync::CancellationToken;

/// Event kinds that are sent; the rest of the stream is read and acknowledged.
pub const NOTIFIED_KINDS: &[AppEventKind] =
    &[AppEventKind::SyncSucceeded, AppEventKind::SyncFailed];

#[derive(Debug, Clone)]
pub struct Config {
    /// Where every notified event is POSTed.
    pub webhooks: Vec<String>,
    /// The durable consumer's name: replicas sharing it share the work.
    pub consumer: String,
    /// Tries per webhook before the delivery is given up (and logged).
    pub max_attempts: u32,
    /// First retry delay; doubles each try, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            webhooks: Vec::new(),
            consumer: "notifier".into(),
            max_attempts: 8,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("notifier: cannot open the events stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("notifier: http client: {0}")]
    Http(String),
}

pub async fn run(config: Config, bus: Bus, shutdown: CancellationToken) -> Result<(), Error> {
    let stream_name = bus.topology.stream(StreamName::Events);
    let stream_err = |e: &dyn std::fmt::Display| Error::Stream {
        stream: stream_name.clone(),
        message: e.to_string(),
    };
    let http = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .build()
        .map_err(|e| Error::Http(e.to_string()))?;
    let stream = bus
        .js
        .get_stream(&stream_name)
        .await
        .map_err(|e| stream_err(&e))?;
    let consumer = stream
        .get_or_create_consumer(
            &config.consumer,
            consumer::pull::Config {
                durable_name: Some(config.consumer.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                // A delivery may take minutes of retries before it is acknowledged.
                ack_wait: Duration::from_secs(600),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| stream_err(&e))?;
    tracing::info!(webhooks = config.webhooks.len(), "notifier started");
    gitfleet_bus::reopen_forever(
        "notifier: events consumer",
        &shutdown,
        || consumer.messages(),
        |msg| {
            let (http, config, shutdown) = (&http, &config, &shutdown);
            async move {
                match serde_json::from_slice::<AppEvent>(&msg.payload) {
                    Ok(event) if NOTIFIED_KINDS.contains(&event.kind) => {
                        for url in &config.webhooks {
                            deliver(http, config, url, &event, shutdown).await;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(subject = %msg.subject, error = %e, "notifier: skipping an event that is not an AppEvent")
                    }
                }
                if let Err(e) = msg.ack().await {
                    tracing::warn!(error = %e, "notifier: ack failed; the event may be delivered again");
                }
                true
            }
        },
    )
    .await;
    Ok(())
}

/// POSTs one event to one webhook, retrying non-2xx answers and connection errors.
async fn deliver(
    http: &reqwest::Client,
    config: &Config,
    url: &str,
    event: &AppEvent,
    shutdown: &CancellationToken,
) {
    let body = serde_json::json!({
        "app": event.app, "event": event.kind, "message": event.message,
        "revision": event.revision, "time": event.time,
    });
    let mut delay = config.backoff;
    for attempt in 1..=config.max_attempts {
        let outcome = http.post(url).json(&body).send().await;
        match outcome {
            Ok(r) if r.status().is_success() => {
                tracing::info!(app = %event.app, event = %event.kind, %url, attempt, "notification delivered");
                return;
            }
            Ok(r) => {
                tracing::warn!(app = %event.app, %url, attempt, status = %r.status(), "webhook refused the notification")
            }
            Err(e) => {
                tracing::warn!(app = %event.app, %url, attempt, error = %e, "webhook unreachable")
            }
        }
        if attempt == config.max_attempts {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(config.max_backoff);
    }
    tracing::error!(app = %event.app, event = %event.kind, %url, attempts = config.max_attempts, "notification given up");
}
