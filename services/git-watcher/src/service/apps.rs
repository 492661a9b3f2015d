//! Which (repository, targetRevision) pairs the Applications follow, counted per app so a
//! pair is dropped exactly when its last app stops using it.

use std::collections::{BTreeSet, HashMap};

use gitfleet_model::Application;

use crate::poll::Subscription;
use crate::url::RepoUrl;

/// The Git subscriptions of one Application: every effective source (`sources[]` wins over
/// `source`, as in Argo CD) that names a Git repository. Helm chart sources come from Helm
/// repositories, which are not Git and not this service's business.
///
/// URLs are kept as the app spells them, because events echo them back, except that
/// credentials written into a URL are dropped: subscriptions end up in published events,
/// and credentials belong in the `repositories` bucket.
pub(crate) fn subscriptions_of(app: &Application) -> BTreeSet<Subscription> {
    app.spec
        .effective_sources()
        .into_iter()
        .filter(|source| !source.repo_url.trim().is_empty() && !source.is_helm_chart())
        .map(|source| {
            let repo = match RepoUrl::parse(&source.repo_url) {
                Ok(url) if url.embedded_credentials().is_some() => url.as_str().to_owned(),
                _ => source.repo_url.clone(),
            };
            Subscription::new(repo, source.target_revision.clone())
        })
        .collect()
}

/// How one app's change moved the set of followed subscriptions.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    /// Subscriptions no app used before: start following them.
    pub first: Vec<Subscription>,
    /// Subscriptions this app now uses that others already used: already followed, but the
    /// app is new to them and must hear the current revision.
    pub joined: Vec<Subscription>,
    /// Subscriptions whose last app let go: stop following them.
    pub last: Vec<Subscription>,
}

/// Apps (by KV key) and the subscriptions each uses, with a user count per subscription.
#[derive(Debug, Default)]
pub(crate) struct AppSubscriptions {
    by_app: HashMap<String, BTreeSet<Subscription>>,
    users: HashMap<Subscription, usize>,
}

impl AppSubscriptions {
    /// Records that `app` now uses exactly `subscriptions` (empty: the app is gone).
    pub fn set(&mut self, app: &str, subscriptions: BTreeSet<Subscription>) -> Delta {
        let before = if subscriptions.is_empty() {
            self.by_app.remove(app).unwrap_or_default()
        } else {
            self.by_app
                .insert(app.to_owned(), subscriptions.clone())
                .unwrap_or_default()
        };
        let mut delta = Delta::default();
        for gone in before.difference(&subscriptions) {
            if let Some(count) = self.users.get_mut(gone) {
                *count -= 1;
                if *count == 0 {
                    self.users.remove(gone);
                    delta.last.push(gone.clone());
                }
            }
        }
        for added in subscriptions.difference(&before) {
            let count = self.users.entry(added.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                delta.first.push(added.clone());
            } else {
                delta.joined.push(added.clone());
            }
        }
        delta
    }

    /// The subscriptions of `app`, if it is known.
    pub fn of(&self, app: &str) -> Option<&BTreeSet<Subscription>> {
        self.by_app.get(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(json: serde_json::Value) -> Application {
        serde_json::from_value(json).unwrap()
    }

    fn subs(pairs: &[(&str, &str)]) -> BTreeSet<Subscription> {
        pairs
            .iter()
            .map(|(r, t)| Subscription::new(*r, *t))
            .collect()
    }

    #[test]
    fn sources_win_over_source_and_charts_are_skipped() {
        let a = app(serde_json::json!({
            "metadata": {"name": "a"},
            "spec": {
                "source": {"repoURL": "https://h/ignored", "targetRevision": "main"},
                "sources": [
                    {"repoURL": "https://h/one", "path": "x", "targetRevision": "main"},
                    {"repoURL": "https://charts.example.com", "chart": "redis", "targetRevision": "1.0"},
                    {"repoURL": "https://alice:s3cret@h/values.git", "ref": "values"}
                ]
            }
        }));
        assert_eq!(
            subscriptions_of(&a),
            subs(&[("https://h/one", "main"), ("https://h/values.git", "")])
        );
    }

    #[test]
    fn counts_users_per_subscription() {
        let mut apps = AppSubscriptions::default();
        let main = subs(&[("https://h/r", "main")]);
        let d = apps.set("a", main.clone());
        assert_eq!(d.first.len(), 1);
        let d = apps.set("b", main.clone());
        assert_eq!((d.first.len(), d.joined.len()), (0, 1));
        // Unchanged: no news.
        assert_eq!(apps.set("b", main.clone()), Delta::default());
        let d = apps.set("a", BTreeSet::new());
        assert!(d.last.is_empty());
        let d = apps.set("b", subs(&[("https://h/r", "dev")]));
        assert_eq!(d.last, vec![Subscription::new("https://h/r", "main")]);
        assert_eq!(d.first, vec![Subscription::new("https://h/r", "dev")]);
        assert!(apps.of("a").is_none());
    }
}
