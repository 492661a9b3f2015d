//! Config management plugins through the renderer and the real git-watcher over one
//! nats-server, with real `sh` scripts as plugins: `init` then `generate` in a scratch
//! copy of the app's folder, with Argo CD's environment (`ARGOCD_APP_*`, `ARGOCD_ENV_*`,
//! `PARAM_*`); discovery by file name; other apps' files out of reach. A plugin that fails,
//! hangs or prints too much is an error saying which, and the renderer carries on.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Fixture, error, write};
use gitfleet_messages::{Rendered, Reply, ServiceError};
use gitfleet_model::{ApplicationSource, EnvEntry, PluginSource};
use renderer::{Plugin, Plugins, Tools};
use serde_json::json;

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

/// The repository above, its apps rendered with the plugins above.
struct Apps(Fixture);

impl Apps {
    async fn start() -> Apps {
        let config = renderer::Config {
            tools: Tools {
                plugins: plugins(),
                ..Tools::default()
            },
            ..renderer::Config::default()
        };
        Apps(Fixture::start_with(write_repo, config).await)
    }

    async fn render(&self, path: &str, plugin: PluginSource) -> Reply<Rendered> {
        let source = ApplicationSource {
            path: path.into(),
            plugin: Some(plugin),
            ..ApplicationSource::default()
        };
        self.0.render(&self.0.request(source)).await
    }

    async fn error(&self, path: &str, name: &str) -> ServiceError {
        let source = PluginSource {
            name: name.into(),
            ..PluginSource::default()
        };
        error(self.render(path, source).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_generates_with_argo_cds_environment() {
    let f = Apps::start().await;
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
    let f = Apps::start().await;
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
