//! Which tool renders a source, and the dispatch to it. The tool is the one the
//! Application names (`directory`, `kustomize`, `helm`, `plugin`; at most one), else
//! found as Argo CD finds it: a kustomization file at the path means Kustomize, else
//! `Chart.yaml` means Helm, else a plain directory. What gitfleet cannot render yet is an
//! error, never an empty set of manifests reported Synced.

use std::time::Duration;

use gitfleet_bus::Bus;
use gitfleet_messages::{RenderRequest, Rendered, ServiceError};
use gitfleet_model::ApplicationSource;

use crate::build_env::BuildEnv;
use crate::directory::{DirectoryOptions, render_directory};
use crate::fetch::{self, Fetcher};
use crate::helm::{self, HelmTool};
use crate::jsonnet;
use crate::kustomize::{self, KustomizeTool};
use crate::plugin::{self, Plugins};

/// The tools a source can be rendered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Directory,
    Kustomize,
    Helm,
    Plugin,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Directory => "directory",
            Tool::Kustomize => "kustomize",
            Tool::Helm => "helm",
            Tool::Plugin => "plugin",
        }
    }
}

/// The tool the Application names, if it names one; more than one is an error.
pub fn explicit_tool(source: &ApplicationSource) -> Result<Option<Tool>, String> {
    let mut named = Vec::new();
    if source.helm.is_some() {
        named.push(Tool::Helm);
    }
    if source.kustomize.is_some() {
        named.push(Tool::Kustomize);
    }
    if source.directory.is_some() {
        named.push(Tool::Directory);
    }
    if source.plugin.is_some() {
        named.push(Tool::Plugin);
    }
    match named.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(format!(
            "the source sets {}: at most one of helm, kustomize, directory and plugin",
            many.iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(" and ")
        )),
    }
}

/// The tool for a path whose files (directly in it) are `names`, as Argo CD's discovery
/// decides (`discovery.go`): Kustomize wins over Helm when both files are there, and any
/// file name ending in `Chart.yaml` means Helm.
pub fn detect(names: &[&str]) -> Tool {
    if kustomize::kustomization_in(names).is_some() {
        Tool::Kustomize
    } else if names.iter().any(|n| n.ends_with("Chart.yaml")) {
        Tool::Helm
    } else {
        Tool::Directory
    }
}

/// Settings of the tools.
#[derive(Debug, Clone)]
pub struct Tools {
    pub kustomize: KustomizeTool,
    pub helm: HelmTool,
    /// Longest a directory's Jsonnet may evaluate (in process: past it, abandoned).
    pub jsonnet_timeout: Duration,
    pub plugins: Plugins,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            kustomize: KustomizeTool::default(),
            helm: HelmTool::default(),
            // Argo CD's repo-server default for any tool.
            jsonnet_timeout: Duration::from_secs(90),
            plugins: Plugins::default(),
        }
    }
}

/// Renders one request: fetches what the tool reads and runs it. Says which tool it was.
pub async fn render(
    bus: Bus,
    request: &RenderRequest,
    tools: &Tools,
    files_timeout: Duration,
) -> Result<(Rendered, Tool), ServiceError> {
    let source = &request.source;
    let env = BuildEnv::of(request);
    if source.is_helm_chart() {
        let rendered = render_repository_chart(bus, request, tools, &env, files_timeout).await?;
        return Ok((rendered, Tool::Helm));
    }
    let path = fetch::clean(&source.path)
        .map_err(|err| ServiceError::invalid(format!("source path: {err}")))?;
    let explicit = explicit_tool(source).map_err(ServiceError::invalid)?;
    let mut fetcher = Fetcher::new(
        bus,
        request.repo.clone(),
        request.commit.clone(),
        files_timeout,
    );
    fetcher.pass_credentials(passes_credentials(source));
    if !request.local_files.is_empty() {
        fetcher.seal(request.local_files.clone());
    }
    let tool = match explicit {
        Some(tool) => tool,
        None => {
            fetcher.dir(&path, false).await?;
            let names: Vec<&str> = fetcher
                .files_in(&path)
                .map(|f| f.path.rsplit('/').next().unwrap_or(&f.path))
                .collect();
            detect(&names)
        }
    };
    let manifests = match tool {
        Tool::Directory => {
            let directory = source.directory.clone().unwrap_or_default();
            fetcher.dir(&path, directory.recurse).await?;
            let options = DirectoryOptions {
                path: path.clone(),
                recurse: directory.recurse,
                include: directory.include,
                exclude: directory.exclude,
            };
            let files: Vec<_> = fetcher.files().values().cloned().collect();
            let jsonnet_files: Vec<String> = files
                .iter()
                .filter(|f| f.path.ends_with(".jsonnet") && options_take(&options, &f.path))
                .map(|f| f.path.clone())
                .collect();
            let mut manifests =
                tokio::task::spawn_blocking(move || render_directory(&files, &options))
                    .await
                    .map_err(|err| ServiceError::internal(format!("render task failed: {err}")))?
                    .map_err(|err| ServiceError::invalid(err.to_string()))?;
            if !jsonnet_files.is_empty() {
                manifests.extend(
                    jsonnet::render(
                        &mut fetcher,
                        &path,
                        &jsonnet_files,
                        directory.jsonnet.as_ref(),
                        &env,
                        tools.jsonnet_timeout,
                    )
                    .await?,
                );
            }
            manifests
        }
        Tool::Kustomize => {
            kustomize::render(
                &mut fetcher,
                &tools.kustomize,
                &path,
                source.kustomize.as_ref(),
                &env,
            )
            .await?
        }
        Tool::Helm => helm::render(&mut fetcher, &tools.helm, &path, request, &env).await?,
        Tool::Plugin => {
            let settings = source.plugin.clone().unwrap_or_default();
            plugin::render(&mut fetcher, &tools.plugins, &path, &settings, &env).await?
        }
    };
    Ok((
        Rendered {
            manifests,
            inputs: fetcher.inputs(),
        },
        tool,
    ))
}

/// A chart from a Helm repository (`chart` + `repoURL`): its archive at the resolved
/// version through the git watcher, unpacked, rendered as a chart in Git is. Its one
/// input is the version, which is the request's commit.
async fn render_repository_chart(
    bus: Bus,
    request: &RenderRequest,
    tools: &Tools,
    env: &BuildEnv,
    files_timeout: Duration,
) -> Result<Rendered, ServiceError> {
    let source = &request.source;
    if let Some(tool) = explicit_tool(source).map_err(ServiceError::invalid)?
        && tool != Tool::Helm
    {
        return Err(ServiceError::invalid(format!(
            "chart {:?}: a chart from a Helm repository is rendered by Helm, and the source sets {}",
            source.chart,
            tool.name()
        )));
    }
    let mut fetcher = Fetcher::new(
        bus,
        request.repo.clone(),
        request.commit.clone(),
        files_timeout,
    );
    fetcher.pass_credentials(passes_credentials(source));
    let archive = fetcher.chart_archive(&source.chart).await?;
    let files = helm::unpack(&tools.helm, &source.chart, &request.commit, archive).await?;
    fetcher.seal(files);
    let manifests = helm::render(&mut fetcher, &tools.helm, "", request, env).await?;
    Ok(Rendered {
        manifests,
        inputs: Vec::new(),
    })
}

/// `helm.passCredentials`: chart archives on another host get the repository's credentials.
fn passes_credentials(source: &ApplicationSource) -> bool {
    source.helm.as_ref().is_some_and(|h| h.pass_credentials)
}

/// Whether the directory source's filters take `path` (a `.jsonnet` file counts as a
/// manifest Argo CD would render).
fn options_take(options: &DirectoryOptions, path: &str) -> bool {
    let Some(relative) = (if options.path.is_empty() {
        Some(path)
    } else {
        path.strip_prefix(&options.path)
            .and_then(|r| r.strip_prefix('/'))
    }) else {
        return false;
    };
    if !options.recurse && relative.contains('/') {
        return false;
    }
    let glob = |p: &str| (!p.is_empty()).then(|| gitfleet_engine::glob::Glob::new(p));
    let excluded = glob(&options.exclude).is_some_and(|g| g.matches(relative));
    let included = glob(&options.include).is_none_or(|g| g.matches(relative));
    included && !excluded
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfleet_model::{DirectorySource, HelmSource, KustomizeSource};

    #[test]
    fn detection_follows_argo_cd() {
        assert_eq!(detect(&["kustomization.yaml", "a.yaml"]), Tool::Kustomize);
        assert_eq!(detect(&["Kustomization"]), Tool::Kustomize);
        assert_eq!(detect(&["Chart.yaml", "values.yaml"]), Tool::Helm);
        assert_eq!(
            detect(&["Chart.yaml", "kustomization.yml"]),
            Tool::Kustomize
        );
        assert_eq!(detect(&["deploy.yaml", "x.jsonnet"]), Tool::Directory);
    }

    #[test]
    fn at_most_one_tool_is_named() {
        let mut source = ApplicationSource::default();
        assert_eq!(explicit_tool(&source), Ok(None));
        source.kustomize = Some(KustomizeSource::default());
        assert_eq!(explicit_tool(&source), Ok(Some(Tool::Kustomize)));
        source.helm = Some(HelmSource::default());
        source.directory = Some(DirectorySource::default());
        let err = explicit_tool(&source).unwrap_err();
        assert!(err.contains("helm and kustomize and directory"), "{err}");
    }

    #[test]
    fn jsonnet_files_count_where_the_filters_take_them() {
        let options = DirectoryOptions {
            path: "app".into(),
            recurse: false,
            include: String::new(),
            exclude: "skip.jsonnet".into(),
        };
        assert!(options_take(&options, "app/main.jsonnet"));
        assert!(!options_take(&options, "app/skip.jsonnet"));
        assert!(!options_take(&options, "app/sub/x.jsonnet"));
        assert!(!options_take(&options, "other/x.jsonnet"));
    }
}
