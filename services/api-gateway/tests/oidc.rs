//! OIDC against a local issuer: discovery and keys served on localhost, ID tokens signed
//! with a test key (ES256). Groups from the token map to roles through `argocd-rbac-cm`;
//! tokens from another key, for another audience or from an untrusted issuer are refused.

use std::time::Duration;

use api_gateway::Config;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gitfleet_bus::{Bucket, subject_token, testkit};
use gitfleet_proto::v1::account_service_client::AccountServiceClient;
use gitfleet_proto::v1::session_service_client::SessionServiceClient;
use gitfleet_proto::v1::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request};

/// A signing key and its public half as a JWK.
fn key(kid: &str) -> (EncodingKey, serde_json::Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let encoding = EncodingKey::from_ec_der(pair.serialized_der());
    let raw = pair.public_key_raw();
    // Uncompressed point: 0x04, x, y.
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    });
    (encoding, jwk)
}

/// Serves the discovery document and the keys of `jwks`; returns the issuer URL.
async fn issuer(jwks: serde_json::Value, shutdown: CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let discovery = serde_json::json!({
        "issuer": base,
        "jwks_uri": format!("{base}/keys"),
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
    });
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/keys",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .unwrap();
    });
    base
}

fn id_token(key: &EncodingKey, kid: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_are_verified_with_the_issuers_keys_and_groups_map_to_roles() {
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (signing, jwk) = key("k1");
    let (stranger, _) = key("k1");
    let base = issuer(serde_json::json!({"keys": [jwk]}), shutdown.clone()).await;

    let bus = testkit::bus().await;
    let settings = bus.kv(Bucket::Settings).await.unwrap();
    let put = |key: &'static str, data: serde_json::Value| {
        let settings = settings.clone();
        async move {
            settings
                .put(
                    subject_token(key),
                    serde_json::to_vec(&data).unwrap().into(),
                )
                .await
                .unwrap();
        }
    };
    put(
        "argocd-cm",
        serde_json::json!({"oidc.config": format!("name: Local\nissuer: {base}\nclientID: gitfleet\nrequestedScopes: [openid, groups]\n")}),
    )
    .await;
    put(
        "argocd-rbac-cm",
        serde_json::json!({"policy.csv": "g, myorg:admins, role:admin\np, myorg:devs, applications, sync, team/*, allow\ng, myorg:devs, role:dev-marker\n"}),
    )
    .await;

    let config = Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let listeners = api_gateway::bind(&config).await.unwrap();
    let grpc = format!("http://{}", listeners.grpc_addr());
    tokio::spawn(api_gateway::serve(
        config,
        listeners,
        bus.clone(),
        shutdown.clone(),
    ));
    let channel = Channel::from_shared(grpc).unwrap().connect_lazy();

    let now = chrono::Utc::now().timestamp();
    let claims = |sub: &str, groups: &[&str]| {
        serde_json::json!({
            "iss": base, "sub": sub, "aud": "gitfleet", "iat": now, "exp": now + 600,
            "email": format!("{sub}@example.com"), "groups": groups,
        })
    };
    let call = |token: String| {
        let channel = channel.clone();
        async move {
            let mut req = Request::new(CanIRequest {
                resource: "clusters".into(),
                action: "delete".into(),
                subresource: "https://x".into(),
            });
            req.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            AccountServiceClient::new(channel)
                .can_i(req)
                .await
                .map(|r| r.into_inner().value)
        }
    };
    let admin = id_token(&signing, "k1", claims("carol", &["myorg:admins"]));
    // The gateway comes up and reads argocd-cm: poll until the admin is recognised.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match call(admin.clone()).await {
            Ok(v) if v == "yes" => break,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never trusted: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    let mut req = Request::new(GetUserInfoRequest {});
    req.metadata_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let info = SessionServiceClient::new(channel.clone())
        .get_user_info(req)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.username, "carol");
    assert_eq!(info.iss, base);
    assert_eq!(info.groups, ["myorg:admins"]);

    let dev = id_token(&signing, "k1", claims("dave", &["myorg:devs"]));
    assert_eq!(call(dev).await.unwrap(), "no");

    let mut wrong_audience = claims("carol", &["myorg:admins"]);
    wrong_audience["aud"] = "someone-else".into();
    let mut expired = claims("carol", &["myorg:admins"]);
    expired["exp"] = (now - 60).into();
    let mut other_issuer = claims("carol", &["myorg:admins"]);
    other_issuer["iss"] = "https://evil.example.com".into();
    for (what, token) in [
        (
            "another key",
            id_token(&stranger, "k1", claims("carol", &["myorg:admins"])),
        ),
        (
            "an unknown key id",
            id_token(&signing, "k2", claims("carol", &["myorg:admins"])),
        ),
        ("another audience", id_token(&signing, "k1", wrong_audience)),
        ("expired", id_token(&signing, "k1", expired)),
        ("another issuer", id_token(&signing, "k1", other_issuer)),
    ] {
        let err = call(token).await.expect_err(what);
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
    }
}
