//! `ApplicationSetService`: ApplicationSets in KV `appsets` (the ApplicationSet
//! controllers generate their apps), and `generate`, answered by a controller. RBAC as
//! Argo CD's: resource `applicationsets`, object `<template project>/<name>`.

use std::sync::Arc;
use std::time::Duration;

use gitfleet_bus::{Bucket, Bus};
use gitfleet_model::{Application, ApplicationSet, Manifest};
use gitfleet_proto::v1::application_set_service_server::ApplicationSetService;
use gitfleet_proto::v1::*;
use gitfleet_rbac::{actions, resources};
use tonic::{Request, Response, Status};

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::store::Store;

/// How long `generate` waits for a controller (it may read Git repositories).
const GENERATE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct AppSets {
    bus: Bus,
    sets: Store,
    auth: Arc<Auth>,
}

fn object(set: &ApplicationSet) -> String {
    format!(
        "{}/{}",
        set.spec.template.spec.project_or_default(),
        set.metadata.name
    )
}

/// Parses and validates one ApplicationSet manifest; every problem in the error.
pub fn parse_set(manifest: &str) -> Result<ApplicationSet> {
    let parsed =
        gitfleet_model::from_yaml_str(manifest).map_err(|e| Error::invalid(e.to_string()))?;
    let set = match parsed {
        Manifest::ApplicationSet(s) => *s,
        other => {
            return Err(Error::invalid(format!(
                "expected an ApplicationSet manifest, got {}",
                other.kind()
            )));
        }
    };
    set.validate().map_err(|e| Error::invalid(e.to_string()))?;
    Ok(set)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    Ok(serde_json::to_string(v)?)
}

impl AppSets {
    pub async fn new(bus: &Bus, auth: Arc<Auth>) -> Result<Self> {
        Ok(AppSets {
            bus: bus.clone(),
            sets: Store::open(bus, Bucket::AppSets, "applicationset").await?,
            auth,
        })
    }

    /// Stores `set` (its status kept from the stored one: it is the controller's). Without
    /// `upsert`, a stored set with another spec is refused, as Argo CD refuses it.
    async fn store(&self, mut set: ApplicationSet, upsert: bool) -> Result<ApplicationSet> {
        let name = set.metadata.name.clone();
        let existing = self.sets.get::<ApplicationSet>(&name).await?;
        if let Some((before, _)) = &existing {
            if !upsert && before.spec != set.spec {
                return Err(Error::invalid(format!(
                    "existing ApplicationSet spec is different, use upsert flag to force update (applicationset {name:?})"
                )));
            }
            set.status = before.status.clone();
        } else {
            set.status = None;
        }
        self.sets.put(&name, &set).await?;
        tracing::info!(set = %name, upsert, "applicationset stored");
        Ok(set)
    }

    async fn authorize_stored<T>(
        &self,
        req: &Request<T>,
        action: &str,
        name: &str,
    ) -> Result<ApplicationSet> {
        match self.sets.get::<ApplicationSet>(name).await? {
            Some((set, _)) => {
                self.auth
                    .authorize(req, resources::APPLICATION_SETS, action, &object(&set))
                    .await?;
                Ok(set)
            }
            None => {
                self.auth.identity(req).await?;
                Err(Error::NotFound {
                    kind: "applicationset",
                    name: name.to_owned(),
                })
            }
        }
    }
}

#[tonic::async_trait]
impl ApplicationSetService for AppSets {
    async fn create(
        &self,
        req: Request<CreateApplicationSetRequest>,
    ) -> Result<Response<ApplicationSetResponse>, Status> {
        let set = parse_set(&req.get_ref().manifest_yaml)?;
        let obj = object(&set);
        self.auth
            .authorize(&req, resources::APPLICATION_SETS, actions::CREATE, &obj)
            .await?;
        if req.get_ref().upsert
            && let Some((before, _)) = self.sets.get::<ApplicationSet>(&set.metadata.name).await?
        {
            self.auth
                .authorize(
                    &req,
                    resources::APPLICATION_SETS,
                    actions::UPDATE,
                    &object(&before),
                )
                .await?;
        }
        let set = if req.get_ref().dry_run {
            set
        } else {
            self.store(set, req.get_ref().upsert).await?
        };
        Ok(Response::new(ApplicationSetResponse {
            application_set_json: to_json(&set)?,
        }))
    }

    async fn get(
        &self,
        req: Request<GetApplicationSetRequest>,
    ) -> Result<Response<ApplicationSetResponse>, Status> {
        let set = self
            .authorize_stored(&req, actions::GET, &req.get_ref().name)
            .await?;
        Ok(Response::new(ApplicationSetResponse {
            application_set_json: to_json(&set)?,
        }))
    }

    async fn list(
        &self,
        req: Request<ListApplicationSetsRequest>,
    ) -> Result<Response<ListApplicationSetsResponse>, Status> {
        let mut decisions = self.auth.decisions(self.auth.identity(&req).await?);
        let projects = &req.get_ref().projects;
        let mut sets: Vec<ApplicationSet> = self.sets.list().await?;
        sets.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut items_json = Vec::new();
        for set in sets {
            let project = set.spec.template.spec.project_or_default();
            if !projects.is_empty() && !projects.iter().any(|p| p == project) {
                continue;
            }
            if decisions
                .can(resources::APPLICATION_SETS, actions::GET, &object(&set))
                .await?
            {
                items_json.push(to_json(&set)?);
            }
        }
        Ok(Response::new(ListApplicationSetsResponse { items_json }))
    }

    async fn delete(
        &self,
        req: Request<DeleteApplicationSetRequest>,
    ) -> Result<Response<DeleteApplicationSetResponse>, Status> {
        let name = req.get_ref().name.clone();
        self.authorize_stored(&req, actions::DELETE, &name).await?;
        self.sets.delete(&name).await?;
        tracing::info!(set = %name, "applicationset deleted");
        Ok(Response::new(DeleteApplicationSetResponse {}))
    }

    async fn generate(
        &self,
        req: Request<GenerateApplicationSetRequest>,
    ) -> Result<Response<GenerateApplicationSetResponse>, Status> {
        let set = parse_set(&req.get_ref().manifest_yaml)?;
        // As Argo CD's: generating needs what creating the set would.
        self.auth
            .authorize(
                &req,
                resources::APPLICATION_SETS,
                actions::CREATE,
                &object(&set),
            )
            .await?;
        let apps: Vec<Application> = self
            .bus
            .ask(
                "ApplicationSet controller",
                self.bus.topology.appset_generate_subject(),
                &set,
                GENERATE_TIMEOUT,
            )
            .await
            .map_err(Error::Service)?;
        Ok(Response::new(GenerateApplicationSetResponse {
            applications_json: apps.iter().map(to_json).collect::<Result<_>>()?,
        }))
    }
}
