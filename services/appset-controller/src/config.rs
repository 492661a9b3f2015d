//! The ApplicationSet controller's settings.

use std::time::Duration;

use gitfleet_bus::MembershipConfig;

#[derive(Debug, Clone)]
pub struct Config {
    /// Unique among live controllers (a pod name).
    pub member_id: String,
    pub member_ttl: Duration,
    pub lease_ttl: Duration,
    /// A set with a Git generator is generated again this often even when no commit
    /// was announced (Argo CD's default `requeueAfterSeconds`: 3 minutes).
    pub requeue_interval: Duration,
    /// A set whose generation ended in an error (a repository not reachable, a project
    /// not there yet) is generated again after this.
    pub error_retry: Duration,
    /// Git and diff worker questions.
    pub request_timeout: Duration,
    /// A cascade delete of an app the set no longer generates may take this long.
    pub delete_timeout: Duration,
    /// The namespace gitfleet's Applications live in (Argo CD's `argocd`): a generated
    /// app may always live there.
    pub control_plane_namespace: String,
}

impl Config {
    pub fn new(member_id: impl Into<String>) -> Self {
        Config {
            member_id: member_id.into(),
            member_ttl: MembershipConfig::DEFAULT_TTL,
            lease_ttl: MembershipConfig::DEFAULT_TTL,
            requeue_interval: Duration::from_secs(180),
            error_retry: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            delete_timeout: Duration::from_secs(600),
            control_plane_namespace: "argocd".to_owned(),
        }
    }
}
