//! Connecting: retries until a server appears, survives a server restart.

use std::time::{Duration, Instant};

use gitfleet_bus::testkit::NatsServer;
use gitfleet_bus::{Bucket, BusConfig, connect};

#[tokio::test]
async fn reconnects_after_a_server_restart_and_state_survives() {
    let mut server = NatsServer::start();
    let config = BusConfig {
        url: server.url(),
        prefix: "rc".to_string(),
        name: "reconnect-test".to_string(),
        ..Default::default()
    };
    let bus = connect(&config).await.unwrap();
    bus.ensure().await.unwrap();
    let kv = bus.kv(Bucket::Settings).await.unwrap();
    kv.put("policy", "p, role:x, applications, get, */*, allow".into())
        .await
        .unwrap();

    server.restart();

    let start = Instant::now();
    loop {
        // A request sent while the client still believes in the old socket is lost and
        // would wait for the full request timeout; retry sooner.
        let got = tokio::time::timeout(Duration::from_secs(1), kv.get("policy")).await;
        if let Ok(Ok(Some(v))) = got {
            assert!(v.starts_with(b"p, role:x"));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no reconnect within 30 s"
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kv.put("after", "restart".into()).await.unwrap();
}

#[tokio::test]
async fn connect_returns_before_the_server_is_up() {
    let mut server = NatsServer::start();
    let url = server.url();
    server.pause();
    let config = BusConfig {
        url,
        prefix: "late".to_string(),
        ..Default::default()
    };
    let bus = tokio::time::timeout(Duration::from_secs(5), connect(&config))
        .await
        .expect("connect must not wait for the server")
        .unwrap();
    server.resume();
    let start = Instant::now();
    loop {
        if bus.ensure().await.is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never connected");
    }
    bus.kv(Bucket::Applications).await.unwrap();
}
