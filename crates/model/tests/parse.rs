//! Parse entry points: kind and apiVersion checks, multi-document streams, and YAML
//! errors that point at the line and column in the whole stream.

use gitfleet_model::{Manifest, ParseError, Position, SecretManifest, from_yaml_str, parse_all};

const APP: &str = "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: a
spec:
  project: default
  source: {repoURL: 'https://example.com/r.git', path: p}
  destination: {server: 'https://kubernetes.default.svc'}
";

#[test]
fn yaml_syntax_error_points_into_the_right_document() {
    // The third document (its `---` is line 18) has a bad indentation on line 23.
    let stream = format!(
        "{APP}---\n{APP}---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: b\n   bad: indent\n"
    );
    let docs = parse_all(&stream);
    assert_eq!(docs.len(), 3);
    assert!(docs[0].result.is_ok() && docs[1].result.is_ok());
    assert_eq!((docs[2].index, docs[2].line), (2, 18));
    let err = docs[2].result.clone().unwrap_err();
    let ParseError::Yaml {
        at: Some(Position { line, column }),
        message,
    } = &err
    else {
        panic!("expected a located yaml error, got {err:?}")
    };
    assert_eq!((*line, *column), (23, 7), "{err}");
    assert!(
        message.contains("mapping values are not allowed"),
        "{message}"
    );
    assert!(
        err.to_string()
            .starts_with("invalid yaml at line 23 column 7: "),
        "{err}"
    );
}

#[test]
fn context_positions_in_messages_are_in_stream_coordinates() {
    // Line 12 of the stream (third line of the second document) breaks the top-level
    // mapping that starts on line 10; both positions count from the stream's start.
    let stream = format!(
        "{APP}---
metadata:
  name: b
 bad: x
"
    );
    let docs = parse_all(&stream);
    let err = docs[1].result.clone().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid yaml at line 12 column 2: did not find expected key, while parsing a block mapping at line 10 column 1"
    );
}

#[test]
fn type_error_names_the_field_and_position() {
    let yaml = APP.replace(
        "  project: default\n",
        "  project: default\n  syncPolicy:\n    automated:\n      prune: maybe\n",
    );
    let err = from_yaml_str(&format!("# leading comment\n---\n{yaml}")).unwrap_err();
    let ParseError::Yaml {
        at: Some(at),
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(at.line, 11, "{err}");
    assert!(
        message.starts_with("spec.syncPolicy.automated.prune: invalid type"),
        "{message}"
    );
}

#[test]
fn kind_and_api_version_checks() {
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
            "unsupported kind \"Deployment\" (apiVersion apps/v1): accepted are Application, AppProject and ApplicationSet (argoproj.io/v1alpha1), v1 Secrets labelled argocd.argoproj.io/secret-type: cluster, repository or repo-creds, and Argo CD's settings ConfigMaps and Secrets",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: my-app-config}\ndata: {a: b}\n",
            "configmap \"my-app-config\" is not one of Argo CD's settings ConfigMaps (argocd-cm, argocd-rbac-cm, argocd-cmd-params-cm, ...)",
        ),
        (
            "apiVersion: argoproj.io/v1beta1\nkind: Application\n",
            "Application has apiVersion \"argoproj.io/v1beta1\", expected argoproj.io/v1alpha1",
        ),
        (
            "kind: Application\nmetadata: {name: x}\n",
            "missing apiVersion",
        ),
        ("apiVersion: argoproj.io/v1alpha1\n", "missing kind"),
        ("- a\n- b\n", "document is not a mapping"),
        ("", "no yaml document found"),
        ("# nothing here\n---\n", "no yaml document found"),
        (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-password\nstringData: {password: x}\n",
            "secret \"db-password\" is not an argo cd cluster, repository or repo-creds secret, nor argocd-secret, nor labelled app.kubernetes.io/part-of: argocd (label argocd.argoproj.io/secret-type is \"\")",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: r\n  labels: {argocd.argoproj.io/secret-type: repository}\ndata: {url: '%%%'}\n",
            "secret \"r\": data.url is not valid base64",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: r\n  labels: {argocd.argoproj.io/secret-type: repository}\nstringData: {url: 'https://x.example.com/r', insecure: maybe}\n",
            "secret \"r\": insecure is \"maybe\", expected a boolean",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: r\n  labels: {argocd.argoproj.io/secret-type: repository}\nstringData: {type: svn, url: 'https://x.example.com/r'}\n",
            "secret \"r\": type is \"svn\", expected git, helm or oci",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: c\n  labels: {argocd.argoproj.io/secret-type: cluster}\nstringData: {name: c}\n",
            "secret \"c\": server is required",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: c\n  labels: {argocd.argoproj.io/secret-type: cluster}\nstringData:\n  server: https://c.example.com\n  config: '{\"bearerToken\": 42}'\n",
            "secret \"c\": config is not valid cluster config json (data error at line 1 column 18)",
        ),
    ];
    for (yaml, want) in cases {
        let err = from_yaml_str(yaml).expect_err(yaml);
        assert_eq!(err.to_string(), *want, "{yaml}");
    }
}

#[test]
fn one_document_expected_by_from_yaml_str() {
    let err = from_yaml_str(&format!("{APP}---\n{APP}")).unwrap_err();
    assert_eq!(err, ParseError::MultipleDocuments { count: 2 });
    // A leading `---` and a trailing `...` are still one document.
    assert!(from_yaml_str(&format!("---\n{APP}...\n")).is_ok());
}

#[test]
fn empty_documents_are_skipped_but_counted() {
    let docs = parse_all(&format!("---\n---\n{APP}---\n# just a comment\n---\n{APP}"));
    let indexes: Vec<_> = docs
        .iter()
        .map(|d| (d.index, d.line, d.result.is_ok()))
        .collect();
    assert_eq!(indexes, [(1, 2, true), (3, 13, true)]);
}

#[test]
fn unknown_fields_are_ignored_like_argo_cd() {
    let yaml = APP.replace(
        "  project: default\n",
        "  project: default\n  someFutureField: {x: 1}\n",
    );
    assert!(from_yaml_str(&yaml).is_ok());
}

/// Clusters, repositories and credential templates written back out as Secrets read as
/// the same objects; settings ConfigMaps and argocd-secret are read whole.
#[test]
fn secrets_written_back_read_the_same_and_settings_read_whole() {
    let cluster = from_yaml_str(include_str!("fixtures/cluster-secret.yaml"))
        .unwrap()
        .into_cluster()
        .unwrap();
    let yaml = serde_yaml_ng::to_string(&SecretManifest::from_cluster(&cluster, "c")).unwrap();
    assert_eq!(
        from_yaml_str(&yaml).unwrap().into_cluster().unwrap(),
        cluster
    );
    for doc in parse_all(include_str!("fixtures/repository-secrets.yaml")) {
        let repo = doc.result.unwrap().into_repository().unwrap();
        for secret_type in ["repository", "repo-creds"] {
            let yaml =
                serde_yaml_ng::to_string(&SecretManifest::from_repository(&repo, secret_type, "r"))
                    .unwrap();
            match from_yaml_str(&yaml).unwrap() {
                Manifest::Repository(r) | Manifest::RepoCreds(r) => assert_eq!(*r, repo),
                other => panic!("{other:?}"),
            }
        }
    }
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: argocd-secret}\ndata: {server.secretkey: c2VjcmV0}\n";
    let Manifest::Settings(doc) = from_yaml_str(secret).unwrap() else {
        panic!("settings")
    };
    assert!(doc.secret);
    assert_eq!(doc.data["server.secretkey"].expose(), "secret");
    assert_eq!(
        format!("{:?}", doc.data),
        "{\"server.secretkey\": <redacted>}"
    );
    // A generator's token: a Secret labelled as Argo CD's, and only then.
    let token = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: github-token\n  labels: {app.kubernetes.io/part-of: argocd}\nstringData: {token: ghp_x}\n";
    let Manifest::Secret(doc) = from_yaml_str(token).unwrap() else {
        panic!("a labelled Secret")
    };
    assert_eq!(
        (doc.name.as_str(), doc.data["token"].expose().as_str()),
        ("github-token", "ghp_x")
    );
    let unlabelled = token.replace("  labels: {app.kubernetes.io/part-of: argocd}\n", "");
    let err = from_yaml_str(&unlabelled).unwrap_err().to_string();
    assert!(err.contains("app.kubernetes.io/part-of: argocd"), "{err}");
    assert!(!err.contains("ghp_x"), "{err}");
}
