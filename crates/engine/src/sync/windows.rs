//! Sync windows (an AppProject's `syncWindows`): whether an app may sync at a given time,
//! as Argo CD decides it (`SyncWindows.Matches`, `active` and `CanSync` in its
//! `v1alpha1/types.go`). The time is an argument, so this stays free of clocks.
//!
//! - A window matches an app by `applications` (its name), `clusters` (destination name or
//!   server) or `namespaces` (destination namespace), any of them, or all that are set with
//!   `andOperator`; globs as Argo CD's.
//! - A window is active when its cron `schedule` (five fields) last fired less than
//!   `duration` ago, in its `timeZone` (UTC by default; an unknown zone counts as UTC, as
//!   Argo CD does).
//! - An active deny window blocks (a manual sync gets through when every active deny
//!   window says `manualSync`); else an active allow window allows; else, when allow
//!   windows match, the app may only sync inside them (a manual sync gets through when
//!   every such window says `manualSync`); with no windows, anything goes.
//!
//! - A running operation is checked again before each of its steps ([`can_continue`]):
//!   blocked, it waits; with `syncOverrun` it goes on when it started while syncs were
//!   allowed and every window now closing it says so (the active deny windows; or, no
//!   allow window open, every allow window).

use chrono::{DateTime, Utc};
use gitfleet_model::{Application, SyncWindow, parse_duration};

use crate::glob::Glob;

/// Why the windows cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("sync window {index}: schedule {schedule:?} is not a cron schedule: {message}")]
    Schedule {
        index: usize,
        schedule: String,
        message: String,
    },
    #[error("sync window {index}: duration {duration:?} is not a duration (e.g. 1h, 30m)")]
    Duration { index: usize, duration: String },
}

/// The windows of `windows` that apply to `app`.
pub fn matching<'a>(windows: &'a [SyncWindow], app: &Application) -> Vec<(usize, &'a SyncWindow)> {
    let dest = &app.spec.destination;
    let any = |patterns: &[String], value: &str| {
        !value.is_empty() && patterns.iter().any(|p| Glob::new(p).matches(value))
    };
    windows
        .iter()
        .enumerate()
        .filter(|(_, w)| {
            let checks = [
                (!w.applications.is_empty()).then(|| any(&w.applications, &app.metadata.name)),
                (!w.clusters.is_empty())
                    .then(|| any(&w.clusters, &dest.name) || any(&w.clusters, &dest.server)),
                (!w.namespaces.is_empty()).then(|| any(&w.namespaces, &dest.namespace)),
            ];
            let mut set = checks.iter().flatten().peekable();
            if set.peek().is_none() {
                return false;
            }
            if w.and_operator {
                set.all(|m| *m)
            } else {
                set.any(|m| *m)
            }
        })
        .collect()
}

/// Whether `window` is open at `now`: its schedule last fired less than its duration ago.
pub fn is_active(
    index: usize,
    window: &SyncWindow,
    now: DateTime<Utc>,
) -> Result<bool, WindowError> {
    let schedule_error = |e: croner::errors::CronError| WindowError::Schedule {
        index,
        schedule: window.schedule.clone(),
        message: e.to_string(),
    };
    let cron: croner::Cron = window.schedule.parse().map_err(schedule_error)?;
    let duration = parse_duration(&window.duration)
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .ok_or_else(|| WindowError::Duration {
            index,
            duration: window.duration.clone(),
        })?;
    let zone: chrono_tz::Tz = window.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&zone);
    let next = cron
        .find_next_occurrence(&(local - duration), false)
        .map_err(schedule_error)?;
    Ok(next < local)
}

/// Whether `app` may sync at `now` under its project's `windows` (`manual`: a user asked).
/// `Err` when a window cannot be read: Argo CD then refuses the sync too.
pub fn can_sync(
    windows: &[SyncWindow],
    app: &Application,
    manual: bool,
    now: DateTime<Utc>,
) -> Result<bool, WindowError> {
    let matching = matching(windows, app);
    if matching.is_empty() {
        return Ok(true);
    }
    let mut active = Vec::new();
    let mut inactive_allows = Vec::new();
    for (index, w) in &matching {
        if is_active(*index, w, now)? {
            active.push(*w);
        } else if w.kind == "allow" {
            inactive_allows.push(*w);
        }
    }
    let denies: Vec<&&SyncWindow> = active.iter().filter(|w| w.kind == "deny").collect();
    if !denies.is_empty() {
        return Ok(manual && denies.iter().all(|w| w.manual_sync));
    }
    if active.iter().any(|w| w.kind == "allow") {
        return Ok(true);
    }
    if !inactive_allows.is_empty() {
        return Ok(manual && inactive_allows.iter().all(|w| w.manual_sync));
    }
    Ok(true)
}

/// Whether an operation of `app` that started at `started` may take its next step at
/// `now` (Argo CD's `CanSync` with the operation's start time): as [`can_sync`], or by
/// `syncOverrun`.
pub fn can_continue(
    windows: &[SyncWindow],
    app: &Application,
    manual: bool,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, WindowError> {
    if can_sync(windows, app, manual, now)? {
        return Ok(true);
    }
    let mut active_denies = Vec::new();
    let mut inactive_allows = Vec::new();
    let mut allow_open = false;
    for (index, w) in matching(windows, app) {
        match (is_active(index, w, now)?, w.kind.as_str()) {
            (true, "deny") => active_denies.push(w),
            (true, _) => allow_open = true,
            (false, "allow") => inactive_allows.push(w),
            (false, _) => {}
        }
    }
    let overrun = if !active_denies.is_empty() {
        active_denies.iter().all(|w| w.sync_overrun)
    } else {
        !allow_open && !inactive_allows.is_empty() && inactive_allows.iter().all(|w| w.sync_overrun)
    };
    Ok(overrun && can_sync(windows, app, manual, started)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use gitfleet_model::{Destination, ObjectMeta};

    fn app(name: &str, ns: &str) -> Application {
        let mut app = Application {
            metadata: ObjectMeta::named(name),
            ..Application::default()
        };
        app.spec.destination = Destination {
            server: "https://kubernetes.default.svc".into(),
            namespace: ns.into(),
            ..Destination::default()
        };
        app
    }

    fn window(kind: &str, schedule: &str, duration: &str) -> SyncWindow {
        SyncWindow {
            kind: kind.into(),
            schedule: schedule.into(),
            duration: duration.into(),
            applications: vec!["*".into()],
            ..SyncWindow::default()
        }
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0).unwrap()
    }

    #[test]
    fn a_window_is_open_for_its_duration_after_each_start() {
        let w = window("deny", "0 22 * * *", "8h");
        assert!(is_active(0, &w, at(23, 0)).unwrap());
        assert!(
            is_active(0, &w, at(5, 59)).unwrap(),
            "22:00 + 8h reaches 06:00"
        );
        assert!(!is_active(0, &w, at(6, 0)).unwrap());
        assert!(!is_active(0, &w, at(12, 0)).unwrap());
        // 22:00 in Amsterdam (UTC+1 in December) is 21:00 UTC.
        let amsterdam = SyncWindow {
            time_zone: "Europe/Amsterdam".into(),
            ..window("deny", "0 22 * * *", "1h")
        };
        assert!(is_active(0, &amsterdam, at(21, 30)).unwrap());
        assert!(!is_active(0, &amsterdam, at(22, 30)).unwrap());
        assert!(matches!(
            is_active(0, &window("deny", "every night", "1h"), at(0, 0)),
            Err(WindowError::Schedule { .. })
        ));
        assert!(matches!(
            is_active(0, &window("deny", "* * * * *", "a while"), at(0, 0)),
            Err(WindowError::Duration { .. })
        ));
    }

    #[test]
    fn windows_match_by_app_cluster_or_namespace() {
        let web = app("web-prod", "prod");
        let by_ns = SyncWindow {
            applications: Vec::new(),
            namespaces: vec!["prod".into()],
            ..window("deny", "* * * * *", "1h")
        };
        let other = SyncWindow {
            applications: vec!["db-*".into()],
            ..window("deny", "* * * * *", "1h")
        };
        let both = SyncWindow {
            applications: vec!["web-*".into()],
            namespaces: vec!["staging".into()],
            and_operator: true,
            ..window("deny", "* * * * *", "1h")
        };
        let cluster = SyncWindow {
            applications: Vec::new(),
            clusters: vec!["https://kubernetes.default.svc".into()],
            ..window("deny", "* * * * *", "1h")
        };
        let windows = [by_ns, other, both, cluster];
        let matched: Vec<usize> = matching(&windows, &web).iter().map(|(i, _)| *i).collect();
        assert_eq!(matched, [0, 3]);
    }

    #[test]
    fn deny_blocks_allow_opens_and_manual_sync_lets_users_through() {
        let web = app("web", "prod");
        let night = window("deny", "0 22 * * *", "8h");
        let manual_night = SyncWindow {
            manual_sync: true,
            ..night.clone()
        };
        let office = window("allow", "0 9 * * 1-5", "8h");
        // No windows: anything goes.
        assert!(can_sync(&[], &web, false, at(23, 0)).unwrap());
        // An active deny window blocks, a user too unless it says manualSync.
        assert!(!can_sync(std::slice::from_ref(&night), &web, false, at(23, 0)).unwrap());
        assert!(!can_sync(std::slice::from_ref(&night), &web, true, at(23, 0)).unwrap());
        assert!(can_sync(std::slice::from_ref(&manual_night), &web, true, at(23, 0)).unwrap());
        assert!(!can_sync(std::slice::from_ref(&manual_night), &web, false, at(23, 0)).unwrap());
        assert!(can_sync(std::slice::from_ref(&night), &web, false, at(12, 0)).unwrap());
        // Allow windows: inside them only (7 December 2026 is a Monday).
        assert!(can_sync(std::slice::from_ref(&office), &web, false, at(10, 0)).unwrap());
        assert!(!can_sync(std::slice::from_ref(&office), &web, false, at(18, 0)).unwrap());
        // Deny wins over allow when both are open.
        let lunch = window("deny", "0 12 * * *", "1h");
        assert!(!can_sync(&[office.clone(), lunch], &web, false, at(12, 30)).unwrap());
        // A window for another app changes nothing.
        let elsewhere = SyncWindow {
            applications: vec!["db".into()],
            ..night
        };
        assert!(can_sync(&[elsewhere], &web, false, at(23, 0)).unwrap());
    }

    #[test]
    fn a_running_sync_overruns_into_a_deny_window_or_out_of_an_allow_window_when_told() {
        let web = app("web", "prod");
        let night = window("deny", "0 22 * * *", "8h");
        let overrun_night = SyncWindow {
            sync_overrun: true,
            ..night.clone()
        };
        // Started at 21:50, allowed; at 22:10 the deny window is open.
        let (started, now) = (at(21, 50), at(22, 10));
        assert!(!can_continue(std::slice::from_ref(&night), &web, false, started, now).unwrap());
        assert!(
            can_continue(
                std::slice::from_ref(&overrun_night),
                &web,
                false,
                started,
                now
            )
            .unwrap()
        );
        // Started inside the deny window (a user's manual sync): no overrun for it.
        assert!(
            !can_continue(
                std::slice::from_ref(&overrun_night),
                &web,
                false,
                at(23, 0),
                now
            )
            .unwrap()
        );
        // Out of an allow window: 09:00-17:00 on weekdays, started 16:55, now 17:05.
        let office = window("allow", "0 9 * * 1-5", "8h");
        let overrun_office = SyncWindow {
            sync_overrun: true,
            ..office.clone()
        };
        let (started, now) = (at(16, 55), at(17, 5));
        assert!(!can_continue(std::slice::from_ref(&office), &web, false, started, now).unwrap());
        assert!(
            can_continue(
                std::slice::from_ref(&overrun_office),
                &web,
                false,
                started,
                now
            )
            .unwrap()
        );
        assert!(
            !can_continue(
                std::slice::from_ref(&overrun_office),
                &web,
                false,
                at(8, 0),
                now
            )
            .unwrap()
        );
    }
}
