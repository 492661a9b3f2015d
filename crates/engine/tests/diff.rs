//! Desired-versus-live comparison: the cases Argo CD users meet.

use gitfleet_engine::diff::{DiffOptions, IgnoreRule, compare, render_unified};
use gitfleet_model::SyncStatusCode::{OutOfSync, Synced};
use serde_json::{Value, json};

fn yaml(s: &str) -> Value {
    serde_yaml_ng::from_str(s).unwrap()
}

fn deployment() -> Value {
    yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
        resources: {limits: {cpu: "0.5", memory: 1Gi}}
"#,
    )
}

/// What the API server returns for [`deployment`] after an apply by argocd-controller.
fn live_deployment() -> Value {
    yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  uid: 1234
  resourceVersion: "77"
  generation: 3
  creationTimestamp: "2024-01-01T00:00:00Z"
  labels: {app: web}
  annotations:
    argocd.argoproj.io/tracking-id: "web:apps/Deployment:default/web"
    deployment.kubernetes.io/revision: "3"
  managedFields:
  - manager: argocd-controller
    operation: Apply
    apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels: {f:app: {}}
        f:annotations: {f:argocd.argoproj.io/tracking-id: {}}
      f:spec:
        f:replicas: {}
        f:selector: {}
        f:template:
          f:metadata: {f:labels: {f:app: {}}}
          f:spec:
            f:containers:
              k:{"name":"web"}:
                .: {}
                f:image: {}
                f:name: {}
                f:ports:
                  k:{"containerPort":80,"protocol":"TCP"}:
                    .: {}
                    f:containerPort: {}
                f:resources: {f:limits: {f:cpu: {}, f:memory: {}}}
  - manager: kube-controller-manager
    operation: Update
    apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata: {f:annotations: {f:deployment.kubernetes.io/revision: {}}}
spec:
  replicas: 2
  revisionHistoryLimit: 10
  progressDeadlineSeconds: 600
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}}
  template:
    metadata: {labels: {app: web}}
    spec:
      restartPolicy: Always
      dnsPolicy: ClusterFirst
      containers:
      - name: sidecar
        image: envoy
      - name: web
        image: nginx:1.25
        imagePullPolicy: IfNotPresent
        terminationMessagePath: /dev/termination-log
        ports: [{containerPort: 80, protocol: TCP}]
        resources: {limits: {cpu: 500m, memory: "1073741824"}}
status: {replicas: 2, readyReplicas: 2}
"#,
    )
}

fn paths(d: &gitfleet_engine::diff::ResourceDiff) -> Vec<&str> {
    d.changes.iter().map(|c| c.path.as_str()).collect()
}

#[test]
fn defaults_status_and_metadata_noise_are_not_differences() {
    let d = compare(
        &deployment(),
        Some(&live_deployment()),
        &DiffOptions::default(),
    )
    .unwrap();
    assert_eq!(d.sync, Synced, "{:?}", d.changes);
    assert!(d.normalized_live.get("status").is_none());
    assert!(d.normalized_live["metadata"].get("uid").is_none());
    assert_eq!(render_unified("apps/Deployment default/web", &d), "");
}

#[test]
fn changed_image_is_reported_at_its_keyed_path() {
    let mut desired = deployment();
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    desired["spec"]["replicas"] = json!(3.0);
    let d = compare(&desired, Some(&live_deployment()), &DiffOptions::default()).unwrap();
    assert_eq!(d.sync, OutOfSync);
    assert_eq!(
        paths(&d),
        [
            ".spec.replicas",
            ".spec.template.spec.containers[name=web].image"
        ]
    );
    assert_eq!(d.changes[1].live, Some(json!("nginx:1.25")));
    let text = render_unified("apps/Deployment default/web", &d);
    assert!(
        text.starts_with("===== apps/Deployment default/web ======\n--- live\n+++ desired\n"),
        "{text}"
    );
    assert!(text.contains("\n-  replicas: 2\n"), "{text}");
    assert!(text.contains("\n+  replicas: 3.0\n"), "{text}");
    // What goes before what comes, as `diff -u` prints a change.
    assert!(
        text.contains("-        image: nginx:1.25\n+        image: nginx:1.26\n"),
        "{text}"
    );
    assert!(
        text.contains("\n-  replicas: 2\n+  replicas: 3.0\n"),
        "{text}"
    );
    assert!(
        !text.contains("sidecar"),
        "live-only items stay out of the text: {text}"
    );
}

#[test]
fn missing_live_is_out_of_sync_whole() {
    let d = compare(&deployment(), None, &DiffOptions::default()).unwrap();
    assert_eq!(d.sync, OutOfSync);
    assert_eq!(paths(&d), [""]);
    assert!(d.normalized_live.is_null());
    let text = render_unified("apps/Deployment default/web", &d);
    assert!(text.contains("+kind: Deployment"), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with('-') && !l.starts_with("---")),
        "{text}"
    );
}

#[test]
fn field_dropped_from_the_manifest_that_argocd_applied_is_a_difference() {
    let mut desired = deployment();
    desired["spec"]
        .as_object_mut()
        .unwrap()
        .shift_remove("replicas");
    desired["metadata"]
        .as_object_mut()
        .unwrap()
        .shift_remove("labels");
    let d = compare(&desired, Some(&live_deployment()), &DiffOptions::default()).unwrap();
    assert_eq!(
        paths(&d),
        [".metadata.labels", ".spec.replicas"],
        "{:?}",
        d.changes
    );
    assert_eq!(d.changes[1].desired, None);
    assert_eq!(d.changes[1].live, Some(json!(2)));
    let text = render_unified("x", &d);
    assert!(text.contains("-  replicas: 2"), "{text}");
}

#[test]
fn removed_container_port_owned_by_argocd_is_a_difference() {
    let mut desired = deployment();
    desired["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .shift_remove("ports");
    let d = compare(&desired, Some(&live_deployment()), &DiffOptions::default()).unwrap();
    assert_eq!(
        paths(&d),
        [".spec.template.spec.containers[name=web].ports"]
    );

    // A label another manager also set survives the apply; only ours goes.
    let mut desired = deployment();
    desired["metadata"]
        .as_object_mut()
        .unwrap()
        .shift_remove("labels");
    let mut live = live_deployment();
    live["metadata"]["labels"]["team"] = json!("a");
    live["metadata"]["managedFields"][1]["fieldsV1"]["f:metadata"]["f:labels"] =
        json!({"f:team": {}});
    let d = compare(&desired, Some(&live), &DiffOptions::default()).unwrap();
    assert_eq!(paths(&d), [".metadata.labels.app"]);
}

#[test]
fn missing_keyed_item_and_changed_atomic_list() {
    let mut desired = deployment();
    desired["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "metrics", "image": "exporter"}));
    desired["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["--a"]);
    let mut live = live_deployment();
    live["spec"]["template"]["spec"]["containers"][1]["args"] = json!(["--a", "--b"]);
    let d = compare(&desired, Some(&live), &DiffOptions::default()).unwrap();
    assert_eq!(
        paths(&d),
        [
            ".spec.template.spec.containers[name=web].args",
            ".spec.template.spec.containers[name=metrics]"
        ]
    );
    assert_eq!(d.changes[1].live, None);
}

#[test]
fn secret_string_data_compares_against_base64_data_and_is_masked() {
    let desired =
        yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hello}\n");
    let live = yaml(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\ndata: {password: aGVsbG8=}\n",
    );
    assert_eq!(
        compare(&desired, Some(&live), &DiffOptions::default())
            .unwrap()
            .sync,
        Synced
    );
    let changed =
        yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: world}\n");
    let d = compare(&changed, Some(&live), &DiffOptions::default()).unwrap();
    assert_eq!(paths(&d), [".data.password"]);
    let text = serde_json::to_string(&d).unwrap();
    assert!(
        !text.contains("aGVsbG8") && !text.contains("d29ybGQ"),
        "secret leaked: {text}"
    );
    assert_ne!(d.changes[0].desired, d.changes[0].live);
}

#[test]
fn ignore_differences_json_pointers_and_managers() {
    let mut desired = deployment();
    desired["spec"]["replicas"] = json!(5);
    let mut live = live_deployment();
    live["metadata"]["managedFields"].as_array_mut().unwrap().push(json!({
        "manager": "hpa", "operation": "Update",
        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}}
    }));
    live["spec"]["template"]["spec"]["containers"][1]["image"] = json!("nginx:patched");
    let d = compare(&desired, Some(&live), &DiffOptions::default()).unwrap();
    assert_eq!(d.changes.len(), 2);

    let rule = |json_pointers: Vec<&str>, managers: Vec<&str>| IgnoreRule {
        group: "apps".into(),
        kind: "Deployment".into(),
        json_pointers: json_pointers.into_iter().map(Into::into).collect(),
        managed_fields_managers: managers.into_iter().map(Into::into).collect(),
        ..IgnoreRule::default()
    };
    let opts = DiffOptions {
        ignore_differences: vec![rule(vec!["/spec/replicas"], vec!["hpa"])],
    };
    let d = compare(&desired, Some(&live), &opts).unwrap();
    assert_eq!(d.sync, Synced, "{:?}", d.changes);

    let other_kind = DiffOptions {
        ignore_differences: vec![IgnoreRule {
            kind: "StatefulSet".into(),
            ..rule(vec!["/spec/replicas"], vec![])
        }],
    };
    assert_eq!(
        compare(&desired, Some(&live), &other_kind)
            .unwrap()
            .changes
            .len(),
        2
    );

    let jq = DiffOptions {
        ignore_differences: vec![IgnoreRule {
            jq_path_expressions: vec![".spec.replicas".into()],
            ..rule(vec![], vec![])
        }],
    };
    let err = compare(&desired, Some(&live), &jq).unwrap_err().to_string();
    assert_eq!(
        err,
        "apps/Deployment default/web: ignoreDifferences jqPathExpressions need a jq evaluator, and this process has none (\".spec.replicas\")"
    );
}

#[test]
fn custom_resource_lists_are_atomic() {
    let desired = yaml(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {items: [{name: a}, {name: b}]}\n",
    );
    let swapped = yaml(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {items: [{name: b}, {name: a}]}\n",
    );
    let d = compare(&desired, Some(&swapped), &DiffOptions::default()).unwrap();
    assert_eq!(paths(&d), [".spec.items[0].name", ".spec.items[1].name"]);
    let longer = yaml(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {items: [{name: a}, {name: b}, {name: c}]}\n",
    );
    assert_eq!(
        paths(&compare(&desired, Some(&longer), &DiffOptions::default()).unwrap()),
        [".spec.items"]
    );
}

/// `RespectIgnoreDifferences`: ignored fields take their live values (or go, where live
/// has none); everything else stays as the manifest says; status never comes from live.
#[test]
fn respecting_ignored_fields_takes_them_from_live() {
    use gitfleet_engine::diff::respect_ignored;

    let mut desired = deployment();
    desired["spec"]["replicas"] = json!(2);
    desired["metadata"]["annotations"] = json!({"owner": "git"});
    let mut live = live_deployment();
    live["spec"]["replicas"] = json!(7);
    live["status"] = json!({"replicas": 7});
    live["metadata"]["managedFields"].as_array_mut().unwrap().push(json!({
        "manager": "hpa", "operation": "Update",
        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}}
    }));
    live["spec"]["template"]["spec"]["containers"][1]["image"] = json!("nginx:patched");
    let opts = DiffOptions {
        ignore_differences: vec![IgnoreRule {
            group: "apps".into(),
            kind: "Deployment".into(),
            json_pointers: vec![
                "/spec/replicas".into(),
                "/metadata/annotations/owner".into(),
                "/status".into(),
            ],
            managed_fields_managers: vec!["hpa".into()],
            ..IgnoreRule::default()
        }],
    };
    let out = respect_ignored(&desired, &live, &opts).unwrap();
    assert_eq!(out["spec"]["replicas"], 7);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:patched"
    );
    // Not live: it goes, so the apply leaves whatever owns it alone.
    assert!(
        out["metadata"]["annotations"].get("owner").is_none(),
        "{out}"
    );
    assert!(out.get("status").is_none(), "{out}");
    // The rest is the manifest's.
    assert_eq!(out["spec"]["selector"], desired["spec"]["selector"]);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["ports"],
        desired["spec"]["template"]["spec"]["containers"][0]["ports"]
    );
    // No matching rule: the manifest as it is.
    let other = DiffOptions {
        ignore_differences: vec![IgnoreRule {
            kind: "StatefulSet".into(),
            json_pointers: vec!["/spec/replicas".into()],
            ..IgnoreRule::default()
        }],
    };
    assert_eq!(respect_ignored(&desired, &live, &other).unwrap(), desired);
}
