//! The typical wave layout of the reference overview, synced through every service:
//! -2 CRDs and Namespaces, -1 RBAC, ServiceAccounts and Secrets, 0 Deployments and
//! Services (and a custom resource of the CRD), 1 a migration Job, 2 a smoke-test Job.
//! The emulator's write log shows every wave applied after the one before; the app ends
//! Synced and Healthy with the migration Job complete. (That a wave waits for the health
//! of the one before is shown where time can be controlled: the executor's tests, with a
//! wave that never becomes healthy.)

use std::time::Duration;

use gitfleet_e2e::{AUTOMATED, Sandbox, Timings, application};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
  annotations: {argocd.argoproj.io/sync-wave: "-2"}
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
const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations: {argocd.argoproj.io/sync-wave: \"-2\"}\n";
const RBAC: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: api
  annotations: {argocd.argoproj.io/sync-wave: "-1"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: api
  annotations: {argocd.argoproj.io/sync-wave: "-1"}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: api
  annotations: {argocd.argoproj.io/sync-wave: "-1"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: api}
subjects:
- {kind: ServiceAccount, name: api}
---
apiVersion: v1
kind: Secret
metadata:
  name: api
  annotations: {argocd.argoproj.io/sync-wave: "-1"}
stringData: {token: not-a-real-one}
"#;
const APP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 1
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      serviceAccountName: api
      containers:
      - name: api
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector: {app: api}
  ports: [{port: 80}]
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: first
spec: {size: 3}
"#;
fn job(name: &str, wave: i32) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations: {{argocd.argoproj.io/sync-wave: \"{wave}\"}}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: {name}\n        image: busybox:1.36\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reference_wave_layout_applies_wave_by_wave() {
    let migrate = job("migrate", 1);
    let smoke = job("smoke", 2);
    let sb = Sandbox::start(
        &[
            ("app/crd.yaml", CRD),
            ("app/ns.yaml", NAMESPACE),
            ("app/rbac.yaml", RBAC),
            ("app/app.yaml", APP),
            ("app/migrate.yaml", &migrate),
            ("app/smoke.yaml", &smoke),
        ],
        Timings {
            poll: Duration::from_secs(600),
            refresh: Duration::from_secs(600),
        },
    )
    .await;
    // The app's destination namespace is the one wave -2 creates.
    let yaml = application("shop", &sb.repo_url(), "app", Some(AUTOMATED));
    sb.create_app("shop", &yaml).await;
    let status = sb
        .until_status("shop", 90, "Synced and Healthy", |s| {
            Sandbox::sync_status(s) == "Synced" && Sandbox::health(s) == "Healthy"
        })
        .await;
    assert_eq!(status["sync"]["status"], "Synced");

    // In order of arrival (`seq`).
    let applies: Vec<(String, String, u64)> = sb
        .sim
        .cluster(0)
        .write_log()
        .into_iter()
        .filter(|w| w.verb == "apply" && !w.dry_run && w.code < 300)
        .map(|w| (w.resource, w.name.unwrap_or_default(), w.seq))
        .collect();
    let first_apply = |resource: &str, name: &str| {
        applies
            .iter()
            .find(|(r, n, _)| r == resource && n == name)
            .unwrap_or_else(|| panic!("{resource}/{name} never applied: {applies:?}"))
            .2
    };
    let waves: [&[(&str, &str)]; 5] = [
        &[
            (
                "customresourcedefinitions.apiextensions.k8s.io",
                "widgets.example.com",
            ),
            ("namespaces", "shop"),
        ],
        &[
            ("serviceaccounts", "api"),
            ("roles.rbac.authorization.k8s.io", "api"),
            ("rolebindings.rbac.authorization.k8s.io", "api"),
            ("secrets", "api"),
        ],
        &[
            ("deployments.apps", "api"),
            ("services", "api"),
            ("widgets.example.com", "first"),
        ],
        &[("jobs.batch", "migrate")],
        &[("jobs.batch", "smoke")],
    ];
    for pair in waves.windows(2) {
        let last_of_earlier = pair[0]
            .iter()
            .map(|(r, n)| first_apply(r, n))
            .max()
            .unwrap();
        let first_of_later = pair[1]
            .iter()
            .map(|(r, n)| first_apply(r, n))
            .min()
            .unwrap();
        assert!(
            last_of_earlier <= first_of_later,
            "{:?} applied before {:?} finished: {applies:?}",
            pair[1],
            pair[0]
        );
    }
    let deploy = sb.live("apps", "deployments", "shop", "api").unwrap();
    assert_eq!(deploy["status"]["availableReplicas"], 1);
    let migrate_job = sb.live("batch", "jobs", "shop", "migrate").unwrap();
    assert!(
        migrate_job["status"]["succeeded"] == 1,
        "the migration Job completed: {migrate_job}"
    );
}
