//! StatefulSet: observed generation, ready replicas, then the update strategy.

use serde_json::Value;

use super::Health;
use crate::json::{i64_at, int_or_zero, str_at};

pub(super) fn assess(obj: &Value) -> Health {
    let observed = int_or_zero(obj, &["status", "observedGeneration"]);
    if observed == 0 || int_or_zero(obj, &["metadata", "generation"]) > observed {
        return Health::progressing("Waiting for statefulset spec update to be observed...");
    }
    let replicas = i64_at(obj, &["spec", "replicas"]).unwrap_or(1);
    let ready = int_or_zero(obj, &["status", "readyReplicas"]);
    if ready < replicas {
        return Health::progressing(format!(
            "Waiting for {} pods to be ready...",
            replicas - ready
        ));
    }
    let updated = int_or_zero(obj, &["status", "updatedReplicas"]);
    // API defaults: updateStrategy {type: RollingUpdate, rollingUpdate: {partition: 0}}.
    let strategy = match str_at(obj, &["spec", "updateStrategy", "type"]) {
        "" => "RollingUpdate",
        s => s,
    };
    // Defaulting makes every RollingUpdate set carry a partition, so the revision comparison
    // below is only reached by strategy types this code does not know.
    if strategy == "RollingUpdate" {
        let partition = i64_at(
            obj,
            &["spec", "updateStrategy", "rollingUpdate", "partition"],
        )
        .unwrap_or(0);
        if updated < replicas - partition {
            return Health::progressing(format!(
                "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                replicas - partition
            ));
        }
        return Health::healthy(format!(
            "partitioned roll out complete: {updated} new pods have been updated..."
        ));
    }
    if strategy == "OnDelete" {
        return Health::healthy(format!(
            "statefulset has {ready} ready pods ({updated} updated)"
        ));
    }
    let update_rev = str_at(obj, &["status", "updateRevision"]);
    let current_rev = str_at(obj, &["status", "currentRevision"]);
    if update_rev != current_rev {
        return Health::progressing(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {update_rev}..."
        ));
    }
    Health::healthy(format!(
        "statefulset rolling update complete {} pods at revision {current_rev}...",
        int_or_zero(obj, &["status", "currentReplicas"])
    ))
}
