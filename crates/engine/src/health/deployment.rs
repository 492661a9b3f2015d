//! Deployment: paused, progress deadline, then kubectl's rollout-status arithmetic.

use serde_json::Value;

use super::Health;
use crate::json::{bool_at, condition, i64_at, int_or_zero, str_at};

pub(super) fn assess(obj: &Value) -> Health {
    if bool_at(obj, &["spec", "paused"]) {
        return Health::new(
            gitfleet_model::HealthStatusCode::Suspended,
            "Deployment is paused",
        );
    }
    if int_or_zero(obj, &["metadata", "generation"])
        > int_or_zero(obj, &["status", "observedGeneration"])
    {
        return Health::progressing(
            "Waiting for rollout to finish: observed deployment generation less then desired generation",
        );
    }
    if condition(obj, "Progressing")
        .is_some_and(|c| str_at(c, &["reason"]) == "ProgressDeadlineExceeded")
    {
        return Health::degraded(format!(
            "Deployment {:?} exceeded its progress deadline",
            str_at(obj, &["metadata", "name"])
        ));
    }
    // The API server defaults spec.replicas to 1; a live object always carries it.
    let replicas = i64_at(obj, &["spec", "replicas"]).unwrap_or(1);
    let updated = int_or_zero(obj, &["status", "updatedReplicas"]);
    let current = int_or_zero(obj, &["status", "replicas"]);
    let available = int_or_zero(obj, &["status", "availableReplicas"]);
    if updated < replicas {
        Health::progressing(format!(
            "Waiting for rollout to finish: {updated} out of {replicas} new replicas have been updated..."
        ))
    } else if current > updated {
        Health::progressing(format!(
            "Waiting for rollout to finish: {} old replicas are pending termination...",
            current - updated
        ))
    } else if available < updated {
        Health::progressing(format!(
            "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
        ))
    } else {
        Health::healthy("")
    }
}
