//! Resource actions on an owned cluster's objects (Argo CD's `ListResourceActions` and
//! `RunResourceActionV2`, which Argo CD's API server runs itself): the gateway has checked
//! the caller's RBAC; here the object is read fresh from the cluster, the scripts are found
//! with `argocd-cm` as it is now ([`gitfleet_engine::actions`]), and what the action
//! returns is checked against the app's project and written: a merge patch (its `status`
//! through the status subresource when the kind has one), creates after a dry run of all
//! of them, as Argo CD writes them.

use std::sync::Arc;

use gitfleet_bus::Bus;
use gitfleet_bus::control_plane::ControlPlane;
use gitfleet_engine::ResourceRef;
use gitfleet_engine::actions::{ActionError, ActionWrite, Actions};
use gitfleet_messages::{
    ErrorCode, ResourceAction, ResourceActionRequest, ResourceActions, ServiceError,
};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cache::Kind;
use crate::cluster::{CallError, ClusterRuntime};
use crate::executor::api;

/// Actions handled at once per cluster (each is a user's click, and may run Lua for 1 s).
const MAX_CONCURRENT: usize = 8;
/// The field manager of an action's writes: Argo CD's API server writes them, so a
/// `managedFieldsManagers` rule naming it keeps working.
const FIELD_MANAGER: &str = "argocd-server";

/// Answers action requests for `rt`'s cluster until `cancel`.
pub async fn serve(bus: Bus, rt: Arc<ClusterRuntime>, cancel: CancellationToken) {
    let subject = bus.topology.action_request_subject(&rt.name);
    crate::live::serve_cluster(
        bus,
        rt,
        subject,
        MAX_CONCURRENT,
        cancel,
        |rt, bus, req: ResourceActionRequest| async move { answer(&bus, &rt, req).await },
    )
    .await;
}

async fn answer(
    bus: &Bus,
    rt: &ClusterRuntime,
    req: ResourceActionRequest,
) -> Result<ResourceActions, ServiceError> {
    let r = &req.resource;
    let wanted = ResourceRef {
        group: r.group.clone(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        ..ResourceRef::default()
    };
    let what = gitfleet_engine::app::diff_heading(&wanted);
    rt.ensure_reachable(rt.config.cache_wait)
        .await
        .map_err(ServiceError::unavailable)?;
    // Only an object the app tracks: the gateway asked about one of its resources, and
    // the object may have been taken over or replaced since.
    let tracked = rt
        .cache
        .app_objects(&req.app)
        .iter()
        .any(|o| ResourceRef::from_object(o).same_object(&wanted));
    if !tracked {
        return Err(ServiceError::not_found(format!(
            "{what} is not a live resource of application {}",
            req.app
        )));
    }
    let kind = rt.cache.kind(&r.group, &r.kind).ok_or_else(|| {
        ServiceError::not_found(format!("the cluster does not serve {}/{}", r.group, r.kind))
    })?;
    let (ns, name) = (r.namespace.clone(), r.name.clone());
    let live = rt
        .call(|client| {
            let api = api(client, &kind, &ns);
            let name = name.clone();
            async move { api.get(&name).await }
        })
        .await
        .map_err(|e| e.service_error(&format!("reading {what}")))?;
    let live = serde_json::to_value(live).map_err(|e| ServiceError::internal(e.to_string()))?;
    let data = ControlPlane::new(bus, &rt.config.control_plane_namespace)
        .argocd_cm()
        .await?;
    let (actions, errors) = Actions::from_settings(&data, &rt.config.health_library);
    for error in errors {
        tracing::warn!(%error, "an action customization of argocd-cm is left out");
    }
    let Some(action) = req.action.clone() else {
        let object = live.clone();
        let found = lua(move || actions.discover(&object)).await?;
        return Ok(ResourceActions {
            actions: found
                .into_iter()
                .map(|a| ResourceAction {
                    name: a.name,
                    disabled: a.disabled,
                    display_name: a.display_name,
                    icon_class: a.icon_class,
                    params: a.params,
                })
                .collect(),
            written: Vec::new(),
        });
    };
    let (object, name, params) = (live.clone(), action.clone(), req.params.clone());
    let impacted = lua(move || actions.run(&object, &name, &params)).await?;
    let writes =
        gitfleet_engine::actions::writes(&live, &action, impacted).map_err(action_error)?;
    // Everything is checked (and every create tried dry) before anything is written.
    let mut kinds = Vec::new();
    for write in &writes {
        let object = match write {
            ActionWrite::Patch { object, .. } | ActionWrite::Create { object } => object,
        };
        let w = ResourceRef::from_object(object);
        let kind = rt.cache.kind(&w.group, &w.kind).ok_or_else(|| {
            ServiceError::invalid(format!(
                "action {action:?} writes a {}/{}, which the cluster does not serve",
                w.group, w.kind
            ))
        })?;
        if let Some(project) = &req.project {
            gitfleet_engine::project::ProjectRules::new(project)
                .resource_permitted(
                    &w.group,
                    &w.kind,
                    &w.name,
                    &w.namespace,
                    kind.namespaced,
                    &rt.spec,
                )
                .map_err(|v| {
                    ServiceError::new(
                        ErrorCode::PermissionDenied,
                        format!("application is not permitted to manage it: {v}"),
                    )
                })?;
        }
        if let ActionWrite::Create { object } = write {
            create(rt, &kind, object, true).await?;
        }
        kinds.push(kind);
    }
    let mut written = Vec::new();
    for (write, kind) in writes.iter().zip(&kinds) {
        match write {
            ActionWrite::Patch {
                object,
                patch,
                status,
            } => {
                let patched = merge_patch(rt, kind, object, patch, status.as_ref()).await?;
                if let Some(patched) = patched {
                    rt.cache.record_write(patched);
                }
                written.push(format!("patched {}", identity(object)));
            }
            ActionWrite::Create { object } => {
                create(rt, kind, object, false).await?;
                written.push(format!("created {}", identity(object)));
            }
        }
    }
    tracing::info!(app = %req.app, cluster = %rt.name, resource = %what, %action, ?written, "resource action ran");
    Ok(ResourceActions {
        actions: Vec::new(),
        written,
    })
}

/// Runs Lua off the async workers: a script may take its whole second.
async fn lua<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ActionError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::internal(format!("running the action: {e}")))?
        .map_err(action_error)
}

fn action_error(e: ActionError) -> ServiceError {
    match e {
        ActionError::Unknown { .. } => ServiceError::not_found(e.to_string()),
        _ => ServiceError::invalid(e.to_string()),
    }
}

/// The object's `status` through the status subresource first (a kind without one
/// answers 404: then it goes with the rest), then the rest; the object as last written.
async fn merge_patch(
    rt: &ClusterRuntime,
    kind: &Kind,
    object: &Value,
    patch: &Value,
    status: Option<&Value>,
) -> Result<Option<Value>, ServiceError> {
    let r = ResourceRef::from_object(object);
    let what = format!("patching {}", identity(object));
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    let mut rest = patch.clone();
    let mut last = None;
    if let Some(status) = status {
        let body = serde_json::json!({ "status": status });
        let result = rt
            .call(|client| {
                let api = api(client, kind, &r.namespace);
                let (name, params, body) = (r.name.clone(), params.clone(), body.clone());
                async move { api.patch_status(&name, &params, &Patch::Merge(&body)).await }
            })
            .await;
        match result {
            Ok(obj) => last = Some(obj),
            Err(CallError::Api { code: 404, .. }) => {
                rest["status"] = status.clone();
            }
            Err(e) => return Err(e.service_error(&what)),
        }
    }
    if rest.as_object().is_some_and(|m| !m.is_empty()) {
        let obj = rt
            .call(|client| {
                let api = api(client, kind, &r.namespace);
                let (name, params, body) = (r.name.clone(), params.clone(), rest.clone());
                async move { api.patch(&name, &params, &Patch::Merge(&body)).await }
            })
            .await
            .map_err(|e| e.service_error(&what))?;
        last = Some(obj);
    }
    Ok(last.and_then(|o: DynamicObject| serde_json::to_value(o).ok()))
}

async fn create(
    rt: &ClusterRuntime,
    kind: &Kind,
    object: &Value,
    dry_run: bool,
) -> Result<(), ServiceError> {
    let r = ResourceRef::from_object(object);
    let what = format!(
        "creating {}{}",
        identity(object),
        if dry_run { " (dry run)" } else { "" }
    );
    let obj: DynamicObject = serde_json::from_value(object.clone())
        .map_err(|e| ServiceError::invalid(format!("{what}: not an object: {e}")))?;
    let params = PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    rt.call(|client| {
        let api = api(client, kind, &r.namespace);
        let (obj, params) = (obj.clone(), params.clone());
        async move { api.create(&params, &obj).await }
    })
    .await
    .map(drop)
    .map_err(|e| e.service_error(&what))
}

/// `group/Kind namespace/name`, as `app diff` heads it.
fn identity(obj: &Value) -> String {
    gitfleet_engine::app::diff_heading(&ResourceRef::from_object(obj))
}
