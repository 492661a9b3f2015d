//! APIService: its Available condition.

use serde_json::Value;

use super::Health;
use crate::json::{condition, str_at};

pub(super) fn assess(obj: &Value) -> Health {
    match condition(obj, "Available") {
        Some(c) => {
            let message = format!("{}: {}", str_at(c, &["reason"]), str_at(c, &["message"]));
            if str_at(c, &["status"]) == "True" {
                Health::healthy(message)
            } else {
                Health::progressing(message)
            }
        }
        None => Health::progressing("Waiting to be processed"),
    }
}
