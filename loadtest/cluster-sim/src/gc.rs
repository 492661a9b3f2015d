//! Garbage collection: owner references, the three propagation policies (Orphan,
//! Background, Foreground) and the deletion of dependents whose owners are gone, run to a
//! fixed point together with the namespace controller and the removal of a deleted CRD's
//! objects (each can make work for the others).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{Params, now};
use crate::error::{ApiError, Result};
use crate::resources::ResourceKey;
use crate::store::{ClusterState, EventType, Stored};

/// What happens to an object's dependents when it is deleted (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents lose their owner reference to it and stay.
    Orphan,
    /// It goes at once; the collector then deletes its dependents.
    Background,
    /// It stays (finalizer `foregroundDeletion`) until its dependents are gone.
    Foreground,
}

impl Propagation {
    /// The policy a delete asks for: the body's `propagationPolicy`, else the query's,
    /// else Background.
    pub fn requested(opts: &Value, p: &Params) -> Result<Self> {
        match opts["propagationPolicy"]
            .as_str()
            .or(p.get("propagationPolicy"))
        {
            None | Some("Background") => Ok(Self::Background),
            Some("Foreground") => Ok(Self::Foreground),
            Some("Orphan") => Ok(Self::Orphan),
            Some(other) => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        }
    }
}

/// Every object whose ownerReferences name `uid`.
fn dependents_of(st: &ClusterState, uid: &str) -> Vec<(ResourceKey, Arc<Stored>)> {
    let mut out = Vec::new();
    for (key, map) in &st.objects {
        for s in map.values() {
            let owned = s.value["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)));
            if owned {
                out.push((key.clone(), s.clone()));
            }
        }
    }
    out
}

/// Deletes one object: with finalizers (or Foreground dependents) it only gets a
/// deletionTimestamp; otherwise it is removed. Returns what the client is answered.
pub(crate) fn delete_object(
    st: &mut ClusterState,
    key: &ResourceKey,
    old: &Arc<Stored>,
    policy: Propagation,
) -> Arc<Stored> {
    let mut obj = old.value.clone();
    let is_ns = key.group.is_empty() && key.plural == "namespaces";
    let has_dependents = !dependents_of(st, old.uid()).is_empty();
    if policy == Propagation::Orphan {
        orphan_dependents(st, old.uid());
    }
    let mut finalizers: Vec<Value> = obj["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if policy == Propagation::Foreground
        && has_dependents
        && !finalizers.iter().any(|f| f == "foregroundDeletion")
    {
        finalizers.push(json!("foregroundDeletion"));
    }
    if is_ns {
        obj["status"]["phase"] = json!("Terminating");
    }
    if !finalizers.is_empty() || is_ns {
        if obj["metadata"]["deletionTimestamp"].is_string()
            && obj["metadata"]["finalizers"].as_array().map(|a| a.len()) == Some(finalizers.len())
            && !is_ns
        {
            return old.clone();
        }
        if !finalizers.is_empty() {
            obj["metadata"]["finalizers"] = Value::Array(finalizers);
        }
        if !obj["metadata"]["deletionTimestamp"].is_string() {
            obj["metadata"]["deletionTimestamp"] = json!(now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        let rv = st.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        return st.commit(key, obj, EventType::Modified);
    }
    let rv = st.next_rv();
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    st.commit(key, obj, EventType::Deleted)
}

fn orphan_dependents(st: &mut ClusterState, uid: &str) {
    for (key, dep) in dependents_of(st, uid) {
        let mut v = dep.value.clone();
        if let Some(refs) = v["metadata"]["ownerReferences"].as_array_mut() {
            refs.retain(|r| r["uid"].as_str() != Some(uid));
        }
        let rv = st.next_rv();
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.commit(&key, v, EventType::Modified);
    }
}

/// Runs the garbage collector and namespace controller to a fixed point: dependents whose
/// owners are all gone, terminating namespaces' contents, foreground owners whose
/// dependents are gone, and objects of deleted CRDs.
pub(crate) fn sweep(st: &mut ClusterState) {
    loop {
        let uids: HashSet<String> = st
            .objects
            .values()
            .flat_map(|m| m.values().map(|s| s.uid().to_string()))
            .collect();
        let terminating: HashSet<String> = st
            .list(&ResourceKey {
                group: String::new(),
                plural: "namespaces".into(),
            })
            .map(|m| {
                m.values()
                    .filter(|s| s.value["metadata"]["deletionTimestamp"].is_string())
                    .map(|s| s.name().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let owners_with_dependents: HashSet<String> = st
            .objects
            .values()
            .flat_map(|m| m.values())
            .flat_map(|s| {
                s.value["metadata"]["ownerReferences"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|o| o["uid"].as_str().map(String::from))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let foreground: HashSet<String> = st
            .objects
            .values()
            .flat_map(|m| m.values())
            .filter(|s| {
                s.value["metadata"]["deletionTimestamp"].is_string()
                    && s.value["metadata"]["finalizers"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"))
            })
            .map(|s| s.uid().to_string())
            .collect();
        let mut work: Vec<(ResourceKey, Arc<Stored>, bool)> = Vec::new();
        let mut cascade: Vec<(ResourceKey, Arc<Stored>)> = Vec::new();
        let mut ns_with_content: HashSet<String> = HashSet::new();
        for (key, map) in &st.objects {
            let served = st.registry.find_key(key).is_some();
            for s in map.values() {
                let meta = &s.value["metadata"];
                let deleting = meta["deletionTimestamp"].is_string();
                let ns = s.namespace();
                if !ns.is_empty() {
                    ns_with_content.insert(ns.to_string());
                }
                if !served {
                    work.push((key.clone(), s.clone(), true));
                    continue;
                }
                let refs = meta["ownerReferences"].as_array();
                let orphaned = refs.is_some_and(|r| {
                    !r.is_empty()
                        && r.iter()
                            .all(|o| !uids.contains(o["uid"].as_str().unwrap_or("")))
                });
                let in_terminating_ns = !ns.is_empty() && terminating.contains(ns);
                if (orphaned || in_terminating_ns) && !deleting {
                    work.push((key.clone(), s.clone(), false));
                }
                let owner_in_foreground = refs.is_some_and(|r| {
                    r.iter()
                        .any(|o| foreground.contains(o["uid"].as_str().unwrap_or("")))
                });
                if owner_in_foreground && !deleting {
                    cascade.push((key.clone(), s.clone()));
                }
                let fg_done = deleting
                    && meta["finalizers"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"))
                    && !owners_with_dependents.contains(s.uid());
                if fg_done {
                    let mut v = s.value.clone();
                    if let Some(f) = v["metadata"]["finalizers"].as_array_mut() {
                        f.retain(|x| x != "foregroundDeletion");
                    }
                    work.push((key.clone(), Stored::new(v), true));
                }
            }
        }
        for ns in &terminating {
            if !ns_with_content.contains(ns) {
                let key = ResourceKey {
                    group: String::new(),
                    plural: "namespaces".into(),
                };
                if let Some(s) = st.get(&key, "", ns) {
                    let mut v = s.value.clone();
                    if let Some(f) = v["spec"]["finalizers"].as_array_mut() {
                        f.clear();
                    }
                    let only_ns_finalizer = v["metadata"]["finalizers"]
                        .as_array()
                        .is_none_or(|f| f.is_empty());
                    if only_ns_finalizer {
                        work.push((key, Stored::new(v), true));
                    }
                }
            }
        }
        if work.is_empty() && cascade.is_empty() {
            return;
        }
        // Dependents of an owner in foreground deletion go first, themselves in the foreground.
        for (key, s) in cascade {
            if let Some(current) = st.get(&key, s.namespace(), s.name()).cloned() {
                delete_object(st, &key, &current, Propagation::Foreground);
            }
        }
        for (key, s, remove) in work {
            let current = st.get(&key, s.namespace(), s.name()).cloned();
            let Some(current) = current else { continue };
            if remove {
                let mut v = s.value.clone();
                let still_final = v["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                let rv = st.next_rv();
                v["metadata"]["resourceVersion"] = json!(rv.to_string());
                if still_final && st.registry.find_key(&key).is_some() {
                    st.commit(&key, v, EventType::Modified);
                } else {
                    st.commit(&key, v, EventType::Deleted);
                }
            } else {
                delete_object(st, &key, &current, Propagation::Background);
            }
        }
    }
}
