//! Helm charts in Git through the renderer and the real git-watcher over one nats-server,
//! with Helm v4's real engine (the C library from tools/): values files (a glob among
//! them), inline values, parameters and file parameters merged in Helm's order, helpers, a
//! dependency vendored as a folder and one as an archive in `charts/`, CRDs, tests left
//! out; the output is what `helm template` prints for the same flags, written out by hand.
//! Bad input is an error naming the file and Helm's own message.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Fixture, commit_all, error, write};
use gitfleet_messages::{RefSource, RenderRequest, Rendered, Reply, ServiceError};
use gitfleet_model::{ApplicationSource, HelmFileParameter, HelmParameter, HelmSource};
use serde_json::{Value, json};

const CHART: &str = "\
apiVersion: v2
name: web
version: 1.0.0
dependencies:
  - name: redis
    version: 0.1.0
  - name: cache
    version: 0.1.0
";

const VALUES: &str = "\
replicas: 1
image:
  repository: web
  tag: \"1.0\"
env: dev
tier: none
redis:
  size: small
";

const SCHEMA: &str = r#"{"type": "object", "properties": {"replicas": {"type": "integer"}}}"#;

const HELPERS: &str = "\
{{- define \"web.fullname\" -}}
{{ .Release.Name }}-web
{{- end -}}
";

const DEPLOY: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include \"web.fullname\" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    env: {{ .Values.env }}
spec:
  replicas: {{ .Values.replicas }}
  template:
    spec:
      containers:
        - name: web
          image: {{ .Values.image.repository }}:{{ .Values.image.tag }}
";

const CONFIG: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  tier: {{ .Values.tier | quote }}
  extra: {{ .Values.extra | quote }}
  config: {{ .Values.config | quote }}
";

const TEST_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    helm.sh/hook: test
spec:
  containers: [{name: t, image: busybox}]
";

const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
";

const REDIS_SVC: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-redis
  labels:
    size: {{ .Values.size }}
";

fn write_repo(root: &Path) {
    let web = |p: &str, c: &str| write(root, &format!("charts/web/{p}"), c);
    web("Chart.yaml", CHART);
    web("values.yaml", VALUES);
    web("values.schema.json", SCHEMA);
    web("values-prod.yaml", "replicas: 3\nenv: prod\n");
    web("envs/a.yaml", "tier: a\n");
    web("envs/b.yaml", "tier: b\n");
    web("files/app.conf", "threads = 8\n");
    web("templates/_helpers.tpl", HELPERS);
    web("templates/deploy.yaml", DEPLOY);
    web("templates/config.yaml", CONFIG);
    web("templates/test.yaml", TEST_POD);
    web(
        "templates/off.yaml",
        "{{- if .Values.never }}\nkind: Nothing\n{{- end }}\n",
    );
    web("templates/NOTES.txt", "Installed {{ .Release.Name }}.\n");
    web("crds/widget.yaml", CRD);
    web(
        "charts/redis/Chart.yaml",
        "apiVersion: v2\nname: redis\nversion: 0.1.0\n",
    );
    web("charts/redis/values.yaml", "size: large\n");
    web("charts/redis/templates/svc.yaml", REDIS_SVC);
    // A dependency as Helm vendors it: an archive, a binary file in Git.
    let cache = tempfile::tempdir().unwrap();
    write(
        cache.path(),
        "cache/Chart.yaml",
        "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
    );
    write(
        cache.path(),
        "cache/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cache\n",
    );
    std::fs::create_dir_all(root.join("charts/web/charts")).unwrap();
    let status = Command::new("tar")
        .arg("-czf")
        .arg(root.join("charts/web/charts/cache-0.1.0.tgz"))
        .arg("-C")
        .arg(cache.path())
        .arg("cache")
        .status()
        .unwrap();
    assert!(status.success());
    // Outside the chart, read through a values file path.
    write(root, "envs/prod/web.yaml", "env: production\n");
    // Read by nothing here.
    write(
        root,
        "apps/other/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: o\n",
    );
    // Bad inputs.
    let broken = |p: &str, c: &str| write(root, &format!("charts/broken/{p}"), c);
    broken(
        "Chart.yaml",
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    );
    broken(
        "templates/deploy.yaml",
        "kind: ConfigMap\nmetadata:\n  name: {{ required \"name is required\" .Values.name }}\n",
    );
    broken("bad-values.yaml", "image: [tag\n");
    let garbled = |p: &str, c: &str| write(root, &format!("charts/garbled/{p}"), c);
    garbled(
        "Chart.yaml",
        "apiVersion: v2\nname: garbled\nversion: 0.1.0\n",
    );
    garbled(
        "templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [name: x\n",
    );
}

/// The Application's Helm settings under test.
fn settings() -> HelmSource {
    HelmSource {
        value_files: vec!["values-prod.yaml".into(), "envs/*.yaml".into()],
        values: "image:\n  tag: \"2.0\"\n".into(),
        parameters: vec![
            HelmParameter {
                name: "replicas".into(),
                value: "5".into(),
                force_string: false,
            },
            HelmParameter {
                name: "extra".into(),
                value: "a,b".into(),
                force_string: true,
            },
        ],
        file_parameters: vec![HelmFileParameter {
            name: "config".into(),
            path: "files/app.conf".into(),
        }],
        release_name: "shop".into(),
        skip_tests: true,
        ..HelmSource::default()
    }
}

/// What `helm template charts/web --name-template shop --namespace prod --include-crds
/// --skip-tests --values values-prod.yaml --values envs/a.yaml --values envs/b.yaml
/// --values <inline> --set replicas=5 --set-string extra=a\,b --set-file
/// config=files/app.conf` prints, as manifests: CRDs first, then each template's output by
/// template path (Helm prints them sorted by kind; the order means nothing to a sync).
fn expected() -> Vec<Value> {
    vec![
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-cache"}}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "shop-redis", "labels": {"size": "small"}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-config"},
               "data": {"tier": "b", "extra": "a,b", "config": "threads = 8\n"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "shop-web", "namespace": "prod", "labels": {"env": "prod"}},
               "spec": {"replicas": 5, "template": {"spec": {"containers": [
                   {"name": "web", "image": "web:2.0"}]}}}}),
    ]
}

/// The chart repository, and a second one: the `ref` source `values` of a two-source app.
struct Charts {
    f: Fixture,
    values: RefSource,
}

impl Charts {
    async fn start() -> Charts {
        let f = Fixture::start(write_repo).await;
        let values_work = f.dir.path().join("values");
        write(
            &values_work,
            "envs/prod.yaml",
            "replicas: 7\nenv: from-ref\n",
        );
        write(&values_work, "files/app.conf", "threads = 16\n");
        let (repo, commit) = commit_all(&values_work);
        let values = RefSource {
            name: "values".into(),
            repo,
            commit,
        };
        Charts { f, values }
    }

    async fn render(&self, path: &str, helm: Option<HelmSource>) -> Reply<Rendered> {
        self.render_with(path, helm, Vec::new()).await
    }

    async fn render_with(
        &self,
        path: &str,
        helm: Option<HelmSource>,
        refs: Vec<RefSource>,
    ) -> Reply<Rendered> {
        let source = ApplicationSource {
            path: path.into(),
            helm,
            ..ApplicationSource::default()
        };
        let request = RenderRequest {
            app_name: "shop-app".into(),
            refs,
            ..self.f.request(source)
        };
        self.f.render(&request).await
    }

    async fn error(&self, path: &str, helm: Option<HelmSource>) -> ServiceError {
        error(self.render(path, helm).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_renders_as_helm_template_prints_it() {
    let f = Charts::start().await;
    let rendered = f
        .render("charts/web", Some(settings()))
        .await
        .into_result()
        .unwrap();
    assert_eq!(rendered.manifests, expected());
    // The chart's folder holds everything it read.
    assert_eq!(rendered.inputs, ["charts/web"]);

    // Detected without a helm section: the chart's defaults, the app's name as release,
    // the test pod kept (Argo CD applies it unless skipTests).
    let plain = f.render("charts/web", None).await.into_result().unwrap();
    let names: Vec<&str> = plain
        .manifests
        .iter()
        .map(|m| m["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "widgets.example.com",
            "shop-app-cache",
            "shop-app-redis",
            "shop-app-config",
            "shop-app-web",
            "shop-app-test"
        ]
    );
    let deploy = &plain.manifests[4];
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(deploy["metadata"]["labels"]["env"], "dev");

    // skipCrds, another namespace, and a values file outside the chart (an input too).
    let other = HelmSource {
        value_files: vec!["../../envs/prod/web.yaml".into()],
        namespace: "elsewhere".into(),
        skip_crds: true,
        ..HelmSource::default()
    };
    let rendered = f
        .render("charts/web", Some(other))
        .await
        .into_result()
        .unwrap();
    assert!(
        rendered
            .manifests
            .iter()
            .all(|m| m["kind"] != "CustomResourceDefinition")
    );
    let deploy = rendered
        .manifests
        .iter()
        .find(|m| m["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deploy["metadata"]["namespace"], "elsewhere");
    assert_eq!(deploy["metadata"]["labels"]["env"], "production");
    assert_eq!(rendered.inputs, ["charts/web", "envs/prod/web.yaml"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_helm_input_is_an_error_naming_it() {
    let f = Charts::start().await;

    let err = f.error("charts/broken", None).await;
    assert!(
        err.message.contains("broken/templates/deploy.yaml")
            && err.message.contains("name is required"),
        "{}",
        err.message
    );

    let missing = HelmSource {
        value_files: vec!["values-nope.yaml".into()],
        ..HelmSource::default()
    };
    let err = f.error("charts/web", Some(missing.clone())).await;
    assert_eq!(
        err.message,
        "charts/web: values file \"values-nope.yaml\" (charts/web/values-nope.yaml) does not exist in the repository"
    );
    let ignored = HelmSource {
        ignore_missing_value_files: true,
        ..missing
    };
    f.render("charts/web", Some(ignored))
        .await
        .into_result()
        .unwrap();
    let no_match = HelmSource {
        value_files: vec!["nope/*.yaml".into()],
        ..HelmSource::default()
    };
    let err = f.error("charts/web", Some(no_match)).await;
    assert!(
        err.message.contains("\"nope/*.yaml\" matched no files"),
        "{}",
        err.message
    );

    for escape in ["../../../etc/passwd", "/../etc/passwd"] {
        let outside = HelmSource {
            value_files: vec![escape.into()],
            ..HelmSource::default()
        };
        let err = f.error("charts/web", Some(outside)).await;
        assert_eq!(
            err.message,
            format!("values file {escape:?} leaves the repository")
        );
    }
    let remote = HelmSource {
        value_files: vec!["file:///etc/passwd".into()],
        ..HelmSource::default()
    };
    assert!(
        f.error("charts/web", Some(remote))
            .await
            .message
            .contains("not fetched")
    );

    let malformed = HelmSource {
        value_files: vec!["bad-values.yaml".into()],
        ..HelmSource::default()
    };
    let err = f.error("charts/broken", Some(malformed)).await;
    assert!(
        err.message
            .starts_with("values file charts/broken/bad-values.yaml: "),
        "{}",
        err.message
    );

    let err = f.error("charts/garbled", None).await;
    assert!(
        err.message
            .contains("charts/garbled: garbled/templates/cm.yaml"),
        "{}",
        err.message
    );

    // The chart's schema is enforced, unless the app skips it.
    let stringly = |skip: bool| HelmSource {
        parameters: vec![HelmParameter {
            name: "replicas".into(),
            value: "5".into(),
            force_string: true,
        }],
        skip_schema_validation: skip,
        ..HelmSource::default()
    };
    let err = f.error("charts/web", Some(stringly(false))).await;
    assert!(err.message.contains("/replicas"), "{}", err.message);
    let rendered = f
        .render("charts/web", Some(stringly(true)))
        .await
        .into_result()
        .unwrap();
    let deploy = rendered
        .manifests
        .iter()
        .find(|m| m["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deploy["spec"]["replicas"], 5);

    // Nothing above disturbed the renderer.
    f.render("charts/web", Some(settings()))
        .await
        .into_result()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_from_a_ref_source_of_a_two_source_app() {
    let f = Charts::start().await;
    let helm = HelmSource {
        value_files: vec!["values-prod.yaml".into(), "$values/envs/prod.yaml".into()],
        file_parameters: vec![HelmFileParameter {
            name: "config".into(),
            path: "$values/files/app.conf".into(),
        }],
        ..HelmSource::default()
    };
    let rendered = f
        .render_with("charts/web", Some(helm.clone()), vec![f.values.clone()])
        .await
        .into_result()
        .unwrap();
    let deploy = rendered
        .manifests
        .iter()
        .find(|m| m["kind"] == "Deployment")
        .unwrap();
    // values-prod.yaml says 3 and prod; the ref source's file, later, wins.
    assert_eq!(deploy["spec"]["replicas"], 7);
    assert_eq!(deploy["metadata"]["labels"]["env"], "from-ref");
    let config = rendered
        .manifests
        .iter()
        .find(|m| m["metadata"]["name"] == "shop-app-config")
        .unwrap();
    assert_eq!(config["data"]["config"], "threads = 16\n");
    // The chart's own repository is what the inputs list; the ref's commit is in the
    // request, so a commit there is a new render anyway.
    assert_eq!(rendered.inputs, ["charts/web"]);

    // No such ref, a path leaving the ref's repository, a file it lacks.
    let err = match f
        .render_with("charts/web", Some(helm.clone()), Vec::new())
        .await
    {
        Reply::Error(err) => err,
        Reply::Ok(r) => panic!("rendered {r:?}"),
    };
    assert!(
        err.message
            .contains("no source of the application has ref \"values\""),
        "{}",
        err.message
    );
    for (entry, expected) in [
        ("$values/../../etc/passwd", "leaves the repository"),
        ("$values/envs/nope.yaml", "does not exist in source $values"),
    ] {
        let bad = HelmSource {
            value_files: vec![entry.into()],
            ..HelmSource::default()
        };
        let err = match f
            .render_with("charts/web", Some(bad), vec![f.values.clone()])
            .await
        {
            Reply::Error(err) => err,
            Reply::Ok(r) => panic!("rendered {r:?}"),
        };
        assert!(err.message.contains(expected), "{entry}: {}", err.message);
    }
}
