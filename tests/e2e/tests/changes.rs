//! Changes in Git and drift in the cluster: webhooks and polling find new commits,
//! automated sync follows them, selfHeal reverts drift, prune removes what Git dropped.

use std::time::{Duration, Instant};

use gitfleet_e2e::{
    AUTOMATED, AUTOMATED_NO_PRUNE, AUTOMATED_SELF_HEAL, CONFIGMAP, DEPLOYMENT, SERVICE, Sandbox,
    Timings, application,
};

fn files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("app/deploy.yaml", DEPLOYMENT),
        ("app/svc.yaml", SERVICE),
        ("app/cm.yaml", CONFIGMAP),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_makes_a_new_commit_out_of_sync_at_once_and_sync_applies_it() {
    // Polling is effectively off: only the webhook can reveal the commit.
    let sb = Sandbox::start(
        &files(),
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app("web", &application("web", &sb.repo_url(), "app", None))
        .await;
    sb.until_status("web", 60, "OutOfSync", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
    })
    .await;
    assert_eq!(sb.cli(&["app", "sync", "web"]).await.code, 0);
    sb.until_status("web", 60, "Synced", |s| Sandbox::sync_status(s) == "Synced")
        .await;

    let commit = sb.commit(
        &[(
            "app/deploy.yaml",
            Some(&DEPLOYMENT.replace("nginx:1.25", "nginx:1.26")),
        )],
        "bump image",
    );
    let t = Instant::now();
    assert!(sb.github_push().await.is_success());
    let s = sb
        .until_status("web", 30, "OutOfSync after the webhook", |s| {
            Sandbox::sync_status(s) == "OutOfSync"
        })
        .await;
    eprintln!("webhook to OutOfSync: {:?}", t.elapsed());
    assert_eq!(s["sync"]["revision"], commit);
    assert_eq!(
        sb.image_of("web", "web").as_deref(),
        Some("nginx:1.25"),
        "manual policy: not applied yet"
    );
    let diff = sb.cli(&["app", "diff", "web"]).await;
    assert_eq!(
        diff.code, 1,
        "app diff exits 1 on a difference: {}",
        diff.stdout
    );
    assert!(diff.stdout.contains("nginx:1.26"), "{}", diff.stdout);

    assert_eq!(sb.cli(&["app", "sync", "web"]).await.code, 0);
    assert_eq!(sb.image_of("web", "web").as_deref(), Some("nginx:1.26"));
    sb.until_status("web", 60, "Synced at the new commit", |s| {
        Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == commit
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_finds_a_new_commit_and_automated_sync_applies_it() {
    let sb = Sandbox::start(
        &files(),
        Timings {
            poll: Duration::from_secs(2),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app(
        "auto",
        &application("auto", &sb.repo_url(), "app", Some(AUTOMATED)),
    )
    .await;
    sb.until(60, "automated first sync", |sb| {
        sb.image_of("auto", "web").is_some()
    })
    .await;
    sb.until_status("auto", 60, "Synced Healthy", |s| {
        Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
    })
    .await;

    let commit = sb.commit(
        &[(
            "app/deploy.yaml",
            Some(&DEPLOYMENT.replace("nginx:1.25", "nginx:1.27")),
        )],
        "bump image",
    );
    sb.until(60, "the new image applied by automated sync", |sb| {
        sb.image_of("auto", "web").as_deref() == Some("nginx:1.27")
    })
    .await;
    sb.until_status("auto", 60, "Synced at the new commit", |s| {
        Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == commit
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn self_heal_reverts_kubectl_drift_and_without_it_drift_is_reported() {
    let sb = Sandbox::start(
        &files(),
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app(
        "healed",
        &application("healed", &sb.repo_url(), "app", Some(AUTOMATED_SELF_HEAL)),
    )
    .await;
    sb.create_app(
        "drifty",
        &application("drifty", &sb.repo_url(), "app", Some(AUTOMATED)),
    )
    .await;
    for app in ["healed", "drifty"] {
        sb.until_status(app, 60, "Synced", |s| Sandbox::sync_status(s) == "Synced")
            .await;
    }
    for app in ["healed", "drifty"] {
        let (code, out) = sb.kubectl(&[
            "-n",
            app,
            "set",
            "image",
            "deployment/web",
            "web=nginx:drift",
        ]);
        assert_eq!(code, 0, "kubectl set image: {out}");
    }
    sb.until(60, "selfHeal to revert the image", |sb| {
        sb.image_of("healed", "web").as_deref() == Some("nginx:1.25")
    })
    .await;
    sb.until_status("healed", 60, "Synced again", |s| {
        Sandbox::sync_status(s) == "Synced"
    })
    .await;

    sb.until_status("drifty", 60, "OutOfSync from drift", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
    })
    .await;
    assert_eq!(
        sb.image_of("drifty", "web").as_deref(),
        Some("nginx:drift"),
        "no selfHeal: drift stays"
    );
    let diff = sb.cli(&["app", "diff", "drifty"]).await;
    assert_eq!(diff.code, 1, "{}", diff.stdout);
    assert!(
        diff.stdout.contains("nginx:drift") && diff.stdout.contains("nginx:1.25"),
        "the changed field: {}",
        diff.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_deletes_what_git_dropped_only_when_allowed() {
    let sb = Sandbox::start(
        &files(),
        Timings {
            poll: Duration::from_secs(2),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app(
        "pruned",
        &application("pruned", &sb.repo_url(), "app", Some(AUTOMATED)),
    )
    .await;
    sb.create_app(
        "kept",
        &application("kept", &sb.repo_url(), "app", Some(AUTOMATED_NO_PRUNE)),
    )
    .await;
    for app in ["pruned", "kept"] {
        sb.until(60, "first sync", |sb| {
            sb.live("", "configmaps", app, "web-config").is_some()
        })
        .await;
    }
    let commit = sb.commit(&[("app/cm.yaml", None)], "drop the configmap");
    sb.until(60, "prune to delete the configmap", |sb| {
        sb.live("", "configmaps", "pruned", "web-config").is_none()
    })
    .await;
    sb.until_status("pruned", 60, "Synced without it", |s| {
        Sandbox::sync_status(s) == "Synced" && s["sync"]["revision"] == commit
    })
    .await;

    let s = sb
        .until_status(
            "kept",
            60,
            "the configmap listed as requiring pruning",
            |s| {
                s["sync"]["revision"] == commit
                    && s["resources"].as_array().is_some_and(|r| {
                        r.iter()
                            .any(|x| x["name"] == "web-config" && x["requiresPruning"] == true)
                    })
            },
        )
        .await;
    assert_eq!(Sandbox::sync_status(&s), "OutOfSync");
    assert!(
        sb.live("", "configmaps", "kept", "web-config").is_some(),
        "prune: false keeps it"
    );
}

/// `app diff --revision REV` compares another revision's render, `--local DIR` a local
/// directory's manifests (plain, or a kustomization built by the local Kustomize), each
/// against the live objects, exiting 1 on a difference as Argo CD's CLI does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_diff_compares_a_revision_or_a_local_directory() {
    let sb = Sandbox::start(
        &files(),
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app("web", &application("web", &sb.repo_url(), "app", None))
        .await;
    let first = sb
        .until_status("web", 60, "OutOfSync", |s| {
            Sandbox::sync_status(s) == "OutOfSync"
        })
        .await["sync"]["revision"]
        .as_str()
        .unwrap()
        .to_owned();
    sb.commit(
        &[(
            "app/deploy.yaml",
            Some(&DEPLOYMENT.replace("nginx:1.25", "nginx:1.26")),
        )],
        "bump image",
    );
    assert!(sb.github_push().await.is_success());
    sb.until_status("web", 30, "at the new commit", |s| {
        s["sync"]["revision"] != first.as_str()
    })
    .await;
    assert_eq!(sb.cli(&["app", "sync", "web"]).await.code, 0);
    assert_eq!(sb.image_of("web", "web").as_deref(), Some("nginx:1.26"));
    let diff = sb.cli(&["app", "diff", "web"]).await;
    assert_eq!((diff.code, diff.stdout.as_str()), (0, ""));

    // The first commit's render against what is live now.
    let diff = sb.cli(&["app", "diff", "web", "--revision", &first]).await;
    assert_eq!(diff.code, 1, "{}", diff.stdout);
    assert!(
        diff.stdout.contains("===== apps/Deployment web/web ======")
            && diff.stdout.contains("-        image: nginx:1.26")
            && diff.stdout.contains("+        image: nginx:1.25"),
        "{}",
        diff.stdout
    );

    // A local copy: as in Git, then with an edit and a file gone.
    let local = sb.work.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let deploy = DEPLOYMENT.replace("nginx:1.25", "nginx:1.26");
    std::fs::write(local.join("deploy.yaml"), &deploy).unwrap();
    std::fs::write(local.join("svc.yaml"), SERVICE).unwrap();
    std::fs::write(local.join("cm.yaml"), CONFIGMAP).unwrap();
    std::fs::write(local.join("README.md"), "not a manifest").unwrap();
    let dir = local.to_str().unwrap();
    let diff = sb.cli(&["app", "diff", "web", "--local", dir]).await;
    assert_eq!((diff.code, diff.stdout.as_str()), (0, ""));
    std::fs::write(
        local.join("deploy.yaml"),
        deploy.replace("nginx:1.26", "nginx:1.28"),
    )
    .unwrap();
    std::fs::remove_file(local.join("cm.yaml")).unwrap();
    let diff = sb.cli(&["app", "diff", "web", "--local", dir]).await;
    assert_eq!(diff.code, 1, "{}", diff.stdout);
    assert!(
        diff.stdout.contains("+        image: nginx:1.28")
            && diff
                .stdout
                .contains("===== /ConfigMap web/web-config ======")
            && diff.stdout.contains("-  greeting: hello"),
        "{}",
        diff.stdout
    );

    // A kustomization is built by the local Kustomize.
    std::fs::write(local.join("cm.yaml"), CONFIGMAP).unwrap();
    std::fs::write(local.join("deploy.yaml"), &deploy).unwrap();
    std::fs::write(
        local.join("kustomization.yaml"),
        "resources: [deploy.yaml, svc.yaml, cm.yaml]\n",
    )
    .unwrap();
    let diff = sb.cli(&["app", "diff", "web", "--local", dir]).await;
    assert_eq!((diff.code, diff.stdout.as_str()), (0, ""));

    // Bad input is named, nothing is compared.
    std::fs::remove_file(local.join("kustomization.yaml")).unwrap();
    std::fs::write(local.join("broken.yaml"), "kind: [unclosed\n").unwrap();
    let diff = sb.cli(&["app", "diff", "web", "--local", dir]).await;
    assert!(
        diff.code > 1 && diff.stdout.contains("broken.yaml"),
        "{}: {}",
        diff.code,
        diff.stdout
    );
    let missing = sb.work.path().join("nowhere");
    let diff = sb
        .cli(&["app", "diff", "web", "--local", missing.to_str().unwrap()])
        .await;
    assert!(
        diff.code > 1 && diff.stdout.contains("not a directory"),
        "{}",
        diff.stdout
    );
}

/// Server-side diff (Argo CD's `compare-options: ServerSideDiff=true`): a mutating webhook
/// sets `imagePullPolicy: Always` over the manifest's `IfNotPresent`. The client-side
/// comparison reports that forever as OutOfSync; the server-side one compares with what
/// the API server answers a dry run and reports Synced. A webhook installed later adds a
/// label live objects lack: only `IncludeMutationWebhook=true` counts it, after a refresh
/// (dry runs are kept until the manifest, the live object or a refresh says otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_side_diff_sees_what_the_api_server_changes() {
    let deploy = DEPLOYMENT.replace(
        "        image: nginx:1.25\n",
        "        image: nginx:1.25\n        imagePullPolicy: IfNotPresent\n",
    );
    assert_ne!(deploy, DEPLOYMENT);
    let sb = Sandbox::start(
        &[("app/deploy.yaml", deploy.as_str())],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    let policy = cluster_sim::MutatingWebhook {
        kind: "Deployment".into(),
        pointer: "/spec/template/spec/containers/0/imagePullPolicy".into(),
        value: serde_json::json!("Always"),
    };
    sb.sim.cluster(0).set_faults(cluster_sim::Faults {
        mutating_webhooks: vec![policy.clone()],
        ..Default::default()
    });
    let with_options = |name: &str, options: Option<&str>| {
        let yaml = application(name, &sb.repo_url(), "app", Some(AUTOMATED));
        match options {
            None => yaml,
            Some(o) => yaml.replacen(
                &format!("  name: {name}\n"),
                &format!(
                    "  name: {name}\n  annotations:\n    argocd.argoproj.io/compare-options: {o}\n"
                ),
                1,
            ),
        }
    };
    sb.create_app("client", &with_options("client", None)).await;
    sb.create_app(
        "server",
        &with_options("server", Some("ServerSideDiff=true")),
    )
    .await;
    sb.create_app(
        "mutations",
        &with_options(
            "mutations",
            Some("ServerSideDiff=true,IncludeMutationWebhook=true"),
        ),
    )
    .await;
    for app in ["server", "mutations"] {
        sb.until_status(app, 90, "Synced", |s| Sandbox::sync_status(s) == "Synced")
            .await;
    }
    // The client-side comparison: synced once, then OutOfSync on the webhook's value.
    let status = sb
        .until_status("client", 90, "synced once and OutOfSync", |s| {
            s["operationState"]["phase"] == "Succeeded" && Sandbox::sync_status(s) == "OutOfSync"
        })
        .await;
    assert!(
        status["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "Deployment" && r["status"] == "OutOfSync"),
        "{status:#}"
    );
    let (_, policy_live) = sb.kubectl(&[
        "get",
        "deployment",
        "web",
        "-n",
        "server",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].imagePullPolicy}",
    ]);
    assert_eq!(policy_live, "Always");
    let diff = sb.cli(&["app", "diff", "server"]).await;
    assert_eq!((diff.code, diff.stdout.as_str()), (0, ""));

    // A second webhook, installed after the sync: live objects lack its label.
    sb.sim.cluster(0).set_faults(cluster_sim::Faults {
        mutating_webhooks: vec![
            policy,
            cluster_sim::MutatingWebhook {
                kind: "Deployment".into(),
                pointer: "/metadata/labels/injected-by".into(),
                value: serde_json::json!("policy"),
            },
        ],
        ..Default::default()
    });
    for app in ["server", "mutations"] {
        let out = sb.cli(&["app", "get", app, "--refresh"]).await;
        assert_eq!(out.code, 0, "{}", out.stdout);
    }
    sb.until_status("mutations", 60, "OutOfSync for the webhook's label", |s| {
        Sandbox::sync_status(s) == "OutOfSync"
    })
    .await;
    let diff = sb.cli(&["app", "diff", "mutations"]).await;
    assert_eq!(diff.code, 1, "{}", diff.stdout);
    assert!(
        diff.stdout.contains("injected-by: policy"),
        "{}",
        diff.stdout
    );
    // Without IncludeMutationWebhook the label is the webhook's, not a difference.
    let status = sb.status("server").await.unwrap();
    assert_eq!(Sandbox::sync_status(&status), "Synced", "{status:#}");
    let diff = sb.cli(&["app", "diff", "server"]).await;
    assert_eq!((diff.code, diff.stdout.as_str()), (0, ""));
}

/// The resource tree (`argocd app resources --output tree`): the app's resources, and
/// under the Deployment the ReplicaSet the cluster made and its Pods, with their health.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_resources_show_what_each_resource_owns_down_to_pods() {
    let sb = Sandbox::start(
        &files(),
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app(
        "web",
        &application("web", &sb.repo_url(), "app", Some(AUTOMATED)),
    )
    .await;
    sb.until_status("web", 90, "Synced and Healthy", |s| {
        Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
    })
    .await;
    let out = sb.cli(&["app", "resources", "web"]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.contains(&vec!["apps", "Deployment", "web", "web", "No"]),
        "{}",
        out.stdout
    );

    let out = sb
        .cli(&["app", "resources", "web", "--output", "tree"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("{what} in\n{}", out.stdout))
    };
    let (deployment, replica_set) = (at("Deployment"), at("└─ReplicaSet"));
    assert!(deployment < replica_set, "{}", out.stdout);
    let pods: Vec<&&str> = lines.iter().filter(|l| l.contains("  └─Pod")).collect();
    assert_eq!(pods.len(), 2, "{}", out.stdout);
    assert!(
        pods.iter().all(|l| l.trim_end().ends_with("Healthy")),
        "{}",
        out.stdout
    );

    let out = sb
        .cli(&["app", "resources", "web", "--output", "json"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let tree: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let pod = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "Pod")
        .expect("a pod node");
    assert_eq!(pod["parentRefs"][0]["kind"], "ReplicaSet", "{pod:#}");
    assert_eq!(pod["health"]["status"], "Healthy", "{pod:#}");
}
