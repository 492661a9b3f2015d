//! No secret leaks: after a run that stores and uses every kind of credential (cluster
//! tokens, repository passwords and SSH keys, credential templates, settings Secrets) and
//! syncs an app with a Secret from Git, every CLI answer, every log line, every message
//! on the bus, every KV and object store byte and the NATS server's log are searched for
//! each secret.

use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use gitfleet_bus::{Bucket, ObjectStoreName, StreamName};
use gitfleet_e2e::{Sandbox, Timings, application};

/// Everything the process logs, as the services would print it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const GIT_SECRET: &str = "git-secret-value-93ad";

fn secret_yaml() -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\nstringData:\n  password: {GIT_SECRET}\n"
    )
}

const CONFIG: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n";

/// Every stored message of `stream` (headers and body), by sequence.
async fn stored(bus: &gitfleet_bus::Bus, stream: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(mut s) = bus.js.get_stream(stream).await else {
        return out;
    };
    let state = s.info().await.unwrap().state.clone();
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = s.get_raw_message(seq).await {
            out.extend_from_slice(m.subject.as_bytes());
            for (k, vs) in m.headers.iter() {
                for v in vs {
                    out.extend_from_slice(format!("{k}: {v}\n").as_bytes());
                }
            }
            out.extend_from_slice(&m.payload);
            out.push(b'\n');
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_in_answers_logs_bus_messages_or_stored_bytes() {
    Box::pin(run()).await;
}

async fn run() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let sb = Sandbox::start(
        &[("app/secret.yaml", &secret_yaml()), ("app/cm.yaml", CONFIG)],
        Timings::default(),
    )
    .await;
    // Every message on the bus from here on, as the admin may see them all.
    let mut all = sb.bus.client.subscribe(">").await.unwrap();
    let wire = Arc::new(Mutex::new(Vec::<u8>::new()));
    let wire_in = wire.clone();
    // Sync operations as they enter their stream, where they rest until an executor
    // has run them.
    let queued = Arc::new(Mutex::new(Vec::<u8>::new()));
    let queued_in = queued.clone();
    let sync_prefix = format!("{}.sync.", sb.bus.topology.prefix());
    let tap = tokio::spawn(async move {
        while let Some(m) = all.next().await {
            if m.subject.starts_with(sync_prefix.as_str()) {
                queued_in.lock().unwrap().extend_from_slice(&m.payload);
            }
            let mut w = wire_in.lock().unwrap();
            w.extend_from_slice(m.subject.as_bytes());
            if let Some(h) = &m.headers {
                for (k, vs) in h.iter() {
                    for v in vs {
                        w.extend_from_slice(format!("{k}: {v}\n").as_bytes());
                    }
                }
            }
            w.extend_from_slice(&m.payload);
            w.push(b'\n');
        }
    });
    sb.bus.client.flush().await.unwrap();

    let in_cluster_token = sb.sim.cluster(0).token.clone();
    let credentials: Vec<(&str, String)> = vec![
        ("the in-cluster token", in_cluster_token),
        (
            "an applied cluster's token",
            "applied-cluster-token-5f3a9".into(),
        ),
        (
            "a repository password (apply)",
            "repo-password-8c1e2".into(),
        ),
        (
            "a repository password (repo add)",
            "cli-repo-password-1a7f".into(),
        ),
        ("an SSH private key", "sshkeymaterial-4b9e".into()),
        (
            "a credential template's password",
            "template-password-77d0a".into(),
        ),
        ("a settings Secret", "xoxb-notify-2f6c1".into()),
    ];

    let setup = format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: far-away
  labels: {{argocd.argoproj.io/secret-type: cluster}}
stringData:
  name: far-away
  server: https://10.255.0.1:6443
  config: '{{"bearerToken": "applied-cluster-token-5f3a9", "tlsClientConfig": {{"insecure": true}}}}'
---
apiVersion: v1
kind: Secret
metadata:
  name: app-repo
  labels: {{argocd.argoproj.io/secret-type: repository}}
stringData:
  url: {repo}
  username: deploy
  password: repo-password-8c1e2
---
apiVersion: v1
kind: Secret
metadata:
  name: ssh-repo
  labels: {{argocd.argoproj.io/secret-type: repository}}
stringData:
  url: ssh://git@10.255.0.2/team/infra.git
  sshPrivateKey: |
    -----BEGIN OPENSSH PRIVATE KEY-----
    sshkeymaterial-4b9e
    -----END OPENSSH PRIVATE KEY-----
---
apiVersion: v1
kind: Secret
metadata:
  name: team-creds
  labels: {{argocd.argoproj.io/secret-type: repo-creds}}
stringData:
  url: https://git.example.com/team
  username: bot
  password: template-password-77d0a
---
apiVersion: v1
kind: Secret
metadata:
  name: argocd-notifications-secret
  labels: {{app.kubernetes.io/part-of: argocd}}
stringData:
  slack-token: xoxb-notify-2f6c1
"#,
        repo = sb.repo_url()
    );
    let mut answers = String::new();
    let mut cli = async |args: &[&str]| {
        let out = sb.cli(args).await;
        answers.push_str(&out.stdout);
        out
    };
    let f = sb.file("setup.yaml", &setup);
    let out = cli(&["apply", "-f", &f]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out = cli(&[
        "repo",
        "add",
        "https://git.example.org/team/app.git",
        "--username",
        "u",
        "--password",
        "cli-repo-password-1a7f",
    ])
    .await;
    // Whether or not it is reachable, the answer must not carry the password.
    let _ = out;
    let f = sb.file(
        "app.yaml",
        &application("vault", &sb.repo_url(), "app", None),
    );
    let out = cli(&["app", "create", "-f", &f]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    sb.until_status("vault", 60, "OutOfSync", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
    })
    .await;
    let out = cli(&["app", "diff", "vault"]).await;
    assert!(out.code <= 1, "{}", out.stdout);
    let out = cli(&["app", "sync", "vault"]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        sb.live("", "secrets", "vault", "db").is_some(),
        "the Secret from Git was applied"
    );
    sb.until_status("vault", 60, "Synced", |s| {
        Sandbox::sync_status(s) == "Synced"
    })
    .await;
    for args in [
        &["app", "get", "vault", "-o", "json"][..],
        &["app", "get", "vault"],
        &["app", "history", "vault"],
        &["app", "manifests", "vault"],
        &["app", "manifests", "vault", "--source", "live"],
        &["app", "list", "-o", "wide"],
        &["repo", "list"],
        &["cluster", "list"],
        &["proj", "get", "default"],
    ] {
        cli(args).await;
    }
    // A refused call about a credential-bearing object.
    cli(&["cluster", "rm", "nowhere"]).await;
    sb.bus.client.flush().await.unwrap();
    tap.abort();

    // Everything stored: every revision of every bucket, every stream, every object.
    let mut places: Vec<(String, String)> = vec![
        ("CLI answers".into(), answers),
        (
            "the services' logs".into(),
            String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned(),
        ),
        (
            "messages on the bus".into(),
            String::from_utf8_lossy(&wire.lock().unwrap()).into_owned(),
        ),
        ("the NATS server's log".into(), sb.nats.log()),
        (
            "sync operations queued on their stream".into(),
            String::from_utf8_lossy(&queued.lock().unwrap()).into_owned(),
        ),
    ];
    let topology = &sb.bus.topology;
    let mut stores: Vec<(String, String)> = Vec::new();
    for bucket in Bucket::ALL {
        stores.push((
            format!("KV {}", bucket.suffix()),
            format!("KV_{}", topology.bucket(bucket)),
        ));
    }
    for stream in StreamName::ALL {
        stores.push((
            format!("stream {}", stream.suffix()),
            topology.stream(stream),
        ));
    }
    for store in ObjectStoreName::ALL {
        stores.push((
            format!("object store {}", store.suffix()),
            format!("OBJ_{}", topology.object_store(store)),
        ));
    }
    for (place, stream) in stores {
        let bytes = stored(&sb.bus, &stream).await;
        places.push((place, String::from_utf8_lossy(&bytes).into_owned()));
    }
    assert!(
        places
            .iter()
            .any(|(p, t)| p == "KV clusters" && t.contains("far-away")),
        "the stored bytes were read"
    );

    let mut leaks = Vec::new();
    for (what, secret) in &credentials {
        for (place, text) in &places {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{what} in {place}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    // The bus really carried the run (the tap saw the sync), so the search means something.
    assert!(
        places[4].1.contains("\"Secret\""),
        "the tap saw the sync operation with the Secret"
    );
    assert!(places[2].1.contains("vault"), "the bus tap saw nothing");

    // A Secret's data from Git: in no answer, log line, status, operation, event, audit
    // record, queued sync operation or stored byte (the renderer seals its cache, the
    // diff worker the operation's Secret values). It does travel in clear in the render
    // replies and live answers between the services that need it.
    let git_leaks: Vec<&str> = places
        .iter()
        .filter(|(_, text)| text.contains(GIT_SECRET))
        .map(|(place, _)| place.as_str())
        .collect();
    assert!(
        git_leaks.iter().all(|p| *p == "messages on the bus"),
        "Secret data from Git in {git_leaks:?}"
    );
}
