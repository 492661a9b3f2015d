//! Renders kept by content: a commit that leaves an app's inputs as they were is answered
//! without a render, by this renderer, and by a new one after a restart (through NATS
//! KV); a change to anything the render read (a shared base, a symlink's
//! target) renders again; an output that names the commit never outlives it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{ask, commit_all, write};
use gitfleet_bus::{Bucket, Bus, testkit};
use gitfleet_gitkit::git;
use gitfleet_messages::{RenderRequest, Rendered, Reply};
use gitfleet_model::{ApplicationSource, DirectorySource, JsonnetSource, JsonnetVar};
use renderer::Counters;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  size: small\n";

fn write_repo(root: &Path) {
    write(
        root,
        "apps/base/kustomization.yaml",
        "resources:\n- settings.yaml\n",
    );
    write(root, "apps/base/settings.yaml", CM);
    write(
        root,
        "apps/prod/kustomization.yaml",
        "resources:\n- ../base\nnamePrefix: prod-\n",
    );
    write(root, "other/x.yaml", &CM.replace("settings", "other"));
    write(
        root,
        "shared/linked.yaml",
        &CM.replace("settings", "linked"),
    );
    std::fs::create_dir_all(root.join("apps/linked")).unwrap();
    std::os::unix::fs::symlink(
        "../../shared/linked.yaml",
        root.join("apps/linked/linked.yaml"),
    )
    .unwrap();
    write(
        root,
        "apps/stamped/main.jsonnet",
        "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'stamped' }, data: { rev: std.extVar('rev') } }\n",
    );
}

/// One git watcher on a fresh bus, and renderers that come and go on it.
struct Setup {
    _dir: tempfile::TempDir,
    work: std::path::PathBuf,
    bus: Bus,
    repo: String,
    watcher_stop: CancellationToken,
}

impl Setup {
    async fn start() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("repo");
        write_repo(&work);
        let (repo, _) = commit_all(&work);
        let bus = testkit::bus().await;
        let watcher_stop = CancellationToken::new();
        let watcher = git_watcher::start(
            git_watcher::Config::new(dir.path().join("mirrors")).allowing_local_repositories(),
            bus.clone(),
            watcher_stop.clone(),
        )
        .await
        .unwrap();
        tokio::spawn(watcher.wait());
        Setup {
            _dir: dir,
            work,
            bus,
            repo,
            watcher_stop,
        }
    }

    /// A renderer that answers once this returns; its counters; stopped by the token.
    async fn renderer(
        &self,
    ) -> (
        Arc<Counters>,
        CancellationToken,
        gitfleet_bus::Running<renderer::Error>,
    ) {
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let running = renderer::start(
            renderer::Config {
                counters: counters.clone(),
                ..Default::default()
            },
            self.bus.clone(),
            stop.clone(),
        )
        .await
        .unwrap();
        (counters, stop, running)
    }

    /// Commits `content` at `path`: the new commit.
    fn commit(&self, path: &str, content: &str) -> String {
        write(&self.work, path, content);
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "--quiet", "-m", path]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn request(&self, commit: &str, source: ApplicationSource) -> RenderRequest {
        RenderRequest {
            repo: self.repo.clone(),
            commit: commit.to_owned(),
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

    async fn render(&self, request: &RenderRequest) -> Rendered {
        match ask(&self.bus, self.bus.topology.render_subject(), request).await {
            Reply::Ok(rendered) => rendered,
            Reply::Error(err) => panic!("render failed: {err}"),
        }
    }

    /// Waits until `recipes` requests' inputs and `n` results are kept in KV: a renderer
    /// keeps them after it answers.
    async fn wait_kept(&self, recipes: usize, n: usize) {
        // Opened anew each time, past `Bus::kv`'s kept handles: a store's status is the
        // stream info read when it opened.
        let count = |bucket| async move {
            let store = self
                .bus
                .js
                .get_key_value(self.bus.topology.bucket(bucket))
                .await
                .unwrap();
            store.status().await.unwrap().values() as usize
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let keys = count(Bucket::RenderInputs).await;
            let objects = count(Bucket::Rendered).await;
            if keys >= recipes && objects >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{keys} recipes and {objects} results kept, expected {recipes} and {n}"
            );
            // Poll interval inside the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.watcher_stop.cancel();
    }
}

fn path(path: &str) -> ApplicationSource {
    ApplicationSource {
        path: path.into(),
        ..Default::default()
    }
}

fn names(rendered: &Rendered) -> Vec<String> {
    rendered
        .manifests
        .iter()
        .map(|m| {
            m["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn data(rendered: &Rendered, key: &str) -> Value {
    rendered.manifests[0]["data"][key].clone()
}

#[tokio::test]
async fn an_untouched_overlay_is_answered_by_content_even_after_a_restart() {
    let setup = Setup::start().await;
    let first = git(&setup.work, &["rev-parse", "HEAD"]);
    let (counters, stop, running) = setup.renderer().await;

    let rendered = setup
        .render(&setup.request(&first, path("apps/prod")))
        .await;
    assert_eq!(names(&rendered), ["prod-settings"]);
    assert_eq!(rendered.inputs, ["apps/base", "apps/prod"]);
    assert_eq!(counters.renders.load(Ordering::SeqCst), 1);
    setup.wait_kept(1, 1).await;

    // A commit elsewhere: the same inputs, so the same manifests, with no render.
    let elsewhere = setup.commit("other/x.yaml", &CM.replace("small", "tiny"));
    let again = setup
        .render(&setup.request(&elsewhere, path("apps/prod")))
        .await;
    assert_eq!(again, rendered);
    assert_eq!(counters.renders.load(Ordering::SeqCst), 1);
    assert_eq!(counters.memory_hits.load(Ordering::SeqCst), 1);

    // A commit to the shared base the overlay reads: rendered again.
    let base = setup.commit("apps/base/settings.yaml", &CM.replace("small", "large"));
    let changed = setup.render(&setup.request(&base, path("apps/prod"))).await;
    assert_eq!(data(&changed, "size"), "large");
    assert_eq!(counters.renders.load(Ordering::SeqCst), 2);
    setup.wait_kept(1, 2).await;

    // A new renderer (the old one stopped): warm from the object store.
    stop.cancel();
    running.wait().await.unwrap();
    let (counters, _stop, _running) = setup.renderer().await;
    let later = setup.commit("other/x.yaml", &CM.replace("small", "huge"));
    let warm = setup
        .render(&setup.request(&later, path("apps/prod")))
        .await;
    assert_eq!(warm, changed);
    assert_eq!(counters.renders.load(Ordering::SeqCst), 0);
    assert_eq!(counters.store_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_symlinks_target_is_an_input_of_its_own() {
    let setup = Setup::start().await;
    let first = git(&setup.work, &["rev-parse", "HEAD"]);
    let (counters, _stop, _running) = setup.renderer().await;

    let rendered = setup
        .render(&setup.request(&first, path("apps/linked")))
        .await;
    assert_eq!(data(&rendered, "size"), "small");
    assert_eq!(rendered.inputs, ["apps/linked", "shared/linked.yaml"]);
    setup.wait_kept(1, 1).await;

    // The link's folder is as it was; the file it points to is not.
    let target = setup.commit(
        "shared/linked.yaml",
        &CM.replace("settings", "linked").replace("small", "medium"),
    );
    let changed = setup
        .render(&setup.request(&target, path("apps/linked")))
        .await;
    assert_eq!(data(&changed, "size"), "medium");
    assert_eq!(counters.renders.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_output_that_names_the_commit_is_rendered_at_each_commit() {
    let setup = Setup::start().await;
    let first = git(&setup.work, &["rev-parse", "HEAD"]);
    let (counters, _stop, _running) = setup.renderer().await;
    let stamped = ApplicationSource {
        path: "apps/stamped".into(),
        directory: Some(DirectorySource {
            jsonnet: Some(JsonnetSource {
                ext_vars: vec![JsonnetVar {
                    name: "rev".into(),
                    value: "${ARGOCD_APP_REVISION}".into(),
                    code: false,
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };

    let rendered = setup.render(&setup.request(&first, stamped.clone())).await;
    assert_eq!(data(&rendered, "rev"), first.as_str());
    setup.wait_kept(1, 1).await;

    let elsewhere = setup.commit("other/x.yaml", &CM.replace("small", "tiny"));
    let again = setup.render(&setup.request(&elsewhere, stamped)).await;
    assert_eq!(data(&again, "rev"), elsewhere.as_str());
    assert_eq!(counters.renders.load(Ordering::SeqCst), 2);
}
