//! Health of live objects, one small check per kind behind [`assess`], with Argo CD's
//! (gitops-engine `pkg/health`) rules and messages, and Argo CD's aggregation order.
//!
//! Kinds without a check (ConfigMap, Secret, Namespace, custom resources...) have no health:
//! [`assess`] returns `None` and they do not count towards an app's health. Namespace is one
//! of them: Argo CD has no built-in Namespace check, and a terminating namespace is already
//! Progressing through the `deletionTimestamp` rule.

mod apiservice;
mod cronjob;
mod custom;
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

/// The health checks an app is judged by: the built-in ones, after the custom Lua checks
/// `argocd-cm` and the operator's script library add (see [`custom`]), each script run in
/// [`gitfleet_lua`]'s sandbox under `limits`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checks {
    customs: std::sync::Arc<custom::Customs>,
    limits: gitfleet_lua::Limits,
}

/// `argocd-cm`'s key for the Application health customization Argo CD documents since
/// 1.8 dropped its built-in Application check (a parent app no longer waits for its
/// children), and that script.
pub const APPLICATION_HEALTH_KEY: &str = "resource.customizations.health.argoproj.io_Application";
pub const APPLICATION_HEALTH_LUA: &str = r#"hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil then
  if obj.status.health ~= nil then
    hs.status = obj.status.health.status
    if obj.status.health.message ~= nil then
      hs.message = obj.status.health.message
    end
  end
end
return hs
"#;

/// A custom check that gave no verdict: the resource is Unknown with this as its message,
/// and the app shows it as a comparison error (as Argo CD's `setApplicationHealth`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "failed to get resource health for {kind:?} with name {name:?} in namespace {namespace:?}: {source}"
)]
pub struct HealthError {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub source: gitfleet_lua::LuaError,
}

impl Checks {
    /// The built-in checks and the documented Application customization.
    pub fn all() -> Self {
        let data = std::collections::BTreeMap::from([(
            APPLICATION_HEALTH_KEY.to_owned(),
            APPLICATION_HEALTH_LUA.to_owned(),
        )]);
        Self::from_settings(&data, &gitfleet_lua::Library::default()).0
    }

    /// The checks `argocd-cm`'s data and the script library add, and what did not read
    /// (each naming its key), so the rest still apply.
    pub fn from_settings(
        data: &std::collections::BTreeMap<String, String>,
        library: &gitfleet_lua::Library,
    ) -> (Self, Vec<String>) {
        let (customs, errors) = custom::Customs::read(data, library);
        (
            Checks {
                customs: std::sync::Arc::new(customs),
                limits: gitfleet_lua::Limits::default(),
            },
            errors,
        )
    }

    /// These checks, with each script run under `limits`.
    pub fn with_limits(mut self, limits: gitfleet_lua::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The health of a live object, or `None` when nothing judges its kind, or why its
    /// custom check gave no verdict.
    pub fn judge(&self, obj: &Value) -> Result<Option<Health>, Box<HealthError>> {
        if let Some(pending) = pending_deletion(obj) {
            return Ok(Some(pending));
        }
        let (group, _) = split_api_version(str_at(obj, &["apiVersion"]));
        let kind = str_at(obj, &["kind"]);
        let Some(script) = self.customs.find(group, kind) else {
            return Ok(check_for(group, kind).map(|check| check(obj)));
        };
        // A script sees a Secret's values masked: what it returns (its message, an error
        // it raises) reaches the app's status.
        let masked;
        let obj = if group.is_empty() && kind == "Secret" {
            let mut copy = obj.clone();
            crate::diff::hide_secret_data(&mut copy);
            masked = copy;
            &masked
        } else {
            obj
        };
        let verdict = script.health(obj, &self.limits).map_err(|source| {
            Box::new(HealthError {
                kind: kind.to_owned(),
                name: str_at(obj, &["metadata", "name"]).to_owned(),
                namespace: str_at(obj, &["metadata", "namespace"]).to_owned(),
                source,
            })
        })?;
        Ok(verdict.map(|v| {
            // The script's status is one of the six codes (checked by `gitfleet_lua`).
            let status = v.status.parse().unwrap_or(HealthStatusCode::Unknown);
            Health::new(status, v.message)
        }))
    }

    /// [`Checks::judge`], a failed custom check read as Unknown with its error.
    pub fn assess(&self, obj: &Value) -> Option<Health> {
        self.judge(obj).unwrap_or_else(|err| Some(err.health()))
    }
}

impl HealthError {
    /// The resource's health while its check fails: Unknown, saying why.
    pub fn health(&self) -> Health {
        Health::new(HealthStatusCode::Unknown, self.to_string())
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

    fn settings(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn checks(pairs: &[(&str, &str)]) -> Checks {
        let (checks, errors) =
            Checks::from_settings(&settings(pairs), &gitfleet_lua::Library::default());
        assert!(errors.is_empty(), "{errors:?}");
        checks
    }

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
        // The documented customization, as the split key or in the legacy map.
        let documented = checks(&[(APPLICATION_HEALTH_KEY, APPLICATION_HEALTH_LUA)]);
        let h = documented.assess(&child).unwrap();
        assert_eq!((h.status, h.message.as_str()), (Degraded, "pod crashed"));
        assert_eq!(Checks::all().assess(&child), Some(h.clone()));
        let legacy = format!(
            "argoproj.io/Application:\n  health.lua: |\n{}",
            APPLICATION_HEALTH_LUA
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        );
        let legacy = checks(&[("resource.customizations", legacy.as_str())]);
        assert_eq!(legacy.assess(&child), Some(h));
        // The script itself runs: a different one gives its own verdict.
        let own = checks(&[(
            APPLICATION_HEALTH_KEY,
            "hs = {}\nhs.status = \"Progressing\"\nreturn hs\n",
        )]);
        assert_eq!(own.assess(&child).unwrap().status, Progressing);
        // Other kinds keep their checks either way.
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "status": {"phase": "Running"}});
        assert_eq!(documented.assess(&pod), assess(&pod));
    }

    #[test]
    fn custom_checks_are_found_as_argo_cd_finds_them() {
        let certificate = serde_json::json!({"apiVersion": "cert-manager.io/v1",
            "kind": "Certificate", "metadata": {"name": "c", "namespace": "n"}});
        let bucket = serde_json::json!({"apiVersion": "s3.aws.crossplane.io/v1beta1",
            "kind": "Bucket", "metadata": {"name": "b"}});
        let service = serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}});
        let says = |status: &str| {
            format!("return {{status = \"{status}\", message = \"{status} says so\"}}")
        };
        let dir = tempfile::tempdir().unwrap();
        for (path, status) in [
            ("cert-manager.io/Certificate", "Suspended"),
            ("_.crossplane.io/_", "Suspended"),
            ("_.aws.crossplane.io/Bucket", "Progressing"),
        ] {
            let d = dir.path().join(path);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("health.lua"), says(status)).unwrap();
        }
        let library = gitfleet_lua::Library::load(dir.path()).unwrap();
        let status = |data: &[(&str, &str)], obj: &Value| {
            let (checks, errors) = Checks::from_settings(&settings(data), &library);
            assert!(errors.is_empty(), "{errors:?}");
            checks.assess(obj).map(|h| h.status)
        };
        // The library alone: exact directory, then the first wildcard directory in order.
        assert_eq!(status(&[], &certificate), Some(Suspended));
        assert_eq!(status(&[], &bucket), Some(Progressing));
        // argocd-cm comes first: its exact key, then its wildcard keys.
        let degraded = says("Degraded");
        let healthy = says("Healthy");
        let cm = [
            (
                "resource.customizations.health.cert-manager.io_Certificate",
                degraded.as_str(),
            ),
            (
                "resource.customizations.health.*.crossplane.io_*",
                healthy.as_str(),
            ),
        ];
        assert_eq!(status(&cm, &certificate), Some(Degraded));
        assert_eq!(status(&cm, &bucket), Some(Healthy));
        // A core kind by its bare name, before its built-in check.
        assert_eq!(status(&[], &service), Some(Healthy));
        assert_eq!(
            status(
                &[("resource.customizations.health.Service", degraded.as_str())],
                &service
            ),
            Some(Degraded)
        );
        // The split key wins over the legacy map's entry for the same kind.
        let legacy = "cert-manager.io/Certificate:\n  health.lua: return {status = 'Missing'}\n";
        assert_eq!(
            status(&[("resource.customizations", legacy)], &certificate),
            Some(Missing)
        );
        assert_eq!(
            status(&[("resource.customizations", legacy), cm[0]], &certificate),
            Some(Degraded)
        );
        // A bad key is named and the rest still apply.
        let (checks, errors) = Checks::from_settings(
            &settings(&[
                ("resource.customizations.health.a_b_c", "return nil"),
                cm[0],
            ]),
            &library,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("health.a_b_c"), "{errors:?}");
        assert_eq!(checks.assess(&certificate).unwrap().status, Degraded);
    }

    #[test]
    fn a_failing_custom_check_is_unknown_with_the_script_named() {
        let obj = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "n"}});
        let key = "resource.customizations.health.example.com_Widget";
        let limits = gitfleet_lua::Limits {
            timeout: std::time::Duration::from_millis(100),
            memory_bytes: 4 << 20,
        };
        for (script, expected) in [
            ("hs = {", "syntax error"),
            ("while true do end", "time limit"),
            (
                "local t = {}\nwhile true do t[#t + 1] = {} end",
                "memory limit",
            ),
            ("return {status = 'Great'}", "\"Great\""),
            ("error('no idea')", "no idea"),
        ] {
            let checks = checks(&[(key, script)]).with_limits(limits);
            let err = checks.judge(&obj).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with("failed to get resource health for \"Widget\" with name \"w\" in namespace \"n\": Lua script resource.customizations.health.example.com_Widget")
                    && text.contains(expected),
                "{script}: {text}"
            );
            let h = checks.assess(&obj).unwrap();
            assert_eq!((h.status, h.message), (Unknown, text));
        }
        // A Secret's values never reach a script (so neither its message nor its errors).
        let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n"}, "data": {"password": "aHVudGVyMg=="}});
        let leaky = checks(&[(
            "resource.customizations.health.Secret",
            "return {status = 'Healthy', message = obj.data.password}",
        )]);
        assert_eq!(leaky.assess(&secret).unwrap().message, "++++++++");
        let raising = checks(&[(
            "resource.customizations.health.Secret",
            "error(obj.data.password)",
        )]);
        assert!(
            !raising
                .assess(&secret)
                .unwrap()
                .message
                .contains("aHVudGVyMg==")
        );
        // Being deleted comes first, as for built-in kinds.
        let mut deleting = obj.clone();
        deleting["metadata"]["deletionTimestamp"] = serde_json::json!("2026-01-01T00:00:00Z");
        let checks = checks(&[(key, "error('not reached')")]);
        assert_eq!(
            checks.judge(&deleting).unwrap().unwrap().status,
            Progressing
        );
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
