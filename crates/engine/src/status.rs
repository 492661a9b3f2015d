//! An app's sync status and health from its resources' (Argo CD's `status.resources`
//! entries: per-resource sync status and health, hook and requires-pruning flags).

use gitfleet_model::{HealthStatusCode, ResourceStatus, SyncStatusCode};

use crate::health::is_worse;

/// OutOfSync if any resource is OutOfSync or requires pruning; else Unknown if any
/// resource's status is Unknown; else Synced. Hooks do not count.
pub fn app_sync_status(resources: &[ResourceStatus]) -> SyncStatusCode {
    let counted = resources.iter().filter(|r| !r.hook);
    let mut code = SyncStatusCode::Synced;
    for r in counted {
        match (r.status, r.requires_pruning) {
            (Some(SyncStatusCode::OutOfSync), _) | (_, true) => return SyncStatusCode::OutOfSync,
            (Some(SyncStatusCode::Unknown), _) => code = SyncStatusCode::Unknown,
            _ => {}
        }
    }
    code
}

/// The app's health, as Argo CD 3.x aggregates it: the worst resource health, where
/// - hooks and resources without a health check (`health: None`) do not count;
/// - a resource that does not exist live (health Missing) does not count (its OutOfSync
///   status already says so), but an app whose every non-hook resource is missing is
///   Missing;
/// - a child Application that is Missing or Unknown does not count.
///
/// Callers record Missing for desired resources absent from the cluster
/// ([`crate::health::assess_or_missing`]).
pub fn app_health(resources: &[ResourceStatus]) -> HealthStatusCode {
    let counted: Vec<&ResourceStatus> = resources.iter().filter(|r| !r.hook).collect();
    let mut worst = HealthStatusCode::Healthy;
    let mut any_live = false;
    for r in &counted {
        let code = r.health.as_ref().map(|h| h.status);
        if code != Some(HealthStatusCode::Missing) {
            any_live = true;
        }
        let Some(code) = code else { continue };
        if code == HealthStatusCode::Missing {
            continue;
        }
        let child_app = r.group == "argoproj.io" && r.kind == "Application";
        if child_app && code == HealthStatusCode::Unknown {
            continue;
        }
        if is_worse(worst, code) {
            worst = code;
        }
    }
    if !counted.is_empty() && !any_live && is_worse(worst, HealthStatusCode::Missing) {
        worst = HealthStatusCode::Missing;
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatusCode::*;
    use gitfleet_model::HealthStatus;

    fn res(kind: &str, sync: SyncStatusCode, health: Option<HealthStatusCode>) -> ResourceStatus {
        ResourceStatus {
            group: if kind == "Application" {
                "argoproj.io".into()
            } else {
                String::new()
            },
            kind: kind.into(),
            name: "x".into(),
            status: Some(sync),
            health: health.map(|status| HealthStatus {
                status,
                ..HealthStatus::default()
            }),
            ..ResourceStatus::default()
        }
    }

    #[test]
    fn sync_status() {
        use SyncStatusCode::*;
        assert_eq!(app_sync_status(&[]), Synced);
        assert_eq!(
            app_sync_status(&[res("Pod", Synced, None), res("Pod", OutOfSync, None)]),
            OutOfSync
        );
        assert_eq!(
            app_sync_status(&[res("Pod", Synced, None), res("Pod", Unknown, None)]),
            Unknown
        );
        let mut prune = res("ConfigMap", Synced, None);
        prune.requires_pruning = true;
        assert_eq!(app_sync_status(&[prune]), OutOfSync);
        let mut hook = res("Job", OutOfSync, None);
        hook.hook = true;
        assert_eq!(app_sync_status(&[hook]), Synced);
    }

    #[test]
    fn health_aggregation_like_argo_3() {
        let s = SyncStatusCode::Synced;
        assert_eq!(app_health(&[]), Healthy);
        assert_eq!(
            app_health(&[
                res("Service", s, Some(Healthy)),
                res("Deployment", s, Some(Progressing))
            ]),
            Progressing
        );
        // One missing resource among live ones: not counted.
        assert_eq!(
            app_health(&[
                res("Service", s, Some(Healthy)),
                res("Deployment", s, Some(Missing))
            ]),
            Healthy
        );
        // Nothing live at all: Missing.
        assert_eq!(
            app_health(&[
                res("ConfigMap", s, Some(Missing)),
                res("Deployment", s, Some(Missing))
            ]),
            Missing
        );
        // ... unless something worse is known.
        assert_eq!(
            app_health(&[res("ConfigMap", s, None), res("Pod", s, Some(Degraded))]),
            Degraded
        );
        assert_eq!(
            app_health(&[
                res("Application", s, Some(Unknown)),
                res("Pod", s, Some(Suspended))
            ]),
            Suspended
        );
        assert_eq!(
            app_health(&[res("Pod", s, Some(Unknown)), res("Pod", s, Some(Degraded))]),
            Unknown
        );
        let mut hook = res("Job", s, Some(Degraded));
        hook.hook = true;
        assert_eq!(app_health(&[hook, res("Pod", s, Some(Healthy))]), Healthy);
    }
}
