//! The first full GitOps loop: Git commit → render → diff → sync → cluster, through every
//! service over a real NATS server, a real Git server and the emulator over HTTPS.

use gitfleet_e2e::{CONFIGMAP, DEPLOYMENT, SERVICE, Sandbox, Timings, application};

const TRACKING: &str = "argocd.argoproj.io/tracking-id";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_sync_creates_tracked_objects_and_reports_synced_healthy() {
    let sb = Sandbox::start(
        &[
            ("guestbook/deploy.yaml", DEPLOYMENT),
            ("guestbook/svc.yaml", SERVICE),
            ("guestbook/cm.yaml", CONFIGMAP),
        ],
        Timings::default(),
    )
    .await;
    let f = sb.file(
        "app.yaml",
        &application("guestbook", &sb.repo_url(), "guestbook", None),
    );
    let out = sb.cli(&["app", "create", "-f", &f]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);

    // Manual sync policy: nothing is applied until asked.
    let s = sb
        .until_status("guestbook", 60, "OutOfSync", |s| {
            Sandbox::sync_status(s) == "OutOfSync"
        })
        .await;
    assert_eq!(Sandbox::health(&s), "Missing", "{s:#}");
    assert!(sb.live("apps", "deployments", "guestbook", "web").is_none());

    let out = sb.cli(&["app", "sync", "guestbook"]).await;
    assert_eq!(out.code, 0, "app sync: {}", out.stdout);

    for (group, plural, name, kind) in [
        ("apps", "deployments", "web", "apps/Deployment"),
        ("", "services", "web", "/Service"),
        ("", "configmaps", "web-config", "/ConfigMap"),
    ] {
        let obj = sb
            .live(group, plural, "guestbook", name)
            .unwrap_or_else(|| panic!("{plural}/{name} was not created"));
        assert_eq!(
            obj["metadata"]["annotations"][TRACKING],
            format!("guestbook:{kind}:guestbook/{name}"),
            "Argo CD's tracking id"
        );
        let managers: Vec<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(
            managers.contains(&"argocd-controller"),
            "applied by server-side apply as argocd-controller: {managers:?}"
        );
    }
    assert!(
        sb.live("", "namespaces", "", "guestbook").is_some(),
        "CreateNamespace=true"
    );

    let s = sb
        .until_status("guestbook", 60, "Synced and Healthy", |s| {
            Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
        })
        .await;
    assert_eq!(s["sync"]["revision"].as_str().unwrap(), sb.repo.rev("HEAD"));
    let list = sb.cli(&["app", "list"]).await;
    assert_eq!(list.code, 0);
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with("guestbook"))
        .unwrap_or_else(|| panic!("{}", list.stdout));
    assert!(
        row.contains("Synced") && row.contains("Healthy"),
        "{}",
        list.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_delete_cascades_to_the_apps_resources() {
    let sb = Sandbox::start(
        &[
            ("guestbook/deploy.yaml", DEPLOYMENT),
            ("guestbook/cm.yaml", CONFIGMAP),
        ],
        Timings::default(),
    )
    .await;
    sb.create_app(
        "gone",
        &application(
            "gone",
            &sb.repo_url(),
            "guestbook",
            Some(gitfleet_e2e::AUTOMATED),
        ),
    )
    .await;
    sb.create_app(
        "stays",
        &application(
            "stays",
            &sb.repo_url(),
            "guestbook",
            Some(gitfleet_e2e::AUTOMATED),
        ),
    )
    .await;
    for app in ["gone", "stays"] {
        sb.until_status(app, 60, "Synced", |s| Sandbox::sync_status(s) == "Synced")
            .await;
    }
    let out = sb.cli(&["app", "delete", "gone", "-y"]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        sb.live("apps", "deployments", "gone", "web").is_none(),
        "the app's Deployment is deleted"
    );
    assert!(sb.live("", "configmaps", "gone", "web-config").is_none());
    assert!(
        sb.live("apps", "deployments", "stays", "web").is_some(),
        "another app's resources stay"
    );
    let get = sb.cli(&["app", "get", "gone"]).await;
    assert_ne!(get.code, 0);
    assert!(get.stdout.contains("not found"), "{}", get.stdout);
}
