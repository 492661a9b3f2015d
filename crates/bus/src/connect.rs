//! Connecting to NATS: one config for every service, secrets kept out of logs and errors.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use crate::error::{BusError, Result};
use crate::sealed::{self, CredentialKey};
use crate::topology::{self, Bucket, ObjectStoreName, Topology};

/// How a service reaches the bus. `url` may list several servers, comma-separated.
#[derive(Clone)]
pub struct BusConfig {
    pub url: String,
    /// A `.creds` file (JWT + nkey seed), the usual way in operator mode.
    pub creds_file: Option<PathBuf>,
    /// A bare nkey seed (`SU...`); never printed.
    pub nkey_seed: Option<String>,
    /// A file holding the nkey seed: each service's own NATS user on a locked bus (see
    /// [`crate::permissions`]).
    pub nkey_file: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    pub require_tls: bool,
    /// Shown by the server in `connz`, so operators can tell services apart.
    pub name: String,
    pub prefix: String,
    /// The key credentials are sealed with in KV (see [`crate::sealed`]); a process
    /// without it reads every document but no credential.
    pub credentials_key_file: Option<PathBuf>,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            url: "nats://127.0.0.1:4222".to_string(),
            creds_file: None,
            nkey_seed: None,
            nkey_file: None,
            tls_ca: None,
            tls_client_cert: None,
            tls_client_key: None,
            require_tls: false,
            name: "gitfleet".to_string(),
            prefix: topology::DEFAULT_PREFIX.to_string(),
            credentials_key_file: None,
        }
    }
}

impl BusConfig {
    pub fn new(url: impl Into<String>) -> Self {
        BusConfig {
            url: url.into(),
            ..Default::default()
        }
    }
}

impl fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusConfig")
            .field("url", &redact_url(&self.url))
            .field("creds_file", &self.creds_file)
            .field("nkey_seed", &self.nkey_seed.as_ref().map(|_| "<redacted>"))
            .field("nkey_file", &self.nkey_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_client_cert", &self.tls_client_cert)
            .field("tls_client_key", &self.tls_client_key)
            .field("require_tls", &self.require_tls)
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("credentials_key_file", &self.credentials_key_file)
            .finish()
    }
}

/// A connected client, its JetStream context, the names it uses, and the key that seals
/// credentials at rest, when this process holds one.
#[derive(Clone, Debug)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub topology: Topology,
    credentials_key: Option<Arc<CredentialKey>>,
    /// KV handles opened so far, by bucket name: opening one asks the server for the
    /// stream's info, and callers on hot paths (the executor's fencing check, once per
    /// sync) would otherwise ask once per call.
    kv_stores: Arc<std::sync::Mutex<std::collections::HashMap<String, jetstream::kv::Store>>>,
}

/// Connects, retrying forever in the background: the call returns at once even when no
/// server is up yet, because services start in any order and the bus is their only
/// dependency. Requests made before the first connection wait or time out.
pub async fn connect(config: &BusConfig) -> Result<Bus> {
    let topology = Topology::new(&config.prefix)?;
    let shown_url = redact_url(&config.url);
    let addrs = config
        .url
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| BusError::InvalidUrl {
            url: shown_url.clone(),
            source: err.into(),
        })?;
    if addrs.is_empty() {
        return Err(BusError::InvalidConfig("no server url".to_string()));
    }
    let ways = [
        config.creds_file.is_some(),
        config.nkey_seed.is_some(),
        config.nkey_file.is_some(),
    ];
    if ways.iter().filter(|w| **w).count() > 1 {
        return Err(BusError::InvalidConfig(
            "set one of creds_file, nkey_seed and nkey_file".to_string(),
        ));
    }
    if config.tls_client_cert.is_some() != config.tls_client_key.is_some() {
        return Err(BusError::InvalidConfig(
            "tls_client_cert and tls_client_key go together".to_string(),
        ));
    }

    let mut options = async_nats::ConnectOptions::new()
        .name(&config.name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        // Back off to at most 2 s so a restarted server is found again quickly.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((50 * attempts as u64).min(2_000))
        })
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("nats connected"),
                async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                // A client dropped on purpose (a role a process does not run).
                async_nats::Event::Closed => tracing::debug!("nats connection closed"),
                other => tracing::warn!(event = %other, "nats connection event"),
            }
        })
        .require_tls(config.require_tls);
    if let Some(path) = &config.creds_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|source| BusError::CredsFile {
                path: path.clone(),
                source,
            })?;
    }
    if let Some(seed) = &config.nkey_seed {
        options = options.nkey(seed.clone());
    }
    if let Some(path) = &config.nkey_file {
        let seed = crate::permissions::read_seed(path).map_err(BusError::InvalidConfig)?;
        options = options.nkey(seed);
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls_client_cert, &config.tls_client_key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }

    let credentials_key = match &config.credentials_key_file {
        Some(path) => Some(Arc::new(CredentialKey::load(path)?)),
        None => None,
    };
    let client = options
        .connect(addrs)
        .await
        .map_err(|err| BusError::Connect {
            url: shown_url,
            source: err.into(),
        })?;
    let bus = Bus::new(client, topology);
    Ok(match credentials_key {
        Some(key) => bus.with_credentials_key(key),
        None => bus,
    })
}

impl Bus {
    pub fn new(client: async_nats::Client, topology: Topology) -> Self {
        let js = jetstream::new(client.clone());
        Bus {
            client,
            js,
            topology,
            credentials_key: None,
            kv_stores: Arc::default(),
        }
    }

    pub fn with_credentials_key(mut self, key: Arc<CredentialKey>) -> Self {
        self.credentials_key = Some(key);
        self
    }

    pub fn credentials_key(&self) -> Option<&CredentialKey> {
        self.credentials_key.as_deref()
    }

    /// Serializes a document for `bucket` key `name` with its credentials sealed (see
    /// [`sealed::sealing_of`]); a document with a credential and no key to seal it is
    /// refused, never stored in clear.
    pub fn encode_document<T: serde::Serialize>(
        &self,
        bucket: Bucket,
        name: &str,
        value: &T,
    ) -> std::result::Result<Vec<u8>, sealed::SealError> {
        sealed::encode(
            self.credentials_key(),
            sealed::sealing_of(bucket, name),
            value,
        )
    }

    /// Reads a document of `bucket` key `name`, its sealed credentials opened.
    pub fn decode_document<T: serde::de::DeserializeOwned>(
        &self,
        bucket: Bucket,
        name: &str,
        bytes: &[u8],
    ) -> std::result::Result<T, sealed::SealError> {
        sealed::decode(
            self.credentials_key(),
            sealed::sealing_of(bucket, name),
            bytes,
        )
    }

    /// Creates or updates every stream, bucket and object store; see [`topology::ensure`].
    pub async fn ensure(&self) -> Result<()> {
        topology::ensure(&self.js, &self.topology).await
    }

    pub async fn kv(&self, bucket: Bucket) -> Result<jetstream::kv::Store> {
        let name = self.topology.bucket(bucket);
        let opened = self
            .kv_stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
            .cloned();
        if let Some(store) = opened {
            return Ok(store);
        }
        let store = self
            .js
            .get_key_value(&name)
            .await
            .map_err(|err| BusError::Open {
                what: format!("kv bucket {name}"),
                source: err.into(),
            })?;
        self.kv_stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, store.clone());
        Ok(store)
    }

    pub async fn object_store(
        &self,
        store: ObjectStoreName,
    ) -> Result<jetstream::object_store::ObjectStore> {
        let name = self.topology.object_store(store);
        self.js
            .get_object_store(&name)
            .await
            .map_err(|err| BusError::Open {
                what: format!("object store {name}"),
                source: err.into(),
            })
    }
}

/// Hides user info (`nats://user:pass@host`) and tokens (`nats://token@host`).
fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            let (scheme, rest) = match one.find("://") {
                Some(i) => one.split_at(i + 3),
                None => ("", one),
            };
            match rest.rfind('@') {
                Some(at) => format!("{scheme}<redacted>@{}", &rest[at + 1..]),
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let config = BusConfig {
            url: "nats://alice:hunter2@nats-0:4222, tls://s3cr3tt0ken@nats-1:4222".to_string(),
            nkey_seed: Some(
                "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY".to_string(),
            ),
            ..Default::default()
        };
        let shown = format!("{config:?}");
        for secret in ["hunter2", "alice", "s3cr3tt0ken", "SUACSSL3"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(
            shown.contains("nats-0:4222") && shown.contains("nats-1:4222"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn errors_hide_secrets() {
        let config = BusConfig {
            url: "nats://alice:hunter2@exa mple:4222".to_string(),
            ..Default::default()
        };
        let err = connect(&config).await.unwrap_err();
        let mut shown = format!("{err} {err:?}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            shown.push_str(&s.to_string());
            source = s.source();
        }
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(matches!(err, BusError::InvalidUrl { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn rejects_conflicting_auth() {
        let config = BusConfig {
            creds_file: Some("/nonexistent.creds".into()),
            nkey_seed: Some("SU...".to_string()),
            ..Default::default()
        };
        assert!(matches!(
            connect(&config).await,
            Err(BusError::InvalidConfig(_))
        ));
    }

    #[tokio::test]
    async fn missing_creds_file_is_named() {
        let config = BusConfig {
            creds_file: Some("/nonexistent.creds".into()),
            ..Default::default()
        };
        let err = connect(&config).await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent.creds"), "{err}");
    }
}
