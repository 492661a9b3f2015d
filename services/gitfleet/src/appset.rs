//! `gitfleet appset ...`: ApplicationSets, as `argocd appset ...`: create from a manifest,
//! get (with its conditions), list, delete, and generate (the apps a set would produce,
//! nothing created).

use std::io::Write;
use std::path::PathBuf;

use crate::Conn;
use clap::Subcommand;
use gitfleet_model::{Application, ApplicationSet};
use gitfleet_proto::v1::application_set_service_client::ApplicationSetServiceClient;
use gitfleet_proto::v1::*;
use serde_json::Value;

use crate::app::read_manifest;
use crate::error::Result;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum AppSetCommand {
    /// Create ApplicationSets from a manifest (`-` for stdin).
    Create {
        file: PathBuf,
        /// Replace a set of the same name.
        #[arg(long)]
        upsert: bool,
        /// Check the set and print it; store nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// Show one set: its template, policy, conditions and apps.
    Get {
        name: String,
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// List sets.
    List {
        /// Only sets of these projects (repeatable).
        #[arg(short = 'p', long = "project")]
        projects: Vec<String>,
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// Delete a set; its apps go with it (their resources too, unless the set preserves
    /// them).
    Delete { name: String },
    /// The Applications a set manifest would produce now, without creating anything.
    Generate {
        file: PathBuf,
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
}

pub async fn run(cmd: &AppSetCommand, channel: Conn, out: &mut dyn Write) -> Result<i32> {
    let mut client = ApplicationSetServiceClient::new(channel);
    match cmd {
        AppSetCommand::Create {
            file,
            upsert,
            dry_run,
            output: format,
        } => {
            let manifest = read_manifest(file)?;
            let res = client
                .create(CreateApplicationSetRequest {
                    manifest_yaml: manifest,
                    upsert: *upsert,
                    dry_run: *dry_run,
                })
                .await?
                .into_inner();
            let raw: Value = serde_json::from_str(&res.application_set_json)?;
            match format {
                Some(Format::Json) => output::json(out, &raw)?,
                Some(Format::Yaml) => output::yaml(out, &raw)?,
                _ => {
                    let set: ApplicationSet = serde_json::from_value(raw)?;
                    let verb = if *dry_run {
                        "checked (dry run)"
                    } else {
                        "created"
                    };
                    output::write(
                        out,
                        &format!("ApplicationSet '{}' {verb}\n", set.metadata.name),
                    )?;
                }
            }
        }
        AppSetCommand::Get {
            name,
            output: format,
        } => {
            let res = client
                .get(GetApplicationSetRequest { name: name.clone() })
                .await?
                .into_inner();
            let raw: Value = serde_json::from_str(&res.application_set_json)?;
            match format {
                Some(Format::Json) => output::json(out, &raw)?,
                Some(Format::Yaml) => output::yaml(out, &raw)?,
                _ => describe(out, &raw)?,
            }
        }
        AppSetCommand::List {
            projects,
            output: format,
        } => {
            let res = client
                .list(ListApplicationSetsRequest {
                    projects: projects.clone(),
                })
                .await?
                .into_inner();
            let header = ["NAME", "PROJECT", "SYNCPOLICY", "CONDITIONS"];
            write_items(out, &res.items_json, *format, &header, |s| {
                let set: ApplicationSet = serde_json::from_value(s.clone())?;
                Ok(vec![
                    set.metadata.name.clone(),
                    set.spec.template.spec.project_or_default().to_owned(),
                    sync_policy(&set),
                    conditions_cell(s),
                ])
            })?;
        }
        AppSetCommand::Delete { name } => {
            client
                .delete(DeleteApplicationSetRequest { name: name.clone() })
                .await?;
            output::write(out, &format!("applicationset '{name}' deleted\n"))?;
        }
        AppSetCommand::Generate {
            file,
            output: format,
        } => {
            let manifest = read_manifest(file)?;
            let res = client
                .generate(GenerateApplicationSetRequest {
                    manifest_yaml: manifest,
                })
                .await?
                .into_inner();
            let header = [
                "NAME",
                "PROJECT",
                "CLUSTER",
                "NAMESPACE",
                "REPO",
                "PATH",
                "TARGET",
            ];
            write_items(out, &res.applications_json, *format, &header, |a| {
                let app: Application = serde_json::from_value(a.clone())?;
                let dest = &app.spec.destination;
                let source = app
                    .spec
                    .effective_sources()
                    .first()
                    .cloned()
                    .cloned()
                    .unwrap_or_default();
                Ok(vec![
                    app.metadata.name.clone(),
                    app.spec.project_or_default().to_owned(),
                    if dest.name.is_empty() {
                        dest.server.clone()
                    } else {
                        dest.name.clone()
                    },
                    dest.namespace.clone(),
                    source.repo_url.clone(),
                    source.path.clone(),
                    source.target_revision.clone(),
                ])
            })?;
        }
    }
    Ok(0)
}

/// Objects (as JSON) the way `-o` asks: JSON, YAML, their names, or a table of `row`s.
fn write_items(
    out: &mut dyn Write,
    items_json: &[String],
    format: Option<Format>,
    header: &[&str],
    row: impl Fn(&Value) -> Result<Vec<String>>,
) -> Result<()> {
    let raw = items_json
        .iter()
        .map(|j| serde_json::from_str::<Value>(j))
        .collect::<Result<Vec<_>, _>>()?;
    match format {
        Some(Format::Json) => output::json(out, &raw),
        Some(Format::Yaml) => output::yaml(out, &raw),
        Some(Format::Name) => {
            for item in &raw {
                let name = item["metadata"]["name"].as_str().unwrap_or("");
                output::write(out, &format!("{name}\n"))?;
            }
            Ok(())
        }
        _ => {
            let rows = raw.iter().map(&row).collect::<Result<Vec<_>>>()?;
            output::table(out, header, &rows)
        }
    }
}

fn sync_policy(set: &ApplicationSet) -> String {
    set.spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.applications_sync.clone())
        .unwrap_or_else(|| "sync".to_owned())
}

/// The set's conditions that hold (`status: True`), by type.
fn conditions_cell(raw: &Value) -> String {
    let held: Vec<&str> = raw["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| c["status"] == "True")
                .filter_map(|c| c["type"].as_str())
                .collect()
        })
        .unwrap_or_default();
    if held.is_empty() {
        "<none>".to_owned()
    } else {
        held.join(",")
    }
}

fn describe(out: &mut dyn Write, raw: &Value) -> Result<()> {
    let set: ApplicationSet = serde_json::from_value(raw.clone())?;
    let kinds: Vec<&str> = set
        .spec
        .generators
        .iter()
        .filter_map(|g| g.kind().map(|k| k.key()))
        .collect();
    let t = &set.spec.template.spec;
    let source = t
        .effective_sources()
        .first()
        .cloned()
        .cloned()
        .unwrap_or_default();
    let mut text = String::new();
    let mut line = |k: &str, v: &str| text.push_str(&format!("{:<20}{}\n", format!("{k}:"), v));
    line("Name", &set.metadata.name);
    line("Namespace", &set.metadata.namespace);
    line("Project", t.project_or_default());
    line("Generators", &kinds.join(", "));
    line("Template name", &set.spec.template.metadata.name);
    line("Repo", &source.repo_url);
    line("Path", &source.path);
    line("Target", &source.target_revision);
    line("Server", &t.destination.server);
    line("Namespace (dest)", &t.destination.namespace);
    line("SyncPolicy", &sync_policy(&set));
    output::write(out, &text)?;
    let conditions: Vec<Vec<String>> = raw["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    ["type", "status", "message", "lastTransitionTime"]
                        .iter()
                        .map(|k| c[*k].as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    if !conditions.is_empty() {
        output::write(out, "\n")?;
        output::table(
            out,
            &["CONDITION", "STATUS", "MESSAGE", "LAST TRANSITION"],
            &conditions,
        )?;
    }
    let apps: Vec<Vec<String>> = raw["status"]["resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| vec![r["name"].as_str().unwrap_or("").to_owned()])
                .collect()
        })
        .unwrap_or_default();
    if !apps.is_empty() {
        output::write(out, "\n")?;
        output::table(out, &["APPLICATION"], &apps)?;
    }
    Ok(())
}
