//! Charts from a Helm repository served on localhost (an `index.yaml` and archives over
//! HTTP, basic auth): the git watcher resolves the version constraint to the newest match
//! and hands over the archive, checked against the index's digest; the renderer unpacks it
//! and renders it with the app's values as a chart in Git. Unknown charts, versions no
//! repository has, a tampered archive and a wrong password are errors that say so, with
//! no secret in them.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use common::write;
use gitfleet_bus::{Bucket, Bus};
use gitfleet_messages::{
    ErrorCode, RenderRequest, Rendered, Reply, ResolveRequest, Resolved, ServiceError,
};
use gitfleet_model::{ApplicationSource, HelmParameter, HelmSource};
use tokio_util::sync::CancellationToken;

const USER: &str = "charts";
const PASSWORD: &str = "s3cret-repo-password";

/// A packaged chart `web` at `version` whose ConfigMap says which version it is.
fn package(version: &str) -> Vec<u8> {
    package_named("web", version)
}

fn package_named(name: &str, version: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "web/Chart.yaml",
        &format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    );
    write(dir.path(), "web/values.yaml", "color: red\n");
    write(dir.path(), "web/values-prod.yaml", "color: blue\n");
    write(
        dir.path(),
        "web/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  version: {{ .Chart.Version | quote }}\n  color: {{ .Values.color }}\n  size: {{ .Values.size | default \"m\" | quote }}\n",
    );
    let archive = dir.path().join("web.tgz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .arg("web")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(archive).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&file).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// Serves `files` under `/charts/`, to basic auth with [`USER`] and [`PASSWORD`] only.
async fn serve(files: Files) -> String {
    async fn file(
        State(files): State<Files>,
        headers: HeaderMap,
        UrlPath(name): UrlPath<String>,
    ) -> Result<Vec<u8>, StatusCode> {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Err(StatusCode::UNAUTHORIZED);
        }
        files
            .lock()
            .unwrap()
            .get(&name)
            .cloned()
            .ok_or(StatusCode::NOT_FOUND)
    }
    let app = axum::Router::new()
        .route("/charts/{name}", get(file))
        .with_state(files);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/charts")
}

/// The `Authorization` headers an open server (another host than the repository's)
/// received, one per request.
type Seen = Arc<Mutex<Vec<Option<String>>>>;

/// Serves `files` under `/cdn/` to anyone, recording what each request authorised with.
async fn serve_open(files: Files, seen: Seen) -> String {
    async fn file(
        State((files, seen)): State<(Files, Seen)>,
        headers: HeaderMap,
        UrlPath(name): UrlPath<String>,
    ) -> Result<Vec<u8>, StatusCode> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        seen.lock().unwrap().push(auth);
        files
            .lock()
            .unwrap()
            .get(&name)
            .cloned()
            .ok_or(StatusCode::NOT_FOUND)
    }
    let app = axum::Router::new()
        .route("/cdn/{name}", get(file))
        .with_state((files, seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/cdn")
}

struct Fixture {
    _dir: tempfile::TempDir,
    bus: Bus,
    repo: String,
    /// What the Helm repository serves.
    files: Files,
    /// What the archives' other host (chart `cdn`) was sent.
    cdn_seen: Seen,
    shutdown: CancellationToken,
}

impl Fixture {
    async fn start() -> Fixture {
        let mut files = HashMap::new();
        let mut index = String::from("apiVersion: v1\nentries:\n  cdn:\n");
        // Chart `cdn`: its archives on another host, as index.yaml files may say.
        let cdn_files: Files = Arc::default();
        let cdn_seen: Seen = Arc::default();
        let cdn = serve_open(cdn_files.clone(), cdn_seen.clone()).await;

        for version in ["1.0.0", "1.1.0"] {
            let archive = package_named("cdn", version);
            index.push_str(&format!(
                "  - name: cdn\n    version: {version}\n    digest: {}\n    urls: [{cdn}/cdn-{version}.tgz]\n",
                sha256(&archive)
            ));
            cdn_files
                .lock()
                .unwrap()
                .insert(format!("cdn-{version}.tgz"), archive);
        }
        // `web` last: a test appends versions to it.
        index.push_str("  web:\n");
        for version in ["1.0.0", "1.1.0", "2.0.0-rc.1"] {
            let archive = package(version);
            index.push_str(&format!(
                "  - name: web\n    version: {version}\n    digest: {}\n    urls: [web-{version}.tgz]\n",
                sha256(&archive)
            ));
            files.insert(format!("web-{version}.tgz"), archive);
        }
        // Listed with the digest of another archive: tampered with after indexing.
        index.push_str(&format!(
            "  - name: web\n    version: 0.9.0\n    digest: {}\n    urls: [web-0.9.0.tgz]\n",
            sha256(b"something else")
        ));
        files.insert("web-0.9.0.tgz".into(), package("0.9.0"));
        files.insert("index.yaml".into(), index.into_bytes());
        let files: Files = Arc::new(Mutex::new(files));
        let repo = serve(files.clone()).await;

        let dir = tempfile::tempdir().unwrap();
        // Local repositories not allowed: one test asks for one.
        let (bus, shutdown) = common::services(
            git_watcher::Config::new(dir.path().join("mirrors")),
            renderer::Config::default(),
        )
        .await;
        // The repository's credentials, as the declarative setup Secret gives them.
        let repositories = bus.kv(Bucket::Repositories).await.unwrap();
        let entry = serde_json::json!({
            "repo": repo, "type": "helm", "name": "charts",
            "username": USER, "password": PASSWORD,
        });
        repositories
            .put("charts", serde_json::to_vec(&entry).unwrap().into())
            .await
            .unwrap();
        let f = Fixture {
            _dir: dir,
            bus,
            repo,
            files,
            cdn_seen,
            shutdown,
        };
        // The watcher reads the credentials from the bucket on its own time.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Err(err) = f.resolve("web", "*").await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never authorised: {err:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        f
    }

    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        subject: String,
        body: &impl serde::Serialize,
    ) -> Reply<T> {
        common::ask(&self.bus, subject, body).await
    }

    async fn resolve(&self, chart: &str, constraint: &str) -> Result<String, ServiceError> {
        let request = ResolveRequest {
            repo: self.repo.clone(),
            revision: constraint.into(),
            chart: chart.into(),
        };
        let reply: Reply<Resolved> = self
            .ask(self.bus.topology.git_resolve_subject(), &request)
            .await;
        reply.into_result().map(|r| r.commit)
    }

    async fn render(
        &self,
        version: &str,
        helm: Option<HelmSource>,
    ) -> Result<Rendered, ServiceError> {
        self.render_chart("web", version, helm).await
    }

    async fn render_chart(
        &self,
        chart: &str,
        version: &str,
        helm: Option<HelmSource>,
    ) -> Result<Rendered, ServiceError> {
        let request = RenderRequest {
            repo: self.repo.clone(),
            commit: version.into(),
            source: ApplicationSource {
                repo_url: self.repo.clone(),
                chart: chart.into(),
                target_revision: "^1.0".into(),
                helm,
                ..ApplicationSource::default()
            },
            app_name: "shop".into(),
            namespace: "prod".into(),
            refs: Vec::new(),
            local_files: Vec::new(),
        };
        let reply: Reply<Rendered> = self.ask(self.bus.topology.render_subject(), &request).await;
        reply.into_result()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An index may put archives on another host (a CDN): Helm sends the repository's
/// credentials there only with `--pass-credentials`, which is Argo CD's
/// `helm.passCredentials`. Without it the other host gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_to_another_host_only_with_pass_credentials() {
    use base64::Engine as _;
    let f = Fixture::start().await;
    let rendered = f.render_chart("cdn", "1.0.0", None).await.unwrap();
    assert_eq!(rendered.manifests[0]["data"]["version"], "1.0.0");
    assert_eq!(f.cdn_seen.lock().unwrap().as_slice(), [None]);

    let pass = HelmSource {
        pass_credentials: true,
        ..HelmSource::default()
    };
    let rendered = f.render_chart("cdn", "1.1.0", Some(pass)).await.unwrap();
    assert_eq!(rendered.manifests[0]["data"]["version"], "1.1.0");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    assert_eq!(
        f.cdn_seen.lock().unwrap().as_slice(),
        [None, Some(expected)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_from_a_helm_repository_resolves_and_renders() {
    let f = Fixture::start().await;
    assert_eq!(f.resolve("web", "^1.0").await.unwrap(), "1.1.0");
    assert_eq!(f.resolve("web", "1.0.0").await.unwrap(), "1.0.0");
    assert_eq!(
        f.resolve("web", "").await.unwrap(),
        "1.1.0",
        "newest stable"
    );
    assert_eq!(
        f.resolve("web", ">=2.0.0-rc.0").await.unwrap(),
        "2.0.0-rc.1"
    );

    let helm = HelmSource {
        value_files: vec!["values-prod.yaml".into()],
        parameters: vec![HelmParameter {
            name: "size".into(),
            value: "xl".into(),
            force_string: false,
        }],
        ..HelmSource::default()
    };
    let rendered = f.render("1.1.0", Some(helm)).await.unwrap();
    assert_eq!(
        rendered.manifests,
        [serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop"},
            "data": {"version": "1.1.0", "color": "blue", "size": "xl"},
        })]
    );
    let plain = f.render("1.0.0", None).await.unwrap();
    assert_eq!(plain.manifests[0]["data"]["version"], "1.0.0");
    assert_eq!(plain.manifests[0]["data"]["color"], "red");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_helm_repository_input_is_an_error_saying_so() {
    let f = Fixture::start().await;
    let err = f.resolve("web", "^3.0").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(
        err.message.contains("no version of chart \"web\"")
            && err.message.contains("\"^3.0\"")
            && err.message.contains("newest: 2.0.0-rc.1"),
        "{}",
        err.message
    );
    let err = f.resolve("nope", "*").await.unwrap_err();
    assert_eq!(
        err.message,
        format!("chart \"nope\" not found in Helm repository {}", f.repo)
    );
    let err = f.resolve("web", ">= banana").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid, "{}", err.message);

    let err = f.render("0.9.0", None).await.unwrap_err();
    assert!(err.message.contains("sha256"), "{}", err.message);
    let err = f.render("7.0.0", None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{}", err.message);

    let missing = HelmSource {
        value_files: vec!["values-nope.yaml".into()],
        ..HelmSource::default()
    };
    let err = f.render("1.0.0", Some(missing)).await.unwrap_err();
    assert!(
        err.message
            .contains("chart web 1.0.0: values file \"values-nope.yaml\""),
        "{}",
        err.message
    );

    // A local path as a repository (another app's mirror, the watcher's disk): refused,
    // as this watcher does not allow local repositories.
    let local = ResolveRequest {
        repo: "file:///var/lib/gitfleet/mirrors/abc".into(),
        revision: "HEAD".into(),
        chart: String::new(),
    };
    let reply: Reply<Resolved> = f.ask(f.bus.topology.git_resolve_subject(), &local).await;
    let err = reply.into_result().unwrap_err();
    assert!(
        err.message.contains("local repositories are refused"),
        "{}",
        err.message
    );

    // A wrong password: the repository refuses, and the message holds no secret.
    let repositories = f.bus.kv(Bucket::Repositories).await.unwrap();
    let entry = serde_json::json!({
        "repo": f.repo, "type": "helm", "name": "charts",
        "username": USER, "password": "wrong-password-123",
    });
    repositories
        .put("charts", serde_json::to_vec(&entry).unwrap().into())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let err = loop {
        match f.resolve("web", "^1.0").await {
            Err(err) => break err,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(_) => panic!("the wrong password was never used"),
        }
    };
    assert!(err.message.contains("401"), "{}", err.message);
    for secret in ["wrong-password-123", PASSWORD] {
        assert!(!err.message.contains(secret), "{}", err.message);
    }
}

/// A registry speaking the OCI distribution API for `charts/web`, behind token auth as
/// real registries are (a `Bearer` challenge, a token from the realm for the repository's
/// credentials), with tags served two per page.
struct Registry {
    /// Tag → (manifest, archive).
    charts: HashMap<String, (Vec<u8>, Vec<u8>)>,
    realm: String,
}

const TOKEN: &str = "registry-token-42";

async fn serve_registry(versions: &[&str]) -> String {
    use axum::extract::{Query, RawQuery};
    use axum::response::{IntoResponse, Response};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut charts = HashMap::new();
    for version in versions {
        let archive = package(version);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                       "digest": format!("sha256:{}", sha256(b"{}")), "size": 2},
            "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                        "digest": format!("sha256:{}", sha256(&archive)), "size": archive.len()}],
        });
        charts.insert(
            version.replace('+', "_"),
            (serde_json::to_vec(&manifest).unwrap(), archive),
        );
    }
    let registry = Arc::new(Registry {
        charts,
        realm: format!("http://{addr}/token"),
    });

    async fn token(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        let authorised =
            headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
        if !authorised || q.get("scope").map(String::as_str) != Some("repository:charts/web:pull") {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        axum::Json(serde_json::json!({"token": TOKEN})).into_response()
    }

    async fn v2(
        State(registry): State<Arc<Registry>>,
        headers: HeaderMap,
        UrlPath(rest): UrlPath<String>,
        RawQuery(query): RawQuery,
    ) -> Response {
        if headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(format!("Bearer {TOKEN}").as_str())
        {
            let challenge = format!(
                r#"Bearer realm="{}",service="fixture",scope="repository:charts/web:pull""#,
                registry.realm
            );
            return (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)]).into_response();
        }
        let Some(rest) = rest.strip_prefix("charts/web/") else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if rest == "tags/list" {
            let mut tags: Vec<&String> = registry.charts.keys().collect();
            tags.sort();
            let last = query
                .as_deref()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("last=")));
            let start = last.map_or(0, |l| tags.iter().position(|t| *t == l).unwrap() + 1);
            let page: Vec<&String> = tags.iter().skip(start).take(2).copied().collect();
            let body = axum::Json(serde_json::json!({"name": "charts/web", "tags": page}));
            if start + 2 < tags.len() {
                let link = format!(
                    r#"</v2/charts/web/tags/list?last={}&n=2>; rel="next""#,
                    page.last().unwrap()
                );
                return ([("link", link)], body).into_response();
            }
            return body.into_response();
        }
        if let Some(tag) = rest.strip_prefix("manifests/") {
            return match registry.charts.get(tag) {
                Some((manifest, _)) => (
                    [("content-type", "application/vnd.oci.image.manifest.v1+json")],
                    manifest.clone(),
                )
                    .into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            };
        }
        if let Some(digest) = rest.strip_prefix("blobs/sha256:") {
            return match registry.charts.values().find(|(_, a)| sha256(a) == digest) {
                Some((_, archive)) => archive.clone().into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            };
        }
        StatusCode::NOT_FOUND.into_response()
    }

    let app = axum::Router::new()
        .route("/token", get(token))
        .route("/v2/{*rest}", get(v2))
        .with_state(registry);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("oci://{addr}/charts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_from_an_oci_registry_resolves_and_renders() {
    let mut f = Fixture::start().await;
    let registry = serve_registry(&["0.5.0", "1.0.0", "1.1.0", "1.2.0-rc.1"]).await;
    // Credentials as Argo CD writes an OCI Helm repository: no scheme, enableOCI.
    let repositories = f.bus.kv(Bucket::Repositories).await.unwrap();
    let entry = serde_json::json!({
        "repo": registry.trim_start_matches("oci://"), "type": "helm", "enableOCI": true,
        "name": "registry", "username": USER, "password": PASSWORD,
    });
    repositories
        .put("registry", serde_json::to_vec(&entry).unwrap().into())
        .await
        .unwrap();
    f.repo = registry;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let version = loop {
        match f.resolve("web", "^1.0").await {
            Ok(version) => break version,
            Err(err) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never resolved: {err:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(version, "1.1.0", "the newest match across the tag pages");
    assert_eq!(f.resolve("web", "<1.0").await.unwrap(), "0.5.0");

    let helm = HelmSource {
        values: "size: s\n".into(),
        ..HelmSource::default()
    };
    let rendered = f.render("1.1.0", Some(helm)).await.unwrap();
    assert_eq!(
        rendered.manifests,
        [serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop"},
            "data": {"version": "1.1.0", "color": "red", "size": "s"},
        })]
    );

    let err = f.resolve("web", "^2").await.unwrap_err();
    assert!(
        err.message.contains("newest: 1.2.0-rc.1"),
        "{}",
        err.message
    );
    let err = f.resolve("nope", "*").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{}", err.message);
    let err = f.render("9.9.9", None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{}", err.message);
}

/// A chart in Git whose dependencies come from the Helm repository (`Chart.yaml`'s
/// constraint, or `Chart.lock`'s pin) and from the same Git repository (`file://`), as
/// `helm dependency build` would put them in `charts/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_in_git_takes_its_dependencies_from_the_helm_repository() {
    use gitfleet_gitkit::{GitDaemon, Upstream};
    let f = Fixture::start().await;
    let upstream = Upstream::new();
    let chart = |name: &str| {
        format!(
            "apiVersion: v2\nname: {name}\nversion: 0.1.0\ndependencies:\n  - name: web\n    version: \"^1.0\"\n    repository: {}\n  - name: common\n    version: 0.1.0\n    repository: file://../common\n",
            f.repo
        )
    };
    upstream.write("charts/app/Chart.yaml", &chart("app"));
    upstream.write("charts/pinned/Chart.yaml", &chart("pinned"));
    upstream.write(
        "charts/pinned/Chart.lock",
        &format!(
            "dependencies:\n- name: web\n  repository: {}\n  version: 1.0.0\n- name: common\n  repository: file://../common\n  version: 0.1.0\n",
            f.repo
        ),
    );
    upstream.write(
        "charts/common/Chart.yaml",
        "apiVersion: v2\nname: common\nversion: 0.1.0\n",
    );
    upstream.write(
        "charts/common/templates/sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{ .Release.Name }}-common\n",
    );
    let commit = upstream.commit("charts with dependencies");
    upstream.push_all();
    let daemon = GitDaemon::serve(&upstream.base());
    let repo = daemon.url(&upstream.name);

    let f = &f;
    let render = |path: &str| {
        let request = RenderRequest {
            repo: repo.clone(),
            commit: commit.clone(),
            source: ApplicationSource {
                repo_url: repo.clone(),
                path: path.into(),
                ..ApplicationSource::default()
            },
            app_name: "shop".into(),
            namespace: "prod".into(),
            refs: Vec::new(),
            local_files: Vec::new(),
        };
        async move {
            let reply: Reply<Rendered> = f.ask(f.bus.topology.render_subject(), &request).await;
            reply.into_result()
        }
    };
    for (path, version) in [("charts/app", "1.1.0"), ("charts/pinned", "1.0.0")] {
        let rendered = render(path).await.unwrap();
        let kinds: Vec<(&str, &str)> = rendered
            .manifests
            .iter()
            .map(|m| {
                (
                    m["kind"].as_str().unwrap(),
                    m["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [("ServiceAccount", "shop-common"), ("ConfigMap", "shop")],
            "{path}"
        );
        let web = &rendered.manifests[1];
        assert_eq!(
            web["data"]["version"], version,
            "{path}: the dependency's version"
        );
        // A version picked from a range may change with no commit: the render's inputs
        // are unknown, so no commit (and no content key) can skip it.
        assert_eq!(rendered.inputs.is_empty(), path == "charts/app", "{path}");
    }
}

/// The index is read once per poll interval for every app on the repository; a refresh
/// for the repository (a webhook, `app get --refresh`) reads it anew at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_reads_the_helm_repository_index_anew() {
    let f = Fixture::start().await;
    assert_eq!(f.resolve("web", "^1.0").await.unwrap(), "1.1.0");
    {
        let archive = package("1.5.0");
        let mut files = f.files.lock().unwrap();
        let mut index = String::from_utf8(files["index.yaml"].clone()).unwrap();
        index.push_str(&format!(
            "  - name: web\n    version: 1.5.0\n    digest: {}\n    urls: [web-1.5.0.tgz]\n",
            sha256(&archive)
        ));
        files.insert("index.yaml".into(), index.into_bytes());
        files.insert("web-1.5.0.tgz".into(), archive);
    }
    // Within the poll interval (two minutes here), the index read before still answers.
    assert_eq!(f.resolve("web", "^1.0").await.unwrap(), "1.1.0");
    let refresh = gitfleet_messages::RefreshRequest {
        repo: Some(f.repo.clone()),
        app: None,
    };
    f.bus
        .client
        .publish(
            f.bus.topology.webhook_subject(),
            serde_json::to_vec(&refresh).unwrap().into(),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let version = f.resolve("web", "^1.0").await.unwrap();
        if version == "1.5.0" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {version} after the refresh"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
