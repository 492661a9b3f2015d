//! Kustomize apps through the renderer and the real git-watcher over one nats-server, with
//! the real Kustomize (`kubectl kustomize` from tools/): the output equals what Kustomize
//! prints for the same overlay with the Application's overrides written into it by hand;
//! the render reads the bases and components it uses and nothing else; bad input is an
//! error that names what to fix.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Fixture, error, write};
use gitfleet_messages::{RenderRequest, Rendered, Reply};
use gitfleet_model::{ApplicationSource, KustomizeSource};
use serde_json::{Value, json};

const BASE_KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deploy.yaml
  - svc.yaml
";

const DEPLOY: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: web:1.0
";

const SVC: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
";

const PRODUCTION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
namePrefix: prod-
patches:
  - path: memory.yaml
configMapGenerator:
  - name: settings
    files:
      - app.conf
";

const MEMORY_PATCH: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          resources: {limits: {memory: 512Mi}}
";

const TLS_COMPONENT: &str = "\
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
  - cert.yaml
";

const CERT: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: tls
type: kubernetes.io/tls
";

/// The production overlay with what `apply_overrides` writes for [`overrides`], by hand.
const PRODUCTION_EDITED: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
namePrefix: prod-
patches:
  - path: memory.yaml
configMapGenerator:
  - name: settings
    files:
      - app.conf
images:
  - name: web
    newName: registry.example/web
    newTag: \"2.0\"
replicas:
  - name: web
    count: 5
commonLabels:
  owner: shop
components:
  - ../../../../components/tls
";

fn write_repo(root: &Path) {
    write(root, "apps/api/base/kustomization.yaml", BASE_KUSTOMIZATION);
    write(root, "apps/api/base/deploy.yaml", DEPLOY);
    write(root, "apps/api/base/svc.yaml", SVC);
    write(
        root,
        "apps/api/overlays/production/kustomization.yaml",
        PRODUCTION,
    );
    write(
        root,
        "apps/api/overlays/production/memory.yaml",
        MEMORY_PATCH,
    );
    write(
        root,
        "apps/api/overlays/production/app.conf",
        "threads = 8\n",
    );
    write(root, "components/tls/kustomization.yaml", TLS_COMPONENT);
    write(root, "components/tls/cert.yaml", CERT);
    // Read by nothing here: a render must not fetch it.
    write(
        root,
        "apps/other/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n",
    );
    // Bad inputs.
    write(
        root,
        "apps/missing-base/kustomization.yaml",
        "resources:\n  - ../nope\n",
    );
    write(
        root,
        "apps/escapes/kustomization.yaml",
        "resources:\n  - ../../../outside\n",
    );
}

fn overrides() -> KustomizeSource {
    KustomizeSource {
        images: vec!["web=registry.example/web:2.0".into()],
        replicas: vec![json!({"name": "web", "count": 5})],
        common_labels: [("owner".to_string(), "${ARGOCD_APP_NAME}".to_string())].into(),
        components: vec!["../../../../components/tls".into()],
        ..KustomizeSource::default()
    }
}

/// What the real Kustomize prints for `dir`, as JSON values.
fn kustomize_build(dir: &Path) -> Vec<Value> {
    let tool = renderer::KustomizeTool::default();
    let out = Command::new(&tool.command[0])
        .args(&tool.command[1..])
        .arg(dir)
        .output()
        .expect("run kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    renderer::directory::parse_manifests("expected", &text).unwrap()
}

async fn start() -> Fixture {
    Fixture::start(write_repo).await
}

async fn render(f: &Fixture, path: &str, kustomize: Option<KustomizeSource>) -> Reply<Rendered> {
    let source = ApplicationSource {
        path: path.into(),
        kustomize,
        ..ApplicationSource::default()
    };
    let request = RenderRequest {
        namespace: "shop".into(),
        ..f.request(source)
    };
    f.render(&request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlay_with_app_overrides_renders_as_kustomize_builds_it() {
    let f = start().await;
    let rendered = render(&f, "apps/api/overlays/production", Some(overrides()))
        .await
        .into_result()
        .unwrap();

    // The same overlay with the overrides written in by hand, built by Kustomize itself.
    let expected_repo = tempfile::tempdir().unwrap();
    write_repo(expected_repo.path());
    write(
        expected_repo.path(),
        "apps/api/overlays/production/kustomization.yaml",
        PRODUCTION_EDITED,
    );
    let expected = kustomize_build(&expected_repo.path().join("apps/api/overlays/production"));
    assert_eq!(rendered.manifests, expected);

    // The overrides did reach the output (so the comparison above is not vacuous).
    let deploy = rendered
        .manifests
        .iter()
        .find(|m| m["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deploy["metadata"]["name"], "prod-web");
    assert_eq!(deploy["spec"]["replicas"], 5);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/web:2.0"
    );
    assert_eq!(deploy["metadata"]["labels"]["owner"], "shop");
    assert!(
        rendered
            .manifests
            .iter()
            .any(|m| m["metadata"]["name"] == "prod-tls")
    );
    assert!(
        rendered
            .manifests
            .iter()
            .all(|m| m["kind"] != "Kustomization" && m["kind"] != "Component")
    );

    // What it read: the overlay, its base and the component; not the rest of the repo.
    assert_eq!(
        rendered.inputs,
        [
            "apps/api/base",
            "apps/api/overlays/production",
            "components/tls"
        ]
    );

    // Without overrides: exactly Kustomize's output of the overlay as committed.
    let plain = render(&f, "apps/api/overlays/production", None)
        .await
        .into_result()
        .unwrap();
    let committed = tempfile::tempdir().unwrap();
    write_repo(committed.path());
    assert_eq!(
        plain.manifests,
        kustomize_build(&committed.path().join("apps/api/overlays/production"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_kustomize_input_is_an_error_naming_it() {
    let f = start().await;

    let missing = error(render(&f, "apps/missing-base", None).await);
    assert!(
        missing
            .message
            .starts_with("kustomize build apps/missing-base failed: "),
        "{missing}"
    );
    assert!(missing.message.contains("nope"), "{missing}");
    assert!(
        !missing.message.contains("gitfleet-kustomize-"),
        "{missing}"
    );

    let escapes = error(render(&f, "apps/escapes", None).await);
    assert_eq!(
        escapes.message,
        "apps/escapes/kustomization.yaml: resources: \"../../../outside\" leaves the repository"
    );

    let path = error(render(&f, "../elsewhere", None).await);
    assert_eq!(
        path.message,
        "source path: \"../elsewhere\" leaves the repository"
    );

    let component = error(
        render(
            &f,
            "apps/api/overlays/production",
            Some(KustomizeSource {
                components: vec!["../../nothing-here".into()],
                ..KustomizeSource::default()
            }),
        )
        .await,
    );
    assert_eq!(
        component.message,
        "apps/api/overlays/production/kustomization.yaml: components: \"../../nothing-here\" \
         does not exist"
    );

    let version = error(
        render(
            &f,
            "apps/api/overlays/production",
            Some(KustomizeSource {
                version: "v4.5.7".into(),
                ..KustomizeSource::default()
            }),
        )
        .await,
    );
    assert!(version.message.contains("v4.5.7"), "{version}");
}
