//! The SCM provider generator against a local server that speaks GitHub's API: an
//! organization's repositories become apps when Argo CD's filters let them through (a
//! topic, a path that exists at the default branch, archived ones left out), the app of
//! a repository served by the sandbox's Git server syncs from it, and a repository that
//! gains the topic is picked up at the set's requeue interval.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gitfleet_e2e::{CONFIGMAP, Sandbox, Timings};
use serde_json::{Value, json};

#[derive(Default)]
struct Org {
    /// name → (clone URL, topics, archived, paths at main).
    repos: BTreeMap<String, (String, Vec<String>, bool, Vec<String>)>,
}

type Shared = Arc<Mutex<Org>>;

async fn repos(State(org): State<Shared>, Path(name): Path<String>) -> impl IntoResponse {
    if name != "myorg" {
        return (StatusCode::NOT_FOUND, "{}".to_owned());
    }
    let org = org.lock().unwrap();
    let list: Vec<Value> = org
        .repos
        .iter()
        .enumerate()
        .map(|(i, (name, (url, topics, archived, _)))| {
            json!({"id": i + 1, "name": name, "clone_url": url, "ssh_url": format!("git@example:{name}.git"),
                   "default_branch": "main", "topics": topics, "archived": archived})
        })
        .collect();
    (StatusCode::OK, Value::Array(list).to_string())
}

async fn branch(
    State(org): State<Shared>,
    Path((_, repo, branch)): Path<(String, String, String)>,
) -> impl IntoResponse {
    if !org.lock().unwrap().repos.contains_key(&repo) || branch != "main" {
        return (StatusCode::NOT_FOUND, "{}".to_owned());
    }
    (
        StatusCode::OK,
        json!({"name": "main", "commit": {"sha": "0123456789abcdef0123456789abcdef01234567"}})
            .to_string(),
    )
}

async fn contents(
    State(org): State<Shared>,
    Path((_, repo, path)): Path<(String, String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> impl IntoResponse {
    let org = org.lock().unwrap();
    let exists = q.get("ref").map(String::as_str) == Some("main")
        && org
            .repos
            .get(&repo)
            .is_some_and(|(_, _, _, paths)| paths.contains(&path));
    if exists {
        (StatusCode::OK, json!([{"name": "cm.yaml"}]).to_string())
    } else {
        (StatusCode::NOT_FOUND, "{}".to_owned())
    }
}

const SET: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: org-apps
  namespace: argocd
spec:
  generators:
  - scmProvider:
      cloneProtocol: https
      requeueAfterSeconds: 1
      github:
        organization: myorg
        api: API
        excludeArchivedRepos: true
      filters:
      - labelMatch: deploy-ok
        pathsExist: [kubernetes]
  template:
    metadata:
      name: '{{repository}}-{{branch}}'
    spec:
      project: default
      source:
        repoURL: '{{url}}'
        targetRevision: '{{branch}}'
        path: kubernetes
      destination:
        server: https://kubernetes.default.svc
        namespace: '{{repository}}'
      syncPolicy:
        automated: {prune: true}
        syncOptions: [CreateNamespace=true]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizations_repositories_become_apps_through_the_filters() {
    Box::pin(async {
        let sb = Sandbox::start(&[("kubernetes/cm.yaml", CONFIGMAP)], Timings::default()).await;
        let repo = |url: &str, topics: &[&str], archived: bool, paths: &[&str]| {
            (
                url.to_owned(),
                topics.iter().map(|t| t.to_string()).collect(),
                archived,
                paths.iter().map(|p| p.to_string()).collect(),
            )
        };
        let org: Shared = Arc::new(Mutex::new(Org {
            repos: BTreeMap::from([
                // Served by the sandbox: its app syncs.
                (
                    "app".to_owned(),
                    repo(&sb.repo_url(), &["deploy-ok"], false, &["kubernetes"]),
                ),
                // No topic.
                (
                    "other".to_owned(),
                    repo("https://example/other.git", &[], false, &["kubernetes"]),
                ),
                // The topic, not the path.
                (
                    "docs".to_owned(),
                    repo("https://example/docs.git", &["deploy-ok"], false, &[]),
                ),
                // Archived.
                (
                    "old".to_owned(),
                    repo(
                        "https://example/old.git",
                        &["deploy-ok"],
                        true,
                        &["kubernetes"],
                    ),
                ),
            ]),
        }));
        let router = axum::Router::new()
            .route("/api/v3/orgs/{org}/repos", axum::routing::get(repos))
            .route(
                "/api/v3/repos/{org}/{repo}/branches/{branch}",
                axum::routing::get(branch),
            )
            .route(
                "/api/v3/repos/{org}/{repo}/contents/{*path}",
                axum::routing::get(contents),
            )
            .with_state(org.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });

        let f = sb.file("org-apps.yaml", &SET.replace("API", &api));
        let out = sb.cli(&["apply", "-f", &f]).await;
        assert_eq!(out.code, 0, "apply: {}", out.stdout);

        sb.until_stored_app("app-main", true, 60).await;
        let status = sb
            .until_status("app-main", 120, "Synced", |s| {
                Sandbox::sync_status(s) == "Synced"
            })
            .await;
        assert_eq!(Sandbox::health(&status), "Healthy");
        assert!(sb.live("", "configmaps", "app", "web-config").is_some());
        for name in ["other-main", "docs-main", "old-main"] {
            assert!(
                sb.stored_app(name).await.is_none(),
                "{name} passed the filters"
            );
        }

        // A repository gains the topic: its app at the next requeue.
        org.lock()
            .unwrap()
            .repos
            .get_mut("other")
            .unwrap()
            .1
            .push("deploy-ok".into());
        sb.until_stored_app("other-main", true, 60).await;
        let other = sb.stored_app("other-main").await.unwrap();
        assert_eq!(
            other["spec"]["source"]["repoURL"],
            "https://example/other.git"
        );
        assert!(sb.stored_app("docs-main").await.is_none());
    })
    .await;
}
