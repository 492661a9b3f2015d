//! Who owns what: names to partitions by a fixed hash, partitions to live members by
//! rendezvous hashing, and the leases that make ownership exclusive ([`Membership`]).
//!
//! The pure part decides who *should* own a partition; only a lease taken by
//! compare-and-set in the `leases` bucket lets a member *act* as owner, because members
//! can disagree for a moment about who is alive.

mod lease;

pub use lease::{LeaseInfo, Membership, MembershipConfig, Owned, read_lease};

/// FNV-1a, 32 bits.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The partition of a name: FNV-1a 32 of its UTF-8 bytes, modulo `partitions`.
///
/// This is the hash of nats-server's `partition(n, ...)` subject mapping, which hashes
/// the bytes of the selected subject tokens (concatenated, no separator) with FNV-1a 32
/// and takes the remainder modulo `n`. So for a subject `<p>.x.<token>` mapped with
/// `{{partition(n,1)}}`, the server picks `partition(token, n)`; when a name is its own
/// token ([`crate::subject_token`] keeps ASCII letters, digits, `-` and `/`), the server
/// and this function agree on the name itself. The integration tests check this against
/// a running server.
///
/// `partitions` is fixed for the life of a fleet: changing it moves almost every name.
///
/// # Panics
/// If `partitions` is 0.
pub fn partition(name: &str, partitions: u32) -> u32 {
    assert!(partitions > 0, "partition count must be positive");
    fnv1a32(name.as_bytes()) % partitions
}

/// The rendezvous (highest random weight) owner of `partition` among `members`: the
/// member with the highest [`hrw_weight`], ties broken by the larger name. `None` for no
/// members. Removing a member moves only the partitions it owned; adding one moves only
/// the partitions it now wins, about 1/(N+1) of them.
pub fn rendezvous<S: AsRef<str>>(partition: u32, members: &[S]) -> Option<&S> {
    members.iter().max_by(|a, b| {
        let (a, b) = (a.as_ref(), b.as_ref());
        hrw_weight(a, partition)
            .cmp(&hrw_weight(b, partition))
            .then_with(|| a.cmp(b))
    })
}

/// The weight of `member` for `partition`. FNV-1a alone mixes poorly for short inputs
/// that differ in their last bytes, so the member hash and the partition are both run
/// through a 64-bit finaliser (MurmurHash3's `fmix64`) before and after combining. They
/// combine by add-and-multiply, not XOR: with XOR the weight is one bijection of
/// `member ^ partition`, and some member sets (proptest found one, kept in
/// `proptest-regressions/`) then split the partitions far from evenly.
pub fn hrw_weight(member: &str, partition: u32) -> u64 {
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    let member_hash = fmix64(fnv1a64(member.as_bytes()));
    let partition_hash = fmix64(u64::from(partition).wrapping_add(GOLDEN));
    fmix64(member_hash.wrapping_add(partition_hash.wrapping_mul(GOLDEN)))
}

/// The partitions of `0..partitions` that `member` should own among `members`.
pub fn assigned<S: AsRef<str>>(member: &str, partitions: u32, members: &[S]) -> Vec<u32> {
    (0..partitions)
        .filter(|&p| rendezvous(p, members).is_some_and(|m| m.as_ref() == member))
        .collect()
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    const P: u32 = 256;

    #[test]
    fn fnv1a32_matches_reference_vectors() {
        // Published FNV-1a 32 test vectors (and Go's hash/fnv New32a).
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn partition_is_fnv_mod_p() {
        assert_eq!(partition("foobar", 256), 0x68);
        assert_eq!(partition("a", 10), 0xe40c_292c % 10);
        assert!((0..1000).all(|i| partition(&format!("app-{i}"), 7) < 7));
    }

    fn owners(members: &[String]) -> BTreeMap<u32, String> {
        (0..P)
            .map(|p| (p, rendezvous(p, members).unwrap().clone()))
            .collect()
    }

    fn member_names() -> impl Strategy<Value = Vec<String>> {
        prop::collection::btree_set("[a-z0-9-]{1,20}", 2..=10)
            .prop_map(|s| s.into_iter().collect::<Vec<_>>())
    }

    #[test]
    fn no_members_no_owner() {
        assert_eq!(rendezvous::<String>(3, &[]), None);
    }

    #[test]
    fn balance_of_typical_worker_names() {
        // Pod-like names, the case that matters in production.
        for n in 2..=16 {
            let members: Vec<String> = (0..n).map(|i| format!("diff-worker-{i}")).collect();
            let mut counts: BTreeMap<String, u32> = BTreeMap::new();
            for owner in owners(&members).into_values() {
                *counts.entry(owner).or_default() += 1;
            }
            let fair = P as f64 / n as f64;
            for m in &members {
                let got = counts.get(m).copied().unwrap_or(0) as f64;
                assert!(
                    got >= fair * 0.5 && got <= fair * 1.6,
                    "{n} members: {m} owns {got}, fair share {fair:.1}: {counts:?}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn balance(members in member_names()) {
            let n = members.len() as f64;
            let fair = P as f64 / n;
            let mut counts: BTreeMap<&str, u32> = members.iter().map(|m| (m.as_str(), 0)).collect();
            let owners = owners(&members);
            for owner in owners.values() {
                *counts.get_mut(owner.as_str()).unwrap() += 1;
            }
            // Binomial spread: bounds at about 4 standard deviations for 10 members.
            for (m, got) in counts {
                let got = f64::from(got);
                prop_assert!(got >= fair * 0.35 && got <= fair * 1.9,
                    "{} owns {} of {}, fair share {:.1}", m, got, P, fair);
            }
        }

        #[test]
        fn removing_a_member_moves_only_its_partitions(members in member_names(), pick in any::<prop::sample::Index>()) {
            let before = owners(&members);
            let gone = members[pick.index(members.len())].clone();
            let rest: Vec<String> = members.iter().filter(|m| **m != gone).cloned().collect();
            let after = owners(&rest);
            for p in 0..P {
                if before[&p] != gone {
                    prop_assert_eq!(&before[&p], &after[&p], "partition {} moved", p);
                }
            }
        }

        #[test]
        fn adding_a_member_moves_about_its_share_and_only_to_it(members in member_names(), new in "[A-Z]{1,8}") {
            let before = owners(&members);
            let mut grown = members.clone();
            grown.push(new.clone());
            let after = owners(&grown);
            let moved: BTreeSet<u32> = (0..P).filter(|p| before[p] != after[p]).collect();
            for p in &moved {
                prop_assert_eq!(&after[p], &new, "partition {} moved elsewhere", p);
            }
            let fair = P as f64 / grown.len() as f64;
            let got = moved.len() as f64;
            prop_assert!(got >= fair * 0.35 && got <= fair * 1.9,
                "{} partitions moved, fair share {:.1}", got, fair);
        }

        #[test]
        fn member_order_does_not_matter(mut members in member_names(), p in 0..P) {
            let a = rendezvous(p, &members).cloned();
            members.reverse();
            prop_assert_eq!(a, rendezvous(p, &members).cloned());
        }
    }
}
