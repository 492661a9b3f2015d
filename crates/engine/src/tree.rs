//! An app's resource tree as Argo CD shows it (`app resources --output tree`, the
//! `resource-tree` API): the app's resources, and under each what it owns by
//! `ownerReferences`, down to Pods (a Deployment's ReplicaSets and their Pods, a CronJob's
//! Jobs), each with its health.

use std::collections::HashSet;

use gitfleet_model::{HealthStatus, ResourceNode, ResourceNodeRef};
use serde_json::Value;

use crate::health::Checks;
use crate::json::{array_at, str_at};
use crate::resource::split_api_version;

/// Levels below an app's resource that are followed (Deployment, ReplicaSet, Pod is 2).
const MAX_DEPTH: usize = 5;

/// The nodes of the tree: every one of `resources`, then every one of `others` that one
/// already in the tree owns, level by level; each with its health by `checks`.
pub fn resource_tree(resources: &[Value], others: &[Value], checks: &Checks) -> Vec<ResourceNode> {
    let mut nodes: Vec<ResourceNode> = resources
        .iter()
        .map(|o| node(o, Vec::new(), checks))
        .collect();
    let mut uids: HashSet<String> = nodes
        .iter()
        .map(|n| n.uid.clone())
        .filter(|u| !u.is_empty())
        .collect();
    let mut taken = vec![false; others.len()];
    for _ in 0..MAX_DEPTH {
        let mut found = Vec::new();
        for (i, obj) in others.iter().enumerate() {
            if taken[i] || uids.contains(str_at(obj, &["metadata", "uid"])) {
                continue;
            }
            let parents: Vec<ResourceNodeRef> = array_at(obj, &["metadata", "ownerReferences"])
                .iter()
                .filter(|o| uids.contains(str_at(o, &["uid"])))
                .map(|o| ResourceNodeRef {
                    group: split_api_version(str_at(o, &["apiVersion"])).0.to_owned(),
                    kind: str_at(o, &["kind"]).to_owned(),
                    namespace: str_at(obj, &["metadata", "namespace"]).to_owned(),
                    name: str_at(o, &["name"]).to_owned(),
                    uid: str_at(o, &["uid"]).to_owned(),
                })
                .collect();
            if !parents.is_empty() {
                taken[i] = true;
                found.push(node(obj, parents, checks));
            }
        }
        if found.is_empty() {
            break;
        }
        uids.extend(found.iter().map(|n| n.uid.clone()));
        nodes.extend(found);
    }
    nodes
}

fn node(obj: &Value, parent_refs: Vec<ResourceNodeRef>, checks: &Checks) -> ResourceNode {
    let (group, version) = split_api_version(str_at(obj, &["apiVersion"]));
    let meta = |k: &str| str_at(obj, &["metadata", k]).to_owned();
    ResourceNode {
        group: group.to_owned(),
        version: version.to_owned(),
        kind: str_at(obj, &["kind"]).to_owned(),
        namespace: meta("namespace"),
        name: meta("name"),
        uid: meta("uid"),
        parent_refs,
        health: checks.assess(obj).map(|h| HealthStatus {
            status: h.status,
            message: h.message,
            last_transition_time: None,
        }),
        created_at: meta("creationTimestamp"),
        resource_version: meta("resourceVersion"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owned(
        kind: &str,
        api: &str,
        name: &str,
        uid: &str,
        owner: Option<(&str, &str, &str, &str)>,
    ) -> Value {
        let mut obj = json!({"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": "web", "uid": uid}});
        if let Some((api, kind, name, uid)) = owner {
            obj["metadata"]["ownerReferences"] = json!([{"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": true}]);
        }
        obj
    }

    #[test]
    fn a_deployment_owns_its_replica_sets_and_their_pods_and_nothing_else() {
        let deployment = owned("Deployment", "apps/v1", "web", "d1", None);
        let others = vec![
            // A grandchild listed before its parent is still found.
            owned(
                "Pod",
                "v1",
                "web-a-1",
                "p1",
                Some(("apps/v1", "ReplicaSet", "web-a", "r1")),
            ),
            owned(
                "ReplicaSet",
                "apps/v1",
                "web-a",
                "r1",
                Some(("apps/v1", "Deployment", "web", "d1")),
            ),
            owned(
                "Pod",
                "v1",
                "other-1",
                "p9",
                Some(("apps/v1", "ReplicaSet", "other", "r9")),
            ),
            owned("ConfigMap", "v1", "loose", "c1", None),
        ];
        let tree = resource_tree(&[deployment], &others, &Checks::default());
        let names: Vec<(&str, &str, Vec<&str>)> = tree
            .iter()
            .map(|n| {
                (
                    n.kind.as_str(),
                    n.name.as_str(),
                    n.parent_refs.iter().map(|p| p.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("Deployment", "web", vec![]),
                ("ReplicaSet", "web-a", vec!["web"]),
                ("Pod", "web-a-1", vec!["web-a"]),
            ]
        );
        assert_eq!(tree[1].group, "apps");
        assert_eq!(tree[1].parent_refs[0].group, "apps");
        assert_eq!(tree[2].parent_refs[0].uid, "r1");
    }
}
