//! The front door against a real nats-server: every route refuses a caller without a
//! session and one without the permission (the routes come from the proto descriptors,
//! so a new route without a check fails here), and bad tokens of every kind are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use api_gateway::Config;
use base64::Engine as _;
use futures::future::BoxFuture;
use gitfleet_bus::{Bucket, Bus, subject_token, testkit};
use gitfleet_proto::v1::account_service_client::AccountServiceClient;
use gitfleet_proto::v1::application_service_client::ApplicationServiceClient;
use gitfleet_proto::v1::application_set_service_client::ApplicationSetServiceClient;
use gitfleet_proto::v1::apply_service_client::ApplyServiceClient;
use gitfleet_proto::v1::cluster_service_client::ClusterServiceClient;
use gitfleet_proto::v1::project_service_client::ProjectServiceClient;
use gitfleet_proto::v1::project_token_service_client::ProjectTokenServiceClient;
use gitfleet_proto::v1::repository_service_client::RepositoryServiceClient;
use gitfleet_proto::v1::session_service_client::SessionServiceClient;
use gitfleet_proto::v1::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

#[derive(Clone)]
struct Bearer(Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        Ok(req)
    }
}

type Conn = InterceptedService<Channel, Bearer>;

struct Gateway {
    bus: Bus,
    channel: Channel,
    /// Where gRPC and REST are served.
    base: String,
    shutdown: CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Gateway {
    async fn start() -> Gateway {
        let bus = testkit::bus().await;
        // The local accounts the tests sign tokens for (argocd-issued tokens are only
        // ever for local accounts or project roles).
        let settings = bus.kv(Bucket::Settings).await.unwrap();
        let accounts = serde_json::json!({
            "accounts.nobody": "apiKey",
            "accounts.alice": "apiKey",
            "accounts.dana": "apiKey",
            "accounts.olga": "login",
        });
        settings
            .put(
                subject_token("argocd-cm"),
                serde_json::to_vec(&accounts).unwrap().into(),
            )
            .await
            .unwrap();
        let config = Config {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            operation_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            refresh_wait: Duration::from_millis(100),
            ..Config::default()
        };
        let listeners = api_gateway::bind(&config).await.unwrap();
        let grpc = listeners.grpc_addr();
        let shutdown = CancellationToken::new();
        tokio::spawn(api_gateway::serve(
            config,
            listeners,
            bus.clone(),
            shutdown.clone(),
        ));
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5));
        // The gateway binds before it serves: retry until it answers.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let channel = loop {
            match channel.connect().await {
                Ok(c) => {
                    let mut probe = SessionServiceClient::new(c.clone());
                    if probe
                        .create(SessionCreateRequest::default())
                        .await
                        .is_err_and(|s| s.code() == Code::Unauthenticated)
                    {
                        break c;
                    }
                }
                Err(_) if std::time::Instant::now() < deadline => {}
                Err(e) => panic!("gateway never came up: {e}"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gateway never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let gw = Gateway {
            bus,
            channel,
            base: format!("http://{grpc}"),
            shutdown,
        };
        // The accounts are read through a watch: wait until they are known.
        let nobody = sign(&gw.key().await, Algorithm::HS256, claims("nobody"));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while SessionServiceClient::new(gw.conn(Some(&nobody)))
            .get_user_info(GetUserInfoRequest {})
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "accounts never loaded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gw
    }

    fn conn(&self, token: Option<&str>) -> Conn {
        InterceptedService::new(self.channel.clone(), Bearer(token.map(String::from)))
    }

    async fn settings(&self, key: &str) -> BTreeMap<String, String> {
        let kv = self.bus.kv(Bucket::Settings).await.unwrap();
        let body = kv.get(subject_token(key)).await.unwrap().unwrap();
        self.bus
            .decode_document(Bucket::Settings, key, &body)
            .unwrap()
    }

    /// The server key, as only whoever can read the control plane's state has it.
    async fn key(&self) -> Vec<u8> {
        let secret = self.settings("argocd-secret").await;
        base64::engine::general_purpose::STANDARD
            .decode(&secret["server.secretkey"])
            .unwrap()
    }

    async fn admin(&self) -> String {
        let password = self.settings("argocd-initial-admin-secret").await["password"].clone();
        SessionServiceClient::new(self.conn(None))
            .create(SessionCreateRequest {
                username: "admin".into(),
                password,
            })
            .await
            .unwrap()
            .into_inner()
            .token
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(key: &[u8], alg: Algorithm, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(key).unwrap(),
    )
    .unwrap()
}

fn claims(sub: &str) -> serde_json::Value {
    serde_json::json!({"iss": "argocd", "sub": sub, "iat": now(), "exp": now() + 600, "jti": "t"})
}

const PROJECT: &str = "apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: p
spec:
  sourceRepos: ['*']
  destinations: [{server: '*', namespace: '*'}]
  roles:
  - name: r
";

fn appset(name: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: {name}
spec:
  generators:
  - list:
      elements: [{{env: a}}]
  template:
    metadata: {{name: '{{{{env}}}}'}}
    spec:
      project: default
      source: {{repoURL: https://git.example/repo.git, path: x}}
      destination: {{server: https://kubernetes.default.svc, namespace: x}}
"
    )
}

fn app(name: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
spec:
  project: default
  source: {{repoURL: 'https://git.example/repo.git', path: app, targetRevision: HEAD}}
  destination: {{server: 'https://kubernetes.default.svc', namespace: web}}
"
    )
}

/// One call of a route: `Ok(n)` with the number of items a list returned (0 otherwise).
type Route = fn(Conn) -> BoxFuture<'static, Result<usize, Status>>;

/// Every route the gateway serves, with a call naming objects that exist. Keyed by
/// `package.Service/Method` as the descriptors name them.
fn routes() -> BTreeMap<&'static str, Route> {
    let mut r: BTreeMap<&'static str, Route> = BTreeMap::new();
    macro_rules! route {
        ($path:literal, $client:ident, $method:ident, $req:expr) => {
            r.insert($path, |c| {
                Box::pin(async move { $client::new(c).$method($req).await.map(|_| 0) })
            });
        };
    }
    macro_rules! list {
        ($path:literal, $client:ident, $method:ident, $req:expr) => {
            r.insert($path, |c| {
                Box::pin(async move {
                    $client::new(c)
                        .$method($req)
                        .await
                        .map(|r| r.into_inner().items_json.len())
                })
            });
        };
    }
    use ApplicationServiceClient as Apps;
    route!(
        "gitfleet.v1.ApplicationService/Create",
        Apps,
        create,
        CreateApplicationRequest {
            manifest_yaml: app("b"),
            upsert: false
        }
    );
    route!(
        "gitfleet.v1.ApplicationService/Get",
        Apps,
        get,
        GetApplicationRequest { name: "a".into() }
    );
    list!(
        "gitfleet.v1.ApplicationService/List",
        Apps,
        list,
        ListApplicationsRequest::default()
    );
    route!(
        "gitfleet.v1.ApplicationService/Delete",
        Apps,
        delete,
        DeleteApplicationRequest {
            name: "a".into(),
            cascade: false
        }
    );
    route!(
        "gitfleet.v1.ApplicationService/Sync",
        Apps,
        sync,
        SyncApplicationRequest {
            name: "a".into(),
            ..Default::default()
        }
    );
    route!(
        "gitfleet.v1.ApplicationService/Diff",
        Apps,
        diff,
        DiffApplicationRequest {
            name: "a".into(),
            ..Default::default()
        }
    );
    route!(
        "gitfleet.v1.ApplicationService/Manifests",
        Apps,
        manifests,
        ApplicationManifestsRequest {
            name: "a".into(),
            ..Default::default()
        }
    );
    route!(
        "gitfleet.v1.ApplicationService/Refresh",
        Apps,
        refresh,
        RefreshApplicationRequest { name: "a".into() }
    );
    route!(
        "gitfleet.v1.ApplicationService/Rollback",
        Apps,
        rollback,
        RollbackApplicationRequest {
            name: "a".into(),
            ..Default::default()
        }
    );
    route!(
        "gitfleet.v1.ApplicationService/ListResourceActions",
        Apps,
        list_resource_actions,
        ApplicationResourceRequest {
            name: "a".into(),
            kind: "Deployment".into(),
            resource_name: "web".into(),
            ..Default::default()
        }
    );
    route!(
        "gitfleet.v1.ApplicationService/RunResourceAction",
        Apps,
        run_resource_action,
        ResourceActionRunRequest {
            name: "a".into(),
            kind: "Deployment".into(),
            group: "apps".into(),
            resource_name: "web".into(),
            action: "restart".into(),
            ..Default::default()
        }
    );
    route!(
        "gitfleet.v1.ApplicationService/ResourceTree",
        Apps,
        resource_tree,
        ResourceTreeRequest { name: "a".into() }
    );
    route!(
        "gitfleet.v1.ApplicationService/TerminateOperation",
        Apps,
        terminate_operation,
        TerminateOperationRequest { name: "a".into() }
    );
    // Apply answers per object: a refusal of the one object is the route's refusal.
    r.insert("gitfleet.v1.ApplyService/Apply", |c| {
        Box::pin(async move {
            let objects = ApplyServiceClient::new(c)
                .apply(ApplyRequest {
                    files: vec![ManifestFile {
                        source: "test".into(),
                        manifests_yaml: app("b"),
                    }],
                })
                .await?
                .into_inner()
                .objects;
            match objects.iter().find(|o| o.result == "failed") {
                Some(o) if o.message.starts_with("permission denied") => {
                    Err(Status::permission_denied(o.message.clone()))
                }
                Some(o) => Err(Status::internal(o.message.clone())),
                None => Ok(0),
            }
        })
    });
    use ClusterServiceClient as Clusters;
    route!(
        "gitfleet.v1.ClusterService/Create",
        Clusters,
        create,
        CreateClusterRequest {
            name: "d".into(),
            server: "https://d.example".into(),
            ..Default::default()
        }
    );
    route!(
        "gitfleet.v1.ClusterService/Get",
        Clusters,
        get,
        GetClusterRequest { name: "c".into() }
    );
    list!(
        "gitfleet.v1.ClusterService/List",
        Clusters,
        list,
        ListClustersRequest {}
    );
    route!(
        "gitfleet.v1.ClusterService/Delete",
        Clusters,
        delete,
        DeleteClusterRequest { name: "c".into() }
    );
    use ApplicationSetServiceClient as Sets;
    route!(
        "gitfleet.v1.ApplicationSetService/Create",
        Sets,
        create,
        CreateApplicationSetRequest {
            manifest_yaml: appset("s2"),
            ..Default::default()
        }
    );
    route!(
        "gitfleet.v1.ApplicationSetService/Get",
        Sets,
        get,
        GetApplicationSetRequest { name: "s".into() }
    );
    list!(
        "gitfleet.v1.ApplicationSetService/List",
        Sets,
        list,
        ListApplicationSetsRequest::default()
    );
    route!(
        "gitfleet.v1.ApplicationSetService/Delete",
        Sets,
        delete,
        DeleteApplicationSetRequest { name: "s".into() }
    );
    route!(
        "gitfleet.v1.ApplicationSetService/Generate",
        Sets,
        generate,
        GenerateApplicationSetRequest {
            manifest_yaml: appset("s")
        }
    );
    use ProjectServiceClient as Projects;
    route!(
        "gitfleet.v1.ProjectService/Create",
        Projects,
        create,
        CreateProjectRequest {
            manifest_yaml: PROJECT.replace("name: p", "name: q"),
            upsert: false
        }
    );
    route!(
        "gitfleet.v1.ProjectService/Get",
        Projects,
        get,
        GetProjectRequest { name: "p".into() }
    );
    list!(
        "gitfleet.v1.ProjectService/List",
        Projects,
        list,
        ListProjectsRequest {}
    );
    route!(
        "gitfleet.v1.ProjectService/Update",
        Projects,
        update,
        UpdateProjectRequest {
            manifest_yaml: PROJECT.into()
        }
    );
    route!(
        "gitfleet.v1.ProjectService/Delete",
        Projects,
        delete,
        DeleteProjectRequest { name: "p".into() }
    );
    use ProjectTokenServiceClient as Tokens;
    route!(
        "gitfleet.v1.ProjectTokenService/Create",
        Tokens,
        create,
        CreateProjectTokenRequest {
            project: "p".into(),
            role: "r".into(),
            ..Default::default()
        }
    );
    route!(
        "gitfleet.v1.ProjectTokenService/Delete",
        Tokens,
        delete,
        DeleteProjectTokenRequest {
            project: "p".into(),
            role: "r".into(),
            id: "x".into()
        }
    );
    use RepositoryServiceClient as Repos;
    route!(
        "gitfleet.v1.RepositoryService/Create",
        Repos,
        create,
        CreateRepositoryRequest {
            repo: "https://git.example/other.git".into(),
            ..Default::default()
        }
    );
    list!(
        "gitfleet.v1.RepositoryService/List",
        Repos,
        list,
        ListRepositoriesRequest {}
    );
    route!(
        "gitfleet.v1.RepositoryService/Delete",
        Repos,
        delete,
        DeleteRepositoryRequest {
            repo: "https://git.example/repo.git".into()
        }
    );
    route!(
        "gitfleet.v1.SessionService/Create",
        SessionServiceClient,
        create,
        SessionCreateRequest {
            username: "admin".into(),
            password: "not-it".into()
        }
    );
    route!(
        "gitfleet.v1.SessionService/GetUserInfo",
        SessionServiceClient,
        get_user_info,
        GetUserInfoRequest {}
    );
    // Ends the caller's own session (called with a session of its own below).
    route!(
        "gitfleet.v1.SessionService/Delete",
        SessionServiceClient,
        delete,
        SessionDeleteRequest {}
    );
    // Someone else's password: needs accounts/update on them.
    route!(
        "gitfleet.v1.AccountService/UpdatePassword",
        AccountServiceClient,
        update_password,
        UpdatePasswordRequest {
            name: "admin".into(),
            current_password: "x".into(),
            new_password: "long-enough".into()
        }
    );
    // Someone else's tokens: needs accounts/update on them.
    route!(
        "gitfleet.v1.AccountService/CreateToken",
        AccountServiceClient,
        create_token,
        CreateTokenRequest {
            name: "alice".into(),
            expires_in: 0,
            id: String::new()
        }
    );
    route!(
        "gitfleet.v1.AccountService/DeleteToken",
        AccountServiceClient,
        delete_token,
        DeleteTokenRequest {
            name: "alice".into(),
            id: "t1".into()
        }
    );
    route!(
        "gitfleet.v1.AccountService/CanI",
        AccountServiceClient,
        can_i,
        CanIRequest {
            resource: "clusters".into(),
            action: "get".into(),
            subresource: "*".into()
        }
    );
    r
}

/// Routes any signed-in caller may use; logging in needs no session at all.
const FOR_ANY_SESSION: [&str; 3] = [
    "gitfleet.v1.SessionService/GetUserInfo",
    "gitfleet.v1.AccountService/CanI",
    LOGOUT,
];
/// Logging out revokes the session it is called with.
const LOGOUT: &str = "gitfleet.v1.SessionService/Delete";
const WITHOUT_SESSION: &str = "gitfleet.v1.SessionService/Create";

fn served_routes() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(gitfleet_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .flat_map(|f| {
            f.service.iter().flat_map(move |s| {
                s.method
                    .iter()
                    .map(move |m| format!("{}.{}/{}", f.package(), s.name(), m.name()))
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_callers_without_a_session_or_the_permission() {
    let gw = Gateway::start().await;
    let routes = routes();
    let served = served_routes();
    let listed: BTreeSet<String> = routes.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        served, listed,
        "every served route needs an entry in routes() (and so an authorisation check)"
    );

    // Objects the routes name, made by admin.
    let admin = gw.admin().await;
    let a = gw.conn(Some(&admin));
    ApplicationServiceClient::new(a.clone())
        .create(CreateApplicationRequest {
            manifest_yaml: app("a"),
            upsert: false,
        })
        .await
        .unwrap();
    ClusterServiceClient::new(a.clone())
        .create(CreateClusterRequest {
            name: "c".into(),
            server: "https://c.example".into(),
            bearer_token: "cluster-s3cret".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    ProjectServiceClient::new(a.clone())
        .create(CreateProjectRequest {
            manifest_yaml: PROJECT.into(),
            upsert: false,
        })
        .await
        .unwrap();
    ApplicationSetServiceClient::new(a.clone())
        .create(CreateApplicationSetRequest {
            manifest_yaml: appset("s"),
            ..Default::default()
        })
        .await
        .unwrap();
    RepositoryServiceClient::new(a.clone())
        .create(CreateRepositoryRequest {
            repo: "https://git.example/repo.git".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let nobody = sign(&gw.key().await, Algorithm::HS256, claims("nobody"));
    for (path, call) in &routes {
        let anonymous = call(gw.conn(None)).await;
        let signed_in = if *path == LOGOUT {
            let mut own = claims("nobody");
            own["jti"] = serde_json::json!("to-end");
            let own = sign(&gw.key().await, Algorithm::HS256, own);
            call(gw.conn(Some(&own))).await
        } else {
            call(gw.conn(Some(&nobody))).await
        };
        if *path == WITHOUT_SESSION {
            assert_eq!(
                anonymous.unwrap_err().message(),
                "invalid username or password"
            );
            continue;
        }
        let err = anonymous.expect_err(path);
        assert_eq!(err.code(), Code::Unauthenticated, "{path}: {err:?}");
        if FOR_ANY_SESSION.contains(path) {
            signed_in.unwrap_or_else(|e| panic!("{path}: {e:?}"));
        } else if path.ends_with("/List") {
            assert_eq!(
                signed_in.unwrap_or_else(|e| panic!("{path}: {e:?}")),
                0,
                "{path} shows nothing"
            );
        } else {
            let err = signed_in.expect_err(path);
            assert_eq!(err.code(), Code::PermissionDenied, "{path}: {err:?}");
            assert!(
                err.message().contains("sub: nobody"),
                "{path}: {}",
                err.message()
            );
        }
    }
    // Admin may: the same list routes show what exists.
    let apps = routes["gitfleet.v1.ApplicationService/List"](a.clone())
        .await
        .unwrap();
    assert_eq!(apps, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_unsigned_and_confused_tokens_are_refused() {
    let gw = Gateway::start().await;
    let key = gw.key().await;
    let who = |token: &str| {
        let conn = gw.conn(Some(token));
        async move {
            SessionServiceClient::new(conn)
                .get_user_info(GetUserInfoRequest {})
                .await
                .map(|r| r.into_inner().username)
        }
    };
    assert_eq!(
        who(&sign(&key, Algorithm::HS256, claims("alice")))
            .await
            .unwrap(),
        "alice"
    );

    let forged = sign(
        b"not-the-server-key-not-the-server-key",
        Algorithm::HS256,
        claims("admin"),
    );
    let mut expired = claims("admin");
    expired["exp"] = (now() - 60).into();
    let mut foreign = claims("admin");
    foreign["iss"] = "someone-else".into();
    // `alg: none`: a header and claims with no signature.
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(claims("admin"))
    );
    let cases = [
        ("forged", forged),
        ("expired", sign(&key, Algorithm::HS256, expired)),
        ("another issuer", sign(&key, Algorithm::HS256, foreign)),
        ("alg none", unsigned),
        // The right key under another algorithm: only HS256 is accepted.
        ("HS512", sign(&key, Algorithm::HS512, claims("admin"))),
        ("garbage", "not.a.token".to_string()),
    ];
    for (what, token) in cases {
        let err = who(&token).await.expect_err(what);
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
        assert!(
            err.message().starts_with("invalid session: "),
            "{what}: {}",
            err.message()
        );
        assert!(
            !err.message().contains(&token),
            "{what}: the token is echoed"
        );
    }
}

/// `argocd-rbac-cm` as Argo CD reads it: `policy.default` applies to everyone, SSO groups
/// map to roles through `g` lines, and a policy with a bad line written straight to KV
/// does not stop the gateway from taking the next good one. (That the bad one leaves the
/// policy in force unchanged is not observable here, between two writes; `gitfleet
/// apply` refuses such a policy, its line named, before it is stored: the CLI's
/// declarative test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rbac_config_map_is_applied_and_a_bad_one_does_not_stop_the_next() {
    let gw = Gateway::start().await;
    let key = gw.key().await;
    let mut dev = claims("dana");
    dev["groups"] = serde_json::json!(["myorg:devs"]);
    let dev = sign(&key, Algorithm::HS256, dev);
    let can =
        |token: String, action: &'static str, resource: &'static str, object: &'static str| {
            let conn = gw.conn(Some(&token));
            async move {
                AccountServiceClient::new(conn)
                    .can_i(CanIRequest {
                        resource: resource.into(),
                        action: action.into(),
                        subresource: object.into(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .value
            }
        };
    assert_eq!(can(dev.clone(), "get", "applications", "x/y").await, "no");

    let kv = gw.bus.kv(Bucket::Settings).await.unwrap();
    let put = |data: serde_json::Value| {
        let kv = kv.clone();
        async move {
            kv.put(
                subject_token("argocd-rbac-cm"),
                serde_json::to_vec(&data).unwrap().into(),
            )
            .await
            .unwrap();
        }
    };
    put(serde_json::json!({
        "policy.default": "role:readonly",
        "policy.csv": "p, role:dev, applications, sync, team/*, allow\ng, myorg:devs, role:dev\n",
    }))
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while can(dev.clone(), "get", "applications", "x/y").await != "yes" {
        assert!(
            std::time::Instant::now() < deadline,
            "the policy was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        can(dev.clone(), "sync", "applications", "team/web").await,
        "yes"
    );
    assert_eq!(
        can(dev.clone(), "sync", "applications", "other/web").await,
        "no"
    );

    // A bad line: refused whole (the gateway logs the line).
    put(serde_json::json!({"policy.csv": "p, role:dev, applications\n"})).await;
    // Then a good change after it, to know the bad one has been seen.
    put(serde_json::json!({
        "policy.default": "role:readonly",
        "policy.csv": "p, role:dev, applications, sync, team/*, allow\ng, myorg:devs, role:dev\np, role:dev, applications, delete, team/*, allow\n",
    }))
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while can(dev.clone(), "delete", "applications", "team/web").await != "yes" {
        assert!(
            std::time::Instant::now() < deadline,
            "the later policy was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(can(dev, "sync", "applications", "team/web").await, "yes");
}

/// A resource action is authorised as Argo CD's: `applications, action/<group>/<kind>/<action>`
/// on `<project>/<app>`; a caller allowed to restart Deployments may not scale them, and
/// listing actions needs `get`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_actions_are_authorised_per_group_kind_and_action() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    ApplicationServiceClient::new(gw.conn(Some(&admin)))
        .create(CreateApplicationRequest {
            manifest_yaml: app("a"),
            upsert: false,
        })
        .await
        .unwrap();
    let kv = gw.bus.kv(Bucket::Settings).await.unwrap();
    kv.put(
        subject_token("argocd-rbac-cm"),
        serde_json::to_vec(&serde_json::json!({
            "policy.csv": "p, role:ops, applications, action/apps/Deployment/restart, default/*, allow\ng, myorg:ops, role:ops\n",
        }))
        .unwrap()
        .into(),
    )
    .await
    .unwrap();
    let mut who = claims("olga");
    who["groups"] = serde_json::json!(["myorg:ops"]);
    let olga = sign(&gw.key().await, Algorithm::HS256, who);
    let run = |action: &'static str| {
        let conn = gw.conn(Some(&olga));
        async move {
            ApplicationServiceClient::new(conn)
                .run_resource_action(ResourceActionRunRequest {
                    name: "a".into(),
                    group: "apps".into(),
                    kind: "Deployment".into(),
                    namespace: "web".into(),
                    resource_name: "api".into(),
                    action: action.into(),
                    ..Default::default()
                })
                .await
                .unwrap_err()
        }
    };
    // Allowed through the door: the app has no such resource (it was never compared).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let err = loop {
        let err = run("restart").await;
        if err.code() != Code::PermissionDenied || std::time::Instant::now() > deadline {
            break err;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message()
            .contains("apps/Deployment web/api of application a"),
        "{}",
        err.message()
    );
    let err = run("scale").await;
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("action/apps/Deployment/scale"),
        "{}",
        err.message()
    );
    let err = ApplicationServiceClient::new(gw.conn(Some(&olga)))
        .list_resource_actions(ApplicationResourceRequest {
            name: "a".into(),
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: "web".into(),
            resource_name: "api".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

/// A caller who may see some apps gets full pages of those only: RBAC is decided on what
/// the filters let through, a batch at a time, and the pages follow on.
#[tokio::test]
async fn list_pages_hold_only_what_the_caller_may_see() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let apps = ApplicationServiceClient::new(gw.conn(Some(&admin)));
    for name in ["x0", "x1", "x2", "x3", "y0", "y1", "y2", "y3", "y4", "z0"] {
        apps.clone()
            .create(CreateApplicationRequest {
                manifest_yaml: app(name),
                upsert: false,
            })
            .await
            .unwrap();
    }
    let kv = gw.bus.kv(Bucket::Settings).await.unwrap();
    kv.put(
        subject_token("argocd-rbac-cm"),
        serde_json::to_vec(&serde_json::json!({
            "policy.csv": "p, role:ys, applications, get, default/y*, allow\np, role:ys, applications, get, default/y3, deny\ng, myorg:ys, role:ys\n",
        }))
        .unwrap()
        .into(),
    )
    .await
    .unwrap();
    let mut who = claims("dana");
    who["groups"] = serde_json::json!(["myorg:ys"]);
    let dana = sign(&gw.key().await, Algorithm::HS256, who);
    let list = |token: String, limit: u32, after: String| {
        let conn = gw.conn(Some(&token));
        async move {
            let res = ApplicationServiceClient::new(conn)
                .list(ListApplicationsRequest {
                    limit,
                    r#continue: after,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let names: Vec<String> = res
                .items_json
                .iter()
                .map(|j| {
                    let v: serde_json::Value = serde_json::from_str(j).unwrap();
                    v["metadata"]["name"].as_str().unwrap().to_owned()
                })
                .collect();
            (names, res.r#continue)
        }
    };
    // The policy is read through a watch: wait until it shows.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while list(dana.clone(), 0, String::new()).await.0.is_empty() {
        assert!(std::time::Instant::now() < deadline, "policy never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (page, next) = list(dana.clone(), 2, String::new()).await;
    assert_eq!(
        (page, next.as_str()),
        (vec!["y0".into(), "y1".into()], "y1")
    );
    // y3 is denied, and nothing after y4 is visible: the page says no more follow.
    let (page, next) = list(dana.clone(), 2, next).await;
    assert_eq!((page, next.as_str()), (vec!["y2".into(), "y4".into()], ""));
    let (all, _) = list(admin, 0, String::new()).await;
    assert_eq!(all.len(), 10);
}

/// A REST call: (status, JSON body).
async fn rest(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Every REST route (from the gateway's own table): anonymous callers are refused with
/// 401, a signed-in caller without the permission with 403 (lists show nothing), and the
/// admin is served, with Argo CD's JSON shapes.
#[tokio::test]
async fn every_rest_route_refuses_callers_without_a_session_or_the_permission() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let nobody = sign(&gw.key().await, Algorithm::HS256, claims("nobody"));
    let app_json =
        serde_json::to_vec(&serde_yaml_ng::from_str::<serde_json::Value>(&app("a")).unwrap())
            .unwrap();
    let (code, created) = rest(
        &gw.base,
        "POST",
        "/api/v1/applications",
        Some(&admin),
        Some(app_json.clone()),
    )
    .await;
    assert_eq!(code, 200, "{created}");
    assert_eq!(created["metadata"]["name"], "a");

    let table = api_gateway::rest_route_table();
    assert!(table.len() >= 14, "{table:?}");
    for (method, pattern) in table {
        let path = pattern
            .replace("{name}", "a")
            .replace("{resource}", "applications")
            .replace("{action}", "get")
            .replace("{subresource}", "*");
        let body = match (method, pattern) {
            ("POST", "/api/v1/applications") => Some(app_json.clone()),
            ("POST", "/api/v1/session") => {
                Some(br#"{"username":"admin","password":"wrong"}"#.to_vec())
            }
            ("POST", _) => Some(b"{}".to_vec()),
            _ => None,
        };
        let public = pattern == "/api/version" || pattern == "/api/v1/session";
        let (code, answer) = rest(&gw.base, method, &path, None, body.clone()).await;
        if pattern == "/api/version" {
            assert_eq!(code, 200, "{method} {path}: {answer}");
        } else {
            assert_eq!(code, 401, "anonymous {method} {path}: {answer}");
            assert_eq!(answer["code"], 16, "{answer}");
        }
        if public {
            continue;
        }
        // Logging out ends the session it is called with: a session of its own.
        let token = if (method, pattern) == ("DELETE", "/api/v1/session") {
            let mut own = claims("nobody");
            own["jti"] = serde_json::json!("rest-logout");
            sign(&gw.key().await, Algorithm::HS256, own)
        } else {
            nobody.clone()
        };
        let (code, answer) = rest(&gw.base, method, &path, Some(&token), body).await;
        match pattern {
            // Every signed-in caller may ask who they are and what they may do.
            "/api/v1/session/userinfo" => {
                assert_eq!((code, answer["username"].as_str()), (200, Some("nobody")))
            }
            "/api/v1/account/can-i/{resource}/{action}/{subresource}" => {
                assert_eq!((code, answer["value"].as_str()), (200, Some("no")))
            }
            "/api/v1/session" => assert_eq!(code, 200, "logout: {answer}"),
            p if method == "GET" && p.ends_with('s') && !p.contains('{') => {
                assert_eq!(code, 200, "{method} {path}: {answer}");
                assert_eq!(answer["items"], serde_json::json!([]), "{method} {path}");
            }
            _ => assert_eq!(code, 403, "nobody {method} {path}: {answer}"),
        }
    }

    // The admin is served.
    let (code, list) = rest(
        &gw.base,
        "GET",
        "/api/v1/applications?projects=default",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"][0]["metadata"]["name"], "a");
    let (code, got) = rest(
        &gw.base,
        "GET",
        "/api/v1/applications/a",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (code, got["spec"]["project"].as_str()),
        (200, Some("default"))
    );
    let (code, p) = rest(
        &gw.base,
        "GET",
        "/api/v1/projects/default",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (code, p["metadata"]["name"].as_str()),
        (200, Some("default"))
    );
    let (code, who) = rest(
        &gw.base,
        "GET",
        "/api/v1/session/userinfo",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((code, who["loggedIn"].as_bool()), (200, Some(true)));
    // A session through REST, as Argo CD's scripts get one; the token it answers works.
    let password = gw.settings("argocd-initial-admin-secret").await["password"].clone();
    let login = serde_json::to_vec(&serde_json::json!({"username": "admin", "password": password}))
        .unwrap();
    let (code, session) = rest(&gw.base, "POST", "/api/v1/session", None, Some(login)).await;
    assert_eq!(code, 200, "{session}");
    let token = session["token"].as_str().unwrap().to_owned();
    let (code, _) = rest(&gw.base, "GET", "/api/v1/clusters", Some(&token), None).await;
    assert_eq!(code, 200);

    // Bad input: a clear 400 (or 413), the route still serving.
    for (path, body, want) in [
        (
            "/api/v1/applications",
            b"not json".to_vec(),
            "expected an Application as JSON",
        ),
        (
            "/api/v1/applications",
            b"[1,2]".to_vec(),
            "expected an Application object",
        ),
        (
            "/api/v1/applications",
            b"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"}".to_vec(),
            "Deployment",
        ),
        (
            "/api/v1/session",
            b"{\"username\": 7}".to_vec(),
            "expected {\"username\", \"password\"}",
        ),
        (
            "/api/v1/applications/a/sync",
            b"{\"prune\": \"yes\"}".to_vec(),
            "ApplicationSyncRequest",
        ),
    ] {
        let (code, answer) = rest(&gw.base, "POST", path, Some(&admin), Some(body)).await;
        assert_eq!(code, 400, "{path}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains(want),
            "{path}: {answer}"
        );
    }
    let (code, answer) = rest(
        &gw.base,
        "GET",
        "/api/v1/applications?limit=many",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 400, "{answer}");
    let (code, _) = rest(
        &gw.base,
        "GET",
        "/api/v1/applications?colour=red",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 400);
    let huge = vec![b' '; api_gateway::REST_MAX_BODY_BYTES + 1];
    let (code, _) = rest(
        &gw.base,
        "POST",
        "/api/v1/applications",
        Some(&admin),
        Some(huge),
    )
    .await;
    assert_eq!(code, 413);
    // The same port still serves gRPC.
    let apps = ApplicationServiceClient::new(gw.conn(Some(&admin)))
        .list(ListApplicationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(apps.items_json.len(), 1);
    let (code, _) = rest(
        &gw.base,
        "DELETE",
        "/api/v1/applications/a?cascade=false",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 200);
}

/// Random bodies on the routes that decode one: never a 5xx, never a dropped
/// connection, and the gateway answers afterwards.
#[test]
fn rest_bodies_never_crash_the_decoder() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (gw, admin) = rt.block_on(async {
        let gw = Gateway::start().await;
        let admin = gw.admin().await;
        (gw, admin)
    });
    let bodies = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "[{}\\[\\]\":,a-z0-9 ]{0,200}".prop_map(String::into_bytes),
        Just(b"{\"metadata\": {\"name\": 5}}".to_vec()),
        Just(b"{\"apiVersion\": \"argoproj.io/v1alpha1\", \"kind\": \"Application\"}".to_vec()),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    runner
        .run(&(bodies, 0..3usize), |(body, route)| {
            let path = [
                "/api/v1/applications",
                "/api/v1/session",
                "/api/v1/applications/a/sync",
            ][route];
            let (code, answer) =
                rt.block_on(rest(&gw.base, "POST", path, Some(&admin), Some(body)));
            prop_assert!(code < 500 || code == 503, "{path}: {code} {answer}");
            Ok(())
        })
        .unwrap();
    let (code, _) = rt.block_on(rest(&gw.base, "GET", "/api/version", None, None));
    assert_eq!(code, 200);
    drop(gw);
}

/// Account API tokens (Argo CD's `account generate-token`): only for accounts with the
/// apiKey capability, usable at once, refused once deleted; another account's only with
/// `accounts, update`.
#[tokio::test]
async fn account_api_tokens_are_issued_listed_and_revoked() {
    let gw = Gateway::start().await;
    let admin = gw.admin().await;
    let accounts = |token: &str| AccountServiceClient::new(gw.conn(Some(token)));
    // admin has no apiKey capability (as in Argo CD).
    let err = accounts(&admin)
        .create_token(CreateTokenRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("apiKey"), "{}", err.message());
    // alice (apiKey) by the admin, who may update accounts.
    let token = accounts(&admin)
        .create_token(CreateTokenRequest {
            name: "alice".into(),
            expires_in: 3600,
            id: "ci".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let who = SessionServiceClient::new(gw.conn(Some(&token)))
        .get_user_info(GetUserInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(who.username, "alice");
    // The same id twice is refused.
    let err = accounts(&admin)
        .create_token(CreateTokenRequest {
            name: "alice".into(),
            expires_in: 0,
            id: "ci".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // alice may not make tokens for dana.
    let err = accounts(&token)
        .create_token(CreateTokenRequest {
            name: "dana".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // A token with another id, signed with the right key but never listed: refused.
    let mut forged = claims("alice:apiKey");
    forged["jti"] = serde_json::json!("not-listed");
    let forged = sign(&gw.key().await, Algorithm::HS256, forged);
    let err = SessionServiceClient::new(gw.conn(Some(&forged)))
        .get_user_info(GetUserInfoRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Deleted: refused from then on.
    accounts(&token)
        .delete_token(DeleteTokenRequest {
            name: String::new(),
            id: "ci".into(),
        })
        .await
        .unwrap();
    let err = SessionServiceClient::new(gw.conn(Some(&token)))
        .get_user_info(GetUserInfoRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // Stored as Argo CD keeps them (sealed with the rest of argocd-secret).
    let secret = gw.settings("argocd-secret").await;
    assert_eq!(secret["accounts.alice.tokens"], "[]");
}

/// Logging out ends the session on the server (Argo CD's logout): its token is refused
/// from then on, and other sessions of the same account go on.
#[tokio::test]
async fn logout_revokes_the_session_it_is_called_with() {
    let gw = Gateway::start().await;
    let first = gw.admin().await;
    let second = gw.admin().await;
    let info = |token: String| {
        let conn = gw.conn(Some(&token));
        async move {
            SessionServiceClient::new(conn)
                .get_user_info(GetUserInfoRequest {})
                .await
        }
    };
    assert!(info(first.clone()).await.is_ok());
    SessionServiceClient::new(gw.conn(Some(&first)))
        .delete(SessionDeleteRequest {})
        .await
        .unwrap();
    let err = info(first.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "token is revoked, please re-login");
    assert!(info(second).await.is_ok(), "another session goes on");
    // Anonymous callers have nothing to end.
    let err = SessionServiceClient::new(gw.conn(None))
        .delete(SessionDeleteRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}
