//! argoproj.io Application (app of apps): the child's own `status.health`, Progressing until
//! it has one: the logic of the Lua customization Argo CD's docs give since 1.8 dropped
//! the built-in check. Off unless `argocd-cm` has that customization ([`super::Checks`]).

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
