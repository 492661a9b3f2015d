//! DaemonSet: observed generation, OnDelete, then scheduled and available pods.

use serde_json::Value;

use super::Health;
use crate::json::{int_or_zero, str_at};

pub(super) fn assess(obj: &Value) -> Health {
    if int_or_zero(obj, &["metadata", "generation"])
        > int_or_zero(obj, &["status", "observedGeneration"])
    {
        return Health::progressing(
            "Waiting for rollout to finish: observed daemon set generation less then desired generation",
        );
    }
    let desired = int_or_zero(obj, &["status", "desiredNumberScheduled"]);
    let updated = int_or_zero(obj, &["status", "updatedNumberScheduled"]);
    if str_at(obj, &["spec", "updateStrategy", "type"]) == "OnDelete" {
        return Health::healthy(format!(
            "daemon set {updated} out of {desired} new pods have been updated"
        ));
    }
    let name = str_at(obj, &["metadata", "name"]);
    if updated < desired {
        return Health::progressing(format!(
            "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
        ));
    }
    let available = int_or_zero(obj, &["status", "numberAvailable"]);
    if available < desired {
        return Health::progressing(format!(
            "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
        ));
    }
    Health::healthy("")
}
