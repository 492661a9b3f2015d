//! Helm charts in Git rendered as Argo CD's `helm template` call renders them, by Helm's
//! own engine (the C library, [`gitfleet_helm_c`]): the chart's folder in a private scratch
//! copy, values files (globs as in Argo CD 3.4), inline values, parameters and file
//! parameters merged in Helm's order, CRDs included unless `skipCrds`, tests left out with
//! `skipTests`, `NOTES.txt` never a manifest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gitfleet_engine::glob::Glob;
use gitfleet_helm_c::{Helm, RenderOptions, SetKind};
use gitfleet_messages::{RefSource, RenderRequest, RepoFile, ServiceError};
use gitfleet_model::HelmSource;
use serde_json::{Map, Value};

use crate::build_env::BuildEnv;
use crate::directory::parse_manifests;
use crate::fetch::{self, Fetcher};

/// Where the Helm engine comes from.
#[derive(Debug, Clone)]
pub struct HelmTool {
    /// The C library (`libhelm_c.so`); `None` when none is configured, and then a Helm
    /// source is an error that says how to configure one.
    pub library: Option<PathBuf>,
    /// Longest a render may take. Helm runs in this process, so a render past it is
    /// abandoned (its thread finishes on its own) and the app gets an error.
    pub timeout: Duration,
}

impl Default for HelmTool {
    fn default() -> Self {
        HelmTool {
            library: gitfleet_helm_c::configured_path(),
            // Argo CD's repo-server default for any tool.
            timeout: Duration::from_secs(90),
        }
    }
}

impl HelmTool {
    fn load(&self) -> Result<&'static Helm, ServiceError> {
        let path = self.library.as_deref().ok_or_else(|| {
            ServiceError::unavailable(
                "no Helm engine is configured: set GITFLEET_HELM_C_LIB to libhelm_c.so \
                 (cargo xtask tools installs it below tools/)",
            )
        })?;
        Helm::load(path).map_err(|err| ServiceError::unavailable(err.to_string()))
    }
}

/// The values of one render, gathered before Helm runs.
struct Inputs {
    /// Values files in merge order: repository path and text.
    value_files: Vec<(String, String)>,
    /// `valuesObject`, else `values` (YAML).
    inline: Option<InlineValues>,
    /// `--set` then `--set-string` expressions, in Helm's order.
    sets: Vec<(String, SetKind)>,
    /// `fileParameters`: parameter name, repository path, file text.
    files: Vec<(String, String, String)>,
}

enum InlineValues {
    Object(Value),
    Yaml(String),
}

/// Renders the chart at `path`.
pub async fn render(
    fetcher: &mut Fetcher,
    tool: &HelmTool,
    path: &str,
    request: &RenderRequest,
    env: &BuildEnv,
) -> Result<Vec<Value>, ServiceError> {
    let helm = tool.load()?;
    let settings = request.source.helm.clone().unwrap_or_default();
    if !settings.version.is_empty() {
        return Err(ServiceError::invalid(format!(
            "helm.version {:?}: only Helm v4 is configured",
            settings.version
        )));
    }
    // What messages call the chart: its path in Git, or its name and version.
    let shown = if request.source.is_helm_chart() {
        format!("chart {} {}", request.source.chart, request.commit)
    } else {
        display_path(path).to_owned()
    };
    fetcher.dir(path, true).await?;
    let inputs = gather(fetcher, path, &shown, &settings, &request.refs, env).await?;

    let scratch = tempfile::Builder::new()
        .prefix("gitfleet-helm-")
        .tempdir()
        .map_err(|err| ServiceError::internal(format!("creating a scratch directory: {err}")))?;
    let dependencies = dependencies(fetcher, path, &shown).await?;
    fetcher.write_to(scratch.path())?;
    let chart_dir = scratch.path().join(path);
    write_dependencies(&chart_dir, &dependencies)
        .map_err(|err| ServiceError::internal(format!("{shown}: writing dependencies: {err}")))?;
    let options = RenderOptions {
        release_name: non_empty(&settings.release_name)
            .unwrap_or(&request.app_name)
            .to_owned(),
        namespace: non_empty(&settings.namespace)
            .unwrap_or(&request.namespace)
            .to_owned(),
        kube_version: non_empty(&settings.kube_version).map(str::to_owned),
        api_versions: settings.api_versions.clone(),
    };
    let label = shown.clone();
    let task = tokio::task::spawn_blocking(move || {
        let result = template(helm, &chart_dir, &shown, &inputs, &options, &settings);
        drop(scratch);
        result
    });
    match tokio::time::timeout(tool.timeout, task).await {
        Ok(joined) => joined
            .map_err(|err| ServiceError::internal(format!("helm render task failed: {err}")))?,
        Err(_) => Err(ServiceError::invalid(format!(
            "helm template {label}: did not finish in {} s",
            tool.timeout.as_secs()
        ))),
    }
}

/// The files of a chart archive from a Helm repository, by path within the chart, unpacked
/// by Helm (which refuses entries that would land outside the chart).
pub async fn unpack(
    tool: &HelmTool,
    chart: &str,
    version: &str,
    archive: Vec<u8>,
) -> Result<Vec<RepoFile>, ServiceError> {
    let helm = tool.load()?;
    let label = format!("chart {chart} {version}");
    tokio::task::spawn_blocking(move || {
        let internal = |what: &str, err: std::io::Error| {
            ServiceError::internal(format!("{label}: {what}: {err}"))
        };
        let scratch = tempfile::Builder::new()
            .prefix("gitfleet-chart-")
            .tempdir()
            .map_err(|err| internal("creating a scratch directory", err))?;
        let file = scratch.path().join("chart.tgz");
        std::fs::write(&file, &archive).map_err(|err| internal("writing the archive", err))?;
        let out = scratch.path().join("out");
        helm.expand_archive(&file, &out)
            .map_err(|err| ServiceError::invalid(format!("{label}: {err}")))?;
        // Helm unpacks into `out/<chart name>/`.
        let root = std::fs::read_dir(&out)
            .map_err(|err| internal("reading the unpacked chart", err))?
            .filter_map(Result::ok)
            .find(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .ok_or_else(|| ServiceError::invalid(format!("{label}: the archive holds no chart")))?;
        let mut files = Vec::new();
        collect(&root, &root, &mut files)
            .map_err(|err| internal("reading the unpacked chart", err))?;
        Ok(files)
    })
    .await
    .map_err(|err| ServiceError::internal(format!("unpack task failed: {err}")))?
}

/// Regular files below `dir`, by path relative to `root`; symlinks are left out.
fn collect(root: &Path, dir: &Path, files: &mut Vec<RepoFile>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect(root, &path, files)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .map_err(std::io::Error::other)?
                .to_string_lossy()
                .into_owned();
            files.push(RepoFile::from_bytes(relative, std::fs::read(&path)?));
        }
    }
    Ok(())
}

/// A dependency fetched for the chart, to write below its `charts/`: file path (relative
/// to `charts/`) and bytes.
type Dependency = (String, Vec<u8>);

/// What `helm dependency build` would put in `charts/` for the chart at `path`: each
/// dependency in `Chart.yaml` (or Helm 2's `requirements.yaml`) that `charts/` lacks, at
/// the version `Chart.lock` pins (else the newest its constraint allows), from its Helm
/// repository or OCI registry through the git watcher, or from the repository itself for
/// `file://` ones.
async fn dependencies(
    fetcher: &mut Fetcher,
    path: &str,
    shown: &str,
) -> Result<Vec<Dependency>, ServiceError> {
    let read = |fetcher: &Fetcher, name: &str| -> Option<serde_yaml_ng::Value> {
        let file = fetcher.files().get(&fetch::join(path, name).ok()?)?;
        serde_yaml_ng::from_str(&file.content).ok()
    };
    let list = |doc: Option<serde_yaml_ng::Value>| -> Vec<serde_yaml_ng::Value> {
        doc.and_then(|d| d.get("dependencies").and_then(|v| v.as_sequence().cloned()))
            .unwrap_or_default()
    };
    let mut wanted = list(read(fetcher, "Chart.yaml"));
    if wanted.is_empty() {
        wanted = list(read(fetcher, "requirements.yaml"));
    }
    let locked = list(read(fetcher, "Chart.lock").or_else(|| read(fetcher, "requirements.lock")));
    let field = |d: &serde_yaml_ng::Value, key: &str| {
        d.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let charts_dir = fetch::join(path, "charts").unwrap_or_else(|_| "charts".into());
    let vendored: Vec<String> = fetcher
        .files()
        .keys()
        .filter_map(|f| f.strip_prefix(&charts_dir)?.strip_prefix('/'))
        .map(str::to_owned)
        .collect();
    let mut out = Vec::new();
    for dep in &wanted {
        let (name, repo) = (field(dep, "name"), field(dep, "repository"));
        let in_charts = vendored.iter().any(|f| {
            f.starts_with(&format!("{name}/"))
                || (f.starts_with(&format!("{name}-")) && f.ends_with(".tgz"))
        });
        if name.is_empty() || repo.is_empty() || in_charts {
            // Vendored, or nothing to fetch it from: Helm says so if it is missing.
            continue;
        }
        if let Some(local) = repo.strip_prefix("file://") {
            let dir = fetch::join(path, local).map_err(|_| {
                ServiceError::invalid(format!(
                    "{shown}: dependency {name:?} at {repo:?} leaves the repository"
                ))
            })?;
            fetcher.dir(&dir, true).await?;
            for (file, content) in fetcher.files() {
                if let Some(rest) = file.strip_prefix(&format!("{dir}/")) {
                    let bytes = content.bytes().unwrap_or_default();
                    out.push((format!("{name}/{rest}"), bytes));
                }
            }
            continue;
        }
        if repo.starts_with('@') || !repo.contains("://") {
            return Err(ServiceError::invalid(format!(
                "{shown}: dependency {name:?}: repository {repo:?} is a name; give its URL"
            )));
        }
        let constraint = locked
            .iter()
            .find(|l| field(l, "name") == name && field(l, "repository") == repo)
            .map(|l| field(l, "version"))
            .unwrap_or_else(|| field(dep, "version"));
        let version = fetcher
            .resolve_chart(&repo, &name, &constraint)
            .await
            .map_err(|err| err.context(format_args!("{shown}: dependency {name:?}")))?;
        if version != constraint {
            // A range: a version published later is picked by a later render of the same
            // files.
            fetcher.reads_outside_git();
        }
        let archive = fetcher.chart_archive_from(&repo, &name, &version).await?;
        out.push((format!("{name}-{version}.tgz"), archive));
    }
    Ok(out)
}

fn write_dependencies(chart_dir: &Path, dependencies: &[Dependency]) -> std::io::Result<()> {
    for (file, bytes) in dependencies {
        let target = chart_dir.join("charts").join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, bytes)?;
    }
    Ok(())
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

/// Fetches and reads what the values come from, resolving paths as Argo CD does: relative
/// to the chart's folder, absolute ones from the repository root, never outside it.
async fn gather(
    fetcher: &mut Fetcher,
    path: &str,
    shown: &str,
    settings: &HelmSource,
    refs: &[RefSource],
    env: &BuildEnv,
) -> Result<Inputs, ServiceError> {
    let mut resolved: Vec<(String, ValueFile)> = Vec::new();
    for raw in &settings.value_files {
        resolved.push((raw.clone(), resolve_value_file(path, raw, env)?));
    }
    let explicit: Vec<String> = resolved
        .iter()
        .filter_map(|(_, f)| match f {
            ValueFile::Here(file) if !is_glob(file) => Some(file.clone()),
            _ => None,
        })
        .collect();
    // Values files in merge order: label (repository path, or `$ref/path`) and text.
    let mut value_files: Vec<(String, String)> = Vec::new();
    let taken = |files: &[(String, String)], label: &str| files.iter().any(|(l, _)| l == label);
    for (raw, file) in resolved {
        let file = match file {
            ValueFile::Ref { name, path: file } => {
                let label = format!("${name}/{file}");
                match read_ref(fetcher, refs, &name, &file, &raw).await? {
                    Some(text) if !taken(&value_files, &label) => value_files.push((label, text)),
                    Some(_) => {}
                    None if settings.ignore_missing_value_files => {}
                    None => {
                        return Err(ServiceError::invalid(format!(
                            "{shown}: values file {raw:?} does not exist in source ${name}"
                        )));
                    }
                }
                continue;
            }
            ValueFile::Here(file) => file,
        };
        if is_glob(&file) {
            let matches = glob_files(fetcher, &file).await?;
            if matches.is_empty() {
                if settings.ignore_missing_value_files {
                    continue;
                }
                return Err(ServiceError::invalid(format!(
                    "{shown}: values file glob {raw:?} matched no files"
                )));
            }
            for m in matches {
                // A file also listed by name takes its listed place.
                if !explicit.contains(&m) && !taken(&value_files, &m) {
                    let text = text_of(fetcher, &m)?;
                    value_files.push((m, text));
                }
            }
            continue;
        }
        if !fetcher.reference(&file).await? || !fetcher.files().contains_key(&file) {
            if settings.ignore_missing_value_files {
                continue;
            }
            return Err(ServiceError::invalid(format!(
                "{shown}: values file {raw:?} ({file}) does not exist in the repository"
            )));
        }
        if !taken(&value_files, &file) {
            let text = text_of(fetcher, &file)?;
            value_files.push((file, text));
        }
    }

    let inline = match (&settings.values_object, settings.values.trim()) {
        (Some(object), _) => Some(InlineValues::Object(object.clone())),
        (None, "") => None,
        (None, _) => Some(InlineValues::Yaml(settings.values.clone())),
    };

    // Argo CD passes parameters as maps (one value per name, the last listed), all
    // `--set` before all `--set-string` as Helm applies them, commas escaped.
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut strings: Vec<(String, String)> = Vec::new();
    for p in &settings.parameters {
        let list = if p.force_string {
            &mut strings
        } else {
            &mut typed
        };
        list.retain(|(name, _)| *name != p.name);
        list.push((p.name.clone(), env.substitute(&p.value)));
    }
    let sets = typed
        .into_iter()
        .map(|(n, v)| (format!("{n}={}", escape_commas(&v)), SetKind::Typed))
        .chain(
            strings
                .into_iter()
                .map(|(n, v)| (format!("{n}={}", escape_commas(&v)), SetKind::String)),
        )
        .collect();

    let mut files = Vec::new();
    for p in &settings.file_parameters {
        let (file, text) = match resolve_value_file(path, &p.path, env)? {
            ValueFile::Ref { name, path: file } => {
                let text = read_ref(fetcher, refs, &name, &file, &p.path).await?;
                (format!("${name}/{file}"), text)
            }
            ValueFile::Here(file) => {
                let found = fetcher.reference(&file).await? && fetcher.files().contains_key(&file);
                let text = if found {
                    Some(text_of(fetcher, &file)?)
                } else {
                    None
                };
                (file, text)
            }
        };
        let Some(text) = text else {
            return Err(ServiceError::invalid(format!(
                "{shown}: file parameter {:?}: {:?} ({file}) does not exist",
                p.name, p.path
            )));
        };
        files.retain(|(name, _, _): &(String, String, String)| *name != p.name);
        files.push((p.name.clone(), file, text));
    }
    Ok(Inputs {
        value_files,
        inline,
        sets,
        files,
    })
}

fn text_of(fetcher: &Fetcher, file: &str) -> Result<String, ServiceError> {
    let f = &fetcher.files()[file];
    if f.binary {
        return Err(ServiceError::invalid(format!(
            "values file {file}: not text (UTF-8)"
        )));
    }
    Ok(f.content.clone())
}

/// Where a values file (or file parameter) entry points.
#[derive(Debug, PartialEq, Eq)]
enum ValueFile {
    /// A path of this source's repository.
    Here(String),
    /// `$name/path`: a path of the app's `ref` source `name`.
    Ref { name: String, path: String },
}

/// A values file entry as a repository path, resolved as Argo CD does: relative to the
/// chart's folder, absolute from the repository root, `$ref/...` from the root of the
/// source of that `ref`; never outside its repository. URLs are not fetched, and say so.
fn resolve_value_file(path: &str, raw: &str, env: &BuildEnv) -> Result<ValueFile, ServiceError> {
    let leaves = || ServiceError::invalid(format!("values file {raw:?} leaves the repository"));
    // A reference names its source before any variable is substituted (Argo CD's order).
    if let Some(rest) = raw.strip_prefix('$')
        && !raw.starts_with("${")
    {
        let (name, file) = rest.split_once('/').unwrap_or((rest, ""));
        let file = fetch::clean(&env.substitute(file)).map_err(|_| leaves())?;
        return Ok(ValueFile::Ref {
            name: name.to_owned(),
            path: file,
        });
    }
    let substituted = env.substitute(raw);
    if let Some((scheme, _)) = substituted.split_once("://") {
        return Err(ServiceError::invalid(format!(
            "values file {raw:?}: remote values files ({scheme}://) are not fetched"
        )));
    }
    let resolved = match substituted.strip_prefix('/') {
        Some(from_root) => fetch::clean(from_root),
        None => fetch::join(path, &substituted),
    };
    resolved.map(ValueFile::Here).map_err(|_| leaves())
}

/// The text of `file` in the `ref` source `name` (`None`: no such file there).
async fn read_ref(
    fetcher: &Fetcher,
    refs: &[RefSource],
    name: &str,
    file: &str,
    raw: &str,
) -> Result<Option<String>, ServiceError> {
    let source = refs.iter().find(|r| r.name == name).ok_or_else(|| {
        ServiceError::invalid(format!(
            "values file {raw:?}: no source of the application has ref {name:?}"
        ))
    })?;
    let mut other = fetcher.elsewhere(&source.repo, &source.commit);
    if !other.reference(file).await? || !other.files().contains_key(file) {
        return Ok(None);
    }
    text_of(&other, file).map(Some)
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Repository files matching a values-file glob, in lexical order (doublestar's, which
/// Argo CD uses: `*` stays within a folder, `**` crosses folders).
async fn glob_files(fetcher: &mut Fetcher, pattern: &str) -> Result<Vec<String>, ServiceError> {
    // Fetch the folder before the first wildcard, with everything below it.
    let literal: Vec<&str> = pattern
        .split('/')
        .take_while(|segment| !is_glob(segment))
        .collect();
    let base = literal.join("/");
    let recurse = pattern.contains("**") || pattern.split('/').count() > literal.len() + 1;
    match fetcher.dir(&base, recurse).await {
        Ok(()) => {}
        Err(err) if err.code == gitfleet_messages::ErrorCode::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    }
    let segments: Vec<&str> = pattern.split('/').collect();
    let mut matches: Vec<String> = fetcher
        .files()
        .keys()
        .filter(|f| fetch::is_below(f, &base))
        .filter(|f| segments_match(&segments, &f.split('/').collect::<Vec<_>>()))
        .cloned()
        .collect();
    matches.sort();
    Ok(matches)
}

/// Path segments against pattern segments: `**` matches any number of segments, every
/// other pattern segment one segment (its own `*` not crossing `/`).
pub(crate) fn segments_match(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| segments_match(rest, &path[skip..])),
        Some((first, rest)) => path.split_first().is_some_and(|(p, path_rest)| {
            Glob::new(first).matches(p) && segments_match(rest, path_rest)
        }),
    }
}

/// Escapes unescaped commas so a parameter's value stays one value, unless it is a Helm
/// list (`{a,b}`), as Argo CD does.
fn escape_commas(value: &str) -> String {
    if value.starts_with('{') && value.ends_with('}') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut previous = '\0';
    for c in value.chars() {
        if c == ',' && previous != '\\' {
            out.push_str("\\,");
        } else {
            out.push(c);
        }
        previous = c;
    }
    out
}

/// The user-supplied values, merged as Helm's `MergeValues` does: values files in order
/// (maps merged deeply, anything else replaced), then each `--set` into that.
fn user_values(helm: &Helm, inputs: &Inputs) -> Result<Value, ServiceError> {
    let mut base = Value::Object(Map::new());
    for (file, text) in &inputs.value_files {
        let values = helm
            .values_from_yaml(text)
            .map_err(|err| ServiceError::invalid(format!("values file {file}: {err}")))?;
        merge_maps(&mut base, values);
    }
    match &inputs.inline {
        Some(InlineValues::Object(object)) => {
            if !object.is_object() && !object.is_null() {
                return Err(ServiceError::invalid(
                    "helm.valuesObject: expected an object of values",
                ));
            }
            merge_maps(&mut base, object.clone());
        }
        Some(InlineValues::Yaml(yaml)) => {
            let values = helm
                .values_from_yaml(yaml)
                .map_err(|err| ServiceError::invalid(format!("helm.values: {err}")))?;
            merge_maps(&mut base, values);
        }
        None => {}
    }
    for (expression, kind) in &inputs.sets {
        let name = expression.split('=').next().unwrap_or_default();
        let values = helm
            .parse_set(expression, *kind)
            .map_err(|err| ServiceError::invalid(format!("helm parameter {name:?}: {err}")))?;
        set_into(&mut base, values);
    }
    for (name, file, text) in &inputs.files {
        let values = helm
            .parse_set(&format!("{name}={text}"), SetKind::Literal)
            .map_err(|err| {
                ServiceError::invalid(format!("helm file parameter {name:?} ({file}): {err}"))
            })?;
        set_into(&mut base, values);
    }
    Ok(base)
}

/// Helm's `mergeMaps`: maps merge key by key, recursively; any other value replaces.
fn merge_maps(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_maps(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (base, overlay) => *base = overlay,
    }
}

/// What `strvals.ParseInto` does with one parsed expression: like [`merge_maps`], but a
/// list index (`a[1]=x`, parsed alone as `[null, "x"]`) sets that element of an existing
/// list, keeping the others.
fn set_into(base: &mut Value, parsed: Value) {
    match (base, parsed) {
        (Value::Object(base), Value::Object(parsed)) => {
            for (key, value) in parsed {
                match base.get_mut(&key) {
                    Some(existing)
                        if (existing.is_object() && value.is_object())
                            || (existing.is_array() && value.is_array()) =>
                    {
                        set_into(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(parsed)) => {
            for (index, value) in parsed.into_iter().enumerate() {
                if index >= base.len() {
                    base.resize(index + 1, Value::Null);
                }
                if !value.is_null() {
                    set_into(&mut base[index], value);
                }
            }
        }
        (base, parsed) => *base = parsed,
    }
}

/// `helm template --include-crds` on the scratch copy, parsed into manifests.
fn template(
    helm: &Helm,
    chart_dir: &Path,
    shown: &str,
    inputs: &Inputs,
    options: &RenderOptions,
    settings: &HelmSource,
) -> Result<Vec<Value>, ServiceError> {
    let values = user_values(helm, inputs)?;
    if settings.skip_schema_validation {
        // The library always validates; a chart without its schemas renders as
        // `--skip-schema-validation` would (the schema is used for nothing else).
        remove_schemas(chart_dir)
            .map_err(|err| ServiceError::internal(format!("skipping schema validation: {err}")))?;
    }
    let failed = |err: gitfleet_helm_c::HelmError| {
        ServiceError::invalid(format!("helm template {shown}: {err}"))
    };
    let chart = helm.load_chart(chart_dir).map_err(failed)?;
    let rendered = chart.render(&values, options).map_err(failed)?;
    let mut manifests = Vec::new();
    if !settings.skip_crds {
        for crd in chart.crds().map_err(failed)? {
            let name = format!("{shown}: {}", crd.filename);
            manifests.extend(
                parse_manifests(&name, &crd.data)
                    .map_err(|err| ServiceError::invalid(err.to_string()))?,
            );
        }
    }
    for (template, text) in &rendered {
        if template.ends_with("NOTES.txt") || text.trim().is_empty() {
            continue;
        }
        let name = format!("{shown}: {template}");
        for manifest in
            parse_manifests(&name, text).map_err(|err| ServiceError::invalid(err.to_string()))?
        {
            if settings.skip_tests && is_test_hook(&manifest) {
                continue;
            }
            manifests.push(manifest);
        }
    }
    Ok(manifests)
}

/// A Helm test (`helm.sh/hook: test`, or Helm 2's `test-success`/`test-failure`).
fn is_test_hook(manifest: &Value) -> bool {
    manifest
        .pointer("/metadata/annotations/helm.sh~1hook")
        .and_then(Value::as_str)
        .is_some_and(|hooks| {
            hooks
                .split(',')
                .any(|h| matches!(h.trim(), "test" | "test-success" | "test-failure"))
        })
}

fn remove_schemas(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            remove_schemas(&path)?;
        } else if entry.file_name() == "values.schema.json" {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commas_are_escaped_unless_the_value_is_a_list() {
        assert_eq!(escape_commas("a,b"), r"a\,b");
        assert_eq!(escape_commas(r"a\,b"), r"a\,b");
        assert_eq!(escape_commas("{a,b}"), "{a,b}");
    }

    #[test]
    fn maps_merge_and_set_indexes_keep_the_rest_of_a_list() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        merge_maps(&mut base, json!({"a": {"b": 2, "c": [9]}, "d": {"e": 1}}));
        assert_eq!(base, json!({"a": {"b": 2, "c": [9]}, "d": {"e": 1}}));
        let mut base = json!({"list": ["a", "b", "c"]});
        set_into(&mut base, json!({"list": [null, "x"], "n": null}));
        assert_eq!(base, json!({"list": ["a", "x", "c"], "n": null}));
    }

    #[test]
    fn value_file_globs_match_by_segment_and_double_star_crosses_folders() {
        let m = |p: &str, f: &str| {
            segments_match(
                &p.split('/').collect::<Vec<_>>(),
                &f.split('/').collect::<Vec<_>>(),
            )
        };
        assert!(m("app/values-*.yaml", "app/values-prod.yaml"));
        assert!(!m("app/*.yaml", "app/env/prod.yaml"));
        assert!(m("app/**/*.yaml", "app/env/prod.yaml"));
        assert!(m("app/**/*.yaml", "app/prod.yaml"));
        assert!(!m("app/[ab].yaml", "app/c.yaml"));
    }

    #[test]
    fn value_files_resolve_from_the_chart_or_the_root_and_never_leave() {
        let env = BuildEnv::default();
        let here = |p: &str| ValueFile::Here(p.to_owned());
        assert_eq!(
            resolve_value_file("charts/web", "values-prod.yaml", &env).unwrap(),
            here("charts/web/values-prod.yaml")
        );
        assert_eq!(
            resolve_value_file("charts/web", "../../envs/prod.yaml", &env).unwrap(),
            here("envs/prod.yaml")
        );
        assert_eq!(
            resolve_value_file("charts/web", "/envs/prod.yaml", &env).unwrap(),
            here("envs/prod.yaml")
        );
        assert!(resolve_value_file("charts/web", "../../../etc/passwd", &env).is_err());
        assert!(resolve_value_file("charts/web", "/../etc/passwd", &env).is_err());
        assert_eq!(
            resolve_value_file("charts/web", "$values/envs/../prod.yaml", &env).unwrap(),
            ValueFile::Ref {
                name: "values".into(),
                path: "prod.yaml".into()
            }
        );
        assert!(resolve_value_file("charts/web", "$values/../../etc/passwd", &env).is_err());
        assert!(resolve_value_file("charts/web", "file:///etc/passwd", &env).is_err());
    }

    #[test]
    fn test_hooks_are_recognised() {
        assert!(is_test_hook(
            &json!({"metadata": {"annotations": {"helm.sh/hook": "test"}}})
        ));
        assert!(is_test_hook(
            &json!({"metadata": {"annotations": {"helm.sh/hook": "pre-install, test-success"}}})
        ));
        assert!(!is_test_hook(
            &json!({"metadata": {"annotations": {"helm.sh/hook": "pre-install"}}})
        ));
        assert!(!is_test_hook(&json!({"metadata": {}})));
    }
}
