//! The request/reply side: resolving revisions and reading files for the diff workers and
//! renderers, each request on its own task under a bound, gix work on blocking threads.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use gitfleet_bus::Bus;
use gitfleet_bus::async_nats::{self, HeaderMap};
use gitfleet_messages::{Files, FilesRequest, Reply, RepoFile, ResolveRequest, Resolved};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::access::RepoAccess;
use crate::error::{GitError, Result};
use crate::files::Depth;
use crate::mirror::Mirror;

/// Answers every request arriving on `subscriber` with `handler`, at most as many at once
/// as `permits` allows; the rest wait in the subscription, which is the backpressure.
pub(crate) async fn serve<Req, Resp, F, Fut>(
    mut subscriber: async_nats::Subscriber,
    bus: Bus,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    handler: F,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    F: Fn(Req) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Reply<Resp>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
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
            tracing::debug!(subject = %message.subject, "request without reply subject ignored");
            continue;
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let bus = bus.clone();
        let handler = handler.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let reply = match bus.read_payload(&message).await {
                Ok(body) => match serde_json::from_slice::<Req>(&body) {
                    Ok(request) => handler(request).await,
                    Err(err) => {
                        Reply::Error(format!("invalid request on {}: {err}", message.subject))
                    }
                },
                Err(err) => Reply::Error(format!("reading request: {err}")),
            };
            respond(&bus, reply_to, &reply).await;
        });
    }
    // Requests already taken get their answers; new ones are left to other replicas.
    while tasks.join_next().await.is_some() {}
}

/// Sends `reply`, through the payload store when it is too large for one message.
pub(crate) async fn respond<T: Serialize>(
    bus: &Bus,
    reply_to: async_nats::Subject,
    reply: &Reply<T>,
) {
    let body = match serde_json::to_vec(reply) {
        Ok(body) => Bytes::from(body),
        Err(err) => error_body(&format!("encoding reply: {err}")),
    };
    let (headers, body) = match bus.offload(HeaderMap::new(), body).await {
        Ok(sent) => sent,
        Err(err) => {
            tracing::warn!(error = %err, "offloading a large reply failed");
            (
                HeaderMap::new(),
                error_body(&format!("storing large reply: {err}")),
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

fn error_body(message: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&Reply::<()>::Error(message.to_owned())).unwrap_or_default())
}

/// `ResolveRequest` → the commit the revision names now, as far as the mirror knows.
pub(crate) async fn resolve(access: RepoAccess, request: ResolveRequest) -> Reply<Resolved> {
    let result = with_fresh_mirror(&access, &request.repo, move |mirror| {
        mirror
            .resolve(&request.revision)
            .map(|r| Resolved { commit: r.commit })
    })
    .await;
    if let Err(err) = &result {
        tracing::debug!(error = %err, "resolve failed");
    }
    result.into()
}

/// `FilesRequest` → the files under the path at the commit.
pub(crate) async fn files(access: RepoAccess, request: FilesRequest) -> Reply<Files> {
    let depth = if request.recurse {
        Depth::Recursive
    } else {
        Depth::TopLevel
    };
    let result = with_fresh_mirror(&access, &request.repo, move |mirror| {
        let files = mirror.read_dir(&request.commit, &request.path, depth)?;
        Ok(Files {
            files: files
                .into_iter()
                .map(|file| match String::from_utf8(file.bytes) {
                    Ok(content) => RepoFile {
                        path: file.path,
                        content,
                        binary: false,
                    },
                    Err(_) => RepoFile {
                        path: file.path,
                        content: String::new(),
                        binary: true,
                    },
                })
                .collect(),
        })
    })
    .await;
    if let Err(err) = &result {
        tracing::debug!(error = %err, "reading files failed");
    }
    result.into()
}

/// Runs `read` against the mirror of `repo` on a blocking thread. A mirror this process has
/// never fetched is fetched first; a revision the mirror lacks earns one fetch and a retry,
/// since it may simply be newer than the last poll (a commit just pushed, a new branch).
async fn with_fresh_mirror<T, F>(access: &RepoAccess, repo: &str, read: F) -> Result<T>
where
    T: Send + 'static,
    F: Fn(&Mirror) -> Result<T> + Clone + Send + 'static,
{
    let mirror = access.mirror(repo)?;
    let mut fetched = false;
    if mirror.fetches_started() == 0 {
        mirror.fetch().await?;
        fetched = true;
    }
    match blocking(&mirror, read.clone()).await {
        Err(GitError::RevisionNotFound { .. }) if !fetched => {
            mirror.fetch().await?;
            blocking(&mirror, read).await
        }
        other => other,
    }
}

async fn blocking<T, F>(mirror: &Mirror, read: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Mirror) -> Result<T> + Send + 'static,
{
    let owned = mirror.clone();
    tokio::task::spawn_blocking(move || read(&owned))
        .await
        .map_err(|join| GitError::Read {
            repo: mirror.url().to_string(),
            what: "request".to_owned(),
            message: format!("blocking task failed: {join}"),
        })?
}
