//! Work per commit grows with the commit, not with the fleet: in one repository of 1,000
//! apps (900 plain folders, 100 Kustomize overlays on four shared bases), a commit to one
//! app's folder is rendered for that app alone, a commit to a shared base for exactly the
//! overlays that read it, a commit elsewhere for none, and a commit to every app's folder
//! for every app, while every app moves to each new commit. Renders are counted by
//! listening on the render subject (NATS hands every request to the renderers' queue group
//! and to this plain subscriber too). The webhook's answer time and the time until every
//! app is on the commit are printed for BENCHMARKS.md; `GITFLEET_MONOREPO_APPS` sets the
//! number of plain apps (900 here).

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use gitfleet_e2e::{Sandbox, Timings, application};
use gitfleet_messages::RenderRequest;

const APPS: usize = 900;
const OVERLAYS: usize = 100;
const BASES: [&str; 4] = ["a", "b", "c", "d"];

/// What a commit changes, the files it writes, and the apps it must re-render.
type Case = (&'static str, Vec<(String, String)>, Vec<String>);

fn plain_apps() -> usize {
    std::env::var("GITFLEET_MONOREPO_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(APPS)
}

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_re_renders_exactly_the_apps_whose_inputs_it_touches() {
    let apps = plain_apps();
    let mut files: Vec<(String, String)> = Vec::new();
    for i in 0..apps {
        files.push((
            format!("apps/app-{i}/cm.yaml"),
            config_map(&format!("app-{i}"), "1"),
        ));
    }
    for base in BASES {
        files.push((
            format!("bases/{base}/kustomization.yaml"),
            "resources: [cm.yaml]\n".into(),
        ));
        files.push((format!("bases/{base}/cm.yaml"), config_map("shared", "1")));
    }
    for j in 0..OVERLAYS {
        let base = BASES[j % BASES.len()];
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

    let mut names: Vec<String> = (0..apps).map(|i| format!("app-{i}")).collect();
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
        sb.until_status(name, 180, "its first comparison", |s| {
            Sandbox::sync_status(s) == "OutOfSync"
        })
        .await;
    }

    // Commits, and which apps each was rendered for.
    let every_app: Vec<String> = (0..apps).map(|i| format!("app-{i}")).collect();
    let on_base_a: Vec<String> = (0..OVERLAYS)
        .filter(|j| j % BASES.len() == 0)
        .map(|j| format!("o-{j}"))
        .collect();
    let cases: [Case; 4] = [
        (
            "one app's folder",
            vec![("apps/app-7/cm.yaml".into(), config_map("app-7", "2"))],
            vec!["app-7".into()],
        ),
        (
            "a shared base",
            vec![("bases/a/cm.yaml".into(), config_map("shared", "3"))],
            on_base_a,
        ),
        (
            "a file no app reads",
            vec![("docs/README.md".into(), "# fleet, take 4\n".into())],
            Vec::new(),
        ),
        (
            "every plain app's folder",
            every_app
                .iter()
                .map(|name| (format!("apps/{name}/cm.yaml"), config_map(name, "5")))
                .collect(),
            every_app.clone(),
        ),
    ];
    let first_commit = |s: &serde_json::Value| s["sync"]["revision"].as_str().map(str::to_owned);
    let mut at_start = std::collections::BTreeMap::new();
    for app in &names {
        at_start.insert(
            app.clone(),
            first_commit(&sb.status(app).await.unwrap()).unwrap(),
        );
    }
    let owners_before = owners(&sb).await;
    // Render requests seen, by commit; drained after each case, checked at the end (a
    // case touching no app has nothing to wait for: the next case's apps moving on is
    // its barrier, the events being handled in order).
    let mut rendered: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut drain = async |rendered: &mut std::collections::BTreeMap<String, BTreeSet<String>>| {
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(300), renders.next()).await
        {
            let request: RenderRequest = serde_json::from_slice(&message.payload).unwrap();
            rendered
                .entry(request.commit)
                .or_default()
                .insert(request.app_name);
        }
    };
    let mut commits = Vec::new();
    let mut last_commit_of = at_start.clone();
    for (what, changes, expected) in &cases {
        let borrowed: Vec<(&str, Option<&str>)> = changes
            .iter()
            .map(|(p, c)| (p.as_str(), Some(c.as_str())))
            .collect();
        let commit = sb.commit(&borrowed, &format!("change {what}"));
        let pushed = std::time::Instant::now();
        assert!(sb.github_push().await.is_success());
        let answered = pushed.elapsed();
        // Only the apps whose inputs the commit touches are compared again (a commit
        // costs work for the apps it changes, not for the fleet).
        for app in expected {
            sb.until_status(app, 120, "the new commit", |s| {
                s["sync"]["revision"] == commit
            })
            .await;
            last_commit_of.insert(app.clone(), commit.clone());
        }
        let all_on_commit = pushed.elapsed();
        drain(&mut rendered).await;
        println!(
            "monorepo of {} apps, commit to {what}: webhook answered in {:.1} ms, the {} apps it touches on the commit after {:.2} s",
            names.len(),
            answered.as_secs_f64() * 1e3,
            expected.len(),
            all_on_commit.as_secs_f64()
        );
        commits.push((what, commit, expected));
    }
    drain(&mut rendered).await;
    // A diff worker that loses and re-takes a partition (its lease lapsed: a machine too
    // busy to renew in time) reconciles that partition's apps afresh, renders and all.
    // Exactness is promised while ownership holds, so such a case is told, not failed;
    // what was expected must still be rendered.
    let ownership_held = owners(&sb).await == owners_before;
    for (what, commit, expected) in &commits {
        let got = rendered.get(commit).cloned().unwrap_or_default();
        let expected: BTreeSet<String> = expected.iter().cloned().collect();
        let missing: Vec<_> = expected.difference(&got).collect();
        let extra: Vec<_> = got.difference(&expected).collect();
        if !extra.is_empty() && !ownership_held {
            println!(
                "commit to {what}: a partition changed hands during the run; {} extra renders not counted",
                extra.len()
            );
        } else {
            assert!(
                missing.is_empty() && extra.is_empty(),
                "renders for a commit to {what}: {} missing {missing:?}, {} extra {extra:?}",
                missing.len(),
                extra.len()
            );
        }
    }
    if ownership_held {
        for app in &names {
            let s = sb.status(app).await.unwrap();
            assert_eq!(
                first_commit(&s).as_ref(),
                Some(&last_commit_of[app]),
                "{app} is at the last commit that touched it"
            );
        }
    }
}

/// The fencing token of every app partition's lease (who holds it, since when).
async fn owners(sb: &Sandbox) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for p in 0..gitfleet_messages::APP_PARTITIONS {
        let lease = gitfleet_bus::read_lease(&sb.bus, gitfleet_messages::DIFF_WORKERS, p)
            .await
            .unwrap();
        out.push(lease.map(|l| l.token));
    }
    out
}
