//! Progressive sync (`strategy.type: RollingSync`), as Argo CD's ApplicationSet
//! controller runs it: the generated apps lose automated sync; each step's apps (chosen
//! by `matchExpressions` on the apps' labels) are synced by the controller, at most
//! `maxUpdate` of a step at a time, and a step starts only once every app of the steps
//! before it is Healthy. Each app moves Waiting → Pending (sync asked) → Progressing →
//! Healthy, and back to Waiting when its revision or spec changes. Apps no step selects
//! are left alone (synced by hand), as in Argo CD.

use std::collections::BTreeMap;

use gitfleet_model::{ApplicationSet, ApplicationStatus, HealthStatusCode, SyncStatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::selector::Selector;

/// One step of a rolling sync.
#[derive(Debug, Clone)]
pub struct Step {
    selector: Selector,
    max_update: Option<MaxUpdate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaxUpdate {
    Count(usize),
    Percent(u32),
}

impl MaxUpdate {
    /// How many of `total` apps may update at once (a percentage rounds down, but to at
    /// least one unless it is 0%, as Argo CD scales it).
    fn of(self, total: usize) -> usize {
        match self {
            MaxUpdate::Count(n) => n,
            MaxUpdate::Percent(0) => 0,
            MaxUpdate::Percent(p) => (total * p as usize / 100).max(1),
        }
    }
}

/// The steps of `set`'s RollingSync, or `None` when it has no such strategy. An error
/// names the field.
pub fn rolling_steps(set: &ApplicationSet) -> Result<Option<Vec<Step>>, String> {
    let Some(strategy) = set.spec.strategy.as_ref().filter(|s| !s.is_null()) else {
        return Ok(None);
    };
    match strategy.get("type").and_then(Value::as_str) {
        Some("RollingSync") => {}
        Some("AllAtOnce") | None => return Ok(None),
        Some(other) => {
            return Err(format!(
                "spec.strategy.type: {other:?} is not a strategy (AllAtOnce, RollingSync)"
            ));
        }
    }
    let steps = strategy
        .pointer("/rollingSync/steps")
        .and_then(Value::as_array)
        .ok_or("spec.strategy.rollingSync.steps: required with type RollingSync")?;
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let at = format!("spec.strategy.rollingSync.steps[{i}]");
            let selector = Selector::parse(
                Some(&serde_json::json!({"matchExpressions": step.get("matchExpressions").cloned().unwrap_or(Value::Null)})),
                &at,
            )?;
            let max_update = match step.get("maxUpdate") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(MaxUpdate::Count(
                    n.as_u64()
                        .ok_or_else(|| format!("{at}.maxUpdate: expected a count or a percentage"))?
                        as usize,
                )),
                Some(Value::String(s)) => {
                    let p = s
                        .strip_suffix('%')
                        .and_then(|p| p.trim().parse::<u32>().ok())
                        .filter(|p| *p <= 100)
                        .ok_or_else(|| format!("{at}.maxUpdate: {s:?} is not a percentage"))?;
                    Some(MaxUpdate::Percent(p))
                }
                Some(other) => {
                    return Err(format!(
                        "{at}.maxUpdate: expected a count or a percentage, got {other}"
                    ));
                }
            };
            Ok(Step {
                selector,
                max_update,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Some)
}

/// Where an app is in the rollout (Argo CD's `ProgressiveSync*` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Waiting,
    Pending,
    Progressing,
    Healthy,
}

/// One entry of the set's `status.applicationStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppProgress {
    pub application: String,
    pub status: Phase,
    pub message: String,
    /// 1-based, as Argo CD writes it.
    pub step: String,
    #[serde(default)]
    pub target_revisions: Vec<String>,
    pub last_transition_time: String,
}

/// What the controller knows of one generated app now.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// Its status in KV `app-status`, if it has one yet.
    pub status: Option<&'a ApplicationStatus>,
    /// Its spec was written in this generation (created or changed).
    pub spec_changed: bool,
}

/// The rollout after one look: every stepped app's progress, and the apps to sync now.
pub fn advance(
    steps: &[Step],
    previous: &[AppProgress],
    apps: &[Observed<'_>],
    now: &str,
) -> (Vec<AppProgress>, Vec<String>) {
    let previous: BTreeMap<&str, &AppProgress> = previous
        .iter()
        .map(|p| (p.application.as_str(), p))
        .collect();
    let mut out: Vec<(usize, AppProgress)> = Vec::new();
    for app in apps {
        let Some(step) = steps
            .iter()
            .position(|s| s.selector.matches_map(app.labels))
        else {
            continue;
        };
        let sync = app.status.and_then(|s| s.sync.as_ref());
        let revision: Vec<String> = sync
            .map(|s| s.revision.clone())
            .filter(|r| !r.is_empty())
            .into_iter()
            .collect();
        let synced = sync.is_some_and(|s| s.status == SyncStatusCode::Synced);
        let healthy = app
            .status
            .and_then(|s| s.health.as_ref())
            .is_some_and(|h| h.status == HealthStatusCode::Healthy);
        let mut p = match previous.get(app.name) {
            Some(p) => (*p).clone(),
            None => AppProgress {
                application: app.name.to_owned(),
                status: Phase::Waiting,
                message: "No Application status found, defaulting status to Waiting".into(),
                step: String::new(),
                target_revisions: revision.clone(),
                last_transition_time: now.to_owned(),
            },
        };
        p.step = (step + 1).to_string();
        let set = |p: &mut AppProgress, status: Phase, message: &str| {
            p.status = status;
            p.message = message.to_owned();
            p.last_transition_time = now.to_owned();
        };
        if p.target_revisions != revision || app.spec_changed {
            p.target_revisions = revision.clone();
            set(
                &mut p,
                Phase::Waiting,
                "Application has pending changes, setting status to Waiting",
            );
        }
        match p.status {
            Phase::Waiting if synced && healthy => set(
                &mut p,
                Phase::Healthy,
                "Application resource has synced, updating status to Healthy",
            ),
            Phase::Waiting if synced => set(
                &mut p,
                Phase::Progressing,
                "Application resource has synced, updating status to Progressing",
            ),
            Phase::Pending => {
                let op = app.status.and_then(|s| s.operation_state.as_ref());
                let started = op
                    .and_then(|o| o.started_at.as_deref())
                    .is_some_and(|t| not_before(t, &p.last_transition_time));
                if started {
                    set(
                        &mut p,
                        Phase::Progressing,
                        "Application resource became Progressing, updating status from Pending to Progressing",
                    );
                }
            }
            Phase::Progressing if synced && healthy => set(
                &mut p,
                Phase::Healthy,
                "Application resource became Healthy, updating status from Progressing to Healthy",
            ),
            _ => {}
        }
        out.push((step, p));
    }
    // A step may update once every app of the steps before it is Healthy.
    let mut to_sync = Vec::new();
    for (step_index, step) in steps.iter().enumerate() {
        let before_healthy = out
            .iter()
            .filter(|(s, _)| *s < step_index)
            .all(|(_, p)| p.status == Phase::Healthy);
        if !before_healthy {
            break;
        }
        let total = out.iter().filter(|(s, _)| *s == step_index).count();
        let limit = step.max_update.map_or(total, |m| m.of(total));
        let mut updating = out
            .iter()
            .filter(|(s, p)| {
                *s == step_index && matches!(p.status, Phase::Pending | Phase::Progressing)
            })
            .count();
        for (s, p) in out.iter_mut() {
            if *s != step_index || p.status != Phase::Waiting || updating >= limit {
                continue;
            }
            p.status = Phase::Pending;
            p.message = "Application moved to Pending status, watching for the Application resource to start Progressing".into();
            p.last_transition_time = now.to_owned();
            to_sync.push(p.application.clone());
            updating += 1;
        }
    }
    let mut progress: Vec<AppProgress> = out.into_iter().map(|(_, p)| p).collect();
    progress.sort_by(|a, b| a.application.cmp(&b.application));
    (progress, to_sync)
}

/// Whether RFC 3339 time `t` is at or after `since` (to the second: the transition time
/// is written to the second, an operation's start may carry fractions).
fn not_before(t: &str, since: &str) -> bool {
    match (
        chrono::DateTime::parse_from_rfc3339(t),
        chrono::DateTime::parse_from_rfc3339(since),
    ) {
        (Ok(t), Ok(since)) => t.timestamp() >= since.timestamp(),
        _ => t >= since,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfleet_model::{HealthStatus, OperationState, SyncStatus};

    fn set_with(strategy: Value) -> ApplicationSet {
        let mut s = ApplicationSet::default();
        s.spec.strategy = Some(strategy);
        s
    }

    fn status(
        sync: SyncStatusCode,
        health: HealthStatusCode,
        started: Option<&str>,
    ) -> ApplicationStatus {
        ApplicationStatus {
            sync: Some(SyncStatus {
                status: sync,
                revision: "c1".into(),
                ..SyncStatus::default()
            }),
            health: Some(HealthStatus {
                status: health,
                ..HealthStatus::default()
            }),
            operation_state: started.map(|t| {
                serde_json::from_value::<OperationState>(
                    serde_json::json!({"phase": "Running", "startedAt": t}),
                )
                .unwrap()
            }),
            ..ApplicationStatus::default()
        }
    }

    #[test]
    fn two_steps_roll_one_after_the_other() {
        let steps = rolling_steps(&set_with(serde_json::json!({
            "type": "RollingSync",
            "rollingSync": {"steps": [
                {"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]},
                {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}], "maxUpdate": 1},
            ]}
        })))
        .unwrap()
        .unwrap();
        let label = |env: &str| -> BTreeMap<String, String> {
            [("env".to_string(), env.to_string())].into()
        };
        let (dev, prod) = (label("dev"), label("prod"));
        let out_of_sync = status(SyncStatusCode::OutOfSync, HealthStatusCode::Missing, None);
        fn apps<'a>(
            dev: &'a BTreeMap<String, String>,
            prod: &'a BTreeMap<String, String>,
            d: Option<&'a ApplicationStatus>,
            p: Option<&'a ApplicationStatus>,
        ) -> Vec<Observed<'a>> {
            vec![
                Observed {
                    name: "dev-a",
                    labels: dev,
                    status: d,
                    spec_changed: false,
                },
                Observed {
                    name: "prod-a",
                    labels: prod,
                    status: p,
                    spec_changed: false,
                },
                Observed {
                    name: "prod-b",
                    labels: prod,
                    status: p,
                    spec_changed: false,
                },
            ]
        }
        // First look: only the first step syncs.
        let (progress, sync) = advance(
            &steps,
            &[],
            &apps(&dev, &prod, Some(&out_of_sync), Some(&out_of_sync)),
            "t1",
        );
        assert_eq!(sync, ["dev-a"]);
        assert_eq!(progress[0].status, Phase::Pending);
        assert_eq!(progress[1].status, Phase::Waiting);
        // Its sync started: Progressing; the next step still waits.
        let running = status(
            SyncStatusCode::Synced,
            HealthStatusCode::Progressing,
            Some("t2"),
        );
        let (progress, sync) = advance(
            &steps,
            &progress,
            &apps(&dev, &prod, Some(&running), Some(&out_of_sync)),
            "t2",
        );
        assert!(sync.is_empty());
        assert_eq!(progress[0].status, Phase::Progressing);
        // Healthy: the second step starts, one at a time (maxUpdate 1).
        let healthy = status(
            SyncStatusCode::Synced,
            HealthStatusCode::Healthy,
            Some("t2"),
        );
        let (progress, sync) = advance(
            &steps,
            &progress,
            &apps(&dev, &prod, Some(&healthy), Some(&out_of_sync)),
            "t3",
        );
        assert_eq!(progress[0].status, Phase::Healthy);
        assert_eq!(sync, ["prod-a"]);
        let (_, sync) = advance(
            &steps,
            &progress,
            &apps(&dev, &prod, Some(&healthy), Some(&out_of_sync)),
            "t4",
        );
        assert!(sync.is_empty(), "maxUpdate 1: prod-b waits for prod-a");
    }

    #[test]
    fn bad_strategies_name_the_field() {
        let err = rolling_steps(&set_with(serde_json::json!({"type": "Rolling"}))).unwrap_err();
        assert!(err.contains("spec.strategy.type"), "{err}");
        let err = rolling_steps(&set_with(serde_json::json!({"type": "RollingSync", "rollingSync": {"steps": [{"maxUpdate": "lots"}]}}))).unwrap_err();
        assert!(err.contains("steps[0].maxUpdate"), "{err}");
        assert!(
            rolling_steps(&set_with(serde_json::json!({"type": "AllAtOnce"})))
                .unwrap()
                .is_none()
        );
    }
}
