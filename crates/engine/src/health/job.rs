//! Job: judged by its Failed, Complete and Suspended conditions.
//!
//! Differs from Argo CD in one corner: a `Suspended=False` condition (a resumed job) is
//! Progressing here; Argo CD counts it as completion and reports Healthy while it runs.

use serde_json::Value;

use super::Health;
use crate::json::{condition, str_at};

pub(super) fn assess(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Failed") {
        return Health::degraded(str_at(c, &["message"]));
    }
    if let Some(c) = condition(obj, "Suspended").filter(|c| str_at(c, &["status"]) == "True") {
        return Health::new(
            gitfleet_model::HealthStatusCode::Suspended,
            str_at(c, &["message"]),
        );
    }
    if let Some(c) = condition(obj, "Complete") {
        return Health::healthy(str_at(c, &["message"]));
    }
    Health::progressing("")
}
