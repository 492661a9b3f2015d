//! Service: only a LoadBalancer waits, for its ingress points.

use serde_json::Value;

use super::Health;
use crate::json::{array_at, str_at};

pub(super) fn assess(obj: &Value) -> Health {
    if str_at(obj, &["spec", "type"]) == "LoadBalancer"
        && array_at(obj, &["status", "loadBalancer", "ingress"]).is_empty()
    {
        return Health::progressing("");
    }
    Health::healthy("")
}
