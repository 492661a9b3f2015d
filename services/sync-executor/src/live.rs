//! Live state out of a cluster's cache: answers `LiveRequest`s for the cluster (with the
//! server-side diff's dry runs and the resource tree when asked) and routes changes of
//! tracked objects, debounced per app, to the app partition's diff worker.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gitfleet_bus::{Backoff, Bus, partition};
use gitfleet_messages::{APP_PARTITIONS, Live, LiveChanged, LiveRequest, ServiceError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterRuntime;

/// Queue group of live-request subscribers: while ownership moves, two executors may
/// briefly both subscribe; only one answers.
const QUEUE: &str = "sync-executors";
/// Live requests answered at once per cluster: each copies the app's objects out of the
/// cache, which is quick; more wait in the subscription.
const MAX_CONCURRENT: usize = 64;
/// How long a live request waits for an unready cache.
const LIVE_WAIT: Duration = Duration::from_secs(2);

/// Answers live requests for `rt`'s cluster until `cancel`.
pub async fn serve(bus: Bus, rt: Arc<ClusterRuntime>, cancel: CancellationToken) {
    let subject = bus.topology.live_request_subject(&rt.name);
    serve_cluster(
        bus,
        rt,
        subject,
        MAX_CONCURRENT,
        cancel,
        |rt, _, req: LiveRequest| async move { answer(&rt, &req).await },
    )
    .await;
}

/// Answers the requests on one of `rt`'s cluster subjects with `handler` until `cancel`,
/// subscribing again after a failure. Queue group [`QUEUE`]: while ownership moves, two
/// executors may briefly both subscribe; only one answers.
pub(crate) async fn serve_cluster<Q, A, F, Fut>(
    bus: Bus,
    rt: Arc<ClusterRuntime>,
    subject: String,
    max_concurrent: usize,
    cancel: CancellationToken,
    handler: F,
) where
    Q: serde::de::DeserializeOwned + Send + 'static,
    A: serde::Serialize + Send + 'static,
    F: Fn(Arc<ClusterRuntime>, Bus, Q) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<A, ServiceError>> + Send + 'static,
{
    let mut backoff = Backoff::reopen();
    loop {
        let sub = match bus
            .client
            .queue_subscribe(subject.clone(), QUEUE.to_string())
            .await
        {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(cluster = %rt.name, %subject, error = %err, "subscribing failed");
                if !backoff.wait(&cancel).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        let (rt, handler, answering) = (rt.clone(), handler.clone(), bus.clone());
        gitfleet_bus::serve(
            bus.clone(),
            sub,
            max_concurrent,
            cancel.clone(),
            move |req: Q| handler(rt.clone(), answering.clone(), req),
        )
        .await;
        if cancel.is_cancelled() {
            return;
        }
    }
}

async fn answer(rt: &ClusterRuntime, req: &LiveRequest) -> Result<Live, ServiceError> {
    // A question about live state is answered within its asker's timeout: a cluster
    // still unlistable after a short wait is reported as it is (the asker tries again),
    // rather than holding the request for the whole cache wait a sync allows.
    rt.ensure_reachable(rt.config.cache_wait.min(LIVE_WAIT))
        .await
        .map_err(ServiceError::unavailable)?;
    let predicted = if req.server_side_diff.is_empty() {
        Vec::new()
    } else {
        crate::dry_run::answer(rt, &req.server_side_diff, req.fresh_dry_runs).await
    };
    let resources = rt.cache.app_objects(&req.app);
    let tree = if req.resource_tree {
        tree(rt, &resources).await?
    } else {
        Vec::new()
    };
    Ok(Live {
        resources,
        namespaces: rt.cache.namespaces(),
        predicted,
        tree,
    })
}

/// The app's resource tree: its objects, and what they own in their namespaces, listed
/// from the cluster now (the cache holds tracked objects only; a tree is asked for by a
/// user, not by every comparison).
async fn tree(
    rt: &ClusterRuntime,
    resources: &[serde_json::Value],
) -> Result<Vec<gitfleet_model::ResourceNode>, ServiceError> {
    use futures::StreamExt as _;
    let namespaces: BTreeSet<String> = resources
        .iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str())
        .map(str::to_owned)
        .collect();
    let mut lists = Vec::new();
    for kind in rt.cache.namespaced_kinds() {
        for ns in &namespaces {
            lists.push((kind.clone(), ns.clone()));
        }
    }
    let listed: Vec<Result<Vec<serde_json::Value>, ServiceError>> = futures::stream::iter(lists)
        .map(|(kind, ns)| async move {
            let list = rt
                .call(|client| {
                    let api = crate::executor::api(client, &kind, &ns);
                    async move { api.list(&kube::api::ListParams::default()).await }
                })
                .await
                .map_err(|e| {
                    e.service_error(&format!("listing {} in {ns}", kind.resource.plural))
                })?;
            Ok(list
                .items
                .into_iter()
                .filter(|o| {
                    !o.metadata
                        .owner_references
                        .as_ref()
                        .is_none_or(Vec::is_empty)
                })
                .filter_map(|o| {
                    let mut v = serde_json::to_value(o).ok()?;
                    // Only what a node shows is kept: a Secret's data never leaves here.
                    v.as_object_mut()?.retain(|k, _| {
                        matches!(
                            k.as_str(),
                            "apiVersion" | "kind" | "metadata" | "status" | "spec"
                        )
                    });
                    if v["kind"] == "Secret" {
                        v.as_object_mut()?.remove("spec");
                    }
                    Some(v)
                })
                .collect())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut others = Vec::new();
    for list in listed {
        others.extend(list?);
    }
    let checks = rt
        .config
        .health_checks
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default();
    Ok(gitfleet_engine::tree::resource_tree(
        resources, &others, &checks,
    ))
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
