//! PersistentVolumeClaim: by phase.

use gitfleet_model::HealthStatusCode;
use serde_json::Value;

use super::Health;
use crate::json::str_at;

pub(super) fn assess(obj: &Value) -> Health {
    let status = match str_at(obj, &["status", "phase"]) {
        "Bound" => HealthStatusCode::Healthy,
        "Pending" => HealthStatusCode::Progressing,
        "Lost" => HealthStatusCode::Degraded,
        _ => HealthStatusCode::Unknown,
    };
    Health::new(status, "")
}
