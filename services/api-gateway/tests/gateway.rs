//! The gateway against a real nats-server: what lands in KV, what callers get back, and
//! what the webhook publishes.

use std::time::Duration;

use api_gateway::{Config, Listeners};
use futures::StreamExt;
use gitfleet_bus::{Bucket, Bus, subject_token, testkit};
use gitfleet_messages::RefreshRequest;
use gitfleet_proto::v1::application_service_client::ApplicationServiceClient;
use gitfleet_proto::v1::cluster_service_client::ClusterServiceClient;
use gitfleet_proto::v1::repository_service_client::RepositoryServiceClient;
use gitfleet_proto::v1::*;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const SECRET: &str = "hook-s3cret";

struct Gateway {
    bus: Bus,
    channel: Channel,
    http: String,
    shutdown: CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Gateway {
    async fn start() -> Gateway {
        let bus = testkit::bus().await;
        let config = Config {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            webhook_secrets: api_gateway::webhook::WebhookSecrets {
                github: Some(SECRET.to_string().into()),
                gitlab: Some(SECRET.to_string().into()),
                ..Default::default()
            },
            webhook_max_payload_bytes: 64 << 10,
            operation_timeout: Duration::from_secs(2),
            disable_auth: true,
            ..Config::default()
        };
        let listeners: Listeners = api_gateway::bind(&config).await.unwrap();
        let grpc = listeners.grpc_addr();
        let http = format!("http://{}", listeners.http_addr());
        let shutdown = CancellationToken::new();
        tokio::spawn(api_gateway::serve(
            config,
            listeners,
            bus.clone(),
            shutdown.clone(),
        ));
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Gateway {
            bus,
            channel,
            http,
            shutdown,
        }
    }

    fn apps(&self) -> ApplicationServiceClient<Channel> {
        ApplicationServiceClient::new(self.channel.clone())
    }

    async fn kv_json(&self, bucket: Bucket, name: &str) -> Option<serde_json::Value> {
        let kv = self.bus.kv(bucket).await.unwrap();
        kv.get(subject_token(name))
            .await
            .unwrap()
            .map(|b| self.bus.decode_document(bucket, name, &b).unwrap())
    }
}

fn app_yaml(name: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: argocd
  labels:
    team: web
spec:
  project: default
  source:
    repoURL: https://github.com/argoproj/argocd-example-apps.git
    targetRevision: HEAD
    path: guestbook
  destination:
    server: https://kubernetes.default.svc
    namespace: guestbook
"#
    )
}

#[tokio::test]
async fn created_app_is_stored_and_read_back() {
    let gw = Gateway::start().await;
    let created = gw
        .apps()
        .create(CreateApplicationRequest {
            manifest_yaml: app_yaml("guestbook"),
            upsert: false,
        })
        .await
        .unwrap()
        .into_inner();
    let created: serde_json::Value = serde_json::from_str(&created.application_json).unwrap();
    assert_eq!(created["metadata"]["name"], "guestbook");

    let stored = gw.kv_json(Bucket::Applications, "guestbook").await.unwrap();
    assert_eq!(stored["spec"]["source"]["path"], "guestbook");
    assert_eq!(stored["spec"]["destination"]["namespace"], "guestbook");

    let again = gw
        .apps()
        .create(CreateApplicationRequest {
            manifest_yaml: app_yaml("guestbook"),
            upsert: false,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");
    gw.apps()
        .create(CreateApplicationRequest {
            manifest_yaml: app_yaml("guestbook"),
            upsert: true,
        })
        .await
        .unwrap();

    let got = gw
        .apps()
        .get(GetApplicationRequest {
            name: "guestbook".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.application_json.contains("argocd-example-apps"));
    let missing = gw
        .apps()
        .get(GetApplicationRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(missing.message(), "application \"nope\" not found");

    gw.apps()
        .delete(DeleteApplicationRequest {
            name: "guestbook".into(),
            cascade: false,
        })
        .await
        .unwrap();
    assert!(
        gw.kv_json(Bucket::Applications, "guestbook")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn invalid_manifests_list_every_problem() {
    let gw = Gateway::start().await;
    let create = |yaml: String| {
        let mut client = gw.apps();
        async move {
            client
                .create(CreateApplicationRequest {
                    manifest_yaml: yaml,
                    upsert: false,
                })
                .await
                .unwrap_err()
        }
    };

    let no_destination = app_yaml("a")
        .replace("  destination:\n    server: https://kubernetes.default.svc\n    namespace: guestbook\n", "")
        .replace("repoURL: https://github.com/argoproj/argocd-example-apps.git", "repoURL: 'not a url'");
    let err = create(no_destination).await;
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let msg = err.message();
    assert!(msg.contains("spec.destination"), "{msg}");
    assert!(msg.contains("spec.source.repoURL"), "{msg}");
    assert!(msg.lines().count() >= 3, "one problem a line: {msg}");

    let err = create(app_yaml("b").replace("kind: Application", "kind: Deployment")).await;
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("unsupported kind \"Deployment\""),
        "{}",
        err.message()
    );

    let err = create("a: [unclosed".to_string()).await;
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("invalid yaml"), "{}", err.message());

    let kv = gw.bus.kv(Bucket::Applications).await.unwrap();
    let keys: Vec<_> = kv.keys().await.unwrap().collect().await;
    assert!(keys.is_empty(), "nothing stored: {keys:?}");
}

#[tokio::test]
async fn list_pages_in_name_order_and_filters_by_destination_and_repo() {
    let gw = Gateway::start().await;
    for i in 0..25 {
        let name = format!("a{i:02}");
        let mut yaml = app_yaml(&name);
        if i % 2 == 1 {
            yaml = yaml.replace("namespace: guestbook", "namespace: odd");
        }
        if i % 5 == 0 {
            yaml = yaml.replace(
                "https://github.com/argoproj/argocd-example-apps.git",
                "git@github.com:team/infra.git",
            );
        }
        gw.apps()
            .create(CreateApplicationRequest {
                manifest_yaml: yaml,
                upsert: false,
            })
            .await
            .unwrap();
    }
    // Every page from the index right after the writes: a listing sees them.
    let pages = |req: ListApplicationsRequest| {
        let mut client = gw.apps();
        async move {
            let mut all = Vec::new();
            let mut req = req;
            let mut sizes = Vec::new();
            loop {
                let res = client.list(req.clone()).await.unwrap().into_inner();
                sizes.push(res.items_json.len());
                for j in &res.items_json {
                    let v: serde_json::Value = serde_json::from_str(j).unwrap();
                    all.push(v["metadata"]["name"].as_str().unwrap().to_string());
                }
                if res.r#continue.is_empty() {
                    return (all, sizes);
                }
                assert_eq!(
                    &res.r#continue,
                    all.last().unwrap(),
                    "continue is the last name"
                );
                req.r#continue = res.r#continue;
            }
        }
    };
    let every: Vec<String> = (0..25).map(|i| format!("a{i:02}")).collect();
    let (all, sizes) = pages(ListApplicationsRequest {
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(all, every);
    assert_eq!(sizes, [10, 10, 5]);
    let (all, sizes) = pages(ListApplicationsRequest::default()).await;
    assert_eq!((all, sizes), (every.clone(), vec![25]));

    let (odd, _) = pages(ListApplicationsRequest {
        namespace: "odd".into(),
        limit: 4,
        ..Default::default()
    })
    .await;
    let want: Vec<String> = (0..25)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("a{i:02}"))
        .collect();
    assert_eq!(odd, want);
    // By repository, compared as Argo CD normalises URLs (scp-like, `.git`, case).
    let (infra, _) = pages(ListApplicationsRequest {
        repo: "ssh://git@GitHub.com/team/infra".into(),
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(infra, ["a00", "a05", "a10", "a15", "a20"]);
    let (in_cluster, _) = pages(ListApplicationsRequest {
        cluster: "https://kubernetes.default.svc/".into(),
        namespace: "guestbook".into(),
        project: "default".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(in_cluster.len(), 13);
    let (none, sizes) = pages(ListApplicationsRequest {
        cluster: "elsewhere".into(),
        limit: 3,
        ..Default::default()
    })
    .await;
    assert!(none.is_empty() && sizes == [0], "{none:?} {sizes:?}");

    // A deleted app leaves the listing at once.
    gw.apps()
        .delete(DeleteApplicationRequest {
            name: "a03".into(),
            cascade: false,
        })
        .await
        .unwrap();
    let (all, _) = pages(ListApplicationsRequest::default()).await;
    assert_eq!(all.len(), 24);
    assert!(!all.contains(&"a03".to_string()));
}

#[tokio::test]
async fn list_filters_by_sync_and_health_status() {
    let gw = Gateway::start().await;
    for name in ["synced", "drifted", "fresh"] {
        gw.apps()
            .create(CreateApplicationRequest {
                manifest_yaml: app_yaml(name),
                upsert: false,
            })
            .await
            .unwrap();
    }
    let status = gw.bus.kv(Bucket::AppStatus).await.unwrap();
    for (name, sync, health) in [
        ("synced", "Synced", "Healthy"),
        ("drifted", "OutOfSync", "Degraded"),
    ] {
        let doc = serde_json::json!({"sync": {"status": sync}, "health": {"status": health}});
        status
            .put(
                subject_token(name),
                serde_json::to_vec(&doc).unwrap().into(),
            )
            .await
            .unwrap();
    }
    let names = |req: ListApplicationsRequest| {
        let mut client = gw.apps();
        async move {
            client.list(req).await.map(|r| {
                r.into_inner()
                    .items_json
                    .iter()
                    .map(|j| {
                        let v: serde_json::Value = serde_json::from_str(j).unwrap();
                        v["metadata"]["name"].as_str().unwrap().to_string()
                    })
                    .collect::<Vec<_>>()
            })
        }
    };
    assert_eq!(
        names(ListApplicationsRequest::default()).await.unwrap(),
        ["drifted", "fresh", "synced"]
    );
    let out_of_sync = ListApplicationsRequest {
        sync_status: "OutOfSync".into(),
        ..Default::default()
    };
    assert_eq!(names(out_of_sync).await.unwrap(), ["drifted"]);
    let unknown = ListApplicationsRequest {
        sync_status: "Unknown".into(),
        ..Default::default()
    };
    assert_eq!(names(unknown).await.unwrap(), ["fresh"]);
    let healthy = ListApplicationsRequest {
        health_status: "Healthy".into(),
        ..Default::default()
    };
    assert_eq!(names(healthy).await.unwrap(), ["synced"]);
    let by_label = ListApplicationsRequest {
        selector: "team=web".into(),
        sync_status: "Synced".into(),
        ..Default::default()
    };
    assert_eq!(names(by_label).await.unwrap(), ["synced"]);
    let bad = ListApplicationsRequest {
        sync_status: "Sideways".into(),
        ..Default::default()
    };
    let err = names(bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let got = gw
        .apps()
        .get(GetApplicationRequest {
            name: "drifted".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let got: serde_json::Value = serde_json::from_str(&got.application_json).unwrap();
    assert_eq!(got["status"]["sync"]["status"], "OutOfSync");
}

#[tokio::test]
async fn webhook_publishes_refresh_requests() {
    let gw = Gateway::start().await;
    let mut sub = gw
        .bus
        .client
        .subscribe(gw.bus.topology.webhook_subject())
        .await
        .unwrap();
    gw.bus.client.flush().await.unwrap();
    let body = serde_json::json!({
        "ref": "refs/heads/main",
        "repository": {
            "clone_url": "https://github.com/org/config.git",
            "html_url": "https://github.com/org/config",
        },
    })
    .to_string();
    let http = reqwest::Client::new();
    let url = format!("{}/api/webhook", gw.http);
    let res = http
        .post(&url)
        .header(
            "X-Hub-Signature-256",
            api_gateway::webhook::sign(SECRET.as_bytes(), body.as_bytes()),
        )
        .header("X-GitHub-Event", "push")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut repos = Vec::new();
    for _ in 0..2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("a refresh request within 5 s")
            .unwrap();
        let req: RefreshRequest = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(req.app, None);
        repos.push(req.repo.unwrap());
    }
    repos.sort();
    assert_eq!(
        repos,
        [
            "https://github.com/org/config",
            "https://github.com/org/config.git"
        ]
    );

    let res = http
        .post(&url)
        .header(
            "X-Hub-Signature-256",
            api_gateway::webhook::sign(b"wrong", body.as_bytes()),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(res.status(), 401, "missing signature");

    let junk = "{not json";
    let res = http
        .post(&url)
        .header(
            "X-Hub-Signature-256",
            api_gateway::webhook::sign(SECRET.as_bytes(), junk.as_bytes()),
        )
        .body(junk)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("not valid json"));

    // A body over the limit is refused before anything is published.
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(100 << 10));
    let res = http
        .post(&url)
        .header(
            "X-Hub-Signature-256",
            api_gateway::webhook::sign(SECRET.as_bytes(), huge.as_bytes()),
        )
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    // GitLab: its token header, and its payload's URLs.
    let gitlab = serde_json::json!({
        "object_kind": "push",
        "project": {"git_http_url": "https://gitlab.com/org/app.git"},
    })
    .to_string();
    let res = http
        .post(&url)
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", "not the secret")
        .body(gitlab.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(!res.text().await.unwrap().contains(SECRET));
    let res = http
        .post(&url)
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", SECRET)
        .body(gitlab)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("the GitLab refresh within 5 s")
        .unwrap();
    let req: RefreshRequest = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(req.repo.as_deref(), Some("https://gitlab.com/org/app.git"));

    // Nothing but those deliveries' requests was published.
    let extra = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
    assert!(extra.is_err(), "unexpected message: {extra:?}");
}

#[tokio::test]
async fn clusters_and_repositories_never_return_credentials() {
    let gw = Gateway::start().await;
    let mut clusters = ClusterServiceClient::new(gw.channel.clone());
    let created = clusters
        .create(CreateClusterRequest {
            name: "c1".into(),
            server: "https://127.0.0.1:6443".into(),
            bearer_token: "tok-SECRET-123".into(),
            ca_data: "Q0E=".into(),
            insecure: false,
            upsert: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !created.cluster_json.contains("tok-SECRET-123"),
        "{}",
        created.cluster_json
    );
    // The token is stored, for the executor.
    let stored = gw.kv_json(Bucket::Clusters, "c1").await.unwrap();
    assert_eq!(stored["config"]["bearerToken"], "tok-SECRET-123");

    let listed = clusters
        .list(ListClustersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.items_json.len(), 1);
    assert!(!listed.items_json[0].contains("tok-SECRET-123"));
    assert!(listed.items_json[0].contains("https://127.0.0.1:6443"));
    let by_server = clusters
        .get(GetClusterRequest {
            name: "https://127.0.0.1:6443".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(by_server.cluster_json.contains("\"name\":\"c1\""));
    assert!(!by_server.cluster_json.contains("tok-SECRET-123"));

    let mut repos = RepositoryServiceClient::new(gw.channel.clone());
    let created = repos
        .create(CreateRepositoryRequest {
            repo: "https://git.example.com/org/config.git".into(),
            username: "bot".into(),
            password: "pw-SECRET-456".into(),
            r#type: String::new(),
            upsert: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!created.repository_json.contains("pw-SECRET-456"));
    let listed = repos
        .list(ListRepositoriesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.items_json.len(), 1);
    assert!(!listed.items_json[0].contains("pw-SECRET-456"));
    assert!(listed.items_json[0].contains("\"username\":\"bot\""));
    let bad = repos
        .create(CreateRepositoryRequest {
            repo: "not a url".into(),
            r#type: "svn".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert_eq!(bad.message().lines().count(), 2, "{}", bad.message());
}

#[tokio::test]
async fn sync_without_a_diff_worker_fails_at_once() {
    let gw = Gateway::start().await;
    gw.apps()
        .create(CreateApplicationRequest {
            manifest_yaml: app_yaml("lonely"),
            upsert: false,
        })
        .await
        .unwrap();
    let err = gw
        .apps()
        .sync(SyncApplicationRequest {
            name: "lonely".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message().starts_with("no diff worker"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn sync_times_out_when_the_worker_never_finishes() {
    let gw = Gateway::start().await;
    gw.apps()
        .create(CreateApplicationRequest {
            manifest_yaml: app_yaml("slow"),
            upsert: false,
        })
        .await
        .unwrap();
    // Listens, never acts.
    let subject = gw
        .bus
        .topology
        .sync_request_subject(gitfleet_bus::partition(
            "slow",
            gitfleet_messages::APP_PARTITIONS,
        ));
    let _sub = gw.bus.client.subscribe(subject).await.unwrap();
    gw.bus.client.flush().await.unwrap();
    let err = gw
        .apps()
        .sync(SyncApplicationRequest {
            name: "slow".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("\"slow\""), "{}", err.message());
}

#[tokio::test]
async fn sync_returns_the_operation_a_worker_finishes() {
    let gw = Gateway::start().await;
    gw.apps()
        .create(CreateApplicationRequest {
            manifest_yaml: app_yaml("web"),
            upsert: false,
        })
        .await
        .unwrap();
    // A stand-in diff worker: answers every sync request with a finished operation.
    let subject = gw
        .bus
        .topology
        .sync_request_subject(gitfleet_bus::partition(
            "web",
            gitfleet_messages::APP_PARTITIONS,
        ));
    let mut sub = gw.bus.client.subscribe(subject).await.unwrap();
    gw.bus.client.flush().await.unwrap();
    let ops = gw.bus.kv(Bucket::Operations).await.unwrap();
    let gw_client = gw.bus.client.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let req: gitfleet_messages::SyncRequest = serde_json::from_slice(&msg.payload).unwrap();
            let op = serde_json::json!({
                "id": "op-1", "app": req.app, "phase": "Succeeded", "message": "successfully synced",
                "revision": "abc123", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z",
                "resources": [{"group": "apps", "kind": "Deployment", "namespace": "guestbook", "name": "web", "status": "Synced"}],
            });
            ops.put(
                subject_token(&req.app),
                serde_json::to_vec(&op).unwrap().into(),
            )
            .await
            .unwrap();
            let reply = serde_json::json!({"ok": "op-1"});
            gw_client
                .publish(
                    msg.reply.unwrap(),
                    serde_json::to_vec(&reply).unwrap().into(),
                )
                .await
                .unwrap();
        }
    });
    let res = gw
        .apps()
        .sync(SyncApplicationRequest {
            name: "web".into(),
            prune: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.phase, "Succeeded");
    assert_eq!(res.revision, "abc123");
    assert_eq!(res.resources_json.len(), 1);
}

/// Answers every request on `subject` with `reply` (a `Reply` JSON).
async fn responder(bus: &Bus, subject: String, reply: serde_json::Value) {
    let mut sub = bus.client.subscribe(subject).await.unwrap();
    let client = bus.client.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(to) = msg.reply {
                client
                    .publish(to, serde_json::to_vec(&reply).unwrap().into())
                    .await
                    .unwrap();
            }
        }
    });
}

#[tokio::test]
async fn diff_compares_rendered_with_live_through_the_owners() {
    let gw = Gateway::start().await;
    gw.apps()
        .create(CreateApplicationRequest {
            manifest_yaml: app_yaml("guestbook"),
            upsert: false,
        })
        .await
        .unwrap();
    let cm = |name: &str, value: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": value}});
    responder(
        &gw.bus,
        gw.bus.topology.git_resolve_subject(),
        serde_json::json!({"ok": {"commit": "c0ffee"}}),
    )
    .await;
    responder(
        &gw.bus,
        gw.bus.topology.render_subject(),
        serde_json::json!({"ok": {"manifests": [cm("same", "1"), cm("changed", "new")]}}),
    )
    .await;
    // Live as a sync left it: in the destination namespace, with the tracking id.
    let app = match gitfleet_model::from_yaml_str(&app_yaml("guestbook")).unwrap() {
        gitfleet_model::Manifest::Application(app) => *app,
        other => panic!("{other:?}"),
    };
    let live = gitfleet_engine::app::prepare_desired(
        &[cm("same", "1"), cm("changed", "old")],
        &app,
        "argocd",
    );
    let (live_same, live_changed) = (live[0].clone(), live[1].clone());
    let stale = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "stale", "namespace": "guestbook"}, "data": {"pw": "c2VjcmV0LXZhbHVl"}});
    responder(
        &gw.bus,
        gw.bus
            .topology
            .live_request_subject(gitfleet_messages::IN_CLUSTER),
        serde_json::json!({"ok": {"resources": [live_same, live_changed, stale]}}),
    )
    .await;
    gw.bus.client.flush().await.unwrap();

    let res = gw
        .apps()
        .diff(DiffApplicationRequest {
            name: "guestbook".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(res.has_diff);
    let text = res.diff;
    assert!(
        text.contains("===== /ConfigMap guestbook/changed ======"),
        "{text}"
    );
    assert!(
        text.contains("-  a: old") && text.contains("+  a: new"),
        "{text}"
    );
    assert!(!text.contains("guestbook/same"), "{text}");
    assert!(
        text.contains("===== /Secret guestbook/stale ======"),
        "{text}"
    );
    assert!(!text.contains("c2VjcmV0LXZhbHVl"), "secret shown: {text}");
}

#[tokio::test]
async fn cascade_delete_asks_the_owner_then_forgets_the_app() {
    let gw = Gateway::start().await;
    gw.apps()
        .create(CreateApplicationRequest {
            manifest_yaml: app_yaml("doomed"),
            upsert: false,
        })
        .await
        .unwrap();
    // A stand-in for the diff worker owning the app's partition: it is asked for the
    // cascade delete (the gateway enqueues nothing itself) and reports it done.
    let subject = gw
        .bus
        .topology
        .sync_request_subject(gitfleet_bus::partition(
            "doomed",
            gitfleet_messages::APP_PARTITIONS,
        ));
    let mut sub = gw.bus.client.subscribe(subject).await.unwrap();
    let mut executors = gw
        .bus
        .client
        .subscribe(format!("{}.sync.*", gw.bus.topology.prefix()))
        .await
        .unwrap();
    gw.bus.client.flush().await.unwrap();
    let ops = gw.bus.kv(Bucket::Operations).await.unwrap();
    let client = gw.bus.client.clone();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let msg = sub.next().await.unwrap();
        let req: gitfleet_messages::SyncRequest = serde_json::from_slice(&msg.payload).unwrap();
        let done = serde_json::json!({
            "id": "del-1", "app": req.app, "phase": "Succeeded", "message": "pruned",
            "revision": "", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z",
        });
        ops.put(
            subject_token(&req.app),
            serde_json::to_vec(&done).unwrap().into(),
        )
        .await
        .unwrap();
        let reply = serde_json::json!({"ok": "del-1"});
        client
            .publish(
                msg.reply.unwrap(),
                serde_json::to_vec(&reply).unwrap().into(),
            )
            .await
            .unwrap();
        let _ = seen_tx.send(req);
    });
    gw.apps()
        .delete(DeleteApplicationRequest {
            name: "doomed".into(),
            cascade: true,
        })
        .await
        .unwrap();
    let req = seen_rx.await.unwrap();
    assert!(req.delete_resources, "{req:?}");
    assert!(gw.kv_json(Bucket::Applications, "doomed").await.is_none());
    assert!(gw.kv_json(Bucket::Operations, "doomed").await.is_none());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), executors.next())
            .await
            .is_err(),
        "the gateway enqueued a sync operation itself"
    );
}

#[tokio::test]
async fn not_found_two_hops_away_is_not_found() {
    let gw = Gateway::start().await;
    gw.apps()
        .create(CreateApplicationRequest {
            manifest_yaml: app_yaml("gone"),
            upsert: false,
        })
        .await
        .unwrap();
    // The git watcher's answer for a revision the repository does not have.
    responder(
        &gw.bus,
        gw.bus.topology.git_resolve_subject(),
        serde_json::json!({"error": {"code": "notFound", "message": "revision \"HEAD\" not found in https://github.com/argoproj/argocd-example-apps.git"}}),
    )
    .await;
    gw.bus.client.flush().await.unwrap();
    let err = gw
        .apps()
        .diff(DiffApplicationRequest {
            name: "gone".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(
        err.message().starts_with("revision \"HEAD\" not found"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains('\n'), "{}", err.message());
}
