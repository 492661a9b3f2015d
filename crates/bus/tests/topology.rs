//! The topology against a real server: everything is created, twice is fine, at once is fine.

use gitfleet_bus::async_nats::jetstream::stream;
use gitfleet_bus::ownership::partition;
use gitfleet_bus::testkit;
use gitfleet_bus::{Bucket, ObjectStoreName, StreamName, Topology, topology};

#[tokio::test]
async fn ensure_creates_everything_and_is_idempotent() {
    let bus = testkit::bus().await;
    // A second run, and two more at the same time from other connections.
    bus.ensure().await.unwrap();
    let other = gitfleet_bus::Bus::new(
        gitfleet_bus::async_nats::connect(testkit::shared().url())
            .await
            .unwrap(),
        bus.topology.clone(),
    );
    let (a, b) = tokio::join!(bus.ensure(), other.ensure());
    a.unwrap();
    b.unwrap();

    for bucket in Bucket::ALL {
        let store = bus.kv(bucket).await.unwrap();
        let name = bus.topology.bucket(bucket);
        assert_eq!(store.name, name);
    }
    for name in StreamName::ALL {
        let mut s = bus.js.get_stream(bus.topology.stream(name)).await.unwrap();
        let info = s.info().await.unwrap();
        assert_eq!(info.config.subjects, bus.topology.stream_subjects(name));
    }
    let mut sync = bus
        .js
        .get_stream(bus.topology.stream(StreamName::SyncWork))
        .await
        .unwrap();
    assert_eq!(
        sync.info().await.unwrap().config.retention,
        stream::RetentionPolicy::WorkQueue
    );
    for store in ObjectStoreName::ALL {
        bus.object_store(store).await.unwrap();
    }
    // Buckets whose keys expire say so to watchers.
    let mut leases = bus
        .js
        .get_stream(format!("KV_{}", bus.topology.bucket(Bucket::Leases)))
        .await
        .unwrap();
    let config = leases.info().await.unwrap().config.clone();
    assert!(config.allow_message_ttl);
    assert_eq!(
        config.subject_delete_marker_ttl,
        Some(topology::EXPIRY_MARKER_TTL)
    );
}

#[tokio::test]
async fn concurrent_first_start_of_many_processes() {
    let topology = Topology::new(&testkit::unique_prefix()).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let topology = topology.clone();
        tasks.push(tokio::spawn(async move {
            let client = gitfleet_bus::async_nats::connect(testkit::shared().url())
                .await
                .unwrap();
            gitfleet_bus::Bus::new(client, topology).ensure().await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn prefixes_isolate_tests_on_one_server() {
    let a = testkit::bus().await;
    let b = testkit::bus().await;
    let kv_a = a.kv(Bucket::Applications).await.unwrap();
    let kv_b = b.kv(Bucket::Applications).await.unwrap();
    kv_a.put("guestbook", "a".into()).await.unwrap();
    assert_eq!(kv_b.get("guestbook").await.unwrap(), None);

    a.js.publish(a.topology.event_subject("guestbook"), "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut events_b =
        b.js.get_stream(b.topology.stream(StreamName::Events))
            .await
            .unwrap();
    assert_eq!(events_b.info().await.unwrap().state.messages, 0);
}

/// The server's own `partition()` mapping agrees with ours on names that are their own
/// subject token, which is what lets a stream route by partition if we ever want it to.
#[tokio::test]
async fn partition_matches_the_servers_mapping() {
    let bus = testkit::bus().await;
    let p = bus.topology.prefix().to_string();
    let partitions = 64;
    let mut s = bus
        .js
        .create_stream(stream::Config {
            name: format!("{p}-route-check"),
            subjects: vec![format!("{p}.route.*")],
            subject_transform: Some(stream::SubjectTransform {
                source: format!("{p}.route.*"),
                destination: format!(
                    "{p}.routed.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}"
                ),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<String> = (0..200)
        .map(|i| format!("app-{i}"))
        .chain(["guestbook", "team-a/guestbook", "Z", "x-1-2-3"].map(String::from))
        .collect();
    for name in &names {
        bus.js
            .publish(format!("{p}.route.{name}"), "".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    for (i, name) in names.iter().enumerate() {
        let msg = s.get_raw_message(i as u64 + 1).await.unwrap();
        let want = format!("{p}.routed.{}.{name}", partition(name, partitions));
        assert_eq!(msg.subject.as_str(), want);
    }
    let _ = s.info().await;
}
