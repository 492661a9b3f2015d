//! The admin endpoint: the kubeconfig, each cluster's write log, and its faults, read
//! and changed at run time.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

use crate::cluster::{Cluster, Faults, WriteRecord};

#[derive(Clone)]
pub struct AdminState {
    pub clusters: Vec<Arc<Cluster>>,
    pub kubeconfig: String,
}

pub fn router(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route(
            "/kubeconfig",
            get(|State(s): State<AdminState>| async move { s.kubeconfig }),
        )
        .route("/clusters", get(list))
        .route("/clusters/{name}/writes", get(writes).delete(clear_writes))
        .route("/clusters/{name}/faults", get(faults).put(set_faults))
        .route("/faults", axum::routing::put(set_all_faults))
        .with_state(state)
}

fn find(s: &AdminState, name: &str) -> Result<Arc<Cluster>, (StatusCode, String)> {
    s.clusters
        .iter()
        .find(|c| c.name == name)
        .cloned()
        .ok_or((StatusCode::NOT_FOUND, format!("no cluster named {name:?}")))
}

async fn list(State(s): State<AdminState>) -> Json<Vec<serde_json::Value>> {
    Json(s.clusters.iter().map(|c| serde_json::json!({"name": c.name, "objects": c.object_count(), "faults": c.faults()})).collect())
}

async fn writes(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<WriteRecord>>, (StatusCode, String)> {
    Ok(Json(find(&s, &name)?.write_log()))
}

async fn clear_writes(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> Result<StatusCode, (StatusCode, String)> {
    find(&s, &name)?.clear_write_log();
    Ok(StatusCode::NO_CONTENT)
}

async fn faults(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Faults>, (StatusCode, String)> {
    Ok(Json(find(&s, &name)?.faults()))
}

async fn set_faults(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Json(f): Json<Faults>,
) -> Result<Json<Faults>, (StatusCode, String)> {
    let c = find(&s, &name)?;
    c.set_faults(f);
    Ok(Json(c.faults()))
}

async fn set_all_faults(State(s): State<AdminState>, Json(f): Json<Faults>) -> StatusCode {
    for c in &s.clusters {
        c.set_faults(f.clone());
    }
    StatusCode::NO_CONTENT
}
