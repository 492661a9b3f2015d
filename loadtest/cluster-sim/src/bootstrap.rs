//! What a new API server makes for itself before anyone asks: the system namespaces and
//! the `kubernetes` Service in `default`. (Each namespace's `default` ServiceAccount and
//! `kube-root-ca.crt` ConfigMap are kube-controller-manager's work: see `controllers`.)

use serde_json::{Value, json};

use crate::api::now;
use crate::resources::ResourceKey;
use crate::store::{ClusterState, EventType};

/// The namespaces every cluster starts with.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces the API server refuses to delete (the NamespaceLifecycle admission plugin).
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// The ClusterIP of the `kubernetes` Service: the first address of the service range.
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

fn key(plural: &str) -> ResourceKey {
    ResourceKey {
        group: String::new(),
        plural: plural.into(),
    }
}

/// Stores a new object as a system component writes it: identity, the API server's
/// defaults, a managedFields entry for `manager`, a fresh resourceVersion.
pub(crate) fn create_system(st: &mut ClusterState, k: &ResourceKey, mut v: Value, manager: &str) {
    let Some(rt) = st.registry.find_key(k).cloned() else {
        return;
    };
    let time = now();
    v["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    v["metadata"]["creationTimestamp"] = json!(time);
    crate::defaults::apply(&rt.kind, &mut v, || KUBERNETES_SERVICE_IP.to_string());
    let av = rt.api_version();
    field_manager::record_update(
        None,
        &mut v,
        &field_manager::ObjectInfo {
            kind: &rt.kind,
            api_version: &av,
            builtin: rt.builtin,
            has_status_subresource: rt.status_subresource,
            subresource: None,
        },
        &field_manager::Operation {
            manager,
            time: &time,
        },
    );
    let rv = st.next_rv();
    v["metadata"]["resourceVersion"] = json!(rv.to_string());
    st.commit(k, v, EventType::Added);
}

/// Creates whatever of the system namespaces and the `kubernetes` Service is missing,
/// as kube-apiserver does at every start.
pub fn ensure(st: &mut ClusterState) {
    let nk = key("namespaces");
    for ns in SYSTEM_NAMESPACES {
        if st.get(&nk, "", ns).is_none() {
            create_system(
                st,
                &nk,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                "kube-apiserver",
            );
        }
    }
    ensure_kubernetes_service(st);
}

/// The `kubernetes` Service in `default`, recreated when someone deletes it (the API
/// server's bootstrap controller keeps it).
pub fn ensure_kubernetes_service(st: &mut ClusterState) {
    let sk = key("services");
    let ns_live = st
        .get(&key("namespaces"), "", "default")
        .is_some_and(|n| !n.value["metadata"]["deletionTimestamp"].is_string());
    if !ns_live || st.get(&sk, "default", "kubernetes").is_some() {
        return;
    }
    create_system(
        st,
        &sk,
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_SERVICE_IP,
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None"}}),
        "kube-apiserver",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_state_has_the_system_namespaces_and_the_kubernetes_service() {
        let (tx, _) = tokio::sync::broadcast::channel(16);
        let mut st = ClusterState::new(100, tx);
        ensure(&mut st);
        for ns in SYSTEM_NAMESPACES {
            let n = st.get(&key("namespaces"), "", ns).expect("namespace");
            assert_eq!(n.value["status"]["phase"], "Active");
            assert_eq!(
                n.value["metadata"]["labels"]["kubernetes.io/metadata.name"],
                *ns
            );
        }
        let svc = st.get(&key("services"), "default", "kubernetes").unwrap();
        assert_eq!(svc.value["spec"]["clusterIP"], KUBERNETES_SERVICE_IP);
        assert_eq!(svc.value["spec"]["ports"][0]["name"], "https");
        assert_eq!(svc.value["spec"]["ports"][0]["port"], 443);
        assert!(!svc.value.to_string().contains("null"), "{}", svc.value);
        let count = st.object_count();
        ensure(&mut st);
        assert_eq!(st.object_count(), count, "ensure is idempotent");
    }
}
