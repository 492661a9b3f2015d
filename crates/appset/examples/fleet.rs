//! How long generating and planning a fleet-sized ApplicationSet takes, pure (no bus):
//! a matrix of the cluster generator over N labelled clusters and a list of K services.
//!
//! `cargo run --release -p gitfleet-appset --example fleet -- 1000 10`

use std::time::Instant;

use gitfleet_appset::{Action, GeneratedApp, Sources, generate, owner_reference, plan};
use gitfleet_model::{ApplicationSet, Cluster};
use serde_json::json;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let clusters = args.next().unwrap_or(1000);
    let services = args.next().unwrap_or(10);
    let sources = Sources {
        clusters: (0..clusters)
            .map(|i| Cluster {
                name: format!("c{i:04}"),
                server: format!("https://10.0.{}.{}:6443", i / 250, i % 250),
                labels: [("fleet".to_owned(), "load".to_owned())].into(),
                ..Cluster::default()
            })
            .collect(),
        ..Sources::default()
    };
    let elements: Vec<_> = (0..services)
        .map(|j| json!({"service": format!("s{j:02}")}))
        .collect();
    for go in [false, true] {
        let (name, cluster, service, path) = if go {
            (
                "{{ .name }}-{{ .service }}",
                "{{ .name }}",
                "{{ .service }}",
                "services/{{ .service }}",
            )
        } else {
            (
                "{{name}}-{{service}}",
                "{{name}}",
                "{{service}}",
                "services/{{service}}",
            )
        };
        let set: ApplicationSet = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ApplicationSet",
            "metadata": {"name": "fleet", "namespace": "argocd"},
            "spec": {
                "goTemplate": go,
                "generators": [{"matrix": {"generators": [
                    {"clusters": {"selector": {"matchLabels": {"fleet": "load"}}}},
                    {"list": {"elements": elements}},
                ]}}],
                "template": {
                    "metadata": {"name": name},
                    "spec": {
                        "project": "default",
                        "source": {"repoURL": "https://git.example/fleet.git", "targetRevision": "main", "path": path},
                        "destination": {"name": cluster, "namespace": service},
                        "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
                    },
                },
            },
        }))
        .expect("a set");
        let t = Instant::now();
        let apps: Vec<GeneratedApp> = generate(&set, &sources).expect("generates");
        let generated = t.elapsed();
        let t = Instant::now();
        let first = plan(&set, &apps, &[]);
        let planned_empty = t.elapsed();
        let stored: Vec<_> = first
            .actions
            .iter()
            .filter_map(|a| match a {
                // Read back from JSON, as the controller reads KV.
                Action::Create(app) => {
                    Some(serde_json::from_slice(&serde_json::to_vec(app).unwrap()).unwrap())
                }
                _ => None,
            })
            .collect();
        let t = Instant::now();
        let again = plan(&set, &apps, &stored);
        let planned_same = t.elapsed();
        assert_eq!(again.unchanged, apps.len(), "{:?}", again.actions.first());
        let _ = owner_reference(&set);
        println!(
            "{} ({}): {} apps generated in {:.1} ms; planned against nothing in {:.1} ms, against themselves in {:.1} ms",
            if go { "goTemplate" } else { "fasttemplate" },
            format_args!("{clusters} clusters x {services} services"),
            apps.len(),
            generated.as_secs_f64() * 1e3,
            planned_empty.as_secs_f64() * 1e3,
            planned_same.as_secs_f64() * 1e3,
        );
    }
}
