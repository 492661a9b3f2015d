//! Live state out of a cluster's cache: answers `LiveRequest`s for the cluster and routes
//! changes of tracked objects, debounced per app, to the app partition's diff worker.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gitfleet_bus::async_nats::HeaderMap;
use gitfleet_bus::{Bus, partition, subject_token};
use gitfleet_messages::{
    APP_PARTITIONS, Live, LiveChanged, LiveRequest, Reply, live_request_subject,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterRuntime;

/// Queue group of live-request subscribers: while ownership moves, two executors may
/// briefly both subscribe; only one answers.
const QUEUE: &str = "sync-executors";

/// Answers live requests for `rt`'s cluster until `cancel`.
pub async fn serve(bus: Bus, rt: Arc<ClusterRuntime>, cancel: CancellationToken) {
    let subject = live_request_subject(bus.topology.prefix(), &subject_token(&rt.name));
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut sub = match bus
            .client
            .queue_subscribe(subject.clone(), QUEUE.to_string())
            .await
        {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(cluster = %rt.name, %subject, error = %err, "subscribing to live requests failed");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => {
                    let _ = sub.unsubscribe().await;
                    return;
                }
                m = sub.next() => m,
            };
            let Some(msg) = msg else { break };
            let Some(reply_to) = msg.reply.clone() else {
                continue;
            };
            let bus = bus.clone();
            let rt = rt.clone();
            tokio::spawn(async move {
                let reply: Reply<Live> = match serde_json::from_slice::<LiveRequest>(&msg.payload) {
                    Ok(req) => answer(&rt, &req).await,
                    Err(err) => Reply::Error(format!("invalid live request: {err}")),
                };
                let body = Bytes::from(serde_json::to_vec(&reply).unwrap_or_default());
                match bus.offload(HeaderMap::new(), body).await {
                    Ok((headers, body)) => {
                        if let Err(err) = bus
                            .client
                            .publish_with_headers(reply_to, headers, body)
                            .await
                        {
                            tracing::warn!(cluster = %rt.name, error = %err, "answering live request failed");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(cluster = %rt.name, error = %err, "storing large live reply failed");
                        let body = serde_json::to_vec(&Reply::<Live>::Error(format!(
                            "cluster {}: storing the reply failed: {err}",
                            rt.name
                        )))
                        .unwrap_or_default();
                        let _ = bus.client.publish(reply_to, body.into()).await;
                    }
                }
            });
        }
    }
}

async fn answer(rt: &ClusterRuntime, req: &LiveRequest) -> Reply<Live> {
    if let Err(err) = rt.ensure_reachable().await {
        return Reply::Error(err);
    }
    Reply::Ok(Live {
        resources: rt.cache.app_objects(&req.app),
        namespaces: rt.cache.namespaces(),
    })
}

/// Publishes `LiveChanged` for the apps received on `changes`, at most one per app per
/// `window`.
pub async fn route_changes(
    bus: Bus,
    cluster: String,
    mut changes: mpsc::UnboundedReceiver<String>,
    window: Duration,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            a = changes.recv() => a,
        };
        let Some(first) = first else { return };
        let mut apps = BTreeSet::from([first]);
        let deadline = tokio::time::Instant::now() + window;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => break,
                a = changes.recv() => match a {
                    Some(a) => { apps.insert(a); }
                    None => break,
                },
            }
        }
        for app in apps {
            let subject = bus.topology.live_subject(partition(&app, APP_PARTITIONS));
            let body = serde_json::to_vec(&LiveChanged { app: app.clone() }).unwrap_or_default();
            if let Err(err) = bus.client.publish(subject, body.into()).await {
                tracing::debug!(%cluster, %app, error = %err, "publishing live change failed");
            }
        }
    }
}
