//! Resource identity: which object a JSON value is (group, version, kind, namespace, name),
//! as Argo CD names resources in tracking ids, messages and status.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::str_at;

/// One Kubernetes object's identity. The core group is `""`; cluster-scoped objects have an
/// empty namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceRef {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceRef {
    /// Reads `apiVersion`, `kind`, `metadata.namespace` and `metadata.name`; absent fields
    /// are empty.
    pub fn from_object(obj: &Value) -> Self {
        let (group, version) = split_api_version(str_at(obj, &["apiVersion"]));
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: str_at(obj, &["kind"]).to_owned(),
            namespace: str_at(obj, &["metadata", "namespace"]).to_owned(),
            name: str_at(obj, &["metadata", "name"]).to_owned(),
        }
    }

    /// Whether both name the same object. The version is left out, as in Argo CD's
    /// `ResourceKey`: `apps/v1` and `apps/v1beta2` Deployments of one name are one object.
    pub fn same_object(&self, other: &Self) -> bool {
        self.group == other.group
            && self.kind == other.kind
            && self.namespace == other.namespace
            && self.name == other.name
    }

    /// `apps/Deployment` or, for the core group, `Service`.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}/{}", self.group, self.kind)
        }
    }
}

/// `apps/Deployment default/web`, `Service default/web`, `Namespace prod`.
impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.group_kind())?;
        if !self.namespace.is_empty() {
            write!(f, "{}/", self.namespace)?;
        }
        f.write_str(&self.name)
    }
}

/// Splits `apps/v1` into `("apps", "v1")` and `v1` into `("", "v1")`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_identity_and_formats_like_argo() {
        let d = ResourceRef::from_object(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"}
        }));
        assert_eq!(d.to_string(), "apps/Deployment default/web");
        let ns = ResourceRef::from_object(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}),
        );
        assert_eq!((ns.group.as_str(), ns.version.as_str()), ("", "v1"));
        assert_eq!(ns.to_string(), "Namespace prod");
        let mut other = d.clone();
        other.version = "v1beta2".into();
        assert!(d.same_object(&other));
        other.name = "api".into();
        assert!(!d.same_object(&other));
    }
}
