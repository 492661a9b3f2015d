//! The diff worker's decisions that need no I/O: does a commit concern an app, and
//! whether automated sync may start an operation now.

use std::time::Duration;

use gitfleet_messages::Operation;
use gitfleet_model::{
    Application, ApplicationSource, OperationPhase, ResourceStatus, SyncStatusCode,
};

/// Argo CD's annotation naming the paths (`;`-separated, relative to the source path or
/// absolute from the repository root) whose changes require re-rendering the app.
pub const MANIFEST_GENERATE_PATHS: &str = "argocd.argoproj.io/manifest-generate-paths";

/// Whether a commit changing `changed` (repo-relative paths; `None` = unknown) must
/// re-render the app: it touches a path the annotation names, or else what the last
/// render read (`inputs`: the Kustomize bases and components too), or else, before any
/// render, the source path.
pub fn touches(
    app: &Application,
    source: &ApplicationSource,
    inputs: Option<&[String]>,
    changed: Option<&[String]>,
) -> bool {
    let Some(changed) = changed else {
        return true;
    };
    let base = clean(&source.path);
    let read = || match inputs {
        Some(inputs) if !inputs.is_empty() => inputs.iter().map(|p| clean(p)).collect(),
        _ => vec![base.clone()],
    };
    let watched: Vec<String> = match app.metadata.annotations.get(MANIFEST_GENERATE_PATHS) {
        Some(list) => list
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.strip_prefix('/') {
                Some(abs) => clean(abs),
                None => clean(&format!("{base}/{p}")),
            })
            .collect(),
        None => read(),
    };
    changed.iter().any(|c| {
        let c = clean(c);
        watched
            .iter()
            .any(|w| w.is_empty() || c == *w || c.starts_with(&format!("{w}/")))
    })
}

/// `a/./b/../c/` → `a/c`; the repository root is `""`.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// A repository URL the way the diff worker compares them (scheme and host case, a
/// trailing `/` and `.git` do not matter): apps are found by it when their repository
/// moves.
pub fn repo_key(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    let u = u.strip_suffix(".git").unwrap_or(u);
    match u.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            format!("{}://{}/{path}", scheme.to_lowercase(), host.to_lowercase())
        }
        None => u.to_string(),
    }
}

/// Whether a dependency's status lets its dependents sync: Synced, Healthy and no
/// operation running; else what it is.
pub fn dependency_ready(status: &gitfleet_model::ApplicationStatus) -> Result<(), String> {
    let sync = status.sync.as_ref().map(|s| s.status);
    let health = status.health.as_ref().map(|h| h.status);
    let running = status
        .operation_state
        .as_ref()
        .is_some_and(|o| !o.phase.is_completed());
    if sync == Some(SyncStatusCode::Synced)
        && health == Some(gitfleet_model::HealthStatusCode::Healthy)
        && !running
    {
        return Ok(());
    }
    let show = |s: Option<String>| s.unwrap_or_else(|| "Unknown".to_owned());
    Err(format!(
        "{}/{}{}",
        show(sync.map(|s| s.to_string())),
        show(health.map(|h| h.to_string())),
        if running { ", operation running" } else { "" }
    ))
}

/// Why automated sync does not start an operation now, or `Ok` when it may.
///
/// Argo CD's rules: only OutOfSync apps; never while an operation runs; a revision whose
/// sync failed is not retried until the revision changes; a revision synced successfully
/// is re-synced for drift only with `selfHeal`; no sync that would delete every resource
/// unless `allowEmpty`; no sync whose only effect would be a prune that is not allowed.
pub fn auto_sync(
    app: &Application,
    sync: SyncStatusCode,
    revision: &str,
    resources: &[ResourceStatus],
    last_op: Option<&Operation>,
    desired_count: usize,
    self_heal_wait: Duration,
) -> Result<(), String> {
    let Some(policy) = app.spec.sync_policy.as_ref().filter(|p| p.is_automated()) else {
        return Err("automated sync is off".to_string());
    };
    // As in Argo CD: an app being deleted (cascade) is never synced again, or its
    // resources would come back behind the prune that removes them.
    if app.metadata.deletion_timestamp.is_some() {
        return Err("app is being deleted".to_string());
    }
    let automated = policy.automated.clone().unwrap_or_default();
    if sync != SyncStatusCode::OutOfSync {
        return Err(format!("app is {sync}"));
    }
    // A refused operation did nothing: the revision was never tried.
    if let Some(op) = last_op.filter(|op| !op.refused) {
        if !op.phase.is_completed() {
            return Err(format!("operation {} is {}", op.id, op.phase));
        }
        if op.revision == revision {
            match op.phase {
                OperationPhase::Succeeded if automated.self_heal => {
                    if !self_heal_wait.is_zero() {
                        return Err(format!(
                            "self-heal backoff: the next attempt in {:.1}s",
                            self_heal_wait.as_secs_f64()
                        ));
                    }
                }
                OperationPhase::Succeeded => {
                    return Err(format!(
                        "already synced to {revision}; drift is reported, not healed (selfHeal off)"
                    ));
                }
                _ => {
                    return Err(format!("failed previous sync attempt to {revision}"));
                }
            }
        }
    }
    if desired_count == 0 && !automated.allow_empty {
        return Err("sync would delete every resource (allowEmpty off)".to_string());
    }
    let only_prunes = resources
        .iter()
        .filter(|r| r.status == Some(SyncStatusCode::OutOfSync))
        .all(|r| r.requires_pruning);
    if only_prunes && !automated.prune {
        return Err("only pruning is needed and automated prune is off".to_string());
    }
    Ok(())
}

/// Argo CD's self-heal backoff between self-heal syncs of one revision in a row
/// (`--self-heal-backoff-timeout-seconds`, `-factor`, `-cap-seconds`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfHealBackoff {
    pub timeout: Duration,
    pub factor: u32,
    pub cap: Duration,
}

impl SelfHealBackoff {
    /// Argo CD's defaults: 2 s, times 3, at most 300 s.
    pub const ARGO_CD: SelfHealBackoff = SelfHealBackoff {
        timeout: Duration::from_secs(2),
        factor: 3,
        cap: Duration::from_secs(300),
    };

    /// The wait after `attempts` self-heals in a row: none after none, then `timeout`,
    /// `timeout * factor`, ... up to `cap`.
    pub fn delay(&self, attempts: i64) -> Duration {
        let Ok(steps) = u32::try_from(attempts - 1) else {
            return Duration::ZERO;
        };
        let grown = self
            .factor
            .checked_pow(steps)
            .and_then(|f| self.timeout.checked_mul(f))
            .unwrap_or(self.cap);
        grown.min(self.cap)
    }
}

/// The next self-heal of `revision` after `last_op`: how many in a row it would be, and
/// how long it must still wait (Argo CD's `selfHealRemainingBackoff`). A last operation
/// that is not a success at `revision` makes it the first, with no wait.
pub fn self_heal(
    last_op: Option<&Operation>,
    revision: &str,
    backoff: &SelfHealBackoff,
    now: chrono::DateTime<chrono::Utc>,
) -> (i64, Duration) {
    let Some(op) = last_op.filter(|op| {
        !op.refused && op.revision == revision && op.phase == OperationPhase::Succeeded
    }) else {
        return (0, Duration::ZERO);
    };
    let delay = backoff.delay(op.self_heal_attempts);
    let since = op
        .finished_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| (now - t.with_timezone(&chrono::Utc)).to_std().ok())
        .unwrap_or_default();
    (op.self_heal_attempts + 1, delay.saturating_sub(since))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfleet_model::{Automated, SyncPolicy};

    #[test]
    fn a_dependency_is_ready_synced_healthy_and_idle() {
        use gitfleet_model::{ApplicationStatus, HealthStatus, HealthStatusCode, SyncStatus};
        let status = |sync, health| ApplicationStatus {
            sync: Some(SyncStatus {
                status: sync,
                ..SyncStatus::default()
            }),
            health: Some(HealthStatus {
                status: health,
                ..HealthStatus::default()
            }),
            ..ApplicationStatus::default()
        };
        assert_eq!(
            dependency_ready(&status(SyncStatusCode::Synced, HealthStatusCode::Healthy)),
            Ok(())
        );
        assert_eq!(
            dependency_ready(&status(
                SyncStatusCode::Synced,
                HealthStatusCode::Progressing
            ))
            .unwrap_err(),
            "Synced/Progressing"
        );
        assert!(dependency_ready(&ApplicationStatus::default()).is_err());
    }

    fn app(path: &str, annotation: Option<&str>) -> (Application, ApplicationSource) {
        let mut app = Application::default();
        app.metadata.name = "a".into();
        if let Some(a) = annotation {
            app.metadata
                .annotations
                .insert(MANIFEST_GENERATE_PATHS.into(), a.into());
        }
        let source = ApplicationSource {
            path: path.into(),
            ..ApplicationSource::default()
        };
        (app, source)
    }

    #[test]
    fn changed_paths_against_app_paths() {
        let cases: &[(&str, Option<&str>, &[&str], bool)] = &[
            ("apps/web", None, &["apps/web/deploy.yaml"], true),
            ("apps/web", None, &["apps/web2/deploy.yaml"], false),
            ("apps/web", None, &["README.md"], false),
            ("./apps/web/", None, &["apps/web/a/b.yaml"], true),
            ("", None, &["anything"], true),
            (".", None, &["anything"], true),
            ("apps/web", Some("."), &["apps/web/x"], true),
            (
                "apps/web",
                Some("../shared;/charts/common"),
                &["apps/shared/x"],
                true,
            ),
            (
                "apps/web",
                Some("../shared;/charts/common"),
                &["charts/common/v.yaml"],
                true,
            ),
            (
                "apps/web",
                Some("../shared;/charts/common"),
                &["apps/web/x"],
                false,
            ),
        ];
        for (path, annotation, changed, want) in cases {
            let (app, source) = app(path, *annotation);
            let changed: Vec<String> = changed.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                touches(&app, &source, None, Some(&changed)),
                *want,
                "{path} {annotation:?} {changed:?}"
            );
        }
        let (app, source) = app("apps/web", None);
        assert!(touches(&app, &source, None, None));
    }

    #[test]
    fn what_the_last_render_read_counts_and_the_annotation_wins() {
        let inputs = [
            "apps/web/overlays/prod".to_string(),
            "apps/base".to_string(),
        ];
        let changed = |p: &str| vec![p.to_string()];
        let (app, source) = app("apps/web/overlays/prod", None);
        assert!(touches(
            &app,
            &source,
            Some(&inputs),
            Some(&changed("apps/base/d.yaml"))
        ));
        assert!(!touches(
            &app,
            &source,
            Some(&inputs),
            Some(&changed("apps/other/d.yaml"))
        ));
        // No render yet: the source path only.
        assert!(!touches(
            &app,
            &source,
            None,
            Some(&changed("apps/base/d.yaml"))
        ));
        assert!(!touches(
            &app,
            &source,
            Some(&[]),
            Some(&changed("apps/base/d.yaml"))
        ));
        let (annotated, source) = self::app("apps/web/overlays/prod", Some("."));
        assert!(!touches(
            &annotated,
            &source,
            Some(&inputs),
            Some(&changed("apps/base/d.yaml"))
        ));
    }

    #[test]
    fn repos_and_revisions() {
        assert_eq!(
            repo_key("https://GitHub.com/a/b.git"),
            repo_key("https://github.com/a/b/")
        );
        assert_ne!(
            repo_key("https://github.com/a/b"),
            repo_key("https://github.com/a/c")
        );
    }

    #[test]
    fn a_refused_operation_holds_back_no_automated_sync() {
        let mut app = Application::default();
        app.spec.sync_policy = Some(gitfleet_model::SyncPolicy {
            automated: Some(Default::default()),
            ..Default::default()
        });
        let drifted = [ResourceStatus {
            status: Some(SyncStatusCode::OutOfSync),
            ..ResourceStatus::default()
        }];
        let failed = op("c1", OperationPhase::Error);
        assert!(
            auto_sync(
                &app,
                SyncStatusCode::OutOfSync,
                "c1",
                &drifted,
                Some(&failed),
                1,
                Duration::ZERO
            )
            .is_err(),
            "a failed attempt at c1 is not repeated"
        );
        let refused = Operation {
            refused: true,
            ..failed
        };
        assert_eq!(
            auto_sync(
                &app,
                SyncStatusCode::OutOfSync,
                "c1",
                &drifted,
                Some(&refused),
                1,
                Duration::ZERO
            ),
            Ok(())
        );
    }

    #[test]
    fn self_heals_in_a_row_wait_longer_each_time() {
        let b = SelfHealBackoff::ARGO_CD;
        let secs = |n| b.delay(n).as_secs();
        assert_eq!(
            [secs(0), secs(1), secs(2), secs(3), secs(6), secs(60)],
            [0, 2, 6, 18, 300, 300]
        );

        let now = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:01:01Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut done = op("c1", OperationPhase::Succeeded);
        done.finished_at = Some("2025-01-01T00:01:00Z".into());
        // The first self-heal after a plain sync: no wait.
        assert_eq!(self_heal(Some(&done), "c1", &b, now), (1, Duration::ZERO));
        // After the second in a row, 6 s from its end: 5 s left at one second after.
        done.self_heal_attempts = 2;
        assert_eq!(
            self_heal(Some(&done), "c1", &b, now),
            (3, Duration::from_secs(5))
        );
        // A new revision, or a failed last attempt, starts the count again.
        assert_eq!(self_heal(Some(&done), "c2", &b, now), (0, Duration::ZERO));
        let app = {
            let (mut app, _) = super::tests::app("x", None);
            app.spec.sync_policy = Some(SyncPolicy {
                automated: Some(Automated {
                    self_heal: true,
                    ..Automated::default()
                }),
                ..SyncPolicy::default()
            });
            app
        };
        let drifted = [ResourceStatus {
            status: Some(SyncStatusCode::OutOfSync),
            ..ResourceStatus::default()
        }];
        let held = auto_sync(
            &app,
            SyncStatusCode::OutOfSync,
            "c1",
            &drifted,
            Some(&done),
            1,
            Duration::from_secs(5),
        );
        assert!(held.unwrap_err().contains("self-heal backoff"));
    }

    fn op(revision: &str, phase: OperationPhase) -> Operation {
        Operation {
            id: "op".into(),
            app: "a".into(),
            phase,
            message: String::new(),
            revision: revision.into(),
            started_at: String::new(),
            finished_at: None,
            resources: vec![],
            retry_count: 0,
            source: None,
            dry_run: false,
            initiated_by: String::new(),
            refused: false,
            progress: None,
            self_heal_attempts: 0,
        }
    }

    #[test]
    fn automated_sync_rules() {
        let mut a = Application::default();
        let missing = vec![ResourceStatus {
            status: Some(SyncStatusCode::OutOfSync),
            ..ResourceStatus::default()
        }];
        let out = SyncStatusCode::OutOfSync;
        assert!(auto_sync(&a, out, "c1", &missing, None, 1, Duration::ZERO).is_err());
        let policy = |self_heal| SyncPolicy {
            automated: Some(Automated {
                self_heal,
                ..Automated::default()
            }),
            ..SyncPolicy::default()
        };
        a.spec.sync_policy = Some(policy(false));
        assert_eq!(
            auto_sync(&a, out, "c1", &missing, None, 1, Duration::ZERO),
            Ok(())
        );
        assert!(
            auto_sync(
                &a,
                SyncStatusCode::Synced,
                "c1",
                &missing,
                None,
                1,
                Duration::ZERO
            )
            .is_err()
        );
        let running = op("c0", OperationPhase::Running);
        assert!(auto_sync(&a, out, "c1", &missing, Some(&running), 1, Duration::ZERO).is_err());
        let failed = op("c1", OperationPhase::Failed);
        assert!(auto_sync(&a, out, "c1", &missing, Some(&failed), 1, Duration::ZERO).is_err());
        assert_eq!(
            auto_sync(&a, out, "c2", &missing, Some(&failed), 1, Duration::ZERO),
            Ok(())
        );
        let done = op("c1", OperationPhase::Succeeded);
        assert!(auto_sync(&a, out, "c1", &missing, Some(&done), 1, Duration::ZERO).is_err());
        a.spec.sync_policy = Some(policy(true));
        assert_eq!(
            auto_sync(&a, out, "c1", &missing, Some(&done), 1, Duration::ZERO),
            Ok(())
        );
        assert!(auto_sync(&a, out, "c1", &missing, None, 0, Duration::ZERO).is_err());
        let prune_only = vec![ResourceStatus {
            status: Some(SyncStatusCode::OutOfSync),
            requires_pruning: true,
            ..ResourceStatus::default()
        }];
        assert!(auto_sync(&a, out, "c1", &prune_only, None, 1, Duration::ZERO).is_err());
    }

    #[test]
    fn an_app_being_deleted_is_never_auto_synced() {
        let mut app = Application::default();
        app.spec.sync_policy = Some(SyncPolicy {
            automated: Some(Automated {
                prune: true,
                ..Automated::default()
            }),
            ..SyncPolicy::default()
        });
        app.metadata.deletion_timestamp = Some("2026-11-29T00:00:00Z".into());
        let why = auto_sync(
            &app,
            SyncStatusCode::OutOfSync,
            "abc",
            &[],
            None,
            1,
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(why, "app is being deleted");
        app.metadata.deletion_timestamp = None;
        assert_eq!(
            auto_sync(
                &app,
                SyncStatusCode::OutOfSync,
                "abc",
                &[],
                None,
                1,
                Duration::ZERO
            ),
            Ok(())
        );
    }
}
