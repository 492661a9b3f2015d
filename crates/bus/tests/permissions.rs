//! The locked bus against a real nats-server: each service role connects with its own
//! NKey, and what lies outside its role is refused by the server.

use std::time::Duration;

use gitfleet_bus::async_nats;
use gitfleet_bus::testkit::NatsServer;
use gitfleet_bus::{Bucket, Bus, Identities, Role, StreamName, Topology};
use tokio::sync::mpsc;

/// A role's connection and the errors the server sent it.
struct Conn {
    bus: Bus,
    errors: mpsc::UnboundedReceiver<String>,
}

async fn connect(server: &NatsServer, topology: &Topology, seed: &str) -> Conn {
    let (tx, errors) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_nkey(seed.to_owned())
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(server.url())
        .await
        .expect("the role's NKey is a user of the server");
    Conn {
        bus: Bus::new(client, topology.clone()),
        errors,
    }
}

impl Conn {
    /// Publishes on `subject` and waits for the server to refuse it.
    async fn refused(&mut self, subject: &str) {
        self.bus
            .client
            .publish(subject.to_owned(), "x".into())
            .await
            .unwrap();
        self.bus.client.flush().await.unwrap();
        let wanted = format!("Permissions Violation for Publish to \"{subject}\"");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.errors.recv()).await {
                Ok(Some(e)) if e.contains(&wanted) => return,
                Ok(Some(_)) => continue,
                _ => panic!("the server did not refuse a publish to {subject}"),
            }
        }
    }

    /// Asserts nothing was refused so far.
    fn nothing_refused(&mut self) {
        if let Ok(e) = self.errors.try_recv() {
            panic!("refused: {e}");
        }
    }
}

#[tokio::test]
async fn each_role_is_refused_outside_its_permissions() {
    Box::pin(async {
        let topology = Topology::default();
        let ids = Identities::generate();
        let server = NatsServer::start_locked(&topology, &ids);
        let admin = connect(&server, &topology, ids.seed(Role::Admin)).await;
        admin
            .bus
            .ensure()
            .await
            .expect("the admin makes the topology");
        let repos = topology.bucket(Bucket::Repositories);
        let clusters = topology.bucket(Bucket::Clusters);
        let read_repos = format!("$JS.API.DIRECT.GET.KV_{repos}.$KV.{repos}.r1");
        let read_clusters = format!("$JS.API.STREAM.INFO.KV_{clusters}");
        let write_apps = format!("$KV.{}.a1", topology.bucket(Bucket::Applications));
        let sync = topology.sync_subject(0);
        let change_stream = format!("$JS.API.STREAM.UPDATE.KV_{repos}");

        // Every role: what lies outside it is refused; one thing it must do works.
        for role in [
            Role::GitWatcher,
            Role::Renderer,
            Role::DiffWorker,
            Role::SyncExecutor,
            Role::ApiGateway,
            Role::Notifier,
            Role::AppSetController,
        ] {
            let mut conn = connect(&server, &topology, ids.seed(role)).await;
            conn.refused(&change_stream).await;
            if role != Role::DiffWorker {
                conn.refused(&sync).await;
            }
            if !matches!(role, Role::GitWatcher | Role::ApiGateway) {
                conn.refused(&read_repos).await;
            }
            if !matches!(
                role,
                Role::SyncExecutor | Role::ApiGateway | Role::DiffWorker | Role::AppSetController
            ) {
                conn.refused(&read_clusters).await;
            }
            // The executors write apps too: an App of Apps parent's sync registers them.
            if !matches!(
                role,
                Role::ApiGateway | Role::AppSetController | Role::SyncExecutor
            ) {
                conn.refused(&write_apps).await;
            }
            let bus = &conn.bus;
            match role {
                Role::GitWatcher => {
                    let kv = bus.kv(Bucket::Repositories).await.unwrap();
                    assert!(kv.get("r1").await.unwrap().is_none());
                    bus.js
                        .publish(topology.revision_subject("git://x/r"), "{}".into())
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                }
                Role::Renderer => {
                    let kv = bus.kv(Bucket::Rendered).await.unwrap();
                    kv.put("k1", "{}".into()).await.unwrap();
                }
                Role::DiffWorker => {
                    bus.js
                        .publish(sync.clone(), "{}".into())
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                    let kv = bus.kv(Bucket::AppStatus).await.unwrap();
                    kv.put("a1", "{}".into()).await.unwrap();
                }
                Role::SyncExecutor => {
                    let kv = bus.kv(Bucket::Operations).await.unwrap();
                    kv.put("a1", "{}".into()).await.unwrap();
                    let kv = bus.kv(Bucket::Clusters).await.unwrap();
                    assert!(kv.get("c1").await.unwrap().is_none());
                }
                Role::ApiGateway => {
                    let kv = bus.kv(Bucket::Applications).await.unwrap();
                    kv.put("a1", "{}".into()).await.unwrap();
                    let kv = bus.kv(Bucket::Repositories).await.unwrap();
                    kv.put("r1", "{}".into()).await.unwrap();
                }
                Role::Notifier => {
                    let stream = bus
                        .js
                        .get_stream(topology.stream(StreamName::Events))
                        .await
                        .unwrap();
                    stream
                        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
                        .await
                        .unwrap();
                }
                Role::AppSetController => {
                    let kv = bus.kv(Bucket::Applications).await.unwrap();
                    kv.put("a2", "{}".into()).await.unwrap();
                    let kv = bus.kv(Bucket::AppSets).await.unwrap();
                    kv.put("s1", "{}".into()).await.unwrap();
                }
                Role::Admin => unreachable!(),
            }
            conn.nothing_refused();
        }

        // The refused sync operations never reached the stream: only the diff worker's.
        let mut stream = admin
            .bus
            .js
            .get_stream(topology.stream(StreamName::SyncWork))
            .await
            .unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 1);
    })
    .await;
}

#[tokio::test]
async fn a_wrong_key_is_not_let_in() {
    let topology = Topology::default();
    let ids = Identities::generate();
    let server = NatsServer::start_locked(&topology, &ids);
    let stranger = Identities::generate();
    let attempt = async_nats::ConnectOptions::with_nkey(stranger.seed(Role::Admin).to_owned())
        .connect(server.url())
        .await;
    assert!(attempt.is_err(), "a key the server does not list connected");
    // And without any credentials at all.
    assert!(async_nats::connect(server.url()).await.is_err());
}
