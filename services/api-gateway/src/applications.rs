//! `ApplicationService`: Argo CD Applications in KV `applications`, their status from KV
//! `app-status` and `operations`, and the requests (sync, refresh, cascade delete) that
//! the owners of apps and clusters carry out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gitfleet_bus::{Bucket, Bus, partition};
use gitfleet_engine::app::destination_cluster;
use gitfleet_messages::{APP_PARTITIONS, Operation, RefreshRequest, ServiceError, SyncRequest};
use gitfleet_model::{
    Application, ApplicationStatus, Cluster, HealthStatusCode, Manifest, SyncStatusCode,
};
use gitfleet_proto::v1::application_service_server::ApplicationService;
use gitfleet_proto::v1::*;
use gitfleet_rbac::{actions, resources};
use tonic::{Request, Response, Status};

use crate::auth::Auth;
use crate::config::Config;
use crate::diff;
use crate::error::{Error, Result};
use crate::projects::Projects;
use crate::store::Store;

/// How often bounded waits look at KV again.
const POLL: Duration = Duration::from_millis(100);

pub struct Applications {
    bus: Bus,
    index: crate::app_index::AppIndex,
    config: Config,
    apps: Store,
    status: Store,
    operations: Store,
    clusters: Store,
    projects: Arc<Projects>,
    auth: Arc<Auth>,
}

impl Applications {
    pub async fn new(
        bus: Bus,
        config: Config,
        projects: Arc<Projects>,
        auth: Arc<Auth>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Self> {
        Ok(Applications {
            index: crate::app_index::AppIndex::start(&bus, shutdown).await?,
            projects,
            auth,
            apps: Store::open(&bus, Bucket::Applications, "application").await?,
            status: Store::open(&bus, Bucket::AppStatus, "application status").await?,
            operations: Store::open(&bus, Bucket::Operations, "operation").await?,
            clusters: Store::open(&bus, Bucket::Clusters, "cluster").await?,
            bus,
            config,
        })
    }

    pub async fn create(&self, manifest: &str, upsert: bool) -> Result<Application> {
        let mut app = parse_application(manifest)?;
        // Status is the controller's to write; a manifest's status would shadow it.
        app.status = None;
        let name = app.metadata.name.clone();
        self.projects.check_application(&app).await?;
        self.refuse_dependency_cycle(&app).await?;
        if upsert {
            self.apps.put(&name, &app).await?;
        } else {
            self.apps.create(&name, &app).await?;
        }
        tracing::info!(app = %name, upsert, "application stored");
        self.with_status(app).await
    }

    /// gitfleet's `dependsOn`: an app whose dependencies lead back to it is refused, the
    /// cycle named (the diff workers refuse to sync one that got in another way).
    async fn refuse_dependency_cycle(&self, app: &Application) -> Result<()> {
        let deps = gitfleet_engine::depends::depends_on(app);
        if deps.is_empty() {
            return Ok(());
        }
        // The caller's own earlier writes count.
        self.index.catch_up().await?;
        let mut edges = self.index.dependencies();
        edges.insert(app.metadata.name.clone(), deps);
        match gitfleet_engine::depends::dependency_cycle(&app.metadata.name, &edges) {
            Some(cycle) => Err(Error::invalid(format!(
                "application {}: dependency cycle {} (annotation {})",
                app.metadata.name,
                cycle.join(" -> "),
                gitfleet_engine::depends::DEPENDS_ON
            ))),
            None => Ok(()),
        }
    }

    /// Refuses the call unless its caller may `action` app `name` (object
    /// `<project>/<name>`, as Argo CD's). An app that does not exist is NotFound.
    async fn authorize<T>(&self, req: &Request<T>, action: &str, name: &str) -> Result<()> {
        let project = match self.apps.get::<Application>(name).await? {
            Some((app, _)) => app.spec.project_or_default().to_owned(),
            None => {
                // Still only for those who may see apps at all.
                self.auth.identity(req).await?;
                return Err(Error::NotFound {
                    kind: "application",
                    name: name.to_owned(),
                });
            }
        };
        self.auth
            .authorize(
                req,
                resources::APPLICATIONS,
                action,
                &format!("{project}/{name}"),
            )
            .await
    }

    pub async fn get(&self, name: &str) -> Result<Application> {
        let app = self.apps.require::<Application>(name).await?;
        self.with_status(app).await
    }

    /// One page of the apps `req` selects that `visible` lets the caller see, from the
    /// index (never the buckets): filters first, then RBAC on what passed them, until the
    /// page is full.
    pub async fn list<V, F>(
        &self,
        req: &ListApplicationsRequest,
        visible: V,
    ) -> Result<crate::app_index::Page>
    where
        V: FnMut(Application) -> F,
        F: std::future::Future<Output = Result<Option<Application>>>,
    {
        let filter = Filter::parse(req)?;
        let after = non_empty(&req.r#continue);
        self.index
            .page(
                after,
                req.limit as usize,
                |app, status| filter.matches_spec(app) && filter.matches_status(status),
                visible,
            )
            .await
    }

    pub async fn delete(&self, name: &str, cascade: bool) -> Result<()> {
        let mut app = self.apps.require::<Application>(name).await?;
        if cascade {
            // Marked first, as Argo CD does: diff workers stop syncing an app being
            // deleted, so nothing recreates what the prune below removes.
            app.metadata.deletion_timestamp =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            self.apps.put(name, &app).await?;
            self.delete_resources(&app).await?;
        }
        self.apps.delete(name).await?;
        self.status.delete(name).await?;
        self.operations.delete(name).await?;
        tracing::info!(app = %name, cascade, "application deleted");
        Ok(())
    }

    /// Prunes everything the app deployed: asks the diff worker owning the app (the only
    /// one that acts on it) for a cascade delete and waits for that operation to finish.
    async fn delete_resources(&self, app: &Application) -> Result<()> {
        let name = &app.metadata.name;
        let request = SyncRequest {
            app: name.clone(),
            delete_resources: true,
            initiated_by: "api-gateway: cascade delete".to_string(),
            ..SyncRequest::default()
        };
        let done = self.run_operation(&request, "the cascade delete").await?;
        if done.phase != gitfleet_model::OperationPhase::Succeeded {
            return Err(Error::Unavailable(format!(
                "deleting the resources of application {name:?} ended {}: {}",
                done.phase, done.message
            )));
        }
        Ok(())
    }

    pub async fn sync(&self, req: &SyncApplicationRequest) -> Result<Operation> {
        let name = &req.name;
        self.apps.require::<Application>(name).await?;
        let resources = req
            .resources
            .iter()
            .map(|r| parse_sync_resource(r))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Service(ServiceError::invalid(e)))?;
        let request = SyncRequest {
            app: name.clone(),
            prune: req.prune,
            dry_run: req.dry_run,
            revision: req.revision.clone(),
            resources,
            sync_options: gitfleet_model::SyncOptions::from(req.sync_options.clone()),
            prune_confirmed: req.prune_confirmed,
            initiated_by: "api-gateway".to_string(),
            ..SyncRequest::default()
        };
        tracing::info!(app = %name, prune = req.prune, dry_run = req.dry_run, "sync requested");
        self.run_operation(&request, "the sync").await
    }

    /// `argocd app terminate-op`: marks the app's running operation Terminating; the
    /// executor running it stops between waves (and starts no retry), ending it Failed
    /// with "Operation terminated".
    pub async fn terminate_operation(&self, name: &str) -> Result<()> {
        self.apps.require::<Application>(name).await?;
        let not_running = || {
            Error::Service(ServiceError::invalid(format!(
                "Unable to terminate operation. No operation is in progress (application {name:?})"
            )))
        };
        let Some((mut op, revision)) = self.operations.get::<Operation>(name).await? else {
            return Err(not_running());
        };
        if op.phase.is_completed() {
            return Err(not_running());
        }
        op.phase = gitfleet_model::OperationPhase::Terminating;
        op.message = "operation is terminating".to_string();
        match self.operations.update(name, &op, revision).await? {
            Some(_) => {
                tracing::info!(app = %name, op = %op.id, "operation terminating");
                Ok(())
            }
            None => Err(Error::Service(ServiceError::conflict(format!(
                "the operation of application {name:?} changed meanwhile; try again"
            )))),
        }
    }

    /// `argocd app rollback`: a sync to the revision a history entry recorded (by default
    /// the deployment before the latest), refused while automated sync is on, since it
    /// would sync the target revision right back.
    pub async fn rollback(&self, req: &RollbackApplicationRequest) -> Result<Operation> {
        let name = &req.name;
        let app = self.get(name).await?;
        if app
            .spec
            .sync_policy
            .as_ref()
            .is_some_and(|p| p.is_automated())
        {
            return Err(Error::Service(ServiceError::invalid(format!(
                "rollback cannot be initiated when auto-sync is enabled (application {name:?})"
            ))));
        }
        let history = app
            .status
            .as_ref()
            .map(|s| s.history.as_slice())
            .unwrap_or_default();
        let entry = match req.id {
            Some(id) => history.iter().find(|h| h.id == id).ok_or_else(|| {
                ServiceError::not_found(format!(
                    "application {name:?} has no deployment with id {id} in its history"
                ))
            })?,
            None => history.iter().rev().nth(1).ok_or_else(|| {
                ServiceError::invalid(format!(
                    "application {name:?} has no deployment before the latest to roll back to"
                ))
            })?,
        };
        // The history keeps the source each sync rendered; rolling back to another source
        // than the app's (a moved path, another chart) would need the sync to take it.
        let current = app.spec.effective_sources();
        let same_source = match (&entry.source, current.as_slice()) {
            (Some(then), [now]) => {
                let without_revision =
                    |s: &gitfleet_model::ApplicationSource| gitfleet_model::ApplicationSource {
                        target_revision: String::new(),
                        ..s.clone()
                    };
                without_revision(then) == without_revision(now)
            }
            _ => false,
        };
        if !same_source {
            return Err(Error::Service(ServiceError::invalid(format!(
                "application {name:?}: deployment {} used another source than the application                  has now; rolling back to another source is not supported yet",
                entry.id
            ))));
        }
        let request = SyncRequest {
            app: name.clone(),
            prune: req.prune,
            dry_run: req.dry_run,
            revision: entry.revision.clone(),
            initiated_by: "api-gateway".to_string(),
            ..SyncRequest::default()
        };
        tracing::info!(app = %name, id = entry.id, revision = %entry.revision, "rollback requested");
        self.run_operation(&request, "the rollback").await
    }

    /// Hands `request` to the diff worker owning the app, which answers with the id of the
    /// operation it enqueued (or why it did not), then waits for that operation to end.
    async fn run_operation(&self, request: &SyncRequest, what: &str) -> Result<Operation> {
        let name = &request.app;
        let subject = self
            .bus
            .topology
            .sync_request_subject(partition(name, APP_PARTITIONS));
        // One deadline for both steps: the owner answers after the app's next
        // reconciliation (render and live state first), then the operation runs.
        let timeout = self.config.operation_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let id: String = self
            .bus
            .ask(
                "diff worker for the app's partition",
                subject,
                request,
                timeout,
            )
            .await
            .map_err(|e| {
                if e.code == gitfleet_messages::ErrorCode::Deadline {
                    e.context(format_args!("{what} of application {name:?}"))
                } else {
                    e
                }
            })?;
        tracing::info!(app = %name, operation = %id, "{what} enqueued");
        match gitfleet_bus::completed_operation(&self.bus, name, &id, deadline).await {
            Ok(Some(op)) => Ok(op),
            Ok(None) => Err(Error::Timeout(format!(
                "timed out after {}s waiting for {what} of application {name:?} (are a diff worker and a sync executor running?)",
                timeout.as_secs()
            ))),
            Err(e) => Err(Error::Unavailable(format!(
                "watching the operation of {name:?}: {e}"
            ))),
        }
    }

    pub async fn refresh(&self, name: &str) -> Result<Application> {
        self.apps.require::<Application>(name).await?;
        let before = self
            .status
            .get::<serde_json::Value>(name)
            .await?
            .map_or(0, |(_, r)| r);
        let request = RefreshRequest {
            repo: None,
            app: Some(name.to_string()),
        };
        self.publish(self.bus.topology.webhook_subject(), &request)
            .await?;
        // A refresh is a hint: return the fresher status if it comes soon, else the
        // current one.
        let deadline = Instant::now() + self.config.refresh_wait;
        while Instant::now() < deadline {
            let now = self
                .status
                .get::<serde_json::Value>(name)
                .await?
                .map_or(0, |(_, r)| r);
            if now > before {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.get(name).await
    }

    /// `app manifests`: rendered from Git (`source` "git" or empty, at `revision` if
    /// given), or the live objects (`source` "live"); a Secret's values hidden, as Argo CD
    /// hides them.
    pub async fn manifests(
        &self,
        name: &str,
        source: &str,
        revision: &str,
    ) -> Result<Vec<serde_json::Value>> {
        let mut objects = self.manifests_unmasked(name, source, revision).await?;
        objects
            .iter_mut()
            .for_each(gitfleet_engine::diff::hide_secret_data);
        Ok(objects)
    }

    async fn manifests_unmasked(
        &self,
        name: &str,
        source: &str,
        revision: &str,
    ) -> Result<Vec<serde_json::Value>> {
        let app = self.apps.require::<Application>(name).await?;
        match source {
            "" | "git" => {
                let revision = (!revision.is_empty()).then_some(revision);
                diff::desired(
                    &self.bus,
                    &app,
                    revision,
                    &self.config.control_plane_namespace,
                    self.config.request_timeout,
                )
                .await
            }
            "live" => {
                if !revision.is_empty() {
                    return Err(Error::invalid(
                        "--revision applies to --source git, not to the live objects",
                    ));
                }
                let cluster = self.resolve_cluster(&app).await?;
                diff::live(
                    &self.bus,
                    &app,
                    &cluster,
                    &self.config.control_plane_namespace,
                    &[],
                    self.config.request_timeout,
                )
                .await
            }
            other => Err(Error::invalid(format!(
                "source {other:?}: expected \"git\" or \"live\""
            ))),
        }
    }

    pub async fn diff(&self, request: &DiffApplicationRequest) -> Result<diff::AppDiff> {
        let app = self.apps.require::<Application>(&request.name).await?;
        let target = if request.local {
            if !request.revision.is_empty() {
                return Err(Error::invalid(
                    "--local and --revision cannot be given together",
                ));
            }
            if request.local_files.is_empty() {
                diff::Target::Local(diff::local_manifests(&request.local_manifests)?)
            } else {
                diff::Target::LocalFiles(request.local_files.clone())
            }
        } else if request.revision.is_empty() {
            diff::Target::Sources(None)
        } else {
            diff::Target::Sources(Some(request.revision.clone()))
        };
        let cluster = self.resolve_cluster(&app).await?;
        diff::diff(
            &self.bus,
            &app,
            &cluster,
            target,
            &self.config.control_plane_namespace,
            self.config.request_timeout,
        )
        .await
    }

    /// Lists the actions `resource` of app `name` offers (`action` `None`) or runs one,
    /// through the executor owning the app's cluster. The resource must be one the app's
    /// last comparison showed (Argo CD's actions run on the app's resources only).
    pub async fn resource_action(
        &self,
        name: &str,
        resource: gitfleet_messages::SyncResource,
        action: Option<String>,
        params: std::collections::BTreeMap<String, String>,
    ) -> Result<gitfleet_messages::ResourceActions> {
        if resource.kind.is_empty() || resource.name.is_empty() {
            return Err(Error::invalid(
                "a resource action needs the resource's kind and name (--kind, --resource-name)",
            ));
        }
        let app = self.apps.require::<Application>(name).await?;
        let status = self
            .status
            .get::<ApplicationStatus>(name)
            .await?
            .map(|(s, _)| s);
        let r = &resource;
        let known = status.iter().flat_map(|s| &s.resources).any(|s| {
            (
                s.group.as_str(),
                s.kind.as_str(),
                s.namespace.as_str(),
                s.name.as_str(),
            ) == (
                r.group.as_str(),
                r.kind.as_str(),
                r.namespace.as_str(),
                r.name.as_str(),
            )
        });
        if !known {
            return Err(Error::NotFound {
                kind: "resource",
                name: format!(
                    "{}/{} {}/{} of application {name}",
                    r.group, r.kind, r.namespace, r.name
                ),
            });
        }
        let cluster = self.resolve_cluster(&app).await?;
        let mut project = self.projects.get(app.spec.project_or_default()).await?;
        // The executor checks writes against the project's rules; its roles (and their
        // token ids) are no business of the cluster side.
        project.spec.roles.clear();
        let request = gitfleet_messages::ResourceActionRequest {
            app: name.to_owned(),
            cluster: cluster.clone(),
            resource,
            action,
            params,
            project: Some(project),
        };
        Ok(self
            .bus
            .ask(
                "sync executor",
                self.bus.topology.action_request_subject(&cluster),
                &request,
                self.config.request_timeout,
            )
            .await?)
    }

    async fn publish<T: serde::Serialize>(&self, subject: String, value: &T) -> Result<()> {
        let body = serde_json::to_vec(value)?;
        self.bus
            .client
            .publish(subject.clone(), body.into())
            .await
            .map_err(|e| Error::Unavailable(format!("publishing on {subject}: {e}")))?;
        self.bus
            .client
            .flush()
            .await
            .map_err(|e| Error::Unavailable(format!("flushing to nats: {e}")))
    }

    /// The name in KV `clusters` of an app's destination.
    async fn resolve_cluster(&self, app: &Application) -> Result<String> {
        // Only a destination given by server URL needs the registered clusters.
        let dest = &app.spec.destination;
        let clusters = if dest.server.is_empty() || dest.is_in_cluster() || !dest.name.is_empty() {
            Vec::new()
        } else {
            self.clusters.list::<Cluster>().await?
        };
        destination_cluster(app, &clusters).map_err(|e| match e {
            gitfleet_engine::app::DestinationError::UnknownServer { server } => Error::NotFound {
                kind: "cluster",
                name: server,
            },
            other => Error::invalid(other.to_string()),
        })
    }

    /// Merges the diff worker's status and the executor's latest operation into `app`.
    async fn with_status(&self, mut app: Application) -> Result<Application> {
        let name = app.metadata.name.clone();
        let mut status = self
            .status
            .get::<ApplicationStatus>(&name)
            .await?
            .map(|(s, _)| s);
        if let Some((op, _)) = self.operations.get::<Operation>(&name).await? {
            let status = status.get_or_insert_with(ApplicationStatus::default);
            status.operation_state = Some(op.to_operation_state());
        }
        app.status = status;
        Ok(app)
    }
}

/// Parses and validates one Application manifest; every problem in the error.
pub fn parse_application(manifest: &str) -> Result<Application> {
    let parsed =
        gitfleet_model::from_yaml_str(manifest).map_err(|e| Error::invalid(e.to_string()))?;
    let app = match parsed {
        Manifest::Application(app) => *app,
        other => {
            return Err(Error::invalid(format!(
                "expected an Application, got {} {:?}",
                other.kind(),
                other.name()
            )));
        }
    };
    app.validate()
        .map_err(|errs| Error::invalid(format!("invalid application:\n{errs}")))?;
    Ok(app)
}

/// The filters of `app list`, parsed once.
struct Filter {
    sync: Option<SyncStatusCode>,
    health: Option<HealthStatusCode>,
    project: String,
    labels: Vec<(String, String)>,
    /// Server URL or name.
    cluster: String,
    namespace: String,
    /// Normalised as project rules normalise URLs.
    repo: String,
}

impl Filter {
    fn parse(req: &ListApplicationsRequest) -> Result<Self> {
        let sync = non_empty(&req.sync_status)
            .map(|s| s.parse::<SyncStatusCode>())
            .transpose()
            .map_err(|e| Error::invalid(format!("sync status: {e}")))?;
        let health = non_empty(&req.health_status)
            .map(|s| s.parse::<HealthStatusCode>())
            .transpose()
            .map_err(|e| Error::invalid(format!("health status: {e}")))?;
        let mut labels = Vec::new();
        for pair in req
            .selector
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| Error::invalid(format!("selector {pair:?}: expected key=value")))?;
            labels.push((
                k.trim().trim_end_matches('=').to_string(),
                v.trim().to_string(),
            ));
        }
        Ok(Filter {
            sync,
            health,
            project: req.project.clone(),
            labels,
            cluster: req.cluster.trim_end_matches('/').to_owned(),
            namespace: req.namespace.clone(),
            repo: gitfleet_engine::project::normalize_git_url(&req.repo),
        })
    }

    fn matches_spec(&self, app: &Application) -> bool {
        let dest = &app.spec.destination;
        (self.project.is_empty() || app.spec.project_or_default() == self.project)
            && self
                .labels
                .iter()
                .all(|(k, v)| app.metadata.labels.get(k) == Some(v))
            && (self.cluster.is_empty()
                || dest.server.trim_end_matches('/') == self.cluster
                || dest.name == self.cluster)
            && (self.namespace.is_empty() || dest.namespace == self.namespace)
            && (self.repo.is_empty()
                || app
                    .spec
                    .effective_sources()
                    .iter()
                    .any(|s| gitfleet_engine::project::normalize_git_url(&s.repo_url) == self.repo))
    }

    fn matches_status(&self, status: Option<&ApplicationStatus>) -> bool {
        let (sync, health) = status_codes(status);
        self.sync.is_none_or(|s| s == sync) && self.health.is_none_or(|h| h == health)
    }
}

/// An app's sync and health codes; Unknown until a diff worker has looked at it.
pub fn codes(app: &Application) -> (SyncStatusCode, HealthStatusCode) {
    status_codes(app.status.as_ref())
}

fn status_codes(status: Option<&ApplicationStatus>) -> (SyncStatusCode, HealthStatusCode) {
    (
        status
            .and_then(|s| s.sync.as_ref())
            .map_or(SyncStatusCode::Unknown, |s| s.status),
        status
            .and_then(|s| s.health.as_ref())
            .map_or(HealthStatusCode::Unknown, |h| h.status),
    )
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

fn to_json(app: &Application) -> Result<String> {
    Ok(serde_json::to_string(app)?)
}

#[tonic::async_trait]
impl ApplicationService for Applications {
    async fn create(
        &self,
        request: Request<CreateApplicationRequest>,
    ) -> Result<Response<ApplicationResponse>, Status> {
        let app = parse_application(&request.get_ref().manifest_yaml)?;
        let name = &app.metadata.name;
        let object = format!("{}/{name}", app.spec.project_or_default());
        self.auth
            .authorize(&request, resources::APPLICATIONS, actions::CREATE, &object)
            .await?;
        if request.get_ref().upsert {
            // Replacing an app also needs update on it, in the project it is in now.
            if let Some((existing, _)) = self.apps.get::<Application>(name).await? {
                let object = format!("{}/{name}", existing.spec.project_or_default());
                self.auth
                    .authorize(&request, resources::APPLICATIONS, actions::UPDATE, &object)
                    .await?;
            }
        }
        let req = request.into_inner();
        let app = Applications::create(self, &req.manifest_yaml, req.upsert).await?;
        Ok(Response::new(ApplicationResponse {
            application_json: to_json(&app)?,
        }))
    }

    async fn get(
        &self,
        request: Request<GetApplicationRequest>,
    ) -> Result<Response<ApplicationResponse>, Status> {
        self.authorize(&request, actions::GET, &request.get_ref().name)
            .await?;
        let app = Applications::get(self, &request.into_inner().name).await?;
        Ok(Response::new(ApplicationResponse {
            application_json: to_json(&app)?,
        }))
    }

    async fn list(
        &self,
        request: Request<ListApplicationsRequest>,
    ) -> Result<Response<ListApplicationsResponse>, Status> {
        let decisions =
            tokio::sync::Mutex::new(self.auth.decisions(self.auth.identity(&request).await?));
        let decisions = &decisions;
        let page = Applications::list(self, request.get_ref(), |app| async move {
            let object = format!("{}/{}", app.spec.project_or_default(), app.metadata.name);
            let mut d = decisions.lock().await;
            Ok(d.can(resources::APPLICATIONS, actions::GET, &object)
                .await?
                .then_some(app))
        })
        .await?;
        let items_json = page.apps.iter().map(to_json).collect::<Result<Vec<_>>>()?;
        Ok(Response::new(ListApplicationsResponse {
            items_json,
            r#continue: page.next.unwrap_or_default(),
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteApplicationRequest>,
    ) -> Result<Response<DeleteApplicationResponse>, Status> {
        self.authorize(&request, actions::DELETE, &request.get_ref().name)
            .await?;
        let req = request.into_inner();
        Applications::delete(self, &req.name, req.cascade).await?;
        Ok(Response::new(DeleteApplicationResponse {}))
    }

    async fn sync(
        &self,
        request: Request<SyncApplicationRequest>,
    ) -> Result<Response<SyncApplicationResponse>, Status> {
        self.authorize(&request, actions::SYNC, &request.get_ref().name)
            .await?;
        let op = Applications::sync(self, request.get_ref()).await?;
        Ok(Response::new(sync_response(op)?))
    }

    async fn terminate_operation(
        &self,
        request: Request<TerminateOperationRequest>,
    ) -> Result<Response<TerminateOperationResponse>, Status> {
        self.authorize(&request, actions::SYNC, &request.get_ref().name)
            .await?;
        Applications::terminate_operation(self, &request.get_ref().name).await?;
        Ok(Response::new(TerminateOperationResponse {}))
    }

    async fn rollback(
        &self,
        request: Request<RollbackApplicationRequest>,
    ) -> Result<Response<SyncApplicationResponse>, Status> {
        self.authorize(&request, actions::SYNC, &request.get_ref().name)
            .await?;
        let op = Applications::rollback(self, request.get_ref()).await?;
        Ok(Response::new(sync_response(op)?))
    }

    async fn diff(
        &self,
        request: Request<DiffApplicationRequest>,
    ) -> Result<Response<DiffApplicationResponse>, Status> {
        self.authorize(&request, actions::GET, &request.get_ref().name)
            .await?;
        let d = Applications::diff(self, request.get_ref()).await?;
        Ok(Response::new(DiffApplicationResponse {
            has_diff: d.has_diff,
            diff: d.text,
        }))
    }

    async fn manifests(
        &self,
        request: Request<ApplicationManifestsRequest>,
    ) -> Result<Response<ApplicationManifestsResponse>, Status> {
        self.authorize(&request, actions::GET, &request.get_ref().name)
            .await?;
        let request = request.into_inner();
        let manifests =
            Applications::manifests(self, &request.name, &request.source, &request.revision)
                .await?;
        Ok(Response::new(ApplicationManifestsResponse {
            manifests: manifests.iter().map(|m| m.to_string()).collect(),
        }))
    }

    async fn list_resource_actions(
        &self,
        request: Request<ApplicationResourceRequest>,
    ) -> Result<Response<ResourceActionsListResponse>, Status> {
        self.authorize(&request, actions::GET, &request.get_ref().name)
            .await?;
        let req = request.into_inner();
        let resource = gitfleet_messages::SyncResource {
            group: req.group,
            kind: req.kind,
            namespace: req.namespace,
            name: req.resource_name,
        };
        let found = self
            .resource_action(&req.name, resource, None, Default::default())
            .await?;
        Ok(Response::new(ResourceActionsListResponse {
            actions: found
                .actions
                .into_iter()
                .map(|a| ResourceAction {
                    name: a.name,
                    params: a
                        .params
                        .into_iter()
                        .map(|name| ResourceActionParam { name })
                        .collect(),
                    disabled: a.disabled,
                    icon_class: a.icon_class,
                    display_name: a.display_name,
                })
                .collect(),
        }))
    }

    async fn run_resource_action(
        &self,
        request: Request<ResourceActionRunRequest>,
    ) -> Result<Response<ResourceActionRunResponse>, Status> {
        let r = request.get_ref();
        // Argo CD's RBAC action for a resource action.
        let action = format!("{}/{}/{}/{}", actions::ACTION, r.group, r.kind, r.action);
        self.authorize(&request, &action, &r.name).await?;
        let req = request.into_inner();
        if req.action.is_empty() {
            return Err(Error::invalid("which action to run is missing").into());
        }
        let resource = gitfleet_messages::SyncResource {
            group: req.group,
            kind: req.kind,
            namespace: req.namespace,
            name: req.resource_name,
        };
        let params = req
            .resource_action_parameters
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect();
        let ran = self
            .resource_action(&req.name, resource, Some(req.action), params)
            .await?;
        Ok(Response::new(ResourceActionRunResponse {
            written: ran.written,
        }))
    }

    async fn resource_tree(
        &self,
        request: Request<ResourceTreeRequest>,
    ) -> Result<Response<ResourceTreeResponse>, Status> {
        self.authorize(&request, actions::GET, &request.get_ref().name)
            .await?;
        let app = self
            .apps
            .require::<Application>(&request.get_ref().name)
            .await?;
        let cluster = self.resolve_cluster(&app).await?;
        let nodes = diff::tree(&self.bus, &app, &cluster, self.config.request_timeout).await?;
        Ok(Response::new(ResourceTreeResponse {
            tree_json: serde_json::json!({ "nodes": nodes }).to_string(),
        }))
    }

    async fn refresh(
        &self,
        request: Request<RefreshApplicationRequest>,
    ) -> Result<Response<ApplicationResponse>, Status> {
        self.authorize(&request, actions::GET, &request.get_ref().name)
            .await?;
        let app = Applications::refresh(self, &request.into_inner().name).await?;
        Ok(Response::new(ApplicationResponse {
            application_json: to_json(&app)?,
        }))
    }
}

/// How a finished sync (or rollback) operation is answered.
fn sync_response(op: Operation) -> Result<SyncApplicationResponse> {
    let resources_json = op
        .resources
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::from)?;
    Ok(SyncApplicationResponse {
        operation_id: op.id,
        phase: op.phase.to_string(),
        message: op.message,
        resources_json,
        revision: op.revision,
    })
}

/// `argocd app sync --resource`: `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME`.
fn parse_sync_resource(text: &str) -> std::result::Result<gitfleet_messages::SyncResource, String> {
    let bad = || {
        format!(
            "resource {text:?}: expected GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME (the group \
             empty for the core group, e.g. \":ConfigMap:web/settings\")"
        )
    };
    let mut parts = text.splitn(3, ':');
    let (Some(group), Some(kind), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (namespace, name) = rest.split_once('/').unwrap_or(("", rest));
    if kind.is_empty() || name.is_empty() || name.contains('/') {
        return Err(bad());
    }
    Ok(gitfleet_messages::SyncResource {
        group: group.to_owned(),
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod sync_resource_tests {
    use super::parse_sync_resource;

    #[test]
    fn resources_read_as_argocd_writes_them() {
        let r = parse_sync_resource("apps:Deployment:web/api").unwrap();
        assert_eq!(
            (
                r.group.as_str(),
                r.kind.as_str(),
                r.namespace.as_str(),
                r.name.as_str()
            ),
            ("apps", "Deployment", "web", "api")
        );
        let r = parse_sync_resource(":ConfigMap:settings").unwrap();
        assert_eq!((r.group.as_str(), r.namespace.as_str()), ("", ""));
        for bad in [
            "ConfigMap",
            "apps:Deployment",
            "apps::x",
            "apps:Deployment:a/b/c",
            ":ConfigMap:",
        ] {
            assert!(parse_sync_resource(bad).is_err(), "{bad}");
        }
    }
}
