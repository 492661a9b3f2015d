//! The CLI library against an in-process gateway on a real nats-server.

use std::time::Duration;

use clap::Parser;
use gitfleet::Cli;
use gitfleet_bus::{Bucket, Bus, subject_token, testkit};
use tokio_util::sync::CancellationToken;

struct Env {
    bus: Bus,
    server: String,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Env {
    /// A gateway every caller of which acts as admin.
    async fn start() -> Env {
        Env::start_with(true).await
    }

    async fn start_with(disable_auth: bool) -> Env {
        let bus = testkit::bus().await;
        let config = api_gateway::Config {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            operation_timeout: Duration::from_secs(1),
            disable_auth,
            ..api_gateway::Config::default()
        };
        let listeners = api_gateway::bind(&config).await.unwrap();
        let server = listeners.grpc_addr().to_string();
        let shutdown = CancellationToken::new();
        tokio::spawn(api_gateway::serve(
            config,
            listeners,
            bus.clone(),
            shutdown.clone(),
        ));
        Env {
            bus,
            server,
            dir: tempfile::tempdir().unwrap(),
            shutdown,
        }
    }

    /// Runs `gitfleet ARGS...`: (exit code, stdout, stderr line).
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let config = self.dir.path().join("cli-config").display().to_string();
        let mut argv = vec!["gitfleet", "--server", &self.server, "--config", &config];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        let mut out = Vec::new();
        match gitfleet::run(&cli, &mut out).await {
            Ok(code) => (code, String::from_utf8(out).unwrap(), String::new()),
            Err(e) => (
                cli.error_exit_code(),
                String::from_utf8(out).unwrap(),
                format!("error: {e}"),
            ),
        }
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

fn app_yaml(name: &str, automated: bool) -> String {
    let policy = if automated {
        "  syncPolicy:\n    automated:\n      prune: true\n"
    } else {
        ""
    };
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://github.com/argoproj/argocd-example-apps.git
    targetRevision: HEAD
    path: guestbook
  destination:
    server: https://kubernetes.default.svc
    namespace: {name}
{policy}"#
    )
}

#[tokio::test]
async fn app_create_list_get() {
    let env = Env::start().await;
    let file = env.write("guestbook.yaml", &app_yaml("guestbook", true));
    let (code, out, err) = env.run(&["app", "create", "-f", &file]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, "application 'guestbook' created\n");
    let file = env.write("manual.yaml", &app_yaml("manual", false));
    assert_eq!(env.run(&["app", "create", "-f", &file]).await.0, 0);

    let (code, _, err) = env.run(&["app", "create", "-f", &file]).await;
    assert_eq!(code, 1);
    assert_eq!(err, "error: application \"manual\" already exists");
    assert_eq!(
        env.run(&["app", "create", "-f", &file, "--upsert"]).await.0,
        0
    );

    // The diff worker's verdict for one app.
    let status = env.bus.kv(Bucket::AppStatus).await.unwrap();
    let doc = serde_json::json!({
        "sync": {"status": "OutOfSync", "revision": "abc123"},
        "health": {"status": "Healthy"},
        "conditions": [{"type": "SyncError", "message": "boom"}],
        "resources": [{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "guestbook",
                       "name": "guestbook-ui", "status": "OutOfSync", "health": {"status": "Healthy"}}],
    });
    status
        .put(
            subject_token("guestbook"),
            serde_json::to_vec(&doc).unwrap().into(),
        )
        .await
        .unwrap();

    let (code, out, _) = env.run(&["app", "list"]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "CLUSTER",
            "NAMESPACE",
            "PROJECT",
            "STATUS",
            "HEALTH",
            "SYNCPOLICY",
            "CONDITIONS",
            "REPO",
            "PATH",
            "TARGET"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "guestbook",
            "https://kubernetes.default.svc",
            "guestbook",
            "default",
            "OutOfSync",
            "Healthy",
            "Auto-Prune",
            "SyncError(1)",
            "https://github.com/argoproj/argocd-example-apps.git",
            "guestbook",
            "HEAD"
        ]
    );
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(row[4..8], ["Unknown", "Unknown", "Manual", "<none>"]);
    // Columns line up: every cell starts where its header does.
    let status_col = lines[0].find("STATUS").unwrap();
    assert_eq!(&lines[1][status_col..status_col + 9], "OutOfSync");

    let (_, out, _) = env
        .run(&["app", "list", "--sync-status", "OutOfSync", "-o", "name"])
        .await;
    assert_eq!(out, "guestbook\n");
    let (_, out, _) = env
        .run(&["app", "list", "--health-status", "Unknown", "-o", "name"])
        .await;
    assert_eq!(out, "manual\n");
    let (_, out, _) = env.run(&["app", "list", "-o", "json"]).await;
    let items: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2);

    let (code, out, _) = env.run(&["app", "get", "guestbook"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("Name:               guestbook\n"), "{out}");
    assert!(
        out.contains("Sync Status:        OutOfSync from HEAD (abc123)\n"),
        "{out}"
    );
    assert!(out.contains("Health Status:      Healthy\n"), "{out}");
    assert!(out.contains("Deployment  guestbook  guestbook-ui"), "{out}");
    let (_, out, _) = env.run(&["app", "get", "guestbook", "-o", "yaml"]).await;
    assert!(
        out.contains("repoURL: https://github.com/argoproj/argocd-example-apps.git"),
        "{out}"
    );

    let (code, _, err) = env.run(&["app", "get", "nope"]).await;
    assert_eq!(code, 1);
    assert_eq!(err, "error: application \"nope\" not found");

    let (code, out, _) = env
        .run(&["app", "delete", "manual", "--cascade=false"])
        .await;
    assert_eq!((code, out.as_str()), (0, "application 'manual' deleted\n"));
    let (_, out, _) = env.run(&["app", "list", "-o", "name"]).await;
    assert_eq!(out, "guestbook\n");
}

#[tokio::test]
async fn invalid_manifest_and_unreachable_server_are_one_clear_error() {
    let env = Env::start().await;
    let file = env.write(
        "bad.yaml",
        &app_yaml("bad", false).replace("  project: default\n", ""),
    );
    let (code, _, err) = env.run(&["app", "create", "-f", &file]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error: invalid application:"), "{err}");
    assert!(err.contains("spec.project: required"), "{err}");

    let (code, _, err) = env.run(&["app", "create", "-f", "/nonexistent.yaml"]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error: reading /nonexistent.yaml"), "{err}");

    // A diff that cannot be computed (no renderer or git watcher) exits 2.
    let file = env.write("ok.yaml", &app_yaml("ok", false));
    env.run(&["app", "create", "-f", &file]).await;
    let (code, _, err) = env.run(&["app", "diff", "ok"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: no git watcher is running"), "{err}");

    let cli = Cli::try_parse_from(["gitfleet", "--server", "127.0.0.1:1", "app", "list"]).unwrap();
    let err = gitfleet::run(&cli, &mut Vec::new()).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot reach the gitfleet server at 127.0.0.1:1"),
        "{err}"
    );

    let cli = Cli::try_parse_from(["gitfleet", "up", "--nats-url", "not a url"]).unwrap();
    let err = gitfleet::run(&cli, &mut Vec::new()).await.unwrap_err();
    assert!(err.to_string().starts_with("connecting to nats"), "{err}");
    assert_eq!(cli.error_exit_code(), 1);
}

#[tokio::test]
async fn cluster_add_from_a_cluster_sim_kubeconfig() {
    let env = Env::start().await;
    let sim = cluster_sim::Sim::start(cluster_sim::SimConfig {
        clusters: 2,
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let kubeconfig_text = sim.kubeconfig();
    let kubeconfig = env.write("kubeconfig", &kubeconfig_text);
    let parsed: serde_json::Value = serde_yaml_ng::from_str(&kubeconfig_text).unwrap();
    let token = parsed["users"][1]["user"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let ca = parsed["clusters"][1]["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, out, err) = env
        .run(&["cluster", "add", "c1", "--kubeconfig", &kubeconfig])
        .await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, format!("Cluster '{}' added\n", sim.url(1)));
    let (code, _, _) = env
        .run(&[
            "cluster",
            "add",
            "c0",
            "--kubeconfig",
            &kubeconfig,
            "--in-cluster",
        ])
        .await;
    assert_eq!(code, 0);

    // Stored with its credentials for the executor, sealed at rest ...
    let kv = env.bus.kv(Bucket::Clusters).await.unwrap();
    let raw = kv.get(subject_token("c1")).await.unwrap().unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains(token.as_str()),
        "the token is in clear in KV"
    );
    let stored: serde_json::Value = env
        .bus
        .decode_document(Bucket::Clusters, "c1", &raw)
        .unwrap();
    assert_eq!(stored["server"], sim.url(1));
    assert_eq!(stored["config"]["bearerToken"], token.as_str());
    assert_eq!(stored["config"]["tlsClientConfig"]["caData"], ca.as_str());
    assert!(kv.get(subject_token("in-cluster")).await.unwrap().is_some());

    // ... and never shown.
    let (code, out, _) = env.run(&["cluster", "list"]).await;
    assert_eq!(code, 0);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["SERVER", "NAME", "PROJECT"]);
    assert_eq!(lines[1], [sim.url(1).as_str(), "c1"]);
    assert_eq!(lines[2], [sim.url(0).as_str(), "in-cluster"]);
    let (_, json, _) = env.run(&["cluster", "list", "-o", "json"]).await;
    assert!(!json.contains(&token) && !out.contains(&token));

    let (code, _, err) = env
        .run(&["cluster", "add", "c9", "--kubeconfig", &kubeconfig])
        .await;
    assert_eq!(code, 1);
    assert!(err.ends_with("context \"c9\" not found"), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn repo_add_and_list_hide_the_password() {
    let env = Env::start().await;
    let (code, out, _) = env
        .run(&[
            "repo",
            "add",
            "https://git.example.com/org/config.git",
            "--username",
            "bot",
            "--password",
            "pw-S3CRET",
        ])
        .await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "Repository 'https://git.example.com/org/config.git' added\n"
        )
    );
    let (code, out, _) = env.run(&["repo", "list"]).await;
    assert_eq!(code, 0);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["TYPE", "NAME", "REPO", "INSECURE", "CREDS", "PROJECT"]
    );
    assert_eq!(
        lines[1],
        [
            "git",
            "https://git.example.com/org/config.git",
            "false",
            "true"
        ]
    );
    let (_, json, _) = env.run(&["repo", "list", "-o", "json"]).await;
    assert!(!json.contains("pw-S3CRET"));
}

/// A bus request whose answer is "not found" (a real git watcher asked for a branch the
/// repository lacks) reaches the CLI as NotFound with one line naming the revision, not as
/// Unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_the_repository_lacks_is_not_found_in_one_line() {
    let env = Env::start().await;
    let upstream = gitfleet_gitkit::Upstream::new();
    upstream.write(
        "guestbook/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    );
    upstream.commit("first");
    upstream.push_all();
    let repo = format!("file://{}", upstream.bare().display());
    let mirrors = tempfile::tempdir().unwrap();
    let watcher = git_watcher::start(
        git_watcher::Config::new(mirrors.path()).allowing_local_repositories(),
        env.bus.clone(),
        env.shutdown.clone(),
    )
    .await
    .unwrap();
    let _watcher = tokio::spawn(watcher.wait());
    let yaml = app_yaml("gone", false)
        .replace("https://github.com/argoproj/argocd-example-apps.git", &repo)
        .replace("targetRevision: HEAD", "targetRevision: no-such-branch");
    let file = env.write("gone.yaml", &yaml);
    assert_eq!(env.run(&["app", "create", "-f", &file]).await.0, 0);

    let cli =
        Cli::try_parse_from(["gitfleet", "--server", &env.server, "app", "diff", "gone"]).unwrap();
    let err = gitfleet::run(&cli, &mut Vec::new()).await.unwrap_err();
    match &err {
        gitfleet::Error::Rpc(status) => {
            assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}")
        }
        other => panic!("not an rpc error: {other:?}"),
    }
    let line = format!("error: {err}");
    assert!(
        line.starts_with(&format!(
            "error: revision \"no-such-branch\" not found in {repo}"
        )),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line}");
}

/// `proj` as `argocd proj`: the default project exists; a project made from flags refuses
/// an app from another repository or to another destination, naming the rule; edits widen
/// it; a project in use cannot be deleted; a project edit that would strand an app's
/// destination is refused.
#[tokio::test]
async fn projects_refuse_what_they_do_not_permit() {
    let env = Env::start().await;
    let (code, out, err) = env.run(&["proj", "list", "-o", "name"]).await;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "default\n", ""));

    let repo = "https://github.com/argoproj/argocd-example-apps.git";
    let (code, out, err) = env
        .run(&[
            "proj",
            "create",
            "team",
            "--src",
            "https://github.com/team/*",
            "--dest",
            "https://kubernetes.default.svc,team-*",
        ])
        .await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "project 'team' created\n", "")
    );

    let team_app = |name: &str| app_yaml(name, false).replace("project: default", "project: team");
    let file = env.write("team-a.yaml", &team_app("team-a"));
    let (code, _, err) = env.run(&["app", "create", "-f", &file]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "error: application spec for team-a is invalid: InvalidSpecError: application repo {repo} is not permitted in project 'team' (not allowed by spec.sourceRepos)"
        )
    );

    let (code, out, _) = env.run(&["proj", "add-source", "team", repo]).await;
    assert_eq!((code, out.as_str()), (0, "project 'team' updated\n"));
    assert_eq!(env.run(&["app", "create", "-f", &file]).await.0, 0);

    // Destination namespace `other` is not team-*.
    let file = env.write("other.yaml", &team_app("other"));
    let (code, _, err) = env.run(&["app", "create", "-f", &file]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: application spec for other is invalid: InvalidSpecError: application destination server 'https://kubernetes.default.svc' and namespace 'other' do not match any of the allowed destinations in project 'team' (spec.destinations)"
    );
    // By cluster name, `in-cluster` is the same cluster.
    let (code, _, err) = env
        .run(&[
            "proj",
            "add-destination",
            "team",
            "in-cluster",
            "other",
            "--name",
        ])
        .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, _, err) = env.run(&["app", "create", "-f", &file]).await;
    assert_eq!((code, err.as_str()), (0, ""));

    // An app of a project that does not exist.
    let file = env.write(
        "ghost.yaml",
        &app_yaml("ghost", false).replace("project: default", "project: ghost"),
    );
    let (_, _, err) = env.run(&["app", "create", "-f", &file]).await;
    assert_eq!(
        err,
        "error: application spec for ghost is invalid: InvalidSpecError: application references project ghost which does not exist"
    );

    // Taking the destination away from an app that uses it is refused.
    let (code, _, err) = env
        .run(&["proj", "remove-destination", "team", "in-cluster", "other"])
        .await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: as a result of project update 0 applications source became invalid and 1 applications destination became invalid"
    );

    let (code, _, err) = env
        .run(&["proj", "allow-cluster-resource", "team", "", "Namespace"])
        .await;
    assert_eq!((code, err.as_str()), (0, ""));
    env.run(&[
        "proj",
        "deny-namespace-resource",
        "team",
        "",
        "ResourceQuota",
    ])
    .await;
    let (_, out, _) = env.run(&["proj", "get", "team"]).await;
    assert!(
        out.contains("Allowed Cluster Resources:    /Namespace\n"),
        "{out}"
    );
    assert!(
        out.contains("Denied Namespaced Resources:  /ResourceQuota\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Repositories:                 https://github.com/team/*, {repo}\n"
        )),
        "{out}"
    );

    let (code, _, err) = env.run(&["proj", "delete", "team"]).await;
    assert_eq!(code, 1);
    assert_eq!(err, "error: project is referenced by 2 applications");
    let (code, _, err) = env.run(&["proj", "create", "-f", &env.write("bad.yaml", "kind: AppProject\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: bad}\nspec:\n  sourceRepos: ['']\n")]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("spec.sourceRepos[0]: must not be empty"),
        "{err}"
    );
}

/// The initial admin password, as `gitfleet admin initial-password` reads it, once the
/// gateway (which makes it before it serves) has started.
async fn initial_password(bus: &Bus) -> String {
    let kv = bus.kv(Bucket::Settings).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Some(body) = kv
            .get(subject_token("argocd-initial-admin-secret"))
            .await
            .unwrap()
        {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never made the admin password"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let data: std::collections::BTreeMap<String, String> = bus
        .decode_document(Bucket::Settings, "argocd-initial-admin-secret", &body)
        .unwrap();
    data["password"].clone()
}

/// The front door through the CLI: nothing without a session; `login` with the generated
/// admin password keeps one; `can-i` answers from the policy; with the seed applied
/// (`examples/declarative`: the `platform` project and the RBAC CSV), a token of the role
/// `app-developer` sees and syncs only `platform/*` apps and nothing else, and stops
/// working once deleted; `logout` forgets the session; wrong passwords are rate limited.
#[tokio::test]
async fn sessions_policies_and_project_tokens() {
    // A long chain of awaits: its state lives on the heap, not the test thread's stack.
    Box::pin(sessions_policies_and_project_tokens_run()).await;
}

async fn sessions_policies_and_project_tokens_run() {
    let env = Env::start_with(false).await;
    let (code, _, err) = env.run(&["app", "list"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: no session: log in first (gitfleet login), or pass --auth-token"
    );

    let password = initial_password(&env.bus).await;
    let (code, _, err) = env
        .run(&["login", "--username", "admin", "--password", "wrong"])
        .await;
    assert_eq!(
        (code, err.as_str()),
        (1, "error: invalid username or password")
    );
    let (code, out, err) = env.run(&["login", "--password", &password]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "'admin:login' logged in successfully\nContext '{}' updated\n",
            env.server
        )
    );
    let (_, out, _) = env.run(&["account", "get-user-info"]).await;
    assert!(out.contains("Logged In: true\nUsername: admin\n"), "{out}");
    let (_, out, _) = env
        .run(&["account", "can-i", "delete", "clusters", "https://x"])
        .await;
    assert_eq!(out, "yes\n");

    // The seed (Argo CD's declarative setup: the platform project and the RBAC CSV) and
    // two apps, one in the project.
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/declarative");
    let (code, out, err) = env.run(&["apply", "-f", seed]).await;
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(out.contains("AppProject platform created\n"), "{out}");
    let platform_app = app_yaml("web", false)
        .replace("project: default", "project: platform")
        .replace(
            "https://github.com/argoproj/argocd-example-apps.git",
            "https://github.com/myorg/k8s-config",
        )
        .replace("namespace: web", "namespace: production");
    let (code, _, err) = env
        .run(&["app", "create", "-f", &env.write("web.yaml", &platform_app)])
        .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let file = env.write("other.yaml", &app_yaml("other", false));
    assert_eq!(env.run(&["app", "create", "-f", &file]).await.0, 0);

    let (code, token, err) = env
        .run(&[
            "proj",
            "role",
            "create-token",
            "platform",
            "app-developer",
            "--id",
            "ci",
            "-t",
        ])
        .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let token = token.trim().to_string();
    let as_role = |args: &[&str]| {
        let mut argv = vec!["--auth-token", token.as_str()];
        argv.extend_from_slice(args);
        let argv: Vec<String> = argv.into_iter().map(String::from).collect();
        let env = &env;
        async move {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            env.run(&argv).await
        }
    };
    let (_, out, _) = as_role(&["app", "list", "-o", "name"]).await;
    assert_eq!(out, "web\n");
    let (_, out, _) = as_role(&["account", "can-i", "sync", "applications", "platform/web"]).await;
    assert_eq!(out, "yes\n");
    let (_, out, _) =
        as_role(&["account", "can-i", "delete", "applications", "platform/web"]).await;
    assert_eq!(out, "no\n");
    let (code, _, err) = as_role(&["app", "get", "other"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: permission denied: applications, get, default/other, sub: proj:platform:app-developer"
    );
    let (_, _, err) = as_role(&["app", "delete", "web"]).await;
    assert_eq!(
        err,
        "error: permission denied: applications, delete, platform/web, sub: proj:platform:app-developer"
    );
    let (_, _, err) = as_role(&["proj", "delete", "platform"]).await;
    assert!(
        err.starts_with("error: permission denied: projects, delete, platform"),
        "{err}"
    );
    let (_, out, _) = as_role(&["cluster", "list", "-o", "json"]).await;
    assert_eq!(out.trim(), "[]");

    let (code, _, err) = env
        .run(&[
            "proj",
            "role",
            "delete-token",
            "platform",
            "app-developer",
            "ci",
        ])
        .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, _, err) = as_role(&["app", "list"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: invalid session: the token of proj:platform:app-developer has been revoked"
    );

    // A new password: the session from before stops working; the initial one is gone.
    let (code, out, err) = env
        .run(&[
            "account",
            "update-password",
            "--current-password",
            &password,
            "--new-password",
            "n3w-passw0rd",
        ])
        .await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "Password updated\n", "")
    );
    let (code, _, err) = env.run(&["app", "list"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: invalid session: the account's password changed after it was issued"
    );
    let (code, _, _) = env.run(&["login", "--password", "n3w-passw0rd"]).await;
    assert_eq!(code, 0);
    assert_eq!(env.run(&["app", "list"]).await.0, 0);
    let kv = env.bus.kv(Bucket::Settings).await.unwrap();
    assert!(
        kv.get(subject_token("argocd-initial-admin-secret"))
            .await
            .unwrap()
            .is_none()
    );
    let password = "n3w-passw0rd".to_string();
    let config = std::fs::read_to_string(env.dir.path().join("cli-config")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let session = config["contexts"][env.server.as_str()]["auth-token"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, out, _) = env.run(&["logout"]).await;
    assert_eq!(
        (code, out),
        (0, format!("Logged out from '{}'\n", env.server))
    );
    assert_eq!(env.run(&["app", "list"]).await.0, 1);
    // The session was ended on the server too: its token, kept elsewhere, is refused.
    let (code, _, err) = env.run(&["app", "list", "--auth-token", &session]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "error: token is revoked, please re-login")
    );

    // Five wrong passwords lock the account for the window, the right one included.
    for _ in 0..5 {
        env.run(&["login", "--password", "nope"]).await;
    }
    let (code, _, err) = env.run(&["login", "--password", &password]).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: too many failed login attempts for admin: try again in"),
        "{err}"
    );
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../crates/model/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const RBAC_CM: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-rbac-cm
  namespace: argocd
data:
  policy.default: role:readonly
  policy.csv: |
    p, role:platform-admin, applications, *, platform/*, allow
    g, myorg:platform-admins, role:platform-admin
  policy.matchMode: glob
";

const ARGOCD_CM: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
data:
  url: https://argocd.example.com
  timeout.reconciliation: 180s
";

/// Argo CD's declarative setup, applied and exported: a directory of Argo CD's own
/// manifests (settings, a project, a cluster Secret, repository Secrets, an Application,
/// and one document gitfleet cannot take) applies every good object, in the order they
/// rely on each other, reporting what is stored but not acted on; applying again changes
/// nothing; `export` writes it all back out, and that output applied to an empty control
/// plane exports the same again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarative_setup_applies_and_exports_round_trip() {
    let env = Env::start().await;
    let dir = env.dir.path().join("setup");
    std::fs::create_dir(&dir).unwrap();
    // Named so the Application comes first: the gateway orders them, not the files.
    for (name, text) in [
        ("a-app.yaml", fixture("application-api-service.yaml")),
        ("b-project.yaml", fixture("appproject-platform.yaml")),
        ("c-cluster.yaml", fixture("cluster-secret.yaml")),
        ("d-repos.yaml", fixture("repository-secrets.yaml")),
        ("e-settings.yaml", format!("{RBAC_CM}---\n{ARGOCD_CM}")),
        // A generator's token (`tokenRef`), as Argo CD requires it labelled.
        (
            "h-token.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: github-token\n  namespace: argocd\n  labels: {app.kubernetes.io/part-of: argocd}\nstringData: {token: ghp-generator-token}\n".to_string(),
        ),
        ("g-appset.yaml", fixture("applicationset-list.yaml")),
        (
            "f-bad.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: nope}\n".to_string(),
        ),
        ("notes.txt", "not a manifest".to_string()),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let dir_arg = dir.display().to_string();
    let (code, out, err) = env.run(&["apply", "-f", &dir_arg]).await;
    assert_eq!((code, err.as_str()), (1, ""), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{dir_arg}/f-bad.yaml, document at line 1 failed: unsupported kind \"Service\" (apiVersion v1): accepted are Application, AppProject and ApplicationSet (argoproj.io/v1alpha1), v1 Secrets labelled argocd.argoproj.io/secret-type: cluster, repository or repo-creds, and Argo CD's settings ConfigMaps and Secrets"
        )
    );
    assert!(out.contains("ConfigMap argocd-rbac-cm created\n  warning: stored, but gitfleet does not act on these keys yet: policy.matchMode\n"), "{out}");
    assert!(out.contains("ConfigMap argocd-cm created\n  warning: stored, but gitfleet does not act on these keys yet: timeout.reconciliation, url\n"), "{out}");
    assert!(out.contains("AppProject platform created\n"), "{out}");
    assert!(
        out.contains("Cluster production-us-east created\n"),
        "{out}"
    );
    assert!(out.contains("Application api-service created\n"), "{out}");
    assert!(
        out.ends_with("ApplicationSet microservices created\n"),
        "{out}"
    );
    assert!(!out.contains("super-secret-token"), "{out}");
    assert!(!out.contains("ghp-generator-token"), "{out}");
    assert!(out.contains("Secret github-token created\n"), "{out}");

    // As if created one by one: the app passed its project's rules.
    let (code, out, _) = env.run(&["app", "get", "api-service", "-o", "json"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("\"project\": \"platform\""), "{out}");
    let (_, out, _) = env.run(&["cluster", "list"]).await;
    assert!(
        out.contains("https://prod-us-east.example.com:6443  production-us-east  platform"),
        "{out}"
    );
    let (_, out, _) = env.run(&["repo", "list", "-o", "json"]).await;
    assert!(!out.contains("password\":"), "{out}");

    // Again: nothing changes.
    let (_, out, _) = env.run(&["apply", "-f", &dir_arg]).await;
    assert_eq!(out.matches(" unchanged\n").count(), 9, "{out}");

    // A bad policy is refused, its line named; the stored one stays.
    let bad = env.write("bad-rbac.yaml", &RBAC_CM.replace("allow\n", "\n"));
    let (code, out, _) = env.run(&["apply", "-f", &bad]).await;
    assert_eq!(code, 1);
    assert!(out.contains("ConfigMap argocd-rbac-cm failed: argocd-rbac-cm policy.csv line 1: the effect must be allow or deny"), "{out}");

    let export = |bus: Bus| async move {
        let url = testkit::shared().url();
        let prefix = bus.topology.prefix().to_string();
        let cli = Cli::try_parse_from([
            "gitfleet",
            "export",
            "--nats-url",
            &url,
            "--prefix",
            &prefix,
            "--credentials-key-file",
            &testkit::credentials_key_file().display().to_string(),
        ])
        .unwrap();
        let mut out = Vec::new();
        gitfleet::run(&cli, &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    };
    let first = export(env.bus.clone()).await;
    assert!(
        first.contains("super-secret-token"),
        "export carries credentials"
    );
    assert!(first.contains("policy.matchMode: glob"), "{first}");
    assert!(first.contains("name: github-token"), "{first}");
    assert!(
        first.contains("ghp-generator-token"),
        "export carries the generator's token"
    );

    let other = Env::start().await;
    let file = other.write("export.yaml", &first);
    let (code, out, err) = other.run(&["apply", "-f", &file]).await;
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let second = export(other.bus.clone()).await;
    assert_eq!(first, second);
}

/// Local accounts of `argocd-cm` (`accounts.<name>: login`): admin sets a password, the
/// account logs in with it, acts as its policy says, changes its own password (its older
/// session stops working), and a disabled account's session is refused.
#[tokio::test]
async fn local_accounts_log_in_and_are_disabled() {
    Box::pin(local_accounts_run()).await;
}

async fn local_accounts_run() {
    let env = Env::start_with(false).await;
    let admin_password = initial_password(&env.bus).await;
    assert_eq!(
        env.run(&["login", "--password", &admin_password]).await.0,
        0
    );
    let settings = |enabled: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: argocd-cm}}\ndata:\n  accounts.alice: login, apiKey\n  accounts.alice.enabled: \"{enabled}\"\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: argocd-rbac-cm}}\ndata:\n  policy.csv: \"p, alice, applications, get, */*, allow\"\n"
        )
    };
    let file = env.write("accounts.yaml", &settings("true"));
    let (code, out, _) = env.run(&["apply", "-f", &file]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "accounts are acted on: {out}");
    // The gateway reads argocd-cm through a watch: the account appears in a moment.
    let set = |current: String, new: &'static str| {
        let env = &env;
        async move {
            env.run(&[
                "account",
                "update-password",
                "--account",
                "alice",
                "--current-password",
                &current,
                "--new-password",
                new,
            ])
            .await
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _, err) = set(admin_password.clone(), "alice-pass-1").await;
        if code == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{err}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (code, _, err) = env
        .run(&["login", "--username", "alice", "--password", "alice-pass-1"])
        .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let (_, out, _) = env.run(&["account", "get-user-info"]).await;
    assert!(out.contains("Username: alice\n"), "{out}");
    let (_, out, _) = env
        .run(&["account", "can-i", "get", "applications", "x/y"])
        .await;
    assert_eq!(out, "yes\n");
    let (_, out, _) = env
        .run(&["account", "can-i", "delete", "applications", "x/y"])
        .await;
    assert_eq!(out, "no\n");
    let (code, _, err) = env.run(&["proj", "delete", "default"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: permission denied: projects, delete, default, sub: alice"
    );

    // Her own password: the session from before ends.
    let (code, _, err) = set("alice-pass-1".into(), "alice-pass-2").await;
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, _, err) = env.run(&["app", "list"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: invalid session: the account's password changed after it was issued"
    );
    let (code, _, _) = env
        .run(&["login", "--username", "alice", "--password", "alice-pass-1"])
        .await;
    assert_eq!(code, 1);
    assert_eq!(
        env.run(&["login", "--username", "alice", "--password", "alice-pass-2"])
            .await
            .0,
        0
    );
    let config = std::fs::read_to_string(env.dir.path().join("cli-config")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let alice_token = config["contexts"][env.server.as_str()]["auth-token"]
        .as_str()
        .unwrap()
        .to_string();
    // An API token of her own (apiKey): works on its own, and not once deleted.
    let (code, token, err) = env
        .run(&[
            "account",
            "generate-token",
            "--expires-in",
            "1h",
            "--id",
            "ci",
        ])
        .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let token = token.trim().to_owned();
    let (code, out, _) = env
        .run(&["account", "get-user-info", "--auth-token", &token])
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("Username: alice\n"), "{out}");
    let (code, out, _) = env.run(&["account", "delete-token", "ci"]).await;
    assert_eq!((code, out.as_str()), (0, "Token ci deleted\n"));
    let (code, _, err) = env
        .run(&["account", "get-user-info", "--auth-token", &token])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("no such API token"), "{err}");
    let (code, _, err) = env
        .run(&["account", "generate-token", "--expires-in", "soon"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("--expires-in \"soon\""), "{err}");

    let (code, _, err) = env
        .run(&["login", "--username", "bob", "--password", "whatever"])
        .await;
    assert_eq!(
        (code, err.as_str()),
        (1, "error: invalid username or password")
    );

    // Disabled: her session is refused, and so is logging in.
    assert_eq!(
        env.run(&["login", "--password", &admin_password]).await.0,
        0
    );
    let file = env.write("disabled.yaml", &settings("false"));
    assert_eq!(env.run(&["apply", "-f", &file]).await.0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _, err) = env
            .run(&["--auth-token", &alice_token, "app", "list"])
            .await;
        if code == 1 {
            assert_eq!(
                err,
                "error: invalid session: account alice is disabled or gone"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "alice still works");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, _, _) = env
        .run(&["login", "--username", "alice", "--password", "alice-pass-2"])
        .await;
    assert_eq!(code, 1);
}

/// The audit trail: logins (failed and succeeded), changes allowed and denied, each with
/// who, what and from where, read back with `gitfleet admin audit`; no password in it.
#[tokio::test]
async fn the_audit_trail_records_who_did_what() {
    Box::pin(audit_run()).await;
}

async fn audit_run() {
    let env = Env::start_with(false).await;
    let password = initial_password(&env.bus).await;
    env.run(&["login", "--password", "not-the-password"]).await;
    assert_eq!(env.run(&["login", "--password", &password]).await.0, 0);
    let file = env.write("a.yaml", &app_yaml("audited", false));
    assert_eq!(env.run(&["app", "create", "-f", &file]).await.0, 0);
    // A project token may not delete the project it belongs to.
    let project = "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p}\nspec:\n  sourceRepos: ['*']\n  roles: [{name: r}]\n";
    let file = env.write("p.yaml", project);
    assert_eq!(env.run(&["proj", "create", "-f", &file]).await.0, 0);
    let (_, token, _) = env
        .run(&["proj", "role", "create-token", "p", "r", "-t"])
        .await;
    let (code, _, _) = env
        .run(&["--auth-token", token.trim(), "proj", "delete", "p"])
        .await;
    assert_eq!(code, 1);

    let url = testkit::shared().url();
    let prefix = env.bus.topology.prefix().to_string();
    let (code, out, err) = env
        .run(&["admin", "audit", "--nats-url", &url, "--prefix", &prefix])
        .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let lines: Vec<&str> = out.lines().collect();
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{out}"))
            .to_string()
    };
    assert!(
        find("admin create login admin from 127.0.0.1:")
            .ends_with(": failed: invalid username or password")
    );
    assert!(find("admin create login admin from 127.0.0.1:").len() > 20);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("admin create login admin") && l.ends_with(": succeeded")),
        "{out}"
    );
    assert!(
        find("admin create applications default/audited from 127.0.0.1:").ends_with(": allowed")
    );
    assert!(find("proj:p:r delete projects p from 127.0.0.1:").ends_with(": denied"));
    assert!(!out.contains(&password), "a password in the audit trail");
    assert!(!out.contains(token.trim()), "a token in the audit trail");
}
