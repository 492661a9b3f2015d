//! Who is calling and what they may do. Every gRPC call passes [`Auth::interceptor`],
//! which reads the bearer token (an HS256 JWT signed with the server key, as Argo CD's);
//! every handler then asks [`Auth::authorize`] for the resource, action and object it
//! touches, decided by Argo CD's RBAC ([`gitfleet_rbac`]) with the policy from
//! `argocd-rbac-cm` and, for requests about a project, that project's roles.
//!
//! State, in KV `settings` as Argo CD keeps it in its Secrets and ConfigMaps:
//! `argocd-secret` (`server.secretkey`, `admin.password` as bcrypt), the one-time
//! `argocd-initial-admin-secret` (`password`), and `argocd-rbac-cm` (`policy.csv`,
//! `policy.default`, `scopes`). A policy that does not parse is refused with its line
//! named and the one before it stays in force.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use gitfleet_bus::{Bucket, Bus};
use gitfleet_model::AppProject;
use gitfleet_rbac::{Identity, ProjectEnforcer, Rbac, project_of, project_token_listed};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tonic::Request;

use crate::error::{Error, Result};
use crate::store::Store;

/// The issuer of every token gitfleet signs, as Argo CD's.
pub const ISSUER: &str = "argocd";
/// How long a login session lasts (Argo CD's default `users.session.duration`).
pub const SESSION_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Failed logins an account may have in [`FAILURE_WINDOW`] before it is locked out for the
/// rest of the window (Argo CD's defaults).
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

pub const SECRET_KEY: &str = "argocd-secret";
pub const INITIAL_ADMIN_SECRET: &str = "argocd-initial-admin-secret";
pub const RBAC_CONFIG_MAP: &str = "argocd-rbac-cm";
pub const SETTINGS_CONFIG_MAP: &str = "argocd-cm";
pub const ADMIN: &str = "admin";
/// The sessions ended by `logout` before they expire (Argo CD keeps them in Redis): token
/// id to expiry, in KV `settings` (not one of Argo CD's objects, so never exported).
pub const REVOKED_SESSIONS: &str = "gitfleet-revoked-sessions";
/// The capability (and subject suffix, `<account>:apiKey`) of account API tokens.
const API_KEY: &str = "apiKey";

/// One API token of an account, as Argo CD lists them in `argocd-secret`
/// (`accounts.<name>.tokens`, JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exp: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn tokens_key(account: &str) -> String {
    format!("accounts.{account}.tokens")
}

/// Every account's listed API token ids.
fn api_token_ids(secret: &SecretData) -> HashMap<String, HashSet<String>> {
    secret
        .iter()
        .filter_map(|(key, value)| {
            let account = key.strip_prefix("accounts.")?.strip_suffix(".tokens")?;
            let tokens: Vec<ApiToken> = serde_json::from_str(value).ok()?;
            Some((
                account.to_owned(),
                tokens.into_iter().map(|t| t.id).collect(),
            ))
        })
        .collect()
}

/// A token's claims, as Argo CD writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Absent: the token does not expire (project tokens may be made so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Who the interceptor found on a call.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    /// A token gitfleet signed, verified.
    Token(Claims),
    /// A token another issuer signed (an OIDC provider's), verified when first needed:
    /// that may mean fetching the issuer's keys.
    External {
        token: String,
        issuer: String,
    },
}

/// The issuer a token claims, read without verifying anything.
fn claimed_issuer(token: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// `argocd-secret`'s keys gitfleet uses; others are kept as written.
type SecretData = BTreeMap<String, String>;

/// The server key, as it signs and verifies tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    pub fn new(key: &[u8]) -> Result<Self> {
        Ok(Self {
            encoding: EncodingKey::from_secret(key).map_err(key_error)?,
            decoding: DecodingKey::from_secret(key).map_err(key_error)?,
        })
    }

    /// Verifies a token's signature (HS256 only: `alg: none` and every other algorithm
    /// are refused), issuer and times.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["sub", "iss"]);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|err| Error::Unauthenticated(format!("invalid session: {err}")))
    }

    pub fn issue(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(
            |err| Error::Corrupt {
                what: "token".to_string(),
                message: err.to_string(),
            },
        )
    }
}

pub struct Auth {
    disabled: bool,
    audit: crate::audit::AuditTrail,
    keys: TokenKeys,
    settings: Store,
    projects: Store,
    rbac: RwLock<Arc<Rbac>>,
    oidc: crate::oidc::Oidc,
    /// Compiled project policies by project name, with the KV revision compiled.
    project_enforcers: tokio::sync::Mutex<HashMap<String, (u64, Arc<ProjectEnforcer>)>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// When each local account's password last changed (unix seconds): older sessions
    /// are refused.
    password_mtimes: RwLock<HashMap<String, i64>>,
    /// Each local account's API token ids (`accounts.<name>.tokens` in `argocd-secret`):
    /// a token not listed is revoked.
    api_tokens: RwLock<HashMap<String, HashSet<String>>>,
    /// Sessions ended by `logout`: token id to expiry ([`REVOKED_SESSIONS`]).
    revoked: RwLock<HashMap<String, i64>>,
    /// The local accounts of `argocd-cm` (`accounts.<name>`), and whether admin is enabled.
    accounts: RwLock<LocalAccounts>,
}

/// Argo CD's local accounts: `accounts.<name>: login, apiKey` and
/// `accounts.<name>.enabled` in `argocd-cm`; passwords in `argocd-secret` as
/// `accounts.<name>.password` (bcrypt). `admin` is always there unless `admin.enabled` is
/// `"false"`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalAccounts {
    admin_disabled: bool,
    /// Name to (capabilities, enabled).
    others: BTreeMap<String, (Vec<String>, bool)>,
}

impl LocalAccounts {
    pub fn from_settings(data: &BTreeMap<String, String>) -> Self {
        let mut accounts = LocalAccounts {
            admin_disabled: data
                .get("admin.enabled")
                .is_some_and(|v| v.trim() == "false"),
            ..Self::default()
        };
        for (key, value) in data {
            let Some(name) = key.strip_prefix("accounts.") else {
                continue;
            };
            if name.contains('.') {
                continue;
            }
            let capabilities = value
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            let enabled = data
                .get(&format!("accounts.{name}.enabled"))
                .is_none_or(|v| v.trim() != "false");
            accounts
                .others
                .insert(name.to_owned(), (capabilities, enabled));
        }
        accounts
    }

    /// Whether `name` is a local account that may hold a session (`login` for a password,
    /// enabled).
    fn may_log_in(&self, name: &str) -> bool {
        if name == ADMIN {
            return !self.admin_disabled;
        }
        self.others
            .get(name)
            .is_some_and(|(caps, enabled)| *enabled && caps.iter().any(|c| c == "login"))
    }

    fn exists(&self, name: &str) -> bool {
        name == ADMIN || self.others.contains_key(name)
    }

    /// `login` or `apiKey`; admin has `login` only (as Argo CD's).
    fn has_capability(&self, name: &str, capability: &str) -> bool {
        if name == ADMIN {
            return capability == "login";
        }
        self.others
            .get(name)
            .is_some_and(|(caps, _)| caps.iter().any(|c| c == capability))
    }

    fn enabled(&self, name: &str) -> bool {
        if name == ADMIN {
            !self.admin_disabled
        } else {
            self.others.get(name).is_some_and(|(_, enabled)| *enabled)
        }
    }
}

/// The `argocd-secret` keys of a local account's password and its change time.
fn password_keys(account: &str) -> (String, String) {
    if account == ADMIN {
        ("admin.password".into(), "admin.passwordMtime".into())
    } else {
        (
            format!("accounts.{account}.password"),
            format!("accounts.{account}.passwordMtime"),
        )
    }
}

impl Auth {
    /// Reads (or, on the first start, creates) the server key and the admin password, and
    /// loads the RBAC policy; watches `argocd-rbac-cm` for changes until `shutdown`.
    pub async fn start(
        bus: &Bus,
        disabled: bool,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Arc<Self>> {
        let settings = Store::open(bus, Bucket::Settings, "setting").await?;
        let secret = ensure_secret(&settings).await?;
        let key = secret
            .get("server.secretkey")
            .and_then(|k| STANDARD.decode(k).ok())
            .filter(|k| k.len() >= 32)
            .ok_or_else(|| Error::Corrupt {
                what: format!("setting {SECRET_KEY:?}"),
                message: "server.secretkey is not 32 or more base64 bytes".to_string(),
            })?;
        let rbac = match settings
            .get::<BTreeMap<String, String>>(RBAC_CONFIG_MAP)
            .await?
        {
            Some((data, _)) => load_rbac(&data).await.unwrap_or_else(|err| {
                tracing::error!(error = %err, "RBAC policy refused; only the built-in policy applies");
                None
            }),
            None => None,
        };
        let rbac = match rbac {
            Some(rbac) => rbac,
            None => Rbac::new("built-in policy", "", "", Vec::new())
                .await
                .map_err(|e| Error::invalid(e.to_string()))?,
        };
        let auth = Arc::new(Self {
            disabled,
            audit: crate::audit::AuditTrail::new(bus.clone()),
            keys: TokenKeys::new(&key)?,
            projects: Store::open(bus, Bucket::Projects, "project").await?,
            settings,
            rbac: RwLock::new(Arc::new(rbac)),
            oidc: crate::oidc::Oidc::new(),
            project_enforcers: tokio::sync::Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            password_mtimes: RwLock::new(password_mtimes(&secret)),
            api_tokens: RwLock::new(api_token_ids(&secret)),
            revoked: RwLock::new(HashMap::new()),
            accounts: RwLock::new(LocalAccounts::default()),
        });
        if disabled {
            tracing::warn!("authentication is disabled: every caller acts as admin");
        }
        // Both settings watched: their first entries (the current values) load them.
        for key in [
            RBAC_CONFIG_MAP,
            SETTINGS_CONFIG_MAP,
            SECRET_KEY,
            REVOKED_SESSIONS,
        ] {
            let watched = auth.clone();
            let shutdown = shutdown.clone();
            let mut watch = auth.settings.watch(key).await?;
            tokio::spawn(async move {
                loop {
                    let entry = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        entry = watch.next() => entry,
                    };
                    let Some(Ok(entry)) = entry else {
                        tracing::warn!("the watch of {key} ended; changes wait for a restart");
                        return;
                    };
                    match key {
                        RBAC_CONFIG_MAP => watched.reload(&entry).await,
                        SECRET_KEY => watched.reload_secret(&entry),
                        REVOKED_SESSIONS => watched.reload_revoked(&entry),
                        _ => watched.reload_settings(&entry),
                    }
                }
            });
        }
        Ok(auth)
    }

    /// The sessions other gateways (or this one) ended.
    fn reload_revoked(&self, entry: &async_nats_kv::Entry) {
        let revoked = self
            .settings
            .decode_entry::<HashMap<String, i64>>(REVOKED_SESSIONS, entry)
            .ok()
            .flatten()
            .map(|(r, _)| r)
            .unwrap_or_default();
        *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = revoked;
    }

    /// Ends the caller's session before it expires (Argo CD's `logout`): its token id is
    /// refused from now on, by every gateway. Ids are kept until their token expires.
    pub async fn revoke_session<T>(&self, req: &Request<T>) -> Result<()> {
        self.identity(req).await?;
        let Some(Caller::Token(claims)) = req.extensions().get::<Caller>() else {
            return Err(Error::invalid(
                "only a session gitfleet signed can be ended here (an SSO token ends at its provider)",
            ));
        };
        if claims.jti.is_empty() {
            return Err(Error::invalid("the session has no id (jti) to revoke"));
        }
        let now = chrono::Utc::now().timestamp();
        // A token without expiry is kept for a year: project tokens are revoked on their role.
        let until = claims.exp.unwrap_or(now + 365 * 24 * 3600);
        loop {
            let current = self
                .settings
                .get::<HashMap<String, i64>>(REVOKED_SESSIONS)
                .await?;
            let (mut revoked, revision) = current.unwrap_or_default();
            revoked.retain(|_, exp| *exp > now);
            revoked.insert(claims.jti.clone(), until);
            let written = if revision == 0 {
                match self.settings.create(REVOKED_SESSIONS, &revoked).await {
                    Ok(_) => true,
                    Err(Error::AlreadyExists { .. }) => false,
                    Err(e) => return Err(e),
                }
            } else {
                self.settings
                    .update(REVOKED_SESSIONS, &revoked, revision)
                    .await?
                    .is_some()
            };
            if written {
                *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = revoked;
                tracing::info!(subject = %claims.sub, "session revoked");
                return Ok(());
            }
        }
    }

    /// `argocd-secret`: when passwords changed (another gateway may have changed them).
    fn reload_secret(&self, entry: &async_nats_kv::Entry) {
        if let Ok(Some((secret, _))) = self.settings.decode_entry::<SecretData>(SECRET_KEY, entry) {
            let mut mtimes = self
                .password_mtimes
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for (account, t) in password_mtimes(&secret) {
                let known = mtimes.entry(account).or_insert(t);
                *known = (*known).max(t);
            }
            *self.api_tokens.write().unwrap_or_else(|e| e.into_inner()) = api_token_ids(&secret);
        }
    }

    /// The account a call about accounts acts on: the caller's own (empty `name`), else
    /// another one the caller may update (`accounts, update, <name>`); it must exist.
    async fn account_to_manage(&self, who: &Identity, name: &str) -> Result<String> {
        let name = if name.is_empty() {
            who.subject.as_str()
        } else {
            name
        };
        if name != who.subject
            && !self
                .can(
                    who,
                    gitfleet_rbac::resources::ACCOUNTS,
                    gitfleet_rbac::actions::UPDATE,
                    name,
                )
                .await?
        {
            return Err(denied(
                who,
                gitfleet_rbac::resources::ACCOUNTS,
                gitfleet_rbac::actions::UPDATE,
                name,
            ));
        }
        if !self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .exists(name)
        {
            return Err(Error::NotFound {
                kind: "local account",
                name: name.to_owned(),
            });
        }
        Ok(name.to_owned())
    }

    /// An API token for local account `name` (Argo CD's `account generate-token`): the
    /// caller's own, or another's with `accounts, update`; the account must have the
    /// `apiKey` capability. Its id is listed in `argocd-secret`; deleting it revokes it.
    pub async fn create_api_token(
        &self,
        who: &Identity,
        name: &str,
        expires_in: i64,
        id: &str,
    ) -> Result<String> {
        let name = self.account_to_manage(who, name).await?;
        if !self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .has_capability(&name, API_KEY)
        {
            return Err(Error::invalid(format!(
                "account {name} does not have the apiKey capability (argocd-cm accounts.{name}: apiKey)"
            )));
        }
        if expires_in < 0 {
            return Err(Error::invalid("expires-in must not be negative"));
        }
        let id = if id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            id.to_owned()
        };
        let now = chrono::Utc::now()
            .timestamp()
            .max(self.password_mtime(&name));
        let exp = (expires_in > 0).then_some(now + expires_in);
        self.edit_api_tokens(&name, |tokens| {
            if tokens.iter().any(|t| t.id == id) {
                return Err(Error::AlreadyExists {
                    kind: "account token",
                    name: id.clone(),
                });
            }
            tokens.push(ApiToken {
                id: id.clone(),
                iat: now,
                exp: exp.unwrap_or(0),
            });
            Ok(())
        })
        .await?;
        tracing::info!(account = %name, token = %id, "api token issued");
        self.issue(&Claims {
            iss: ISSUER.to_string(),
            sub: format!("{name}:{API_KEY}"),
            iat: now,
            nbf: Some(now),
            exp,
            jti: id,
            groups: Vec::new(),
        })
    }

    /// Revokes API token `id` of account `name` (own, or with `accounts, update`).
    pub async fn delete_api_token(&self, who: &Identity, name: &str, id: &str) -> Result<()> {
        let name = self.account_to_manage(who, name).await?;
        self.edit_api_tokens(&name, |tokens| {
            let before = tokens.len();
            tokens.retain(|t| t.id != id);
            if tokens.len() == before {
                return Err(Error::NotFound {
                    kind: "account token",
                    name: id.to_owned(),
                });
            }
            Ok(())
        })
        .await?;
        tracing::info!(account = %name, token = %id, "api token revoked");
        Ok(())
    }

    /// Changes account `name`'s token list in `argocd-secret` (compare-and-set, retried),
    /// and this gateway's view of it at once.
    async fn edit_api_tokens(
        &self,
        name: &str,
        mut edit: impl FnMut(&mut Vec<ApiToken>) -> Result<()>,
    ) -> Result<()> {
        loop {
            let (mut secret, revision) = self.secret_for_update().await?;
            let key = tokens_key(name);
            let mut tokens: Vec<ApiToken> = secret
                .get(&key)
                .map(|v| serde_json::from_str(v))
                .transpose()
                .map_err(|e| Error::Corrupt {
                    what: format!("{SECRET_KEY} {key}"),
                    message: e.to_string(),
                })?
                .unwrap_or_default();
            edit(&mut tokens)?;
            secret.insert(key, serde_json::to_string(&tokens)?);
            if self
                .settings
                .update(SECRET_KEY, &secret, revision)
                .await?
                .is_some()
            {
                *self.api_tokens.write().unwrap_or_else(|e| e.into_inner()) =
                    api_token_ids(&secret);
                return Ok(());
            }
        }
    }

    /// `argocd-secret` with its revision, to change it compare-and-set.
    async fn secret_for_update(&self) -> Result<(SecretData, u64)> {
        self.settings
            .get::<SecretData>(SECRET_KEY)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "setting",
                name: SECRET_KEY.to_owned(),
            })
    }

    fn password_mtime(&self, account: &str) -> i64 {
        self.password_mtimes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .copied()
            .unwrap_or(0)
    }

    /// Changes a local account's password: `who` changes their own with their current
    /// password; another's needs `accounts, update, <name>` and still the caller's own
    /// password. Sessions issued before stop working; once admin's changes, the initial
    /// password is forgotten, as in Argo CD.
    pub async fn update_password(
        &self,
        who: &Identity,
        name: &str,
        current: &str,
        new: &str,
    ) -> Result<()> {
        let name = self.account_to_manage(who, name).await?;
        let name = name.as_str();
        if !(8..=72).contains(&new.len()) {
            return Err(Error::invalid(
                "the new password must be 8 to 72 characters long",
            ));
        }
        loop {
            let (mut secret, revision) = self.secret_for_update().await?;
            // The caller proves who they are with their own password.
            let (caller_key, _) = password_keys(&who.subject);
            let hash = secret.get(&caller_key).cloned().unwrap_or_default();
            if !bcrypt::verify(current, &hash).unwrap_or(false) {
                return Err(Error::invalid("the current password is wrong"));
            }
            let hash = bcrypt::hash(new, BCRYPT_COST).map_err(|e| Error::Corrupt {
                what: "password".to_string(),
                message: e.to_string(),
            })?;
            // Tokens carry whole seconds: the change counts from the next one, so every
            // session of this second (issued before it) is refused too.
            // And after the previous change, whose sessions may carry its second.
            let mtime = (chrono::Utc::now() + chrono::Duration::seconds(1)).max(
                chrono::DateTime::from_timestamp(self.password_mtime(name) + 1, 0)
                    .unwrap_or_default(),
            );
            let (hash_key, mtime_key) = password_keys(name);
            secret.insert(hash_key, hash);
            secret.insert(
                mtime_key,
                mtime.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
            if self
                .settings
                .update(SECRET_KEY, &secret, revision)
                .await?
                .is_some()
            {
                {
                    let mut mtimes = self
                        .password_mtimes
                        .write()
                        .unwrap_or_else(|e| e.into_inner());
                    let known = mtimes.entry(name.to_owned()).or_insert(0);
                    *known = (*known).max(mtime.timestamp());
                }
                if name == ADMIN {
                    self.settings.delete(INITIAL_ADMIN_SECRET).await?;
                }
                tracing::info!(account = name, "password changed");
                return Ok(());
            }
        }
    }

    /// `argocd-cm`: the OIDC provider whose tokens are trusted. A bad `oidc.config`
    /// leaves no provider trusted (and says why), rather than the previous one.
    fn reload_settings(&self, entry: &async_nats_kv::Entry) {
        let data = match self
            .settings
            .decode_entry::<BTreeMap<String, String>>(SETTINGS_CONFIG_MAP, entry)
        {
            Ok(Some((data, _))) => data,
            Ok(None) => BTreeMap::new(),
            Err(err) => {
                tracing::error!(error = %err, "unreadable {SETTINGS_CONFIG_MAP}");
                BTreeMap::new()
            }
        };
        *self.accounts.write().unwrap_or_else(|e| e.into_inner()) =
            LocalAccounts::from_settings(&data);
        match crate::oidc::OidcConfig::from_settings(&data) {
            Ok(config) => {
                if let Some(c) = &config {
                    tracing::info!(issuer = %c.issuer, "OIDC provider trusted");
                }
                self.oidc.configure(config);
            }
            Err(err) => {
                tracing::error!(error = %err, "OIDC configuration refused; no provider trusted");
                self.oidc.configure(None);
            }
        }
    }

    async fn reload(&self, entry: &async_nats_kv::Entry) {
        let data: BTreeMap<String, String> = match self
            .settings
            .decode_entry::<BTreeMap<String, String>>(RBAC_CONFIG_MAP, entry)
        {
            Ok(Some((data, _))) => data,
            Ok(None) => BTreeMap::new(),
            Err(err) => {
                tracing::error!(error = %err, "unreadable {RBAC_CONFIG_MAP}; the policy in force is kept");
                return;
            }
        };
        match load_rbac(&data).await {
            Ok(rbac) => {
                let rbac = match rbac {
                    Some(rbac) => rbac,
                    None => match Rbac::new("built-in policy", "", "", Vec::new()).await {
                        Ok(rbac) => rbac,
                        Err(err) => {
                            tracing::error!(error = %err, "built-in policy");
                            return;
                        }
                    },
                };
                *self.rbac.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rbac);
                self.project_enforcers.lock().await.clear();
                tracing::info!("RBAC policy loaded");
            }
            Err(err) => {
                tracing::error!(error = %err, "RBAC policy refused; the policy in force is kept")
            }
        }
    }

    /// The tonic interceptor: a bearer token is verified and its claims put on the
    /// request; no token makes the caller anonymous (only logging in needs none); a bad
    /// token (forged, expired, `alg: none`, another algorithm) is refused here.
    pub fn interceptor(
        self: &Arc<Self>,
    ) -> impl Fn(Request<()>) -> Result<Request<()>, tonic::Status> + Clone + use<> {
        let auth = self.clone();
        move |mut req: Request<()>| {
            let caller = match bearer(&req) {
                None => Caller::Anonymous,
                Some(token) => match claimed_issuer(&token) {
                    Some(issuer) if issuer != ISSUER => Caller::External { token, issuer },
                    _ => Caller::Token(auth.verify(&token).map_err(tonic::Status::from)?),
                },
            };
            req.extensions_mut().insert(caller);
            Ok(req)
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims> {
        self.keys.verify(token)
    }

    pub fn issue(&self, claims: &Claims) -> Result<String> {
        self.keys.issue(claims)
    }

    /// The caller of `req` as RBAC knows them; project tokens must still be listed on
    /// their project (else they are revoked).
    pub async fn identity<T>(&self, req: &Request<T>) -> Result<Identity> {
        if self.disabled {
            return Ok(Identity::new(ADMIN));
        }
        let claims = match req.extensions().get::<Caller>() {
            Some(Caller::Token(claims))
                if self
                    .revoked
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&claims.jti) =>
            {
                return Err(Error::Unauthenticated(
                    "token is revoked, please re-login".into(),
                ));
            }
            Some(Caller::Token(claims)) => claims,
            Some(Caller::External { token, issuer }) => {
                let claims = self.oidc.verify(token, issuer).await?;
                let scopes = self
                    .rbac
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .scopes()
                    .to_vec();
                return Ok(crate::oidc::identity(&claims, &scopes));
            }
            _ => {
                return Err(Error::Unauthenticated(
                    "no session: log in first (gitfleet login), or pass --auth-token".to_string(),
                ));
            }
        };
        if let Some(account) = claims.sub.strip_suffix(&format!(":{API_KEY}")) {
            // An account's API token: enabled, with the capability, and still listed.
            let usable = {
                let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
                accounts.enabled(account) && accounts.has_capability(account, API_KEY)
            };
            let listed = self
                .api_tokens
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(account)
                .is_some_and(|ids| ids.contains(&claims.jti));
            if !usable || !listed {
                return Err(Error::Unauthenticated(format!(
                    "invalid token: account {account} has no such API token (revoked, or the account lost apiKey)"
                )));
            }
            return Ok(Identity {
                subject: account.to_owned(),
                groups: Vec::new(),
            });
        }
        if gitfleet_rbac::project_role(&claims.sub).is_none() {
            // A local account's session: the account must still be enabled, and its
            // password unchanged since.
            if !self
                .accounts
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .enabled(&claims.sub)
            {
                return Err(Error::Unauthenticated(format!(
                    "invalid session: account {} is disabled or gone",
                    claims.sub
                )));
            }
            if claims.iat < self.password_mtime(&claims.sub) {
                return Err(Error::Unauthenticated(
                    "invalid session: the account's password changed after it was issued".into(),
                ));
            }
        }
        if let Some((project, role)) = gitfleet_rbac::project_role(&claims.sub) {
            let listed = self
                .projects
                .get::<AppProject>(project)
                .await?
                .is_some_and(|(p, _)| project_token_listed(&p, role, &claims.jti, claims.iat));
            if !listed {
                return Err(Error::Unauthenticated(format!(
                    "invalid session: the token of {} has been revoked",
                    claims.sub
                )));
            }
        }
        Ok(Identity {
            subject: claims.sub.clone(),
            groups: claims.groups.clone(),
        })
    }

    /// Records a change on the audit trail: who, what, from where, how it ended (an
    /// empty object is the caller's own account).
    pub async fn audit_change<T>(
        &self,
        req: &Request<T>,
        who: &Identity,
        resource: &str,
        action: &str,
        object: &str,
        result: &str,
    ) {
        let object = if object.is_empty() {
            who.subject.as_str()
        } else {
            object
        };
        self.audit
            .record(
                &who.subject,
                resource,
                action,
                object,
                req.remote_addr(),
                result,
            )
            .await;
    }

    /// Refuses the call unless its caller may `action` the `resource` `object`.
    pub async fn authorize<T>(
        &self,
        req: &Request<T>,
        resource: &str,
        action: &str,
        object: &str,
    ) -> Result<()> {
        let who = self.identity(req).await?;
        let allowed = self.can(&who, resource, action, object).await?;
        // Reads are not audited (lists would drown the trail); every change is, allowed
        // or not.
        if action != gitfleet_rbac::actions::GET {
            let result = if allowed { "allowed" } else { "denied" };
            self.audit_change(req, &who, resource, action, object, result)
                .await;
        }
        if allowed {
            Ok(())
        } else {
            Err(denied(&who, resource, action, object))
        }
    }

    /// Whether `who` may `action` the `resource` `object`: the one decision behind every
    /// call and `account can-i`.
    pub async fn can(
        &self,
        who: &Identity,
        resource: &str,
        action: &str,
        object: &str,
    ) -> Result<bool> {
        self.decisions(who.clone())
            .can(resource, action, object)
            .await
    }

    /// Decisions for `who` over many objects (a list): each project is read and compiled
    /// once for all of them, not once per object.
    pub fn decisions(&self, who: Identity) -> Decisions<'_> {
        Decisions {
            auth: self,
            rbac: self.rbac.read().unwrap_or_else(|e| e.into_inner()).clone(),
            who,
            projects: HashMap::new(),
        }
    }

    /// The compiled policies of `name`, compiled again when the project changed.
    async fn project_enforcer(
        &self,
        rbac: &Rbac,
        name: &str,
    ) -> Result<Option<Arc<ProjectEnforcer>>> {
        let Some((project, revision)) = self.projects.get::<AppProject>(name).await? else {
            return Ok(None);
        };
        let mut cache = self.project_enforcers.lock().await;
        if let Some((rev, enforcer)) = cache.get(name)
            && *rev == revision
        {
            return Ok(Some(enforcer.clone()));
        }
        match rbac.for_project(&project).await {
            Ok(enforcer) => {
                let enforcer = Arc::new(enforcer);
                cache.insert(name.to_owned(), (revision, enforcer.clone()));
                Ok(Some(enforcer))
            }
            Err(err) => {
                tracing::warn!(project = name, error = %err, "project roles not applied");
                Ok(None)
            }
        }
    }

    /// A session token for a local account; wrong passwords are counted and an account
    /// with too many in the window is locked out for the rest of it.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        from: Option<std::net::SocketAddr>,
    ) -> Result<String> {
        let result = self.login_checked(username, password).await;
        let outcome = match &result {
            Ok(_) => "succeeded".to_owned(),
            Err(err) => format!("failed: {err}"),
        };
        self.audit
            .record(username, "login", "create", username, from, &outcome)
            .await;
        result
    }

    async fn login_checked(&self, username: &str, password: &str) -> Result<String> {
        let refused = || Error::Unauthenticated("invalid username or password".to_string());
        {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((count, since)) = failures.get(username) {
                if since.elapsed() > FAILURE_WINDOW {
                    failures.remove(username);
                } else if *count >= MAX_FAILURES {
                    return Err(Error::Unauthenticated(format!(
                        "too many failed login attempts for {username}: try again in {} s",
                        (FAILURE_WINDOW.saturating_sub(since.elapsed()))
                            .as_secs()
                            .max(1)
                    )));
                }
            }
        }
        let may = self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .may_log_in(username);
        let hash = if may {
            let (key, _) = password_keys(username);
            self.settings
                .get::<SecretData>(SECRET_KEY)
                .await?
                .and_then(|(s, _)| s.get(&key).cloned())
        } else {
            None
        };
        // An unknown account costs a hash all the same, so timing does not tell it apart.
        let ok = match &hash {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, dummy_hash());
                false
            }
        };
        if !ok {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let entry = failures
                .entry(username.to_owned())
                .or_insert((0, Instant::now()));
            entry.0 += 1;
            tracing::info!(account = username, "failed login");
            return Err(refused());
        }
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(username);
        // Never older than the last password change (which counts from the next second).
        let now = chrono::Utc::now()
            .timestamp()
            .max(self.password_mtime(username));
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: username.to_owned(),
            iat: now,
            nbf: Some(now),
            exp: Some(now + SESSION_DURATION.as_secs() as i64),
            jti: uuid::Uuid::new_v4().to_string(),
            groups: Vec::new(),
        };
        tracing::info!(account = username, "logged in");
        self.issue(&claims)
    }
}

/// One caller's decisions, with the projects they touch read once (see
/// [`Auth::decisions`]).
pub struct Decisions<'a> {
    auth: &'a Auth,
    rbac: Arc<Rbac>,
    who: Identity,
    projects: HashMap<String, Option<Arc<ProjectEnforcer>>>,
}

impl Decisions<'_> {
    pub async fn can(&mut self, resource: &str, action: &str, object: &str) -> Result<bool> {
        if self.auth.disabled {
            return Ok(true);
        }
        let project = match project_of(resource, object) {
            Some(name) => match self.projects.get(name) {
                Some(known) => known.clone(),
                None => {
                    let enforcer = self.auth.project_enforcer(&self.rbac, name).await?;
                    self.projects.insert(name.to_owned(), enforcer.clone());
                    enforcer
                }
            },
            None => None,
        };
        Ok(self
            .rbac
            .enforce(&self.who, project.as_deref(), resource, action, object))
    }
}

/// Every local account's password change time (`admin.passwordMtime`,
/// `accounts.<name>.passwordMtime`) in unix seconds.
fn password_mtimes(secret: &SecretData) -> HashMap<String, i64> {
    secret
        .iter()
        .filter_map(|(key, value)| {
            let account = if key == "admin.passwordMtime" {
                ADMIN
            } else {
                key.strip_prefix("accounts.")?
                    .strip_suffix(".passwordMtime")?
            };
            let t = chrono::DateTime::parse_from_rfc3339(value)
                .ok()?
                .timestamp();
            Some((account.to_owned(), t))
        })
        .collect()
}

/// Argo CD's bcrypt cost.
const BCRYPT_COST: u32 = 10;

/// A hash of a random password nobody knows, verified for unknown accounts.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let unknown: [u8; 16] = rand::rng().random();
        bcrypt::hash(unknown, BCRYPT_COST).unwrap_or_default()
    })
}

fn key_error(err: jsonwebtoken::errors::Error) -> Error {
    Error::Corrupt {
        what: format!("setting {SECRET_KEY:?}"),
        message: format!("server.secretkey: {err}"),
    }
}

fn denied(who: &Identity, resource: &str, action: &str, object: &str) -> Error {
    Error::PermissionDenied(format!(
        "permission denied: {resource}, {action}, {object}, sub: {}",
        who.subject
    ))
}

fn bearer<T>(req: &Request<T>) -> Option<String> {
    let value = req.metadata().get("authorization")?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

/// Reads `argocd-secret`, creating the server key and the admin password on the first
/// start. The password is kept, readable, in `argocd-initial-admin-secret` for `gitfleet
/// admin initial-password` (whoever can read the control plane's state), never logged.
async fn ensure_secret(settings: &Store) -> Result<SecretData> {
    if let Some((secret, _)) = settings.get::<SecretData>(SECRET_KEY).await?
        && secret.contains_key("server.secretkey")
    {
        return Ok(secret);
    }
    // The generator is not Send: used up before the first await.
    let (key, password) = {
        let mut rng = rand::rng();
        let key: [u8; 32] = rng.random();
        let password: String = (0..16)
            .map(|_| {
                const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
                CHARS[rng.random_range(0..CHARS.len())] as char
            })
            .collect();
        (key, password)
    };
    let hash = bcrypt::hash(&password, BCRYPT_COST).map_err(|e| Error::Corrupt {
        what: "admin password".to_string(),
        message: e.to_string(),
    })?;
    let secret = SecretData::from([
        ("server.secretkey".to_string(), STANDARD.encode(key)),
        ("admin.password".to_string(), hash),
        (
            "admin.passwordMtime".to_string(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
    ]);
    match settings.create(SECRET_KEY, &secret).await {
        Ok(_) => {
            settings
                .put(
                    INITIAL_ADMIN_SECRET,
                    &BTreeMap::from([("password".to_string(), password)]),
                )
                .await?;
            tracing::info!(
                "admin account created; `gitfleet admin initial-password` prints its password"
            );
            Ok(secret)
        }
        // Another gateway made it first: use theirs.
        Err(Error::AlreadyExists { .. }) => settings.require(SECRET_KEY).await,
        Err(err) => Err(err),
    }
}

/// The RBAC policy of an `argocd-rbac-cm` data map; `None` when it sets nothing.
pub(crate) async fn load_rbac(data: &BTreeMap<String, String>) -> Result<Option<Rbac>, String> {
    let csv = data.get("policy.csv").map(String::as_str).unwrap_or("");
    let default_role = data.get("policy.default").map(String::as_str).unwrap_or("");
    let scopes = data
        .get("scopes")
        .map(|s| {
            s.trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|s| s.trim().trim_matches(['"', '\'']).to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if csv.is_empty() && default_role.is_empty() && data.get("scopes").is_none() {
        return Ok(None);
    }
    Rbac::new(
        &format!("{RBAC_CONFIG_MAP} policy.csv"),
        csv,
        default_role,
        scopes,
    )
    .await
    .map(Some)
    .map_err(|e| e.to_string())
}

use gitfleet_bus::async_nats::jetstream::kv as async_nats_kv;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let keys = keys();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: "alice".into(),
            iat: 1,
            exp: Some(chrono::Utc::now().timestamp() + 60),
            ..Claims::default()
        };
        let token = keys.issue(&claims).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), claims);
        let mut tampered = token.clone().into_bytes();
        let middle = tampered.len() / 2;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        assert!(keys.verify(&String::from_utf8(tampered).unwrap()).is_err());
    }

    proptest! {
        #[test]
        fn the_token_parser_never_panics(token in "\\PC{0,300}") {
            prop_assert!(keys().verify(&token).is_err());
        }

        #[test]
        fn token_shaped_garbage_never_panics(
            parts in prop::collection::vec("[A-Za-z0-9_=+/-]{0,80}", 0..5)
        ) {
            prop_assert!(keys().verify(&parts.join(".")).is_err());
        }
    }
}
