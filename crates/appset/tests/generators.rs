//! Argo CD's documented generator examples, as fixtures: the parameter sets and apps they
//! produce here are the ones the docs show.

use std::collections::BTreeMap;

use gitfleet_appset::{
    Action, GenerateError, GitKey, GitTree, RESOURCES_FINALIZER, Sources, generate, plan,
};
use gitfleet_model::{Application, ApplicationSet, Cluster, Manifest};

fn set(yaml: &str) -> ApplicationSet {
    match gitfleet_model::from_yaml_str(yaml).expect("parses") {
        Manifest::ApplicationSet(s) => *s,
        other => panic!("not a set: {other:?}"),
    }
}

fn cluster(name: &str, server: &str, labels: &[(&str, &str)]) -> Cluster {
    Cluster {
        name: name.into(),
        server: server.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Cluster::default()
    }
}

fn tree(files: &[(&str, &str)]) -> GitTree {
    GitTree {
        commit: "c0ffee".into(),
        files: files
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect(),
    }
}

fn names(apps: &[gitfleet_appset::GeneratedApp]) -> Vec<String> {
    apps.iter().map(|a| a.app.metadata.name.clone()).collect()
}

const REPO: &str = "https://github.com/myorg/k8s-config";

fn sources_with(repo_files: &[(&str, &str)]) -> Sources {
    let mut git = BTreeMap::new();
    git.insert(
        GitKey {
            repo: REPO.into(),
            revision: "main".into(),
        },
        std::sync::Arc::new(tree(repo_files)),
    );
    Sources {
        clusters: vec![
            cluster("in-cluster", "https://kubernetes.default.svc", &[]),
            cluster(
                "prod-us",
                "https://10.0.0.1",
                &[("environment", "production")],
            ),
            cluster(
                "prod-eu",
                "https://10.0.0.2",
                &[("environment", "production"), ("use-kafka", "false")],
            ),
            cluster("staging", "https://10.0.0.3", &[("environment", "staging")]),
        ],
        git,
        ..Sources::default()
    }
}

#[test]
fn the_reference_list_generator_makes_api_and_worker() {
    let s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: microservices
  namespace: argocd
spec:
  generators:
  - list:
      elements:
      - service: api
        namespace: production
      - service: worker
        namespace: production
  template:
    metadata:
      name: "{{service}}"
    spec:
      project: platform
      source:
        repoURL: https://github.com/myorg/k8s-config
        path: "apps/{{service}}/overlays/production"
        targetRevision: main
      destination:
        server: https://kubernetes.default.svc
        namespace: "{{namespace}}"
      syncPolicy:
        automated:
          prune: true
          selfHeal: true
"#);
    let apps = generate(&s, &Sources::default()).unwrap();
    assert_eq!(names(&apps), ["api", "worker"]);
    let api = &apps[0].app;
    let source = api.spec.source.as_ref().unwrap();
    assert_eq!(source.path, "apps/api/overlays/production");
    assert_eq!(api.spec.destination.namespace, "production");
    assert_eq!(api.spec.project, "platform");
    assert_eq!(api.metadata.namespace, "argocd");
    assert_eq!(api.metadata.finalizers, [RESOURCES_FINALIZER]);
    assert!(api.spec.sync_policy.as_ref().unwrap().automated.is_some());
}

const SERVICES_TREE: &[(&str, &str)] = &[
    ("apps/services/api/deployment.yaml", "kind: Deployment"),
    (
        "apps/services/worker/base/deployment.yaml",
        "kind: Deployment",
    ),
    ("apps/services/legacy/deployment.yaml", "kind: Deployment"),
    ("apps/services/.hidden/x.yaml", "kind: ConfigMap"),
    ("apps/platform/ingress/ingress.yaml", "kind: Ingress"),
    ("README.md", "# config"),
];

#[test]
fn git_directories_one_app_per_directory_with_exclude() {
    let s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: services, namespace: argocd}
spec:
  generators:
  - git:
      repoURL: https://github.com/myorg/k8s-config
      revision: main
      directories:
      - path: "apps/services/*"
      - path: apps/services/legacy
        exclude: true
  template:
    metadata:
      name: "{{path.basename}}"
      labels: {segment: "{{path[1]}}"}
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: "{{path}}", targetRevision: main}
      destination: {server: https://kubernetes.default.svc, namespace: "{{path.basenameNormalized}}"}
"#);
    let apps = generate(&s, &sources_with(SERVICES_TREE)).unwrap();
    assert_eq!(names(&apps), ["api", "worker"]);
    assert_eq!(
        apps[1].app.spec.source.as_ref().unwrap().path,
        "apps/services/worker"
    );
    assert_eq!(apps[1].app.metadata.labels["segment"], "services");

    // A path that does not exist: an empty set, not an error.
    let mut empty = s.clone();
    empty.spec.generators[0].0["git"]["directories"] =
        serde_json::json!([{"path": "does/not/exist/*"}]);
    assert!(
        generate(&empty, &sources_with(SERVICES_TREE))
            .unwrap()
            .is_empty()
    );

    // The tree not fetched yet: the controller is told which to fetch.
    assert_eq!(
        generate(&s, &Sources::default()).unwrap_err(),
        GenerateError::NeedGit(GitKey {
            repo: REPO.into(),
            revision: "main".into()
        })
    );
}

#[test]
fn git_files_flatten_their_contents_and_path() {
    let s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook, namespace: argocd}
spec:
  generators:
  - git:
      repoURL: https://github.com/myorg/k8s-config
      revision: main
      files:
      - path: "cluster-config/**/config.json"
  template:
    metadata:
      name: "{{cluster.name}}-guestbook"
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: "guestbook/{{cluster.name}}", targetRevision: main}
      destination: {server: "{{cluster.address}}", namespace: guestbook}
"#);
    let files = [
        (
            "cluster-config/engineering/dev/config.json",
            r#"{"aws_account": "123456", "asset_id": "11223344", "cluster": {"owner": "cluster-admin@company.com", "name": "engineering-dev", "address": "https://1.2.3.4"}}"#,
        ),
        (
            "cluster-config/engineering/prod/config.json",
            r#"{"aws_account": "123456", "asset_id": "11223344", "cluster": {"owner": "cluster-admin@company.com", "name": "engineering-prod", "address": "https://1.2.3.5"}}"#,
        ),
    ];
    let apps = generate(&s, &sources_with(&files)).unwrap();
    assert_eq!(
        names(&apps),
        ["engineering-dev-guestbook", "engineering-prod-guestbook"]
    );
    let p = &apps[0].params;
    assert_eq!(p["cluster.owner"], "cluster-admin@company.com");
    assert_eq!(p["aws_account"], "123456");
    assert_eq!(p["path"], "cluster-config/engineering/dev");
    assert_eq!(p["path.basename"], "dev");
    assert_eq!(p["path.filename"], "config.json");
    assert_eq!(p["path[0]"], "cluster-config");
    assert_eq!(apps[1].app.spec.destination.server, "https://1.2.3.5");

    // A file that does not parse names the file.
    let bad = [("cluster-config/x/config.json", "{not: [json")];
    let err = generate(&s, &sources_with(&bad)).unwrap_err().to_string();
    assert!(err.contains("cluster-config/x/config.json"), "{err}");
    assert!(err.starts_with("spec.generators[0].git"), "{err}");
}

#[test]
fn clusters_by_label_with_values() {
    let s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook, namespace: argocd}
spec:
  generators:
  - clusters:
      selector:
        matchLabels:
          environment: production
      values:
        revision: "stable-{{name}}"
  template:
    metadata:
      name: "{{name}}-guestbook"
      labels: {env: "{{metadata.labels.environment}}"}
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: guestbook, targetRevision: "{{values.revision}}"}
      destination: {server: "{{server}}", namespace: guestbook}
"#);
    let apps = generate(&s, &sources_with(&[])).unwrap();
    assert_eq!(names(&apps), ["prod-eu-guestbook", "prod-us-guestbook"]);
    assert_eq!(apps[1].app.spec.destination.server, "https://10.0.0.1");
    assert_eq!(
        apps[1].app.spec.source.as_ref().unwrap().target_revision,
        "stable-prod-us"
    );
    assert_eq!(apps[1].app.metadata.labels["env"], "production");

    // Without a selector every cluster, and Argo CD's in-cluster when none is registered.
    let mut all = s.clone();
    all.spec.generators[0].0["clusters"]
        .as_object_mut()
        .unwrap()
        .remove("selector");
    let only_prod = Sources {
        clusters: vec![cluster(
            "prod-us",
            "https://10.0.0.1",
            &[("environment", "production")],
        )],
        ..Sources::default()
    };
    assert_eq!(
        names(&generate(&all, &only_prod).unwrap()),
        ["prod-us-guestbook", "in-cluster-guestbook"]
    );
}

/// Argo CD's matrix example: Git directories × clusters, every pair.
#[test]
fn matrix_of_git_directories_and_clusters() {
    let s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: cluster-git, namespace: argocd}
spec:
  generators:
  - matrix:
      generators:
      - git:
          repoURL: https://github.com/myorg/k8s-config
          revision: main
          directories:
          - path: "apps/services/*"
      - clusters:
          selector:
            matchLabels:
              environment: production
  template:
    metadata:
      name: "{{path.basename}}-{{name}}"
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: "{{path}}", targetRevision: main}
      destination: {server: "{{server}}", namespace: "{{path.basename}}"}
"#);
    let apps = generate(&s, &sources_with(SERVICES_TREE)).unwrap();
    assert_eq!(
        names(&apps),
        [
            "api-prod-eu",
            "api-prod-us",
            "legacy-prod-eu",
            "legacy-prod-us",
            "worker-prod-eu",
            "worker-prod-us"
        ]
    );
}

/// A matrix's second generator reads the first's parameters (the docs' "using a
/// parameter from one child generator in another").
#[test]
fn matrix_second_generator_is_interpolated_with_the_first() {
    let s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: nested, namespace: argocd}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - matrix:
      generators:
      - list:
          elements:
          - team: payments
          - team: search
      - git:
          repoURL: https://github.com/myorg/k8s-config
          revision: main
          files:
          - path: "teams/{{ .team }}/*.yaml"
  template:
    metadata:
      name: '{{ .team }}-{{ .app }}'
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: '{{ .path.path }}', targetRevision: main}
      destination: {server: https://kubernetes.default.svc, namespace: '{{ .team }}'}
"#);
    let files = [
        ("teams/payments/billing.yaml", "app: billing"),
        ("teams/payments/ledger.yaml", "app: ledger"),
        ("teams/search/index.yaml", "app: indexer"),
    ];
    let apps = generate(&s, &sources_with(&files)).unwrap();
    assert_eq!(
        names(&apps),
        ["payments-billing", "payments-ledger", "search-indexer"]
    );
    assert_eq!(
        apps[2].app.spec.source.as_ref().unwrap().path,
        "teams/search"
    );
}

/// Argo CD's merge example: every cluster with defaults, a label turning Kafka off, one
/// server turning Redis on.
#[test]
fn merge_overrides_by_merge_key() {
    let s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: cluster-git, namespace: argocd}
spec:
  generators:
  - merge:
      mergeKeys:
      - server
      generators:
      - clusters:
          values:
            kafka: 'true'
            redis: 'false'
      - clusters:
          selector:
            matchLabels:
              use-kafka: 'false'
          values:
            kafka: 'false'
      - list:
          elements:
          - server: https://10.0.0.3
            values.redis: 'true'
  template:
    metadata:
      name: "{{name}}"
      annotations: {kafka: "{{values.kafka}}", redis: "{{values.redis}}"}
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: app, targetRevision: main}
      destination: {server: "{{server}}", namespace: default}
"#);
    let apps = generate(&s, &sources_with(&[])).unwrap();
    let got: Vec<(String, String, String)> = apps
        .iter()
        .map(|a| {
            let ann = &a.app.metadata.annotations;
            (
                a.app.metadata.name.clone(),
                ann["kafka"].clone(),
                ann["redis"].clone(),
            )
        })
        .collect();
    let want = |n: &str, k: &str, r: &str| (n.to_string(), k.to_string(), r.to_string());
    assert_eq!(
        got,
        [
            want("in-cluster", "true", "false"),
            want("prod-eu", "false", "false"),
            want("prod-us", "true", "false"),
            want("staging", "true", "true"),
        ]
    );
}

#[test]
fn go_templates_with_sprig_render_as_argo_cd() {
    let s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: sprig, namespace: argocd}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - list:
      elements:
      - cluster: Engineering_Dev
        url: https://kubernetes.default.svc
        tags: [a, b]
  template:
    metadata:
      name: '{{ .cluster | normalize }}-guestbook'
      annotations:
        upper: '{{ upper .cluster }}'
        joined: '{{ join "," .tags }}'
        dflt: '{{ dig "x" "fallback" . | default "fallback" }}'
        cond: '{{ if eq .url "https://kubernetes.default.svc" }}local{{ else }}remote{{ end }}'
        trimmed: '{{ .cluster | trimPrefix "Engineering_" | lower }}'
        slug: '{{ slugify .cluster }}'
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: 'guestbook/{{ .cluster | lower }}', targetRevision: main}
      destination: {server: '{{ .url }}', namespace: guestbook}
"#);
    // `dig` is not one of ours: the error names the template.
    let err = generate(&s, &Sources::default()).unwrap_err().to_string();
    assert!(err.contains("dig"), "{err}");

    let mut s = s;
    s.spec.template.metadata.annotations.remove("dflt");
    let apps = generate(&s, &Sources::default()).unwrap();
    let app = &apps[0].app;
    assert_eq!(app.metadata.name, "engineering-dev-guestbook");
    let ann = &app.metadata.annotations;
    assert_eq!(ann["upper"], "ENGINEERING_DEV");
    assert_eq!(ann["joined"], "a,b");
    assert_eq!(ann["cond"], "local");
    assert_eq!(ann["trimmed"], "dev");
    assert_eq!(ann["slug"], "engineering-dev");
    assert_eq!(
        app.spec.source.as_ref().unwrap().path,
        "guestbook/engineering_dev"
    );

    // missingkey=error: a key no element has is an error naming the template.
    s.spec
        .template
        .metadata
        .annotations
        .insert("missing".into(), "{{ .nope }}".into());
    let err = generate(&s, &Sources::default()).unwrap_err().to_string();
    assert!(err.contains("spec.generators[0] element 0"), "{err}");
    assert!(err.contains("{{ .nope }}"), "{err}");
    // Without it, Go's "<no value>".
    s.spec.go_template_options.clear();
    let apps = generate(&s, &Sources::default()).unwrap();
    assert_eq!(apps[0].app.metadata.annotations["missing"], "<no value>");
}

#[test]
fn bad_templates_name_the_element_and_field() {
    let dup = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: dup, namespace: argocd}
spec:
  generators:
  - list:
      elements: [{env: a}, {env: b}]
  template:
    metadata: {name: same}
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: "{{env}}", targetRevision: main}
      destination: {server: https://kubernetes.default.svc, namespace: x}
"#);
    let err = generate(&dup, &Sources::default()).unwrap_err().to_string();
    assert!(err.contains("duplicate name: same"), "{err}");
    assert!(
        err.contains("element 1") && err.contains("element 0"),
        "{err}"
    );

    let mut invalid = dup.clone();
    invalid.spec.template.metadata.name = "{{env}}_Bad".into();
    let err = generate(&invalid, &Sources::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("spec.generators[0] element 0"), "{err}");
    assert!(err.contains("metadata.name"), "{err}");

    let mut number = dup.clone();
    number.spec.generators[0].0["list"]["elements"][0]["env"] = serde_json::json!(3);
    let err = generate(&number, &Sources::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.generators[0].list.elements[0].env"),
        "{err}"
    );

    let mut unsupported = dup.clone();
    unsupported.spec.generators[0].0 =
        serde_json::json!({"plugin": {"configMapRef": {"name": "x"}}});
    let err = generate(&unsupported, &Sources::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("plugin generator is not supported"), "{err}");
}

#[test]
fn selector_post_filters_parameters() {
    let s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: sel, namespace: argocd}
spec:
  generators:
  - list:
      elements:
      - {cluster: a, env: staging}
      - {cluster: b, env: production}
    selector:
      matchExpressions:
      - {key: env, operator: In, values: [production]}
  template:
    metadata: {name: "{{cluster}}"}
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: x, targetRevision: main}
      destination: {server: https://kubernetes.default.svc, namespace: x}
"#);
    assert_eq!(names(&generate(&s, &Sources::default()).unwrap()), ["b"]);
}

fn owned(set: &ApplicationSet, app: &Application) -> Application {
    let mut a = app.clone();
    a.metadata.owner_references = vec![gitfleet_appset::owner_reference(set)];
    a
}

#[test]
fn plan_follows_the_applications_sync_policy() {
    let mut s = set(r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: plan, namespace: argocd}
spec:
  preservedFields: {annotations: [keep-me]}
  generators:
  - list:
      elements: [{env: a}, {env: b}]
  template:
    metadata: {name: "{{env}}"}
    spec:
      project: default
      source: {repoURL: https://github.com/myorg/k8s-config, path: "{{env}}", targetRevision: main}
      destination: {server: https://kubernetes.default.svc, namespace: x}
"#);
    let apps = generate(&s, &Sources::default()).unwrap();
    // `a` exists with an old path and a preserved annotation, `gone` is no longer
    // generated, `other` belongs to nobody and is left alone.
    let mut a = owned(&s, &apps[0].app);
    a.spec.source.as_mut().unwrap().path = "old".into();
    a.metadata
        .annotations
        .insert("keep-me".into(), "yes".into());
    a.metadata
        .annotations
        .insert("drop-me".into(), "yes".into());
    let mut gone = owned(&s, &apps[1].app);
    gone.metadata.name = "gone".into();
    let mut other = apps[1].app.clone();
    other.metadata.name = "other".into();
    let existing = vec![a.clone(), gone, other];

    let p = plan(&s, &apps, &existing);
    assert_eq!(p.actions.len(), 3, "{p:?}");
    let Action::Update(updated) = &p.actions[0] else {
        panic!("{p:?}")
    };
    assert_eq!(updated.spec.source.as_ref().unwrap().path, "a");
    assert_eq!(
        updated
            .metadata
            .annotations
            .get("keep-me")
            .map(String::as_str),
        Some("yes")
    );
    assert!(!updated.metadata.annotations.contains_key("drop-me"));
    assert!(matches!(&p.actions[1], Action::Create(c) if c.metadata.name == "b"));
    assert_eq!(p.actions[2], Action::Delete("gone".into()));

    for (mode, update, delete) in [
        ("create-only", false, false),
        ("create-update", true, false),
        ("create-delete", false, true),
    ] {
        s.spec.sync_policy = Some(gitfleet_model::ApplicationSetSyncPolicy {
            applications_sync: Some(mode.into()),
            ..Default::default()
        });
        let p = plan(&s, &apps, &existing);
        assert_eq!(
            p.actions.iter().any(|a| matches!(a, Action::Update(_))),
            update,
            "{mode}"
        );
        assert_eq!(
            p.actions.iter().any(|a| matches!(a, Action::Delete(_))),
            delete,
            "{mode}"
        );
        assert!(
            p.actions.iter().any(|a| matches!(a, Action::Create(_))),
            "{mode}"
        );
    }

    // An app of the same name owned by someone else is never taken over.
    let mut foreign = apps[0].app.clone();
    foreign.metadata.owner_references.clear();
    let p = plan(&s, &apps, &[foreign]);
    assert_eq!(p.conflicts, ["a"]);

    // Generated as stored (read back from its JSON, as the controller reads KV):
    // nothing to write, or every generation would rewrite every app.
    let stored: Vec<Application> = apps
        .iter()
        .map(|g| {
            let json = serde_json::to_vec(&owned(&s, &g.app)).unwrap();
            serde_json::from_slice(&json).unwrap()
        })
        .collect();
    let p = plan(&s, &apps, &stored);
    assert!(p.actions.is_empty() && p.unchanged == 2, "{p:?}");
}

const PULL_REQUEST_SET: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: previews
  namespace: argocd
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - pullRequest:
      gitea:
        owner: myorg
        repo: myrepository
        api: https://gitea.mydomain.com/
      filters:
      - branchMatch: ".*-argocd"
      values:
        pr_branch: '{{ .branch }}'
  template:
    metadata:
      name: 'myapp-{{.branch_slug}}-{{.number}}'
      annotations:
        branch: '{{ .values.pr_branch }}'
    spec:
      project: default
      source:
        repoURL: https://gitea.mydomain.com/myorg/myrepository.git
        targetRevision: '{{.head_sha}}'
        path: kubernetes/
      destination:
        server: https://kubernetes.default.svc
        namespace: default
"#;

#[test]
fn pull_requests_are_asked_for_then_make_one_app_each() {
    use gitfleet_appset::pull_request::PullRequest;
    let s = set(PULL_REQUEST_SET);
    let query = match generate(&s, &Sources::default()) {
        Err(GenerateError::NeedPullRequests { at, query }) => {
            assert_eq!(at, "spec.generators[0].pullRequest");
            *query
        }
        other => panic!("expected a request for the listing, got {other:?}"),
    };
    assert_eq!(query.api, "https://gitea.mydomain.com");
    let pr = |number: i64, branch: &str| PullRequest {
        number,
        title: "t".into(),
        branch: branch.into(),
        target_branch: "main".into(),
        head_sha: format!("{number:040x}"),
        author: "alice".into(),
        labels: vec![],
    };
    let mut sources = Sources::default();
    sources.pull_requests.insert(
        query.clone(),
        Some(std::sync::Arc::new(vec![
            pr(1, "feat_x-argocd"),
            pr(2, "not-this-one"),
        ])),
    );
    let apps = generate(&s, &sources).unwrap();
    assert_eq!(names(&apps), ["myapp-feat-x-argocd-1"]);
    let app = &apps[0].app;
    assert_eq!(app.metadata.annotations["branch"], "feat_x-argocd");
    assert_eq!(
        app.spec.source.as_ref().unwrap().target_revision,
        format!("{:040x}", 1)
    );

    // A repository the provider does not have: an error, unless the set says to go on.
    sources.pull_requests.insert(query, None);
    let err = generate(&s, &sources).unwrap_err().to_string();
    assert!(
        err.starts_with("spec.generators[0].pullRequest: the repository was not found"),
        "{err}"
    );
    let tolerant = set(&PULL_REQUEST_SET.replace(
        "      filters:\n",
        "      continueOnRepoNotFoundError: true\n      filters:\n",
    ));
    assert!(generate(&tolerant, &sources).unwrap().is_empty());
}
