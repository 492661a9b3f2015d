//! Partition leases: a member heartbeats in the `members` bucket and holds, by
//! compare-and-set, the leases of its even share of the partitions ([`balanced`]).
//!
//! Keys, per ownership group `g` (e.g. `diff`, `sync`; escaped with [`subject_token`]):
//! - `members`: `<g>.<member>` = `{"id": <member id>}`, written every `member_ttl / 3`
//!   with a per-key TTL of `member_ttl`;
//! - `leases`: `<g>.p.<n>` = `{"holder": <member id>, "token": <fencing token>}`, renewed
//!   every `lease_ttl / 3` with a per-key TTL of `lease_ttl`.
//!
//! The fencing token of a lease is the KV revision at which it was acquired. Revisions
//! are stream sequences, so a later holder always has a larger token than any earlier
//! one; the token stays fixed while the lease is renewed. Whoever receives work from a
//! holder reads the lease and accepts exactly its token: an older one came from a former
//! holder, a larger one from no holder at all.
//!
//! When a member dies its keys expire on the server after their TTL; the server then
//! writes a tombstone that every watcher sees, so the survivors recompute ownership and
//! take the freed leases. A member that cannot renew drops the lease locally before the
//! server can expire it (the local deadline counts from before the renewal was sent).

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_TTL};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connect::Bus;
use crate::error::{BusError, Result};
use crate::ownership::balanced;
use crate::topology::{Bucket, subject_token, token_to_name};

/// Partitions held, with the fencing token of each.
pub type Owned = BTreeMap<u32, u64>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    /// Members of one group share the partitions of that group only.
    pub group: String,
    /// Unique among live members; a restarted member may reuse its id.
    pub member_id: String,
    /// Fixed for the life of the fleet, like [`crate::partition`]'s modulus.
    pub partitions: u32,
    /// How long a silent member counts as alive. Whole seconds, at least 1.
    pub member_ttl: Duration,
    /// How long a lease outlives its holder. Whole seconds, at least 1.
    pub lease_ttl: Duration,
}

impl MembershipConfig {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

    pub fn new(group: impl Into<String>, member_id: impl Into<String>, partitions: u32) -> Self {
        MembershipConfig {
            group: group.into(),
            member_id: member_id.into(),
            partitions,
            member_ttl: Self::DEFAULT_TTL,
            lease_ttl: Self::DEFAULT_TTL,
        }
    }

    /// Short TTLs make takeover fast (tests use 1-2 s) at the cost of more KV writes.
    pub fn with_ttls(mut self, member_ttl: Duration, lease_ttl: Duration) -> Self {
        self.member_ttl = member_ttl;
        self.lease_ttl = lease_ttl;
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(BusError::InvalidConfig(msg));
        if self.partitions == 0 {
            return bad(format!(
                "membership group {}: partitions must be positive",
                self.group
            ));
        }
        if self.group.is_empty() || self.member_id.is_empty() {
            return bad("membership group and member id must not be empty".to_string());
        }
        // The server counts `Nats-TTL` in whole seconds, 1 at least.
        for (what, ttl) in [
            ("member_ttl", self.member_ttl),
            ("lease_ttl", self.lease_ttl),
        ] {
            if ttl < Duration::from_secs(1) || ttl.subsec_nanos() != 0 {
                return bad(format!(
                    "membership group {}: {what} must be whole seconds, at least 1 (got {ttl:?})",
                    self.group
                ));
            }
        }
        Ok(())
    }
}

/// What the `leases` bucket says about one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub holder: String,
    /// The fencing token: the revision at which `holder` acquired the lease.
    pub token: u64,
    /// The revision of the latest renewal.
    pub revision: u64,
}

/// Reads the current lease of `partition` in `group`, e.g. for an executor that checks a
/// sync operation's fencing token. `None` when no one holds it.
pub async fn read_lease(bus: &Bus, group: &str, partition: u32) -> Result<Option<LeaseInfo>> {
    let store = bus.kv(Bucket::Leases).await?;
    let key = lease_key(group, partition);
    let entry = store
        .entry(&key)
        .await
        .map_err(|err| BusError::kv("reading", &store.name, &key, err))?;
    Ok(entry.and_then(|e| lease_info(&e)))
}

/// A running member of an ownership group. Dropping it aborts the member at once, as a
/// crash would: its leases then expire after `lease_ttl`. Use [`Membership::shutdown`]
/// to hand partitions over immediately.
pub struct Membership {
    member_id: String,
    owned: watch::Receiver<Owned>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Membership {
    /// Joins the group: writes the first heartbeat, reads the live members, and starts
    /// the background task that takes, renews and releases leases.
    pub async fn start(bus: &Bus, config: MembershipConfig) -> Result<Membership> {
        config.validate()?;
        let members = bus.kv(Bucket::Members).await?;
        let leases = bus.kv(Bucket::Leases).await?;
        let (tx, rx) = watch::channel(Owned::new());
        let mut member = Member {
            bus: bus.clone(),
            group_token: subject_token(&config.group),
            me: config.member_id.clone(),
            members_kv: members,
            leases_kv: leases,
            live: BTreeMap::new(),
            leases: BTreeMap::new(),
            held: BTreeMap::new(),
            last_heartbeat: None,
            unreachable: false,
            tx,
            config,
        };
        member.heartbeat().await?;
        let member_watch = member.watch_members().await?;
        let lease_watch = member.watch_leases().await?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let member_id = member.me.clone();
        let task = tokio::spawn(member.run(member_watch, lease_watch, stop_rx));
        Ok(Membership {
            member_id,
            owned: rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The partitions this member may act on now, with their fencing tokens.
    pub fn owned(&self) -> Owned {
        self.owned.borrow().clone()
    }

    /// Changes of [`Membership::owned`]. A partition leaves the map before its lease is
    /// released, so a service that stops on removal never overlaps the next owner.
    pub fn subscribe(&self) -> watch::Receiver<Owned> {
        self.owned.clone()
    }

    /// Leaves the group gracefully: releases every lease and deletes the heartbeat, so
    /// the others take over without waiting for TTLs.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops at once without releasing anything, as a crash would.
    pub fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn lease_key(group: &str, partition: u32) -> String {
    format!("{}.p.{partition}", subject_token(group))
}

#[derive(Serialize, Deserialize)]
struct LeaseValue {
    holder: String,
    /// 0 on the write that acquires the lease, whose revision becomes the token.
    token: u64,
}

#[derive(Serialize, Deserialize)]
struct MemberValue {
    id: String,
}

fn lease_info(entry: &kv::Entry) -> Option<LeaseInfo> {
    if entry.operation != Operation::Put {
        return None;
    }
    let value: LeaseValue = serde_json::from_slice(&entry.value).ok()?;
    let token = if value.token == 0 {
        entry.revision
    } else {
        value.token
    };
    Some(LeaseInfo {
        holder: value.holder,
        token,
        revision: entry.revision,
    })
}

/// The last known state of a lease key.
#[derive(Debug, Clone)]
struct SeenLease {
    holder: Option<String>,
    revision: u64,
    /// When this member last learnt something about the key; a lease held by another
    /// that has not changed for longer than a TTL is read again, in case the tombstone
    /// of its expiry was missed.
    seen_at: Instant,
}

#[derive(Debug, Clone)]
struct SeenMember {
    alive: bool,
    revision: u64,
    seen_at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    token: u64,
    revision: u64,
    /// Taken before the write was sent, so the local deadline precedes the server's.
    renewed_at: Instant,
}

struct Member {
    bus: Bus,
    config: MembershipConfig,
    group_token: String,
    me: String,
    members_kv: kv::Store,
    leases_kv: kv::Store,
    live: BTreeMap<String, SeenMember>,
    leases: BTreeMap<u32, SeenLease>,
    held: BTreeMap<u32, Held>,
    last_heartbeat: Option<Instant>,
    /// Set when a call to the server failed or timed out in this step, to skip the
    /// remaining calls.
    unreachable: bool,
    tx: watch::Sender<Owned>,
}

enum Cas {
    Written(u64),
    Conflict,
}

impl Member {
    fn member_key(&self) -> String {
        format!("{}.{}", self.group_token, subject_token(&self.me))
    }

    fn lease_key(&self, partition: u32) -> String {
        lease_key(&self.config.group, partition)
    }

    fn renew_every(&self) -> Duration {
        self.config.lease_ttl / 3
    }

    /// A held lease is given up locally this long before the server would expire it.
    fn lease_margin(&self) -> Duration {
        (self.config.lease_ttl / 10).max(Duration::from_millis(100))
    }

    async fn run(
        mut self,
        member_watch: kv::Watch,
        lease_watch: kv::Watch,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut watches = Watches {
            members: Some(member_watch),
            leases: Some(lease_watch),
        };
        let period = self.config.member_ttl.min(self.config.lease_ttl) / 4;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {}
                // Wake exactly when a lease runs out, not at the next tick.
                _ = sleep_until_some(deadline) => {}
                entry = next_entry(&mut watches.members) => match entry {
                    Some(Ok(entry)) => {
                        self.apply_member(&entry);
                        while let Some(Some(Ok(entry))) = watches.members.as_mut().and_then(|w| w.next().now_or_never()) {
                            self.apply_member(&entry);
                        }
                    }
                    other => {
                        tracing::warn!(group = %self.config.group, error = ?other.map(|r| r.err()), "members watch ended");
                        watches.members = None;
                    }
                },
                entry = next_entry(&mut watches.leases) => match entry {
                    Some(Ok(entry)) => {
                        self.apply_lease(&entry);
                        while let Some(Some(Ok(entry))) = watches.leases.as_mut().and_then(|w| w.next().now_or_never()) {
                            self.apply_lease(&entry);
                        }
                    }
                    other => {
                        tracing::warn!(group = %self.config.group, error = ?other.map(|r| r.err()), "leases watch ended");
                        watches.leases = None;
                    }
                },
            }
            // A step waits on the server; while it is unreachable the held leases must
            // still be given up on time, so the step is cut short at the first deadline.
            match self.next_deadline() {
                Some(deadline) => {
                    let _ = tokio::time::timeout_at(deadline, self.step(&mut watches)).await;
                }
                None => self.step(&mut watches).await,
            }
            self.expire_held();
            self.publish_owned();
        }
        self.leave().await;
    }

    async fn watch_members(&mut self) -> Result<kv::Watch> {
        let bucket = self.members_kv.name.clone();
        let mut w = self
            .members_kv
            .watch_with_history(format!("{}.>", self.group_token))
            .await
            .map_err(|err| BusError::Watch {
                bucket: bucket.clone(),
                source: err.into(),
            })?;
        // Read the current members before deciding anything, so a starting member does
        // not grab partitions that belong to members it has not heard of yet. Our own
        // heartbeat is there, so the history is never empty.
        let deadline = Instant::now() + self.io_timeout();
        while let Ok(Some(Ok(entry))) = tokio::time::timeout_at(deadline, w.next()).await {
            self.apply_member(&entry);
            if entry.seen_current {
                break;
            }
        }
        Ok(w)
    }

    async fn watch_leases(&mut self) -> Result<kv::Watch> {
        let bucket = self.leases_kv.name.clone();
        self.leases_kv
            .watch_with_history(format!("{}.p.>", self.group_token))
            .await
            .map_err(|err| BusError::Watch {
                bucket,
                source: err.into(),
            })
    }

    fn apply_member(&mut self, entry: &kv::Entry) {
        let Some(token) = entry.key.strip_prefix(&format!("{}.", self.group_token)) else {
            return;
        };
        let Some(id) = token_to_name(token) else {
            return;
        };
        let known = self.live.get(&id).map_or(0, |m| m.revision);
        if entry.revision < known {
            return;
        }
        let alive = entry.operation == Operation::Put;
        self.live.insert(
            id,
            SeenMember {
                alive,
                revision: entry.revision,
                seen_at: Instant::now(),
            },
        );
    }

    fn apply_lease(&mut self, entry: &kv::Entry) {
        let Some(n) = entry
            .key
            .strip_prefix(&format!("{}.p.", self.group_token))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            return;
        };
        let known = self.leases.get(&n).map_or(0, |l| l.revision);
        if entry.revision < known {
            return;
        }
        let holder = lease_info(entry).map(|l| l.holder);
        if let Some(held) = self.held.get(&n)
            && entry.revision > held.revision
            && holder.as_deref() != Some(self.me.as_str())
        {
            // Someone wrote over our lease: it expired on the server before we renewed.
            tracing::warn!(group = %self.config.group, partition = n, "lease lost");
            self.held.remove(&n);
        }
        self.leases.insert(
            n,
            SeenLease {
                holder,
                revision: entry.revision,
                seen_at: Instant::now(),
            },
        );
    }

    /// The members this one considers alive, itself included while its heartbeat holds.
    fn live_members(&self, now: Instant) -> Vec<String> {
        // A member that stopped writing is dead once its key expires; the tombstone says
        // so. If the tombstone is missed, silence for two TTLs says so too.
        let silent_limit = self.config.member_ttl * 2;
        let mut live: Vec<String> = self
            .live
            .iter()
            .filter(|(id, m)| {
                m.alive && *id != &self.me && now.duration_since(m.seen_at) < silent_limit
            })
            .map(|(id, _)| id.clone())
            .collect();
        if self
            .last_heartbeat
            .is_some_and(|at| now.duration_since(at) < self.config.member_ttl)
        {
            live.push(self.me.clone());
        }
        live
    }

    async fn step(&mut self, watches: &mut Watches) {
        self.unreachable = false;
        if watches.members.is_none() {
            match tokio::time::timeout(self.io_timeout(), self.watch_members()).await {
                Ok(Ok(w)) => watches.members = Some(w),
                _ => self.unreachable = true,
            }
        }
        if watches.leases.is_none() && !self.unreachable {
            match tokio::time::timeout(self.io_timeout(), self.watch_leases()).await {
                Ok(Ok(w)) => watches.leases = Some(w),
                _ => self.unreachable = true,
            }
        }
        let now = Instant::now();
        if self
            .last_heartbeat
            .is_none_or(|at| now.duration_since(at) >= self.config.member_ttl / 3)
            && let Err(err) = self.heartbeat().await
        {
            tracing::warn!(group = %self.config.group, error = %err, "heartbeat failed");
        }

        if self.expire_held() {
            self.publish_owned();
        }
        let now = Instant::now();

        let members = self.live_members(now);
        let desired = self.desired(&members);

        // Release first: the map handed to the service shrinks before anyone else can
        // take the partition.
        let release: Vec<(u32, Held)> = self
            .held
            .iter()
            .filter(|(p, _)| desired.binary_search(p).is_err())
            .map(|(p, h)| (*p, *h))
            .collect();
        if !release.is_empty() {
            for (p, _) in &release {
                self.held.remove(p);
            }
            self.publish_owned();
            for (p, h) in release {
                if !self.unreachable {
                    self.release(p, h.revision).await;
                }
            }
        }

        for p in desired {
            // After one timeout the rest would time out too; leave them to the next tick.
            if self.unreachable {
                break;
            }
            match self.held.get(&p).copied() {
                Some(h) if now.duration_since(h.renewed_at) >= self.renew_every() => {
                    self.renew(p, h).await;
                }
                Some(_) => {}
                None => self.try_acquire(p, now).await,
            }
        }
        self.publish_owned();
    }

    /// The partitions this member should hold among `members`: an even share, keeping
    /// what is held now ([`balanced`]).
    fn desired(&self, members: &[String]) -> Vec<u32> {
        let Some(me) = members.iter().position(|m| *m == self.me) else {
            return Vec::new();
        };
        let holder = |p: u32| {
            if self.held.contains_key(&p) {
                Some(self.me.as_str())
            } else {
                self.leases.get(&p).and_then(|l| l.holder.as_deref())
            }
        };
        balanced(self.config.partitions, members, holder)
            .into_iter()
            .zip(0u32..)
            .filter(|(owner, _)| *owner == me)
            .map(|(_, p)| p)
            .collect()
    }

    /// When the first held lease runs out locally.
    fn next_deadline(&self) -> Option<Instant> {
        let life = self.config.lease_ttl - self.lease_margin();
        self.held.values().map(|h| h.renewed_at + life).min()
    }

    /// Drops the leases not renewed in time; true if any were.
    fn expire_held(&mut self) -> bool {
        let now = Instant::now();
        let life = self.config.lease_ttl - self.lease_margin();
        let before = self.held.len();
        let group = &self.config.group;
        self.held.retain(|p, h| {
            let valid = now < h.renewed_at + life;
            if !valid {
                tracing::warn!(group = %group, partition = p, "lease not renewed in time, giving it up");
            }
            valid
        });
        self.held.len() != before
    }

    /// Bounds every call to the server, so an unreachable one cannot stall the loop
    /// past a renewal.
    fn io_timeout(&self) -> Duration {
        self.renew_every()
    }

    fn publish_owned(&self) {
        let owned: Owned = self.held.iter().map(|(p, h)| (*p, h.token)).collect();
        self.tx.send_if_modified(|current| {
            if *current == owned {
                false
            } else {
                *current = owned;
                true
            }
        });
    }

    async fn try_acquire(&mut self, p: u32, now: Instant) {
        let (expected, adopt) = match self.leases.get(&p) {
            None => (0, false),
            Some(SeenLease {
                holder: None,
                revision,
                ..
            }) => (*revision, false),
            Some(SeenLease {
                holder: Some(h),
                revision,
                ..
            }) if *h == self.me => (*revision, true),
            Some(seen) => {
                if now.duration_since(seen.seen_at) > self.config.lease_ttl + self.renew_every() {
                    self.refresh_lease(p).await;
                }
                return;
            }
        };
        let sent = Instant::now();
        let value = LeaseValue {
            holder: self.me.clone(),
            token: 0,
        };
        match self.cas(&self.lease_key(p), &value, expected).await {
            Ok(Cas::Written(revision)) => {
                tracing::debug!(group = %self.config.group, partition = p, token = revision, adopt, "lease taken");
                self.held.insert(
                    p,
                    Held {
                        token: revision,
                        revision,
                        renewed_at: sent,
                    },
                );
                self.leases.insert(
                    p,
                    SeenLease {
                        holder: Some(self.me.clone()),
                        revision,
                        seen_at: sent,
                    },
                );
            }
            Ok(Cas::Conflict) => self.refresh_lease(p).await,
            Err(err) => {
                tracing::warn!(group = %self.config.group, partition = p, error = %err, "taking lease failed")
            }
        }
    }

    async fn renew(&mut self, p: u32, held: Held) {
        let sent = Instant::now();
        let value = LeaseValue {
            holder: self.me.clone(),
            token: held.token,
        };
        match self.cas(&self.lease_key(p), &value, held.revision).await {
            Ok(Cas::Written(revision)) => {
                self.held.insert(
                    p,
                    Held {
                        revision,
                        renewed_at: sent,
                        ..held
                    },
                );
                self.leases.insert(
                    p,
                    SeenLease {
                        holder: Some(self.me.clone()),
                        revision,
                        seen_at: sent,
                    },
                );
            }
            Ok(Cas::Conflict) => {
                tracing::warn!(group = %self.config.group, partition = p, "lease lost while renewing");
                self.held.remove(&p);
                self.refresh_lease(p).await;
            }
            // Kept until its local deadline: the next tick tries again.
            Err(err) => {
                tracing::warn!(group = %self.config.group, partition = p, error = %err, "renewing lease failed")
            }
        }
    }

    async fn release(&mut self, p: u32, revision: u64) {
        let key = self.lease_key(p);
        // A purge whose tombstone expires too, so released keys do not pile up.
        let delete = self.leases_kv.purge_expect_revision_with_ttl(
            &key,
            revision,
            crate::topology::EXPIRY_MARKER_TTL,
        );
        // A failure is harmless: the lease expires by itself.
        match tokio::time::timeout(self.io_timeout(), delete).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::debug!(group = %self.config.group, partition = p, error = %err, "releasing lease failed")
            }
            Err(_) => self.unreachable = true,
        }
    }

    async fn refresh_lease(&mut self, p: u32) {
        let key = self.lease_key(p);
        match tokio::time::timeout(self.io_timeout(), self.leases_kv.entry(&key)).await {
            Ok(Ok(Some(entry))) => self.apply_lease(&entry),
            Ok(Ok(None)) => {
                // Expired without a tombstone we saw: nothing to compare against.
                self.leases.remove(&p);
            }
            Ok(Err(err)) => tracing::debug!(partition = p, error = %err, "reading lease failed"),
            Err(_) => self.unreachable = true,
        }
        if let Some(seen) = self.leases.get_mut(&p) {
            seen.seen_at = Instant::now();
        }
    }

    async fn heartbeat(&mut self) -> Result<()> {
        let sent = Instant::now();
        let key = self.member_key();
        let value = MemberValue {
            id: self.me.clone(),
        };
        let bucket = self.bus.topology.bucket(Bucket::Members);
        match self
            .publish_kv(&bucket, &key, &value, None, self.config.member_ttl)
            .await
        {
            Ok(_) => {}
            Err(PublishKvError::Bus(err) | PublishKvError::Timeout(err)) => {
                self.unreachable = true;
                return Err(err);
            }
            Err(PublishKvError::WrongRevision) => {
                return Err(BusError::kv(
                    "writing",
                    &bucket,
                    &key,
                    "revision conflict without a condition",
                ));
            }
        }
        self.last_heartbeat = Some(sent);
        Ok(())
    }

    async fn cas(&mut self, key: &str, value: &LeaseValue, expected: u64) -> Result<Cas> {
        let bucket = self.bus.topology.bucket(Bucket::Leases);
        match self
            .publish_kv(&bucket, key, value, Some(expected), self.config.lease_ttl)
            .await
        {
            Ok(revision) => Ok(Cas::Written(revision)),
            Err(PublishKvError::WrongRevision) => Ok(Cas::Conflict),
            // A write refused for any other reason means the server cannot take writes
            // now (e.g. JetStream still recovering after a restart, "no stream found"):
            // the other partitions' writes would fail the same way, so the rest of the
            // step is skipped and the next tick tries again, while held leases run on
            // until their local deadline.
            Err(PublishKvError::Bus(err) | PublishKvError::Timeout(err)) => {
                self.unreachable = true;
                Err(err)
            }
        }
    }

    /// A KV write with a per-key TTL, which the client's KV API only offers for `create`.
    async fn publish_kv<T: Serialize>(
        &self,
        bucket: &str,
        key: &str,
        value: &T,
        expected: Option<u64>,
        ttl: Duration,
    ) -> std::result::Result<u64, PublishKvError> {
        let body = Bytes::from(
            serde_json::to_vec(value)
                .map_err(|err| PublishKvError::Bus(BusError::kv("encoding", bucket, key, err)))?,
        );
        let mut headers = HeaderMap::new();
        if let Some(expected) = expected {
            headers.insert(
                NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                expected.to_string().as_str(),
            );
        }
        headers.insert(NATS_MESSAGE_TTL, ttl.as_secs().to_string().as_str());
        let subject = format!("$KV.{bucket}.{key}");
        let map = |err: async_nats::jetstream::context::PublishError| {
            if err.kind() == PublishErrorKind::WrongLastSequence {
                PublishKvError::WrongRevision
            } else {
                PublishKvError::Bus(BusError::kv("writing", bucket, key, err))
            }
        };
        let write = async {
            self.bus
                .js
                .publish_with_headers(subject, headers, body)
                .await
                .map_err(map)?
                .await
                .map_err(map)
        };
        match tokio::time::timeout(self.io_timeout(), write).await {
            Ok(ack) => Ok(ack?.sequence),
            Err(elapsed) => Err(PublishKvError::Timeout(BusError::kv(
                "writing", bucket, key, elapsed,
            ))),
        }
    }

    async fn leave(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.publish_owned();
        for (p, h) in held {
            self.release(p, h.revision).await;
        }
        let key = self.member_key();
        // Member ids are often pod names, new on every start: the tombstone must expire.
        let delete = self
            .members_kv
            .purge_with_ttl(&key, crate::topology::EXPIRY_MARKER_TTL);
        if let Ok(Err(err)) = tokio::time::timeout(self.io_timeout(), delete).await {
            tracing::debug!(group = %self.config.group, error = %err, "leaving failed");
        }
    }
}

enum PublishKvError {
    WrongRevision,
    Timeout(BusError),
    Bus(BusError),
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct Watches {
    members: Option<kv::Watch>,
    leases: Option<kv::Watch>,
}

/// The next entry of a watch, or never when there is no watch (it is re-created by the
/// next step).
async fn next_entry(
    watch: &mut Option<kv::Watch>,
) -> Option<std::result::Result<kv::Entry, kv::WatcherError>> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_must_be_whole_seconds() {
        let ok = MembershipConfig::new("diff", "w-0", 64);
        assert!(ok.validate().is_ok());
        let short = ok
            .clone()
            .with_ttls(Duration::from_millis(500), Duration::from_secs(1));
        assert!(
            short
                .validate()
                .unwrap_err()
                .to_string()
                .contains("member_ttl")
        );
        let frac = ok
            .clone()
            .with_ttls(Duration::from_secs(1), Duration::from_millis(1500));
        assert!(
            frac.validate()
                .unwrap_err()
                .to_string()
                .contains("lease_ttl")
        );
        let none = MembershipConfig::new("diff", "w-0", 0);
        assert!(none.validate().is_err());
    }

    #[test]
    fn lease_keys_escape_the_group() {
        assert_eq!(lease_key("diff", 7), "diff.p.7");
        assert_eq!(lease_key("a.b", 0), "a_2Eb.p.0");
    }
}
