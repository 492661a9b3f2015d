//! Ingress: Healthy once the controller published a load balancer address.

use serde_json::Value;

use super::Health;
use crate::json::array_at;

pub(super) fn assess(obj: &Value) -> Health {
    if array_at(obj, &["status", "loadBalancer", "ingress"]).is_empty() {
        Health::progressing("")
    } else {
        Health::healthy("")
    }
}
