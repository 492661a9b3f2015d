//! The renderer as a bus service: answers `RenderRequest`s on the render subject (queue
//! group `renderer`), reading the files through the git-watcher and rendering them with
//! the source's tool ([`crate::source`]), with a cache and single flight in front.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gitfleet_bus::async_nats;
use gitfleet_bus::{Bus, BusError, Running, encode_reply, serve_encoded};
use gitfleet_messages::{RenderRequest, Rendered, Reply, ServiceError};
use tokio_util::sync::CancellationToken;

use crate::cache::RenderCache;
use crate::content::{self, ContentCache, Counters};
use crate::source::{self, Tools};

const QUEUE_GROUP: &str = "renderer";

#[derive(Debug, Clone)]
pub struct Config {
    /// Renders worked on at once; more wait in the subscription (and other replicas take them).
    pub max_concurrent_renders: usize,
    pub cache_entries: usize,
    /// Upper bound on the serialized replies kept by request.
    pub cache_bytes: usize,
    /// Upper bound on the serialized replies kept in memory by content (the object store
    /// keeps them all, for 30 days after their last write).
    pub content_cache_bytes: u64,
    /// How long to wait for the git-watcher's files (a cold mirror fetches first).
    pub files_timeout: Duration,
    /// How Kustomize, Helm and Jsonnet are run.
    pub tools: Tools,
    /// How requests were answered (rendered, or found by content), read by tests and
    /// benches.
    pub counters: Arc<Counters>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_concurrent_renders: 8,
            cache_entries: 4096,
            cache_bytes: 256 << 20,
            content_cache_bytes: 256 << 20,
            files_timeout: Duration::from_secs(120),
            tools: Tools::default(),
            counters: Arc::default(),
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

/// What identifies a render's result: the request, serialized (the source holds JSON
/// values, which do not hash).
type Key = String;

/// Runs until `shutdown` is cancelled; renders already taken are answered first.
pub async fn run(config: Config, bus: Bus, shutdown: CancellationToken) -> Result<(), Error> {
    start(config, bus, shutdown).await?.wait().await
}

/// Subscribes, then serves in the background: once this returns, render requests are
/// answered.
pub async fn start(
    config: Config,
    bus: Bus,
    shutdown: CancellationToken,
) -> Result<Running<Error>, Error> {
    let subject = bus.topology.render_subject();
    let subscriber = bus
        .client
        .queue_subscribe(subject.clone(), QUEUE_GROUP.to_owned())
        .await
        .map_err(|source| Error::Subscribe {
            subject: subject.clone(),
            source,
        })?;
    // A round trip: the server has the subscription once this returns, so a request
    // sent by any client afterwards finds it. (A failure here is the connection's,
    // which resubscribes by itself.)
    let _ = bus.client.flush().await;
    let cache = Arc::new(RenderCache::new(config.cache_entries, config.cache_bytes));
    let files_timeout = config.files_timeout;
    let tools = Arc::new(config.tools.clone());
    let content = Arc::new(
        ContentCache::open(
            bus.clone(),
            content::fingerprint(&config.tools),
            config.content_cache_bytes,
            files_timeout,
            config.counters.clone(),
        )
        .await,
    );
    tracing::info!(subject, "renderer running");
    let handler_bus = bus.clone();
    let stopping = content.clone();
    Ok(Running::spawn(async move {
        serve_encoded(
            bus,
            subscriber,
            config.max_concurrent_renders,
            shutdown,
            move |request: RenderRequest| {
                let renderer = Renderer {
                    bus: handler_bus.clone(),
                    content: content.clone(),
                    tools: tools.clone(),
                    files_timeout,
                };
                let cache = cache.clone();
                async move { handle(renderer, &cache, request).await }
            },
        )
        .await;
        stopping.finish_writes(Duration::from_secs(10)).await;
        tracing::info!("renderer stopped");
        Ok(())
    }))
}

/// What one render needs.
#[derive(Clone)]
struct Renderer {
    bus: Bus,
    content: Arc<ContentCache>,
    tools: Arc<Tools>,
    files_timeout: Duration,
}

/// The serialized reply (`Reply<Rendered>`) for one request.
async fn handle(renderer: Renderer, cache: &RenderCache<Key>, request: RenderRequest) -> Bytes {
    let key = serde_json::to_string(&request).unwrap_or_default();
    // A branch name as `commit` would pin a moving target in the cache.
    let cacheable = is_full_commit_id(&request.commit) && !key.is_empty();
    let started = std::time::Instant::now();
    let render = render(renderer, request.clone());
    let path = &request.source.path;
    match cache.get_or_render(key, cacheable, render).await {
        Ok(body) => {
            tracing::debug!(
                repo = %request.repo,
                commit = %request.commit,
                path = %path,
                took_ms = started.elapsed().as_millis() as u64,
                "rendered"
            );
            body
        }
        Err(err) => {
            tracing::info!(repo = %request.repo, commit = %request.commit, path = %path, error = %err, "render failed");
            encode_reply::<Rendered>(&Reply::Error(err))
        }
    }
}

/// The result kept for the request's content, else a render (kept by content after).
async fn render(renderer: Renderer, request: RenderRequest) -> Result<Bytes, ServiceError> {
    let lookup = renderer.content.lookup(&request);
    if let Some(lookup) = &lookup
        && let Some(body) = renderer.content.get(lookup).await
    {
        return Ok(body);
    }
    let (rendered, tool) = source::render(
        renderer.bus,
        &request,
        &renderer.tools,
        renderer.files_timeout,
    )
    .await?;
    renderer.content.count_render();
    let inputs = rendered.inputs.clone();
    let body = encode_reply(&Reply::Ok(rendered));
    if let Some(lookup) = lookup {
        renderer.content.put(lookup, tool, inputs, body.clone());
    }
    Ok(body)
}

pub(crate) fn is_full_commit_id(commit: &str) -> bool {
    matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit())
}
