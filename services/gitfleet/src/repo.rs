//! `gitfleet repo ...`: register source repositories, list them.

use std::io::Write;

use crate::Conn;
use clap::Subcommand;
use gitfleet_model::Repository;
use gitfleet_proto::v1::repository_service_client::RepositoryServiceClient;
use gitfleet_proto::v1::*;

use crate::error::Result;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Register a repository (and its credentials).
    Add {
        url: String,
        #[arg(long)]
        username: Option<String>,
        /// Prefer `GITFLEET_REPO_PASSWORD`: arguments show in `ps`.
        #[arg(long, env = "GITFLEET_REPO_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// git (default), helm or oci.
        #[arg(long = "type")]
        type_: Option<String>,
        #[arg(long)]
        upsert: bool,
    },
    /// List repositories.
    List {
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// Remove a repository.
    Rm { url: String },
}

pub async fn run(cmd: &RepoCommand, channel: Conn, out: &mut dyn Write) -> Result<i32> {
    let mut client = RepositoryServiceClient::new(channel);
    match cmd {
        RepoCommand::Add {
            url,
            username,
            password,
            type_,
            upsert,
        } => {
            client
                .create(CreateRepositoryRequest {
                    repo: url.clone(),
                    username: username.clone().unwrap_or_default(),
                    password: password.clone().unwrap_or_default(),
                    r#type: type_.clone().unwrap_or_default(),
                    upsert: *upsert,
                })
                .await?;
            output::write(out, &format!("Repository '{url}' added\n"))?;
        }
        RepoCommand::List { output: format } => {
            let res = client.list(ListRepositoriesRequest {}).await?.into_inner();
            let raw = res
                .items_json
                .iter()
                .map(|j| serde_json::from_str::<serde_json::Value>(j))
                .collect::<Result<Vec<_>, _>>()?;
            match format {
                Some(Format::Json) => output::json(out, &raw)?,
                Some(Format::Yaml) => output::yaml(out, &raw)?,
                _ => {
                    let rows = raw
                        .into_iter()
                        .map(serde_json::from_value::<Repository>)
                        .map(|r| {
                            r.map(|r| {
                                vec![
                                    r.type_.as_str().to_string(),
                                    r.name,
                                    r.repo,
                                    r.insecure.to_string(),
                                    (!r.username.is_empty()).to_string(),
                                    r.project,
                                ]
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    output::table(
                        out,
                        &["TYPE", "NAME", "REPO", "INSECURE", "CREDS", "PROJECT"],
                        &rows,
                    )?;
                }
            }
        }
        RepoCommand::Rm { url } => {
            client
                .delete(DeleteRepositoryRequest { repo: url.clone() })
                .await?;
            output::write(out, &format!("Repository '{url}' removed\n"))?;
        }
    }
    Ok(0)
}
