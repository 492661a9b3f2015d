//! Pod: container errors for long-running pods, then the phase; pods that run to
//! completion (restartPolicy Never/OnFailure, typically hooks) stay Progressing while running
//! so a hook is not failed early by a transient pull error.

use serde_json::Value;

use super::Health;
use crate::json::{annotation, array_at, at, condition, int_or_zero, str_at};

/// Makes a running pod with restartPolicy Never/OnFailure be judged like an Always pod.
pub const IGNORE_RESTART_POLICY: &str = "argocd.argoproj.io/ignore-restart-policy";

pub(super) fn assess(obj: &Value) -> Health {
    // The API server defaults restartPolicy to Always.
    let policy = match str_at(obj, &["spec", "restartPolicy"]) {
        "" => "Always",
        p => p,
    };
    let statuses = array_at(obj, &["status", "containerStatuses"]);
    let message = str_at(obj, &["status", "message"]);
    if policy == "Always" {
        let waiting_errors: Vec<&str> = statuses
            .iter()
            .filter_map(|c| at(c, &["state", "waiting"]))
            .filter(|w| {
                let r = str_at(w, &["reason"]);
                r.starts_with("Err") || r.ends_with("Error") || r.ends_with("BackOff")
            })
            .map(|w| str_at(w, &["message"]))
            .collect();
        if !waiting_errors.is_empty() {
            return Health::degraded(waiting_errors.join(", "));
        }
    }
    match str_at(obj, &["status", "phase"]) {
        "Pending" => Health::progressing(message),
        "Succeeded" => Health::healthy(message),
        "Failed" => {
            if !message.is_empty() {
                return Health::degraded(message);
            }
            let init = array_at(obj, &["status", "initContainerStatuses"]);
            let why = init.iter().chain(statuses).find_map(fail_message);
            Health::degraded(why.unwrap_or_default())
        }
        "Running" => {
            if policy != "Always" && annotation(obj, IGNORE_RESTART_POLICY).is_none() {
                return Health::progressing(message);
            }
            if condition(obj, "Ready").is_some_and(|c| str_at(c, &["status"]) == "True") {
                Health::healthy(message)
            } else if statuses
                .iter()
                .any(|c| at(c, &["lastState", "terminated"]).is_some())
            {
                Health::degraded(message)
            } else {
                Health::progressing(message)
            }
        }
        _ => Health::new(gitfleet_model::HealthStatusCode::Unknown, message),
    }
}

fn fail_message(ctr: &Value) -> Option<String> {
    let t = at(ctr, &["state", "terminated"])?;
    let msg = str_at(t, &["message"]);
    if !msg.is_empty() {
        return Some(msg.to_owned());
    }
    if str_at(t, &["reason"]) == "OOMKilled" {
        return Some("OOMKilled".to_owned());
    }
    let code = int_or_zero(t, &["exitCode"]);
    (code != 0).then(|| {
        format!(
            "container {:?} failed with exit code {code}",
            str_at(ctr, &["name"])
        )
    })
}
