//! `ProjectService`: AppProjects in KV `projects`, and the one place the gateway decides
//! whether an application's spec is permitted by its project.

use gitfleet_bus::{Bucket, Bus};
use gitfleet_engine::project::{ProjectRules, Violation, destination_of};
use gitfleet_model::{AppProject, Application, Cluster, DEFAULT_PROJECT, Manifest};
use gitfleet_proto::v1::project_service_server::ProjectService;
use gitfleet_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::store::Store;

pub struct Projects {
    projects: Store,
    apps: Store,
    clusters: Store,
    control_plane_namespace: String,
}

impl Projects {
    /// Opens the buckets and creates the `default` project when none is stored, as Argo
    /// CD's server does at start.
    pub async fn new(bus: &Bus, control_plane_namespace: &str) -> Result<Self> {
        let projects = Projects {
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

    /// The project `app` names, compiled; `default` exists even when not stored.
    pub async fn rules_for(&self, app: &Application) -> Result<ProjectRules> {
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
        let clusters: Vec<Cluster> = if !dest.name.is_empty() {
            self.clusters
                .get::<Cluster>(&dest.name)
                .await?
                .map(|(c, _)| c)
                .into_iter()
                .collect()
        } else {
            self.clusters.list().await?
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
        let project = Projects::get(self, &req.into_inner().name).await?;
        Ok(Response::new(ProjectResponse {
            project_json: to_json(&project)?,
        }))
    }

    async fn list(
        &self,
        _req: Request<ListProjectsRequest>,
    ) -> Result<Response<ListProjectsResponse>, Status> {
        let items_json = Projects::list(self)
            .await?
            .iter()
            .map(to_json)
            .collect::<Result<Vec<_>>>()?;
        Ok(Response::new(ListProjectsResponse { items_json }))
    }

    async fn update(
        &self,
        req: Request<UpdateProjectRequest>,
    ) -> Result<Response<ProjectResponse>, Status> {
        let project = Projects::update(self, &req.into_inner().manifest_yaml).await?;
        Ok(Response::new(ProjectResponse {
            project_json: to_json(&project)?,
        }))
    }

    async fn delete(
        &self,
        req: Request<DeleteProjectRequest>,
    ) -> Result<Response<DeleteProjectResponse>, Status> {
        Projects::delete(self, &req.into_inner().name).await?;
        Ok(Response::new(DeleteProjectResponse {}))
    }
}
