//! `ApplyService`: Argo CD's declarative setup, applied. Each object of a multi-document
//! stream is created or updated as its own call would do it (Applications and AppProjects
//! through their services, so validation, project rules and authorisation are the same),
//! in an order that lets later objects rely on earlier ones (settings, projects,
//! credentials and clusters, then applications). One bad object does not stop the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use gitfleet_bus::{Bucket, Bus};
use gitfleet_model::{
    AppProject, Application, ApplicationSet, Cluster, Manifest, ParsedDocument, Repository,
    SettingsDocument,
};
use gitfleet_proto::v1::application_service_server::ApplicationService;
use gitfleet_proto::v1::apply_service_server::ApplyService;
use gitfleet_proto::v1::project_service_server::ProjectService;
use gitfleet_proto::v1::*;
use gitfleet_rbac::{actions, resources};
use tonic::{Request, Response, Status};

use crate::applications::Applications;
use crate::auth::{Auth, Caller, RBAC_CONFIG_MAP, SECRET_KEY};
use crate::error::{Error, Result};
use crate::projects::Projects;
use crate::store::Store;

/// Settings keys gitfleet acts on (globs); the others are kept and reported.
const APPLIED_KEYS: [(&str, &[&str]); 3] = [
    (
        crate::auth::SETTINGS_CONFIG_MAP,
        &["oidc.config", "admin.enabled", "accounts.*"],
    ),
    (RBAC_CONFIG_MAP, &["policy.csv", "policy.default", "scopes"]),
    (
        SECRET_KEY,
        &[
            "server.secretkey",
            "admin.password",
            "admin.passwordMtime",
            "accounts.*.password",
            "accounts.*.passwordMtime",
        ],
    ),
];

pub struct Apply {
    apps: Arc<Applications>,
    projects: Arc<Projects>,
    auth: Arc<Auth>,
    app_store: Store,
    project_store: Store,
    clusters: Store,
    repositories: Store,
    repo_creds: Store,
    app_sets: Store,
    settings: Store,
    /// Secrets labelled as Argo CD's that generators name (`tokenRef`), sealed.
    secrets: Store,
}

enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    fn of<T: PartialEq>(before: Option<T>, after: &T) -> Self {
        match before {
            None => Outcome::Created,
            Some(b) if &b == after => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

impl Apply {
    pub async fn new(
        bus: &Bus,
        apps: Arc<Applications>,
        projects: Arc<Projects>,
        auth: Arc<Auth>,
    ) -> Result<Self> {
        Ok(Self {
            apps,
            projects,
            auth,
            app_store: Store::open(bus, Bucket::Applications, "application").await?,
            project_store: Store::open(bus, Bucket::Projects, "project").await?,
            clusters: Store::open(bus, Bucket::Clusters, "cluster").await?,
            repositories: Store::open(bus, Bucket::Repositories, "repository").await?,
            repo_creds: Store::open(bus, Bucket::RepoCreds, "repository credential template")
                .await?,
            app_sets: Store::open(bus, Bucket::AppSets, "applicationset").await?,
            settings: Store::open(bus, Bucket::Settings, "setting").await?,
            secrets: Store::open(bus, Bucket::Secrets, "secret").await?,
        })
    }

    /// A request carrying the caller of `req`, for the services applied through.
    fn as_caller<T, U>(req: &Request<T>, message: U) -> Request<U> {
        let mut inner = Request::new(message);
        if let Some(caller) = req.extensions().get::<Caller>() {
            inner.extensions_mut().insert(caller.clone());
        }
        inner
    }

    async fn apply_one<T>(
        &self,
        req: &Request<T>,
        manifest: Manifest,
    ) -> Result<(Outcome, Vec<String>)> {
        match manifest {
            Manifest::Application(app) => {
                let before: Option<Application> = self
                    .app_store
                    .get(&app.metadata.name)
                    .await?
                    .map(|(a, _)| a);
                let mut app = *app;
                app.status = None;
                let manifest_yaml = serde_json::to_string(&app)?;
                ApplicationService::create(
                    &*self.apps,
                    Self::as_caller(
                        req,
                        CreateApplicationRequest {
                            manifest_yaml,
                            upsert: true,
                        },
                    ),
                )
                .await
                .map_err(status_error)?;
                Ok((Outcome::of(before, &app), Vec::new()))
            }
            Manifest::AppProject(project) => {
                let before: Option<AppProject> = self
                    .project_store
                    .get(&project.metadata.name)
                    .await?
                    .map(|(p, _)| p);
                let mut project = *project;
                project.status = None;
                let manifest_yaml = serde_json::to_string(&project)?;
                ProjectService::create(
                    &*self.projects,
                    Self::as_caller(
                        req,
                        CreateProjectRequest {
                            manifest_yaml,
                            upsert: true,
                        },
                    ),
                )
                .await
                .map_err(status_error)?;
                Ok((Outcome::of(before, &project), Vec::new()))
            }
            Manifest::Cluster(cluster) => {
                let cluster = *cluster;
                let key = if cluster.name.is_empty() {
                    cluster.server.clone()
                } else {
                    cluster.name.clone()
                };
                let object = crate::clusters::rbac_object(&cluster);
                let before: Option<Cluster> = self.clusters.get(&key).await?.map(|(c, _)| c);
                self.authorize_write(req, resources::CLUSTERS, &object, before.is_some())
                    .await?;
                let outcome = Outcome::of(before, &cluster);
                self.clusters.put(&key, &cluster).await?;
                Ok((outcome, Vec::new()))
            }
            Manifest::Repository(repo) => {
                let repo = *repo;
                let before: Option<Repository> =
                    self.repositories.get(&repo.repo).await?.map(|(r, _)| r);
                self.authorize_write(
                    req,
                    resources::REPOSITORIES,
                    &crate::repositories::rbac_object(&repo),
                    before.is_some(),
                )
                .await?;
                let outcome = Outcome::of(before, &repo);
                self.repositories.put(&repo.repo, &repo).await?;
                Ok((outcome, Vec::new()))
            }
            Manifest::RepoCreds(creds) => {
                let creds = *creds;
                let before: Option<Repository> =
                    self.repo_creds.get(&creds.repo).await?.map(|(r, _)| r);
                self.authorize_write(
                    req,
                    resources::REPOSITORIES,
                    &crate::repositories::rbac_object(&creds),
                    before.is_some(),
                )
                .await?;
                let outcome = Outcome::of(before, &creds);
                self.repo_creds.put(&creds.repo, &creds).await?;
                Ok((outcome, Vec::new()))
            }
            Manifest::Settings(doc) => self.apply_settings(req, *doc).await,
            Manifest::Secret(doc) => {
                // Credentials, as the settings Secrets are: an administrator's to write.
                self.auth
                    .authorize(req, resources::ACCOUNTS, actions::UPDATE, "*")
                    .await?;
                let data: BTreeMap<String, String> = doc
                    .data
                    .into_iter()
                    .map(|(k, v)| (k, v.into_inner()))
                    .collect();
                let before: Option<BTreeMap<String, String>> =
                    self.secrets.get(&doc.name).await?.map(|(d, _)| d);
                let outcome = Outcome::of(before, &data);
                self.secrets.put(&doc.name, &data).await?;
                Ok((outcome, Vec::new()))
            }
            Manifest::ApplicationSet(set) => {
                // Stored; the ApplicationSet controller generates its Applications.
                let mut set = *set;
                let name = set.metadata.name.clone();
                let object = format!("{}/{name}", set.spec.template.spec.project_or_default());
                let before: Option<ApplicationSet> =
                    self.app_sets.get(&name).await?.map(|(s, _)| s);
                self.authorize_write(req, resources::APPLICATION_SETS, &object, before.is_some())
                    .await?;
                // The status is the controller's: a manifest's would shadow it.
                set.status = before.as_ref().and_then(|b| b.status.clone());
                let outcome = Outcome::of(before, &set);
                self.app_sets.put(&name, &set).await?;
                Ok((outcome, Vec::new()))
            }
        }
    }

    /// Create needs `create` on the object, replacing needs `update`.
    async fn authorize_write<T>(
        &self,
        req: &Request<T>,
        resource: &str,
        object: &str,
        exists: bool,
    ) -> Result<()> {
        let action = if exists {
            actions::UPDATE
        } else {
            actions::CREATE
        };
        self.auth.authorize(req, resource, action, object).await
    }

    /// Settings change who may do what: only a caller who may update accounts (Argo CD's
    /// built-in admin) may write them. A policy is compiled first: one that does not
    /// parse is refused with its line named, and the one in force stays.
    async fn apply_settings<T>(
        &self,
        req: &Request<T>,
        doc: SettingsDocument,
    ) -> Result<(Outcome, Vec<String>)> {
        self.auth
            .authorize(req, resources::ACCOUNTS, actions::UPDATE, "*")
            .await?;
        let mut data: BTreeMap<String, String> = doc
            .data
            .into_iter()
            .map(|(k, v)| (k, v.into_inner()))
            .collect();
        if doc.name == crate::auth::SETTINGS_CONFIG_MAP {
            crate::oidc::OidcConfig::from_settings(&data).map_err(Error::invalid)?;
        }
        if doc.name == RBAC_CONFIG_MAP {
            crate::auth::load_rbac(&data)
                .await
                .map_err(Error::invalid)?;
        }
        let before: Option<BTreeMap<String, String>> =
            self.settings.get(&doc.name).await?.map(|(d, _)| d);
        if doc.name == SECRET_KEY {
            // The server key and the admin password stay unless the manifest sets them.
            for (k, v) in before.clone().unwrap_or_default() {
                data.entry(k).or_insert(v);
            }
            if let Some((key, _)) = data
                .iter()
                .find(|(k, v)| k.ends_with(".password") && !v.starts_with("$2"))
            {
                return Err(Error::invalid(format!(
                    "argocd-secret: {key} must be a bcrypt hash, as Argo CD stores it"
                )));
            }
        }
        let applied = APPLIED_KEYS
            .iter()
            .find(|(name, _)| *name == doc.name)
            .map(|(_, keys)| *keys)
            .unwrap_or(&[]);
        let kept: Vec<&str> = data
            .keys()
            .map(String::as_str)
            .filter(|k| {
                !applied
                    .iter()
                    .any(|p| gitfleet_engine::glob::Glob::new(p).matches(k))
            })
            .collect();
        let warnings = if kept.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "stored, but gitfleet does not act on these keys yet: {}",
                kept.join(", ")
            )]
        };
        let outcome = Outcome::of(before, &data);
        self.settings.put(&doc.name, &data).await?;
        Ok((outcome, warnings))
    }
}

/// A service's refusal, as the apply reports it (its code kept for the summary).
fn status_error(status: Status) -> Error {
    match status.code() {
        tonic::Code::PermissionDenied => Error::PermissionDenied(status.message().to_owned()),
        tonic::Code::Unauthenticated => Error::Unauthenticated(status.message().to_owned()),
        tonic::Code::NotFound | tonic::Code::AlreadyExists | tonic::Code::InvalidArgument => {
            Error::invalid(status.message())
        }
        _ => Error::Unavailable(status.message().to_owned()),
    }
}

/// Apply order: what others rely on first (documents that do not parse are reported
/// before everything, as 0).
fn rank(m: &Manifest) -> u8 {
    match m {
        Manifest::Settings(_) | Manifest::Secret(_) => 1,
        Manifest::AppProject(_) => 2,
        Manifest::Repository(_) | Manifest::RepoCreds(_) | Manifest::Cluster(_) => 3,
        Manifest::Application(_) => 4,
        Manifest::ApplicationSet(_) => 5,
    }
}

#[tonic::async_trait]
impl ApplyService for Apply {
    async fn apply(&self, req: Request<ApplyRequest>) -> Result<Response<ApplyResponse>, Status> {
        // No session, no apply: not even which documents parse is told.
        self.auth.identity(&req).await?;
        let mut parsed: Vec<(String, ParsedDocument)> = Vec::new();
        for file in &req.get_ref().files {
            let source = if file.source.is_empty() {
                "input".to_owned()
            } else {
                file.source.clone()
            };
            for doc in gitfleet_model::parse_all(&file.manifests_yaml) {
                parsed.push((source.clone(), doc));
            }
        }
        parsed.sort_by_key(|(_, d)| d.result.as_ref().map(rank).unwrap_or(0));
        let mut objects = Vec::new();
        for (source, doc) in parsed {
            let manifest = match doc.result {
                Ok(m) => m,
                Err(err) => {
                    objects.push(AppliedObject {
                        kind: String::new(),
                        name: format!("{source}, document at line {}", doc.line),
                        result: "failed".into(),
                        message: err.to_string(),
                        warnings: Vec::new(),
                    });
                    continue;
                }
            };
            let (kind, name) = (manifest.kind().to_owned(), manifest.name().to_owned());
            let object = match self.apply_one(&req, manifest).await {
                Ok((outcome, warnings)) => AppliedObject {
                    kind,
                    name,
                    result: outcome.as_str().into(),
                    message: String::new(),
                    warnings,
                },
                Err(err) => AppliedObject {
                    kind,
                    name,
                    result: "failed".into(),
                    message: err.to_string(),
                    warnings: Vec::new(),
                },
            };
            tracing::info!(kind = %object.kind, name = %object.name, result = %object.result, "applied");
            objects.push(object);
        }
        Ok(Response::new(ApplyResponse { objects }))
    }
}
