//! Config management plugins, Argo CD's contract: a `ConfigManagementPlugin` (`init`,
//! `generate`, `discover` by file name, glob or command) named by the source's `plugin`
//! (`name`, or `name-version`; no name: the first plugin whose discovery matches the app),
//! run in a private scratch copy of the app's folder with the build environment
//! (`ARGOCD_APP_*`, `KUBE_VERSION`, `ARGOCD_ENV_*`, `PARAM_*`, `ARGOCD_APP_PARAMETERS`),
//! a timeout and an output limit. The plugin sees the app's own files, not the rest of the
//! repository nor any other app's (Argo CD hands a plugin the whole repository).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gitfleet_engine::glob::Glob;
use gitfleet_messages::ServiceError;
use gitfleet_model::PluginSource;
use serde::Deserialize;
use serde_json::Value;

use crate::build_env::BuildEnv;
use crate::directory::parse_manifests;
use crate::fetch::Fetcher;
use crate::process::{ToolRun, run};

/// A command of a plugin: the program and its arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Command {
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discover {
    /// A glob of file names in the app's folder (`./subdir/s*.yaml`).
    #[serde(default)]
    pub file_name: String,
    #[serde(default)]
    pub find: Option<Find>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Find {
    /// A glob of paths below the app's folder (`**/Chart.yaml`).
    #[serde(default)]
    pub glob: String,
    /// A command whose non-empty output means the plugin applies.
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    version: String,
    #[serde(default)]
    init: Option<Command>,
    generate: Command,
    #[serde(default)]
    discover: Option<Discover>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

/// One configured plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// `metadata.name`, with `-spec.version` when it has one: what sources name.
    pub name: String,
    pub init: Option<Command>,
    pub generate: Command,
    pub discover: Option<Discover>,
}

impl Plugin {
    /// A plugin from its `plugin.yaml` (`ConfigManagementPlugin`, `argoproj.io/v1alpha1`).
    pub fn parse(yaml: &str) -> Result<Plugin, String> {
        let manifest: Manifest = serde_yaml_ng::from_str(yaml).map_err(|err| err.to_string())?;
        if manifest.kind != "ConfigManagementPlugin"
            || !manifest.api_version.starts_with("argoproj.io/")
        {
            return Err(format!(
                "expected kind ConfigManagementPlugin of argoproj.io, found {} {}",
                manifest.api_version, manifest.kind
            ));
        }
        if manifest.metadata.name.is_empty() {
            return Err("metadata.name is empty".into());
        }
        if manifest.spec.generate.command.is_empty() {
            return Err("spec.generate.command is empty".into());
        }
        let name = if manifest.spec.version.is_empty() {
            manifest.metadata.name
        } else {
            format!("{}-{}", manifest.metadata.name, manifest.spec.version)
        };
        Ok(Plugin {
            name,
            init: manifest.spec.init.filter(|c| !c.command.is_empty()),
            generate: manifest.spec.generate,
            discover: manifest.spec.discover,
        })
    }

    /// Every `*.yaml` plugin file in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Vec<Plugin>, String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|err| format!("{}: {err}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let text =
                    std::fs::read_to_string(p).map_err(|err| format!("{}: {err}", p.display()))?;
                Plugin::parse(&text).map_err(|err| format!("{}: {err}", p.display()))
            })
            .collect()
    }
}

/// The plugins and how they run.
#[derive(Debug, Clone)]
pub struct Plugins {
    pub plugins: Vec<Plugin>,
    pub timeout: Duration,
    pub max_output_bytes: usize,
}

impl Default for Plugins {
    /// The plugins in `$GITFLEET_PLUGINS` (a folder of plugin files), if set; a folder
    /// that cannot be read leaves none, and says so in the log.
    fn default() -> Self {
        let plugins = match std::env::var_os("GITFLEET_PLUGINS") {
            Some(dir) => Plugin::load_dir(Path::new(&dir)).unwrap_or_else(|err| {
                tracing::warn!(error = %err, "config management plugins not loaded");
                Vec::new()
            }),
            None => Vec::new(),
        };
        Plugins {
            plugins,
            timeout: Duration::from_secs(90),
            max_output_bytes: 64 << 20,
        }
    }
}

/// Renders the app at `path` with its plugin.
pub async fn render(
    fetcher: &mut Fetcher,
    plugins: &Plugins,
    path: &str,
    source: &PluginSource,
    env: &BuildEnv,
) -> Result<Vec<Value>, ServiceError> {
    let shown = if path.is_empty() { "." } else { path };
    fetcher.dir(path, true).await?;
    let scratch = tempfile::Builder::new()
        .prefix("gitfleet-plugin-")
        .tempdir()
        .map_err(|err| ServiceError::internal(format!("creating a scratch directory: {err}")))?;
    // Only the app's folder: what a plugin may read.
    fetcher.write_below(scratch.path(), path)?;
    let app_dir = scratch.path().join(path);
    std::fs::create_dir_all(&app_dir)
        .map_err(|err| ServiceError::internal(format!("creating the app folder: {err}")))?;
    let vars = environment(source, env);
    let plugin = if source.name.is_empty() {
        let mut found = None;
        for plugin in &plugins.plugins {
            if discovers(plugins, plugin, &app_dir, scratch.path(), &vars).await? {
                found = Some(plugin);
                break;
            }
        }
        found.ok_or_else(|| {
            ServiceError::invalid(format!(
                "{shown}: no config management plugin discovers this app (configured: {})",
                names(plugins)
            ))
        })?
    } else {
        plugins
            .plugins
            .iter()
            .find(|p| p.name == source.name)
            .ok_or_else(|| {
                ServiceError::invalid(format!(
                    "{shown}: config management plugin {:?} is not configured (configured: {})",
                    source.name,
                    names(plugins)
                ))
            })?
    };
    let step = |what: &str, command: &Command| -> Result<(String, Vec<OsString>), ServiceError> {
        let (program, args) = command.command.split_first().ok_or_else(|| {
            ServiceError::invalid(format!("plugin {} {what}: no command", plugin.name))
        })?;
        let args = args
            .iter()
            .chain(&command.args)
            .map(OsString::from)
            .collect();
        Ok((program.clone(), args))
    };
    if let Some(init) = &plugin.init {
        let (program, args) = step("init", init)?;
        run(ToolRun {
            what: &format!("plugin {} init in {shown}", plugin.name),
            program: &program,
            args,
            cwd: &app_dir,
            scratch: scratch.path(),
            env: vars.clone(),
            timeout: plugins.timeout,
            max_output_bytes: plugins.max_output_bytes,
        })
        .await?;
    }
    let (program, args) = step("generate", &plugin.generate)?;
    let what = format!("plugin {} generate in {shown}", plugin.name);
    let output = run(ToolRun {
        what: &what,
        program: &program,
        args,
        cwd: &app_dir,
        scratch: scratch.path(),
        env: vars,
        timeout: plugins.timeout,
        max_output_bytes: plugins.max_output_bytes,
    })
    .await?;
    parse_manifests(&what, &output).map_err(|err| ServiceError::invalid(err.to_string()))
}

fn names(plugins: &Plugins) -> String {
    if plugins.plugins.is_empty() {
        return "none".into();
    }
    plugins
        .plugins
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `plugin`'s `discover` matches the app in `app_dir`.
async fn discovers(
    plugins: &Plugins,
    plugin: &Plugin,
    app_dir: &Path,
    scratch: &Path,
    vars: &[(String, String)],
) -> Result<bool, ServiceError> {
    let Some(discover) = &plugin.discover else {
        return Ok(false);
    };
    let files = relative_files(app_dir);
    if !discover.file_name.is_empty() {
        let glob = Glob::new(discover.file_name.trim_start_matches("./"));
        // A file name glob matches within its folder, as filepath.Glob does.
        let depth = discover
            .file_name
            .trim_start_matches("./")
            .matches('/')
            .count();
        return Ok(files
            .iter()
            .any(|f| f.matches('/').count() == depth && glob.matches(f)));
    }
    let Some(find) = &discover.find else {
        return Ok(false);
    };
    if !find.glob.is_empty() {
        let pattern = find.glob.trim_start_matches("./");
        let segments: Vec<&str> = pattern.split('/').collect();
        return Ok(files
            .iter()
            .any(|f| crate::helm::segments_match(&segments, &f.split('/').collect::<Vec<_>>())));
    }
    let Some((program, args)) = find.command.command.split_first() else {
        return Ok(false);
    };
    let output = run(ToolRun {
        what: &format!("plugin {} discover", plugin.name),
        program,
        args: args
            .iter()
            .chain(&find.command.args)
            .map(OsString::from)
            .collect(),
        cwd: app_dir,
        scratch,
        env: vars.to_vec(),
        timeout: plugins.timeout,
        max_output_bytes: plugins.max_output_bytes,
    })
    .await;
    // A discover command that fails only means the plugin does not apply.
    Ok(output.is_ok_and(|o| !o.trim().is_empty()))
}

fn relative_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(root, &path, out),
                Ok(t) if t.is_file() => {
                    if let Ok(rel) = path.strip_prefix(root) {
                        out.push(rel.to_string_lossy().into_owned());
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Argo CD's plugin environment: the build environment, the source's `env` as
/// `ARGOCD_ENV_*`, and its parameters as `PARAM_*` and `ARGOCD_APP_PARAMETERS`.
pub fn environment(source: &PluginSource, env: &BuildEnv) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = env.vars.clone().into_iter().collect();
    for entry in &source.env {
        vars.push((
            format!("ARGOCD_ENV_{}", entry.name),
            env.substitute(&entry.value),
        ));
    }
    if !source.parameters.is_empty() {
        vars.push((
            "ARGOCD_APP_PARAMETERS".into(),
            Value::Array(source.parameters.clone()).to_string(),
        ));
    }
    for parameter in &source.parameters {
        let Some(name) = parameter.get("name").and_then(Value::as_str) else {
            continue;
        };
        let key = format!("PARAM_{}", env_name(name));
        if let Some(text) = parameter.get("string").and_then(Value::as_str) {
            vars.push((key.clone(), text.to_owned()));
        }
        if let Some(items) = parameter.get("array").and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                vars.push((
                    format!("{key}_{i}"),
                    item.as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        if let Some(map) = parameter.get("map").and_then(Value::as_object) {
            for (k, v) in map {
                vars.push((
                    format!("{key}_{}", env_name(k)),
                    v.as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    vars
}

/// A parameter name as an environment variable name: upper case, anything but letters and
/// digits an underscore (Argo CD's `escaped`).
fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfleet_model::EnvEntry;
    use serde_json::json;

    #[test]
    fn plugin_files_parse_and_are_named_with_their_version() {
        let plugin = Plugin::parse(
            "apiVersion: argoproj.io/v1alpha1\nkind: ConfigManagementPlugin\nmetadata:\n  name: cmp\nspec:\n  version: v1.0\n  generate:\n    command: [sh, -c]\n    args: [\"cat *.yaml\"]\n  discover:\n    fileName: \"*.cmp\"\n",
        )
        .unwrap();
        assert_eq!(plugin.name, "cmp-v1.0");
        assert_eq!(plugin.generate.command, ["sh", "-c"]);
        assert_eq!(plugin.discover.unwrap().file_name, "*.cmp");
        assert!(Plugin::parse("kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\nspec: {generate: {command: [a]}}\n").is_err());
        assert!(Plugin::parse("apiVersion: argoproj.io/v1alpha1\nkind: ConfigManagementPlugin\nmetadata: {name: x}\nspec: {generate: {command: []}}\n").is_err());
    }

    #[test]
    fn the_environment_follows_argo_cd() {
        let source = PluginSource {
            name: "cmp".into(),
            env: vec![EnvEntry {
                name: "FOO".into(),
                value: "${ARGOCD_APP_NAME}-x".into(),
            }],
            parameters: vec![
                json!({"name": "image-tag", "string": "v2"}),
                json!({"name": "hosts", "array": ["a", "b"]}),
                json!({"name": "labels", "map": {"team-name": "web"}}),
            ],
        };
        let env = BuildEnv {
            vars: [("ARGOCD_APP_NAME".to_string(), "shop".to_string())].into(),
        };
        let vars = environment(&source, &env);
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ARGOCD_APP_NAME"), Some("shop"));
        assert_eq!(get("ARGOCD_ENV_FOO"), Some("shop-x"));
        assert_eq!(get("PARAM_IMAGE_TAG"), Some("v2"));
        assert_eq!(get("PARAM_HOSTS_0"), Some("a"));
        assert_eq!(get("PARAM_HOSTS_1"), Some("b"));
        assert_eq!(get("PARAM_LABELS_TEAM_NAME"), Some("web"));
        let parameters: Value =
            serde_json::from_str(get("ARGOCD_APP_PARAMETERS").unwrap()).unwrap();
        assert_eq!(parameters[0]["string"], "v2");
    }
}
