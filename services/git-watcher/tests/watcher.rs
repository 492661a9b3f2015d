//! The watcher over real repositories: one fetch per repository per tick, changes only for
//! subscriptions that moved, with the paths the move touched.

mod common;

use common::{GitDaemon, Upstream, fixture, git};
use git_watcher::{GitError, Mirrors, Subscription, Watcher};

#[tokio::test]
async fn ticks_fetch_each_repository_once_and_report_moves() {
    let fx = fixture();
    let up = &fx.upstream;
    // A second repository next to the first, served by the same daemon.
    git(
        &up.base(),
        &[
            "clone",
            "--quiet",
            "--bare",
            up.bare().to_str().unwrap(),
            "second.git",
        ],
    );
    let daemon = GitDaemon::serve(&up.base());
    let root = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::new(root.path());
    let mut watcher = Watcher::new(mirrors.clone());

    let repo = daemon.url("origin.git");
    let repo_alias = format!("git://127.0.0.1:{}/origin/", daemon.port);
    let second = daemon.url("second.git");
    let subs = [
        Subscription::new(&repo, "main"),
        Subscription::new(&repo_alias, "main"),
        Subscription::new(&repo, "HEAD"),
        Subscription::new(&repo, "v1"),
        Subscription::new(&repo, "nope"),
        Subscription::new(&second, "main"),
    ];
    for sub in &subs {
        watcher.subscribe(sub.clone()).unwrap();
    }
    assert_eq!(watcher.subscriptions().count(), 6);

    // First tick: every resolvable subscription is news, with unknown paths.
    let report = watcher.tick().await;
    assert_eq!(report.fetched, 2);
    assert_eq!(
        report.errors,
        [GitError::RevisionNotFound {
            repo: repo.clone(),
            revision: "nope".into()
        }]
    );
    let seen: Vec<_> = report
        .changes
        .iter()
        .map(|c| (c.target_revision.as_str(), c.to.as_str()))
        .collect();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(
        report
            .changes
            .iter()
            .all(|c| c.from.is_none() && c.changed_paths.is_none())
    );
    let origin_mirror = mirrors.mirror(&repo).unwrap();
    let second_mirror = mirrors.mirror(&second).unwrap();
    assert_eq!(
        (
            origin_mirror.fetches_started(),
            second_mirror.fetches_started()
        ),
        (1, 1)
    );
    assert_eq!(watcher.last_seen(&subs[3]).unwrap().commit, fx.first);

    // Nothing moved: nothing to say.
    let report = watcher.tick().await;
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    assert_eq!(origin_mirror.fetches_started(), 2);

    // A commit on main moves main (under both spellings) and HEAD, not the tag or the other repo.
    up.write("apps/a/extra.yaml", "kind: Service\n");
    let third = up.commit("third");
    up.push_all();
    let report = watcher.tick().await;
    let mut moved: Vec<_> = report
        .changes
        .iter()
        .map(|c| {
            (
                c.repo.as_str(),
                c.target_revision.as_str(),
                c.from.as_deref(),
                c.to.as_str(),
            )
        })
        .collect();
    moved.sort();
    let mut expected = vec![
        (
            repo.as_str(),
            "HEAD",
            Some(fx.second.as_str()),
            third.as_str(),
        ),
        (
            repo.as_str(),
            "main",
            Some(fx.second.as_str()),
            third.as_str(),
        ),
        (
            repo_alias.as_str(),
            "main",
            Some(fx.second.as_str()),
            third.as_str(),
        ),
    ];
    expected.sort();
    assert_eq!(moved, expected);
    for change in &report.changes {
        assert_eq!(
            change.changed_paths.as_deref(),
            Some(&["apps/a/extra.yaml".to_owned()][..])
        );
    }

    // A webhook for one repository fetches only that one.
    up.write("apps/b/cm.yaml", "kind: ConfigMap\ndata: {}\n");
    up.commit("fourth");
    up.push_all();
    let second_fetches = second_mirror.fetches_started();
    let report = watcher.refresh_now(&format!("{repo}/")).await;
    assert_eq!(report.fetched, 1);
    assert_eq!(report.changes.len(), 3);
    assert!(
        report
            .changes
            .iter()
            .all(|c| c.changed_paths.as_deref() == Some(&["apps/b/cm.yaml".to_owned()][..]))
    );
    assert_eq!(second_mirror.fetches_started(), second_fetches);

    // Nobody follows this one: nothing is fetched.
    let report = watcher.refresh_now(&daemon.url("unknown.git")).await;
    assert_eq!(
        (report.fetched, report.changes.len(), report.errors.len()),
        (0, 0, 0)
    );

    // Once nobody follows a repository, ticks leave it alone.
    assert!(watcher.unsubscribe(&subs[5]));
    assert!(!watcher.unsubscribe(&subs[5]));
    let report = watcher.tick().await;
    assert_eq!(report.fetched, 1);
}

#[tokio::test]
async fn an_unreachable_repository_does_not_hold_up_the_others() {
    let up = Upstream::new();
    up.write("a.yaml", "a: 1\n");
    let first = up.commit("first");
    up.push_all();
    let daemon = GitDaemon::serve(&up.base());
    let root = tempfile::tempdir().unwrap();
    let mut watcher = Watcher::new(Mirrors::new(root.path()));
    let dead = format!("git://127.0.0.1:{}/gone.git", common::free_port());
    watcher.subscribe(Subscription::new(&dead, "main")).unwrap();
    watcher
        .subscribe(Subscription::new(daemon.url("origin.git"), "main"))
        .unwrap();

    let report = watcher.tick().await;
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].to, first);
    assert!(
        matches!(&report.errors[..], [GitError::FetchFailed { repo, .. }] if *repo == dead),
        "{:?}",
        report.errors
    );
}
