//! argoproj.io Application (app of apps): the child's own `status.health`, Progressing until
//! it has one. Argo CD dropped this built-in check in 1.8 and documents it as a Lua
//! customization; gitfleet ships it built in, so a parent waits for its children.

use gitfleet_model::HealthStatusCode;
use serde_json::Value;

use super::Health;
use crate::json::{at, str_at};

pub(super) fn assess(obj: &Value) -> Health {
    let Some(health) = at(obj, &["status", "health"]) else {
        return Health::progressing("");
    };
    let status = str_at(health, &["status"])
        .parse()
        .unwrap_or(HealthStatusCode::Unknown);
    Health::new(status, str_at(health, &["message"]))
}
