//! `app diff --local DIR`: the app's manifests rendered here from a local directory, as
//! Argo CD's CLI renders them with the tools on the user's machine: a plain directory as
//! the app's `directory` settings read it (the renderer's own reader), or a kustomization
//! built by the Kustomize the renderer would run (`$GITFLEET_KUSTOMIZE build`,
//! `$GITFLEET_KUBECTL kustomize`, else `kubectl kustomize`). Helm, Jsonnet and plugins are
//! refused by name rather than diffed as something they are not; `--server-side-generate`
//! sends the directory's files instead ([`files`]) and gitfleet renders them.

use std::path::Path;
use std::time::Duration;

use gitfleet_messages::RepoFile;
use gitfleet_model::Application;
use renderer::directory::{DirectoryOptions, parse_manifests, render_directory};
use renderer::kustomize::{KUSTOMIZATION_FILES, KustomizeTool};
use renderer::source::{Tool, detect, explicit_tool};
use serde_json::Value;

use crate::error::{Error, Result};

/// The objects `dir` renders to as `app`'s single source would render them.
pub async fn render(dir: &Path, app: &Application) -> Result<Vec<Value>> {
    let usage = |message: String| Error::Usage(format!("--local {}: {message}", dir.display()));
    let source = match (&app.spec.source, app.spec.sources.as_slice()) {
        (Some(source), []) => source,
        (None, [source]) => source,
        _ => {
            return Err(usage(
                "the app has several sources; --local renders a single-source app".into(),
            ));
        }
    };
    if !dir.is_dir() {
        return Err(usage("not a directory".into()));
    }
    if source.is_helm_chart() {
        return Err(usage(
            "the app's source is a Helm chart; --local renders plain directories and Kustomize"
                .into(),
        ));
    }
    let tool = match explicit_tool(source).map_err(usage)? {
        Some(tool) => tool,
        None => {
            let names: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            detect(&names.iter().map(String::as_str).collect::<Vec<_>>())
        }
    };
    match tool {
        Tool::Directory => directory(dir, app, source, &usage),
        Tool::Kustomize => kustomize(dir, source, &usage).await,
        Tool::Helm | Tool::Plugin => Err(usage(format!(
            "the app renders with {}; --local renders plain directories and Kustomize here, add --server-side-generate to render it with gitfleet",
            tool.name()
        ))),
    }
}

fn directory(
    dir: &Path,
    app: &Application,
    source: &gitfleet_model::ApplicationSource,
    usage: &dyn Fn(String) -> Error,
) -> Result<Vec<Value>> {
    let settings = source.directory.clone().unwrap_or_default();
    let mut files = Vec::new();
    read_files(dir, "", settings.recurse, &mut files)?;
    let options = DirectoryOptions {
        path: String::new(),
        recurse: settings.recurse,
        include: settings.include,
        exclude: settings.exclude,
    };
    if let Some(jsonnet) = files.iter().find(|f| f.path.ends_with(".jsonnet")) {
        return Err(usage(format!(
            "{} is Jsonnet, which only the renderer evaluates (app {})",
            jsonnet.path, app.metadata.name
        )));
    }
    render_directory(&files, &options).map_err(|e| usage(e.to_string()))
}

/// At most this many bytes of files go to gitfleet (`--server-side-generate`): they
/// travel in one bus message to a renderer, under NATS's 1 MiB.
pub const MAX_LOCAL_BYTES: usize = 900 << 10;

/// Every file under `dir` (hidden folders such as `.git` left out), paths relative to it,
/// binary files in base64, for `--server-side-generate`; more than [`MAX_LOCAL_BYTES`] is
/// refused, naming the size.
pub fn files(dir: &Path) -> Result<Vec<gitfleet_proto::v1::LocalFile>> {
    fn walk(
        dir: &Path,
        prefix: &str,
        out: &mut Vec<gitfleet_proto::v1::LocalFile>,
        total: &mut usize,
    ) -> Result<()> {
        let io = |e| Error::io(format!("reading {}", dir.display()), e);
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<std::io::Result<_>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = std::fs::metadata(entry.path()).map_err(io)?;
            if meta.is_dir() {
                if !name.starts_with('.') {
                    walk(&entry.path(), &path, out, total)?;
                }
                continue;
            }
            let content = std::fs::read(entry.path())
                .map_err(|e| Error::io(format!("reading {}", entry.path().display()), e))?;
            *total += content.len();
            if *total > MAX_LOCAL_BYTES {
                return Err(Error::Usage(format!(
                    "--local {}: more than {} KiB of files; --server-side-generate sends at most that",
                    dir.display(),
                    MAX_LOCAL_BYTES >> 10
                )));
            }
            out.push(gitfleet_proto::v1::LocalFile { path, content });
        }
        Ok(())
    }
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--local {}: not a directory",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out, &mut 0)?;
    Ok(out)
}

/// The files under `dir` as the renderer reads a repository's: paths relative to the
/// app's directory, `/`-separated; subdirectories only when `recurse`.
fn read_files(dir: &Path, prefix: &str, recurse: bool, out: &mut Vec<RepoFile>) -> Result<()> {
    let io = |e| Error::io(format!("reading {}", dir.display()), e);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            if recurse && !name.starts_with('.') {
                read_files(&entry.path(), &path, recurse, out)?;
            }
            continue;
        }
        let is_manifest = [".yaml", ".yml", ".json", ".jsonnet"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if !is_manifest {
            continue;
        }
        let content = std::fs::read_to_string(entry.path())
            .map_err(|e| Error::io(format!("reading {}", entry.path().display()), e))?;
        out.push(RepoFile {
            path,
            content,
            binary: false,
            link: String::new(),
        });
    }
    Ok(())
}

async fn kustomize(
    dir: &Path,
    source: &gitfleet_model::ApplicationSource,
    usage: &dyn Fn(String) -> Error,
) -> Result<Vec<Value>> {
    if source
        .kustomize
        .as_ref()
        .is_some_and(|k| *k != Default::default())
    {
        return Err(usage(
            "the app sets kustomize overrides, which only the renderer applies; --local builds the kustomization as it is"
                .into(),
        ));
    }
    if !KUSTOMIZATION_FILES.iter().any(|f| dir.join(f).is_file()) {
        return Err(usage(
            "no kustomization.yaml, kustomization.yml or Kustomization here".into(),
        ));
    }
    let tool = KustomizeTool::default();
    let (program, args) = tool
        .command
        .split_first()
        .ok_or_else(|| usage("no Kustomize command configured".into()))?;
    let run = tokio::process::Command::new(program)
        .args(args)
        .arg(dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .map_err(|_| usage("kustomize took longer than 90 s".into()))?
        .map_err(|e| usage(format!("running {program}: {e}")))?;
    if !output.status.success() {
        return Err(usage(format!(
            "kustomize failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    parse_manifests(&format!("kustomize build {}", dir.display()), &text)
        .map_err(|e| usage(e.to_string()))
}
