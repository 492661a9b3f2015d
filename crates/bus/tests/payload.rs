//! Large payloads travel through the object store; small ones inline.

use bytes::Bytes;
use futures::StreamExt;
use gitfleet_bus::async_nats::jetstream::consumer::{self, pull};
use gitfleet_bus::payload::{OBJECT_HEADER, content_key};
use gitfleet_bus::testkit;
use gitfleet_bus::{ObjectStoreName, StreamName};

fn body(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<_>>()
        .into()
}

async fn publish_and_read_back(len: usize) -> (Bytes, gitfleet_bus::async_nats::Message) {
    let bus = testkit::bus().await;
    let subject = bus.topology.event_subject("big.app");
    let sent = body(len, 7);
    bus.publish_large(subject.clone(), sent.clone())
        .await
        .unwrap();

    let stream = bus
        .js
        .get_stream(bus.topology.stream(StreamName::Events))
        .await
        .unwrap();
    let consumer: consumer::PullConsumer = stream
        .create_consumer(pull::Config::default())
        .await
        .unwrap();
    let mut messages = consumer.fetch().max_messages(1).messages().await.unwrap();
    let msg = messages.next().await.unwrap().unwrap();
    let got = bus.read_payload(&msg).await.unwrap();
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "body differs");
    (sent, msg.message.clone())
}

#[tokio::test]
async fn over_one_mib_goes_through_the_object_store() {
    let (sent, msg) = publish_and_read_back(3 * 1024 * 1024 + 17).await;
    let headers = msg.headers.expect("envelope has headers");
    assert_eq!(
        headers.get(OBJECT_HEADER).unwrap().as_str(),
        content_key(&sent)
    );
    assert!(msg.payload.is_empty(), "envelope carries no body");
}

#[tokio::test]
async fn small_bodies_stay_inline() {
    let (sent, msg) = publish_and_read_back(4096).await;
    assert!(
        msg.headers
            .as_ref()
            .is_none_or(|h| h.get(OBJECT_HEADER).is_none())
    );
    assert_eq!(msg.payload, sent);
}

#[tokio::test]
async fn limit_follows_the_servers_max_payload() {
    let bus = testkit::bus().await;
    let max = bus.client.server_info().max_payload;
    assert_eq!(max, 1024 * 1024, "test server runs with the default");
    assert!(bus.payload_limit() < max && bus.payload_limit() > max / 2);
    // Right at the limit: inline; one byte more: offloaded.
    let (h, b) = bus
        .offload(Default::default(), body(bus.payload_limit(), 1))
        .await
        .unwrap();
    assert!(h.get(OBJECT_HEADER).is_none() && b.len() == bus.payload_limit());
    let (h, b) = bus
        .offload(Default::default(), body(bus.payload_limit() + 1, 1))
        .await
        .unwrap();
    assert!(h.get(OBJECT_HEADER).is_some() && b.is_empty());
}

#[tokio::test]
async fn same_body_twice_is_stored_once_and_tampering_is_detected() {
    let bus = testkit::bus().await;
    let big = body(2 * 1024 * 1024, 3);
    let (h1, _) = bus.offload(Default::default(), big.clone()).await.unwrap();
    let (h2, _) = bus.offload(Default::default(), big.clone()).await.unwrap();
    assert_eq!(h1.get(OBJECT_HEADER), h2.get(OBJECT_HEADER));

    // Replace the object's content under the same key: the reader must notice.
    let store = bus.object_store(ObjectStoreName::Payloads).await.unwrap();
    let key = h1.get(OBJECT_HEADER).unwrap().as_str().to_string();
    let mut evil: &[u8] = b"not the original";
    store.put(key.as_str(), &mut evil).await.unwrap();
    let msg = gitfleet_bus::async_nats::Message {
        subject: "x".into(),
        reply: None,
        payload: Bytes::new(),
        headers: Some(h1),
        status: None,
        description: None,
        length: 0,
    };
    let err = bus.read_payload(&msg).await.unwrap_err();
    assert!(err.to_string().contains(&key), "{err}");
}

#[tokio::test]
async fn a_publish_retried_with_the_same_id_is_queued_once() {
    let bus = testkit::bus().await;
    let subject = bus.topology.sync_subject(3);
    for body in ["first", "the same operation again", "first"] {
        bus.publish_durable_once(subject.clone(), Bytes::from(body), "op-1")
            .await
            .unwrap();
    }
    bus.publish_durable_once(subject.clone(), Bytes::from("second"), "op-2")
        .await
        .unwrap();
    let mut stream = bus
        .js
        .get_stream(bus.topology.stream(StreamName::SyncWork))
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 2, "one message per operation id");
}
