//! Argo CD's Lua customizations end to end.
//!
//! Custom health, as Argo CD users write it: `argocd-cm`'s
//! `resource.customizations.health.<group>_<kind>` judges a custom resource the built-in
//! checks know nothing of, and the app's health follows it through Progressing, Healthy and
//! Degraded as the resource's status changes in the cluster. A script that loops forever
//! is stopped: its app shows a condition naming the script, its resource is Unknown, and
//! the other app is judged as before.
//!
//! Resource actions as an Argo CD user runs them: `app actions list` shows what the app's
//! resources offer, `app actions run` restarts a Deployment (the emulator's Deployment gets
//! the restart annotation, and the app is not OutOfSync for it), scales it with a parameter,
//! makes a Job out of a CronJob, and refuses a disabled action. An action of `argocd-cm`
//! joins the built-in ones; one that loops forever is stopped at its time limit, named, and
//! the built-in ones still run.

use std::time::Duration;

use gitfleet_e2e::{AUTOMATED, Sandbox, Timings, application};
use serde_json::Value;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
  annotations: {argocd.argoproj.io/sync-wave: "-1"}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn widget(name: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n  size: 3\n"
    )
}

/// `argocd-cm` as an Argo CD user writes it: a Widget is Healthy once its status says Ready,
/// Degraded with its message when Failed, Progressing before; every Gadget's check loops.
const ARGOCD_CM: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels: {app.kubernetes.io/part-of: argocd}
data:
  resource.customizations.health.example.com_Widget: |
    hs = {}
    if obj.status ~= nil and obj.status.phase == "Ready" then
      hs.status = "Healthy"
      hs.message = "widget is ready"
      return hs
    end
    if obj.status ~= nil and obj.status.phase == "Failed" then
      hs.status = "Degraded"
      hs.message = obj.status.reason
      return hs
    end
    hs.status = "Progressing"
    hs.message = "waiting for the widget"
    return hs
  resource.customizations.health.example.com_Gadget: |
    while true do end
"#;

fn widget_health(s: &Value) -> Option<(String, String)> {
    s["resources"].as_array()?.iter().find_map(|r| {
        (r["kind"] == "Widget").then(|| {
            (
                r["health"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["health"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lua_health_check_drives_a_custom_resources_app_health() {
    let gadget_crd = CRD
        .replace("widgets.example.com", "gadgets.example.com")
        .replace(
            "{plural: widgets, singular: widget, kind: Widget}",
            "{plural: gadgets, singular: gadget, kind: Gadget}",
        );
    let gadget = widget("g").replace("Widget", "Gadget");
    let sb = Sandbox::start(
        &[
            ("widgets/crd.yaml", CRD),
            ("widgets/widget.yaml", &widget("w")),
            ("gadgets/crd.yaml", &gadget_crd),
            ("gadgets/gadget.yaml", &gadget),
        ],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    let cm = sb.file("argocd-cm.yaml", ARGOCD_CM);
    let out = sb.cli(&["apply", "-f", &cm]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);

    sb.create_app(
        "widgets",
        &application("widgets", &sb.repo_url(), "widgets", Some(AUTOMATED)),
    )
    .await;
    // Synced, and Progressing by the script while the widget has no status.
    let status = sb
        .until_status("widgets", 90, "Synced and Progressing", |s| {
            Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Progressing"
        })
        .await;
    assert_eq!(
        widget_health(&status),
        Some(("Progressing".into(), "waiting for the widget".into()))
    );

    // The widget's controller (here: kubectl) reports it ready.
    let patch = |phase: &str| {
        let body = format!(r#"{{"status":{{"phase":"{phase}","reason":"quota exceeded"}}}}"#);
        let (code, out) = sb.kubectl(&[
            "patch",
            "widget",
            "w",
            "-n",
            "widgets",
            "--type=merge",
            "-p",
            &body,
        ]);
        assert_eq!(code, 0, "{out}");
    };
    patch("Ready");
    let status = sb
        .until_status("widgets", 60, "Healthy", |s| {
            Sandbox::health(s) == "Healthy"
        })
        .await;
    assert_eq!(
        widget_health(&status),
        Some(("Healthy".into(), "widget is ready".into()))
    );
    patch("Failed");
    let status = sb
        .until_status("widgets", 60, "Degraded", |s| {
            Sandbox::health(s) == "Degraded"
        })
        .await;
    assert_eq!(
        widget_health(&status),
        Some(("Degraded".into(), "quota exceeded".into()))
    );
    assert_eq!(Sandbox::sync_status(&status), "Synced");

    // A check that never returns: stopped at its time limit, named in the app's condition,
    // its resource Unknown; the widgets app is judged as before.
    sb.create_app(
        "gadgets",
        &application("gadgets", &sb.repo_url(), "gadgets", Some(AUTOMATED)),
    )
    .await;
    let status = sb
        .until_status("gadgets", 90, "a comparison error naming the script", |s| {
            s["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "ComparisonError"
                        && c["message"].as_str().is_some_and(|m| {
                            m.contains("resource.customizations.health.example.com_Gadget")
                                && m.contains("time limit")
                        })
                })
            })
        })
        .await;
    let gadget_health = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "Gadget")
        .map(|r| r["health"]["status"].clone());
    assert_eq!(gadget_health, Some(Value::from("Unknown")), "{status:#}");
    patch("Ready");
    sb.until_status("widgets", 60, "Healthy again", |s| {
        Sandbox::health(s) == "Healthy"
    })
    .await;
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
"#;

const CRONJOB: &str = r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    metadata:
      labels: {team: ops}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: report
            image: busybox
"#;

/// A customization that joins the built-in actions: `spin` never returns.
const ACTIONS_ARGOCD_CM: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels: {app.kubernetes.io/part-of: argocd}
data:
  resource.customizations.actions.apps_Deployment: |
    mergeBuiltinActions: true
    discovery.lua: |
      return {spin = {}}
    definitions:
    - name: spin
      action.lua: |
        while true do end
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_restarts_and_a_cronjob_runs_now_through_resource_actions() {
    let sb = Sandbox::start(
        &[
            ("web/deployment.yaml", DEPLOYMENT),
            ("web/cronjob.yaml", CRONJOB),
        ],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    sb.create_app(
        "web",
        &application("web", &sb.repo_url(), "web", Some(AUTOMATED)),
    )
    .await;
    sb.until_status("web", 90, "Synced", |s| Sandbox::sync_status(s) == "Synced")
        .await;

    let out = sb.cli(&["app", "actions", "list", "web"]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for want in [
        ["GROUP", "KIND", "NAME", "ACTION", "DISABLED"],
        ["apps", "Deployment", "web", "restart", "false"],
        ["apps", "Deployment", "web", "resume", "true"],
        ["batch", "CronJob", "report", "create-job", "false"],
        ["batch", "CronJob", "report", "resume", "true"],
    ] {
        assert!(rows.contains(&want.to_vec()), "{want:?} in\n{}", out.stdout);
    }

    // Restart: the pod template gets the annotation `kubectl rollout restart` sets.
    let out = sb
        .cli(&[
            "app",
            "actions",
            "run",
            "web",
            "restart",
            "--kind",
            "Deployment",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.stdout.trim(), "patched apps/Deployment web/web");
    let (code, restarted) = sb.kubectl(&[
        "get",
        "deployment",
        "web",
        "-n",
        "web",
        "-o",
        "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    ]);
    assert_eq!(code, 0, "{restarted}");
    assert!(
        restarted.ends_with('Z') && restarted.len() == 20,
        "{restarted:?}"
    );
    // Not drift: the manifest does not set it, and the action's manager owns it.
    let out = sb.cli(&["app", "diff", "web"]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);

    // Scale, with its parameter.
    let out = sb
        .cli(&[
            "app",
            "actions",
            "run",
            "web",
            "scale",
            "--kind",
            "Deployment",
            "--param",
            "replicas=3",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let (_, replicas) = sb.kubectl(&[
        "get",
        "deployment",
        "web",
        "-n",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "3");

    // A disabled action is refused, by name.
    let out = sb
        .cli(&[
            "app",
            "actions",
            "run",
            "web",
            "resume",
            "--kind",
            "Deployment",
        ])
        .await;
    assert_ne!(out.code, 0);
    assert!(
        out.stdout
            .contains("action \"resume\" is disabled for apps/Deployment \"web\""),
        "{}",
        out.stdout
    );
    // A resource the app does not have.
    let out = sb
        .cli(&[
            "app",
            "actions",
            "run",
            "web",
            "restart",
            "--kind",
            "Deployment",
            "--resource-name",
            "nope",
        ])
        .await;
    assert_ne!(out.code, 0);
    assert!(
        out.stdout.contains("no matching resource found"),
        "{}",
        out.stdout
    );

    // A CronJob runs now: a Job from its template, owned by it.
    let out = sb
        .cli(&[
            "app",
            "actions",
            "run",
            "web",
            "create-job",
            "--kind",
            "CronJob",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.starts_with("created batch/Job web/report-"),
        "{}",
        out.stdout
    );
    let (code, owner) = sb.kubectl(&[
        "get",
        "jobs",
        "-n",
        "web",
        "-l",
        "team=ops",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences[0].name}",
    ]);
    assert_eq!((code, owner.as_str()), (0, "report"));

    // argocd-cm's action joins the built-in ones; looping, it is stopped and named.
    let cm = sb.file("argocd-cm.yaml", ACTIONS_ARGOCD_CM);
    let out = sb.cli(&["apply", "-f", &cm]).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out = sb
        .cli(&["app", "actions", "list", "web", "--kind", "Deployment"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    for action in ["spin", "restart", "scale"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.split_whitespace().nth(3) == Some(action)),
            "{action} in\n{}",
            out.stdout
        );
    }
    let started = std::time::Instant::now();
    let out = sb
        .cli(&[
            "app",
            "actions",
            "run",
            "web",
            "spin",
            "--kind",
            "Deployment",
        ])
        .await;
    assert_ne!(out.code, 0);
    assert!(
        out.stdout
            .contains("resource.customizations.actions.apps_Deployment[spin][action.lua]")
            && out.stdout.contains("time limit"),
        "{}",
        out.stdout
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let out = sb
        .cli(&[
            "app",
            "actions",
            "run",
            "web",
            "restart",
            "--kind",
            "Deployment",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
}
