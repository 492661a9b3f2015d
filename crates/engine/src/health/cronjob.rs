//! CronJob: Argo CD's built-in `batch/CronJob/health.lua`, in Rust. A suspended CronJob is
//! Healthy (Argo CD's choice, argo-cd#24428); one whose last run ended without success
//! (`lastSuccessfulTime` before `lastScheduleTime`, no job active) is Degraded; no status
//! yet is Progressing; everything else is Healthy with the script's messages.

use serde_json::Value;

use super::Health;
use crate::json::{at, str_at};

pub(super) fn assess(obj: &Value) -> Health {
    if at(obj, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true) {
        return Health::healthy("CronJob is Suspended");
    }
    let Some(status) = obj.get("status") else {
        return Health::progressing("Waiting for CronJob");
    };
    let last_schedule = str_at(status, &["lastScheduleTime"]);
    if last_schedule.is_empty() {
        return Health::healthy("CronJob has not been scheduled yet");
    }
    let last_success = str_at(status, &["lastSuccessfulTime"]);
    if last_success.is_empty() {
        return Health::healthy("The CronJob never completed successfully. It may not be healthy");
    }
    let active = status
        .get("active")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if active {
        return Health::healthy(
            "The job is running. Its last execution may not have been successful",
        );
    }
    // RFC 3339 times of one form compare as strings, as the Lua script compares them.
    if last_success < last_schedule {
        return Health::degraded("CronJob has not completed its last execution successfully");
    }
    Health::healthy("CronJob has completed its last execution successfully")
}
