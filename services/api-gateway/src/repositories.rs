//! `RepositoryService`: source repositories in KV `repositories` (Argo CD's Repository
//! JSON). Passwords go in and never come back out.

use gitfleet_bus::{Bucket, Bus};
use gitfleet_model::{Redacted, Repository, RepositoryType, is_repo_url};
use gitfleet_proto::v1::repository_service_server::RepositoryService;
use gitfleet_proto::v1::*;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use gitfleet_rbac::{actions, resources};

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::store::Store;

pub struct Repositories {
    store: Store,
    auth: Arc<Auth>,
}

/// A repository's RBAC object, as Argo CD's: its URL, under its project when scoped to one.
pub(crate) fn rbac_object(r: &Repository) -> String {
    if r.project.is_empty() {
        r.repo.clone()
    } else {
        format!("{}/{}", r.project, r.repo)
    }
}

impl Repositories {
    pub async fn new(bus: &Bus, auth: Arc<Auth>) -> Result<Self> {
        Ok(Repositories {
            store: Store::open(bus, Bucket::Repositories, "repository").await?,
            auth,
        })
    }

    pub async fn create(&self, req: CreateRepositoryRequest) -> Result<Repository> {
        let url = req.repo.trim().to_string();
        let mut problems = Vec::new();
        if !is_repo_url(&url) {
            problems.push(format!("repo: {url:?} is not a repository url"));
        }
        let type_ = match req.r#type.as_str() {
            "" | "git" => RepositoryType::Git,
            "helm" => RepositoryType::Helm,
            "oci" => RepositoryType::Oci,
            other => {
                problems.push(format!("type: {other:?} is not git, helm or oci"));
                RepositoryType::Git
            }
        };
        if req.password.is_empty() != req.username.is_empty() {
            problems.push("username and password go together".to_string());
        }
        if !problems.is_empty() {
            return Err(Error::invalid(problems.join("\n")));
        }
        let repo = Repository {
            repo: url.clone(),
            type_,
            username: req.username,
            password: Some(req.password)
                .filter(|p| !p.is_empty())
                .map(Redacted::new),
            ..Repository::default()
        };
        if req.upsert {
            self.store.put(&url, &repo).await?;
        } else {
            self.store.create(&url, &repo).await?;
        }
        tracing::info!(repo = %url, "repository stored");
        Ok(redact(repo))
    }

    pub async fn list(&self) -> Result<Vec<Repository>> {
        Ok(self
            .store
            .list::<Repository>()
            .await?
            .into_iter()
            .map(redact)
            .collect())
    }

    pub async fn delete(&self, url: &str) -> Result<()> {
        self.store.require::<Repository>(url).await?;
        self.store.delete(url).await?;
        tracing::info!(repo = %url, "repository deleted");
        Ok(())
    }
}

/// What may leave the gateway: the username stays (it is not secret and shows that
/// credentials are set), every secret goes.
pub fn redact(mut r: Repository) -> Repository {
    r.password = None;
    r.bearer_token = None;
    r.ssh_private_key = None;
    r.tls_client_cert_key = None;
    r.github_app_private_key = None;
    r.gcp_service_account_key = None;
    r
}

fn to_json(r: &Repository) -> Result<String> {
    Ok(serde_json::to_string(r)?)
}

#[tonic::async_trait]
impl RepositoryService for Repositories {
    async fn create(
        &self,
        request: Request<CreateRepositoryRequest>,
    ) -> Result<Response<RepositoryResponse>, Status> {
        let url = request.get_ref().repo.trim().to_string();
        self.auth
            .authorize(&request, resources::REPOSITORIES, actions::CREATE, &url)
            .await?;
        if request.get_ref().upsert {
            self.auth
                .authorize(&request, resources::REPOSITORIES, actions::UPDATE, &url)
                .await?;
        }
        let r = Repositories::create(self, request.into_inner()).await?;
        Ok(Response::new(RepositoryResponse {
            repository_json: to_json(&r)?,
        }))
    }

    async fn list(
        &self,
        request: Request<ListRepositoriesRequest>,
    ) -> Result<Response<ListRepositoriesResponse>, Status> {
        let mut decisions = self.auth.decisions(self.auth.identity(&request).await?);
        let mut items_json = Vec::new();
        for r in Repositories::list(self).await? {
            if decisions
                .can(resources::REPOSITORIES, actions::GET, &rbac_object(&r))
                .await?
            {
                items_json.push(to_json(&r)?);
            }
        }
        Ok(Response::new(ListRepositoriesResponse { items_json }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRepositoryRequest>,
    ) -> Result<Response<DeleteRepositoryResponse>, Status> {
        let url = request.get_ref().repo.trim().to_string();
        let object = match self.store.get::<Repository>(&url).await? {
            Some((r, _)) => rbac_object(&r),
            None => url,
        };
        self.auth
            .authorize(&request, resources::REPOSITORIES, actions::DELETE, &object)
            .await?;
        Repositories::delete(self, &request.into_inner().repo).await?;
        Ok(Response::new(DeleteRepositoryResponse {}))
    }
}
