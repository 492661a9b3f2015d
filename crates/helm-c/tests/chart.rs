//! The Helm library loaded for real: charts rendered, values read as Helm reads them, and
//! Helm's own errors. Needs the library (`cargo xtask test` installs and points to it).

use std::fs;
use std::path::Path;

use gitfleet_helm_c::{ErrorKind, Helm, RenderOptions, SetKind, configured_path};
use serde_json::json;

fn helm() -> &'static Helm {
    let path =
        configured_path().expect("GITFLEET_HELM_C_LIB or GITFLEET_TOOLS is set (cargo xtask test)");
    Helm::load(&path).unwrap()
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

fn chart(root: &Path) {
    write(
        root,
        &[
            ("Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.2.0\n"),
            ("values.yaml", "replicas: 1\nsub:\n  color: blue\n"),
            (
                "templates/_helpers.tpl",
                "{{- define \"web.fullname\" -}}{{ .Release.Name }}-web{{- end -}}\n",
            ),
            (
                "templates/deploy.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"web.fullname\" . }}\n  namespace: {{ .Release.Namespace }}\nspec:\n  replicas: {{ .Values.replicas }}\n  kube: {{ .Capabilities.KubeVersion.Version }}\n  hasFoo: {{ .Capabilities.APIVersions.Has \"foo.io/v1\" }}\n",
            ),
            ("templates/NOTES.txt", "installed {{ .Release.Name }}\n"),
            (
                "crds/foo.yaml",
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: foos.foo.io\n",
            ),
            (
                "charts/sub/Chart.yaml",
                "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
            ),
            ("charts/sub/values.yaml", "color: red\n"),
            (
                "charts/sub/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sub\ndata:\n  color: {{ .Values.color }}\n",
            ),
        ],
    );
}

#[test]
fn a_chart_renders_with_its_dependency_values_and_capabilities() {
    let helm = helm();
    assert!(
        helm.sdk_version().starts_with("v4."),
        "{}",
        helm.sdk_version()
    );
    let dir = tempfile::tempdir().unwrap();
    chart(dir.path());
    let before = helm.open_handles();
    {
        let chart = helm.load_chart(dir.path()).unwrap();
        assert_eq!(chart.metadata().unwrap()["version"], "1.2.0");
        let options = RenderOptions {
            release_name: "shop".into(),
            namespace: "prod".into(),
            kube_version: Some("v1.31.4".into()),
            api_versions: vec!["foo.io/v1".into()],
        };
        let out = chart
            .render(&json!({"replicas": 3, "sub": {"color": "green"}}), &options)
            .unwrap();
        let deploy = &out["web/templates/deploy.yaml"];
        assert!(
            deploy.contains("name: shop-web\n  namespace: prod\n"),
            "{deploy}"
        );
        assert!(
            deploy.contains("replicas: 3\n  kube: v1.31.4\n  hasFoo: true\n"),
            "{deploy}"
        );
        assert_eq!(
            out["web/charts/sub/templates/cm.yaml"].lines().last(),
            Some("  color: green")
        );
        assert_eq!(out["web/templates/NOTES.txt"], "installed shop\n");
        assert!(
            !out.keys().any(|k| k.contains("_helpers")),
            "{:?}",
            out.keys()
        );
        let crds = chart.crds().unwrap();
        assert_eq!(crds.len(), 1);
        assert_eq!(crds[0].name, "crds/foo.yaml");
        assert!(crds[0].data.contains("foos.foo.io"));
    }
    assert_eq!(
        helm.open_handles(),
        before,
        "the chart's handle is freed on drop"
    );
}

#[test]
fn values_and_set_expressions_read_as_helm_reads_them() {
    let helm = helm();
    assert_eq!(
        helm.values_from_yaml("a: yes\nb: 0x10\nc: '1'\n").unwrap(),
        json!({"a": true, "b": 16, "c": "1"})
    );
    assert_eq!(
        helm.parse_set("a.b=1,c[1]=x", SetKind::Typed).unwrap(),
        json!({"a": {"b": 1}, "c": [null, "x"]})
    );
    assert_eq!(
        helm.parse_set("a=true", SetKind::String).unwrap(),
        json!({"a": "true"})
    );
    assert_eq!(
        helm.parse_set("a=1,2", SetKind::Literal).unwrap(),
        json!({"a": "1,2"})
    );
    let err = helm.values_from_yaml("a: [1\n").unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Values), "{err}");
    let err = helm.parse_set("a", SetKind::Typed).unwrap_err();
    assert!(err.to_string().contains(r#"key "a" has no value"#), "{err}");
}

#[test]
fn helm_errors_name_the_template_and_line() {
    let helm = helm();
    let dir = tempfile::tempdir().unwrap();
    chart(dir.path());
    write(
        dir.path(),
        &[(
            "templates/bad.yaml",
            "a: 1\nb: {{ .Values.x | nosuchfunc }}\n",
        )],
    );
    let err = helm
        .load_chart(dir.path())
        .and_then(|c| c.render(&json!({}), &RenderOptions::default()).map(|_| ()))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("templates/bad.yaml:2"), "{text}");
    assert!(text.contains("nosuchfunc"), "{text}");

    let err = helm.load_chart(&dir.path().join("missing")).err().unwrap();
    assert!(err.kind().is_some(), "{err}");
    assert!(Helm::load(Path::new("relative/libhelm_c.so")).is_err());
    assert!(Helm::load(Path::new("/nonexistent/libhelm_c.so")).is_err());
}
