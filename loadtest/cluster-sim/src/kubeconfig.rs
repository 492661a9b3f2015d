//! Renders a kubeconfig with one context per simulated cluster.

use serde_json::json;

/// `clusters` are (name, url, token).
pub fn render(clusters: &[(String, String, String)], ca_pem: Option<&str>) -> String {
    let ca = ca_pem.map(|p| base64(p.as_bytes()));
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

/// Standard base64 with padding (kubeconfig `*-data` fields, Secret `data`).
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
