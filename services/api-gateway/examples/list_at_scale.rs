//! `app list` at fleet scale: N apps (default 50,000) in KV over 100 clusters, 20
//! projects and a mix of statuses, a gateway with authentication on and a caller whose
//! RBAC role reaches every app (so each listed app costs a real casbin decision), then
//! filtered, paginated lists timed through gRPC. The figures go in BENCHMARKS.md.
//!
//! `cargo run --release -p api-gateway --example list_at_scale [-- APPS]` (`NO_AUTH=1`
//! to list with authentication off, for the cost of the decisions alone)

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use gitfleet_bus::testkit::{self, NatsServer};
use gitfleet_bus::{Bucket, subject_token};
use gitfleet_proto::v1::ListApplicationsRequest;
use gitfleet_proto::v1::application_service_client::ApplicationServiceClient;
use tokio_util::sync::CancellationToken;

fn app(i: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": format!("app-{i:05}"), "namespace": "argocd",
                     "labels": {"team": format!("t{}", i % 50)}},
        "spec": {
            "project": format!("p{}", i % 20),
            "source": {"repoURL": format!("https://git.example/r{}.git", i % 10),
                       "path": format!("apps/{i}"), "targetRevision": "HEAD"},
            "destination": {"name": format!("c{}", i % 100), "namespace": format!("ns{}", i % 7)},
        }
    })
}

fn status(i: usize) -> serde_json::Value {
    let sync = if i.is_multiple_of(10) {
        "OutOfSync"
    } else {
        "Synced"
    };
    let health = if i.is_multiple_of(33) {
        "Degraded"
    } else {
        "Healthy"
    };
    serde_json::json!({"sync": {"status": sync, "revision": "abc"}, "health": {"status": health}})
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let server = NatsServer::start();
    let bus = testkit::bus_on(&server).await;
    let started = Instant::now();
    let apps = bus.kv(Bucket::Applications).await.unwrap();
    let statuses = bus.kv(Bucket::AppStatus).await.unwrap();
    futures::stream::iter(0..n)
        .map(|i| {
            let (apps, statuses) = (apps.clone(), statuses.clone());
            async move {
                let name = subject_token(&format!("app-{i:05}"));
                apps.put(&name, serde_json::to_vec(&app(i)).unwrap().into())
                    .await
                    .unwrap();
                statuses
                    .put(&name, serde_json::to_vec(&status(i)).unwrap().into())
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
    println!("{n} apps and statuses written in {:.1?}", started.elapsed());
    let settings = bus.kv(Bucket::Settings).await.unwrap();
    settings
        .put(
            subject_token("argocd-rbac-cm"),
            serde_json::to_vec(&serde_json::json!({
                "policy.csv": "p, role:viewer, applications, get, */*, allow\np, role:viewer, applications, sync, p3/*, allow\ng, viewers, role:viewer\n",
            }))
            .unwrap()
            .into(),
        )
        .await
        .unwrap();
    settings
        .put(
            subject_token("argocd-cm"),
            serde_json::to_vec(&serde_json::json!({"accounts.viewer": "apiKey"}))
                .unwrap()
                .into(),
        )
        .await
        .unwrap();

    // `NO_AUTH=1`: every caller acts as admin, no decision made, to see what RBAC costs.
    let config = api_gateway::Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        disable_auth: std::env::var_os("NO_AUTH").is_some(),
        ..Default::default()
    };
    let listeners = api_gateway::bind(&config).await.unwrap();
    let url = format!("http://{}", listeners.grpc_addr());
    let shutdown = CancellationToken::new();
    let serving = Instant::now();
    tokio::spawn(api_gateway::serve(
        config,
        listeners,
        bus.clone(),
        shutdown.clone(),
    ));

    // A token for the viewer account, signed with the server key the gateway made.
    let key = loop {
        if let Ok(Some(body)) = settings.get(subject_token("argocd-secret")).await {
            let data: std::collections::BTreeMap<String, String> = bus
                .decode_document(Bucket::Settings, "argocd-secret", &body)
                .unwrap();
            break base64::engine::general_purpose::STANDARD
                .decode(&data["server.secretkey"])
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let now = chrono::Utc::now().timestamp();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"iss": "argocd", "sub": "viewer", "iat": now, "exp": now + 3600,
                            "jti": "bench", "groups": ["viewers"]}),
        &jsonwebtoken::EncodingKey::from_secret(&key).unwrap(),
    )
    .unwrap();
    let channel = loop {
        if let Ok(c) = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
        {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut client =
        ApplicationServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        });

    // The first full answer: the index has loaded every app and the policy is in force.
    let everything = ListApplicationsRequest {
        limit: 100,
        ..Default::default()
    };
    loop {
        if let Ok(r) = client.list(everything.clone()).await
            && r.get_ref().items_json.len() == 100
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "gateway started, index loaded and first page answered in {:.1?}",
        serving.elapsed()
    );

    let cases: Vec<(&str, ListApplicationsRequest)> = vec![
        ("first page of 100, no filter", everything.clone()),
        (
            "page of 100 deep in the list (continue=app-40000)",
            ListApplicationsRequest {
                limit: 100,
                r#continue: "app-40000".into(),
                ..Default::default()
            },
        ),
        (
            "cluster c42 (500 apps), page of 100",
            ListApplicationsRequest {
                cluster: "c42".into(),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "project p10 + OutOfSync (2,500 apps), page of 100",
            ListApplicationsRequest {
                project: "p10".into(),
                sync_status: "OutOfSync".into(),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "label team=t7 + namespace ns3 + repo r7 (~143 apps), page of 100",
            ListApplicationsRequest {
                selector: "team=t7".into(),
                namespace: "ns3".into(),
                repo: "https://git.example/r7.git".into(),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "Degraded in cluster c0 (a handful: the whole index scanned)",
            ListApplicationsRequest {
                cluster: "c0".into(),
                health_status: "Degraded".into(),
                limit: 100,
                ..Default::default()
            },
        ),
    ];
    println!("| query | apps returned | median | p95 | max |\n|---|---|---|---|---|");
    for (what, req) in cases {
        let mut times = Vec::new();
        let mut returned = 0;
        for _ in 0..30 {
            let t = Instant::now();
            let r = client.list(req.clone()).await.unwrap().into_inner();
            times.push(t.elapsed());
            returned = r.items_json.len();
        }
        times.sort();
        println!(
            "| {what} | {returned} | {:.1} ms | {:.1} ms | {:.1} ms |",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() * 95 / 100].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
        );
    }
    shutdown.cancel();
}
