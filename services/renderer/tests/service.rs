//! The renderer over a real nats-server, with a scripted git-watcher answering the files
//! requests: manifests come back, identical requests render once, errors name the file,
//! and large replies travel through the payload store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gitfleet_bus::async_nats::HeaderMap;
use gitfleet_bus::{Bus, testkit};
use gitfleet_messages::{
    Files, FilesRequest, RenderRequest, Rendered, Reply, RepoFile, ServiceError,
};
use gitfleet_model::ApplicationSource;
use tokio_util::sync::CancellationToken;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn file(path: &str, content: String) -> RepoFile {
    RepoFile {
        path: path.to_owned(),
        content,
        binary: false,
        link: String::new(),
    }
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
}

/// The files of the scripted repository under `path`.
fn tree(path: &str) -> Reply<Files> {
    let files = match path {
        "apps/web" => vec![
            file("apps/web/b.yaml", format!("{}---\n{}", cm("b1"), cm("b2"))),
            file(
                "apps/web/a.json",
                r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}"#.into(),
            ),
            file("apps/web/notes.txt", "not a manifest".into()),
        ],
        "apps/broken" => vec![file(
            "apps/broken/deploy.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n  - c\n".into(),
        )],
        "apps/big" => {
            let value = "x".repeat(200_000);
            vec![file(
                "apps/big/cms.yaml",
                (0..8)
                    .map(|i| format!("{}data:\n  v: {value}\n---\n", cm(&format!("big-{i}"))))
                    .collect(),
            )]
        }
        other => return Reply::Error(ServiceError::not_found(format!("path {other:?} not found"))),
    };
    Reply::Ok(Files { files })
}

/// Answers files requests like the git-watcher would, slowly, counting them; subscribed
/// when this returns.
async fn scripted_git_watcher(bus: Bus, calls: Arc<AtomicUsize>) {
    let mut requests = bus
        .client
        .subscribe(bus.topology.git_files_subject())
        .await
        .unwrap();
    bus.client.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            answer_slowly(&bus, &calls, message).await;
        }
    });
}

async fn answer_slowly(bus: &Bus, calls: &AtomicUsize, message: gitfleet_bus::async_nats::Message) {
    {
        calls.fetch_add(1, Ordering::SeqCst);
        let request: FilesRequest = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(request.commit, COMMIT);
        // Time-driven: a slow answer keeps the first render in flight while the
        // identical requests arrive, which is what single flight is tested on.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let body = Bytes::from(serde_json::to_vec(&tree(&request.path)).unwrap());
        let (headers, body) = bus.offload(HeaderMap::new(), body).await.unwrap();
        bus.client
            .publish_with_headers(message.reply.unwrap(), headers, body)
            .await
            .unwrap();
    }
}

async fn render(bus: &Bus, path: &str) -> Reply<Rendered> {
    let repo = "https://example.com/org/repo.git";
    let request = RenderRequest {
        repo: repo.into(),
        commit: COMMIT.into(),
        source: ApplicationSource {
            repo_url: repo.into(),
            path: path.into(),
            ..ApplicationSource::default()
        },
        app_name: "web".into(),
        namespace: String::new(),
        refs: Vec::new(),
        local_files: Vec::new(),
    };
    let message = tokio::time::timeout(
        Duration::from_secs(20),
        bus.client.request(
            bus.topology.render_subject(),
            serde_json::to_vec(&request).unwrap().into(),
        ),
    )
    .await
    .expect("render reply in time")
    .expect("render reply");
    let body = bus.read_payload(&message).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn names(rendered: &Rendered) -> Vec<&str> {
    rendered
        .manifests
        .iter()
        .map(|m| m["metadata"]["name"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_directories_once_and_reports_errors() {
    let bus = testkit::bus().await;
    let calls = Arc::new(AtomicUsize::new(0));
    scripted_git_watcher(bus.clone(), calls.clone()).await;
    let shutdown = CancellationToken::new();
    let service = renderer::start(renderer::Config::default(), bus.clone(), shutdown.clone())
        .await
        .unwrap();
    let service = tokio::spawn(service.wait());

    // Five identical requests at once, then one later: one files request in all.
    let replies = futures::future::join_all((0..5).map(|_| render(&bus, "apps/web"))).await;
    for reply in &replies {
        let rendered = reply.clone().into_result().unwrap();
        assert_eq!(names(&rendered), ["a", "b1", "b2"]);
    }
    let again = render(&bus, "apps/web").await.into_result().unwrap();
    assert_eq!(names(&again), ["a", "b1", "b2"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let broken = render(&bus, "apps/broken").await;
    assert_eq!(
        broken,
        Reply::Error(ServiceError::invalid(
            "apps/broken/deploy.yaml: line 7, column 3: did not find expected key"
        ))
    );

    let missing = render(&bus, "apps/none").await;
    assert_eq!(
        missing,
        Reply::Error(ServiceError::not_found("path \"apps/none\" not found"))
    );

    // 1.6 MB of manifests: over the message limit both ways.
    let big = render(&bus, "apps/big").await.into_result().unwrap();
    assert_eq!(big.manifests.len(), 8);
    assert_eq!(
        big.manifests[7]["data"]["v"].as_str().unwrap().len(),
        200_000
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), service)
        .await
        .expect("renderer stops")
        .unwrap()
        .unwrap();
}
