//! Work per commit grows with the commit, not with the fleet: in one repository of 40
//! plain apps and 6 Kustomize overlays on two shared bases, a commit to one app's folder
//! is rendered for that app alone, a commit to a shared base for exactly the overlays that
//! read it, and a commit elsewhere for none, while every app still moves to the new
//! commit. Renders are counted by listening on the render subject (NATS hands every
//! request to the renderers' queue group and to this plain subscriber too).

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use gitfleet_e2e::{Sandbox, Timings, application};
use gitfleet_messages::RenderRequest;

const APPS: usize = 40;
const OVERLAYS: usize = 6;

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_re_renders_exactly_the_apps_whose_inputs_it_touches() {
    let mut files: Vec<(String, String)> = Vec::new();
    for i in 0..APPS {
        files.push((
            format!("apps/app-{i}/cm.yaml"),
            config_map(&format!("app-{i}"), "1"),
        ));
    }
    for base in ["a", "b"] {
        files.push((
            format!("bases/{base}/kustomization.yaml"),
            "resources: [cm.yaml]\n".into(),
        ));
        files.push((format!("bases/{base}/cm.yaml"), config_map("shared", "1")));
    }
    for j in 0..OVERLAYS {
        let base = if j < OVERLAYS / 2 { "a" } else { "b" };
        files.push((
            format!("overlays/o-{j}/kustomization.yaml"),
            format!("resources: [../../bases/{base}]\nnamePrefix: o-{j}-\n"),
        ));
    }
    files.push(("docs/README.md".into(), "# fleet\n".into()));
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let sb = Sandbox::start(
        &borrowed,
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;

    let mut renders = sb
        .bus
        .client
        .subscribe(sb.bus.topology.render_subject())
        .await
        .unwrap();
    sb.bus.client.flush().await.unwrap();

    let mut names: Vec<String> = (0..APPS).map(|i| format!("app-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let yaml = application(name, &sb.repo_url(), &format!("apps/app-{i}"), None);
        sb.create_app(name, &yaml).await;
    }
    for j in 0..OVERLAYS {
        let name = format!("o-{j}");
        let yaml = application(&name, &sb.repo_url(), &format!("overlays/o-{j}"), None);
        sb.create_app(&name, &yaml).await;
        names.push(name);
    }
    for name in &names {
        sb.until_status(name, 90, "its first comparison", |s| {
            Sandbox::sync_status(s) == "OutOfSync"
        })
        .await;
    }

    // Commits, and which apps each was rendered for.
    let cases: [(&str, Option<&str>, &[&str]); 3] = [
        ("apps/app-7/cm.yaml", Some("app-7"), &["app-7"]),
        ("bases/a/cm.yaml", None, &["o-0", "o-1", "o-2"]),
        ("docs/README.md", None, &[]),
    ];
    for (n, (path, name, expected)) in cases.iter().enumerate() {
        let content = if path.ends_with(".md") {
            format!("# fleet, take {n}\n")
        } else {
            config_map(name.unwrap_or("shared"), &format!("{}", n + 2))
        };
        let commit = sb.commit(&[(path, Some(&content))], &format!("change {path}"));
        assert!(sb.github_push().await.is_success());
        for app in &names {
            sb.until_status(app, 60, "the new commit", |s| {
                s["sync"]["revision"] == commit
            })
            .await;
        }
        // Every render request for this commit has been sent before the statuses that
        // need it were written; drain what arrived.
        let mut rendered = BTreeSet::new();
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(300), renders.next()).await
        {
            let request: RenderRequest = serde_json::from_slice(&message.payload).unwrap();
            if request.commit == commit {
                rendered.insert(request.app_name);
            }
        }
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(rendered, expected, "renders for the commit to {path}");
    }
}
