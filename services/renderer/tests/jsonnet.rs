//! Jsonnet apps through the renderer and the real git-watcher over one nats-server:
//! top-level arguments and ext vars (strings and code, `${ARGOCD_APP_NAME}` substituted),
//! `libs` from the repository root, an import relative to the file reaching a folder the
//! render had not fetched (fetched, and an input by itself), YAML beside the Jsonnet, the
//! directory's include/exclude; the output is what `jsonnet` prints for the same flags,
//! written out by hand. Bad Jsonnet is an error naming the file and Jsonnet's message, and
//! no import leaves the repository.

mod common;

use std::path::Path;

use common::{Fixture, error, write};
use gitfleet_messages::{Rendered, Reply, ServiceError};
use gitfleet_model::{ApplicationSource, DirectorySource, JsonnetSource, JsonnetVar};
use serde_json::json;

const MAIN: &str = "\
local k = import 'k.libsonnet';
local util = import '../shared/util.libsonnet';
function(replicas=1, image='web:1') [
  k.deployment(std.extVar('name'), replicas, image),
  util.configMap(std.extVar('name'), std.extVar('env')),
]
";

const K: &str = "\
{
  deployment(name, replicas, image):: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: name },
    spec: { replicas: replicas, template: { spec: { containers: [{ name: 'web', image: image }] } } },
  },
}
";

const UTIL: &str = "\
{
  configMap(name, env):: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: name + '-env' },
    data: { tier: env.tier, replicasLabel: std.toString(env.size) },
  },
}
";

fn write_repo(root: &Path) {
    write(root, "apps/web/main.jsonnet", MAIN);
    write(
        root,
        "apps/web/skip.jsonnet",
        "error 'excluded, never evaluated'\n",
    );
    write(
        root,
        "apps/web/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n",
    );
    write(root, "lib/k.libsonnet", K);
    write(root, "apps/shared/util.libsonnet", UTIL);
    write(root, "apps/shared/unused.libsonnet", "{}\n");
    // Symlinks: to a file of the repository (read as it), and out of it (refused).
    std::fs::create_dir_all(root.join("apps/linked")).unwrap();
    std::os::unix::fs::symlink("../web/svc.yaml", root.join("apps/linked/svc.yaml")).unwrap();
    std::fs::create_dir_all(root.join("apps/leaky")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../etc/passwd",
        root.join("apps/leaky/x.yaml"),
    )
    .unwrap();
    // Bad inputs.
    write(
        root,
        "apps/boom/main.jsonnet",
        "local x = 1;\n{ a: error 'boom: ' + x }\n",
    );
    write(
        root,
        "apps/escape/main.jsonnet",
        "import '../../../../../../etc/passwd'\n",
    );
    write(
        root,
        "apps/absolute/main.jsonnet",
        "import '/etc/hostname'\n",
    );
    write(
        root,
        "apps/missing/main.jsonnet",
        "import 'nope.libsonnet'\n",
    );
    write(root, "apps/scalars/main.jsonnet", "[1, 2]\n");
    write(
        root,
        "apps/forever/main.jsonnet",
        "local f(x) = f(x + 1) + 1;\nf(0)\n",
    );
}

fn settings() -> DirectorySource {
    let var = |name: &str, value: &str, code: bool| JsonnetVar {
        name: name.into(),
        value: value.into(),
        code,
    };
    DirectorySource {
        exclude: "skip.jsonnet".into(),
        jsonnet: Some(JsonnetSource {
            ext_vars: vec![
                var("name", "${ARGOCD_APP_NAME}", false),
                var("env", "{tier: 'prod', size: 2 + 1}", true),
            ],
            tlas: vec![var("replicas", "3", true), var("image", "web:2", false)],
            libs: vec!["lib".into()],
        }),
        ..DirectorySource::default()
    }
}

/// The repository above, rendered as directory apps.
struct Apps(Fixture);

impl Apps {
    async fn render(&self, path: &str, directory: Option<DirectorySource>) -> Reply<Rendered> {
        let source = ApplicationSource {
            path: path.into(),
            directory,
            ..ApplicationSource::default()
        };
        self.0.render(&self.0.request(source)).await
    }

    async fn error(&self, path: &str) -> ServiceError {
        error(self.render(path, None).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonnet_renders_with_tlas_ext_vars_and_libs() {
    let f = Apps(Fixture::start(write_repo).await);
    let rendered = f
        .render("apps/web", Some(settings()))
        .await
        .into_result()
        .unwrap();
    // `jsonnet --ext-str name=shop --ext-code env=... --tla-code replicas=3 --tla-str
    // image=web:2 -J lib apps/web/main.jsonnet`, after the directory's YAML.
    assert_eq!(
        rendered.manifests,
        [
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"},
                   "spec": {"replicas": 3, "template": {"spec": {"containers": [
                       {"name": "web", "image": "web:2"}]}}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-env"},
                   "data": {"tier": "prod", "replicasLabel": "3"}}),
        ]
    );
    // The app's folder, the lib folder, and the one shared file imported.
    assert_eq!(
        rendered.inputs,
        ["apps/shared/util.libsonnet", "apps/web", "lib"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jsonnet_is_an_error_naming_the_file() {
    let f = Apps(Fixture::start(write_repo).await);
    let err = f.error("apps/boom").await;
    assert!(
        err.message.starts_with("apps/boom/main.jsonnet: ") && err.message.contains("boom: 1"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("main.jsonnet:2"),
        "the line: {}",
        err.message
    );
    for app in ["apps/escape", "apps/absolute"] {
        let err = f.error(app).await;
        assert!(
            err.message.contains("leaves the repository"),
            "{app}: {}",
            err.message
        );
    }
    let err = f.error("apps/missing").await;
    assert!(
        err.message.contains("\"nope.libsonnet\" not found"),
        "{}",
        err.message
    );
    let err = f.error("apps/scalars").await;
    assert!(
        err.message.contains("expected a Kubernetes object"),
        "{}",
        err.message
    );
    let err = f.error("apps/forever").await;
    assert!(
        err.message.starts_with("apps/forever/main.jsonnet: "),
        "{}",
        err.message
    );
    // Without its libs, the app's own import fails, and says which.
    let err = f.error("apps/web").await;
    assert!(
        err.message.contains("import \"k.libsonnet\" not found"),
        "{}",
        err.message
    );
    // And nothing above disturbed the renderer.
    f.render("apps/web", Some(settings()))
        .await
        .into_result()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_read_inside_the_repository_only() {
    let f = Apps(Fixture::start(write_repo).await);
    let linked = f.render("apps/linked", None).await.into_result().unwrap();
    assert_eq!(
        linked.manifests,
        [json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}})]
    );
    let err = f.error("apps/leaky").await;
    assert!(
        err.message.contains("\"apps/leaky/x.yaml\"")
            && err.message.contains("outside the repository"),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains("root:"),
        "nothing of the target is read: {}",
        err.message
    );
}
