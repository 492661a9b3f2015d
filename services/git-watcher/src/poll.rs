//! Polling decisions: when to look again, which subscriptions moved, and what paths the move
//! touched. One fetch per repository per tick however many apps follow it; publishing the
//! resulting [`RevisionChange`]s is the caller's business.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::credentials::RepoCredentials;
use crate::error::{GitError, Result};
use crate::mirror::{Mirror, Mirrors};
use crate::resolve::{ResolvedRevision, RevisionKind};
use crate::url::RepoUrl;

/// One (repository, targetRevision) pair that some Applications follow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subscription {
    /// The repository URL as the Applications spell it; events echo it back unchanged.
    pub repo: String,
    pub target_revision: String,
}

impl Subscription {
    pub fn new(repo: impl Into<String>, target_revision: impl Into<String>) -> Self {
        Subscription {
            repo: repo.into(),
            target_revision: target_revision.into(),
        }
    }
}

/// A subscription's revision moved (or was seen for the first time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionChange {
    pub repo: String,
    pub target_revision: String,
    /// The commit seen before, `None` on first sighting.
    pub from: Option<String>,
    pub to: String,
    pub kind: RevisionKind,
    /// Files that differ between `from` and `to`. `None` means unknown (first sighting, or
    /// the old commit cannot be read): consumers must treat every path as changed.
    pub changed_paths: Option<Vec<String>>,
}

/// Decides whether `current` is news compared to `previous`, computing changed paths with
/// `diff(from, to)` only when it is. A failing diff degrades to "every path changed" rather
/// than hiding the move.
pub fn revision_change(
    subscription: &Subscription,
    previous: Option<&ResolvedRevision>,
    current: &ResolvedRevision,
    diff: impl FnOnce(&str, &str) -> Result<Vec<String>>,
) -> Option<RevisionChange> {
    if previous.is_some_and(|p| p.commit == current.commit) {
        return None;
    }
    let from = previous.map(|p| p.commit.clone());
    let changed_paths = match &from {
        Some(from) => match diff(from, &current.commit) {
            Ok(paths) => Some(paths),
            Err(err) => {
                tracing::warn!(repo = %subscription.repo, from = %from, to = %current.commit, error = %err, "changed paths unknown");
                None
            }
        },
        None => None,
    };
    Some(RevisionChange {
        repo: subscription.repo.clone(),
        target_revision: subscription.target_revision.clone(),
        from,
        to: current.commit.clone(),
        kind: current.kind,
        changed_paths,
    })
}

/// The delay before each poll: a base interval plus a uniform random jitter, so that a
/// fleet of repositories does not hit the Git hosts in lockstep.
#[derive(Debug, Clone)]
pub struct PollSchedule {
    interval: Duration,
    jitter: Duration,
    /// SplitMix64 state; seeded by the caller so tests get a fixed sequence.
    state: u64,
}

impl PollSchedule {
    /// Argo CD's `timeout.reconciliation` default.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(120);
    /// Argo CD's `timeout.reconciliation.jitter` default.
    pub const DEFAULT_JITTER: Duration = Duration::from_secs(60);

    pub fn new(interval: Duration, jitter: Duration, seed: u64) -> Self {
        PollSchedule {
            interval,
            jitter,
            state: seed,
        }
    }

    /// 120 s plus up to 60 s, as Argo CD.
    pub fn argo_default(seed: u64) -> Self {
        Self::new(Self::DEFAULT_INTERVAL, Self::DEFAULT_JITTER, seed)
    }

    /// The next delay, in `[interval, interval + jitter]`.
    pub fn next_delay(&mut self) -> Duration {
        let jitter_nanos = self.jitter.as_nanos().min(u128::from(u64::MAX)) as u64;
        if jitter_nanos == 0 {
            return self.interval;
        }
        let extra = self.next_u64() % (jitter_nanos + 1);
        self.interval + Duration::from_nanos(extra)
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What one tick (or one forced refresh) found.
#[derive(Debug, Default)]
pub struct TickReport {
    pub changes: Vec<RevisionChange>,
    /// Failed fetches (one per repository) and failed resolutions (one per subscription).
    pub errors: Vec<GitError>,
    /// Repositories fetched.
    pub fetched: usize,
}

/// The subscriptions of one repository: fetched together, once.
struct RepoGroup {
    mirror: Mirror,
    last: BTreeMap<Subscription, Option<ResolvedRevision>>,
}

/// Keeps the last seen commit of every subscription and turns fetches into changes.
pub struct Watcher {
    mirrors: Mirrors,
    /// By mirror key, so differently spelled URLs of one repository share a fetch.
    groups: BTreeMap<String, RepoGroup>,
    fetch_permits: Arc<tokio::sync::Semaphore>,
}

impl Watcher {
    /// Fetches at most 4 repositories at once by default: fetching is network- and
    /// disk-bound, and the machine also renders.
    pub fn new(mirrors: Mirrors) -> Self {
        Self::with_concurrency(mirrors, 4)
    }

    pub fn with_concurrency(mirrors: Mirrors, max_concurrent_fetches: usize) -> Self {
        Watcher {
            mirrors,
            groups: BTreeMap::new(),
            fetch_permits: Arc::new(tokio::sync::Semaphore::new(max_concurrent_fetches.max(1))),
        }
    }

    pub fn mirrors(&self) -> &Mirrors {
        &self.mirrors
    }

    /// Starts following `subscription`; its first tick reports it with `from: None`.
    pub fn subscribe(&mut self, subscription: Subscription) -> Result<()> {
        let mirror = self.mirrors.mirror(&subscription.repo)?;
        let (_, subscription) = without_credentials(&subscription)?;
        let key = mirror.url().key().to_owned();
        let group = self.groups.entry(key).or_insert_with(|| RepoGroup {
            mirror,
            last: BTreeMap::new(),
        });
        group.last.entry(subscription).or_insert(None);
        Ok(())
    }

    /// Stops following `subscription`; returns whether it was followed.
    pub fn unsubscribe(&mut self, subscription: &Subscription) -> bool {
        let Ok((url, subscription)) = without_credentials(subscription) else {
            return false;
        };
        let Some(group) = self.groups.get_mut(url.key()) else {
            return false;
        };
        let removed = group.last.remove(&subscription).is_some();
        if group.last.is_empty() {
            self.groups.remove(url.key());
        }
        removed
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        self.groups.values().flat_map(|group| group.last.keys())
    }

    /// The commit last reported for `subscription`.
    pub fn last_seen(&self, subscription: &Subscription) -> Option<&ResolvedRevision> {
        let (url, subscription) = without_credentials(subscription).ok()?;
        self.groups
            .get(url.key())?
            .last
            .get(&subscription)?
            .as_ref()
    }

    /// Forgets the commit last reported for `subscription`, so the next poll reports it
    /// again (with `from: None`, as a first sighting): how a change whose event could not
    /// be published is not lost.
    pub fn forget_seen(&mut self, subscription: &Subscription) {
        let Ok((url, subscription)) = without_credentials(subscription) else {
            return;
        };
        if let Some(slot) = self
            .groups
            .get_mut(url.key())
            .and_then(|group| group.last.get_mut(&subscription))
        {
            *slot = None;
        }
    }

    pub fn set_credentials(&self, repo: &str, credentials: Option<RepoCredentials>) -> Result<()> {
        self.mirrors.mirror(repo)?.set_credentials(credentials);
        Ok(())
    }

    /// Fetches every followed repository once and reports the subscriptions that moved.
    pub async fn tick(&mut self) -> TickReport {
        let keys: Vec<String> = self.groups.keys().cloned().collect();
        self.poll(keys).await
    }

    /// Fetches `repo` now (a webhook said it changed) and reports its subscriptions that
    /// moved. A repository nobody follows is not fetched.
    pub async fn refresh_now(&mut self, repo: &str) -> TickReport {
        match RepoUrl::parse(repo) {
            Ok(url) if self.groups.contains_key(url.key()) => {
                self.poll(vec![url.key().to_owned()]).await
            }
            Ok(_) => TickReport::default(),
            Err(err) => TickReport {
                errors: vec![err],
                ..TickReport::default()
            },
        }
    }

    /// Fetches several repositories at once (bounded like a tick) and reports their
    /// subscriptions that moved: how a batch of newly followed repositories is announced
    /// without waiting for the next tick. Repositories nobody follows are skipped.
    pub async fn refresh_repos<'a>(
        &mut self,
        repos: impl IntoIterator<Item = &'a str>,
    ) -> TickReport {
        let mut report = TickReport::default();
        let mut keys = std::collections::BTreeSet::new();
        for repo in repos {
            match RepoUrl::parse(repo) {
                Ok(url) if self.groups.contains_key(url.key()) => {
                    keys.insert(url.key().to_owned());
                }
                Ok(_) => {}
                Err(err) => report.errors.push(err),
            }
        }
        let mut polled = self.poll(keys.into_iter().collect()).await;
        polled.errors.append(&mut report.errors);
        polled
    }

    async fn poll(&mut self, keys: Vec<String>) -> TickReport {
        let mut tasks = tokio::task::JoinSet::new();
        for key in keys {
            let Some(group) = self.groups.get(&key) else {
                continue;
            };
            let mirror = group.mirror.clone();
            let last = group.last.clone();
            let permits = self.fetch_permits.clone();
            tasks.spawn(async move {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let outcome = poll_repo(mirror, last).await;
                (key, outcome)
            });
        }
        let mut report = TickReport::default();
        while let Some(joined) = tasks.join_next().await {
            let Ok((key, outcome)) = joined else {
                // A panicking poll is a bug; the other repositories still get their results.
                tracing::error!("repository poll task panicked");
                continue;
            };
            match outcome {
                Ok(polled) => {
                    report.fetched += 1;
                    report.errors.extend(polled.errors);
                    if let Some(group) = self.groups.get_mut(&key) {
                        for (subscription, resolved) in polled.resolved {
                            // Unsubscribed while the fetch ran: do not bring it back.
                            if let Some(slot) = group.last.get_mut(&subscription) {
                                *slot = Some(resolved);
                            }
                        }
                    }
                    report.changes.extend(polled.changes);
                }
                Err(err) => report.errors.push(err),
            }
        }
        report
            .changes
            .sort_by(|a, b| (&a.repo, &a.target_revision).cmp(&(&b.repo, &b.target_revision)));
        report
    }
}

/// Events are published to the whole system, so a subscription whose URL carries
/// credentials is kept (and reported) under the URL without them; the credentials themselves
/// went to the mirror.
fn without_credentials(subscription: &Subscription) -> Result<(RepoUrl, Subscription)> {
    let url = RepoUrl::parse(&subscription.repo)?;
    let repo = if url.embedded_credentials().is_some() {
        url.as_str().to_owned()
    } else {
        subscription.repo.clone()
    };
    Ok((
        url,
        Subscription {
            repo,
            target_revision: subscription.target_revision.clone(),
        },
    ))
}

struct Polled {
    resolved: Vec<(Subscription, ResolvedRevision)>,
    changes: Vec<RevisionChange>,
    errors: Vec<GitError>,
}

async fn poll_repo(
    mirror: Mirror,
    last: BTreeMap<Subscription, Option<ResolvedRevision>>,
) -> Result<Polled> {
    mirror.fetch().await?;
    let repo = mirror.url().to_string();
    // Resolution is cheap but diffs walk trees: off the runtime.
    tokio::task::spawn_blocking(move || {
        let mut polled = Polled {
            resolved: Vec::new(),
            changes: Vec::new(),
            errors: Vec::new(),
        };
        for (subscription, previous) in last {
            match mirror.resolve(&subscription.target_revision) {
                Ok(current) => {
                    if let Some(change) =
                        revision_change(&subscription, previous.as_ref(), &current, |from, to| {
                            mirror.changed_paths(from, to)
                        })
                    {
                        polled.changes.push(change);
                    }
                    polled.resolved.push((subscription, current));
                }
                Err(err) => polled.errors.push(err),
            }
        }
        polled
    })
    .await
    .map_err(|join| GitError::FetchFailed {
        repo,
        message: format!("resolving revisions failed: {join}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(commit: &str) -> ResolvedRevision {
        ResolvedRevision {
            commit: commit.to_owned(),
            kind: RevisionKind::Branch,
        }
    }

    #[test]
    fn same_commit_is_no_news() {
        let sub = Subscription::new("https://h/r", "main");
        let change = revision_change(&sub, Some(&resolved("a")), &resolved("a"), |_, _| {
            panic!("no diff needed")
        });
        assert_eq!(change, None);
    }

    #[test]
    fn first_sighting_has_unknown_paths() {
        let sub = Subscription::new("https://h/r", "main");
        let change =
            revision_change(&sub, None, &resolved("a"), |_, _| panic!("no diff needed")).unwrap();
        assert_eq!(
            (change.from, change.to.as_str(), change.changed_paths),
            (None, "a", None)
        );
    }

    #[test]
    fn moved_commit_carries_the_diff() {
        let sub = Subscription::new("https://h/r", "main");
        let change = revision_change(&sub, Some(&resolved("a")), &resolved("b"), |from, to| {
            assert_eq!((from, to), ("a", "b"));
            Ok(vec!["apps/x/deploy.yaml".to_owned()])
        })
        .unwrap();
        assert_eq!(change.from.as_deref(), Some("a"));
        assert_eq!(
            change.changed_paths,
            Some(vec!["apps/x/deploy.yaml".to_owned()])
        );
    }

    #[test]
    fn failed_diff_means_everything_changed() {
        let sub = Subscription::new("https://h/r", "main");
        let change = revision_change(&sub, Some(&resolved("a")), &resolved("b"), |_, _| {
            Err(GitError::Read {
                repo: "r".into(),
                what: "a".into(),
                message: "gone".into(),
            })
        })
        .unwrap();
        assert_eq!(change.changed_paths, None);
    }

    #[test]
    fn schedule_stays_in_bounds_and_is_reproducible() {
        let mut a = PollSchedule::argo_default(7);
        let mut b = PollSchedule::argo_default(7);
        let delays: Vec<_> = (0..1000).map(|_| a.next_delay()).collect();
        assert_eq!(
            delays,
            (0..1000).map(|_| b.next_delay()).collect::<Vec<_>>()
        );
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_secs(120) && *d <= Duration::from_secs(180))
        );
        // Spread, not a constant: both halves of the jitter range are used.
        assert!(delays.iter().any(|d| *d < Duration::from_secs(150)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(150)));
        let mut c = PollSchedule::argo_default(8);
        assert_ne!(
            delays[..10],
            (0..10).map(|_| c.next_delay()).collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn subscriptions_never_keep_credentials() {
        let root = tempfile::tempdir().unwrap();
        let mut watcher = Watcher::new(Mirrors::new(root.path()));
        let with_secret =
            Subscription::new("https://alice:s3cret@example.com/org/repo.git", "main");
        watcher.subscribe(with_secret.clone()).unwrap();
        let listed: Vec<_> = watcher.subscriptions().cloned().collect();
        assert_eq!(
            listed,
            [Subscription::new(
                "https://example.com/org/repo.git",
                "main"
            )]
        );
        let mirror = watcher
            .mirrors()
            .mirror("https://example.com/org/repo")
            .unwrap();
        assert!(!format!("{mirror:?}").contains("s3cret"));
        assert!(watcher.unsubscribe(&with_secret));
        assert_eq!(watcher.subscriptions().count(), 0);
    }

    #[test]
    fn no_jitter_is_the_plain_interval() {
        let mut s = PollSchedule::new(Duration::from_secs(5), Duration::ZERO, 1);
        assert_eq!(s.next_delay(), Duration::from_secs(5));
    }

    #[test]
    fn change_serializes_in_camel_case() {
        let change = RevisionChange {
            repo: "https://h/r".into(),
            target_revision: "main".into(),
            from: None,
            to: "b".into(),
            kind: RevisionKind::Head,
            changed_paths: None,
        };
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(json["targetRevision"], "main");
        assert_eq!(json["kind"], "head");
        assert!(json["changedPaths"].is_null());
    }
}
