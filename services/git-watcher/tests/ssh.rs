//! Git over SSH against a real OpenSSH `sshd` (from `cargo xtask tools`): the repository's
//! private key, the host key checked against the known hosts unless the repository is
//! `insecure`, errors that say why without showing the key; and the service taking the key
//! from a `repositories` entry in KV.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{KeyPair, SshServer, fixture};
use git_watcher::{Depth, GitError, Mirror, Mirrors, MirrorsConfig, SshCredentials, SshSettings};

/// Mirrors whose ssh fetches check host keys against `known_hosts`.
fn mirrors_trusting(known_hosts: &Path) -> (tempfile::TempDir, Mirrors) {
    let root = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::with_config(
        root.path().join("mirrors"),
        MirrorsConfig {
            ssh: SshSettings {
                known_hosts: known_hosts.to_owned(),
                ..SshSettings::default()
            },
            ..MirrorsConfig::default()
        },
    );
    (root, mirrors)
}

/// Every piece of `key` that could give it away: its base64 lines.
fn key_lines(key: &str) -> Vec<&str> {
    key.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect()
}

/// The failure of `mirror`'s next fetch, checked to name the repository and to show
/// nothing of the keys in `keys` (nor where the key file was).
async fn fetch_failure(mirror: &Mirror, keys: &[&str]) -> String {
    let err = mirror.fetch().await.expect_err("the fetch fails");
    let url = mirror.url().as_str().to_owned();
    let GitError::FetchFailed { repo, message } = &err else {
        panic!("not a fetch failure: {err}");
    };
    assert_eq!(*repo, url);
    let shown = format!("{err} {err:?}");
    assert!(shown.contains(&url), "{shown}");
    for key in keys {
        for line in key_lines(key) {
            assert!(!shown.contains(line), "key material in: {shown}");
        }
    }
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(
        !shown.contains("gitfleet-ssh-"),
        "key file path in: {shown}"
    );
    message.clone()
}

/// (a) and (d): the key of the repository and a known host key: fetched, resolved, read,
/// and fetched again after a push.
#[tokio::test]
async fn fetches_with_the_repository_key_from_a_known_host() {
    let fx = fixture();
    let server = SshServer::start();
    let config = tempfile::tempdir().unwrap();
    let known_hosts = server.write_known_hosts(config.path());
    let (_root, mirrors) = mirrors_trusting(&known_hosts);
    let url = server.url(&fx.upstream.bare());
    let mirror = mirrors.mirror(&url).unwrap();
    assert_eq!(mirror.url().as_str(), url);
    let creds = SshCredentials::new(server.client_key.private.clone(), false);
    for line in key_lines(&server.client_key.private) {
        assert!(!format!("{creds:?}").contains(line));
    }
    mirror.set_ssh_credentials(Some(creds));

    let outcome = mirror
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", server.log()));
    assert_eq!(outcome.default_branch.as_deref(), Some("refs/heads/main"));
    assert_eq!(outcome.refs, 4, "main, feature, v1, v1-light");
    assert_eq!(mirror.resolve("HEAD").unwrap().commit, fx.second);
    assert_eq!(mirror.resolve("v1").unwrap().commit, fx.first);
    assert_eq!(mirror.resolve("feature").unwrap().commit, fx.feature);
    let files = mirror
        .read_dir(&fx.feature, "apps/b", Depth::Recursive)
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

    fx.upstream.write("apps/a/more.yaml", "x: 1\n");
    let next = fx.upstream.commit("more");
    fx.upstream.push_all();
    mirror.fetch().await.unwrap();
    assert_eq!(mirror.resolve("main").unwrap().commit, next);
    assert_eq!(
        mirror.changed_paths(&fx.second, &next).unwrap(),
        ["apps/a/more.yaml"]
    );
    // Checking never writes to the known hosts.
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        format!("{}\n", server.known_hosts_line)
    );
}

/// (b): a key the server does not accept, or none, fails with ssh's reason, the
/// repository's URL and nothing of either key; the right key then works on the same mirror.
#[tokio::test]
async fn a_wrong_key_is_refused_with_a_clear_message_and_no_key_material() {
    let fx = fixture();
    let server = SshServer::start();
    let config = tempfile::tempdir().unwrap();
    let known_hosts = server.write_known_hosts(config.path());
    let (_root, mirrors) = mirrors_trusting(&known_hosts);
    let mirror = mirrors.mirror(&server.url(&fx.upstream.bare())).unwrap();
    let wrong = KeyPair::generate();
    let keys = [wrong.private.as_str(), server.client_key.private.as_str()];

    mirror.set_ssh_credentials(Some(SshCredentials::new(wrong.private.clone(), false)));
    let message = fetch_failure(&mirror, &keys).await;
    assert!(
        message.contains("Permission denied (publickey)"),
        "{message}"
    );
    assert!(
        message.contains("did not accept the repository's sshPrivateKey"),
        "{message}"
    );

    // Not even the host's own keys or agent are tried without one.
    mirror.set_ssh_credentials(None);
    let message = fetch_failure(&mirror, &keys).await;
    assert!(message.contains("Permission denied"), "{message}");
    assert!(message.contains("has no sshPrivateKey"), "{message}");

    // Not a key at all: ssh's complaint, still nothing of it.
    let garbage = "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbCwgcmVhbGx5\n\
                   -----END OPENSSH PRIVATE KEY-----\n";
    mirror.set_ssh_credentials(Some(SshCredentials::new(garbage, false)));
    let message = fetch_failure(&mirror, &[garbage]).await;
    assert!(message.contains("Permission denied"), "{message}");

    mirror.set_ssh_credentials(Some(SshCredentials::new(
        server.client_key.private.clone(),
        false,
    )));
    mirror
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", server.log()));
    assert_eq!(mirror.resolve("main").unwrap().commit, fx.second);
}

/// (c): a host key missing from the known hosts, or another key for the host, is refused
/// and the message says where host keys are looked up; `insecure: true` skips the check
/// (Argo CD's `StrictHostKeyChecking=no`, `UserKnownHostsFile=/dev/null`) and leaves the
/// known hosts as they were.
#[tokio::test]
async fn an_unknown_host_key_is_refused_unless_the_repository_is_insecure() {
    let fx = fixture();
    let server = SshServer::start();
    let config = tempfile::tempdir().unwrap();
    let key = server.client_key.private.clone();

    // No known hosts file at all (Argo CD's ConfigMap not mounted): no host is known.
    let missing: PathBuf = config.path().join("ssh_known_hosts");
    let (_root, mirrors) = mirrors_trusting(&missing);
    let mirror = mirrors.mirror(&server.url(&fx.upstream.bare())).unwrap();
    mirror.set_ssh_credentials(Some(SshCredentials::new(key.clone(), false)));
    let message = fetch_failure(&mirror, &[&key]).await;
    assert!(
        message.contains("Host key verification failed"),
        "{message}"
    );
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("insecure: true"), "{message}");

    // Known hosts that hold another key for this host and port.
    let impostor = KeyPair::generate();
    let other_key: Vec<&str> = impostor.public.split_whitespace().take(2).collect();
    std::fs::write(
        &missing,
        format!("[127.0.0.1]:{} {}\n", server.port, other_key.join(" ")),
    )
    .unwrap();
    let message = fetch_failure(&mirror, &[&key]).await;
    assert!(
        message.contains("Host key verification failed"),
        "{message}"
    );

    // Insecure: fetched; nothing was added to the known hosts.
    let before = std::fs::read_to_string(&missing).unwrap();
    mirror.set_ssh_credentials(Some(SshCredentials::new(key.clone(), true)));
    mirror
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", server.log()));
    assert_eq!(mirror.resolve("main").unwrap().commit, fx.second);
    assert_eq!(std::fs::read_to_string(&missing).unwrap(), before);

    // And with the host's real key listed, the check passes without `insecure`.
    std::fs::write(&missing, format!("{}\n", server.known_hosts_line)).unwrap();
    mirror.set_ssh_credentials(Some(SshCredentials::new(key, false)));
    mirror.fetch().await.unwrap();
}

/// A server that never speaks (here an `ssh` that never does) is not waited for past the
/// fetch timeout: the `ssh` process is killed then, so the fetch thread ends too.
#[tokio::test]
async fn a_stalled_ssh_is_killed_at_the_fetch_timeout() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let program = dir.path().join("ssh");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec sleep 600\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::with_config(
        root.path(),
        MirrorsConfig {
            fetch_timeout: Duration::from_secs(2),
            ssh: SshSettings {
                known_hosts: dir.path().join("known_hosts"),
                program,
            },
            ..MirrorsConfig::default()
        },
    );
    let url = "ssh://git@127.0.0.1:9/stalled.git";
    let mirror = mirrors.mirror(url).unwrap();
    mirror.set_ssh_credentials(Some(SshCredentials::new(
        KeyPair::generate().private,
        false,
    )));

    let started = Instant::now();
    let err = mirror.fetch().await.unwrap_err();
    assert_eq!(
        err,
        GitError::Timeout {
            repo: url.to_owned(),
            after: Duration::from_secs(2)
        }
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
    // Killed and reaped: polled, within a deadline well under the script's sleep.
    let deadline = Instant::now() + Duration::from_secs(20);
    while proc.exists() {
        assert!(Instant::now() < deadline, "the stalled ssh still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The service: the key comes from the `repositories` entry in KV (Argo CD's repository
/// Secret fields). The service's known hosts file (its `ssh_known_hosts` setting) is
/// absent, so
/// the host key is refused until the entry says `insecure: true`; then resolve and files
/// requests are answered over ssh, and an app on the repository gets its revision event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_fetches_with_the_key_of_the_repository_entry() {
    use futures::StreamExt;
    use gitfleet_bus::{Bucket, subject_token, testkit};
    use gitfleet_messages::{Files, Reply, Resolved, RevisionEvent};
    use tokio::time::Instant;

    let fx = fixture();
    let server = SshServer::start();
    let url = server.url(&fx.upstream.bare());
    let key = server.client_key.private.clone();
    let bus = testkit::bus().await;
    let mirrors = tempfile::tempdir().unwrap();
    let mut config = git_watcher::Config::new(mirrors.path());
    let known_hosts = mirrors.path().join("ssh_known_hosts");
    config.ssh_known_hosts = known_hosts.clone();
    config.fetch_timeout = Duration::from_secs(30);
    config.poll_interval = Duration::from_secs(3600);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service = git_watcher::start(config, bus.clone(), shutdown.clone())
        .await
        .unwrap();
    let running = tokio::spawn(service.wait());
    let repositories = bus.kv(Bucket::Repositories).await.unwrap();
    let put_entry = |insecure: bool| {
        let repositories = repositories.clone();
        let value = serde_json::json!({
            "repo": url.clone(),
            "sshPrivateKey": key.clone(),
            "insecure": insecure,
        });
        async move {
            repositories
                .put("ssh-repo", serde_json::to_vec(&value).unwrap().into())
                .await
                .unwrap();
        }
    };
    let ask = |subject: String, body: serde_json::Value| {
        let bus = bus.clone();
        async move {
            let message = tokio::time::timeout(
                Duration::from_secs(60),
                bus.client
                    .request(subject, serde_json::to_vec(&body).unwrap().into()),
            )
            .await
            .expect("reply in time")
            .expect("reply");
            bus.read_payload(&message).await.unwrap()
        }
    };
    let resolve = || {
        ask(
            bus.topology.git_resolve_subject(),
            serde_json::json!({"repo": url.clone(), "revision": "main"}),
        )
    };
    let check_no_key = |text: &str| {
        for line in key_lines(&key) {
            assert!(!text.contains(line), "key material in: {text}");
        }
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    };

    // Refused: the host key is unknown, with or without the entry's key.
    put_entry(false).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply: Reply<Resolved> = serde_json::from_slice(&resolve().await).unwrap();
        let Reply::Error(err) = reply else {
            panic!("resolved although the host key is unknown: {reply:?}");
        };
        check_no_key(&err.message);
        assert!(err.message.contains(&url), "{err:?}");
        if err.message.contains("Host key verification failed")
            && err.message.contains(&known_hosts.display().to_string())
        {
            break;
        }
        assert!(Instant::now() < deadline, "never refused the host: {err:?}");
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Insecure: the entry's key gets in once the watch has delivered the entry.
    put_entry(true).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let resolved = loop {
        let reply: Reply<Resolved> = serde_json::from_slice(&resolve().await).unwrap();
        match reply {
            Reply::Ok(resolved) => break resolved,
            Reply::Error(err) => {
                check_no_key(&err.message);
                assert!(
                    Instant::now() < deadline,
                    "never resolved: {err:?}\nsshd log:\n{}",
                    server.log()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(resolved.commit, fx.second);

    let files: Reply<Files> = serde_json::from_slice(
        &ask(
            bus.topology.git_files_subject(),
            serde_json::json!({
                "repo": url.clone(),
                "commit": fx.second.clone(),
                "path": "apps",
                "recurse": true,
            }),
        )
        .await,
    )
    .unwrap();
    let files = files.into_result().unwrap().files;
    let listed: Vec<_> = files
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("apps/a/deploy.yaml", "kind: Deployment\nspec: {}\n"),
            ("apps/b/cm.yaml", "kind: ConfigMap\n")
        ]
    );

    // An app on the repository: followed over ssh like any other.
    let prefix = bus.topology.prefix().to_owned();
    let mut events = bus
        .client
        .subscribe(format!("{prefix}.revision.>"))
        .await
        .unwrap();
    let app = serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "over-ssh", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": url.clone(), "path": "apps/a", "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "default"}
        }
    });
    bus.kv(Bucket::Applications)
        .await
        .unwrap()
        .put(
            subject_token("over-ssh"),
            serde_json::to_vec(&app).unwrap().into(),
        )
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("a revision event within 30 s")
        .expect("subscription open");
    let event: RevisionEvent = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(
        (event.repo.as_str(), event.to.as_str()),
        (url.as_str(), fx.second.as_str())
    );

    shutdown.cancel();
    let _ = running.await;
}
