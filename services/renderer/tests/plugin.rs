//! Config management plugins through the renderer and the real git-watcher over one
//! nats-server, with real `sh` scripts as plugins: `init` then `generate` in a scratch
//! copy of the app's folder, with Argo CD's environment (`ARGOCD_APP_*`, `ARGOCD_ENV_*`,
//! `PARAM_*`); discovery by file name; other apps' files out of reach. A plugin that fails,
//! hangs or prints too much is an error saying which, and the renderer carries on.

use std::path::Path;
use std::time::Duration;

use gitfleet_bus::{Bus, testkit};
use gitfleet_gitkit::git;
use gitfleet_messages::{RenderRequest, Rendered, Reply, ServiceError};
use gitfleet_model::{ApplicationSource, EnvEntry, PluginSource};
use renderer::{Plugin, Plugins, Tools};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn plugin(name: &str, version: &str, init: &str, generate: &str, discover: &str) -> Plugin {
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let init = if init.is_empty() {
        String::new()
    } else {
        format!(
            "  init:\n    command: [sh, -c]\n    args: [{}]\n",
            quote(init)
        )
    };
    let discover = if discover.is_empty() {
        String::new()
    } else {
        format!("  discover:\n    fileName: {}\n", quote(discover))
    };
    Plugin::parse(&format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: ConfigManagementPlugin\nmetadata:\n  name: {name}\nspec:\n  version: {version}\n{init}  generate:\n    command: [sh, -c]\n    args: [{}]\n{discover}",
        quote(generate)
    ))
    .unwrap()
}

const GENERATE: &str = r#"test -f .initialised || { echo "init did not run" >&2; exit 1; }
if [ -e ../other/secret.yaml ]; then other=present; else other=absent; fi
cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: $ARGOCD_APP_NAME-config
data:
  color: "$ARGOCD_ENV_COLOR"
  replicas: "$PARAM_REPLICAS"
  host0: "$PARAM_HOSTS_0"
  path: "$ARGOCD_APP_SOURCE_PATH"
  other: "$other"
  home: "$(test "$HOME" != /root && echo scratch)"
EOF
echo ---
cat deploy.yaml"#;

fn plugins() -> Plugins {
    Plugins {
        plugins: vec![
            plugin("cmp", "v1", "touch .initialised", GENERATE, ""),
            plugin("disc", "", "", "cat *.yaml", "*.disc"),
            plugin(
                "fails",
                "",
                "",
                "echo 'bad things happened' >&2; exit 3",
                "",
            ),
            plugin("hangs", "", "", "sleep 30", ""),
            plugin("loud", "", "", "yes 'a: b' | head -c 100000", ""),
        ],
        timeout: Duration::from_secs(3),
        max_output_bytes: 16 << 10,
    }
}

fn write_repo(root: &Path) {
    write(
        root,
        "apps/web/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n",
    );
    write(
        root,
        "apps/other/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n",
    );
    write(root, "apps/found/app.disc", "");
    write(
        root,
        "apps/found/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: found\n",
    );
}

struct Fixture {
    _dir: tempfile::TempDir,
    bus: Bus,
    repo: String,
    commit: String,
    shutdown: CancellationToken,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("repo");
        write_repo(&work);
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "--quiet", "-m", "first"]);
        let commit = git(&work, &["rev-parse", "HEAD"]);
        let repo = format!("file://{}", work.display());
        let bus = testkit::bus().await;
        let shutdown = CancellationToken::new();
        let watcher = git_watcher::start(
            git_watcher::Config::new(dir.path().join("mirrors")).allowing_local_repositories(),
            bus.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        tokio::spawn(watcher.wait());
        let config = renderer::Config {
            tools: Tools {
                plugins: plugins(),
                ..Tools::default()
            },
            ..renderer::Config::default()
        };
        let renderer = renderer::start(config, bus.clone(), shutdown.clone())
            .await
            .unwrap();
        tokio::spawn(renderer.wait());
        Fixture {
            _dir: dir,
            bus,
            repo,
            commit,
            shutdown,
        }
    }

    async fn render(&self, path: &str, plugin: PluginSource) -> Reply<Rendered> {
        let request = RenderRequest {
            repo: self.repo.clone(),
            commit: self.commit.clone(),
            source: ApplicationSource {
                repo_url: self.repo.clone(),
                path: path.into(),
                plugin: Some(plugin),
                ..ApplicationSource::default()
            },
            app_name: "shop".into(),
            namespace: "prod".into(),
            refs: Vec::new(),
        };
        let message = tokio::time::timeout(
            Duration::from_secs(60),
            self.bus.client.request(
                self.bus.topology.render_subject(),
                serde_json::to_vec(&request).unwrap().into(),
            ),
        )
        .await
        .expect("render reply in time")
        .expect("render reply");
        let body = self.bus.read_payload(&message).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    async fn error(&self, path: &str, name: &str) -> ServiceError {
        let source = PluginSource {
            name: name.into(),
            ..PluginSource::default()
        };
        match self.render(path, source).await {
            Reply::Error(err) => err,
            Reply::Ok(rendered) => panic!("expected an error, rendered {rendered:?}"),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_generates_with_argo_cds_environment() {
    let f = Fixture::start().await;
    let source = PluginSource {
        name: "cmp-v1".into(),
        env: vec![EnvEntry {
            name: "COLOR".into(),
            value: "blue-${ARGOCD_APP_NAMESPACE}".into(),
        }],
        parameters: vec![
            json!({"name": "replicas", "string": "3"}),
            json!({"name": "hosts", "array": ["a.example", "b.example"]}),
        ],
    };
    let rendered = f.render("apps/web", source).await.into_result().unwrap();
    assert_eq!(
        rendered.manifests,
        [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-config"},
                   "data": {"color": "blue-prod", "replicas": "3", "host0": "a.example",
                            "path": "apps/web", "other": "absent", "home": "scratch"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
        ]
    );
    assert_eq!(rendered.inputs, ["apps/web"]);

    // No name: the plugin whose discovery matches the app's files.
    let found = f
        .render("apps/found", PluginSource::default())
        .await
        .into_result()
        .unwrap();
    assert_eq!(found.manifests[0]["metadata"]["name"], "found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hanging_or_loud_plugin_is_an_error() {
    let f = Fixture::start().await;
    let err = f.error("apps/web", "fails").await;
    assert_eq!(
        err.message,
        "plugin fails generate in apps/web failed: bad things happened"
    );
    let started = std::time::Instant::now();
    let err = f.error("apps/web", "hangs").await;
    assert!(
        err.message.contains("took longer than 3s"),
        "{}",
        err.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "killed at its timeout"
    );
    let err = f.error("apps/web", "loud").await;
    assert!(
        err.message
            .contains("output is over the limit of 16384 bytes"),
        "{}",
        err.message
    );
    let err = f.error("apps/web", "nope").await;
    assert!(
        err.message.contains("plugin \"nope\" is not configured"),
        "{}",
        err.message
    );
    let err = f.error("apps/web", "").await;
    assert!(
        err.message
            .contains("no config management plugin discovers this app"),
        "{}",
        err.message
    );
    // The renderer carries on.
    let ok = PluginSource {
        name: "disc".into(),
        ..PluginSource::default()
    };
    f.render("apps/found", ok).await.into_result().unwrap();
}
