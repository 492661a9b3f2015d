//! The set of field paths a manager owns, as the `fieldsV1` trie Kubernetes stores in
//! `metadata.managedFields`, with the set algebra server-side apply needs.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::path::{self, PathElement};

/// A set of field paths. Each node is one path; `member` says whether that path itself
/// is in the set (a leaf, or `"."` on a node that also has children). Children are keyed
/// by their encoded path element (`f:name`, `k:{...}`, `v:...`, `i:0`), which is also
/// the order `fieldsV1` lists them in.
///
/// Invariant: no stored child is empty, so `is_empty` on the root means "owns nothing".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn leaf() -> Self {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    pub(crate) fn is_member(&self) -> bool {
        self.member
    }

    pub(crate) fn set_member(&mut self, member: bool) {
        self.member = member;
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&String, &FieldSet)> {
        self.children.iter()
    }

    pub(crate) fn child(&self, element: &str) -> Option<&FieldSet> {
        self.children.get(element)
    }

    /// Adds `child` under `element`, merging with what is there; empty children are
    /// dropped to keep the invariant.
    pub(crate) fn insert_child(&mut self, element: String, child: FieldSet) {
        if child.is_empty() {
            return;
        }
        match self.children.get_mut(&element) {
            Some(existing) => existing.union_with(&child),
            None => {
                self.children.insert(element, child);
            }
        }
    }

    /// Adds one path (a list of encoded path elements) to the set.
    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }

    /// Whether this exact path is in the set.
    pub fn contains(&self, path: &[String]) -> bool {
        let mut node = self;
        for element in path {
            match node.children.get(element) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.member
    }

    pub fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (element, child) in &other.children {
            self.insert_child(element.clone(), child.clone());
        }
    }

    /// Removes every path of `other` from `self` (exact paths: removing a node does not
    /// remove its descendants, as in structured-merge-diff's `Set.Difference`).
    pub fn remove_all(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (element, theirs) in &other.children {
            if let Some(mine) = self.children.get_mut(element) {
                mine.remove_all(theirs);
                if mine.is_empty() {
                    self.children.remove(element);
                }
            }
        }
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (element, mine) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                out.insert_child(element.clone(), mine.intersection(theirs));
            }
        }
        out
    }

    /// Every path in the set, in `fieldsV1` order (a node before its descendants).
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Drops every path that does not resolve in `value`: ownership of a field ends when
    /// the field leaves the object, whoever removed it.
    pub fn retain_existing(&mut self, value: &Value) {
        self.children
            .retain(|element, child| match path::child(value, element) {
                Some(child_value) => {
                    child.retain_existing(child_value);
                    !child.is_empty()
                }
                None => false,
            });
    }

    /// The `fieldsV1` JSON form.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            map.insert(element.clone(), child.to_fields_v1());
        }
        Value::Object(map)
    }

    /// Parses `fieldsV1`; `None` when it is not a trie of objects. A child written `{}` is
    /// a leaf, `"."` marks a node that is itself a member.
    pub fn from_fields_v1(value: &Value) -> Option<FieldSet> {
        let map = value.as_object()?;
        let mut set = FieldSet::new();
        for (key, child) in map {
            if key == "." {
                set.member = true;
                continue;
            }
            PathElement::decode(key)?;
            let mut child_set = FieldSet::from_fields_v1(child)?;
            if child.as_object().is_some_and(Map::is_empty) {
                child_set.member = true;
            }
            set.insert_child(key.clone(), child_set);
        }
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(elements: &[&str]) -> Vec<String> {
        elements.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn round_trips_fields_v1_with_dot_only_where_a_node_has_children() {
        let v1 = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}}}}
        });
        let set = FieldSet::from_fields_v1(&v1).unwrap();
        assert!(set.contains(&p(&["f:metadata", "f:labels"])));
        assert!(set.contains(&p(&["f:metadata", "f:labels", "f:app"])));
        assert!(!set.contains(&p(&["f:metadata"])));
        assert_eq!(set.to_fields_v1(), v1);
    }

    #[test]
    fn rejects_malformed_tries() {
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_none());
        assert!(FieldSet::from_fields_v1(&json!({"x:a": {}})).is_none());
    }

    #[test]
    fn difference_is_exact_and_prunes_empty_nodes() {
        let mut a = FieldSet::new();
        a.insert(&p(&["f:spec", "f:replicas"]));
        a.insert(&p(&["f:spec", "f:paused"]));
        let mut b = FieldSet::new();
        b.insert(&p(&["f:spec", "f:replicas"]));
        b.insert(&p(&["f:spec"]));
        a.remove_all(&b);
        assert_eq!(a.paths(), vec![p(&["f:spec", "f:paused"])]);
        a.remove_all(&a.clone());
        assert!(a.is_empty());
        assert_eq!(a.to_fields_v1(), json!({}));
    }

    #[test]
    fn intersection_keeps_only_shared_paths() {
        let mut a = FieldSet::new();
        a.insert(&p(&["f:spec", "f:replicas"]));
        a.insert(&p(&["f:spec", "f:paused"]));
        let mut b = FieldSet::new();
        b.insert(&p(&["f:spec", "f:replicas"]));
        b.insert(&p(&["f:data"]));
        assert_eq!(
            a.intersection(&b).paths(),
            vec![p(&["f:spec", "f:replicas"])]
        );
    }

    #[test]
    fn retain_existing_drops_paths_missing_from_the_object() {
        let mut set = FieldSet::new();
        set.insert(&p(&["f:spec", "f:replicas"]));
        set.insert(&p(&[
            "f:spec",
            "f:containers",
            "k:{\"name\":\"a\"}",
            "f:image",
        ]));
        set.insert(&p(&[
            "f:spec",
            "f:containers",
            "k:{\"name\":\"b\"}",
            "f:image",
        ]));
        set.retain_existing(&json!({"spec": {"containers": [{"name": "b", "image": "x"}]}}));
        assert_eq!(
            set.paths(),
            vec![p(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"b\"}",
                "f:image"
            ])]
        );
    }
}
