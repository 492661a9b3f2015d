//! `gitfleet proj ...`: AppProjects, as `argocd proj ...`: create from a manifest or
//! flags, get, list, delete, and the edits of sources, destinations and kind lists.

use std::io::Write;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use gitfleet_model::{AppProject, ClusterResourceRestriction, Destination, GroupKind, ObjectMeta};
use gitfleet_proto::v1::project_service_client::ProjectServiceClient;
use gitfleet_proto::v1::*;
use tonic::transport::Channel;

use crate::app::read_manifest;
use crate::error::{Error, Result};
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum ProjCommand {
    /// Create a project from a manifest (`-f`, `-` for stdin) or from flags.
    Create {
        name: Option<String>,
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// An allowed source repository (glob; repeatable).
        #[arg(short = 's', long = "src")]
        sources: Vec<String>,
        /// An allowed destination, `SERVER,NAMESPACE` (repeatable).
        #[arg(short = 'd', long = "dest")]
        destinations: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Replace a project of the same name.
        #[arg(long)]
        upsert: bool,
    },
    /// Show one project.
    Get {
        name: String,
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// List projects.
    List {
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// Delete a project (refused while applications use it).
    Delete { name: String },
    /// Allow a source repository.
    AddSource { name: String, url: String },
    /// Stop allowing a source repository.
    RemoveSource { name: String, url: String },
    /// Allow a destination (server, or with `--name` a cluster name, and a namespace).
    AddDestination {
        name: String,
        /// The cluster's server URL (or name, with `--name`).
        #[arg(value_name = "SERVER")]
        cluster: String,
        namespace: String,
        /// SERVER is a cluster name.
        #[arg(long = "name")]
        by_name: bool,
    },
    /// Stop allowing a destination.
    RemoveDestination {
        name: String,
        /// The cluster's server URL or name.
        #[arg(value_name = "SERVER")]
        cluster: String,
        namespace: String,
    },
    /// Allow a cluster-scoped kind (`--list deny`: take it off the deny list).
    AllowClusterResource {
        name: String,
        group: String,
        kind: String,
        #[arg(long, value_enum, default_value = "allow")]
        list: ListKind,
    },
    /// Refuse a cluster-scoped kind (take it off the allow list, or `--list deny`: add it
    /// to the deny list).
    DenyClusterResource {
        name: String,
        group: String,
        kind: String,
        #[arg(long, value_enum, default_value = "allow")]
        list: ListKind,
    },
    /// Allow a namespaced kind (`--list allow`: add it to the allow list; by default
    /// take it off the deny list).
    AllowNamespaceResource {
        name: String,
        group: String,
        kind: String,
        #[arg(long, value_enum, default_value = "deny")]
        list: ListKind,
    },
    /// Refuse a namespaced kind (by default add it to the deny list; `--list allow`: take
    /// it off the allow list).
    DenyNamespaceResource {
        name: String,
        group: String,
        kind: String,
        #[arg(long, value_enum, default_value = "deny")]
        list: ListKind,
    },
}

/// Which of a project's kind lists an edit works on (`argocd proj`'s `--list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListKind {
    Allow,
    Deny,
}

pub async fn run(cmd: &ProjCommand, channel: Channel, out: &mut dyn Write) -> Result<i32> {
    let mut client = ProjectServiceClient::new(channel);
    match cmd {
        ProjCommand::Create {
            name,
            file,
            sources,
            destinations,
            description,
            upsert,
        } => {
            let manifest = match (file, name) {
                (Some(file), None) => read_manifest(file)?,
                (None, Some(name)) => {
                    let mut project = AppProject {
                        metadata: ObjectMeta::named(name.clone()),
                        ..AppProject::default()
                    };
                    project.spec.source_repos = sources.clone();
                    project.spec.destinations = destinations
                        .iter()
                        .map(|d| parse_destination(d))
                        .collect::<Result<_>>()?;
                    project.spec.description = description.clone().unwrap_or_default();
                    serde_json::to_string(&project)?
                }
                _ => {
                    return Err(Error::Usage(
                        "give a project name or -f FILE, not both".to_string(),
                    ));
                }
            };
            let res = client
                .create(CreateProjectRequest {
                    manifest_yaml: manifest,
                    upsert: *upsert,
                })
                .await?
                .into_inner();
            let project: AppProject = serde_json::from_str(&res.project_json)?;
            output::write(
                out,
                &format!("project '{}' created\n", project.metadata.name),
            )?;
        }
        ProjCommand::Get {
            name,
            output: format,
        } => {
            let res = client
                .get(GetProjectRequest { name: name.clone() })
                .await?
                .into_inner();
            let raw: serde_json::Value = serde_json::from_str(&res.project_json)?;
            match format {
                Some(Format::Json) => output::json(out, &raw)?,
                Some(Format::Yaml) => output::yaml(out, &raw)?,
                _ => {
                    let project: AppProject = serde_json::from_value(raw)?;
                    describe(out, &project)?;
                }
            }
        }
        ProjCommand::List { output: format } => {
            let res = client.list(ListProjectsRequest {}).await?.into_inner();
            let raw = res
                .items_json
                .iter()
                .map(|j| serde_json::from_str::<serde_json::Value>(j))
                .collect::<Result<Vec<_>, _>>()?;
            match format {
                Some(Format::Json) => output::json(out, &raw)?,
                Some(Format::Yaml) => output::yaml(out, &raw)?,
                Some(Format::Name) => {
                    for p in raw {
                        let p: AppProject = serde_json::from_value(p)?;
                        output::write(out, &format!("{}\n", p.metadata.name))?;
                    }
                }
                _ => {
                    let rows = raw
                        .into_iter()
                        .map(serde_json::from_value::<AppProject>)
                        .map(|p| {
                            p.map(|p| {
                                vec![
                                    p.metadata.name.clone(),
                                    p.spec.description.clone(),
                                    destinations_cell(&p),
                                    or_none(p.spec.source_repos.join(",")),
                                    kinds_cell(&p.spec.cluster_resource_whitelist),
                                ]
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    output::table(
                        out,
                        &[
                            "NAME",
                            "DESCRIPTION",
                            "DESTINATIONS",
                            "SOURCES",
                            "CLUSTER-RESOURCE-WHITELIST",
                        ],
                        &rows,
                    )?;
                }
            }
        }
        ProjCommand::Delete { name } => {
            client
                .delete(DeleteProjectRequest { name: name.clone() })
                .await?;
            output::write(out, &format!("project '{name}' deleted\n"))?;
        }
        edit => {
            let name = edit_target(edit);
            let res = client
                .get(GetProjectRequest {
                    name: name.to_string(),
                })
                .await?
                .into_inner();
            let mut project: AppProject = serde_json::from_str(&res.project_json)?;
            if !apply_edit(edit, &mut project)? {
                output::write(out, "nothing to change\n")?;
                return Ok(0);
            }
            client
                .update(UpdateProjectRequest {
                    manifest_yaml: serde_json::to_string(&project)?,
                })
                .await?;
            output::write(out, &format!("project '{name}' updated\n"))?;
        }
    }
    Ok(0)
}

fn edit_target(cmd: &ProjCommand) -> &str {
    match cmd {
        ProjCommand::AddSource { name, .. }
        | ProjCommand::RemoveSource { name, .. }
        | ProjCommand::AddDestination { name, .. }
        | ProjCommand::RemoveDestination { name, .. }
        | ProjCommand::AllowClusterResource { name, .. }
        | ProjCommand::DenyClusterResource { name, .. }
        | ProjCommand::AllowNamespaceResource { name, .. }
        | ProjCommand::DenyNamespaceResource { name, .. }
        | ProjCommand::Get { name, .. }
        | ProjCommand::Delete { name } => name,
        ProjCommand::Create { name, .. } => name.as_deref().unwrap_or_default(),
        ProjCommand::List { .. } => "",
    }
}

/// Applies one edit; false when the project already is as asked.
fn apply_edit(cmd: &ProjCommand, project: &mut AppProject) -> Result<bool> {
    let spec = &mut project.spec;
    let cluster_kind = |group: &str, kind: &str| ClusterResourceRestriction {
        group: group.to_owned(),
        kind: kind.to_owned(),
        name: String::new(),
    };
    let namespaced_kind = |group: &str, kind: &str| GroupKind {
        group: group.to_owned(),
        kind: kind.to_owned(),
    };
    Ok(match cmd {
        ProjCommand::AddSource { url, .. } => add(&mut spec.source_repos, url.clone()),
        ProjCommand::RemoveSource { url, .. } => remove(&mut spec.source_repos, url),
        ProjCommand::AddDestination {
            cluster,
            namespace,
            by_name,
            ..
        } => {
            let dest = if *by_name {
                Destination {
                    name: cluster.clone(),
                    namespace: namespace.clone(),
                    ..Destination::default()
                }
            } else {
                Destination {
                    server: cluster.clone(),
                    namespace: namespace.clone(),
                    ..Destination::default()
                }
            };
            add(&mut spec.destinations, dest)
        }
        ProjCommand::RemoveDestination {
            cluster, namespace, ..
        } => {
            let before = spec.destinations.len();
            spec.destinations.retain(|d| {
                !((d.server == *cluster || d.name == *cluster) && d.namespace == *namespace)
            });
            spec.destinations.len() != before
        }
        ProjCommand::AllowClusterResource {
            group, kind, list, ..
        } => match list {
            ListKind::Allow => add(
                &mut spec.cluster_resource_whitelist,
                cluster_kind(group, kind),
            ),
            ListKind::Deny => remove(
                &mut spec.cluster_resource_blacklist,
                &cluster_kind(group, kind),
            ),
        },
        ProjCommand::DenyClusterResource {
            group, kind, list, ..
        } => match list {
            ListKind::Allow => remove(
                &mut spec.cluster_resource_whitelist,
                &cluster_kind(group, kind),
            ),
            ListKind::Deny => add(
                &mut spec.cluster_resource_blacklist,
                cluster_kind(group, kind),
            ),
        },
        ProjCommand::AllowNamespaceResource {
            group, kind, list, ..
        } => match list {
            ListKind::Allow => add(
                spec.namespace_resource_whitelist
                    .get_or_insert_with(Vec::new),
                namespaced_kind(group, kind),
            ),
            ListKind::Deny => remove(
                &mut spec.namespace_resource_blacklist,
                &namespaced_kind(group, kind),
            ),
        },
        ProjCommand::DenyNamespaceResource {
            group, kind, list, ..
        } => match list {
            ListKind::Allow => match spec.namespace_resource_whitelist.as_mut() {
                Some(whitelist) => remove(whitelist, &namespaced_kind(group, kind)),
                None => false,
            },
            ListKind::Deny => add(
                &mut spec.namespace_resource_blacklist,
                namespaced_kind(group, kind),
            ),
        },
        _ => false,
    })
}

fn add<T: PartialEq>(list: &mut Vec<T>, item: T) -> bool {
    if list.contains(&item) {
        return false;
    }
    list.push(item);
    true
}

fn remove<T: PartialEq>(list: &mut Vec<T>, item: &T) -> bool {
    let before = list.len();
    list.retain(|i| i != item);
    list.len() != before
}

fn parse_destination(text: &str) -> Result<Destination> {
    let Some((server, namespace)) = text.split_once(',') else {
        return Err(Error::Usage(format!(
            "--dest {text:?}: expected SERVER,NAMESPACE"
        )));
    };
    Ok(Destination {
        server: server.trim().to_owned(),
        namespace: namespace.trim().to_owned(),
        ..Destination::default()
    })
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".to_owned() } else { s }
}

fn destinations_cell(p: &AppProject) -> String {
    or_none(
        p.spec
            .destinations
            .iter()
            .map(|d| {
                let target = if d.name.is_empty() {
                    &d.server
                } else {
                    &d.name
                };
                format!("{target},{}", d.namespace)
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn kinds_cell(list: &[ClusterResourceRestriction]) -> String {
    or_none(
        list.iter()
            .map(|k| format!("{}/{}", k.group, k.kind))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn describe(out: &mut dyn Write, p: &AppProject) -> Result<()> {
    let spec = &p.spec;
    let namespaced = |list: &[GroupKind]| {
        or_none(
            list.iter()
                .map(|k| format!("{}/{}", k.group, k.kind))
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    let rows = [
        ("Name:", p.metadata.name.clone()),
        ("Description:", spec.description.clone()),
        ("Destinations:", destinations_cell(p)),
        ("Repositories:", or_none(spec.source_repos.join(", "))),
        (
            "Allowed Cluster Resources:",
            kinds_cell(&spec.cluster_resource_whitelist),
        ),
        (
            "Denied Cluster Resources:",
            kinds_cell(&spec.cluster_resource_blacklist),
        ),
        (
            "Allowed Namespaced Resources:",
            match &spec.namespace_resource_whitelist {
                None => "<all>".to_owned(),
                Some(list) => namespaced(list),
            },
        ),
        (
            "Denied Namespaced Resources:",
            namespaced(&spec.namespace_resource_blacklist),
        ),
        (
            "Source Namespaces:",
            or_none(spec.source_namespaces.join(", ")),
        ),
        (
            "Roles:",
            or_none(
                spec.roles
                    .iter()
                    .map(|r| r.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ),
        ("Sync Windows:", format!("{}", spec.sync_windows.len())),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in rows {
        output::write(out, &format!("{k:<width$}{v}\n"))?;
    }
    Ok(())
}
