//! Kustomize sources: the files a kustomization reads (its bases, components, patches and
//! generator inputs, followed through every kustomization they reach) are fetched into a
//! private scratch copy, the Application's overrides are written into the app's
//! kustomization the way Argo CD's `kustomize edit` calls write them, and the real
//! Kustomize (`kubectl kustomize`, or a `kustomize` binary) builds it. Parallel renders of
//! one repository never share a directory.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use gitfleet_model::KustomizeSource;
use serde_json::{Map, Value, json};

use crate::build_env::BuildEnv;
use crate::directory::{parse_manifests, parse_yaml_documents};
use crate::fetch::{self, Fetcher};
use crate::process::{ToolRun, run};
use gitfleet_messages::ServiceError;

/// The file names Kustomize looks for in a directory, in its order.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// How to run Kustomize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KustomizeTool {
    /// The program and the arguments before the directory: `kubectl kustomize`, or
    /// `kustomize build`.
    pub command: Vec<String>,
    /// One build may take this long; then it is killed.
    pub timeout: Duration,
    /// A build printing more than this fails (a runaway generator, not a config).
    pub max_output_bytes: usize,
}

impl Default for KustomizeTool {
    /// `$GITFLEET_KUSTOMIZE build` when set, else `$GITFLEET_KUBECTL kustomize` (the
    /// project's tools/ sets it), else `kubectl kustomize` from PATH.
    fn default() -> Self {
        let command = match (
            std::env::var("GITFLEET_KUSTOMIZE"),
            std::env::var("GITFLEET_KUBECTL"),
        ) {
            (Ok(kustomize), _) if !kustomize.is_empty() => vec![kustomize, "build".into()],
            (_, Ok(kubectl)) if !kubectl.is_empty() => vec![kubectl, "kustomize".into()],
            _ => vec!["kubectl".into(), "kustomize".into()],
        };
        KustomizeTool {
            command,
            timeout: Duration::from_secs(90),
            max_output_bytes: 64 << 20,
        }
    }
}

/// The kustomization file among the file `names` of one directory, if any.
pub fn kustomization_in(names: &[&str]) -> Option<&'static str> {
    KUSTOMIZATION_FILES.into_iter().find(|k| names.contains(k))
}

/// Renders the kustomization at `path`: fetches its closure, applies the overrides,
/// builds.
pub async fn render(
    fetcher: &mut Fetcher,
    tool: &KustomizeTool,
    path: &str,
    overrides: Option<&KustomizeSource>,
    env: &BuildEnv,
) -> Result<Vec<Value>, ServiceError> {
    if let Some(version) = overrides
        .map(|o| o.version.as_str())
        .filter(|v| !v.is_empty())
    {
        return Err(ServiceError::invalid(format!(
            "kustomize.version {version:?}: only the built-in Kustomize is configured"
        )));
    }
    fetcher.dir(path, true).await?;
    let app_components: Vec<String> = overrides.map(|o| o.components.clone()).unwrap_or_default();
    fetch_closure(fetcher, path, &app_components).await?;

    let scratch = tempfile::Builder::new()
        .prefix("gitfleet-kustomize-")
        .tempdir()
        .map_err(|err| ServiceError::internal(format!("creating a scratch directory: {err}")))?;
    fetcher.write_to(scratch.path())?;
    let app_dir = scratch.path().join(path);
    if let Some(overrides) = overrides {
        let (file, mut kustomization) = read_kustomization(fetcher, path)?;
        apply_overrides(&mut kustomization, overrides, env, |component| {
            fetch::join(path, component)
                .map(|p| fetcher.files().keys().any(|f| fetch::is_below(f, &p)))
                .unwrap_or(false)
        })
        .map_err(|message| ServiceError::invalid(format!("{file}: {message}")))?;
        let text = serde_yaml_ng::to_string(&kustomization)
            .map_err(|err| ServiceError::internal(format!("writing {file}: {err}")))?;
        std::fs::write(scratch.path().join(&file), text)
            .map_err(|err| ServiceError::internal(format!("writing {file}: {err}")))?;
    }
    let output = build(tool, &app_dir, scratch.path(), path).await?;
    let label = format!("kustomize build {}", display_path(path));
    parse_manifests(&label, &output).map_err(|err| ServiceError::invalid(err.to_string()))
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

/// Follows every local reference of every kustomization reached from `path`.
async fn fetch_closure(
    fetcher: &mut Fetcher,
    path: &str,
    app_components: &[String],
) -> Result<(), ServiceError> {
    let mut scanned: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<(String, String, String)> = app_components
        .iter()
        .map(|c| (path.to_owned(), "components".to_owned(), c.clone()))
        .collect();
    loop {
        // Every kustomization fetched so far and not yet read.
        let kustomizations: Vec<String> = fetcher
            .files()
            .keys()
            .filter(|f| {
                let name = f.rsplit('/').next().unwrap_or(f);
                KUSTOMIZATION_FILES.contains(&name) && !scanned.contains(*f)
            })
            .cloned()
            .collect();
        for file in kustomizations {
            scanned.insert(file.clone());
            let dir = file.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
            let content = &fetcher.files()[&file].content;
            let Some(document) = parse_yaml_documents(&file, content)
                .map_err(|err| ServiceError::invalid(err.to_string()))?
                .into_iter()
                .next()
            else {
                continue;
            };
            for (field, reference) in references(&document) {
                pending.push((dir.clone(), format!("{file}: {field}"), reference));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        for (dir, field, reference) in std::mem::take(&mut pending) {
            if is_remote(&reference) {
                continue;
            }
            let target = fetch::join(&dir, &reference)
                .map_err(|err| ServiceError::invalid(format!("{field}: {err}")))?;
            fetcher.reference(&target).await?;
        }
    }
}

/// A remote base (`github.com/org/repo//path?ref=v1`, `https://...`): Kustomize fetches
/// those itself, and on this mesh they fail with Kustomize's own error.
fn is_remote(reference: &str) -> bool {
    reference.contains("://")
        || reference.contains("?ref=")
        || reference.starts_with("git@")
        || reference.starts_with("github.com/")
        || reference.starts_with("gitlab.com/")
        || reference.starts_with("bitbucket.org/")
}

/// The local paths a kustomization names, with the field that names each.
fn references(kustomization: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |field: &str, value: Option<&Value>| {
        if let Some(Value::String(s)) = value {
            // Inline YAML (a patch, a generator config) is not a path.
            if !s.contains('\n') && !s.trim().is_empty() {
                out.push((field.to_owned(), s.trim().to_owned()));
            }
        }
    };
    for field in [
        "resources",
        "bases",
        "components",
        "crds",
        "configurations",
        "generators",
        "transformers",
        "validators",
        "patchesStrategicMerge",
    ] {
        for item in array(kustomization.get(field)) {
            push(field, Some(item));
        }
    }
    for field in ["patches", "patchesJson6902", "replacements"] {
        for item in array(kustomization.get(field)) {
            push(field, item.get("path"));
        }
    }
    for field in ["configMapGenerator", "secretGenerator"] {
        for generator in array(kustomization.get(field)) {
            for file in array(generator.get("files")) {
                // `key=path` or `path`.
                let path = file
                    .as_str()
                    .map(|f| f.split_once('=').map_or(f, |(_, p)| p).to_owned());
                push(field, path.map(Value::String).as_ref());
            }
            for env in array(generator.get("envs")) {
                push(field, Some(env));
            }
            push(field, generator.get("env"));
        }
    }
    push(
        "openapi",
        kustomization.get("openapi").and_then(|o| o.get("path")),
    );
    if let Some(home) = kustomization
        .get("helmGlobals")
        .and_then(|h| h.get("chartHome"))
    {
        push("helmGlobals", Some(home));
    }
    for chart in array(kustomization.get("helmCharts")) {
        push("helmCharts", chart.get("valuesFile"));
        for file in array(chart.get("additionalValuesFiles")) {
            push("helmCharts", Some(file));
        }
    }
    out
}

fn array(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn read_kustomization(fetcher: &Fetcher, path: &str) -> Result<(String, Value), ServiceError> {
    let names: Vec<&str> = fetcher
        .files_in(path)
        .map(|f| f.path.rsplit('/').next().unwrap_or(&f.path))
        .collect();
    let name = kustomization_in(&names).ok_or_else(|| {
        ServiceError::invalid(format!(
            "{}: no kustomization.yaml, kustomization.yml or Kustomization",
            display_path(path)
        ))
    })?;
    let file = if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}/{name}")
    };
    let document = parse_yaml_documents(&file, &fetcher.files()[&file].content)
        .map_err(|err| ServiceError::invalid(err.to_string()))?
        .into_iter()
        .next()
        .unwrap_or(Value::Object(Map::new()));
    if !document.is_object() {
        return Err(ServiceError::invalid(format!("{file}: not a mapping")));
    }
    Ok((file, document))
}

/// Writes the Application's `kustomize` settings into the kustomization, as Argo CD's
/// `kustomize edit set|add ...` calls do: prefix, suffix and namespace replace what is
/// there; images and replicas merge by name; labels and annotations are added (a key
/// already there is an error unless forced); patches and components are appended.
/// `component_exists` says whether an app-level component path has files.
///
/// `kubeVersion` and `apiVersions` are not written anywhere: Argo CD passes them to
/// Kustomize only as `--helm-kube-version`/`--helm-api-versions` when its build options
/// enable Helm chart inflation (`util/kustomize/kustomize.go`), and gitfleet runs no Helm
/// binary for Kustomize, so a kustomization with `helmCharts` is Kustomize's own error.
pub fn apply_overrides(
    kustomization: &mut Value,
    overrides: &KustomizeSource,
    env: &BuildEnv,
    component_exists: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let Value::Object(k) = kustomization else {
        return Err("not a mapping".into());
    };
    if !overrides.name_prefix.is_empty() {
        k.insert("namePrefix".into(), json!(overrides.name_prefix));
    }
    if !overrides.name_suffix.is_empty() {
        k.insert("nameSuffix".into(), json!(overrides.name_suffix));
    }
    if !overrides.images.is_empty() {
        let mut images: Vec<Value> = array(k.get("images")).to_vec();
        for image in &overrides.images {
            let wanted = parse_image(&env.substitute(image))?;
            merge_image(&mut images, wanted);
        }
        images.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        k.insert("images".into(), Value::Array(images));
    }
    if !overrides.replicas.is_empty() {
        let mut replicas: Vec<Value> = array(k.get("replicas")).to_vec();
        for replica in &overrides.replicas {
            let name = replica
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or("replicas: an entry has no name")?;
            let count = count_of(replica.get("count"))
                .ok_or_else(|| format!("replicas: {name}: count is not a number"))?;
            match replicas.iter_mut().find(|r| name_of(r) == name) {
                Some(existing) => existing["count"] = json!(count),
                None => replicas.push(json!({"name": name, "count": count})),
            }
        }
        k.insert("replicas".into(), Value::Array(replicas));
    }
    if !overrides.common_labels.is_empty() {
        let labels: Map<String, Value> = overrides
            .common_labels
            .iter()
            .map(|(key, value)| (key.clone(), json!(env.substitute(value))))
            .collect();
        if overrides.label_without_selector {
            let mut entry = json!({"pairs": labels});
            if overrides.label_include_templates {
                entry["includeTemplates"] = json!(true);
            }
            let mut all = array(k.get("labels")).to_vec();
            all.push(entry);
            k.insert("labels".into(), Value::Array(all));
        } else {
            add_pairs(
                k,
                "commonLabels",
                "label",
                labels,
                overrides.force_common_labels,
            )?;
        }
    }
    if !overrides.common_annotations.is_empty() {
        let annotations: Map<String, Value> = overrides
            .common_annotations
            .iter()
            .map(|(key, value)| {
                let value = if overrides.common_annotations_envsubst {
                    env.substitute(value)
                } else {
                    value.clone()
                };
                (key.clone(), json!(value))
            })
            .collect();
        add_pairs(
            k,
            "commonAnnotations",
            "annotation",
            annotations,
            overrides.force_common_annotations,
        )?;
    }
    if !overrides.namespace.is_empty() {
        k.insert("namespace".into(), json!(overrides.namespace));
    }
    if !overrides.patches.is_empty() {
        let mut patches = array(k.get("patches")).to_vec();
        patches.extend(overrides.patches.iter().cloned());
        k.insert("patches".into(), Value::Array(patches));
    }
    if !overrides.components.is_empty() {
        let mut components = array(k.get("components")).to_vec();
        for component in &overrides.components {
            if !component_exists(component) {
                if overrides.ignore_missing_components {
                    continue;
                }
                return Err(format!("components: {component:?} does not exist"));
            }
            if !components.iter().any(|c| c.as_str() == Some(component)) {
                components.push(json!(component));
            }
        }
        k.insert("components".into(), Value::Array(components));
    }
    Ok(())
}

/// `kustomize edit add label|annotation`: a key already there fails unless forced.
fn add_pairs(
    k: &mut Map<String, Value>,
    field: &str,
    what: &str,
    pairs: Map<String, Value>,
    force: bool,
) -> Result<(), String> {
    let mut existing = k
        .get(field)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (key, value) in pairs {
        if existing.contains_key(&key) && !force {
            return Err(format!(
                "{field}: {what} {key:?} is already in the kustomization (set force{} to \
                 replace it)",
                if what == "label" {
                    "CommonLabels"
                } else {
                    "CommonAnnotations"
                }
            ));
        }
        existing.insert(key, value);
    }
    k.insert(field.into(), Value::Object(existing));
    Ok(())
}

fn name_of(v: &Value) -> &str {
    v.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn count_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An image override as `kustomize edit set image` reads it: `name=newName[:tag|@digest]`,
/// `name:tag`, or `name@digest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOverride {
    pub name: String,
    pub new_name: String,
    pub new_tag: String,
    pub digest: String,
}

pub fn parse_image(arg: &str) -> Result<ImageOverride, String> {
    let invalid = || format!("images: {arg:?} is not name=newName:tag, name:tag or name@digest");
    let split = |text: &str, rename: bool| -> Option<(String, String, String)> {
        if let Some((name, digest)) = text.split_once('@') {
            return Some((name.into(), String::new(), digest.into()));
        }
        // The tag is after the last `:` unless that `:` is a registry port (`host:5000/x`).
        if let Some((name, tag)) = text.rsplit_once(':')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*'))
        {
            return Some((name.into(), tag.into(), String::new()));
        }
        (rename && !text.is_empty()).then(|| (text.into(), String::new(), String::new()))
    };
    if let Some((name, target)) = arg.split_once('=') {
        let (new_name, new_tag, digest) = split(target, true).ok_or_else(invalid)?;
        return Ok(ImageOverride {
            name: name.into(),
            new_name,
            new_tag,
            digest,
        });
    }
    let (name, new_tag, digest) = split(arg, false).ok_or_else(invalid)?;
    Ok(ImageOverride {
        name,
        new_name: String::new(),
        new_tag,
        digest,
    })
}

/// Merges one override into `images`, as `kustomize edit set image` does: fields given
/// replace those there; a tag clears a digest and a digest clears a tag; `*` keeps the tag.
fn merge_image(images: &mut Vec<Value>, wanted: ImageOverride) {
    let index = match images.iter().position(|i| name_of(i) == wanted.name) {
        Some(index) => index,
        None => {
            images.push(json!({"name": wanted.name}));
            images.len() - 1
        }
    };
    let Value::Object(entry) = &mut images[index] else {
        return;
    };
    if !wanted.new_name.is_empty() {
        entry.insert("newName".into(), json!(wanted.new_name));
    }
    if !wanted.new_tag.is_empty() && wanted.new_tag != "*" {
        entry.insert("newTag".into(), json!(wanted.new_tag));
        entry.remove("digest");
    }
    if !wanted.digest.is_empty() {
        entry.insert("digest".into(), json!(wanted.digest));
        entry.remove("newTag");
    }
}

/// Runs the build in `dir`, bounded in time and output; errors say what Kustomize said.
async fn build(
    tool: &KustomizeTool,
    dir: &Path,
    scratch: &Path,
    path: &str,
) -> Result<String, ServiceError> {
    let (program, args) = tool
        .command
        .split_first()
        .ok_or_else(|| ServiceError::internal("no kustomize command configured"))?;
    let mut args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    args.push(dir.into());
    run(ToolRun {
        what: &format!("kustomize build {}", display_path(path)),
        program,
        args,
        cwd: scratch,
        scratch,
        env: Vec::new(),
        timeout: tool.timeout,
        max_output_bytes: tool.max_output_bytes,
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_overrides_parse_as_kustomize_edit_set_image_does() {
        let i = |name: &str, new_name: &str, new_tag: &str, digest: &str| ImageOverride {
            name: name.into(),
            new_name: new_name.into(),
            new_tag: new_tag.into(),
            digest: digest.into(),
        };
        assert_eq!(
            parse_image("nginx:1.25").unwrap(),
            i("nginx", "", "1.25", "")
        );
        assert_eq!(
            parse_image("nginx=registry:5000/nginx:1.25").unwrap(),
            i("nginx", "registry:5000/nginx", "1.25", "")
        );
        assert_eq!(
            parse_image("nginx=my/nginx").unwrap(),
            i("nginx", "my/nginx", "", "")
        );
        assert_eq!(
            parse_image("nginx@sha256:abc").unwrap(),
            i("nginx", "", "", "sha256:abc")
        );
        assert!(parse_image("nginx").is_err());
    }

    #[test]
    fn overrides_merge_into_the_kustomization() {
        let mut k = json!({
            "resources": ["../../base"],
            "namePrefix": "old-",
            "images": [{"name": "web", "newTag": "1.0"}, {"name": "db", "digest": "sha256:1"}],
            "replicas": [{"name": "web", "count": 1}],
            "commonLabels": {"team": "a"},
        });
        let overrides = KustomizeSource {
            name_prefix: "prod-".into(),
            images: vec!["web:2.0".into(), "cache=redis:7".into(), "db:3".into()],
            replicas: vec![
                json!({"name": "web", "count": "3"}),
                json!({"name": "api", "count": 2}),
            ],
            common_labels: [("env".to_string(), "${ARGOCD_APP_NAME}".to_string())].into(),
            namespace: "prod".into(),
            components: vec!["../../components/x".into(), "missing".into()],
            ignore_missing_components: true,
            ..Default::default()
        };
        let env = BuildEnv {
            vars: [("ARGOCD_APP_NAME".to_string(), "shop".to_string())].into(),
        };
        apply_overrides(&mut k, &overrides, &env, |c| c != "missing").unwrap();
        assert_eq!(
            k,
            json!({
                "resources": ["../../base"],
                "namePrefix": "prod-",
                "images": [
                    {"name": "cache", "newName": "redis", "newTag": "7"},
                    {"name": "db", "newTag": "3"},
                    {"name": "web", "newTag": "2.0"},
                ],
                "replicas": [{"name": "web", "count": 3}, {"name": "api", "count": 2}],
                "commonLabels": {"team": "a", "env": "shop"},
                "namespace": "prod",
                "components": ["../../components/x"],
            })
        );
    }

    #[test]
    fn a_label_already_there_needs_force_and_a_missing_component_is_an_error() {
        let mut k = json!({"commonLabels": {"team": "a"}});
        let overrides = KustomizeSource {
            common_labels: [("team".to_string(), "b".to_string())].into(),
            ..Default::default()
        };
        let err = apply_overrides(&mut k, &overrides, &BuildEnv::default(), |_| true).unwrap_err();
        assert!(err.contains("forceCommonLabels"), "{err}");
        let forced = KustomizeSource {
            force_common_labels: true,
            ..overrides
        };
        apply_overrides(&mut k, &forced, &BuildEnv::default(), |_| true).unwrap();
        assert_eq!(k["commonLabels"]["team"], "b");

        let missing = KustomizeSource {
            components: vec!["nope".into()],
            ..Default::default()
        };
        let err =
            apply_overrides(&mut json!({}), &missing, &BuildEnv::default(), |_| false).unwrap_err();
        assert!(err.contains("\"nope\" does not exist"), "{err}");
    }

    #[test]
    fn references_name_every_local_input() {
        let k = json!({
            "resources": ["../../base", "svc.yaml", "github.com/org/repo//x?ref=v1"],
            "components": ["../../components/tls"],
            "patches": [{"path": "patch.yaml"}, {"patch": "- op: remove\n  path: /x"}],
            "patchesStrategicMerge": ["sm.yaml", "apiVersion: v1\nkind: X\n"],
            "configMapGenerator": [{"files": ["conf=app.conf", "other.conf"], "envs": ["a.env"]}],
        });
        let refs: Vec<String> = references(&k).into_iter().map(|(_, r)| r).collect();
        assert_eq!(
            refs,
            [
                "../../base",
                "svc.yaml",
                "github.com/org/repo//x?ref=v1",
                "../../components/tls",
                "sm.yaml",
                "patch.yaml",
                "app.conf",
                "other.conf",
                "a.env",
            ]
        );
        assert!(is_remote("github.com/org/repo//x?ref=v1"));
        assert!(!is_remote("../../base"));
    }
}
