//! One simulated cluster's object store: objects by resource, a single resourceVersion
//! counter, the bounded event history watches resume from, and the broadcast of changes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::{Registry, ResourceKey};

/// An object as stored: the value and its serialized form, so lists and watches send
/// bytes without serializing the same object again.
#[derive(Debug)]
pub struct Stored {
    pub value: Value,
    pub json: Bytes,
}

impl Stored {
    pub fn new(value: Value) -> Arc<Self> {
        let json = Bytes::from(serde_json::to_vec(&value).expect("json values serialize"));
        Arc::new(Stored { value, json })
    }

    /// An object again from its serialized form (a replay from the history).
    pub fn from_json(json: Bytes) -> Arc<Self> {
        let value = serde_json::from_slice(&json).expect("stored objects are JSON");
        Arc::new(Stored { value, json })
    }

    pub fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn uid(&self) -> &str {
        self.value["metadata"]["uid"].as_str().unwrap_or("")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub key: ResourceKey,
    pub kind: EventType,
    pub object: Arc<Stored>,
    /// The object before the change, so selector-filtered watches can tell an object
    /// leaving their selection (sent as DELETED) from one that never was in it.
    pub prev: Option<Arc<Stored>>,
}

/// A change as the history keeps it: serialized only, so a superseded version costs its
/// JSON bytes (shared with the live object while that is current), not its parsed value,
/// which is several times larger. A replay parses it back ([`Recorded::event`]).
#[derive(Debug)]
pub struct Recorded {
    pub rv: u64,
    pub key: ResourceKey,
    pub kind: EventType,
    pub object: Bytes,
    pub prev: Option<Bytes>,
}

impl Recorded {
    fn of(e: &Event) -> Self {
        Recorded {
            rv: e.rv,
            key: e.key.clone(),
            kind: e.kind,
            object: e.object.json.clone(),
            prev: e.prev.as_ref().map(|p| p.json.clone()),
        }
    }

    /// The change as watches see it.
    pub fn event(&self) -> Event {
        Event {
            rv: self.rv,
            key: self.key.clone(),
            kind: self.kind,
            object: Stored::from_json(self.object.clone()),
            prev: self.prev.clone().map(Stored::from_json),
        }
    }
}

pub type ObjectMap = BTreeMap<(String, String), Arc<Stored>>;

/// Everything mutable about a cluster, behind one lock: a request's read-modify-write is
/// atomic, and events leave in resourceVersion order.
pub struct ClusterState {
    pub rv: u64,
    pub objects: HashMap<ResourceKey, ObjectMap>,
    pub history: VecDeque<Recorded>,
    pub history_limit: usize,
    pub registry: Registry,
    pub events: broadcast::Sender<Arc<Event>>,
    /// Set on every change, cleared by the persister.
    pub dirty: bool,
}

impl ClusterState {
    pub fn new(history_limit: usize, events: broadcast::Sender<Arc<Event>>) -> Self {
        ClusterState {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit,
            registry: Registry::builtin(),
            events,
            dirty: false,
        }
    }

    /// The oldest resourceVersion a watch can resume after without missing events.
    pub fn oldest_resumable_rv(&self) -> u64 {
        self.history.front().map(|e| e.rv - 1).unwrap_or(self.rv)
    }

    pub fn get(&self, key: &ResourceKey, namespace: &str, name: &str) -> Option<&Arc<Stored>> {
        self.objects
            .get(key)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    pub fn list(&self, key: &ResourceKey) -> Option<&ObjectMap> {
        self.objects.get(key)
    }

    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Stores (or with `None`, removes) an object and emits its event. The caller has
    /// already set `metadata.resourceVersion` to a fresh `next_rv()`.
    pub fn commit(&mut self, key: &ResourceKey, value: Value, kind: EventType) -> Arc<Stored> {
        let rv: u64 = value["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.rv);
        let stored = Stored::new(value);
        let id = (stored.namespace().to_string(), stored.name().to_string());
        let map = self.objects.entry(key.clone()).or_default();
        let prev = match kind {
            EventType::Deleted => map.remove(&id),
            _ => map.insert(id, stored.clone()),
        };
        let is_crd =
            key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions";
        let event = Arc::new(Event {
            rv,
            key: key.clone(),
            kind,
            object: stored.clone(),
            prev,
        });
        self.history.push_back(Recorded::of(&event));
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
        self.dirty = true;
        if is_crd {
            self.refresh_registry();
        }
        stored
    }

    pub fn refresh_registry(&mut self) {
        let crd_key = ResourceKey {
            group: "apiextensions.k8s.io".into(),
            plural: "customresourcedefinitions".into(),
        };
        let crds: Vec<Value> = self
            .objects
            .get(&crd_key)
            .map(|m| m.values().map(|s| s.value.clone()).collect())
            .unwrap_or_default();
        self.registry = Registry::with_crds(crds.iter());
    }

    pub fn object_count(&self) -> usize {
        self.objects.values().map(|m| m.len()).sum()
    }
}
