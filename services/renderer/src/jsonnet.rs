//! Jsonnet files of a directory source, evaluated in process (`jrsonnet`) as Argo CD's
//! repo-server evaluates them: ext vars and top-level arguments (strings or code, `${...}`
//! substituted), imports relative to the importing file, then the `libs` folders (from the
//! repository root, the last listed first) and the app's folder. Imports resolve in a
//! private scratch copy and never leave it: a path reaching outside the repository is an
//! error. A file imported from a folder not fetched yet is fetched and the evaluation run
//! again, so exactly what was read becomes the render's inputs.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitfleet_messages::ServiceError;
use gitfleet_model::JsonnetSource;
use jrsonnet_evaluator::manifest::JsonFormat;
use jrsonnet_evaluator::tla::TlaArg;
use jrsonnet_evaluator::trace::{CompactFormat, PathResolver, TraceFormat};
use jrsonnet_evaluator::{AsPathLike, IStr, ImportResolver, SourcePath, State, apply_tla};
use jrsonnet_gcmodule::Acyclic;
use jrsonnet_ir::{SourceFifo, SourceFile};
use serde_json::Value;

use crate::build_env::BuildEnv;
use crate::directory::manifests_of_value;
use crate::fetch::{self, Fetcher};

/// Rounds of "import a file not fetched yet, fetch it, evaluate again" at most.
const MAX_FETCH_ROUNDS: usize = 16;

/// Evaluates each of `files` (repository paths of `.jsonnet` files) into manifests.
pub async fn render(
    fetcher: &mut Fetcher,
    app_path: &str,
    files: &[String],
    settings: Option<&JsonnetSource>,
    env: &BuildEnv,
    timeout: Duration,
) -> Result<Vec<Value>, ServiceError> {
    let settings = settings.cloned().unwrap_or_default();
    let mut libs = Vec::new();
    for lib in &settings.libs {
        let lib_path = fetch::clean(lib.trim_start_matches('/')).map_err(|_| {
            ServiceError::invalid(format!("jsonnet lib {lib:?} leaves the repository"))
        })?;
        match fetcher.dir(&lib_path, true).await {
            Ok(()) => {}
            // A lib folder that is not there only means imports will not find files in it.
            Err(err) if err.code == gitfleet_messages::ErrorCode::NotFound => {}
            Err(err) => return Err(err),
        }
        libs.push(lib_path);
    }
    let settings = Arc::new(Evaluation {
        app_path: app_path.to_owned(),
        libs,
        ext_vars: settings
            .ext_vars
            .iter()
            .map(|v| (v.name.clone(), env.substitute(&v.value), v.code))
            .collect(),
        tlas: settings
            .tlas
            .iter()
            .map(|v| (v.name.clone(), env.substitute(&v.value), v.code))
            .collect(),
    });
    let mut tried: Vec<String> = Vec::new();
    for _ in 0..MAX_FETCH_ROUNDS {
        let scratch = tempfile::Builder::new()
            .prefix("gitfleet-jsonnet-")
            .tempdir()
            .map_err(|err| {
                ServiceError::internal(format!("creating a scratch directory: {err}"))
            })?;
        fetcher.write_to(scratch.path())?;
        let root = scratch.path().to_owned();
        let (files, settings) = (files.to_vec(), settings.clone());
        let task = tokio::task::spawn_blocking(move || {
            let result = evaluate_all(&root, &files, &settings);
            drop(scratch);
            result
        });
        let outcome = match tokio::time::timeout(timeout, task).await {
            Ok(joined) => joined
                .map_err(|err| ServiceError::internal(format!("jsonnet task failed: {err}")))?,
            Err(_) => {
                return Err(ServiceError::invalid(format!(
                    "jsonnet in {}: did not finish in {} s",
                    display(app_path),
                    timeout.as_secs()
                )));
            }
        };
        match outcome {
            Ok(manifests) => return Ok(manifests),
            Err(failure) => {
                // The first place the import would be found, in the importer's order:
                // fetching it may be enough, and a later place fetched for nothing would
                // be an input that changes nothing.
                let Some(next) = failure.missing.into_iter().find(|m| !tried.contains(m)) else {
                    return Err(ServiceError::invalid(failure.message));
                };
                fetcher.reference(&next).await?;
                tried.push(next);
            }
        }
    }
    Err(ServiceError::invalid(format!(
        "jsonnet in {}: imports reach more than {MAX_FETCH_ROUNDS} places in turn",
        display(app_path)
    )))
}

fn display(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

/// What every file of one render is evaluated with.
struct Evaluation {
    app_path: String,
    libs: Vec<String>,
    /// Name, value, whether the value is code.
    ext_vars: Vec<(String, String, bool)>,
    tlas: Vec<(String, String, bool)>,
}

struct Failure {
    message: String,
    /// Repository paths an import looked for and did not find.
    missing: Vec<String>,
}

/// Each `.jsonnet` file into manifests (its value: an object or an array of them), all in
/// one evaluator: the standard library is built once, and a file imported by several is
/// read and evaluated once.
fn evaluate_all(
    root: &Path,
    files: &[String],
    settings: &Evaluation,
) -> Result<Vec<Value>, Failure> {
    let missing = Arc::new(Mutex::new(Vec::new()));
    // go-jsonnet (Argo CD) tries the importing file's folder, then its JPaths last first:
    // the libs in reverse, then the app's folder.
    let mut jpaths: Vec<PathBuf> = settings.libs.iter().rev().map(|l| root.join(l)).collect();
    jpaths.push(root.join(&settings.app_path));
    let resolver = RepositoryResolver {
        root: root.to_owned(),
        jpaths,
        missing: missing.clone(),
    };
    let context = jrsonnet_stdlib::ContextInitializer::new(PathResolver::Relative(root.to_owned()));
    let fail = |message: String| Failure {
        message,
        missing: missing.lock().map(|m| m.clone()).unwrap_or_default(),
    };
    for (name, value, code) in &settings.ext_vars {
        if *code {
            context
                .add_ext_code(name, value)
                .map_err(|err| fail(format!("jsonnet ext var {name:?}: {}", err.error())))?;
        } else {
            context.add_ext_str(name.as_str().into(), value.as_str().into());
        }
    }
    // IStr is an interned string: its hash never changes, whatever clippy sees inside.
    #[allow(clippy::mutable_key_type)]
    let tlas: std::collections::HashMap<IStr, TlaArg> = settings
        .tlas
        .iter()
        .map(|(name, value, code)| {
            let arg = if *code {
                TlaArg::InlineCode(value.clone())
            } else {
                TlaArg::String(value.as_str().into())
            };
            (name.as_str().into(), arg)
        })
        .collect();
    let mut builder = State::builder();
    builder
        .import_resolver(resolver)
        .context_initializer(context);
    let state = builder.build();
    let _entered = state.enter();
    let format = CompactFormat {
        resolver: PathResolver::Relative(root.to_owned()),
        max_trace: 20,
        padding: 4,
    };
    let explain = |err: &jrsonnet_evaluator::Error| {
        let text = format.format(err).unwrap_or_else(|_| err.to_string());
        // Paths read as in the repository, never as the scratch copy.
        text.replace(&format!("{}/", root.display()), "")
            .replace(&root.display().to_string(), ".")
    };
    let mut manifests = Vec::new();
    for file in files {
        let path = root.join(file);
        let result = state
            .import(path.as_path())
            .and_then(|value| apply_tla(&tlas, value))
            .and_then(|value| value.manifest(JsonFormat::minify()));
        let json = result.map_err(|err| fail(format!("{file}: {}", explain(&err))))?;
        let value: Value = serde_json::from_str(&json)
            .map_err(|err| fail(format!("{file}: the evaluated JSON does not parse: {err}")))?;
        manifests.extend(manifests_of_value(file, value).map_err(|err| fail(err.to_string()))?);
    }
    Ok(manifests)
}

/// Imports within the scratch copy of the repository only; the ones not found, that
/// would be in it, are recorded to be fetched.
#[derive(Acyclic)]
struct RepositoryResolver {
    root: PathBuf,
    jpaths: Vec<PathBuf>,
    missing: Arc<Mutex<Vec<String>>>,
}

impl RepositoryResolver {
    /// `path` with `.` and `..` taken away lexically; `None` when it climbs past `/`.
    fn normalize(path: &Path) -> Option<PathBuf> {
        let mut out = PathBuf::new();
        for component in path.components() {
            match component {
                Component::ParentDir => {
                    if !out.pop() {
                        return None;
                    }
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        Some(out)
    }

    fn inside(&self, path: &Path) -> Option<String> {
        let normal = Self::normalize(path)?;
        normal
            .strip_prefix(&self.root)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }
}

impl ImportResolver for RepositoryResolver {
    fn resolve_from(
        &self,
        from: &SourcePath,
        path: &dyn AsPathLike,
    ) -> jrsonnet_evaluator::Result<SourcePath> {
        let wanted = path.as_path();
        let wanted: &Path = wanted.as_ref();
        let base = from
            .downcast_ref::<SourceFile>()
            .and_then(|f| f.path().parent().map(Path::to_owned));
        let mut candidates: Vec<PathBuf> = Vec::new();
        if wanted.is_absolute() {
            candidates.push(wanted.to_owned());
        } else {
            if let Some(base) = base {
                candidates.push(base.join(wanted));
            }
            candidates.extend(self.jpaths.iter().map(|j| j.join(wanted)));
        }
        let mut outside = false;
        let mut not_found = Vec::new();
        for candidate in &candidates {
            let Some(relative) = self.inside(candidate) else {
                outside = true;
                continue;
            };
            let normal = self.root.join(&relative);
            // Only regular files are written to the scratch copy; a folder is no import.
            if normal.is_file() {
                return Ok(SourcePath::new(SourceFile::new(normal)));
            }
            not_found.push(relative);
        }
        if outside && not_found.is_empty() {
            jrsonnet_evaluator::bail!(
                "import {:?} leaves the repository",
                wanted.display().to_string()
            );
        }
        if let Ok(mut missing) = self.missing.lock() {
            missing.extend(not_found);
        }
        jrsonnet_evaluator::bail!("import {:?} not found", wanted.display().to_string())
    }

    fn load_file_contents(&self, resolved: &SourcePath) -> jrsonnet_evaluator::Result<Vec<u8>> {
        // Code given inline (a TLA or ext var written as code) comes with its text.
        if let Some(inline) = resolved.downcast_ref::<SourceFifo>() {
            return Ok(inline.1.to_vec());
        }
        let Some(file) = resolved.downcast_ref::<SourceFile>() else {
            jrsonnet_evaluator::bail!("only files of the repository are imported");
        };
        std::fs::read(file.path()).map_err(|err| {
            jrsonnet_evaluator::Error::from(jrsonnet_evaluator::error::ErrorKind::RuntimeError(
                format!("reading {}: {err}", file.path().display()).into(),
            ))
        })
    }
}
