//! Partition leases against a real server: split, handover, crash takeover, fencing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use gitfleet_bus::ownership::{Membership, MembershipConfig, Owned, read_lease};
use gitfleet_bus::{Bus, testkit};

const P: u32 = 64;
const TTL: Duration = Duration::from_secs(2);

async fn member(bus: &Bus, id: &str) -> Membership {
    // A connection per member, as separate processes would have.
    let client = gitfleet_bus::async_nats::connect(testkit::shared().url())
        .await
        .unwrap();
    let own_bus = Bus::new(client, bus.topology.clone());
    Membership::start(
        &own_bus,
        MembershipConfig::new("diff", id, P).with_ttls(TTL, TTL),
    )
    .await
    .unwrap()
}

/// Polls until `done` holds, checking `invariant` at every poll; returns the time taken.
async fn wait_for(
    what: &str,
    deadline: Duration,
    mut done: impl FnMut() -> bool,
    mut invariant: impl FnMut(),
) -> Duration {
    let start = Instant::now();
    loop {
        invariant();
        if done() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        // Poll interval of a wait bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn no_overlap(a: &Owned, b: &Owned) {
    let both: Vec<_> = a.keys().filter(|p| b.contains_key(p)).collect();
    assert!(both.is_empty(), "partitions owned twice: {both:?}");
}

/// Each member holds `partitions / n` or one more.
fn even_share(partitions: u32, sets: &[&Owned]) -> bool {
    let base = partitions as usize / sets.len();
    sets.iter().all(|s| (base..=base + 1).contains(&s.len()))
}

fn covers_all(sets: &[&Owned]) -> bool {
    let all: BTreeSet<u32> = sets.iter().flat_map(|s| s.keys().copied()).collect();
    all.len() == P as usize
}

#[tokio::test]
async fn two_members_split_then_survivor_takes_over_a_crash() {
    let bus = testkit::bus().await;
    let a = member(&bus, "worker-a").await;
    let b = member(&bus, "worker-b").await;

    wait_for(
        "a split of all partitions",
        Duration::from_secs(20),
        || {
            let (oa, ob) = (a.owned(), b.owned());
            covers_all(&[&oa, &ob]) && even_share(P, &[&oa, &ob])
        },
        || no_overlap(&a.owned(), &b.owned()),
    )
    .await;
    let before_a = a.owned();
    let before_b = b.owned();
    assert!(!before_a.is_empty() && !before_b.is_empty());
    assert_eq!(before_a.len() + before_b.len(), P as usize);

    // What the bucket says agrees with what the members think.
    for (p, token) in &before_a {
        let lease = read_lease(&bus, "diff", *p).await.unwrap().unwrap();
        assert_eq!((lease.holder.as_str(), lease.token), ("worker-a", *token));
    }

    // Stable: over a few renewals nothing moves and tokens stay put.
    let settle = Instant::now();
    while settle.elapsed() < TTL * 2 {
        no_overlap(&a.owned(), &b.owned());
        // Time-driven: sampling ownership across two lease renewals.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.owned(), before_a, "tokens change only on takeover");
    assert_eq!(b.owned(), before_b);

    // Crash b: no release, no goodbye.
    b.abort();
    let took = wait_for(
        "a to own everything",
        TTL * 3 + Duration::from_secs(10),
        || a.owned().len() == P as usize,
        || {},
    )
    .await;
    println!("takeover after crash: {took:?} (member and lease TTL {TTL:?})");
    assert!(
        took >= TTL / 2,
        "takeover before any TTL could run out: {took:?}"
    );

    let after = a.owned();
    for (p, old) in &before_b {
        assert!(
            after[p] > *old,
            "partition {p}: token {} not above {old}",
            after[p]
        );
    }
    for (p, token) in &before_a {
        assert_eq!(
            after[p], *token,
            "partition {p} a kept should keep its token"
        );
    }
    a.shutdown().await;
}

#[tokio::test]
async fn graceful_leave_hands_over_without_waiting_for_ttls() {
    let bus = testkit::bus().await;
    // Long TTLs: only an explicit release can explain a fast handover.
    let long = Duration::from_secs(30);
    let start = |id: &'static str| {
        let bus = bus.clone();
        async move {
            Membership::start(
                &bus,
                MembershipConfig::new("sync", id, P).with_ttls(long, long),
            )
            .await
            .unwrap()
        }
    };
    let a = start("exec-a").await;
    let b = start("exec-b").await;
    wait_for(
        "a split",
        Duration::from_secs(20),
        || covers_all(&[&a.owned(), &b.owned()]) && !a.owned().is_empty() && !b.owned().is_empty(),
        || no_overlap(&a.owned(), &b.owned()),
    )
    .await;
    let before_b = b.owned();
    b.shutdown().await;
    let took = wait_for(
        "a to own everything",
        Duration::from_secs(10),
        || a.owned().len() == P as usize,
        || {},
    )
    .await;
    assert!(took < long / 3, "handover took {took:?}");
    let after = a.owned();
    for (p, old) in before_b {
        assert!(after[&p] > old);
    }
}

#[tokio::test]
async fn a_joining_member_takes_only_its_share() {
    let bus = testkit::bus().await;
    let group = |id: &'static str| MembershipConfig::new("join", id, P).with_ttls(TTL, TTL);
    let a = Membership::start(&bus, group("j-a")).await.unwrap();
    let b = Membership::start(&bus, group("j-b")).await.unwrap();
    // Settled, not only covered: while `a` still hands `b` its share both may cover every
    // partition, and a partition `a` gives up after this snapshot would look re-taken.
    wait_for(
        "two-way split",
        Duration::from_secs(20),
        || {
            let (oa, ob) = (a.owned(), b.owned());
            covers_all(&[&oa, &ob]) && even_share(P, &[&oa, &ob])
        },
        || no_overlap(&a.owned(), &b.owned()),
    )
    .await;
    let (before_a, before_b) = (a.owned(), b.owned());

    let mut changes = a.subscribe();
    let c = Membership::start(&bus, group("j-c")).await.unwrap();
    wait_for(
        "three-way split",
        Duration::from_secs(20),
        || {
            let o = [a.owned(), b.owned(), c.owned()];
            covers_all(&[&o[0], &o[1], &o[2]]) && even_share(P, &[&o[0], &o[1], &o[2]])
        },
        || {
            let o = [a.owned(), b.owned(), c.owned()];
            no_overlap(&o[0], &o[1]);
            no_overlap(&o[0], &o[2]);
            no_overlap(&o[1], &o[2]);
        },
    )
    .await;
    // Members that stay keep everything they still own, with the same tokens.
    let (after_a, after_b) = (a.owned(), b.owned());
    for (p, t) in &after_a {
        assert_eq!(
            before_a.get(p),
            Some(t),
            "a gained or re-took partition {p}"
        );
    }
    for (p, t) in &after_b {
        assert_eq!(
            before_b.get(p),
            Some(t),
            "b gained or re-took partition {p}"
        );
    }
    assert!(
        changes.has_changed().unwrap(),
        "a was told about its smaller share"
    );
    let _ = changes.borrow_and_update();
    drop((a, b, c));
}

#[tokio::test]
async fn groups_do_not_share_partitions() {
    let bus = testkit::bus().await;
    let x = Membership::start(
        &bus,
        MembershipConfig::new("g1", "same-id", 8).with_ttls(TTL, TTL),
    )
    .await
    .unwrap();
    let y = Membership::start(
        &bus,
        MembershipConfig::new("g2", "other", 8).with_ttls(TTL, TTL),
    )
    .await
    .unwrap();
    wait_for(
        "both own all of their group",
        Duration::from_secs(20),
        || x.owned().len() == 8 && y.owned().len() == 8,
        || {},
    )
    .await;
    let tokens: BTreeMap<u32, u64> = x.owned();
    assert!(
        tokens.values().all(|t| !y.owned().values().any(|u| u == t)),
        "tokens are per write, never shared"
    );
}

/// A member cut off from the bus stops acting before its leases can expire on the
/// server, and takes them back once the server returns.
#[tokio::test]
async fn cut_off_member_gives_up_in_time_and_recovers() {
    let mut server = testkit::NatsServer::start();
    let config = gitfleet_bus::BusConfig {
        url: server.url(),
        prefix: "cut".into(),
        ..Default::default()
    };
    let bus = gitfleet_bus::connect(&config).await.unwrap();
    bus.ensure().await.unwrap();
    let m = Membership::start(
        &bus,
        MembershipConfig::new("diff", "alone", 16).with_ttls(TTL, TTL),
    )
    .await
    .unwrap();
    wait_for(
        "all partitions",
        Duration::from_secs(20),
        || m.owned().len() == 16,
        || {},
    )
    .await;
    let before = m.owned();

    server.pause();
    let gave_up = wait_for(
        "the member to give up",
        TTL * 2,
        || m.owned().is_empty(),
        || {},
    )
    .await;
    assert!(
        gave_up < TTL,
        "held leases for {gave_up:?}, longer than their TTL"
    );

    server.resume();
    wait_for(
        "all partitions again",
        Duration::from_secs(40),
        || m.owned().len() == 16,
        || {},
    )
    .await;
    let after = m.owned();
    for (p, old) in before {
        assert!(after[&p] > old, "partition {p} re-taken with an old token");
    }
    m.shutdown().await;
}

/// Churn over 256 partitions: a crash, a join and a graceful leave, with the no-overlap
/// invariant checked at every poll and the final split an even share each.
#[tokio::test]
async fn churn_keeps_partitions_exclusive() {
    const PARTS: u32 = 256;
    let bus = testkit::bus().await;
    let start = |id: &'static str| {
        let bus = bus.clone();
        async move {
            Membership::start(
                &bus,
                MembershipConfig::new("churn", id, PARTS).with_ttls(TTL, TTL),
            )
            .await
            .unwrap()
        }
    };
    let exclusive = |ms: &[&Membership]| {
        let mut seen = BTreeMap::new();
        for m in ms {
            for p in m.owned().keys() {
                if let Some(other) = seen.insert(*p, m.member_id().to_string()) {
                    panic!("partition {p} owned by {other} and {}", m.member_id());
                }
            }
        }
        seen.len()
    };
    let settled = |ms: &[&Membership]| {
        let owned: Vec<Owned> = ms.iter().map(|m| m.owned()).collect();
        let owned: Vec<&Owned> = owned.iter().collect();
        owned.iter().map(|o| o.len()).sum::<usize>() == PARTS as usize && even_share(PARTS, &owned)
    };

    let a = start("c-a").await;
    let b = start("c-b").await;
    let c = start("c-c").await;
    wait_for(
        "three-way split",
        Duration::from_secs(30),
        || settled(&[&a, &b, &c]),
        || {
            exclusive(&[&a, &b, &c]);
        },
    )
    .await;

    c.abort();
    let d = start("c-d").await;
    wait_for(
        "c replaced by d",
        Duration::from_secs(30),
        || settled(&[&a, &b, &d]),
        || {
            exclusive(&[&a, &b, &d]);
        },
    )
    .await;

    a.shutdown().await;
    wait_for(
        "two-way split",
        Duration::from_secs(30),
        || settled(&[&b, &d]),
        || {
            exclusive(&[&b, &d]);
        },
    )
    .await;
    assert_eq!(exclusive(&[&b, &d]), PARTS as usize);
}
