//! Request/reply over a real nats-server: a slow answer outlives the liveness window
//! because the replica reports progress, a replica that dies holding a question is noticed
//! within that window (not at the full timeout), and a retry goes to a live replica.

use std::time::{Duration, Instant};

use futures::StreamExt;
use gitfleet_bus::request::LIVENESS;
use gitfleet_bus::{serve, testkit};
use gitfleet_messages::{ErrorCode, ServiceError};
use tokio_util::sync::CancellationToken;

const PEER: &str = "echo";

async fn echo_replica(
    bus: &gitfleet_bus::Bus,
    subject: &str,
    delay: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let subscriber = bus
        .client
        .queue_subscribe(subject.to_owned(), "echo".to_owned())
        .await
        .unwrap();
    bus.client.flush().await.unwrap();
    let bus = bus.clone();
    tokio::spawn(serve(
        bus,
        subscriber,
        4,
        shutdown,
        move |question: String| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, ServiceError>(format!("echo {question}"))
        },
    ))
}

#[tokio::test]
async fn an_answer_slower_than_the_liveness_window_still_arrives() {
    let bus = testkit::bus().await;
    let subject = bus.topology.render_subject();
    let _replica = echo_replica(
        &bus,
        &subject,
        LIVENESS + Duration::from_secs(2),
        CancellationToken::new(),
    )
    .await;
    let answer: String = bus
        .ask(PEER, subject, &"slow".to_owned(), Duration::from_secs(60))
        .await
        .expect("progress keeps the question alive");
    assert_eq!(answer, "echo slow");
}

#[tokio::test]
async fn a_replica_that_dies_holding_the_question_is_noticed_within_the_liveness_window() {
    let bus = testkit::bus().await;
    let subject = bus.topology.render_subject();
    // Takes the question (a queue member) and never answers, as a process killed
    // mid-answer: no progress, no reply.
    let mut silent = bus
        .client
        .queue_subscribe(subject.clone(), "echo".to_owned())
        .await
        .unwrap();
    bus.client.flush().await.unwrap();
    let taken = tokio::spawn(async move { silent.next().await.is_some() });

    let started = Instant::now();
    let err = bus
        .ask::<_, String>(
            PEER,
            subject.clone(),
            &"lost".to_owned(),
            Duration::from_secs(60),
        )
        .await
        .expect_err("nobody answers");
    let waited = started.elapsed();
    assert!(taken.await.unwrap(), "the silent replica took the question");
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    assert!(err.message.contains("went silent"), "{err}");
    assert!(
        waited < Duration::from_secs(30),
        "noticed after {waited:?}, not at the 60 s timeout"
    );

    // Asked again once a live replica is there, the answer comes from it.
    let _replica = echo_replica(&bus, &subject, Duration::ZERO, CancellationToken::new()).await;
    let answer: String = bus
        .ask(PEER, subject, &"again".to_owned(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(answer, "echo again");
}

#[tokio::test]
async fn nobody_serving_is_unavailable_at_once() {
    let bus = testkit::bus().await;
    let started = Instant::now();
    let err = bus
        .ask::<_, String>(
            PEER,
            bus.topology.render_subject(),
            &"anyone".to_owned(),
            Duration::from_secs(60),
        )
        .await
        .expect_err("no replica");
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    assert!(err.message.contains("no echo is running"), "{err}");
    assert!(started.elapsed() < LIVENESS, "{:?}", started.elapsed());
}
