//! How live resources are tied to their app: the `argocd.argoproj.io/tracking-id`
//! annotation and the `app.kubernetes.io/instance` label, built from the app's instance
//! name.

use super::Application;

/// Annotation that marks a live resource as belonging to an app (Argo CD's default
/// tracking method); value from [`Application::tracking_id`].
pub const TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// Label used by the `label` tracking method; value from [`Application::instance_label_value`].
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// The parts of an `argocd.argoproj.io/tracking-id` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackingId {
    /// App instance name: `<app>` or `<namespace>_<app>`.
    pub app: String,
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl TrackingId {
    /// Parses `<app>:<group>/<kind>:<namespace>/<name>`; `None` if malformed.
    pub fn parse(value: &str) -> Option<Self> {
        let (app, rest) = value.split_once(':')?;
        let (gk, nn) = rest.split_once(':')?;
        let (group, kind) = gk.split_once('/')?;
        let (namespace, name) = nn.split_once('/')?;
        if app.is_empty() || kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self {
            app: app.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for TrackingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}/{}:{}/{}",
            self.app, self.group, self.kind, self.namespace, self.name
        )
    }
}

impl Application {
    /// The app's instance name: its name, or `<namespace>_<name>` when it lives in a
    /// namespace other than the control plane's (Argo CD's `InstanceName`).
    pub fn instance_name(&self, control_plane_namespace: &str) -> String {
        let ns = &self.metadata.namespace;
        if ns.is_empty() || ns == control_plane_namespace {
            self.metadata.name.clone()
        } else {
            format!("{ns}_{}", self.metadata.name)
        }
    }

    /// The `argocd.argoproj.io/tracking-id` value for one of this app's resources:
    /// `<app>:<group>/<kind>:<namespace>/<name>`. The core group is `""`, and
    /// cluster-scoped resources have `""` as namespace.
    pub fn tracking_id(
        &self,
        control_plane_namespace: &str,
        group: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> String {
        format!(
            "{}:{group}/{kind}:{namespace}/{name}",
            self.instance_name(control_plane_namespace)
        )
    }

    /// The `app.kubernetes.io/instance` label value (label tracking): the instance name
    /// truncated to 63 characters.
    pub fn instance_label_value(&self, control_plane_namespace: &str) -> String {
        self.instance_name(control_plane_namespace)
            .chars()
            .take(63)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, namespace: &str) -> Application {
        let mut a = Application::default();
        a.metadata.name = name.into();
        a.metadata.namespace = namespace.into();
        a
    }

    #[test]
    fn tracking_ids() {
        let guestbook = app("guestbook", "argocd");
        assert_eq!(
            guestbook.tracking_id("argocd", "", "Service", "default", "guestbook-ui"),
            "guestbook:/Service:default/guestbook-ui"
        );
        assert_eq!(
            app("web-app", "").tracking_id(
                "argocd",
                "apps",
                "Deployment",
                "production",
                "web-server"
            ),
            "web-app:apps/Deployment:production/web-server"
        );
        assert_eq!(
            app("web", "team-a").tracking_id(
                "argocd",
                "rbac.authorization.k8s.io",
                "ClusterRole",
                "",
                "reader"
            ),
            "team-a_web:rbac.authorization.k8s.io/ClusterRole:/reader"
        );
        let parsed = TrackingId::parse("team-a_web:apps/Deployment:prod/web").unwrap();
        assert_eq!(parsed.app, "team-a_web");
        assert_eq!(parsed.group, "apps");
        assert_eq!(parsed.namespace, "prod");
        assert_eq!(parsed.to_string(), "team-a_web:apps/Deployment:prod/web");
        assert_eq!(
            TrackingId::parse("x:/Namespace:/prod").unwrap().namespace,
            ""
        );
        assert!(TrackingId::parse("garbage").is_none());
        let long = app(&"a".repeat(70), "");
        assert_eq!(long.instance_label_value("argocd").len(), 63);
    }
}
