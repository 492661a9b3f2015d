//! Health of live objects, one small check per kind behind [`assess`], with Argo CD's
//! (gitops-engine `pkg/health`) rules and messages, and Argo CD's aggregation order.
//!
//! Kinds without a check (ConfigMap, Secret, Namespace, custom resources...) have no health:
//! [`assess`] returns `None` and they do not count towards an app's health. Namespace is one
//! of them: Argo CD has no built-in Namespace check, and a terminating namespace is already
//! Progressing through the `deletionTimestamp` rule.

mod apiservice;
mod application;
mod cronjob;
mod daemonset;
mod deployment;
mod hpa;
mod ingress;
mod job;
mod pod;
mod pvc;
mod replicaset;
mod service;
mod statefulset;

use gitfleet_model::HealthStatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::{array_at, at, str_at};
use crate::resource::split_api_version;

/// A health verdict: the code and Argo CD's message for it (often empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatusCode,
    pub message: String,
}

impl Health {
    pub fn new(status: HealthStatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn healthy(message: impl Into<String>) -> Self {
        Self::new(HealthStatusCode::Healthy, message)
    }

    pub(crate) fn progressing(message: impl Into<String>) -> Self {
        Self::new(HealthStatusCode::Progressing, message)
    }

    pub(crate) fn degraded(message: impl Into<String>) -> Self {
        Self::new(HealthStatusCode::Degraded, message)
    }
}

/// Finalizer Argo CD puts on hooks so they outlive their deletion until their result is read;
/// a hook held by it is judged on its status, not as "pending deletion".
pub const HOOK_FINALIZER: &str = "argocd.argoproj.io/hook-finalizer";

type Check = fn(&Value) -> Health;

/// The health of a live object, or `None` when its kind has no health check.
///
/// Any object being deleted (`metadata.deletionTimestamp` set) is Progressing "Pending
/// deletion", whatever its kind, unless it is a hook held by [`HOOK_FINALIZER`].
pub fn assess(obj: &Value) -> Option<Health> {
    if let Some(pending) = pending_deletion(obj) {
        return Some(pending);
    }
    let (group, _) = split_api_version(str_at(obj, &["apiVersion"]));
    check_for(group, str_at(obj, &["kind"])).map(|check| check(obj))
}

fn pending_deletion(obj: &Value) -> Option<Health> {
    (at(obj, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null())
        && !array_at(obj, &["metadata", "finalizers"])
            .iter()
            .any(|f| f.as_str() == Some(HOOK_FINALIZER)))
    .then(|| Health::progressing("Pending deletion"))
}

/// Like [`assess`], with a desired object that does not exist live reported Missing (for
/// every kind, as Argo CD records it per resource).
pub fn assess_or_missing(live: Option<&Value>) -> Option<Health> {
    match live {
        Some(obj) => assess(obj),
        None => Some(Health::new(HealthStatusCode::Missing, "")),
    }
}

/// Whether objects of this group and kind have a built-in health check.
pub fn has_check(group: &str, kind: &str) -> bool {
    check_for(group, kind).is_some()
}

/// The checks `argocd-cm` turns on beyond the built-in ones. Argo CD dropped its
/// Application check in 1.8 (a parent app no longer waits for its children) and documents
/// it as the Lua customization `resource.customizations.health.argoproj.io_Application`;
/// gitfleet runs that documented script's logic built in when the entry is present (any
/// script there counts as that one: gitfleet runs no Lua).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks {
    /// argoproj.io Application: the child's own `status.health`.
    pub application: bool,
}

/// `argocd-cm`'s key for the Application health customization, and the older form: one
/// `resource.customizations` YAML keyed by `group/Kind` with a `health.lua` entry.
pub const APPLICATION_HEALTH_KEY: &str = "resource.customizations.health.argoproj.io_Application";
const CUSTOMIZATIONS_KEY: &str = "resource.customizations";

impl Checks {
    /// Every optional check on.
    pub fn all() -> Self {
        Checks { application: true }
    }

    /// What `argocd-cm`'s data turns on.
    pub fn from_settings(data: &std::collections::BTreeMap<String, String>) -> Self {
        let dedicated = data
            .get(APPLICATION_HEALTH_KEY)
            .is_some_and(|script| !script.trim().is_empty());
        let legacy = data.get(CUSTOMIZATIONS_KEY).is_some_and(|text| {
            serde_yaml_ng::from_str::<Value>(text).is_ok_and(|v| {
                at(&v, &["argoproj.io/Application", "health.lua"])
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.trim().is_empty())
            })
        });
        Checks {
            application: dedicated || legacy,
        }
    }

    /// [`assess`], with these checks added.
    pub fn assess(&self, obj: &Value) -> Option<Health> {
        let (group, _) = split_api_version(str_at(obj, &["apiVersion"]));
        if self.application && group == "argoproj.io" && str_at(obj, &["kind"]) == "Application" {
            if let Some(pending) = pending_deletion(obj) {
                return Some(pending);
            }
            return Some(application::assess(obj));
        }
        assess(obj)
    }

    /// [`assess_or_missing`], with these checks added.
    pub fn assess_or_missing(&self, live: Option<&Value>) -> Option<Health> {
        match live {
            Some(obj) => self.assess(obj),
            None => Some(Health::new(HealthStatusCode::Missing, "")),
        }
    }
}

fn check_for(group: &str, kind: &str) -> Option<Check> {
    Some(match (group, kind) {
        ("apps", "Deployment") => deployment::assess,
        ("apps", "StatefulSet") => statefulset::assess,
        ("apps", "ReplicaSet") => replicaset::assess,
        ("apps", "DaemonSet") => daemonset::assess,
        ("networking.k8s.io" | "extensions", "Ingress") => ingress::assess,
        ("apiregistration.k8s.io", "APIService") => apiservice::assess,
        ("", "Service") => service::assess,
        ("", "PersistentVolumeClaim") => pvc::assess,
        ("", "Pod") => pod::assess,
        ("batch", "Job") => job::assess,
        ("batch", "CronJob") => cronjob::assess,
        ("autoscaling", "HorizontalPodAutoscaler") => hpa::assess,
        _ => return None,
    })
}

/// Argo CD's order from best to worst (gitops-engine `healthOrder`): Healthy, Suspended,
/// Progressing, Missing, Degraded, Unknown.
fn rank(code: HealthStatusCode) -> u8 {
    match code {
        HealthStatusCode::Healthy => 0,
        HealthStatusCode::Suspended => 1,
        HealthStatusCode::Progressing => 2,
        HealthStatusCode::Missing => 3,
        HealthStatusCode::Degraded => 4,
        HealthStatusCode::Unknown => 5,
    }
}

/// Argo CD's `IsWorse(current, new)`.
pub fn is_worse(current: HealthStatusCode, new: HealthStatusCode) -> bool {
    rank(new) > rank(current)
}

/// The worst of the codes; Healthy for none (an app with nothing to judge is Healthy).
pub fn aggregate(codes: impl IntoIterator<Item = HealthStatusCode>) -> HealthStatusCode {
    codes
        .into_iter()
        .fold(HealthStatusCode::Healthy, |worst, c| {
            if is_worse(worst, c) { c } else { worst }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatusCode::*;

    #[test]
    fn application_health_is_off_unless_argocd_cm_customizes_it() {
        let child = serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "child", "namespace": "argocd"},
            "status": {"health": {"status": "Degraded", "message": "pod crashed"}},
        });
        // As Argo CD since 1.8: no built-in check.
        assert_eq!(assess(&child), None);
        assert_eq!(Checks::default().assess(&child), None);
        let script = "hs = {}\nhs.status = \"Progressing\"\nreturn hs\n";
        let dedicated = std::collections::BTreeMap::from([(
            APPLICATION_HEALTH_KEY.to_owned(),
            script.to_owned(),
        )]);
        let checks = Checks::from_settings(&dedicated);
        assert!(checks.application);
        let h = checks.assess(&child).unwrap();
        assert_eq!((h.status, h.message.as_str()), (Degraded, "pod crashed"));
        let legacy = std::collections::BTreeMap::from([(
            "resource.customizations".to_owned(),
            "argoproj.io/Application:\n  health.lua: |\n    return {}\n".to_owned(),
        )]);
        assert!(Checks::from_settings(&legacy).application);
        let other = std::collections::BTreeMap::from([(
            "resource.customizations".to_owned(),
            "apps/Deployment:\n  health.lua: |\n    return {}\n".to_owned(),
        )]);
        assert!(!Checks::from_settings(&other).application);
        assert!(!Checks::from_settings(&Default::default()).application);
        // Other kinds keep their checks either way.
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "status": {"phase": "Running"}});
        assert_eq!(checks.assess(&pod), assess(&pod));
    }

    #[test]
    fn aggregate_takes_the_worst_in_argo_order() {
        let order = [Healthy, Suspended, Progressing, Missing, Degraded, Unknown];
        for (i, &a) in order.iter().enumerate() {
            for (j, &b) in order.iter().enumerate() {
                assert_eq!(is_worse(a, b), j > i, "{a} vs {b}");
                assert_eq!(aggregate([a, b]), order[i.max(j)]);
            }
        }
        assert_eq!(aggregate([]), Healthy);
    }

    #[test]
    fn missing_live_is_missing_and_unknown_kinds_have_no_health() {
        assert_eq!(assess_or_missing(None).unwrap().status, Missing);
        let cm =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(assess(&cm), None);
        assert!(has_check("apps", "Deployment"));
        assert!(!has_check("", "Namespace"));
    }
}
