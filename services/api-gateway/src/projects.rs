//! `ProjectService`: AppProjects in KV `projects`, and the one place the gateway decides
//! whether an application's spec is permitted by its project.

use gitfleet_bus::{Bucket, Bus};
use gitfleet_engine::project::{ProjectRules, Violation, destination_of};
use gitfleet_model::{
    AppProject, Application, Cluster, DEFAULT_PROJECT, IN_CLUSTER_NAME, JwtToken, Manifest,
};
use std::sync::Arc;

use gitfleet_proto::v1::project_service_server::ProjectService;
use gitfleet_proto::v1::project_token_service_server::ProjectTokenService;
use gitfleet_proto::v1::*;
use gitfleet_rbac::{actions, resources};
use tonic::{Request, Response, Status};

use crate::auth::{Auth, Claims, ISSUER};
use crate::error::{Error, Result};
use crate::store::Store;

pub struct Projects {
    projects: Store,
    apps: Store,
    clusters: Store,
    control_plane_namespace: String,
    auth: Arc<Auth>,
}

impl Projects {
    /// Opens the buckets and creates the `default` project when none is stored, as Argo
    /// CD's server does at start.
    pub async fn new(bus: &Bus, control_plane_namespace: &str, auth: Arc<Auth>) -> Result<Self> {
        let projects = Projects {
            auth,
            projects: Store::open(bus, Bucket::Projects, "project").await?,
            apps: Store::open(bus, Bucket::Applications, "application").await?,
            clusters: Store::open(bus, Bucket::Clusters, "cluster").await?,
            control_plane_namespace: control_plane_namespace.to_owned(),
        };
        let default = AppProject::default_project(control_plane_namespace);
        match projects.projects.create(DEFAULT_PROJECT, &default).await {
            Ok(_) => tracing::info!("default project created"),
            Err(Error::AlreadyExists { .. }) => {}
            Err(err) => return Err(err),
        }
        Ok(projects)
    }

    pub async fn create(&self, manifest: &str, upsert: bool) -> Result<AppProject> {
        let mut project = parse_project(manifest)?;
        project.status = None;
        let name = project.metadata.name.clone();
        if upsert {
            self.check_apps_still_permitted(&project).await?;
            self.projects.put(&name, &project).await?;
        } else {
            self.projects.create(&name, &project).await?;
        }
        tracing::info!(project = %name, upsert, "project stored");
        Ok(project)
    }

    pub async fn update(&self, manifest: &str) -> Result<AppProject> {
        let update = parse_project(manifest)?;
        let name = update.metadata.name.clone();
        let (mut project, revision) =
            self.projects
                .get::<AppProject>(&name)
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: "project",
                    name: name.clone(),
                })?;
        project.spec = update.spec;
        project.metadata.labels = update.metadata.labels;
        project.metadata.annotations = update.metadata.annotations;
        self.check_apps_still_permitted(&project).await?;
        if self
            .projects
            .update(&name, &project, revision)
            .await?
            .is_none()
        {
            return Err(Error::Conflict(format!(
                "project {name:?} was changed meanwhile; read it again and retry"
            )));
        }
        tracing::info!(project = %name, "project updated");
        Ok(project)
    }

    pub async fn get(&self, name: &str) -> Result<AppProject> {
        self.projects.require(name).await
    }

    pub async fn list(&self) -> Result<Vec<AppProject>> {
        self.projects.list().await
    }

    /// Refused while any application uses the project, as in Argo CD.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.projects.require::<AppProject>(name).await?;
        let users = self
            .apps
            .list::<Application>()
            .await?
            .into_iter()
            .filter(|a| a.spec.project_or_default() == name)
            .count();
        if users > 0 {
            return Err(Error::invalid(format!(
                "project is referenced by {users} applications"
            )));
        }
        self.projects.delete(name).await?;
        tracing::info!(project = %name, "project deleted");
        Ok(())
    }

    /// Changes the token list of role `role` of `project` with `edit` (which says why
    /// not), written only if the project did not change meanwhile (else read again).
    async fn edit_role_tokens(
        &self,
        project: &str,
        role: &str,
        edit: impl Fn(&mut Vec<JwtToken>) -> Result<()>,
    ) -> Result<()> {
        loop {
            let (mut stored, revision) = self
                .projects
                .get::<AppProject>(project)
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: "project",
                    name: project.to_owned(),
                })?;
            let Some(found) = stored.spec.roles.iter_mut().find(|r| r.name == role) else {
                return Err(Error::NotFound {
                    kind: "project role",
                    name: format!("{project}/{role}"),
                });
            };
            edit(&mut found.jwt_tokens)?;
            if self
                .projects
                .update(project, &stored, revision)
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
    }

    /// Issues a token for role `role` of `project` and lists it on the role, as `argocd
    /// proj role create-token` does.
    pub async fn create_token(&self, req: &CreateProjectTokenRequest) -> Result<String> {
        let id = if req.id.trim().is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            req.id.trim().to_owned()
        };
        if req.expires_in < 0 {
            return Err(Error::invalid("expires_in: must not be negative"));
        }
        let now = chrono::Utc::now().timestamp();
        let exp = (req.expires_in > 0).then(|| now + req.expires_in);
        self.edit_role_tokens(&req.project, &req.role, |tokens| {
            if tokens.iter().any(|t| t.id == id) {
                return Err(Error::AlreadyExists {
                    kind: "project token",
                    name: id.clone(),
                });
            }
            tokens.push(JwtToken {
                iat: now,
                exp: exp.unwrap_or(0),
                id: id.clone(),
            });
            Ok(())
        })
        .await?;
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: format!("proj:{}:{}", req.project, req.role),
            iat: now,
            nbf: Some(now),
            exp,
            jti: id,
            groups: Vec::new(),
        };
        tracing::info!(project = %req.project, role = %req.role, "project token issued");
        self.auth.issue(&claims)
    }

    /// Revokes a project token: takes it off its role's list.
    pub async fn delete_token(&self, req: &DeleteProjectTokenRequest) -> Result<()> {
        self.edit_role_tokens(&req.project, &req.role, |tokens| {
            let before = tokens.len();
            tokens.retain(|t| t.id != req.id);
            if tokens.len() == before {
                return Err(Error::NotFound {
                    kind: "project token",
                    name: req.id.clone(),
                });
            }
            Ok(())
        })
        .await?;
        tracing::info!(project = %req.project, role = %req.role, "project token revoked");
        Ok(())
    }

    /// The project `app` names, compiled; `default` exists even when not stored.
    async fn rules_for(&self, app: &Application) -> Result<ProjectRules> {
        let name = app.spec.project_or_default();
        match self.projects.get::<AppProject>(name).await? {
            Some((project, _)) => Ok(ProjectRules::new(&project)),
            None if name == DEFAULT_PROJECT => Ok(ProjectRules::new(&AppProject::default_project(
                &self.control_plane_namespace,
            ))),
            None => Err(invalid_spec(
                app,
                &[Violation::ProjectMissing {
                    project: name.to_owned(),
                }],
            )),
        }
    }

    /// Refuses `app` when its project does not permit its sources, destination or
    /// namespace; the message names each rule broken.
    pub async fn check_application(&self, app: &Application) -> Result<()> {
        let rules = self.rules_for(app).await?;
        let cluster = self.destination(app).await?;
        let violations = rules.check_application(app, &cluster, &self.control_plane_namespace);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(invalid_spec(app, &violations))
        }
    }

    /// The registered cluster `app` deploys to (server and name both known), or what the
    /// app wrote when it is not registered.
    async fn destination(&self, app: &Application) -> Result<Cluster> {
        let dest = &app.spec.destination;
        // By name one read; the in-cluster server is registered as `in-cluster` (else
        // `destination_of` knows it anyway); only another server needs the whole list.
        let by_name = if !dest.name.is_empty() {
            Some(dest.name.as_str())
        } else if dest.is_in_cluster() {
            Some(IN_CLUSTER_NAME)
        } else {
            None
        };
        let clusters: Vec<Cluster> = match by_name {
            Some(name) => self
                .clusters
                .get::<Cluster>(name)
                .await?
                .map(|(c, _)| c)
                .into_iter()
                .collect(),
            None => self.clusters.list().await?,
        };
        Ok(destination_of(app, &clusters))
    }

    /// Argo CD's rule for a changed project: refused when an app whose source or
    /// destination the old project permitted would lose it.
    async fn check_apps_still_permitted(&self, project: &AppProject) -> Result<()> {
        let name = project.metadata.name.as_str();
        let Some((old, _)) = self.projects.get::<AppProject>(name).await? else {
            return Ok(());
        };
        let (old, new) = (ProjectRules::new(&old), ProjectRules::new(project));
        let apps: Vec<Application> = self
            .apps
            .list::<Application>()
            .await?
            .into_iter()
            .filter(|a| a.spec.project_or_default() == name)
            .collect();
        if apps.is_empty() {
            return Ok(());
        }
        let clusters: Vec<Cluster> = self.clusters.list().await?;
        let (mut sources, mut destinations) = (0, 0);
        for app in &apps {
            let repos = app.spec.effective_sources();
            if repos.iter().all(|s| old.source_permitted(&s.repo_url))
                && !repos.iter().all(|s| new.source_permitted(&s.repo_url))
            {
                sources += 1;
            }
            let cluster = destination_of(app, &clusters);
            let ns = &app.spec.destination.namespace;
            if old.destination_permitted(&cluster, ns).is_ok()
                && new.destination_permitted(&cluster, ns).is_err()
            {
                destinations += 1;
            }
        }
        if sources > 0 || destinations > 0 {
            return Err(Error::invalid(format!(
                "as a result of project update {sources} applications source became invalid and {destinations} applications destination became invalid"
            )));
        }
        Ok(())
    }
}

fn invalid_spec(app: &Application, violations: &[Violation]) -> Error {
    let reasons: Vec<String> = violations.iter().map(ToString::to_string).collect();
    Error::invalid(format!(
        "application spec for {} is invalid: InvalidSpecError: {}",
        app.metadata.name,
        reasons.join("; ")
    ))
}

/// Parses and validates one AppProject manifest; every problem in the error.
pub fn parse_project(manifest: &str) -> Result<AppProject> {
    let parsed =
        gitfleet_model::from_yaml_str(manifest).map_err(|e| Error::invalid(e.to_string()))?;
    let project = match parsed {
        Manifest::AppProject(p) => *p,
        other => {
            return Err(Error::invalid(format!(
                "expected an AppProject, got {} {:?}",
                other.kind(),
                other.name()
            )));
        }
    };
    project
        .validate()
        .map_err(|errs| Error::invalid(format!("invalid project:\n{errs}")))?;
    Ok(project)
}

fn to_json(project: &AppProject) -> Result<String> {
    Ok(serde_json::to_string(project)?)
}

#[tonic::async_trait]
impl ProjectService for Projects {
    async fn create(
        &self,
        req: Request<CreateProjectRequest>,
    ) -> Result<Response<ProjectResponse>, Status> {
        let name = parse_project(&req.get_ref().manifest_yaml)?.metadata.name;
        self.auth
            .authorize(&req, resources::PROJECTS, actions::CREATE, &name)
            .await?;
        if req.get_ref().upsert {
            self.auth
                .authorize(&req, resources::PROJECTS, actions::UPDATE, &name)
                .await?;
        }
        let req = req.into_inner();
        let project = Projects::create(self, &req.manifest_yaml, req.upsert).await?;
        Ok(Response::new(ProjectResponse {
            project_json: to_json(&project)?,
        }))
    }

    async fn get(
        &self,
        req: Request<GetProjectRequest>,
    ) -> Result<Response<ProjectResponse>, Status> {
        self.auth
            .authorize(&req, resources::PROJECTS, actions::GET, &req.get_ref().name)
            .await?;
        let project = Projects::get(self, &req.into_inner().name).await?;
        Ok(Response::new(ProjectResponse {
            project_json: to_json(&project)?,
        }))
    }

    async fn list(
        &self,
        req: Request<ListProjectsRequest>,
    ) -> Result<Response<ListProjectsResponse>, Status> {
        let mut decisions = self.auth.decisions(self.auth.identity(&req).await?);
        let mut items_json = Vec::new();
        for p in Projects::list(self).await? {
            if decisions
                .can(resources::PROJECTS, actions::GET, &p.metadata.name)
                .await?
            {
                items_json.push(to_json(&p)?);
            }
        }
        Ok(Response::new(ListProjectsResponse { items_json }))
    }

    async fn update(
        &self,
        req: Request<UpdateProjectRequest>,
    ) -> Result<Response<ProjectResponse>, Status> {
        let name = parse_project(&req.get_ref().manifest_yaml)?.metadata.name;
        self.auth
            .authorize(&req, resources::PROJECTS, actions::UPDATE, &name)
            .await?;
        let project = Projects::update(self, &req.into_inner().manifest_yaml).await?;
        Ok(Response::new(ProjectResponse {
            project_json: to_json(&project)?,
        }))
    }

    async fn delete(
        &self,
        req: Request<DeleteProjectRequest>,
    ) -> Result<Response<DeleteProjectResponse>, Status> {
        self.auth
            .authorize(
                &req,
                resources::PROJECTS,
                actions::DELETE,
                &req.get_ref().name,
            )
            .await?;
        Projects::delete(self, &req.into_inner().name).await?;
        Ok(Response::new(DeleteProjectResponse {}))
    }
}

#[tonic::async_trait]
impl ProjectTokenService for Projects {
    async fn create(
        &self,
        req: Request<CreateProjectTokenRequest>,
    ) -> Result<Response<CreateProjectTokenResponse>, Status> {
        self.auth
            .authorize(
                &req,
                resources::PROJECTS,
                actions::UPDATE,
                &req.get_ref().project,
            )
            .await?;
        let token = self.create_token(req.get_ref()).await?;
        Ok(Response::new(CreateProjectTokenResponse { token }))
    }

    async fn delete(
        &self,
        req: Request<DeleteProjectTokenRequest>,
    ) -> Result<Response<DeleteProjectTokenResponse>, Status> {
        self.auth
            .authorize(
                &req,
                resources::PROJECTS,
                actions::UPDATE,
                &req.get_ref().project,
            )
            .await?;
        self.delete_token(req.get_ref()).await?;
        Ok(Response::new(DeleteProjectTokenResponse {}))
    }
}
