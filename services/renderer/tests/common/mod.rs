//! What the renderer's tests share: a real git-watcher and renderer on a fresh bus of one
//! nats-server, a Git repository written by the test, and render requests over the bus.
// Each test binary uses part of this.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use gitfleet_bus::{Bus, testkit};
use gitfleet_gitkit::git;
use gitfleet_messages::{RenderRequest, Rendered, Reply, ServiceError};
use gitfleet_model::ApplicationSource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

pub fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// `work` made a repository with what is in it committed on `main`: its URL and commit.
pub fn commit_all(work: &Path) -> (String, String) {
    git(work, &["init", "--quiet", "--initial-branch=main"]);
    git(work, &["add", "-A"]);
    git(work, &["commit", "--quiet", "-m", "first"]);
    (
        format!("file://{}", work.display()),
        git(work, &["rev-parse", "HEAD"]),
    )
}

/// The git watcher (mirrors in `dir`) and a renderer on a fresh bus; both answer once
/// this returns, and stop when the token is cancelled.
pub async fn services(
    watcher: git_watcher::Config,
    renderer: renderer::Config,
) -> (Bus, CancellationToken) {
    let bus = testkit::bus().await;
    let shutdown = CancellationToken::new();
    let watcher = git_watcher::start(watcher, bus.clone(), shutdown.clone())
        .await
        .unwrap();
    tokio::spawn(watcher.wait());
    let renderer = renderer::start(renderer, bus.clone(), shutdown.clone())
        .await
        .unwrap();
    tokio::spawn(renderer.wait());
    (bus, shutdown)
}

/// Asks `subject` on `bus` and reads the reply, large ones through the payload store.
pub async fn ask<T: DeserializeOwned>(
    bus: &Bus,
    subject: String,
    body: &impl Serialize,
) -> Reply<T> {
    let message = tokio::time::timeout(
        Duration::from_secs(60),
        bus.client
            .request(subject, serde_json::to_vec(body).unwrap().into()),
    )
    .await
    .expect("reply in time")
    .expect("reply");
    let body = bus.read_payload(&message).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

pub fn error(reply: Reply<Rendered>) -> ServiceError {
    match reply {
        Reply::Error(err) => err,
        Reply::Ok(rendered) => panic!("expected an error, rendered {rendered:?}"),
    }
}

/// A repository the test writes, served by the services over `file://`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub bus: Bus,
    pub repo: String,
    pub commit: String,
    shutdown: CancellationToken,
}

impl Fixture {
    pub async fn start(write_repo: impl FnOnce(&Path)) -> Fixture {
        Self::start_with(write_repo, renderer::Config::default()).await
    }

    pub async fn start_with(write_repo: impl FnOnce(&Path), config: renderer::Config) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("repo");
        write_repo(&work);
        let (repo, commit) = commit_all(&work);
        let watcher =
            git_watcher::Config::new(dir.path().join("mirrors")).allowing_local_repositories();
        let (bus, shutdown) = services(watcher, config).await;
        Fixture {
            dir,
            bus,
            repo,
            commit,
            shutdown,
        }
    }

    /// A request for `source` (its repository set to the fixture's) at the fixture's
    /// commit, for app `shop` in namespace `prod`.
    pub fn request(&self, source: ApplicationSource) -> RenderRequest {
        RenderRequest {
            repo: self.repo.clone(),
            commit: self.commit.clone(),
            source: ApplicationSource {
                repo_url: self.repo.clone(),
                ..source
            },
            app_name: "shop".into(),
            namespace: "prod".into(),
            refs: Vec::new(),
            local_files: Vec::new(),
        }
    }

    pub async fn render(&self, request: &RenderRequest) -> Reply<Rendered> {
        ask(&self.bus, self.bus.topology.render_subject(), request).await
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
