//! Validation, data-driven: each case is an Application or AppProject document and the
//! exact `path: message` lines `validate` must return (empty = valid).

use gitfleet_model::{Manifest, from_yaml_str};

/// Parses `yaml` and checks that validation returns exactly `expected`, in order, and
/// that `Display` prints them one per line.
fn check(case: &str, yaml: &str, expected: &[&str]) {
    let manifest = from_yaml_str(yaml).unwrap_or_else(|e| panic!("{case}: does not parse: {e}"));
    let result = match &manifest {
        Manifest::Application(app) => app.validate(),
        Manifest::AppProject(project) => project.validate(),
        Manifest::ApplicationSet(set) => set.validate(),
        other => panic!("{case}: not validated: {}", other.kind()),
    };
    match result {
        Ok(()) => assert!(expected.is_empty(), "{case}: valid, expected {expected:#?}"),
        Err(errors) => {
            assert_eq!(errors.lines(), expected, "{case}");
            assert_eq!(errors.to_string(), expected.join("\n"), "{case}: display");
        }
    }
}

const VALID_APP: &str = "
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://github.com/argoproj/argocd-example-apps.git
    path: guestbook
    targetRevision: HEAD
  destination:
    server: https://kubernetes.default.svc
    namespace: guestbook
";

/// `VALID_APP` with `from` replaced by `to` (which must occur).
fn app_with(from: &str, to: &str) -> String {
    assert!(VALID_APP.contains(from), "{from:?} not in VALID_APP");
    VALID_APP.replacen(from, to, 1)
}

#[test]
fn application_rules() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("valid", VALID_APP.to_owned(), vec![]),
        (
            "missing name",
            app_with("  name: guestbook\n", ""),
            vec!["metadata.name: required"],
        ),
        (
            "name not dns-1123",
            app_with("name: guestbook", "name: Guest_Book"),
            vec![
                "metadata.name: \"Guest_Book\" must be a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', starting and ending with an alphanumeric, at most 253 characters)",
            ],
        ),
        ("dotted name is fine", app_with("name: guestbook", "name: guestbook.v2"), vec![]),
        (
            "missing project",
            app_with("  project: default\n", ""),
            vec!["spec.project: required"],
        ),
        (
            "no source",
            app_with(
                "  source:\n    repoURL: https://github.com/argoproj/argocd-example-apps.git\n    path: guestbook\n    targetRevision: HEAD\n",
                "",
            ),
            vec!["spec.source: one of source or sources is required"],
        ),
        (
            "repo url not a url",
            app_with("repoURL: https://github.com/argoproj/argocd-example-apps.git", "repoURL: not a url"),
            vec![
                "spec.source.repoURL: \"not a url\" is not a valid repository URL (expected https://, http://, ssh://, git@host:path, file:// or an OCI reference)",
            ],
        ),
        (
            "repo url missing",
            app_with("repoURL: https://github.com/argoproj/argocd-example-apps.git", "path2: x"),
            vec!["spec.source.repoURL: required"],
        ),
        (
            "scp-like, ssh, file and oci urls are fine",
            app_with(
                "  source:\n    repoURL: https://github.com/argoproj/argocd-example-apps.git\n    path: guestbook\n    targetRevision: HEAD\n",
                "  sources:\n    - repoURL: git@github.com:org/repo.git\n    - repoURL: ssh://git@example.com/org/repo.git\n    - repoURL: file:///srv/git/repo\n    - repoURL: registry-1.docker.io/bitnamicharts\n      chart: nginx\n    - repoURL: oci://ghcr.io/org/charts\n",
            ),
            vec![],
        ),
        (
            "bad url inside sources",
            app_with(
                "  source:\n    repoURL: https://github.com/argoproj/argocd-example-apps.git\n    path: guestbook\n    targetRevision: HEAD\n",
                "  sources:\n    - repoURL: https://github.com/org/repo\n    - repoURL: ftp://example.com/repo\n",
            ),
            vec![
                "spec.sources[1].repoURL: \"ftp://example.com/repo\" is not a valid repository URL (expected https://, http://, ssh://, git@host:path, file:// or an OCI reference)",
            ],
        ),
        (
            "two source types",
            app_with("    targetRevision: HEAD\n", "    targetRevision: HEAD\n    helm: {releaseName: x}\n    kustomize: {namePrefix: p-}\n"),
            vec![
                "spec.source: multiple source types set (helm, kustomize); at most one of helm, kustomize, directory, plugin is allowed",
            ],
        ),
        (
            "missing destination entirely",
            app_with(
                "  destination:\n    server: https://kubernetes.default.svc\n    namespace: guestbook\n",
                "",
            ),
            vec!["spec.destination: either server or name is required"],
        ),
        (
            "destination with namespace only",
            app_with("    server: https://kubernetes.default.svc\n", ""),
            vec!["spec.destination: either server or name is required"],
        ),
        (
            "destination server and name",
            app_with("    server: https://kubernetes.default.svc\n", "    server: https://kubernetes.default.svc\n    name: in-cluster\n"),
            vec!["spec.destination: server and name are mutually exclusive"],
        ),
        (
            "destination by name is fine",
            app_with("    server: https://kubernetes.default.svc\n", "    name: in-cluster\n"),
            vec![],
        ),
        (
            "destination server not a url",
            app_with("server: https://kubernetes.default.svc", "server: kubernetes"),
            vec!["spec.destination.server: \"kubernetes\" is not a valid cluster URL (expected https:// or http://)"],
        ),
        (
            "destination namespace not a label",
            app_with("namespace: guestbook", "namespace: Guest.Book"),
            vec![
                "spec.destination.namespace: \"Guest.Book\" must be a DNS-1123 label (lowercase alphanumerics and '-', starting and ending with an alphanumeric, at most 63 characters)",
            ],
        ),
        (
            "bad durations, factor and sync options",
            format!(
                "{VALID_APP}  syncPolicy:\n    syncOptions:\n      - CreateNamespace=true\n      - PruneLast=true\n      - CreateNamespace\n      - =true\n    retry:\n      limit: 2\n      backoff:\n        duration: 5x\n        factor: 0\n        maxDuration: 3 minutes\n"
            ),
            vec![
                "spec.syncPolicy.syncOptions[2]: \"CreateNamespace\" must be Key=Value",
                "spec.syncPolicy.syncOptions[3]: \"=true\" must be Key=Value",
                "spec.syncPolicy.retry.backoff.duration: \"5x\" is not a duration (e.g. 5s, 3m)",
                "spec.syncPolicy.retry.backoff.maxDuration: \"3 minutes\" is not a duration (e.g. 5s, 3m)",
                "spec.syncPolicy.retry.backoff.factor: must be at least 1",
            ],
        ),
        (
            "good durations",
            format!("{VALID_APP}  syncPolicy:\n    retry:\n      backoff:\n        duration: \"10\"\n        maxDuration: 1h30m\n"),
            vec![],
        ),
        (
            "ignoreDifferences without kind, negative history limit",
            format!("{VALID_APP}  ignoreDifferences:\n    - group: apps\n      jsonPointers: [/spec/replicas]\n  revisionHistoryLimit: -1\n"),
            vec!["spec.ignoreDifferences[0].kind: required", "spec.revisionHistoryLimit: must not be negative"],
        ),
        (
            "everything wrong at once",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  namespace: Argo_CD\nspec:\n  source:\n    repoURL: not a url\n  destination:\n    server: https://a.example.com\n    name: a\n  syncPolicy:\n    syncOptions: [ServerSideApply]\n    retry:\n      backoff:\n        duration: soon\n".to_owned(),
            vec![
                "metadata.name: required",
                "metadata.namespace: \"Argo_CD\" must be a DNS-1123 label (lowercase alphanumerics and '-', starting and ending with an alphanumeric, at most 63 characters)",
                "spec.project: required",
                "spec.source.repoURL: \"not a url\" is not a valid repository URL (expected https://, http://, ssh://, git@host:path, file:// or an OCI reference)",
                "spec.destination: server and name are mutually exclusive",
                "spec.syncPolicy.syncOptions[0]: \"ServerSideApply\" must be Key=Value",
                "spec.syncPolicy.retry.backoff.duration: \"soon\" is not a duration (e.g. 5s, 3m)",
            ],
        ),
        (
            "empty spec",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: x\n".to_owned(),
            vec![
                "spec.project: required",
                "spec.source: one of source or sources is required",
                "spec.destination: either server or name is required",
            ],
        ),
    ];
    for (case, yaml, expected) in &cases {
        check(case, yaml, expected);
    }
    let long = "a".repeat(254);
    check(
        "name too long",
        &app_with("name: guestbook", &format!("name: {long}")),
        &[&format!(
            "metadata.name: \"{long}\" must be a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', starting and ending with an alphanumeric, at most 253 characters)"
        )],
    );
}

const VALID_PROJECT: &str = "
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: platform
spec:
  sourceRepos: ['*']
  destinations:
    - server: https://kubernetes.default.svc
      namespace: '*'
  roles:
    - name: ci
      policies:
        - p, proj:platform:ci, applications, sync, platform/*, allow
        - p, proj:platform:ci, applications, get, platform/guestbook, deny
      groups: [myorg:ci]
  syncWindows:
    - kind: deny
      schedule: '0 22 * * *'
      duration: 8h
      applications: ['*']
";

#[test]
fn project_rules() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("valid", VALID_PROJECT.to_owned(), vec![]),
        (
            "everything wrong at once",
            "apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: Platform
spec:
  sourceRepos: [https://github.com/a/b, '', https://github.com/a/b]
  destinations:
    - namespace: prod
    - server: https://x.example.com
      namespace: prod
    - server: https://x.example.com
      namespace: prod
  roles:
    - name: ci
      policies:
        - p, proj:other:ci, applications, sync, other/*, maybe
        - just words
      groups: [g, g]
    - name: ci
    - name: -bad
  syncWindows:
    - kind: sometimes
      schedule: every night
      duration: forever
"
            .to_owned(),
            vec![
                "metadata.name: \"Platform\" must be a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', starting and ending with an alphanumeric, at most 253 characters)",
                "spec.sourceRepos[1]: must not be empty",
                "spec.sourceRepos[2]: \"https://github.com/a/b\" duplicates spec.sourceRepos[0]",
                "spec.destinations[0]: either server or name is required",
                "spec.destinations[2]: duplicates spec.destinations[1]",
                "spec.roles[0].policies[0]: invalid policy \"p, proj:other:ci, applications, sync, other/*, maybe\": subject must be \"proj:Platform:ci\", not \"proj:other:ci\"; object must be Platform/* or Platform/<app>, not \"other/*\"; effect must be allow or deny, not \"maybe\"",
                "spec.roles[0].policies[1]: \"just words\" must be of the form 'p, proj:Platform:ci, <resource>, <action>, Platform/<object>, allow|deny'",
                "spec.roles[0].groups[1]: \"g\" duplicates groups[0]",
                "spec.roles[1].name: \"ci\" duplicates spec.roles[0]",
                "spec.roles[2].name: \"-bad\" is not a valid role name (alphanumerics, '-' and '_', starting and ending with an alphanumeric)",
                "spec.syncWindows[0].kind: \"sometimes\" must be allow or deny",
                "spec.syncWindows[0].schedule: \"every night\" is not a cron schedule (5 fields, e.g. \"10 1 * * *\")",
                "spec.syncWindows[0].duration: \"forever\" is not a duration (e.g. 5s, 3m)",
                "spec.syncWindows[0]: at least one of applications, namespaces or clusters is required",
            ],
        ),
        (
            "missing name",
            "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {}\nspec: {}\n"
                .to_owned(),
            vec!["metadata.name: required"],
        ),
    ];
    for (case, yaml, expected) in &cases {
        check(case, yaml, expected);
    }
}

#[test]
fn application_set_rules() {
    let head = "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: apps\n";
    let template = "  template:\n    metadata: {name: '{{name}}'}\n    spec: {project: default}\n";
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "valid, nested",
            format!(
                "{head}spec:\n  generators:\n    - matrix:\n        generators:\n          - clusters: {{}}\n          - list: {{elements: []}}\n{template}"
            ),
            vec![],
        ),
        (
            "no generators",
            format!("{head}spec:\n  generators: []\n{template}"),
            vec!["spec.generators: at least one generator is required"],
        ),
        (
            "unknown generators, top-level and nested, and a bad sync mode",
            format!(
                "{head}spec:\n  generators:\n    - lists: {{}}\n    - merge:\n        generators:\n          - git: {{}}\n          - cluster: {{}}\n  syncPolicy:\n    applicationsSync: create-maybe\n{template}"
            ),
            vec![
                "spec.generators[0]: no known generator (expected one of list, clusters, git, matrix, merge, scmProvider, pullRequest, clusterDecisionResource, plugin)",
                "spec.generators[1].merge.generators[1]: no known generator (expected one of list, clusters, git, matrix, merge, scmProvider, pullRequest, clusterDecisionResource, plugin)",
                "spec.syncPolicy.applicationsSync: \"create-maybe\" must be one of create-only, create-update, create-delete, sync",
            ],
        ),
    ];
    for (case, yaml, expected) in &cases {
        check(case, yaml, expected);
    }
}
