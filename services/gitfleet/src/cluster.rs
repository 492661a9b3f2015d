//! `gitfleet cluster ...`: register clusters from a kubeconfig context, list them.

use std::io::Write;
use std::path::PathBuf;

use crate::Conn;
use clap::Subcommand;
use gitfleet_model::{Cluster, IN_CLUSTER_NAME};
use gitfleet_proto::v1::cluster_service_client::ClusterServiceClient;
use gitfleet_proto::v1::*;

use crate::error::Result;
use crate::kubeconfig;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Register the cluster of a kubeconfig context (its server, CA and user token).
    Add {
        context: String,
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Name to register under; the context's name by default.
        #[arg(long)]
        name: Option<String>,
        /// Register it as the cluster gitfleet runs in (name `in-cluster`).
        #[arg(long)]
        in_cluster: bool,
        /// Replace a cluster of the same name.
        #[arg(long)]
        upsert: bool,
        /// A label on the cluster, `key=value` (repeatable): what ApplicationSets'
        /// cluster generators select on.
        #[arg(long = "label", value_parser = key_value)]
        labels: Vec<(String, String)>,
        /// An annotation on the cluster, `key=value` (repeatable).
        #[arg(long = "annotation", value_parser = key_value)]
        annotations: Vec<(String, String)>,
    },
    /// List clusters.
    List {
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// Remove a cluster (by name or server URL).
    Rm { name: String },
}

/// `key=value`, as Argo CD's `--label` takes it.
fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?}: expected key=value")),
    }
}

pub async fn run(cmd: &ClusterCommand, channel: Conn, out: &mut dyn Write) -> Result<i32> {
    let mut client = ClusterServiceClient::new(channel);
    match cmd {
        ClusterCommand::Add {
            context,
            kubeconfig: path,
            name,
            in_cluster,
            upsert,
            labels,
            annotations,
        } => {
            let path = kubeconfig::default_path(path.as_deref());
            let creds = kubeconfig::read_context(&path, context)?;
            let name = if *in_cluster {
                IN_CLUSTER_NAME.to_string()
            } else {
                name.clone().unwrap_or_else(|| context.clone())
            };
            let res = client
                .create(CreateClusterRequest {
                    name,
                    server: creds.server,
                    bearer_token: creds.bearer_token,
                    ca_data: creds.ca_data,
                    insecure: creds.insecure,
                    upsert: *upsert,
                    labels: labels.iter().cloned().collect(),
                    annotations: annotations.iter().cloned().collect(),
                })
                .await?
                .into_inner();
            let cluster: Cluster = serde_json::from_str(&res.cluster_json)?;
            output::write(out, &format!("Cluster '{}' added\n", cluster.server))?;
        }
        ClusterCommand::List { output: format } => {
            let res = client.list(ListClustersRequest {}).await?.into_inner();
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
                        .map(serde_json::from_value::<Cluster>)
                        .map(|c| c.map(|c| vec![c.server, c.name, c.project]))
                        .collect::<Result<Vec<_>, _>>()?;
                    output::table(out, &["SERVER", "NAME", "PROJECT"], &rows)?;
                }
            }
        }
        ClusterCommand::Rm { name } => {
            client
                .delete(DeleteClusterRequest { name: name.clone() })
                .await?;
            output::write(out, &format!("Cluster '{name}' removed\n"))?;
        }
    }
    Ok(0)
}
