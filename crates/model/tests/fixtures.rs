//! Argo CD's example manifests (tests/fixtures/*.yaml) parse unchanged: key fields read
//! correctly, nothing is dropped (the typed value serializes back to the same data), and
//! YAML round-trips to an equal value.

use std::path::Path;
use std::time::Duration;

use gitfleet_model::*;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(name: &str) -> Manifest {
    from_yaml_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The typed value holds every field of the file: serializing it gives the same data.
fn assert_lossless<T: serde::Serialize>(name: &str, typed: &T) {
    let original: serde_json::Value = serde_yaml_ng::from_str(&fixture(name)).unwrap();
    let back = serde_json::to_value(typed).unwrap();
    assert_eq!(back, original, "{name}: a field was lost or changed");
}

/// YAML out and back in gives an equal value.
fn assert_round_trip<T>(name: &str, typed: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let yaml = serde_yaml_ng::to_string(typed).unwrap();
    let back: T = serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"));
    assert_eq!(&back, typed, "{name}: yaml round trip changed the value");
}

#[test]
fn api_service_application() {
    let name = "application-api-service.yaml";
    let app = parse(name).into_application().expect("an Application");
    assert_eq!(app.metadata.name, "api-service");
    assert_eq!(app.metadata.namespace, "argocd");
    assert_eq!(app.spec.project, "platform");
    let src = app.spec.source.as_ref().unwrap();
    assert_eq!(src.repo_url, "https://github.com/myorg/k8s-config");
    assert_eq!(src.target_revision, "main");
    assert_eq!(src.path, "apps/api-service/overlays/production");
    assert!(app.spec.destination.is_in_cluster());
    assert_eq!(app.spec.destination.namespace, "production");
    let policy = app.spec.sync_policy.as_ref().unwrap();
    assert!(policy.is_automated());
    let automated = policy.automated.as_ref().unwrap();
    assert!(automated.prune && automated.self_heal && !automated.allow_empty);
    assert!(policy.sync_options.create_namespace());
    assert!(policy.sync_options.apply_out_of_sync_only());
    assert!(!policy.sync_options.server_side_apply());
    assert_eq!(policy.sync_options.prune_propagation_policy(), "foreground");
    let retry = policy.retry.as_ref().unwrap();
    assert_eq!(retry.limit, 3);
    let backoff = retry.effective_backoff();
    assert_eq!(backoff.duration, Duration::from_secs(5));
    assert_eq!(backoff.factor, 2);
    assert_eq!(backoff.max_duration, Duration::from_secs(180));
    assert_eq!(app.spec.effective_sources().len(), 1);
    assert_eq!(
        app.tracking_id("argocd", "apps", "Deployment", "production", "api"),
        "api-service:apps/Deployment:production/api"
    );
    app.validate().unwrap();
    assert_lossless(name, &app);
    assert_round_trip(name, &app);
}

#[test]
fn root_app_of_apps() {
    let name = "application-root.yaml";
    let app = parse(name).into_application().expect("an Application");
    assert_eq!(app.metadata.name, "root");
    assert_eq!(app.spec.source.as_ref().unwrap().path, "apps/applications");
    assert_eq!(app.spec.destination.namespace, "argocd");
    // The example omits spec.project: Argo CD uses "default"; gitfleet's validation
    // asks for it explicitly.
    assert_eq!(app.spec.project, "");
    assert_eq!(app.spec.project_or_default(), "default");
    assert_eq!(
        app.validate().unwrap_err().lines(),
        ["spec.project: required"]
    );
    assert_lossless(name, &app);
    assert_round_trip(name, &app);
}

#[test]
fn multi_source_application_with_status() {
    let name = "application-multi-source-status.yaml";
    let app = parse(name).into_application().expect("an Application");
    assert!(app.spec.has_multiple_sources());
    let sources = app.spec.effective_sources();
    assert_eq!(sources.len(), 2);
    assert!(sources[0].is_helm_chart());
    let helm = sources[0].helm.as_ref().unwrap();
    assert_eq!(helm.release_name, "web");
    assert_eq!(helm.value_files, ["$values/web/values-production.yaml"]);
    assert_eq!(helm.parameters[0].name, "replicaCount");
    assert!(helm.parameters[0].force_string);
    assert_eq!(
        helm.values_object.as_ref().unwrap()["service"]["type"],
        "ClusterIP"
    );
    assert_eq!(sources[1].ref_name, "values");
    assert_eq!(sources[1].target_revision, "main");
    assert!(app.spec.destination.is_in_cluster());
    assert_eq!(app.metadata.finalizers, [RESOURCES_FINALIZER]);
    assert_eq!(
        app.spec.ignore_differences[0].json_pointers,
        ["/spec/replicas"]
    );
    assert_eq!(app.spec.revision_history_limit, Some(5));
    let policy = app.spec.sync_policy.as_ref().unwrap();
    assert!(!policy.is_automated());
    assert!(policy.sync_options.server_side_apply() && policy.sync_options.prune_last());
    assert!(policy.retry.as_ref().unwrap().is_unlimited());
    assert_eq!(
        policy.managed_namespace_metadata.as_ref().unwrap().labels["istio-injection"],
        "enabled"
    );

    let status = app.status.as_ref().unwrap();
    assert_eq!(
        status.sync.as_ref().unwrap().status,
        SyncStatusCode::OutOfSync
    );
    assert_eq!(status.sync.as_ref().unwrap().revisions[0], "15.1.0");
    assert_eq!(
        status.health.as_ref().unwrap().status,
        HealthStatusCode::Progressing
    );
    assert_eq!(status.resources.len(), 2);
    assert_eq!(status.resources[0].sync_wave, Some(1));
    assert_eq!(status.resources[1].group, "");
    assert_eq!(
        status.resources[1].health.as_ref().unwrap().status,
        HealthStatusCode::Healthy
    );
    assert_eq!(status.conditions[0].type_, "SyncError");
    let op = status.operation_state.as_ref().unwrap();
    assert_eq!(op.phase, OperationPhase::Running);
    assert!(!op.phase.is_completed());
    assert_eq!(op.retry_count, 1);
    assert_eq!(
        status.summary.as_ref().unwrap().images,
        ["docker.io/bitnami/nginx:1.25.4"]
    );

    // Not in the control-plane namespace: the app part is <namespace>_<name>.
    assert_eq!(
        app.tracking_id("argocd", "", "Service", "production", "web-nginx"),
        "team-a_web-app:/Service:production/web-nginx"
    );
    app.validate().unwrap();
    assert_lossless(name, &app);
    assert_round_trip(name, &app);
}

#[test]
fn platform_project() {
    let name = "appproject-platform.yaml";
    let project = parse(name).into_app_project().expect("an AppProject");
    assert_eq!(project.metadata.name, "platform");
    let spec = &project.spec;
    assert_eq!(spec.description, "Platform team workloads");
    assert_eq!(spec.source_repos.len(), 2);
    assert_eq!(spec.destinations[1].namespace, "staging");
    assert!(spec.destinations[0].is_in_cluster());
    assert_eq!(
        spec.cluster_resource_whitelist,
        [ClusterResourceRestriction {
            group: String::new(),
            kind: "Namespace".into(),
            name: String::new(),
        }]
    );
    assert_eq!(spec.namespace_resource_blacklist[0].kind, "ResourceQuota");
    assert_eq!(spec.roles[0].name, "app-developer");
    assert_eq!(spec.roles[0].policies.len(), 2);
    assert_eq!(spec.roles[0].groups, ["myorg:platform-developers"]);
    project.validate().unwrap();
    assert_lossless(name, &project);
    assert_round_trip(name, &project);
}

#[test]
fn list_generator_application_set() {
    let name = "applicationset-list.yaml";
    let set = parse(name)
        .into_application_set()
        .expect("an ApplicationSet");
    assert_eq!(set.metadata.name, "microservices");
    assert_eq!(set.spec.generators.len(), 1);
    let generator = &set.spec.generators[0];
    assert_eq!(generator.kind(), Some(GeneratorKind::List));
    let elements = generator.config().unwrap()["elements"].as_array().unwrap();
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[1]["service"], "worker");
    assert_eq!(set.spec.template.metadata.name, "{{service}}");
    let spec = &set.spec.template.spec;
    assert_eq!(spec.project, "platform");
    assert_eq!(
        spec.source.as_ref().unwrap().path,
        "apps/{{service}}/overlays/production"
    );
    assert_eq!(spec.destination.namespace, "{{namespace}}");
    assert!(spec.sync_policy.as_ref().unwrap().is_automated());
    assert!(!set.spec.go_template);
    set.validate().unwrap();
    assert_lossless(name, &set);
    assert_round_trip(name, &set);
}

#[test]
fn git_directory_generator_application_set() {
    let name = "applicationset-git-directories.yaml";
    let set = parse(name)
        .into_application_set()
        .expect("an ApplicationSet");
    let generator = &set.spec.generators[0];
    assert_eq!(generator.kind(), Some(GeneratorKind::Git));
    let git = generator.config().unwrap();
    assert_eq!(git["repoURL"], "https://github.com/myorg/k8s-config");
    assert_eq!(git["directories"][0]["path"], "apps/services/*");
    assert_eq!(set.spec.template.metadata.name, "{{path.basename}}");
    set.validate().unwrap();
    assert_lossless(name, &set);
    assert_round_trip(name, &set);
}

#[test]
fn generator_kinds() {
    let cases = [
        ("{list: {elements: []}}", Some(GeneratorKind::List)),
        (
            "{clusters: {selector: {matchLabels: {environment: production}}}}",
            Some(GeneratorKind::Cluster),
        ),
        ("{git: {repoURL: x}}", Some(GeneratorKind::Git)),
        (
            "{matrix: {generators: [{list: {}}, {clusters: {}}]}}",
            Some(GeneratorKind::Matrix),
        ),
        (
            "{merge: {mergeKeys: [server], generators: []}}",
            Some(GeneratorKind::Merge),
        ),
        (
            "{scmProvider: {github: {organization: myorg}}}",
            Some(GeneratorKind::ScmProvider),
        ),
        (
            "{pullRequest: {github: {owner: myorg, repo: r}}}",
            Some(GeneratorKind::PullRequest),
        ),
        (
            "{clusterDecisionResource: {configMapRef: cm}}",
            Some(GeneratorKind::ClusterDecisionResource),
        ),
        (
            "{plugin: {configMapRef: {name: p}}}",
            Some(GeneratorKind::Plugin),
        ),
        (
            "{selector: {matchLabels: {a: b}}, list: {elements: []}}",
            Some(GeneratorKind::List),
        ),
        ("{bogus: {}}", None),
        ("[1, 2]", None),
    ];
    for (yaml, want) in cases {
        let g: Generator = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(g.kind(), want, "{yaml}");
    }
    let matrix: Generator = serde_yaml_ng::from_str(cases[3].0).unwrap();
    let kinds: Vec<_> = matrix.children().iter().map(Generator::kind).collect();
    assert_eq!(
        kinds,
        [Some(GeneratorKind::List), Some(GeneratorKind::Cluster)]
    );
}

#[test]
fn cluster_secret() {
    let cluster = parse("cluster-secret.yaml")
        .into_cluster()
        .expect("a Cluster");
    assert_eq!(cluster.name, "production-us-east");
    assert_eq!(cluster.server, "https://prod-us-east.example.com:6443");
    assert_eq!(cluster.namespaces, ["production", "staging"]);
    assert_eq!(cluster.project, "platform");
    assert!(!cluster.cluster_resources);
    assert_eq!(
        cluster.labels.get("environment").map(String::as_str),
        Some("production")
    );
    assert!(!cluster.labels.contains_key(SECRET_TYPE_LABEL));
    assert_eq!(
        cluster.config.bearer_token.as_ref().unwrap().expose(),
        "eyJhbGciOiJSUzI1NiJ9.super-secret-token"
    );
    let tls = &cluster.config.tls_client_config;
    assert!(!tls.insecure);
    assert_eq!(tls.server_name, "prod-us-east.example.com");
    assert_eq!(tls.ca_data, "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==");
    assert!(tls.key_data.is_some());
    assert!(!cluster.is_in_cluster());
    // Argo CD's Cluster JSON round-trips, secrets included.
    let json = serde_json::to_string(&cluster).unwrap();
    assert!(json.contains("\"bearerToken\":\"eyJhbGciOiJSUzI1NiJ9.super-secret-token\""));
    assert_eq!(serde_json::from_str::<Cluster>(&json).unwrap(), cluster);
    let yaml = serde_yaml_ng::to_string(&cluster).unwrap();
    assert_eq!(serde_yaml_ng::from_str::<Cluster>(&yaml).unwrap(), cluster);
}

#[test]
fn repository_secrets() {
    let docs = parse_all(&fixture("repository-secrets.yaml"));
    assert_eq!(docs.len(), 2);
    let git = docs[0]
        .result
        .clone()
        .unwrap()
        .into_repository()
        .expect("a Repository");
    assert_eq!(git.repo, "https://github.com/myorg/k8s-config");
    assert_eq!(git.type_, RepositoryType::Git);
    assert_eq!(git.username, "my-username");
    assert_eq!(git.password.as_ref().unwrap().expose(), "my-password");
    assert!(git.enable_lfs);
    assert!(!git.insecure);
    let helm = docs[1]
        .result
        .clone()
        .unwrap()
        .into_repository()
        .expect("a Repository");
    assert_eq!((docs[1].index, docs[1].line), (1, 16));
    assert_eq!(helm.type_, RepositoryType::Helm);
    assert_eq!(helm.name, "bitnami");
    assert_eq!(helm.repo, "https://charts.bitnami.com/bitnami");
    assert_eq!(helm.password.as_ref().unwrap().expose(), "secret-helm-pass");
    for repo in [&git, &helm] {
        let yaml = serde_yaml_ng::to_string(repo).unwrap();
        assert_eq!(&serde_yaml_ng::from_str::<Repository>(&yaml).unwrap(), repo);
    }
}

#[test]
fn rollouts_are_refused_by_kind() {
    let docs = parse_all(&fixture("rollouts-not-accepted.yaml"));
    let found: Vec<_> = docs
        .iter()
        .map(|d| match &d.result {
            Err(ParseError::UnknownKind { kind, .. }) => (d.index, kind.as_str()),
            other => panic!(
                "document {}: expected an unknown-kind error, got {other:?}",
                d.index
            ),
        })
        .collect();
    assert_eq!(found, [(0, "Rollout"), (1, "AnalysisTemplate")]);
    let message = docs[0].result.as_ref().unwrap_err().to_string();
    assert!(message.contains("\"Rollout\""), "{message}");
    for accepted in ACCEPTED_KINDS {
        assert!(
            message.contains(accepted),
            "{message} should list {accepted}"
        );
    }
}
