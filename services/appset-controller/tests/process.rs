//! The `appset-controller` binary as a deployment runs it: it joins its ownership group
//! on the bus it is pointed at, and on SIGTERM hands its partitions back before exiting.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gitfleet_bus::ownership::read_lease;
use gitfleet_bus::testkit;
use gitfleet_messages::{APPSET_CONTROLLERS, APPSET_PARTITIONS};

async fn holders(bus: &gitfleet_bus::Bus) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for p in 0..APPSET_PARTITIONS {
        out.push(
            read_lease(bus, APPSET_CONTROLLERS, p)
                .await
                .ok()
                .flatten()
                .map(|l| l.holder),
        );
    }
    out
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_binary_takes_every_partition_and_gives_them_back_on_sigterm() {
    let server = testkit::NatsServer::start();
    let bus = testkit::bus_on(&server).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_appset-controller"))
        .args([
            "--nats-url",
            &server.url(),
            "--prefix",
            bus.topology.prefix(),
        ])
        .args(["--member-id", "controller-under-test"])
        .arg("--credentials-key-file")
        .arg(testkit::credentials_key_file())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("appset-controller starts");

    until("the controller to hold every partition", async || {
        holders(&bus)
            .await
            .iter()
            .all(|h| h.as_deref() == Some("controller-under-test"))
    })
    .await;

    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("appset-controller did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    // Released on the way out, not left to expire.
    assert!(
        holders(&bus).await.iter().all(Option::is_none),
        "{:?}",
        holders(&bus).await
    );
}
