//! The mirror against a real `git daemon`: fetching, resolving every revision form, changed
//! paths, reading directories, pruning, failure modes and fetch sharing.

mod common;

use std::time::{Duration, Instant};

use common::{GitDaemon, fixture, git};
use git_watcher::{Depth, GitError, Mirrors, MirrorsConfig, ReadLimits, RevisionKind};

fn mirrors() -> (tempfile::TempDir, Mirrors) {
    let root = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::new(root.path().join("mirrors"));
    (root, mirrors)
}

#[tokio::test]
async fn resolves_every_revision_form_after_fetch() {
    let fx = fixture();
    let daemon = GitDaemon::serve(&fx.upstream.base());
    let (_root, mirrors) = mirrors();
    let url = daemon.url("origin.git");
    let mirror = mirrors.mirror(&url).unwrap();

    let outcome = mirror.fetch().await.unwrap();
    assert_eq!(outcome.default_branch.as_deref(), Some("refs/heads/main"));
    assert_eq!(outcome.refs, 4, "main, feature, v1, v1-light");

    let cases: &[(&str, &str, RevisionKind)] = &[
        ("", &fx.second, RevisionKind::Head),
        ("HEAD", &fx.second, RevisionKind::Head),
        ("main", &fx.second, RevisionKind::Branch),
        ("refs/heads/main", &fx.second, RevisionKind::Branch),
        ("feature", &fx.feature, RevisionKind::Branch),
        ("v1", &fx.first, RevisionKind::Tag),
        ("refs/tags/v1", &fx.first, RevisionKind::Tag),
        ("v1-light", &fx.first, RevisionKind::Tag),
        (&fx.first, &fx.first, RevisionKind::Commit),
        (&fx.first[..7], &fx.first, RevisionKind::Commit),
        (
            &fx.feature[..12].to_uppercase(),
            &fx.feature,
            RevisionKind::Commit,
        ),
    ];
    for (revision, commit, kind) in cases {
        let resolved = mirror
            .resolve(revision)
            .unwrap_or_else(|e| panic!("{revision:?}: {e}"));
        assert_eq!(
            (&resolved.commit, resolved.kind),
            (&commit.to_string(), *kind),
            "{revision:?}"
        );
    }

    // The annotated tag itself is a tag object; what is returned must be the commit.
    let tag_object = fx.upstream.rev("v1");
    assert_ne!(tag_object, fx.first);

    for missing in [
        "nope",
        "refs/heads/nope",
        "refs/pull/1/head",
        "deadbeef",
        "v1..main",
        &fx.first[..6],
    ] {
        let err = mirror.resolve(missing).unwrap_err();
        assert_eq!(
            err,
            GitError::RevisionNotFound {
                repo: url.clone(),
                revision: missing.to_owned()
            },
            "{missing:?}"
        );
    }
    assert_eq!(
        mirror.resolve("nope").unwrap_err().to_string(),
        format!("revision \"nope\" not found in {url}")
    );
}

#[tokio::test]
async fn branch_wins_over_tag_of_the_same_name_and_head_follows_the_remote() {
    let fx = fixture();
    fx.upstream.git(&["tag", "feature", &fx.first]);
    fx.upstream.push_all();
    git(
        &fx.upstream.bare(),
        &["symbolic-ref", "HEAD", "refs/heads/feature"],
    );
    let daemon = GitDaemon::serve(&fx.upstream.base());
    let (_root, mirrors) = mirrors();
    let mirror = mirrors.mirror(&daemon.url("origin.git")).unwrap();
    let outcome = mirror.fetch().await.unwrap();

    assert_eq!(
        outcome.default_branch.as_deref(),
        Some("refs/heads/feature")
    );
    assert_eq!(mirror.resolve("HEAD").unwrap().commit, fx.feature);
    assert_eq!(
        mirror.resolve("feature").unwrap().kind,
        RevisionKind::Branch
    );
    assert_eq!(
        mirror.resolve("refs/tags/feature").unwrap().commit,
        fx.first
    );
}

#[tokio::test]
async fn a_pushed_commit_is_seen_with_its_exact_changed_paths() {
    let fx = fixture();
    let daemon = GitDaemon::serve(&fx.upstream.base());
    let (_root, mirrors) = mirrors();
    let mirror = mirrors.mirror(&daemon.url("origin.git")).unwrap();
    mirror.fetch().await.unwrap();
    let before = mirror.resolve("main").unwrap().commit;

    let up = &fx.upstream;
    up.write(
        "apps/a/deploy.yaml",
        "kind: Deployment\nspec: {replicas: 2}\n",
    );
    up.write("apps/c/new.yaml", "kind: Secret\n");
    up.git(&["rm", "--quiet", "README.md"]);
    up.git(&["mv", "apps/b/cm.yaml", "apps/b/configmap.yaml"]);
    let after = up.commit("change things");
    up.push_all();

    // Nothing moves until the next fetch.
    assert_eq!(mirror.resolve("main").unwrap().commit, before);
    mirror.fetch().await.unwrap();
    assert_eq!(mirror.resolve("main").unwrap().commit, after);

    let changed = mirror.changed_paths(&before, &after).unwrap();
    assert_eq!(
        changed,
        [
            "README.md",
            "apps/a/deploy.yaml",
            "apps/b/cm.yaml",
            "apps/b/configmap.yaml",
            "apps/c/new.yaml"
        ]
    );
    // Symmetric, and empty for the same commit.
    assert_eq!(mirror.changed_paths(&after, &before).unwrap(), changed);
    assert!(mirror.changed_paths(&after, &after).unwrap().is_empty());
    // Branches and tags are accepted too.
    assert_eq!(
        mirror.changed_paths("v1", "feature").unwrap(),
        ["apps/a/deploy.yaml", "apps/b/extra.yaml"]
    );
}

#[tokio::test]
async fn directory_replaced_by_a_file_names_every_path() {
    let fx = fixture();
    let up = &fx.upstream;
    up.git(&["rm", "-r", "--quiet", "apps/b"]);
    up.write("apps/b", "now a file\n");
    let after = up.commit("dir to file");
    up.push_all();
    let daemon = GitDaemon::serve(&up.base());
    let (_root, mirrors) = mirrors();
    let mirror = mirrors.mirror(&daemon.url("origin.git")).unwrap();
    mirror.fetch().await.unwrap();
    assert_eq!(
        mirror.changed_paths(&fx.second, &after).unwrap(),
        ["apps/b", "apps/b/cm.yaml"]
    );
}

#[tokio::test]
async fn read_dir_returns_files_within_limits() {
    let fx = fixture();
    let daemon = GitDaemon::serve(&fx.upstream.base());
    let root = tempfile::tempdir().unwrap();
    let limits = ReadLimits {
        max_file_bytes: 20,
        max_total_bytes: 35,
    };
    let mirrors = Mirrors::with_config(
        root.path(),
        MirrorsConfig {
            read_limits: limits,
            ..Default::default()
        },
    );
    let mirror = mirrors.mirror(&daemon.url("origin.git")).unwrap();
    mirror.fetch().await.unwrap();

    let files = mirror
        .read_dir(&fx.feature, "./apps/b/", Depth::TopLevel)
        .unwrap();
    let listed: Vec<_> = files
        .iter()
        .map(|f| (f.path.as_str(), f.bytes.as_slice()))
        .collect();
    assert_eq!(
        listed,
        [
            ("apps/b/cm.yaml", b"kind: ConfigMap\n".as_slice()),
            ("apps/b/extra.yaml", b"kind: Service\n".as_slice())
        ]
    );
    let top = mirror.read_dir("main", "apps", Depth::TopLevel).unwrap();
    assert!(top.is_empty(), "apps holds only directories");
    let all = mirror.read_dir("v1", "apps", Depth::Recursive).unwrap();
    let paths: Vec<_> = all.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["apps/a/deploy.yaml", "apps/b/cm.yaml"]);

    let err = mirror
        .read_dir("main", "apps/nope", Depth::Recursive)
        .unwrap_err();
    assert!(
        matches!(err, GitError::PathNotFound { ref path, .. } if path == "apps/nope"),
        "{err}"
    );
    // A file's path reads that file alone (a values file, not its whole folder).
    let one = mirror
        .read_dir("main", "README.md", Depth::Recursive)
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (one[0].path.as_str(), one[0].bytes.as_slice()),
        ("README.md", &b"hello\n"[..])
    );
    // Limits hold for it too.
    let err = mirror
        .read_dir("main", "apps/a/deploy.yaml", Depth::TopLevel)
        .unwrap_err();
    assert!(
        matches!(err, GitError::FileTooLarge { ref path, size: 26, .. } if path == "apps/a/deploy.yaml"),
        "{err}"
    );

    // main's deploy.yaml is 26 bytes, over the 20-byte file limit.
    let err = mirror
        .read_dir("main", "apps/a", Depth::TopLevel)
        .unwrap_err();
    assert!(
        matches!(err, GitError::FileTooLarge { ref path, size: 26, limit: 20, .. } if path == "apps/a/deploy.yaml"),
        "{err}"
    );
    assert!(err.to_string().contains("apps/a/deploy.yaml"), "{err}");
    // Each file of v1 fits, together they do not.
    let err = mirror.read_dir("v1", "", Depth::Recursive).unwrap_err();
    assert!(
        matches!(err, GitError::DirectoryTooLarge { limit: 35, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn deleted_refs_are_pruned_and_force_pushes_followed() {
    let fx = fixture();
    let daemon = GitDaemon::serve(&fx.upstream.base());
    let (_root, mirrors) = mirrors();
    let mirror = mirrors.mirror(&daemon.url("origin.git")).unwrap();
    mirror.fetch().await.unwrap();
    assert_eq!(mirror.resolve("feature").unwrap().commit, fx.feature);

    fx.upstream.git(&[
        "push", "--quiet", "origin", "--delete", "feature", "v1-light",
    ]);
    fx.upstream.git(&["reset", "--quiet", "--hard", &fx.first]);
    fx.upstream
        .git(&["push", "--quiet", "--force", "origin", "main"]);
    let outcome = mirror.fetch().await.unwrap();

    assert_eq!(outcome.pruned, 2);
    assert!(matches!(
        mirror.resolve("feature"),
        Err(GitError::RevisionNotFound { .. })
    ));
    assert!(matches!(
        mirror.resolve("v1-light"),
        Err(GitError::RevisionNotFound { .. })
    ));
    assert_eq!(mirror.resolve("main").unwrap().commit, fx.first);
    // The rewritten-away commit is still readable, so a diff across the force push works.
    assert_eq!(
        mirror.changed_paths(&fx.second, &fx.first).unwrap(),
        ["apps/a/deploy.yaml"]
    );
}

#[tokio::test]
async fn url_spellings_share_one_mirror() {
    let fx = fixture();
    let daemon = GitDaemon::serve(&fx.upstream.base());
    let (_root, mirrors) = mirrors();
    let base = format!("git://127.0.0.1:{}", daemon.port);
    let a = mirrors.mirror(&format!("{base}/origin.git")).unwrap();
    let b = mirrors.mirror(&format!("{base}/origin/")).unwrap();
    let c = mirrors.mirror(&format!("{base}/origin.git/")).unwrap();
    assert_eq!(a.path(), b.path());
    assert_eq!(a.path(), c.path());
    assert_eq!(mirrors.mirrors().len(), 1);

    b.fetch().await.unwrap();
    assert_eq!(c.resolve("main").unwrap().commit, fx.second);
    assert_eq!(a.fetches_started(), 1);

    let other = mirrors.mirror(&format!("{base}/other.git")).unwrap();
    assert_ne!(other.path(), a.path());
}

#[tokio::test]
async fn concurrent_fetches_of_one_mirror_run_once() {
    let fx = fixture();
    let daemon = GitDaemon::serve(&fx.upstream.base());
    let (_root, mirrors) = mirrors();
    let url = daemon.url("origin.git");
    let mirror = mirrors.mirror(&url).unwrap();
    let same = mirrors.mirror(&url).unwrap();

    let (r1, r2, r3, r4) = tokio::join!(mirror.fetch(), same.fetch(), mirror.fetch(), same.fetch());
    let generations: Vec<u64> = [r1, r2, r3, r4]
        .into_iter()
        .map(|r| r.unwrap().generation)
        .collect();
    assert_eq!(generations, [1, 1, 1, 1]);
    assert_eq!(mirror.fetches_started(), 1);

    // Once it is over, the next caller starts a fresh fetch.
    assert_eq!(mirror.fetch().await.unwrap().generation, 2);
}

#[tokio::test]
async fn refused_connection_fails_fast() {
    let (_root, mirrors) = mirrors();
    let port = common::free_port();
    let url = format!("git://127.0.0.1:{port}/origin.git");
    let mirror = mirrors.mirror(&url).unwrap();
    let started = Instant::now();
    let err = mirror.fetch().await.unwrap_err();
    assert!(
        matches!(err, GitError::FetchFailed { ref repo, .. } if *repo == url),
        "{err}"
    );
    assert!(
        err.to_string().contains("connection refused")
            || err.to_string().contains("Connection refused"),
        "{err}"
    );
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn missing_repository_on_a_live_daemon_fails() {
    let fx = fixture();
    let daemon = GitDaemon::serve(&fx.upstream.base());
    let (_root, mirrors) = mirrors();
    let mirror = mirrors.mirror(&daemon.url("nothing-here.git")).unwrap();
    let err = mirror.fetch().await.unwrap_err();
    assert!(err.to_string().contains("nothing-here.git"), "{err}");
    assert!(matches!(err, GitError::FetchFailed { .. }), "{err}");
}

#[tokio::test]
async fn stalled_server_times_out_without_hanging() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(2) {
            held.push(stream);
            // Time-driven: the stalled server holds each connection longer than the
            // fetch timeout under test.
            std::thread::sleep(Duration::from_secs(5));
        }
    });
    let root = tempfile::tempdir().unwrap();
    let config = MirrorsConfig {
        fetch_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let mirrors = Mirrors::with_config(root.path(), config);
    let url = format!("git://127.0.0.1:{port}/origin.git");
    let mirror = mirrors.mirror(&url).unwrap();

    let started = Instant::now();
    let err = mirror.fetch().await.unwrap_err();
    assert_eq!(
        err,
        GitError::Timeout {
            repo: url.clone(),
            after: Duration::from_secs(2)
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        format!("fetch of {url} timed out after 2s")
    );
    drop(holder);
}

#[tokio::test]
async fn file_urls_and_restarts_reuse_the_mirror() {
    let fx = fixture();
    let root = tempfile::tempdir().unwrap();
    let url = format!("file://{}", fx.upstream.bare().display());
    let local = || {
        Mirrors::with_config(
            root.path(),
            MirrorsConfig {
                allow_local: true,
                ..MirrorsConfig::default()
            },
        )
    };
    // Refused unless the operator allows local repositories.
    let err = Mirrors::new(root.path()).mirror(&url).err().unwrap();
    assert!(
        err.to_string().contains("--allow-local-repositories"),
        "{err}"
    );
    {
        let mirrors = local();
        let mirror = mirrors.mirror(&url).unwrap();
        mirror.fetch().await.unwrap();
        assert_eq!(mirror.resolve("v1").unwrap().commit, fx.first);
        // Even allowed, never the mirrors' own folder (other repositories' objects).
        let inside = format!("file://{}", root.path().display());
        let err = mirrors.mirror(&inside).err().unwrap();
        assert!(err.to_string().contains("mirrors folder"), "{err}");
    }
    // A new process over the same directory finds what was fetched before.
    let mirrors = local();
    let mirror = mirrors.mirror(&url).unwrap();
    assert_eq!(mirror.resolve("HEAD").unwrap().commit, fx.second);
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn an_empty_repository_fetches_to_nothing_then_fills() {
    let up = common::Upstream::new();
    let daemon = GitDaemon::serve(&up.base());
    let (_root, mirrors) = mirrors();
    let mirror = mirrors.mirror(&daemon.url("origin.git")).unwrap();

    let outcome = mirror.fetch().await.unwrap();
    assert_eq!(outcome.refs, 0);
    assert!(matches!(
        mirror.resolve("HEAD"),
        Err(GitError::RevisionNotFound { .. })
    ));

    up.write("a.yaml", "a: 1\n");
    let first = up.commit("first");
    up.push_all();
    mirror.fetch().await.unwrap();
    assert_eq!(mirror.resolve("").unwrap().commit, first);
}

#[tokio::test]
async fn symlinks_read_as_their_target_inside_the_repository_only() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir_all(w.join("apps/web")).unwrap();
    std::fs::create_dir_all(w.join("apps/linked")).unwrap();
    std::fs::create_dir_all(w.join("apps/leaky")).unwrap();
    std::fs::write(w.join("apps/web/svc.yaml"), "kind: Service\n").unwrap();
    for other in [
        "absolute", "boom", "escape", "forever", "missing", "scalars", "shared",
    ] {
        std::fs::create_dir_all(w.join("apps").join(other)).unwrap();
        std::fs::write(w.join("apps").join(other).join("main.jsonnet"), "{}\n").unwrap();
    }
    std::os::unix::fs::symlink("../web/svc.yaml", w.join("apps/linked/svc.yaml")).unwrap();
    std::os::unix::fs::symlink("../../../../etc/passwd", w.join("apps/leaky/x.yaml")).unwrap();
    gitfleet_gitkit::git(w, &["init", "--quiet", "--initial-branch=main"]);
    gitfleet_gitkit::git(w, &["add", "-A"]);
    gitfleet_gitkit::git(w, &["commit", "--quiet", "-m", "links"]);
    let root = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::with_config(
        root.path(),
        MirrorsConfig {
            allow_local: true,
            ..MirrorsConfig::default()
        },
    );
    let mirror = mirrors.mirror(&format!("file://{}", w.display())).unwrap();
    mirror.fetch().await.unwrap();
    let files = mirror
        .read_dir("main", "apps/linked", Depth::TopLevel)
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].path.as_str(), files[0].bytes.as_slice()),
        ("apps/linked/svc.yaml", &b"kind: Service\n"[..])
    );
    let err = mirror
        .read_dir("main", "apps/leaky", Depth::TopLevel)
        .unwrap_err();
    assert!(
        matches!(err, GitError::SymlinkOutside { ref path, .. } if path == "apps/leaky/x.yaml"),
        "{err}"
    );
}
