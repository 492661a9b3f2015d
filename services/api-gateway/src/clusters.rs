//! `ClusterService`: destination clusters in KV `clusters` (Argo CD's Cluster JSON).
//! Tokens and keys go in and never come back out.

use gitfleet_bus::{Bucket, Bus};
use gitfleet_model::{Cluster, ClusterConfig, IN_CLUSTER_NAME, Redacted, TlsClientConfig};
use gitfleet_proto::v1::cluster_service_server::ClusterService;
use gitfleet_proto::v1::*;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use gitfleet_rbac::{actions, resources};

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::store::Store;

pub struct Clusters {
    store: Store,
    auth: Arc<Auth>,
}

/// A cluster's RBAC object, as Argo CD's: its server, under its project when scoped to one.
pub(crate) fn rbac_object(c: &Cluster) -> String {
    if c.project.is_empty() {
        c.server.clone()
    } else {
        format!("{}/{}", c.project, c.server)
    }
}

impl Clusters {
    pub async fn new(bus: &Bus, auth: Arc<Auth>) -> Result<Self> {
        Ok(Clusters {
            store: Store::open(bus, Bucket::Clusters, "cluster").await?,
            auth,
        })
    }

    pub async fn create(&self, req: CreateClusterRequest) -> Result<Cluster> {
        let server = req.server.trim().to_string();
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(Error::invalid(format!(
                "server: {server:?} is not an http(s) url"
            )));
        }
        let name = if req.name.trim().is_empty() {
            server.clone()
        } else {
            req.name.trim().to_string()
        };
        let cluster = Cluster {
            server,
            name: name.clone(),
            config: ClusterConfig {
                bearer_token: Some(req.bearer_token)
                    .filter(|t| !t.is_empty())
                    .map(Redacted::new),
                tls_client_config: TlsClientConfig {
                    insecure: req.insecure,
                    ca_data: req.ca_data,
                    ..TlsClientConfig::default()
                },
                ..ClusterConfig::default()
            },
            labels: req.labels.into_iter().collect(),
            annotations: req.annotations.into_iter().collect(),
            ..Cluster::default()
        };
        if req.upsert {
            self.store.put(&name, &cluster).await?;
        } else {
            self.store.create(&name, &cluster).await?;
        }
        tracing::info!(cluster = %name, server = %cluster.server, "cluster stored");
        Ok(redact(cluster))
    }

    /// By name, else by server URL; `in-cluster` exists even when never added.
    pub async fn get(&self, name: &str) -> Result<Cluster> {
        if let Some((c, _)) = self.store.get::<Cluster>(name).await? {
            return Ok(redact(c));
        }
        let wanted = name.trim_end_matches('/');
        if let Some(c) = self
            .store
            .list::<Cluster>()
            .await?
            .into_iter()
            .find(|c| c.server.trim_end_matches('/') == wanted)
        {
            return Ok(redact(c));
        }
        let implicit = Cluster::in_cluster();
        if name == IN_CLUSTER_NAME || implicit.server == wanted {
            return Ok(implicit);
        }
        Err(Error::NotFound {
            kind: "cluster",
            name: name.to_string(),
        })
    }

    pub async fn list(&self) -> Result<Vec<Cluster>> {
        Ok(self
            .store
            .list::<Cluster>()
            .await?
            .into_iter()
            .map(redact)
            .collect())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        self.store.require::<Cluster>(name).await?;
        self.store.delete(name).await?;
        tracing::info!(cluster = %name, "cluster deleted");
        Ok(())
    }
}

/// What may leave the gateway: everything but credentials.
pub fn redact(mut c: Cluster) -> Cluster {
    c.config.password = None;
    c.config.bearer_token = None;
    c.config.tls_client_config.key_data = None;
    // Exec and AWS configs can carry env secrets; say they exist, not what they hold.
    if c.config.exec_provider_config.is_some() {
        c.config.exec_provider_config = Some(serde_json::json!({}));
    }
    if c.config.aws_auth_config.is_some() {
        c.config.aws_auth_config = Some(serde_json::json!({}));
    }
    c
}

fn to_json(c: &Cluster) -> Result<String> {
    Ok(serde_json::to_string(c)?)
}

#[tonic::async_trait]
impl ClusterService for Clusters {
    async fn create(
        &self,
        request: Request<CreateClusterRequest>,
    ) -> Result<Response<ClusterResponse>, Status> {
        let server = request.get_ref().server.trim().to_string();
        self.auth
            .authorize(&request, resources::CLUSTERS, actions::CREATE, &server)
            .await?;
        if request.get_ref().upsert {
            self.auth
                .authorize(&request, resources::CLUSTERS, actions::UPDATE, &server)
                .await?;
        }
        let c = Clusters::create(self, request.into_inner()).await?;
        Ok(Response::new(ClusterResponse {
            cluster_json: to_json(&c)?,
        }))
    }

    async fn get(
        &self,
        request: Request<GetClusterRequest>,
    ) -> Result<Response<ClusterResponse>, Status> {
        self.auth.identity(&request).await?;
        let c = Clusters::get(self, &request.get_ref().name).await?;
        self.auth
            .authorize(
                &request,
                resources::CLUSTERS,
                actions::GET,
                &rbac_object(&c),
            )
            .await?;
        Ok(Response::new(ClusterResponse {
            cluster_json: to_json(&c)?,
        }))
    }

    async fn list(
        &self,
        request: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersResponse>, Status> {
        let mut decisions = self.auth.decisions(self.auth.identity(&request).await?);
        let mut items_json = Vec::new();
        for c in Clusters::list(self).await? {
            if decisions
                .can(resources::CLUSTERS, actions::GET, &rbac_object(&c))
                .await?
            {
                items_json.push(to_json(&c)?);
            }
        }
        Ok(Response::new(ListClustersResponse { items_json }))
    }

    async fn delete(
        &self,
        request: Request<DeleteClusterRequest>,
    ) -> Result<Response<DeleteClusterResponse>, Status> {
        self.auth.identity(&request).await?;
        let c = Clusters::get(self, &request.get_ref().name).await?;
        self.auth
            .authorize(
                &request,
                resources::CLUSTERS,
                actions::DELETE,
                &rbac_object(&c),
            )
            .await?;
        Clusters::delete(self, &request.into_inner().name).await?;
        Ok(Response::new(DeleteClusterResponse {}))
    }
}
