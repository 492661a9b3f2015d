//! The pull request generator against a local server that speaks GitHub's pulls API: an
//! app per open pull request carrying the set's label, with the token of the Secret the
//! set names; a new pull request adds an app and a closed one removes it at once when
//! GitHub's pull request webhook says so (the set's requeue interval is Argo CD's 30
//! minutes); an API answering 500 leaves every app in place and says so in the set's
//! status, without the token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use gitfleet_bus::{Bucket, subject_token};
use gitfleet_e2e::{CONFIGMAP, Sandbox, Timings};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_s3cr3t-never-shown";

#[derive(Default)]
struct Api {
    pulls: Vec<Value>,
    failing: bool,
    authorizations: Vec<String>,
}

type Shared = Arc<Mutex<Api>>;

async fn pulls(
    State(api): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let mut api = api.lock().unwrap();
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        api.authorizations.push(auth.to_owned());
    }
    if api.failing {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_owned());
    }
    if (owner.as_str(), repo.as_str()) != ("myorg", "myrepo") {
        return (
            StatusCode::NOT_FOUND,
            r#"{"message":"Not Found"}"#.to_owned(),
        );
    }
    (StatusCode::OK, Value::Array(api.pulls.clone()).to_string())
}

fn pull(number: i64, branch: &str, labels: &[&str]) -> Value {
    json!({
        "number": number,
        "title": format!("change {number}"),
        "head": {"ref": branch, "sha": format!("{number:040x}")},
        "base": {"ref": "main"},
        "user": {"login": "alice"},
        "labels": labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
    })
}

fn set(api: &str, repo: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: previews
  namespace: argocd
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - pullRequest:
      github:
        owner: myorg
        repo: myrepo
        api: {api}
        tokenRef:
          secretName: github-token
          key: token
        labels: [preview]
      requeueAfterSeconds: 1800
  template:
    metadata:
      name: 'preview-{{{{.number}}}}'
      labels:
        branch: '{{{{.branch_slug}}}}'
    spec:
      project: default
      source:
        repoURL: {repo}
        targetRevision: main
        path: preview
      destination:
        server: https://kubernetes.default.svc
        namespace: 'preview-{{{{.number}}}}'
"#
    )
}

/// GitHub's `pull_request` event for myorg/myrepo, as its webhook posts it.
async fn pull_request_event(sb: &Sandbox, action: &str, number: i64) {
    let body = json!({
        "action": action,
        "number": number,
        "repository": {
            "full_name": "myorg/myrepo",
            "html_url": "https://github.com/myorg/myrepo",
            "clone_url": "https://github.com/myorg/myrepo.git",
        },
    });
    let status = reqwest::Client::new()
        .post(sb.webhook_url())
        .header("x-github-event", "pull_request")
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "webhook answered {status}");
}

async fn set_status(sb: &Sandbox) -> Value {
    let kv = sb.bus.kv(Bucket::AppSets).await.unwrap();
    let bytes = kv.get(subject_token("previews")).await.unwrap().unwrap();
    let set: Value = serde_json::from_slice(&bytes).unwrap();
    set["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pull_requests_come_and_go_as_apps_and_a_failing_api_deletes_nothing() {
    Box::pin(async {
        let sb = Sandbox::start(&[("preview/cm.yaml", CONFIGMAP)], Timings::default()).await;
        let api: Shared = Arc::new(Mutex::new(Api {
            pulls: vec![
                pull(1, "feature/login_page", &["preview"]),
                pull(2, "chore/deps", &[]),
            ],
            ..Api::default()
        }));
        let router = axum::Router::new()
            .route(
                "/api/v3/repos/{owner}/{repo}/pulls",
                axum::routing::get(pulls),
            )
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });

        // The token in a Secret labelled as Argo CD requires, applied as a user would;
        // kept sealed.
        let secret = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: github-token\n  namespace: argocd\n  labels:\n    app.kubernetes.io/part-of: argocd\nstringData:\n  token: {TOKEN}\n"
        );
        let f = sb.file("github-token.yaml", &secret);
        let out = sb.cli(&["apply", "-f", &f]).await;
        assert_eq!(out.code, 0, "apply: {}", out.stdout);
        assert!(!out.stdout.contains(TOKEN), "{}", out.stdout);
        let stored = sb
            .bus
            .kv(Bucket::Secrets)
            .await
            .unwrap()
            .get(subject_token("github-token"))
            .await
            .unwrap()
            .expect("the Secret is stored");
        assert!(!String::from_utf8_lossy(&stored).contains(TOKEN));

        let f = sb.file("previews.yaml", &set(&url, &sb.repo_url()));
        let out = sb.cli(&["apply", "-f", &f]).await;
        assert_eq!(out.code, 0, "apply: {}", out.stdout);

        // Only the labelled pull request, with Argo CD's parameters.
        sb.until_stored_app("preview-1", true, 60).await;
        let one = sb.stored_app("preview-1").await.unwrap();
        assert_eq!(one["metadata"]["labels"]["branch"], "feature-login-page");
        assert_eq!(one["spec"]["destination"]["namespace"], "preview-1");
        assert!(sb.stored_app("preview-2").await.is_none());
        assert!(
            api.lock()
                .unwrap()
                .authorizations
                .iter()
                .all(|a| a == &format!("token {TOKEN}")),
            "every call carries the Secret's token"
        );
        assert!(!api.lock().unwrap().authorizations.is_empty());

        // A new labelled pull request: its app as soon as the webhook tells.
        api.lock()
            .unwrap()
            .pulls
            .push(pull(3, "fix/typo", &["preview", "small"]));
        pull_request_event(&sb, "opened", 3).await;
        sb.until_stored_app("preview-3", true, 60).await;
        // Pull request 1 closed: its app goes.
        api.lock().unwrap().pulls.retain(|p| p["number"] != 1);
        pull_request_event(&sb, "closed", 1).await;
        sb.until_stored_app("preview-1", false, 60).await;

        // The API fails: nothing is deleted, the set says why, and never with the token.
        api.lock().unwrap().failing = true;
        pull_request_event(&sb, "labeled", 3).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let message = loop {
            let status = set_status(&sb).await;
            let failed = status["conditions"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "ErrorOccurred" && c["status"] == "True")
                    .and_then(|c| c["message"].as_str().map(str::to_owned))
            });
            if let Some(m) = failed {
                break m;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no error condition: {status}"
            );
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(message.contains("500"), "{message}");
        assert!(
            message.contains("spec.generators[0].pullRequest"),
            "the generator is named: {message}"
        );
        assert!(!message.contains(TOKEN), "{message}");
        assert!(
            sb.stored_app("preview-3").await.is_some(),
            "a failing API deleted an app"
        );
        // Back: a new pull request is picked up again.
        {
            let mut api = api.lock().unwrap();
            api.failing = false;
            api.pulls.push(pull(4, "feat/x", &["preview"]));
        }
        pull_request_event(&sb, "opened", 4).await;
        sb.until_stored_app("preview-4", true, 60).await;
        assert!(sb.stored_app("preview-3").await.is_some());
    })
    .await;
}
