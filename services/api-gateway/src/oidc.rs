//! Tokens from an OIDC provider, as `argocd-cm`'s `oidc.config` names it (`issuer`,
//! `clientID`, `allowedAudiences`): verified with the issuer's own keys, found through its
//! discovery document and JWKS, never with the server key; only asymmetric algorithms, the
//! audience the client's, times checked. The keys are cached and fetched again when a
//! token names a key id not among them (at most every few seconds).

use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// How long fetched keys are trusted before they are fetched again.
const KEYS_FOR: Duration = Duration::from_secs(3600);
/// Fetches for an unknown key id are at least this far apart.
const REFETCH_AFTER: Duration = Duration::from_secs(5);

/// `oidc.config` as Argo CD documents it; the keys gitfleet reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OidcConfig {
    #[serde(default)]
    pub name: String,
    pub issuer: String,
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(default, rename = "allowedAudiences")]
    pub allowed_audiences: Vec<String>,
}

impl OidcConfig {
    /// Reads `oidc.config` (YAML); `None` when absent. Refuses an issuer that is not
    /// https, but for one on this machine (a test or a local provider).
    pub fn from_settings(
        data: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<Self>, String> {
        let Some(text) = data.get("oidc.config").filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let config: OidcConfig =
            serde_yaml_ng::from_str(text).map_err(|e| format!("argocd-cm oidc.config: {e}"))?;
        let issuer = config.issuer.trim_end_matches('/');
        let local = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|p| issuer.starts_with(p));
        if !issuer.starts_with("https://") && !local {
            return Err(format!(
                "argocd-cm oidc.config: issuer {issuer:?} must be an https URL"
            ));
        }
        if config.client_id.is_empty() {
            return Err("argocd-cm oidc.config: clientID is required".to_owned());
        }
        Ok(Some(config))
    }
}

struct Keys {
    issuer: String,
    set: JwkSet,
    fetched: Instant,
}

pub struct Oidc {
    config: RwLock<Option<OidcConfig>>,
    keys: tokio::sync::Mutex<Option<Keys>>,
    http: reqwest13::Client,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Oidc {
    pub fn new() -> Self {
        Self {
            config: RwLock::new(None),
            keys: tokio::sync::Mutex::new(None),
            http: reqwest13::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn configure(&self, config: Option<OidcConfig>) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// The verified claims of an ID token from the configured issuer.
    pub async fn verify(&self, token: &str, issuer: &str) -> Result<Map<String, Value>> {
        let invalid = |why: String| Error::Unauthenticated(format!("invalid session: {why}"));
        let config = self
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| invalid(format!("issuer {issuer:?} is not trusted (no oidc.config)")))?;
        if issuer.trim_end_matches('/') != config.issuer.trim_end_matches('/') {
            return Err(invalid(format!("issuer {issuer:?} is not trusted")));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(invalid(format!(
                "{:?} is not accepted from an OIDC provider",
                header.alg
            )));
        }
        let kid = header.kid.clone().unwrap_or_default();
        let jwk = self.key(&config.issuer, &kid).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| invalid(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[config.issuer.as_str(), config.issuer.trim_end_matches('/')]);
        let mut audiences = vec![config.client_id.clone()];
        audiences.extend(config.allowed_audiences.iter().cloned());
        validation.set_audience(&audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| invalid(e.to_string()))
    }

    /// The issuer's key `kid` (the only key when the token names none).
    async fn key(&self, issuer: &str, kid: &str) -> Result<jsonwebtoken::jwk::Jwk> {
        let mut keys = self.keys.lock().await;
        let usable = |k: &Keys| k.issuer == issuer && k.fetched.elapsed() < KEYS_FOR;
        let find = |k: &Keys| {
            if kid.is_empty() && k.set.keys.len() == 1 {
                k.set.keys.first().cloned()
            } else {
                k.set.find(kid).cloned()
            }
        };
        if let Some(k) = keys.as_ref().filter(|k| usable(k))
            && let Some(jwk) = find(k)
        {
            return Ok(jwk);
        }
        let recent = keys
            .as_ref()
            .is_some_and(|k| k.issuer == issuer && k.fetched.elapsed() < REFETCH_AFTER);
        if !recent {
            let set = self.fetch_keys(issuer).await?;
            *keys = Some(Keys {
                issuer: issuer.to_owned(),
                set,
                fetched: Instant::now(),
            });
        }
        keys.as_ref().and_then(find).ok_or_else(|| {
            Error::Unauthenticated(format!(
                "invalid session: key {kid:?} is not among the issuer's keys"
            ))
        })
    }

    async fn fetch_keys(&self, issuer: &str) -> Result<JwkSet> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            Error::Unavailable(format!("OIDC issuer {issuer}: {what}: {e}"))
        };
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = self
            .http
            .get(&discovery_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| unavailable("discovery", &e))?
            .bytes()
            .await
            .map_err(|e| unavailable("discovery", &e))?;
        let discovery: Discovery =
            serde_json::from_slice(&body).map_err(|e| unavailable("discovery document", &e))?;
        if discovery.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(Error::Unavailable(format!(
                "OIDC issuer {issuer}: its discovery document names issuer {:?}",
                discovery.issuer
            )));
        }
        let body = self
            .http
            .get(&discovery.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| unavailable("keys", &e))?
            .bytes()
            .await
            .map_err(|e| unavailable("keys", &e))?;
        serde_json::from_slice(&body).map_err(|e| unavailable("keys", &e))
    }
}

/// Who an OIDC token says the caller is (Argo CD's `GetUserIdentifier`: a federated
/// user id when there is one, else `sub`), and the groups the `scopes` claims hold.
pub fn identity(claims: &Map<String, Value>, scopes: &[String]) -> gitfleet_rbac::Identity {
    let subject = claims
        .get("federated_claims")
        .and_then(|f| f.get("user_id"))
        .and_then(Value::as_str)
        .or_else(|| claims.get("sub").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    let mut groups = Vec::new();
    for scope in scopes {
        match claims.get(scope) {
            Some(Value::Array(values)) => {
                groups.extend(values.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            Some(Value::String(value)) => groups.push(value.clone()),
            _ => {}
        }
    }
    gitfleet_rbac::Identity { subject, groups }
}
