//! How Kubernetes built-in kinds treat each list field when merging: the patch-merge keys
//! of strategic merge patch and the list-map keys of server-side apply, from the Go types'
//! `patchMergeKey`/`listMapKey` tags (only the fields real manifests use).

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Items are objects identified by these keys. For strategic merge patch the first key
    /// is the `patchMergeKey`; server-side apply identifies items by all of them.
    Map(&'static [&'static str]),
    /// A set of scalars (`finalizers`): merged as a union.
    Set,
    /// Replaced whole (`command`, `args`, everything without a strategy, every list of a
    /// custom resource).
    Atomic,
}

impl ListType {
    /// The strategic merge patch merge key, if items are merged by key.
    pub fn merge_key(self) -> Option<&'static str> {
        match self {
            ListType::Map(keys) => keys.first().copied(),
            _ => None,
        }
    }
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The list type of the field at `path` (field names from the object root, list indices
/// left out) of a built-in kind. `kind` is the object's kind, needed where one field name
/// means two things (`spec.ports` of a Service versus a container's `ports`).
/// Custom resources must not call this: all their lists are atomic.
pub fn list_type(kind: &str, path: &[&str]) -> ListType {
    let Some((&field, parents)) = path.split_last() else {
        return ListType::Atomic;
    };
    let parent = parents.last().copied();
    match field {
        "containers" | "initContainers" | "ephemeralContainers" => ListType::Map(&["name"]),
        "ports" if parent.is_some_and(|p| CONTAINER_LISTS.contains(&p)) => {
            ListType::Map(&["containerPort", "protocol"])
        }
        "ports" if kind == "Service" && parents == ["spec"] => ListType::Map(&["port", "protocol"]),
        "env" if parent.is_some_and(|p| CONTAINER_LISTS.contains(&p)) => ListType::Map(&["name"]),
        "volumeMounts" => ListType::Map(&["mountPath"]),
        "volumeDevices" => ListType::Map(&["devicePath"]),
        "volumes" if parent == Some("spec") => ListType::Map(&["name"]),
        "imagePullSecrets" => ListType::Map(&["name"]),
        "hostAliases" => ListType::Map(&["ip"]),
        "topologySpreadConstraints" => ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
        "conditions" if parent == Some("status") => ListType::Map(&["type"]),
        "ownerReferences" if parents == ["metadata"] => ListType::Map(&["uid"]),
        "finalizers" if parents == ["metadata"] => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// Groups whose kinds this schema describes; every other group is a custom resource,
/// whose lists are atomic.
pub fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "" | "apps"
            | "batch"
            | "autoscaling"
            | "policy"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "storage.k8s.io"
            | "scheduling.k8s.io"
            | "coordination.k8s.io"
            | "discovery.k8s.io"
            | "node.k8s.io"
            | "admissionregistration.k8s.io"
            | "apiextensions.k8s.io"
            | "apiregistration.k8s.io"
            | "certificates.k8s.io"
            | "extensions"
    )
}

/// Whether strategic merge patch should honour `$retainKeys` on this field by default
/// (volumes carry `patchStrategy: merge,retainKeys`).
pub fn retains_keys(path: &[&str]) -> bool {
    path.last() == Some(&"volumes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ports_and_service_ports_differ() {
        let c = list_type(
            "Deployment",
            &["spec", "template", "spec", "containers", "ports"],
        );
        assert_eq!(c.merge_key(), Some("containerPort"));
        assert_eq!(
            list_type("Service", &["spec", "ports"]).merge_key(),
            Some("port")
        );
        assert_eq!(
            list_type("Pod", &["spec", "containers", "args"]),
            ListType::Atomic
        );
        assert_eq!(
            list_type("ConfigMap", &["metadata", "finalizers"]),
            ListType::Set
        );
    }
}
