//! `gitfleet app ...`: create, list, get, diff, manifests, sync, delete, as `argocd app ...`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use crate::Conn;
use clap::{ArgAction, Subcommand};
use gitfleet_messages::ResourceResult;
use gitfleet_model::{Application, HealthStatusCode, SyncStatusCode};
use gitfleet_proto::v1::application_service_client::ApplicationServiceClient;
use gitfleet_proto::v1::*;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::output::{self, Format};

/// How `app resources` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResourcesOutput {
    Tree,
    Json,
}

/// `gitfleet app actions ...`.
#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// List the actions the app's resources offer (those the filters select).
    List {
        name: String,
        #[arg(long)]
        kind: Option<String>,
        /// The resource's group (`""` for the core group).
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        resource_name: Option<String>,
        #[arg(short = 'o', long = "out", value_enum)]
        output: Option<Format>,
    },
    /// Run an action on the resource the filters select (`--all`: on every one).
    Run {
        name: String,
        action: String,
        #[arg(long)]
        kind: String,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        resource_name: Option<String>,
        /// Run it on every resource that matches, not only when one does.
        #[arg(long)]
        all: bool,
        /// An action parameter, `NAME=VALUE` (e.g. `--param replicas=3` for `scale`);
        /// repeatable. (Argo CD's CLI has no flag for them; its API takes them.)
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an application from a manifest file (`-` for stdin).
    Create {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Replace an existing application of the same name.
        #[arg(long)]
        upsert: bool,
        /// gitfleet's dependsOn: sync only after these apps are Synced and Healthy
        /// (comma-separated; sets the `gitfleet.dev/depends-on` annotation). A cycle is
        /// refused.
        #[arg(long, value_delimiter = ',')]
        depends_on: Vec<String>,
    },
    /// List applications.
    List {
        /// Synced, OutOfSync or Unknown.
        #[arg(long)]
        sync_status: Option<String>,
        /// Healthy, Progressing, Degraded, Suspended, Missing or Unknown.
        #[arg(long)]
        health_status: Option<String>,
        #[arg(short = 'p', long)]
        project: Option<String>,
        /// Label selector, e.g. `team=web,env=prod`.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Destination cluster (server URL or name).
        #[arg(short = 'c', long)]
        cluster: Option<String>,
        /// Destination namespace.
        #[arg(short = 'N', long)]
        namespace: Option<String>,
        /// Source repository URL.
        #[arg(short = 'r', long)]
        repo: Option<String>,
        /// At most this many apps (in name order); all by default, fetched a page at a
        /// time.
        #[arg(long)]
        limit: Option<u32>,
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// Show one application.
    Get {
        name: String,
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
        /// Ask for a fresh comparison first.
        #[arg(long)]
        refresh: bool,
    },
    /// Show what a sync would change, as `argocd app diff` prints it; exits 1 when there
    /// is a difference.
    Diff {
        name: String,
        /// Compare this revision's render instead of the target revision's.
        #[arg(long, conflicts_with = "local")]
        revision: Option<String>,
        /// Compare the manifests of this local directory (plain YAML/JSON as the app's
        /// `directory` settings read them, or a Kustomize directory built by the local
        /// Kustomize) instead of rendering the app's sources.
        #[arg(long)]
        local: Option<std::path::PathBuf>,
        /// With `--local`: send the directory's files to gitfleet and render them there,
        /// with the app's own tool and settings (Helm, Kustomize with overrides, Jsonnet,
        /// plugins), as Argo CD's `--server-side-generate`.
        #[arg(long, requires = "local")]
        server_side_generate: bool,
    },
    /// Print the app's manifests, rendered from Git or live in the cluster, as YAML.
    Manifests {
        name: String,
        /// `git` (rendered from the app's sources) or `live` (the cluster's objects).
        #[arg(long, default_value = "git")]
        source: String,
        /// With `--source git`: render this revision instead of the target revision.
        #[arg(long)]
        revision: Option<String>,
    },
    /// Sync an application and wait for the result.
    Sync {
        name: String,
        /// Delete resources that are no longer in Git.
        #[arg(long)]
        prune: bool,
        /// Show what would be done without doing it.
        #[arg(long)]
        dry_run: bool,
        /// Sync to this revision instead of the target revision.
        #[arg(long)]
        revision: Option<String>,
        /// Sync only this resource, `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME`
        /// (repeatable; hooks do not run).
        #[arg(long = "resource")]
        resources: Vec<String>,
        /// A sync option for this sync, e.g. `Replace=true` (repeatable).
        #[arg(long = "sync-option")]
        sync_options: Vec<String>,
        /// Apply only resources that are out of sync (`ApplyOutOfSyncOnly=true`).
        #[arg(long)]
        apply_out_of_sync_only: bool,
        /// Force: with Replace, delete and create again (`Force=true`).
        #[arg(long)]
        force: bool,
        /// Apply server-side (`ServerSideApply=true`), over an app's `ServerSideApply=false`.
        #[arg(long)]
        server_side: bool,
        /// Confirm the pruning of resources marked `Prune=confirm` for this sync.
        #[arg(long)]
        prune_confirm: bool,
    },
    /// Wait until the application is synced and/or healthy (all conditions given, or both).
    Wait {
        name: String,
        #[arg(long)]
        sync: bool,
        #[arg(long)]
        health: bool,
        /// Give up after this many seconds (exit code 1); 0 waits forever.
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// Stop the application's running operation between its steps.
    TerminateOp { name: String },
    /// List the application's resources, as `argocd app resources`; `--output tree` shows
    /// what each owns, down to Pods, with its health.
    Resources {
        name: String,
        /// `tree` (the resource tree), `json` (the tree as Argo CD's ApplicationTree);
        /// the table of the app's resources by default.
        #[arg(short = 'o', long)]
        output: Option<ResourcesOutput>,
    },
    /// List or run the actions of the application's resources (restart a Deployment,
    /// suspend a CronJob, ...), as `argocd app actions`.
    Actions {
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// Confirm the pruning (`Prune=confirm`) or deletion (`Delete=confirm`) a running
    /// operation waits for: sets the app's `argocd.argoproj.io/deletion-approved` to now.
    ConfirmDeletion { name: String },
    /// List the application's deployment history (its successful syncs).
    History {
        name: String,
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// Sync to a revision of the history (by id; by default the deployment before the
    /// latest) and wait for the result. Refused while automated sync is on.
    Rollback {
        name: String,
        id: Option<i64>,
        /// Delete resources that the older revision does not have.
        #[arg(long)]
        prune: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete an application (and, with `--cascade`, the default, its resources).
    Delete {
        name: String,
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
              default_value_t = true, default_missing_value = "true")]
        cascade: bool,
        /// Accepted for argocd compatibility: gitfleet never prompts.
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

pub async fn run(cmd: &AppCommand, channel: Conn, out: &mut dyn Write) -> Result<i32> {
    let mut client = ApplicationServiceClient::new(channel.clone());
    match cmd {
        AppCommand::Create {
            file,
            upsert,
            depends_on,
        } => {
            let mut manifest = read_manifest(file)?;
            if !depends_on.is_empty() {
                manifest = with_dependencies(&manifest, depends_on)?;
            }
            let res = client
                .create(CreateApplicationRequest {
                    manifest_yaml: manifest,
                    upsert: *upsert,
                })
                .await?
                .into_inner();
            let app: Application = serde_json::from_str(&res.application_json)?;
            output::write(
                out,
                &format!("application '{}' created\n", app.metadata.name),
            )?;
        }
        AppCommand::List {
            sync_status,
            health_status,
            project,
            selector,
            cluster,
            namespace,
            repo,
            limit,
            output: format,
        } => {
            // A page at a time, so no answer grows with the fleet.
            const PAGE: u32 = 1000;
            let mut raw = Vec::new();
            let mut next = String::new();
            loop {
                let want = limit.map_or(PAGE, |l| (l - raw.len() as u32).min(PAGE));
                let res = client
                    .list(ListApplicationsRequest {
                        sync_status: sync_status.clone().unwrap_or_default(),
                        health_status: health_status.clone().unwrap_or_default(),
                        project: project.clone().unwrap_or_default(),
                        selector: selector.clone().unwrap_or_default(),
                        cluster: cluster.clone().unwrap_or_default(),
                        namespace: namespace.clone().unwrap_or_default(),
                        repo: repo.clone().unwrap_or_default(),
                        limit: want,
                        r#continue: next,
                    })
                    .await?
                    .into_inner();
                for j in &res.items_json {
                    raw.push(serde_json::from_str::<Value>(j)?);
                }
                next = res.r#continue;
                if next.is_empty() || limit.is_some_and(|l| raw.len() as u32 >= l) {
                    break;
                }
            }
            match format {
                Some(Format::Json) => output::json(out, &raw)?,
                Some(Format::Yaml) => output::yaml(out, &raw)?,
                Some(Format::Name) => {
                    for app in parse_apps(&raw)? {
                        output::write(out, &format!("{}\n", app.metadata.name))?;
                    }
                }
                Some(Format::Wide) | None => list_table(out, &parse_apps(&raw)?)?,
            }
        }
        AppCommand::ConfirmDeletion { name } => {
            let json = client
                .get(GetApplicationRequest { name: name.clone() })
                .await?
                .into_inner()
                .application_json;
            let mut app: Value = serde_json::from_str(&json)?;
            // The status is the controller's; the rest goes back as it is.
            if let Some(obj) = app.as_object_mut() {
                obj.remove("status");
            }
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            // A missing `annotations` (null) becomes an object on this write.
            app["metadata"]["annotations"][gitfleet_engine::sync::DELETION_APPROVED] =
                Value::String(now);
            client
                .create(CreateApplicationRequest {
                    manifest_yaml: serde_json::to_string(&app)?,
                    upsert: true,
                })
                .await?;
            output::write(
                out,
                &format!(
                    "Application '{name}' updated successfully
"
                ),
            )?;
        }
        AppCommand::Get {
            name,
            output: format,
            refresh,
        } => {
            let json = if *refresh {
                client
                    .refresh(RefreshApplicationRequest { name: name.clone() })
                    .await?
                    .into_inner()
                    .application_json
            } else {
                client
                    .get(GetApplicationRequest { name: name.clone() })
                    .await?
                    .into_inner()
                    .application_json
            };
            let raw: Value = serde_json::from_str(&json)?;
            match format {
                Some(Format::Json) => output::json(out, &raw)?,
                Some(Format::Yaml) => output::yaml(out, &raw)?,
                Some(Format::Name) => output::write(out, &format!("{name}\n"))?,
                Some(Format::Wide) | None => {
                    let app: Application = serde_json::from_value(raw)?;
                    let windows = project_windows(channel, app.spec.project_or_default()).await;
                    describe(out, &app, windows.as_deref())?
                }
            }
        }
        AppCommand::Diff {
            name,
            revision,
            local,
            server_side_generate,
        } => {
            let mut request = DiffApplicationRequest {
                name: name.clone(),
                revision: revision.clone().unwrap_or_default(),
                ..Default::default()
            };
            if let Some(dir) = local {
                let raw = client
                    .get(GetApplicationRequest { name: name.clone() })
                    .await?
                    .into_inner();
                let app: Application = serde_json::from_str(&raw.application_json)?;
                request.local = true;
                if *server_side_generate {
                    request.local_files = crate::local::files(dir)?;
                } else {
                    request.local_manifests = crate::local::render(dir, &app)
                        .await?
                        .iter()
                        .map(Value::to_string)
                        .collect();
                }
            }
            let res = client.diff(request).await?.into_inner();
            output::write(out, &res.diff)?;
            return Ok(i32::from(res.has_diff));
        }
        AppCommand::Manifests {
            name,
            source,
            revision,
        } => {
            let res = client
                .manifests(ApplicationManifestsRequest {
                    name: name.clone(),
                    source: source.clone(),
                    revision: revision.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            // As `argocd app manifests` prints them: YAML documents, `---` between.
            for manifest in &res.manifests {
                let value: Value = serde_json::from_str(manifest)?;
                output::write(out, "---\n")?;
                output::yaml(out, &value)?;
            }
        }
        AppCommand::Sync {
            name,
            prune,
            dry_run,
            revision,
            resources,
            sync_options,
            apply_out_of_sync_only,
            force,
            server_side,
            prune_confirm,
        } => {
            let mut sync_options = sync_options.clone();
            for (on, option) in [
                (*apply_out_of_sync_only, "ApplyOutOfSyncOnly=true"),
                (*force, "Force=true"),
                (*server_side, "ServerSideApply=true"),
            ] {
                if on {
                    sync_options.push(option.into());
                }
            }
            let res = client
                .sync(SyncApplicationRequest {
                    name: name.clone(),
                    prune: *prune,
                    dry_run: *dry_run,
                    revision: revision.clone().unwrap_or_default(),
                    resources: resources.clone(),
                    sync_options,
                    prune_confirmed: *prune_confirm,
                })
                .await?
                .into_inner();
            sync_report(out, name, &res)?;
            if res.phase != "Succeeded" {
                return Err(Error::Usage(format!(
                    "sync of application {name:?} {}: {}",
                    res.phase.to_lowercase(),
                    res.message
                )));
            }
        }
        AppCommand::Actions { command } => actions(&mut client, command, out).await?,
        AppCommand::Resources { name, output } => match output {
            None => {
                let json = client
                    .get(GetApplicationRequest { name: name.clone() })
                    .await?
                    .into_inner()
                    .application_json;
                let app: Application = serde_json::from_str(&json)?;
                let rows: Vec<Vec<String>> = app
                    .status
                    .map(|s| s.resources)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        let orphaned = "No".to_owned();
                        vec![r.group, r.kind, r.namespace, r.name, orphaned]
                    })
                    .collect();
                output::table(
                    out,
                    &["GROUP", "KIND", "NAMESPACE", "NAME", "ORPHANED"],
                    &rows,
                )?;
            }
            Some(format) => {
                let json = client
                    .resource_tree(ResourceTreeRequest { name: name.clone() })
                    .await?
                    .into_inner()
                    .tree_json;
                let tree: Value = serde_json::from_str(&json)?;
                if *format == ResourcesOutput::Json {
                    output::json(out, &tree)?;
                } else {
                    let nodes: Vec<gitfleet_model::ResourceNode> =
                        serde_json::from_value(tree["nodes"].clone())?;
                    output::table(
                        out,
                        &["GROUP", "KIND", "NAMESPACE", "NAME", "HEALTH"],
                        &tree_rows(&nodes),
                    )?;
                }
            }
        },
        AppCommand::TerminateOp { name } => {
            client
                .terminate_operation(TerminateOperationRequest { name: name.clone() })
                .await?;
            output::write(
                out,
                &format!("Application '{name}' operation terminating\n"),
            )?;
        }
        AppCommand::Wait {
            name,
            sync,
            health,
            timeout,
        } => {
            // Neither asked: both, as `argocd app wait`.
            let (want_sync, want_health) = if !sync && !health {
                (true, true)
            } else {
                (*sync, *health)
            };
            let deadline = (*timeout > 0)
                .then(|| std::time::Instant::now() + std::time::Duration::from_secs(*timeout));
            loop {
                let json = client
                    .get(GetApplicationRequest { name: name.clone() })
                    .await?
                    .into_inner()
                    .application_json;
                let app: Application = serde_json::from_str(&json)?;
                let status = app.status.unwrap_or_default();
                let sync_status = status.sync.map(|s| s.status);
                let health_status = status.health.map(|h| h.status);
                let synced = !want_sync || sync_status == Some(SyncStatusCode::Synced);
                let healthy = !want_health || health_status == Some(HealthStatusCode::Healthy);
                if synced && healthy {
                    output::write(
                        out,
                        &format!(
                            "application '{name}': sync {}, health {}\n",
                            sync_status.map_or("Unknown".to_string(), |s| s.to_string()),
                            health_status.map_or("Unknown".to_string(), |h| h.to_string())
                        ),
                    )?;
                    break;
                }
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return Err(Error::Usage(format!(
                        "timed out ({timeout}s) waiting for application {name:?}: sync {}, health {}",
                        sync_status.map_or("Unknown".to_string(), |s| s.to_string()),
                        health_status.map_or("Unknown".to_string(), |h| h.to_string())
                    )));
                }
                // Poll interval of a wait bounded by the deadline above.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
        AppCommand::History {
            name,
            output: format,
        } => {
            let json = client
                .get(GetApplicationRequest { name: name.clone() })
                .await?
                .into_inner()
                .application_json;
            let app: Application = serde_json::from_str(&json)?;
            let history = app.status.map(|s| s.history).unwrap_or_default();
            match format {
                Some(Format::Json) => output::json(out, &history)?,
                Some(Format::Yaml) => output::yaml(out, &history)?,
                _ => history_table(out, &history)?,
            }
        }
        AppCommand::Rollback {
            name,
            id,
            prune,
            dry_run,
        } => {
            let res = client
                .rollback(RollbackApplicationRequest {
                    name: name.clone(),
                    id: *id,
                    prune: *prune,
                    dry_run: *dry_run,
                })
                .await?
                .into_inner();
            sync_report(out, name, &res)?;
            if res.phase != "Succeeded" {
                return Err(Error::Usage(format!(
                    "rollback of application {name:?} {}: {}",
                    res.phase.to_lowercase(),
                    res.message
                )));
            }
        }
        AppCommand::Delete { name, cascade, .. } => {
            client
                .delete(DeleteApplicationRequest {
                    name: name.clone(),
                    cascade: *cascade,
                })
                .await?;
            output::write(out, &format!("application '{name}' deleted\n"))?;
        }
    }
    Ok(0)
}

/// `argocd app history`: the source once per run of entries that share it, then
/// `ID DATE REVISION`, the revision as the target revision with the short commit.
fn history_table(out: &mut dyn Write, history: &[gitfleet_model::RevisionHistory]) -> Result<()> {
    let mut last_source: Option<String> = None;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let flush = |out: &mut dyn Write, rows: &mut Vec<Vec<String>>| -> Result<()> {
        if !rows.is_empty() {
            output::table(out, &["ID", "DATE", "REVISION"], rows)?;
            output::write(out, "\n")?;
            rows.clear();
        }
        Ok(())
    };
    for h in history {
        let source = h.source.as_ref().map(|s| {
            if s.chart.is_empty() {
                format!("{} {}", s.repo_url, s.path)
            } else {
                format!("{} chart {}", s.repo_url, s.chart)
            }
        });
        if source != last_source {
            flush(out, &mut rows)?;
            output::write(
                out,
                &format!("SOURCE  {}\n", source.clone().unwrap_or_default()),
            )?;
            last_source = source;
        }
        let target = h
            .source
            .as_ref()
            .map(|s| s.target_revision.as_str())
            .filter(|t| !t.is_empty())
            .unwrap_or("HEAD");
        let short: String = h.revision.chars().take(7).collect();
        rows.push(vec![
            h.id.to_string(),
            h.deployed_at.clone(),
            format!("{target} ({short})"),
        ]);
    }
    flush(out, &mut rows)
}

/// The manifest with its `gitfleet.dev/depends-on` annotation set to `apps`.
fn with_dependencies(manifest: &str, apps: &[String]) -> Result<String> {
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(manifest)
        .map_err(|e| Error::Usage(format!("the manifest is not YAML: {e}")))?;
    let annotations = doc
        .get_mut("metadata")
        .and_then(|m| m.as_mapping_mut())
        .ok_or_else(|| Error::Usage("the manifest has no metadata".into()))?
        .entry("annotations".into())
        .or_insert_with(|| serde_yaml_ng::Value::Mapping(Default::default()));
    let map = annotations
        .as_mapping_mut()
        .ok_or_else(|| Error::Usage("metadata.annotations is not a map".into()))?;
    map.insert(
        gitfleet_engine::depends::DEPENDS_ON.into(),
        apps.join(",").into(),
    );
    serde_yaml_ng::to_string(&doc).map_err(|e| Error::Usage(format!("writing the manifest: {e}")))
}

pub(crate) fn read_manifest(file: &PathBuf) -> Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io("reading the manifest from stdin", e))?;
        return Ok(s);
    }
    std::fs::read_to_string(file).map_err(|e| Error::io(format!("reading {}", file.display()), e))
}

fn parse_apps(raw: &[Value]) -> Result<Vec<Application>> {
    Ok(raw
        .iter()
        .map(|v| serde_json::from_value(v.clone()))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Argo CD's columns, in its order.
pub const LIST_COLUMNS: [&str; 11] = [
    "NAME",
    "CLUSTER",
    "NAMESPACE",
    "PROJECT",
    "STATUS",
    "HEALTH",
    "SYNCPOLICY",
    "CONDITIONS",
    "REPO",
    "PATH",
    "TARGET",
];

fn list_table(out: &mut dyn Write, apps: &[Application]) -> Result<()> {
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|app| {
            let (sync, health) = codes(app);
            let source = app.spec.effective_sources().into_iter().next();
            vec![
                app.metadata.name.clone(),
                cluster_of(app),
                app.spec.destination.namespace.clone(),
                app.spec.project_or_default().to_string(),
                sync.to_string(),
                health.to_string(),
                sync_policy(app),
                conditions(app),
                source.map(|s| s.repo_url.clone()).unwrap_or_default(),
                source.map(|s| s.path.clone()).unwrap_or_default(),
                source
                    .map(|s| s.target_revision.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    output::table(out, &LIST_COLUMNS, &rows)
}

/// `argocd app get`'s summary, then the resources table.
/// The sync windows of `project`, or `None` when the caller may not read it (`app get`
/// then shows none, as it can).
async fn project_windows(channel: Conn, project: &str) -> Option<Vec<gitfleet_model::SyncWindow>> {
    use gitfleet_proto::v1::GetProjectRequest;
    use gitfleet_proto::v1::project_service_client::ProjectServiceClient;
    let json = ProjectServiceClient::new(channel)
        .get(GetProjectRequest {
            name: project.to_owned(),
        })
        .await
        .ok()?
        .into_inner()
        .project_json;
    let project: gitfleet_model::AppProject = serde_json::from_str(&json).ok()?;
    Some(project.spec.sync_windows)
}

/// Argo CD's `SyncWindow:` line and `Assigned Windows:` of `app get`, from the project's
/// windows that match the app, now.
fn window_lines(
    app: &Application,
    windows: &[gitfleet_model::SyncWindow],
) -> Vec<(&'static str, String)> {
    use gitfleet_engine::sync::windows;
    let matching: Vec<gitfleet_model::SyncWindow> = windows::matching(windows, app)
        .into_iter()
        .map(|(_, w)| w.clone())
        .collect();
    let now = chrono::Utc::now();
    let status = match windows::can_sync(&matching, app, false, now) {
        Ok(true) => "Sync Allowed",
        _ if windows::can_sync(&matching, app, true, now).unwrap_or(false) => "Manual Allowed",
        _ => "Sync Denied",
    };
    let mut lines = vec![("SyncWindow:", status.to_owned())];
    if !matching.is_empty() {
        let assigned: Vec<String> = matching
            .iter()
            .map(|w| format!("{}:{}:{}", w.kind, w.schedule, w.duration))
            .collect();
        lines.push(("Assigned Windows:", assigned.join(",")));
    }
    lines
}

fn describe(
    out: &mut dyn Write,
    app: &Application,
    windows: Option<&[gitfleet_model::SyncWindow]>,
) -> Result<()> {
    let (sync, health) = codes(app);
    let source = app.spec.effective_sources().into_iter().next();
    let status = app.status.as_ref();
    let revision = status
        .and_then(|s| s.sync.as_ref())
        .map(|s| s.revision.clone())
        .unwrap_or_default();
    let target = source
        .map(|s| s.target_revision.as_str())
        .unwrap_or_default();
    let sync_line = match (sync, revision.is_empty()) {
        (SyncStatusCode::Synced, false) => format!("Synced to {} ({revision})", or_head(target)),
        (SyncStatusCode::OutOfSync, false) => {
            format!("OutOfSync from {} ({revision})", or_head(target))
        }
        (code, _) => code.to_string(),
    };
    let mut fields = vec![
        ("Name:", app.metadata.name.clone()),
        ("Project:", app.spec.project_or_default().to_string()),
        ("Server:", cluster_of(app)),
        ("Namespace:", app.spec.destination.namespace.clone()),
        (
            "Repo:",
            source.map(|s| s.repo_url.clone()).unwrap_or_default(),
        ),
        ("Target:", target.to_string()),
        ("Path:", source.map(|s| s.path.clone()).unwrap_or_default()),
    ];
    fields.extend(windows.map(|w| window_lines(app, w)).unwrap_or_default());
    fields.extend([
        ("Sync Policy:", sync_policy(app)),
        ("Sync Status:", sync_line),
        ("Health Status:", health.to_string()),
    ]);
    let depends = gitfleet_engine::depends::depends_on(app);
    if !depends.is_empty() {
        let at = fields.len() - 2;
        fields.insert(at, ("Depends On:", depends.join(", ")));
    }
    if let Some(op) = status.and_then(|s| s.operation_state.as_ref()) {
        fields.push(("Operation:", "Sync".to_string()));
        fields.push(("Phase:", op.phase.to_string()));
        if !op.message.is_empty() {
            fields.push(("Message:", op.message.clone()));
        }
    }
    let mut text = String::new();
    for (k, v) in fields {
        text.push_str(&format!("{k:<20}{v}\n"));
    }
    for c in status.map(|s| s.conditions.as_slice()).unwrap_or_default() {
        text.push_str(&format!("{:<20}{}: {}\n", "Condition:", c.type_, c.message));
    }
    output::write(out, &text)?;
    let resources = status.map(|s| s.resources.as_slice()).unwrap_or_default();
    if !resources.is_empty() {
        output::write(out, "\n")?;
        let rows: Vec<Vec<String>> = resources
            .iter()
            .map(|r| {
                vec![
                    r.group.clone(),
                    r.kind.clone(),
                    r.namespace.clone(),
                    r.name.clone(),
                    r.status.map(|s| s.to_string()).unwrap_or_default(),
                    r.health
                        .as_ref()
                        .map(|h| h.status.to_string())
                        .unwrap_or_default(),
                    if r.hook { "Hook".into() } else { String::new() },
                    r.health
                        .as_ref()
                        .map(|h| h.message.clone())
                        .unwrap_or_default(),
                ]
            })
            .collect();
        output::table(
            out,
            &[
                "GROUP",
                "KIND",
                "NAMESPACE",
                "NAME",
                "STATUS",
                "HEALTH",
                "HOOK",
                "MESSAGE",
            ],
            &rows,
        )?;
    }
    Ok(())
}

fn sync_report(out: &mut dyn Write, name: &str, res: &SyncApplicationResponse) -> Result<()> {
    let mut text = String::new();
    for (k, v) in [
        ("Name:", name),
        ("Operation:", "Sync"),
        ("Sync Revision:", res.revision.as_str()),
        ("Phase:", res.phase.as_str()),
        ("Message:", res.message.as_str()),
    ] {
        text.push_str(&format!("{k:<20}{v}\n"));
    }
    output::write(out, &text)?;
    let resources = res
        .resources_json
        .iter()
        .map(|j| serde_json::from_str::<ResourceResult>(j))
        .collect::<Result<Vec<_>, _>>()?;
    if !resources.is_empty() {
        output::write(out, "\n")?;
        let rows: Vec<Vec<String>> = resources
            .into_iter()
            .map(|r| {
                vec![
                    r.group,
                    r.kind,
                    r.namespace,
                    r.name,
                    r.status.to_string(),
                    r.message,
                ]
            })
            .collect();
        output::table(
            out,
            &["GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "MESSAGE"],
            &rows,
        )?;
    }
    Ok(())
}

fn or_head(target: &str) -> &str {
    if target.is_empty() { "HEAD" } else { target }
}

fn codes(app: &Application) -> (SyncStatusCode, HealthStatusCode) {
    let status = app.status.as_ref();
    (
        status
            .and_then(|s| s.sync.as_ref())
            .map_or(SyncStatusCode::Unknown, |s| s.status),
        status
            .and_then(|s| s.health.as_ref())
            .map_or(HealthStatusCode::Unknown, |h| h.status),
    )
}

fn cluster_of(app: &Application) -> String {
    let d = &app.spec.destination;
    if d.server.is_empty() {
        d.name.clone()
    } else {
        d.server.clone()
    }
}

/// `Manual`, `Auto` or `Auto-Prune`, as argocd prints it.
fn sync_policy(app: &Application) -> String {
    match app.spec.sync_policy.as_ref() {
        Some(p) if p.is_automated() => {
            if p.automated.as_ref().is_some_and(|a| a.prune) {
                "Auto-Prune".to_string()
            } else {
                "Auto".to_string()
            }
        }
        _ => "Manual".to_string(),
    }
}

/// `<none>`, or each condition type with its count: `SyncError(1),ComparisonError(2)`.
fn conditions(app: &Application) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for c in app
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
    {
        *counts.entry(c.type_.as_str()).or_default() += 1;
    }
    if counts.is_empty() {
        return "<none>".to_string();
    }
    counts
        .into_iter()
        .map(|(t, n)| format!("{t}({n})"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The tree's rows: each node under its owner, its kind indented by its depth with
/// `└─`, as `argocd app resources --output tree` prints them.
fn tree_rows(nodes: &[gitfleet_model::ResourceNode]) -> Vec<Vec<String>> {
    fn walk(
        nodes: &[gitfleet_model::ResourceNode],
        i: usize,
        depth: usize,
        seen: &mut Vec<bool>,
        rows: &mut Vec<Vec<String>>,
    ) {
        if seen[i] {
            return;
        }
        seen[i] = true;
        let n = &nodes[i];
        let kind = if depth == 0 {
            n.kind.clone()
        } else {
            format!("{}└─{}", "  ".repeat(depth - 1), n.kind)
        };
        let health = n
            .health
            .as_ref()
            .map(|h| h.status.to_string())
            .unwrap_or_default();
        rows.push(vec![
            n.group.clone(),
            kind,
            n.namespace.clone(),
            n.name.clone(),
            health,
        ]);
        for (c, child) in nodes.iter().enumerate() {
            if child
                .parent_refs
                .iter()
                .any(|p| !n.uid.is_empty() && p.uid == n.uid)
            {
                walk(nodes, c, depth + 1, seen, rows);
            }
        }
    }
    let mut seen = vec![false; nodes.len()];
    let mut rows = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.parent_refs.is_empty() {
            walk(nodes, i, 0, &mut seen, &mut rows);
        }
    }
    rows
}

/// One of the app's resources, as the filters of `app actions` see it.
struct Actionable {
    group: String,
    version: String,
    kind: String,
    namespace: String,
    name: String,
}

/// The app's resources the filters select, as Argo CD's `FilterResources`: none is an
/// error, more than one too unless `all`.
async fn actionable(
    client: &mut ApplicationServiceClient<Conn>,
    name: &str,
    filter: (
        &Option<String>,
        Option<&str>,
        &Option<String>,
        &Option<String>,
    ),
    all: bool,
) -> Result<Vec<Actionable>> {
    let (group, kind, namespace, resource_name) = filter;
    let json = client
        .get(GetApplicationRequest {
            name: name.to_owned(),
        })
        .await?
        .into_inner()
        .application_json;
    let app: Application = serde_json::from_str(&json)?;
    let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    let found: Vec<Actionable> = app
        .status
        .map(|s| s.resources)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| matches(group, &r.group) && kind.is_none_or(|k| k == r.kind))
        .filter(|r| matches(namespace, &r.namespace) && matches(resource_name, &r.name))
        .map(|r| Actionable {
            group: r.group,
            version: r.version,
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
        })
        .collect();
    if found.is_empty() {
        return Err(Error::Usage("no matching resource found".into()));
    }
    if found.len() > 1 && !all {
        return Err(Error::Usage(
            "multiple resources match inputs, use the --all flag to patch multiple resources"
                .into(),
        ));
    }
    Ok(found)
}

async fn actions(
    client: &mut ApplicationServiceClient<Conn>,
    command: &ActionsCommand,
    out: &mut dyn Write,
) -> Result<()> {
    match command {
        ActionsCommand::List {
            name,
            kind,
            group,
            namespace,
            resource_name,
            output: format,
        } => {
            let filter = (group, kind.as_deref(), namespace, resource_name);
            let mut rows = Vec::new();
            for r in actionable(client, name, filter, true).await? {
                let found = client
                    .list_resource_actions(ApplicationResourceRequest {
                        name: name.clone(),
                        namespace: r.namespace.clone(),
                        resource_name: r.name.clone(),
                        version: r.version.clone(),
                        group: r.group.clone(),
                        kind: r.kind.clone(),
                    })
                    .await?
                    .into_inner();
                for a in found.actions {
                    // Argo CD's `DisplayedAction`, field names as its JSON writes them.
                    rows.push(serde_json::json!({
                        "Group": r.group, "Kind": r.kind, "Name": r.name,
                        "Action": a.name, "Disabled": a.disabled,
                    }));
                }
            }
            match format {
                Some(Format::Json) => output::json(out, &rows)?,
                Some(Format::Yaml) => output::yaml(out, &rows)?,
                _ => {
                    let cell = |v: &Value, k: &str| match &v[k] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let rows: Vec<Vec<String>> = rows
                        .iter()
                        .map(|v| {
                            ["Group", "Kind", "Name", "Action", "Disabled"]
                                .iter()
                                .map(|k| cell(v, k))
                                .collect()
                        })
                        .collect();
                    output::table(out, &["GROUP", "KIND", "NAME", "ACTION", "DISABLED"], &rows)?;
                }
            }
        }
        ActionsCommand::Run {
            name,
            action,
            kind,
            group,
            namespace,
            resource_name,
            all,
            params,
        } => {
            let params = params
                .iter()
                .map(|p| match p.split_once('=') {
                    Some((name, value)) if !name.is_empty() => Ok(ResourceActionParameters {
                        name: name.to_owned(),
                        value: value.to_owned(),
                    }),
                    _ => Err(Error::Usage(format!("--param {p:?}: expected NAME=VALUE"))),
                })
                .collect::<Result<Vec<_>>>()?;
            let filter = (group, Some(kind.as_str()), namespace, resource_name);
            let targets = actionable(client, name, filter, *all).await?;
            if targets.iter().any(|t| t.group != targets[0].group) {
                return Err(Error::Usage(
                    "Ambiguous resource group. Use flag --group to specify resource group explicitly."
                        .into(),
                ));
            }
            for r in targets {
                let ran = client
                    .run_resource_action(ResourceActionRunRequest {
                        name: name.clone(),
                        namespace: r.namespace,
                        resource_name: r.name,
                        version: r.version,
                        group: r.group,
                        kind: r.kind,
                        action: action.clone(),
                        resource_action_parameters: params.clone(),
                    })
                    .await?
                    .into_inner();
                for line in ran.written {
                    output::write(out, &format!("{line}\n"))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfleet_model::SyncWindow;

    fn window(kind: &str, manual_sync: bool, apps: &str) -> SyncWindow {
        SyncWindow {
            kind: kind.into(),
            // Always open: every minute, for a day.
            schedule: "* * * * *".into(),
            duration: "24h".into(),
            applications: vec![apps.into()],
            manual_sync,
            ..SyncWindow::default()
        }
    }

    #[test]
    fn app_get_says_whether_a_window_blocks_as_argocd_does() {
        let mut app = Application::default();
        app.metadata.name = "web".into();
        let lines = |windows: &[SyncWindow]| window_lines(&app, windows);
        assert_eq!(lines(&[]), [("SyncWindow:", "Sync Allowed".to_owned())]);
        assert_eq!(
            lines(&[window("deny", false, "web"), window("deny", false, "db")]),
            [
                ("SyncWindow:", "Sync Denied".to_owned()),
                ("Assigned Windows:", "deny:* * * * *:24h".to_owned())
            ]
        );
        assert_eq!(lines(&[window("deny", true, "*")])[0].1, "Manual Allowed");
        assert_eq!(lines(&[window("allow", false, "*")])[0].1, "Sync Allowed");

        let mut text = Vec::new();
        describe(&mut text, &app, Some(&[window("deny", false, "web")])).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("SyncWindow:         Sync Denied\n"), "{text}");
        assert!(
            text.find("Assigned Windows:").unwrap() < text.find("Sync Policy:").unwrap(),
            "{text}"
        );
    }
}
