//! ReplicaSet: observed generation, ReplicaFailure, then available replicas.

use serde_json::Value;

use super::Health;
use crate::json::{condition, i64_at, int_or_zero, str_at};

pub(super) fn assess(obj: &Value) -> Health {
    if int_or_zero(obj, &["metadata", "generation"])
        > int_or_zero(obj, &["status", "observedGeneration"])
    {
        return Health::progressing(
            "Waiting for rollout to finish: observed replica set generation less then desired generation",
        );
    }
    if let Some(c) = condition(obj, "ReplicaFailure").filter(|c| str_at(c, &["status"]) == "True") {
        return Health::degraded(str_at(c, &["message"]));
    }
    let replicas = i64_at(obj, &["spec", "replicas"]).unwrap_or(1);
    let available = int_or_zero(obj, &["status", "availableReplicas"]);
    if available < replicas {
        return Health::progressing(format!(
            "Waiting for rollout to finish: {available} out of {replicas} new replicas are available..."
        ));
    }
    Health::healthy("")
}
