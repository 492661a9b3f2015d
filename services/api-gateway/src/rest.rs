//! Argo CD's REST API (`/api/v1/...`, Argo CD's paths and JSON shapes) beside gRPC on
//! one port: each route builds the gRPC request, passes the same interceptor (the
//! caller's token, from `Authorization: Bearer` or Argo CD's `argocd.token` cookie) and
//! calls the same handler, so authorisation, audit and errors are the gRPC route's. A
//! status maps to HTTP through the one table (`ErrorCode::http_status`), with Argo CD's
//! error body (`{"error", "code", "message"}`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use gitfleet_messages::ErrorCode;
use gitfleet_proto::v1::account_service_server::AccountService;
use gitfleet_proto::v1::application_service_server::ApplicationService;
use gitfleet_proto::v1::cluster_service_server::ClusterService;
use gitfleet_proto::v1::project_service_server::ProjectService;
use gitfleet_proto::v1::repository_service_server::RepositoryService;
use gitfleet_proto::v1::session_service_server::SessionService;
use gitfleet_proto::v1::*;
use serde_json::{Value, json};
use tonic::Status;
use tonic::transport::server::TcpConnectInfo;

use crate::applications::Applications;
use crate::clusters::Clusters;
use crate::projects::Projects;
use crate::repositories::Repositories;
use crate::sessions::Sessions;

/// The largest request body taken (an Application manifest is a few KB).
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// The interceptor every gRPC service passes, shared with REST.
pub type Check =
    Arc<dyn Fn(tonic::Request<()>) -> Result<tonic::Request<()>, Status> + Send + Sync>;

/// The handlers REST calls: the gRPC services themselves.
#[derive(Clone)]
pub struct Rest {
    pub check: Check,
    pub apps: Arc<Applications>,
    pub projects: Arc<Projects>,
    pub clusters: Arc<Clusters>,
    pub repos: Arc<Repositories>,
    pub sessions: Arc<Sessions>,
}

/// Every REST route: method, Argo CD's path, handler. The router is built from this list
/// and `tests/auth.rs` calls every entry, so a route cannot go untested.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<Rest>)> {
    vec![
        ("GET", "/api/version", get(version)),
        ("POST", "/api/v1/session", post(session_create)),
        (
            "DELETE",
            "/api/v1/session",
            axum::routing::delete(session_delete),
        ),
        ("GET", "/api/v1/session/userinfo", get(user_info)),
        (
            "GET",
            "/api/v1/account/can-i/{resource}/{action}/{subresource}",
            get(can_i),
        ),
        ("GET", "/api/v1/applications", get(app_list)),
        ("POST", "/api/v1/applications", post(app_create)),
        ("GET", "/api/v1/applications/{name}", get(app_get)),
        (
            "DELETE",
            "/api/v1/applications/{name}",
            axum::routing::delete(app_delete),
        ),
        ("POST", "/api/v1/applications/{name}/sync", post(app_sync)),
        (
            "GET",
            "/api/v1/applications/{name}/manifests",
            get(app_manifests),
        ),
        (
            "GET",
            "/api/v1/applications/{name}/resource/actions",
            get(app_resource_actions),
        ),
        (
            "POST",
            "/api/v1/applications/{name}/resource/actions/v2",
            post(app_run_resource_action),
        ),
        (
            "GET",
            "/api/v1/applications/{name}/resource-tree",
            get(app_resource_tree),
        ),
        ("GET", "/api/v1/projects", get(project_list)),
        ("GET", "/api/v1/projects/{name}", get(project_get)),
        ("GET", "/api/v1/clusters", get(cluster_list)),
        ("GET", "/api/v1/repositories", get(repo_list)),
    ]
}

/// The REST router (axum merges the methods of one path).
pub fn router(rest: Rest) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (_, path, method)| {
            router.route(path, method)
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(rest)
}

/// A REST error: the gRPC status, answered as Argo CD's gateway answers it.
pub struct RestError(Status);

impl From<Status> for RestError {
    fn from(s: Status) -> Self {
        RestError(s)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let grpc = self.0.code() as i32;
        let http = ErrorCode::from_grpc_code(grpc).http_status();
        let body = json!({"error": self.0.message(), "code": grpc, "message": self.0.message()});
        (
            StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response()
    }
}

type Answer = Result<axum::Json<Value>, RestError>;

fn invalid(message: impl Into<String>) -> RestError {
    RestError(Status::invalid_argument(message.into()))
}

/// The caller's token: `Authorization: Bearer`, else the `argocd.token` cookie.
fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.strip_prefix("Bearer ").unwrap_or(v).trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("argocd.token="))
        .map(str::to_owned)
        .next()
}

/// Who is calling: the request's headers and the connection it came on (for the audit's
/// "from where").
pub struct Caller {
    headers: HeaderMap,
    from: Option<TcpConnectInfo>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller {
            headers: parts.headers.clone(),
            from: parts.extensions.get::<TcpConnectInfo>().cloned(),
        })
    }
}

/// Gives every request on the port the connection's peer as tonic's transport does, so
/// `Request::remote_addr` answers for gRPC and REST alike.
pub async fn connect_info(
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    req.extensions_mut().insert(TcpConnectInfo {
        local_addr: None,
        remote_addr: Some(peer),
    });
    next.run(req).await
}

impl Rest {
    /// `msg` as a gRPC request that has passed the interceptor with the caller's token.
    fn request<T>(&self, caller: &Caller, msg: T) -> Result<tonic::Request<T>, RestError> {
        let mut probe = tonic::Request::new(());
        if let Some(from) = &caller.from {
            probe.extensions_mut().insert(from.clone());
        }
        if let Some(token) = token(&caller.headers) {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| RestError(Status::unauthenticated("malformed token")))?;
            probe.metadata_mut().insert("authorization", value);
        }
        let checked = (self.check)(probe)?;
        let (metadata, extensions, ()) = checked.into_parts();
        Ok(tonic::Request::from_parts(metadata, extensions, msg))
    }
}

/// A JSON document one of the gRPC answers carries as a string.
fn doc(text: &str) -> Result<Value, RestError> {
    serde_json::from_str(text).map_err(|e| RestError(Status::internal(format!("answer: {e}"))))
}

fn items(items_json: &[String]) -> Result<Vec<Value>, RestError> {
    items_json.iter().map(|j| doc(j)).collect()
}

/// A request body as JSON; the error names what was expected.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes, expected: &str) -> Result<T, RestError> {
    serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("request body: expected {expected}: {e}")))
}

fn flag(query: &HashMap<String, String>, key: &str) -> Result<bool, RestError> {
    match query.get(key).map(String::as_str) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(invalid(format!("{key}={other}: expected true or false"))),
    }
}

async fn version() -> axum::Json<Value> {
    axum::Json(json!({"Version": concat!("v", env!("CARGO_PKG_VERSION"), "+gitfleet")}))
}

#[derive(serde::Deserialize)]
struct SessionBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn session_create(State(rest): State<Rest>, caller: Caller, bytes: Bytes) -> Answer {
    let b: SessionBody = body(&bytes, "{\"username\", \"password\"}")?;
    let req = rest.request(
        &caller,
        SessionCreateRequest {
            username: b.username,
            password: b.password,
        },
    )?;
    let token = rest.sessions.create(req).await?.into_inner().token;
    Ok(axum::Json(json!({"token": token})))
}

async fn session_delete(State(rest): State<Rest>, caller: Caller) -> Answer {
    let req = rest.request(&caller, SessionDeleteRequest {})?;
    SessionService::delete(&*rest.sessions, req).await?;
    Ok(axum::Json(json!({})))
}

async fn user_info(State(rest): State<Rest>, caller: Caller) -> Answer {
    let req = rest.request(&caller, GetUserInfoRequest {})?;
    let r = rest.sessions.get_user_info(req).await?.into_inner();
    Ok(axum::Json(
        json!({"loggedIn": r.logged_in, "username": r.username, "iss": r.iss, "groups": r.groups}),
    ))
}

async fn can_i(
    State(rest): State<Rest>,
    caller: Caller,
    Path((resource, action, subresource)): Path<(String, String, String)>,
) -> Answer {
    let req = rest.request(
        &caller,
        CanIRequest {
            resource,
            action,
            subresource,
        },
    )?;
    let r = AccountService::can_i(&*rest.sessions, req)
        .await?
        .into_inner();
    Ok(axum::Json(json!({"value": r.value})))
}

/// Argo CD's list query: `projects` (repeatable; one supported), `selector`, `repo`,
/// and gitfleet's filters and pages.
async fn app_list(
    State(rest): State<Rest>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let mut req = ListApplicationsRequest::default();
    for (k, v) in query {
        match k.as_str() {
            "projects" | "project" if req.project.is_empty() => req.project = v,
            "projects" | "project" => {
                return Err(invalid(
                    "one project at a time: several are not supported yet",
                ));
            }
            "selector" => req.selector = v,
            "repo" => req.repo = v,
            "cluster" => req.cluster = v,
            "namespace" => req.namespace = v,
            "syncStatus" => req.sync_status = v,
            "healthStatus" => req.health_status = v,
            "limit" => {
                req.limit = v
                    .parse()
                    .map_err(|_| invalid(format!("limit={v}: expected a number")))?
            }
            "continue" => req.r#continue = v,
            "fields" | "appNamespace" | "refresh" | "resourceVersion" => {}
            other => return Err(invalid(format!("unknown query parameter {other:?}"))),
        }
    }
    let r = ApplicationService::list(&*rest.apps, rest.request(&caller, req)?)
        .await?
        .into_inner();
    let mut metadata = json!({});
    if !r.r#continue.is_empty() {
        metadata["continue"] = json!(r.r#continue);
    }
    Ok(axum::Json(
        json!({"metadata": metadata, "items": items(&r.items_json)?}),
    ))
}

async fn app_create(
    State(rest): State<Rest>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
    bytes: Bytes,
) -> Answer {
    // Checked as JSON here so a wrong body says so; the handler validates the manifest.
    let manifest: Value = body(&bytes, "an Application as JSON")?;
    if !manifest.is_object() {
        return Err(invalid("request body: expected an Application object"));
    }
    let req = CreateApplicationRequest {
        manifest_yaml: manifest.to_string(),
        upsert: flag(&query, "upsert")?,
    };
    let r = ApplicationService::create(&*rest.apps, rest.request(&caller, req)?)
        .await?
        .into_inner();
    Ok(axum::Json(doc(&r.application_json)?))
}

async fn app_get(State(rest): State<Rest>, caller: Caller, Path(name): Path<String>) -> Answer {
    let r = ApplicationService::get(
        &*rest.apps,
        rest.request(&caller, GetApplicationRequest { name })?,
    )
    .await?
    .into_inner();
    Ok(axum::Json(doc(&r.application_json)?))
}

async fn app_delete(
    State(rest): State<Rest>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    // Argo CD cascades unless told `cascade=false`.
    let cascade = !matches!(query.get("cascade").map(String::as_str), Some("false"));
    let req = DeleteApplicationRequest { name, cascade };
    ApplicationService::delete(&*rest.apps, rest.request(&caller, req)?).await?;
    Ok(axum::Json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SyncBody {
    #[serde(default)]
    revision: String,
    #[serde(default)]
    prune: bool,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    resources: Vec<SyncResourceBody>,
    #[serde(default)]
    sync_options: Option<SyncOptionsBody>,
}

#[derive(serde::Deserialize)]
struct SyncResourceBody {
    #[serde(default)]
    group: String,
    kind: String,
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(serde::Deserialize)]
struct SyncOptionsBody {
    #[serde(default)]
    items: Vec<String>,
}

/// Argo CD's `ApplicationSyncRequest`; answers the Application after the sync (which
/// gitfleet waits for).
async fn app_sync(
    State(rest): State<Rest>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Answer {
    let b: SyncBody = if bytes.is_empty() {
        SyncBody::default()
    } else {
        body(&bytes, "an ApplicationSyncRequest")?
    };
    let resources = b
        .resources
        .iter()
        .map(|r| {
            if r.namespace.is_empty() {
                format!("{}:{}:{}", r.group, r.kind, r.name)
            } else {
                format!("{}:{}:{}/{}", r.group, r.kind, r.namespace, r.name)
            }
        })
        .collect();
    let req = SyncApplicationRequest {
        name: name.clone(),
        prune: b.prune,
        dry_run: b.dry_run,
        revision: b.revision,
        resources,
        sync_options: b.sync_options.map(|o| o.items).unwrap_or_default(),
        prune_confirmed: false,
    };
    ApplicationService::sync(&*rest.apps, rest.request(&caller, req)?).await?;
    let r = ApplicationService::get(
        &*rest.apps,
        rest.request(&caller, GetApplicationRequest { name })?,
    )
    .await?
    .into_inner();
    Ok(axum::Json(doc(&r.application_json)?))
}

async fn app_manifests(
    State(rest): State<Rest>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let req = ApplicationManifestsRequest {
        name,
        source: query.get("source").cloned().unwrap_or_default(),
        revision: query.get("revision").cloned().unwrap_or_default(),
    };
    let r = ApplicationService::manifests(&*rest.apps, rest.request(&caller, req)?)
        .await?
        .into_inner();
    // Argo CD's ManifestResponse: each manifest a JSON string.
    Ok(axum::Json(json!({"manifests": r.manifests})))
}

/// Argo CD's `ListResourceActions`: the resource in the query (`namespace`,
/// `resourceName`, `version`, `group`, `kind`).
async fn app_resource_actions(
    State(rest): State<Rest>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let q = |key: &str| query.get(key).cloned().unwrap_or_default();
    let req = ApplicationResourceRequest {
        name,
        namespace: q("namespace"),
        resource_name: q("resourceName"),
        version: q("version"),
        group: q("group"),
        kind: q("kind"),
    };
    let r = ApplicationService::list_resource_actions(&*rest.apps, rest.request(&caller, req)?)
        .await?
        .into_inner();
    let actions: Vec<Value> = r
        .actions
        .iter()
        .map(|a| {
            let mut action = json!({"name": a.name});
            if !a.params.is_empty() {
                action["params"] = a.params.iter().map(|p| json!({"name": p.name})).collect();
            }
            if a.disabled {
                action["disabled"] = json!(true);
            }
            if !a.icon_class.is_empty() {
                action["iconClass"] = json!(a.icon_class);
            }
            if !a.display_name.is_empty() {
                action["displayName"] = json!(a.display_name);
            }
            action
        })
        .collect();
    Ok(axum::Json(json!({"actions": actions})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ActionRunBody {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    resource_name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource_action_parameters: Vec<ActionParameterBody>,
}

#[derive(serde::Deserialize)]
struct ActionParameterBody {
    name: String,
    #[serde(default)]
    value: String,
}

/// Argo CD's `RunResourceActionV2`; answers `{}` as Argo CD does.
async fn app_run_resource_action(
    State(rest): State<Rest>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Answer {
    let b: ActionRunBody = body(&bytes, "a ResourceActionRunRequestV2")?;
    let req = ResourceActionRunRequest {
        name,
        namespace: b.namespace,
        resource_name: b.resource_name,
        version: b.version,
        group: b.group,
        kind: b.kind,
        action: b.action,
        resource_action_parameters: b
            .resource_action_parameters
            .into_iter()
            .map(|p| ResourceActionParameters {
                name: p.name,
                value: p.value,
            })
            .collect(),
    };
    ApplicationService::run_resource_action(&*rest.apps, rest.request(&caller, req)?).await?;
    Ok(axum::Json(json!({})))
}

/// Argo CD's `ResourceTree`: `{"nodes": [...]}`.
async fn app_resource_tree(
    State(rest): State<Rest>,
    caller: Caller,
    Path(name): Path<String>,
) -> Answer {
    let r = ApplicationService::resource_tree(
        &*rest.apps,
        rest.request(&caller, ResourceTreeRequest { name })?,
    )
    .await?
    .into_inner();
    Ok(axum::Json(doc(&r.tree_json)?))
}

async fn project_list(State(rest): State<Rest>, caller: Caller) -> Answer {
    let r = ProjectService::list(
        &*rest.projects,
        rest.request(&caller, ListProjectsRequest {})?,
    )
    .await?
    .into_inner();
    Ok(axum::Json(
        json!({"metadata": {}, "items": items(&r.items_json)?}),
    ))
}

async fn project_get(State(rest): State<Rest>, caller: Caller, Path(name): Path<String>) -> Answer {
    let r = ProjectService::get(
        &*rest.projects,
        rest.request(&caller, GetProjectRequest { name })?,
    )
    .await?
    .into_inner();
    Ok(axum::Json(doc(&r.project_json)?))
}

async fn cluster_list(State(rest): State<Rest>, caller: Caller) -> Answer {
    let r = ClusterService::list(
        &*rest.clusters,
        rest.request(&caller, ListClustersRequest {})?,
    )
    .await?
    .into_inner();
    Ok(axum::Json(
        json!({"metadata": {}, "items": items(&r.items_json)?}),
    ))
}

async fn repo_list(State(rest): State<Rest>, caller: Caller) -> Answer {
    let r = RepositoryService::list(
        &*rest.repos,
        rest.request(&caller, ListRepositoriesRequest {})?,
    )
    .await?
    .into_inner();
    Ok(axum::Json(
        json!({"metadata": {}, "items": items(&r.items_json)?}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_or_argo_cds_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; argocd.token=tok1; c=d".parse().unwrap(),
        );
        assert_eq!(token(&h).as_deref(), Some("tok1"));
        h.insert(header::AUTHORIZATION, "Bearer tok2".parse().unwrap());
        assert_eq!(token(&h).as_deref(), Some("tok2"));
        assert_eq!(token(&HeaderMap::new()), None);
    }

    #[test]
    fn errors_answer_argo_cds_shape_and_the_one_status_table() {
        let r = RestError(Status::permission_denied("no")).into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = RestError(Status::unauthenticated("who")).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = RestError(Status::not_found("gone")).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_route_path_is_unique_per_method() {
        let mut seen = std::collections::BTreeSet::new();
        for (method, path, _) in routes() {
            assert!(seen.insert((method, path)), "{method} {path} twice");
        }
    }
}
