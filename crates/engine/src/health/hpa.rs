//! HorizontalPodAutoscaler: conditions in order; a failure to read scale or metrics is
//! Degraded, AbleToScale or ScalingLimited True is Healthy. `autoscaling/v1` keeps its
//! conditions as JSON in an annotation.

use serde_json::Value;

use super::Health;
use crate::json::{annotation, array_at, str_at};

const V1_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const WAITING: &str = "Waiting to Autoscale";

const DEGRADED: [(&str, &str); 4] = [
    ("AbleToScale", "FailedGetScale"),
    ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"),
    ("ScalingActive", "InvalidSelector"),
];

pub(super) fn assess(obj: &Value) -> Health {
    let conditions: Vec<Value> = if str_at(obj, &["apiVersion"]) == "autoscaling/v1" {
        let Some(text) = annotation(obj, V1_CONDITIONS) else {
            return Health::progressing(WAITING);
        };
        match serde_json::from_str::<Vec<Value>>(text) {
            Ok(c) => c,
            Err(e) => {
                return Health::new(
                    gitfleet_model::HealthStatusCode::Unknown,
                    format!("failed to convert conditions annotation to typed: {e}"),
                );
            }
        }
    } else {
        array_at(obj, &["status", "conditions"]).to_vec()
    };
    for c in &conditions {
        let (type_, reason) = (str_at(c, &["type"]), str_at(c, &["reason"]));
        if DEGRADED.contains(&(type_, reason)) {
            return Health::degraded(str_at(c, &["message"]));
        }
        if matches!(type_, "AbleToScale" | "ScalingLimited") && str_at(c, &["status"]) == "True" {
            return Health::healthy(str_at(c, &["message"]));
        }
    }
    Health::progressing(WAITING)
}
