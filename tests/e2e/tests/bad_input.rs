//! Bad input gets a precise error and disturbs nothing else: invalid Applications are
//! refused whole; a broken repo path, a missing revision, an unreachable cluster or a
//! resource the cluster rejects each show on their own app while the others keep syncing.

use std::time::Duration;

use gitfleet_e2e::{AUTOMATED, CONFIGMAP, DEPLOYMENT, Sandbox, Timings, application};

fn conditions(s: &serde_json::Value) -> String {
    s["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["type"].as_str().unwrap_or(""),
                        c["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_applications_are_refused_with_every_problem_named() {
    let sb = Sandbox::start(&[("ok/cm.yaml", CONFIGMAP)], Timings::default()).await;
    let good = application("good", &sb.repo_url(), "ok", None);

    let no_destination = good
        .replace("good", "nodest")
        .split("  destination:")
        .next()
        .unwrap()
        .to_string()
        + "  syncPolicy:\n    syncOptions:\n    - CreateNamespace=true\n";
    let out = sb
        .cli(&[
            "app",
            "create",
            "-f",
            &sb.file("nodest.yaml", &no_destination),
        ])
        .await;
    assert_ne!(out.code, 0);
    assert!(out.stdout.contains("spec.destination"), "{}", out.stdout);

    let wrong_kind = good.replace("kind: Application", "kind: Applicaton");
    let out = sb
        .cli(&["app", "create", "-f", &sb.file("kind.yaml", &wrong_kind)])
        .await;
    assert_ne!(out.code, 0);
    assert!(
        out.stdout.contains("Applicaton"),
        "names the kind found: {}",
        out.stdout
    );

    let bad_url = good.replace(&sb.repo_url(), "not a url");
    let out = sb
        .cli(&["app", "create", "-f", &sb.file("url.yaml", &bad_url)])
        .await;
    assert_ne!(out.code, 0);
    assert!(
        out.stdout.contains("spec.source.repoURL") && out.stdout.contains("not a url"),
        "{}",
        out.stdout
    );

    let list = sb.cli(&["app", "list", "-o", "json"]).await;
    assert_eq!(list.code, 0);
    assert!(
        !list.stdout.contains("nodest") && !list.stdout.contains("Applicaton"),
        "nothing was stored: {}",
        list.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_sources_and_clusters_show_on_their_app_only() {
    let broken_yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b: c\n  d: e\n";
    let rejected = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\ndata:\n  a: b\n";
    let sb = Sandbox::start(
        &[
            ("ok/cm.yaml", CONFIGMAP),
            ("ok/deploy.yaml", DEPLOYMENT),
            ("broken/cm.yaml", broken_yaml),
            ("rejected/cm.yaml", rejected),
        ],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    // An unreachable cluster: nothing listens on its port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    sb.register_cluster("dead", &format!("https://{dead}"), "token", None)
        .await;

    sb.create_app(
        "healthy",
        &application("healthy", &sb.repo_url(), "ok", Some(AUTOMATED)),
    )
    .await;
    sb.create_app(
        "malformed",
        &application("malformed", &sb.repo_url(), "broken", Some(AUTOMATED)),
    )
    .await;
    sb.create_app(
        "norev",
        &application("norev", &sb.repo_url(), "ok", Some(AUTOMATED))
            .replace("targetRevision: main", "targetRevision: no-such-branch"),
    )
    .await;
    sb.create_app(
        "offline",
        &application("offline", &sb.repo_url(), "ok", Some(AUTOMATED))
            .replace("server: https://kubernetes.default.svc", "name: dead"),
    )
    .await;
    sb.create_app(
        "refused",
        &application("refused", &sb.repo_url(), "rejected", None),
    )
    .await;

    let s = sb
        .until_status("malformed", 60, "a ComparisonError", |s| {
            conditions(s).contains("ComparisonError")
        })
        .await;
    let c = conditions(&s);
    assert!(
        c.contains("broken/cm.yaml") && c.contains("line 6"),
        "names file and line: {c}"
    );

    let s = sb
        .until_status("norev", 60, "a ComparisonError", |s| {
            conditions(s).contains("ComparisonError")
        })
        .await;
    assert!(
        conditions(&s).contains("no-such-branch"),
        "{}",
        conditions(&s)
    );

    let s = sb
        .until_status("offline", 90, "Unknown", |s| {
            Sandbox::sync_status(s) == "Unknown" && !conditions(s).is_empty()
        })
        .await;
    assert!(
        conditions(&s).contains("dead"),
        "names the cluster: {}",
        conditions(&s)
    );

    let out = sb.cli(&["app", "sync", "refused"]).await;
    assert_ne!(
        out.code, 0,
        "a sync the cluster refuses fails: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Bad_Name") && out.stdout.contains("invalid"),
        "carries the cluster's message: {}",
        out.stdout
    );

    // Meanwhile the healthy app synced, untouched by its neighbours.
    sb.until_status("healthy", 60, "Synced Healthy", |s| {
        Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
    })
    .await;
    assert!(sb.live("", "configmaps", "healthy", "web-config").is_some());
}
