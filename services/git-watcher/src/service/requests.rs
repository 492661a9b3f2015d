//! The request/reply side: resolving revisions and reading files for the diff workers and
//! renderers (served by `gitfleet_bus::serve`), gix work on blocking threads.

use gitfleet_messages::{
    Files, FilesRequest, RepoFile, ResolveRequest, Resolved, ServiceError, TreeIds, TreeIdsRequest,
};

use super::access::RepoAccess;
use crate::error::{GitError, Result};
use crate::files::Depth;
use crate::mirror::Mirror;

/// `ResolveRequest` → the commit the revision names now, as far as the mirror knows.
pub(crate) async fn resolve(
    access: RepoAccess,
    request: ResolveRequest,
) -> Result<Resolved, ServiceError> {
    if !request.chart.is_empty() {
        let result = access
            .resolve_chart(&request.repo, &request.chart, &request.revision)
            .await;
        if let Err(err) = &result {
            tracing::debug!(error = %err, "chart resolve failed");
        }
        return result
            .map(|commit| Resolved { commit })
            .map_err(ServiceError::from);
    }
    let result = with_fresh_mirror(&access, &request.repo, move |mirror| {
        mirror
            .resolve(&request.revision)
            .map(|r| Resolved { commit: r.commit })
    })
    .await;
    if let Err(err) = &result {
        tracing::debug!(error = %err, "resolve failed");
    }
    result.map_err(ServiceError::from)
}

/// `FilesRequest` → the files under the path at the commit.
pub(crate) async fn files(
    access: RepoAccess,
    request: FilesRequest,
) -> Result<Files, ServiceError> {
    if !request.chart.is_empty() {
        let result = access
            .chart_archive(
                &request.repo,
                &request.chart,
                &request.commit,
                request.pass_credentials,
            )
            .await;
        if let Err(err) = &result {
            tracing::debug!(error = %err, "chart download failed");
        }
        let archive = result.map_err(ServiceError::from)?;
        return Ok(Files {
            files: vec![RepoFile::from_bytes(
                format!("{}-{}.tgz", request.chart, request.commit),
                archive.to_vec(),
            )],
        });
    }
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
                .map(|file| RepoFile {
                    link: file.link.unwrap_or_default(),
                    ..RepoFile::from_bytes(file.path, file.bytes)
                })
                .collect(),
        })
    })
    .await;
    if let Err(err) = &result {
        tracing::debug!(error = %err, "reading files failed");
    }
    result.map_err(ServiceError::from)
}

/// `TreeIdsRequest` → the object id at each path at the commit.
pub(crate) async fn tree_ids(
    access: RepoAccess,
    request: TreeIdsRequest,
) -> Result<TreeIds, ServiceError> {
    let result = with_fresh_mirror(&access, &request.repo, move |mirror| {
        let ids = mirror.tree_ids(&request.commit, &request.paths)?;
        Ok(TreeIds {
            ids: ids.into_iter().map(Option::unwrap_or_default).collect(),
        })
    })
    .await;
    if let Err(err) = &result {
        tracing::debug!(error = %err, "reading tree ids failed");
    }
    result.map_err(ServiceError::from)
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
