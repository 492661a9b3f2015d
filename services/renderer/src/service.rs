//! The renderer as a bus service: answers `RenderRequest`s on the render subject (queue
//! group `renderer`), reading the files through the git-watcher and rendering them with
//! [`render_directory`], with a cache and single flight in front.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gitfleet_bus::async_nats::{self, HeaderMap};
use gitfleet_bus::{Bus, BusError};
use gitfleet_messages::{Files, FilesRequest, RenderRequest, Rendered, Reply, git_files_subject};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cache::RenderCache;
use crate::directory::{DirectoryOptions, render_directory};

const QUEUE_GROUP: &str = "renderer";

#[derive(Debug, Clone)]
pub struct Config {
    /// Renders worked on at once; more wait in the subscription (and other replicas take them).
    pub max_concurrent_renders: usize,
    pub cache_entries: usize,
    /// Upper bound on the serialized replies kept.
    pub cache_bytes: usize,
    /// How long to wait for the git-watcher's files (a cold mirror fetches first).
    pub files_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_concurrent_renders: 8,
            cache_entries: 4096,
            cache_bytes: 256 << 20,
            files_timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bus(#[from] BusError),

    #[error("subscribing to {subject}")]
    Subscribe {
        subject: String,
        #[source]
        source: async_nats::SubscribeError,
    },
}

/// What identifies a render's result: the inputs of the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    repo: String,
    commit: String,
    options: DirectoryOptions,
}

/// Runs until `shutdown` is cancelled; renders already taken are answered first.
pub async fn run(config: Config, bus: Bus, shutdown: CancellationToken) -> Result<(), Error> {
    let subject = bus.topology.render_subject();
    let mut subscriber = bus
        .client
        .queue_subscribe(subject.clone(), QUEUE_GROUP.to_owned())
        .await
        .map_err(|source| Error::Subscribe {
            subject: subject.clone(),
            source,
        })?;
    let cache = Arc::new(RenderCache::new(config.cache_entries, config.cache_bytes));
    let permits = Arc::new(Semaphore::new(config.max_concurrent_renders.max(1)));
    let mut tasks = JoinSet::new();
    tracing::info!(subject, "renderer running");
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        while tasks.try_join_next().is_some() {}
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let bus = bus.clone();
        let cache = cache.clone();
        let files_timeout = config.files_timeout;
        tasks.spawn(async move {
            let _permit = permit;
            let body = match bus.read_payload(&message).await {
                Ok(body) => match serde_json::from_slice::<RenderRequest>(&body) {
                    Ok(request) => handle(&bus, &cache, request, files_timeout).await,
                    Err(err) => error_body(format!("invalid render request: {err}")),
                },
                Err(err) => error_body(format!("reading render request: {err}")),
            };
            respond(&bus, reply_to, body).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!("renderer stopped");
    Ok(())
}

/// The serialized reply (`Reply<Rendered>`) for one request.
async fn handle(
    bus: &Bus,
    cache: &RenderCache<Key>,
    request: RenderRequest,
    files_timeout: Duration,
) -> Bytes {
    let options = DirectoryOptions {
        path: request.path.clone(),
        recurse: request.recurse,
        include: request.include.clone(),
        exclude: request.exclude.clone(),
    };
    let key = Key {
        repo: request.repo.clone(),
        commit: request.commit.clone(),
        options: options.clone(),
    };
    // A branch name as `commit` would pin a moving target in the cache.
    let cacheable = is_full_commit_id(&request.commit);
    let started = std::time::Instant::now();
    let render = render(bus.clone(), request.clone(), options, files_timeout);
    match cache.get_or_render(key, cacheable, render).await {
        Ok(body) => {
            tracing::debug!(
                repo = %request.repo,
                commit = %request.commit,
                path = %request.path,
                took_ms = started.elapsed().as_millis() as u64,
                "rendered"
            );
            body
        }
        Err(message) => {
            tracing::info!(repo = %request.repo, commit = %request.commit, path = %request.path, error = %message, "render failed");
            error_body(message)
        }
    }
}

async fn render(
    bus: Bus,
    request: RenderRequest,
    options: DirectoryOptions,
    files_timeout: Duration,
) -> Result<Bytes, String> {
    let files = fetch_files(&bus, &request, files_timeout).await?;
    let manifests = tokio::task::spawn_blocking(move || render_directory(&files.files, &options))
        .await
        .map_err(|err| format!("render task failed: {err}"))?
        .map_err(|err| err.to_string())?;
    serde_json::to_vec(&Reply::Ok(Rendered { manifests }))
        .map(Bytes::from)
        .map_err(|err| format!("encoding rendered manifests: {err}"))
}

async fn fetch_files(
    bus: &Bus,
    request: &RenderRequest,
    timeout: Duration,
) -> Result<Files, String> {
    let files_request = FilesRequest {
        repo: request.repo.clone(),
        commit: request.commit.clone(),
        path: request.path.clone(),
        recurse: request.recurse,
    };
    let body = serde_json::to_vec(&files_request).map_err(|err| err.to_string())?;
    let subject = git_files_subject(bus.topology.prefix());
    let message = bus
        .client
        .send_request(
            subject.clone(),
            async_nats::Request::new()
                .payload(body.into())
                .timeout(Some(timeout)),
        )
        .await
        .map_err(|err| format!("asking {subject} for files: {err}"))?;
    let body = bus
        .read_payload(&message)
        .await
        .map_err(|err| format!("reading files reply: {err}"))?;
    let reply: Reply<Files> =
        serde_json::from_slice(&body).map_err(|err| format!("invalid files reply: {err}"))?;
    reply.into_result()
}

fn is_full_commit_id(commit: &str) -> bool {
    matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit())
}

fn error_body(message: String) -> Bytes {
    Bytes::from(serde_json::to_vec(&Reply::<Rendered>::Error(message)).unwrap_or_default())
}

/// Sends the reply, through the payload store when it is too large for one message.
async fn respond(bus: &Bus, reply_to: async_nats::Subject, body: Bytes) {
    let (headers, body) = match bus.offload(HeaderMap::new(), body).await {
        Ok(sent) => sent,
        Err(err) => {
            tracing::warn!(error = %err, "offloading a large reply failed");
            (
                HeaderMap::new(),
                error_body(format!("storing large reply: {err}")),
            )
        }
    };
    if let Err(err) = bus
        .client
        .publish_with_headers(reply_to, headers, body)
        .await
    {
        tracing::warn!(error = %err, "sending reply failed");
    }
}
