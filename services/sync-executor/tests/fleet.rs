//! Executors as a fleet: clusters split between two executors by lease and taken over
//! when one leaves; queued operations survive a nats-server restart and executor
//! downtime.

mod common;

use std::time::Duration;

use common::*;
use gitfleet_bus::ownership::read_lease;
use gitfleet_bus::testkit::{self, NatsServer};
use gitfleet_bus::{BusConfig, partition};
use gitfleet_messages::{CLUSTER_PARTITIONS, SYNC_EXECUTORS};
use gitfleet_model::OperationPhase;

/// Once the executors hold an even share of the cluster partitions each: a cluster name
/// of each one's share, in `members` order.
async fn names_held_by(bus: &gitfleet_bus::Bus, members: &[&str]) -> Option<Vec<String>> {
    let mut holders = Vec::new();
    for p in 0..CLUSTER_PARTITIONS {
        holders.push(read_lease(bus, SYNC_EXECUTORS, p).await.ok()??.holder);
    }
    let share = CLUSTER_PARTITIONS as usize / members.len();
    let mut names = Vec::new();
    for m in members {
        if holders.iter().filter(|h| h == m).count() < share {
            return None;
        }
        names.push(
            (0..)
                .map(|i| format!("cluster-{i}"))
                .find(|n| holders[partition(n, CLUSTER_PARTITIONS) as usize] == *m)?,
        );
    }
    Some(names)
}

async fn holder(bus: &gitfleet_bus::Bus, cluster: &str) -> Option<String> {
    read_lease(bus, SYNC_EXECUTORS, partition(cluster, CLUSTER_PARTITIONS))
        .await
        .ok()
        .flatten()
        .map(|l| l.holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_executors_split_clusters_and_one_takes_over_when_the_other_leaves() {
    let bus = testkit::bus().await;
    let sim = sim(2).await;
    let exec_a = Executor::start(&bus, test_config("exec-a"));
    let exec_b = Executor::start(&bus, test_config("exec-b"));
    // Which clusters each executor gets depends on who started first: find one each.
    let names = eventually(30, "the executors to split the clusters", || {
        names_held_by(&bus, &["exec-a", "exec-b"])
    })
    .await;
    let (a, b) = (names[0].clone(), names[1].clone());
    register(&bus, &sim, 0, &a).await;
    register(&bus, &sim, 1, &b).await;
    let on_a = sync(&bus, &op("op-1", "app-a", &a, vec![namespace("a")])).await;
    let on_b = sync(&bus, &op("op-1", "app-b", &b, vec![namespace("b")])).await;
    assert_eq!(
        (on_a.phase, on_b.phase),
        (OperationPhase::Succeeded, OperationPhase::Succeeded)
    );
    assert_eq!(sim.cluster(0).write_log().len(), 1);
    assert_eq!(sim.cluster(1).write_log().len(), 1);

    exec_a.stop().await;
    eventually(30, "exec-b to take over the first cluster", || async {
        (holder(&bus, &a).await.as_deref() == Some("exec-b")).then_some(())
    })
    .await;
    let after = sync(
        &bus,
        &op(
            "op-2",
            "app-a",
            &a,
            vec![namespace("a"), config_map("a", "later", None)],
        ),
    )
    .await;
    assert_eq!(after.phase, OperationPhase::Succeeded, "{after:?}");
    exec_b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_operations_survive_a_server_restart_and_executor_downtime() {
    let mut server = NatsServer::start();
    let config = BusConfig {
        url: server.url(),
        prefix: testkit::unique_prefix(),
        ..BusConfig::default()
    };
    let bus = gitfleet_bus::connect(&config).await.unwrap();
    bus.ensure().await.unwrap();
    let sim = sim(1).await;
    register(&bus, &sim, 0, "c0").await;
    let exec = Executor::start(&bus, test_config("exec-0"));
    assert_eq!(
        sync(&bus, &op("op-1", "durable", "c0", vec![namespace("d")]))
            .await
            .phase,
        OperationPhase::Succeeded
    );

    server.restart();
    // Publishing waits for the client to reconnect; retry while it has not.
    let second = op(
        "op-2",
        "durable",
        "c0",
        vec![namespace("d"), config_map("d", "two", None)],
    );
    eventually(60, "publishing after the restart", || {
        let (bus, second) = (bus.clone(), second.clone());
        async move {
            let subject = bus
                .topology
                .sync_subject(partition("c0", CLUSTER_PARTITIONS));
            let ack = bus
                .js
                .publish(subject, serde_json::to_vec(&second).unwrap().into())
                .await
                .ok()?;
            tokio::time::timeout(Duration::from_secs(5), ack)
                .await
                .ok()?
                .ok()
        }
    })
    .await;
    assert_eq!(
        completed(&bus, "durable", "op-2").await.phase,
        OperationPhase::Succeeded
    );

    // Work queued while no executor runs waits for the next one.
    exec.stop().await;
    enqueue(
        &bus,
        &op(
            "op-3",
            "durable",
            "c0",
            vec![namespace("d"), config_map("d", "three", None)],
        ),
    )
    .await;
    let exec = Executor::start(&bus, test_config("exec-1"));
    assert_eq!(
        completed(&bus, "durable", "op-3").await.phase,
        OperationPhase::Succeeded
    );
    let client = kube_client(&sim, 0);
    assert!(
        get(&client, "/api/v1/namespaces/d/configmaps/three")
            .await
            .is_some()
    );
    exec.stop().await;
}
