//! What one health verdict costs, built-in against a Lua check (a fresh sandbox per call),
//! and the process's memory after many calls of a script stopped at its memory limit, for
//! BENCHMARKS.md: `cargo run --release -p gitfleet-engine --example health_cost`.

use std::collections::BTreeMap;
use std::time::Instant;

use gitfleet_engine::health::Checks;
use serde_json::{Value, json};

/// A cert-manager Certificate check as Argo CD's library writes them.
const CERTIFICATE: &str = r#"hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for i, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Ready" and condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for certificate"
return hs
"#;

fn time(label: &str, n: u32, checks: &Checks, obj: &Value) {
    let start = Instant::now();
    let mut judged = 0;
    for _ in 0..n {
        if checks.assess(obj).is_some() {
            judged += 1;
        }
    }
    let took = start.elapsed();
    println!(
        "{label}: {n} calls in {took:?} ({:?} each), {judged} verdicts",
        took / n
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "generation": 2},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
            "availableReplicas": 3, "readyReplicas": 3}});
    let certificate = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "web-tls", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"secretName": "web-tls", "dnsNames": ["web.example.com"],
            "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}},
        "status": {"conditions": [
            {"type": "Issuing", "status": "False", "reason": "Issued"},
            {"type": "Ready", "status": "True", "message": "Certificate is up to date"}]}});
    let data = BTreeMap::from([(
        "resource.customizations.health.cert-manager.io_Certificate".to_owned(),
        CERTIFICATE.to_owned(),
    )]);
    let (checks, errors) = Checks::from_settings(&data, &gitfleet_lua::Library::default());
    assert!(errors.is_empty());
    let n = 20_000;
    time("built-in Deployment check", n, &checks, &deployment);
    time("Lua Certificate check", n, &checks, &certificate);

    // Memory stays bounded: a script that allocates until stopped, on fresh checks each
    // time (a stopped script is not run again, so each round would cost nothing).
    let grow = BTreeMap::from([(
        "resource.customizations.health.cert-manager.io_Certificate".to_owned(),
        "local t = {}\nwhile true do t[#t + 1] = {1, 2, 3, 4, 5, 6, 7, 8} end".to_owned(),
    )]);
    let before = rss_kib();
    let rounds = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        let (checks, _) = Checks::from_settings(&grow, &gitfleet_lua::Library::default());
        let h = checks.assess(&certificate).expect("a verdict");
        assert!(h.message.contains("memory limit"), "{}", h.message);
    }
    println!(
        "{rounds} runs stopped at the 64 MiB limit in {:?}: RSS {} MiB before, {} MiB after",
        start.elapsed(),
        before / 1024,
        rss_kib() / 1024
    );
}
