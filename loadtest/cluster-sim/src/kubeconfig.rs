//! Renders a kubeconfig with one context per simulated cluster.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

/// `clusters` are (name, url, token).
pub fn render(clusters: &[(String, String, String)], ca_pem: Option<&str>) -> String {
    let ca = ca_pem.map(|p| STANDARD.encode(p));
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": clusters.first().map(|c| c.0.clone()).unwrap_or_default(),
        "clusters": clusters.iter().map(|(n, url, _)| {
            let mut c = json!({"server": url});
            if let Some(ca) = &ca {
                c["certificate-authority-data"] = json!(ca);
            }
            json!({"name": n, "cluster": c})
        }).collect::<Vec<_>>(),
        "users": clusters.iter().map(|(n, _, token)| json!({"name": n, "user": {"token": token}})).collect::<Vec<_>>(),
        "contexts": clusters.iter().map(|(n, _, _)| json!({"name": n, "context": {"cluster": n, "user": n, "namespace": "default"}})).collect::<Vec<_>>(),
        "preferences": {},
    });
    serde_yaml_ng::to_string(&doc).expect("kubeconfig serializes")
}

/// Standard base64 with padding (kubeconfig `*-data` fields, Secret `data`), for the
/// end-to-end tests, which register the emulator's CA as a cluster's `caData`.
pub fn base64(input: &[u8]) -> String {
    STANDARD.encode(input)
}
