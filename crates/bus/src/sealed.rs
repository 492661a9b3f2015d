//! Credentials at rest: each credential in a stored document sealed with AES-256-GCM
//! before it reaches KV, so the bucket's bytes (a backup, a stream snapshot, a reader the
//! bus lets in) hold no plaintext secret; only a process given the key reads them.
//!
//! A sealed value replaces the string in place (`gitfleet-sealed:v1:<key id>:<base64 of
//! nonce, ciphertext and tag>`), so the document keeps its shape and its other fields stay
//! readable (the diff workers read a cluster's name and namespaces without the key). The
//! document's identity (a cluster's `server`, a repository's `repo` URL) is the associated
//! data: a sealed token copied into another entry, pointing at another server, does not
//! open.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::Digest as _;

use crate::topology::Bucket;

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "gitfleet-sealed:v1:";
/// The environment variable naming the key file, read by every service and the CLI.
pub const KEY_FILE_ENV: &str = "GITFLEET_CREDENTIALS_KEY_FILE";
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "credentials key {path}: {message} (expected {KEY_LEN} random bytes, base64, as \
         `cargo xtask up` writes them)"
    )]
    Key { path: String, message: String },
    #[error(
        "a credential is sealed and this process has no credentials key (set --credentials-key-file or ${KEY_FILE_ENV})"
    )]
    NoKey,
    #[error("a credential is sealed with key {found}, not this process's key {ours}")]
    OtherKey { found: String, ours: String },
    #[error("a sealed credential does not open: it was altered, or moved from another entry")]
    Tampered,
    #[error(
        "this process has no credentials key to seal a credential with, and credentials are \
         never stored in clear (set --credentials-key-file or ${KEY_FILE_ENV})"
    )]
    NoKeyToSeal,
    #[error("a sealed credential is malformed: {0}")]
    Malformed(&'static str),
    #[error("encoding a sealed document: {0}")]
    Json(#[from] serde_json::Error),
}

/// The key credentials are sealed with. `Debug` shows only its id.
pub struct CredentialKey {
    key: RandomizedNonceKey,
    /// The first 8 hex digits of the key's SHA-256: names the key in sealed values and
    /// errors without revealing it.
    id: String,
}

impl fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialKey")
            .field("id", &self.id)
            .finish()
    }
}

impl CredentialKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!("{} bytes", bytes.len()));
        }
        let key =
            RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| "rejected".to_owned())?;
        let digest = sha2::Sha256::digest(bytes);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(CredentialKey { key, id })
    }

    /// A new random key and its text form (what [`CredentialKey::load`] reads).
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
        let text = STANDARD.encode(bytes);
        let key = Self::from_bytes(&bytes).expect("a key of the right length");
        (key, text)
    }

    /// Reads a key file: base64 of 32 bytes, surrounding whitespace ignored.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let fail = |message: String| SealError::Key {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| fail("not base64".into()))?;
        Self::from_bytes(&bytes).map_err(fail)
    }

    /// Reads the key file, or makes one (readable by its owner only) when there is none:
    /// what `gitfleet up` and `cargo xtask up` do with their state folder.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        if path.exists() {
            return Self::load(path);
        }
        let fail = |e: std::io::Error| SealError::Key {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let (key, text) = Self::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
                    .map_err(fail)?;
                Ok(key)
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(fail(e)),
        }
    }

    /// The key named by `$GITFLEET_CREDENTIALS_KEY_FILE`, if set.
    pub fn from_env() -> Result<Option<Self>, SealError> {
        match std::env::var_os(KEY_FILE_ENV) {
            Some(path) if !path.is_empty() => Self::load(Path::new(&path)).map(Some),
            _ => Ok(None),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Nonce, ciphertext and tag of `plain` for `context`: what every sealed form holds.
    fn seal_raw(&self, plain: &[u8], context: &str) -> Vec<u8> {
        let mut data = plain.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut data)
            .expect("AES-GCM sealing of an in-memory buffer does not fail");
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&data);
        out
    }

    /// Opens what [`CredentialKey::seal_raw`] made, once the sealed form named key `id`.
    fn open_raw(&self, id: &[u8], body: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        if id != self.id.as_bytes() {
            return Err(SealError::OtherKey {
                found: String::from_utf8_lossy(id).into_owned(),
                ours: self.id.clone(),
            });
        }
        if body.len() < NONCE_LEN {
            return Err(SealError::Malformed("too short"));
        }
        let nonce = Nonce::try_assume_unique_for_key(&body[..NONCE_LEN])
            .map_err(|_| SealError::Malformed("bad nonce"))?;
        let mut data = body[NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| SealError::Tampered)?;
        Ok(plain.to_vec())
    }

    /// Seals one value for the document named `context`; a value already sealed is kept.
    pub fn seal(&self, plain: &str, context: &str) -> String {
        if plain.starts_with(SEALED_PREFIX) {
            return plain.to_owned();
        }
        let sealed = self.seal_raw(plain.as_bytes(), context);
        format!("{SEALED_PREFIX}{}:{}", self.id, STANDARD.encode(sealed))
    }

    /// Opens one value sealed for `context`; a value that is not sealed is returned as is
    /// (entries written before sealing, or by hand).
    pub fn open(&self, value: &str, context: &str) -> Result<String, SealError> {
        let Some(rest) = value.strip_prefix(SEALED_PREFIX) else {
            return Ok(value.to_owned());
        };
        let (id, body) = rest
            .split_once(':')
            .ok_or(SealError::Malformed("no key id"))?;
        let body = STANDARD
            .decode(body)
            .map_err(|_| SealError::Malformed("not base64"))?;
        let plain = self.open_raw(id.as_bytes(), &body, context)?;
        String::from_utf8(plain).map_err(|_| SealError::Malformed("not UTF-8"))
    }

    /// Seals a whole value (a cached render that may hold a Secret's data), bound to
    /// `context` (its key).
    pub fn seal_bytes(&self, plain: &[u8], context: &str) -> Vec<u8> {
        let mut out = SEALED_BYTES_MAGIC.to_vec();
        out.extend_from_slice(self.id.as_bytes());
        out.push(b':');
        out.extend_from_slice(&self.seal_raw(plain, context));
        out
    }

    /// Opens what [`CredentialKey::seal_bytes`] sealed for `context`; bytes that were
    /// not sealed are returned as they are.
    pub fn open_bytes(&self, value: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        let Some(rest) = value.strip_prefix(SEALED_BYTES_MAGIC) else {
            return Ok(value.to_vec());
        };
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or(SealError::Malformed("no key id"))?;
        self.open_raw(&rest[..colon], &rest[colon + 1..], context)
    }
}

/// What a sealed byte value starts with (then the key id, nonce, ciphertext and tag).
const SEALED_BYTES_MAGIC: &[u8] = b"gitfleet-sealed-bytes:v1:";

/// The values of every core `Secret` among `objects` (`data` and `stringData`), sealed
/// in place for `context` (the sync operation they travel in): a queued operation rests
/// in its stream with no Secret value in clear. Others objects are left alone.
pub fn seal_secret_data(key: &CredentialKey, objects: &mut [Value], context: &str) {
    for_secret_values(objects, &mut |v| {
        *v = key.seal(v, context);
        Ok(())
    })
    .expect("sealing does not fail");
}

/// Opens what [`seal_secret_data`] sealed; values never sealed are kept as they are.
pub fn open_secret_data(
    key: Option<&CredentialKey>,
    objects: &mut [Value],
    context: &str,
) -> Result<(), SealError> {
    for_secret_values(objects, &mut |v| {
        if v.starts_with(SEALED_PREFIX) {
            *v = key.ok_or(SealError::NoKey)?.open(v, context)?;
        }
        Ok(())
    })
}

fn for_secret_values(
    objects: &mut [Value],
    f: &mut dyn FnMut(&mut String) -> Result<(), SealError>,
) -> Result<(), SealError> {
    for obj in objects {
        let is_secret = obj.get("kind").and_then(Value::as_str) == Some("Secret")
            && obj.get("apiVersion").and_then(Value::as_str) == Some("v1");
        if !is_secret {
            continue;
        }
        for field in ["data", "stringData"] {
            if let Some(Value::Object(map)) = obj.get_mut(field) {
                for v in map.values_mut() {
                    if let Value::String(s) = v {
                        f(s)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Which strings of a stored document are credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// Nothing: the document holds no credential.
    None,
    /// The fields named in [`gitfleet_model::CREDENTIAL_FIELDS`], at any depth: clusters,
    /// repositories, credential templates.
    CredentialFields,
    /// Every string value at the top level: a settings Secret (`argocd-secret`, ...).
    AllValues,
}

/// What binds a document's sealed values to it: a cluster's server, a repository's URL.
/// (Settings Secrets have neither; their entries are bound to nothing more.)
fn context_of(doc: &Value) -> String {
    ["server", "repo"]
        .iter()
        .find_map(|k| doc.get(k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned()
}

fn each_credential(
    doc: &mut Value,
    sealing: Sealing,
    f: &mut dyn FnMut(&mut String) -> Result<(), SealError>,
) -> Result<(), SealError> {
    fn walk(
        value: &mut Value,
        f: &mut dyn FnMut(&mut String) -> Result<(), SealError>,
    ) -> Result<(), SealError> {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    match v {
                        Value::String(s)
                            if gitfleet_model::CREDENTIAL_FIELDS.contains(&k.as_str()) =>
                        {
                            f(s)?
                        }
                        other => walk(other, f)?,
                    }
                }
            }
            Value::Array(items) => {
                for v in items {
                    walk(v, f)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    match sealing {
        Sealing::None => Ok(()),
        Sealing::CredentialFields => walk(doc, f),
        Sealing::AllValues => {
            if let Value::Object(map) = doc {
                for v in map.values_mut() {
                    if let Value::String(s) = v {
                        f(s)?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// What is sealed in key `name` of `bucket`: the one table of where credentials live.
pub fn sealing_of(bucket: Bucket, name: &str) -> Sealing {
    match bucket {
        Bucket::Clusters | Bucket::Repositories | Bucket::RepoCreds => Sealing::CredentialFields,
        Bucket::Settings if SEALED_SETTINGS.contains(&name) => Sealing::AllValues,
        Bucket::Secrets => Sealing::AllValues,
        _ => Sealing::None,
    }
}

/// Settings kept as Secrets: Argo CD's settings Secrets and the initial admin password.
const SEALED_SETTINGS: [&str; 3] = [
    gitfleet_model::SETTINGS_SECRETS[0],
    gitfleet_model::SETTINGS_SECRETS[1],
    "argocd-initial-admin-secret",
];

/// Serializes `value` with its credentials sealed; without a key, a document holding a
/// credential is [`SealError::NoKeyToSeal`].
pub fn encode<T: Serialize>(
    key: Option<&CredentialKey>,
    sealing: Sealing,
    value: &T,
) -> Result<Vec<u8>, SealError> {
    let mut doc = serde_json::to_value(value)?;
    let context = context_of(&doc);
    each_credential(&mut doc, sealing, &mut |s| {
        if !s.is_empty() {
            *s = key.ok_or(SealError::NoKeyToSeal)?.seal(s, &context);
        }
        Ok(())
    })?;
    Ok(serde_json::to_vec(&doc)?)
}

/// Reads a stored document, opening its sealed credentials; without a key, a document
/// with a sealed credential is [`SealError::NoKey`] (plaintext ones read as they are).
pub fn decode<T: DeserializeOwned>(
    key: Option<&CredentialKey>,
    sealing: Sealing,
    bytes: &[u8],
) -> Result<T, SealError> {
    let mut doc: Value = serde_json::from_slice(bytes)?;
    let context = context_of(&doc);
    each_credential(&mut doc, sealing, &mut |s| {
        if s.starts_with(SEALED_PREFIX) {
            *s = key.ok_or(SealError::NoKey)?.open(s, &context)?;
        }
        Ok(())
    })?;
    Ok(serde_json::from_value(doc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_doc(server: &str, token: &str) -> Value {
        serde_json::json!({
            "server": server,
            "name": "prod",
            "config": {"bearerToken": token, "tlsClientConfig": {"keyData": "S0VZ", "caData": "Q0E="}},
        })
    }

    #[test]
    fn sealed_documents_hold_no_plaintext_and_open_again() {
        let (key, _) = CredentialKey::generate();
        let doc = cluster_doc("https://prod:6443", "tok-123456");
        let bytes = encode(Some(&key), Sealing::CredentialFields, &doc).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            !text.contains("tok-123456") && !text.contains("S0VZ"),
            "{text}"
        );
        // Not secret, so readable without the key.
        assert!(
            text.contains("Q0E=") && text.contains("https://prod:6443"),
            "{text}"
        );
        let back: Value = decode(Some(&key), Sealing::CredentialFields, &bytes).unwrap();
        assert_eq!(back, doc);
        // Sealing twice keeps the sealed value; opening still gives the plaintext.
        let again = encode(Some(&key), Sealing::CredentialFields, &back).unwrap();
        let back: Value = decode(Some(&key), Sealing::CredentialFields, &again).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn a_token_moved_to_another_server_does_not_open() {
        let (key, _) = CredentialKey::generate();
        let sealed: Value = serde_json::from_slice(
            &encode(
                Some(&key),
                Sealing::CredentialFields,
                &cluster_doc("https://prod:6443", "t"),
            )
            .unwrap(),
        )
        .unwrap();
        let mut moved = sealed.clone();
        moved["server"] = "https://attacker:6443".into();
        let err = decode::<Value>(
            Some(&key),
            Sealing::CredentialFields,
            &serde_json::to_vec(&moved).unwrap(),
        )
        .unwrap_err();
        assert!(matches!(err, SealError::Tampered), "{err}");
    }

    #[test]
    fn without_the_key_or_with_another_the_error_says_so() {
        let (key, _) = CredentialKey::generate();
        let (other, _) = CredentialKey::generate();
        let bytes = encode(
            Some(&key),
            Sealing::CredentialFields,
            &cluster_doc("s", "t"),
        )
        .unwrap();
        let err = decode::<Value>(None, Sealing::CredentialFields, &bytes).unwrap_err();
        assert!(matches!(err, SealError::NoKey), "{err}");
        let err = decode::<Value>(Some(&other), Sealing::CredentialFields, &bytes).unwrap_err();
        assert!(err.to_string().contains(key.id()), "{err}");
        // Plaintext entries still read, with or without a key.
        let plain = serde_json::to_vec(&cluster_doc("s", "t")).unwrap();
        let back: Value = decode(None, Sealing::CredentialFields, &plain).unwrap();
        assert_eq!(back["config"]["bearerToken"], "t");
    }

    #[test]
    fn settings_secrets_seal_every_value() {
        let (key, _) = CredentialKey::generate();
        let doc = serde_json::json!({"server.secretkey": "c2VjcmV0", "admin.password": "$2b$10$x"});
        let bytes = encode(Some(&key), Sealing::AllValues, &doc).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("$2b$10$x"),
            "{text}"
        );
        assert_eq!(
            decode::<Value>(Some(&key), Sealing::AllValues, &bytes).unwrap(),
            doc
        );
    }

    #[test]
    fn without_a_key_credentials_are_refused_not_stored_in_clear() {
        let err = encode(None, Sealing::CredentialFields, &cluster_doc("s", "t")).unwrap_err();
        assert!(matches!(err, SealError::NoKeyToSeal), "{err}");
        // A document without credentials needs no key.
        let doc = serde_json::json!({"server": "s", "config": {"bearerToken": ""}});
        assert!(encode(None, Sealing::CredentialFields, &doc).is_ok());
        assert_eq!(sealing_of(Bucket::Settings, "argocd-cm"), Sealing::None);
        assert_eq!(
            sealing_of(Bucket::Settings, "argocd-secret"),
            Sealing::AllValues
        );
        assert_eq!(sealing_of(Bucket::Clusters, "x"), Sealing::CredentialFields);
    }

    #[test]
    fn key_files_are_made_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/credentials.key");
        let made = CredentialKey::load_or_create(&path).unwrap();
        let read = CredentialKey::load_or_create(&path).unwrap();
        assert_eq!(made.id(), read.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        std::fs::write(&path, "bm90IGEga2V5").unwrap();
        let err = CredentialKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("credentials.key"), "{err}");
        assert!(!format!("{made:?}").contains("key:"), "{made:?}");
    }

    #[test]
    fn sealed_bytes_open_only_with_their_key_and_context() {
        let (key, _) = CredentialKey::generate();
        let (other, _) = CredentialKey::generate();
        let plain = b"kind: Secret\ndata: {password: czNjcjN0}";
        let sealed = key.seal_bytes(plain, "k1");
        assert!(!sealed.windows(8).any(|w| w == b"czNjcjN0"));
        assert_eq!(key.open_bytes(&sealed, "k1").unwrap(), plain);
        assert!(matches!(
            key.open_bytes(&sealed, "k2"),
            Err(SealError::Tampered)
        ));
        assert!(matches!(
            other.open_bytes(&sealed, "k1"),
            Err(SealError::OtherKey { .. })
        ));
        assert!(key.open_bytes(&sealed[..30], "k1").is_err());
        assert_eq!(key.open_bytes(plain, "k1").unwrap(), plain);
    }

    #[test]
    fn secret_manifests_travel_sealed_and_open_for_their_operation_only() {
        let (key, _) = CredentialKey::generate();
        let original = vec![
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                               "data": {"a": "czNjcjN0"}, "stringData": {"b": "plain-pw"}}),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "visible"}}),
        ];
        let mut objects = original.clone();
        seal_secret_data(&key, &mut objects, "app/op-1");
        let text = serde_json::to_string(&objects).unwrap();
        assert!(
            !text.contains("czNjcjN0") && !text.contains("plain-pw"),
            "{text}"
        );
        assert!(text.contains("visible"));
        let mut moved = objects.clone();
        assert!(open_secret_data(Some(&key), &mut moved, "app/op-2").is_err());
        assert!(matches!(
            open_secret_data(None, &mut objects.clone(), "app/op-1"),
            Err(SealError::NoKey)
        ));
        open_secret_data(Some(&key), &mut objects, "app/op-1").unwrap();
        assert_eq!(objects, original);
    }

    #[test]
    fn tampered_and_malformed_values_are_errors_not_panics() {
        let (key, _) = CredentialKey::generate();
        let sealed = key.seal("secret", "ctx");
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            flipped.as_str(),
            "gitfleet-sealed:v1:",
            "gitfleet-sealed:v1:zz",
            &format!("{SEALED_PREFIX}{}:", key.id()),
            &format!("{SEALED_PREFIX}{}:!!", key.id()),
        ] {
            assert!(key.open(bad, "ctx").is_err(), "{bad}");
        }
        assert_eq!(key.open(&sealed, "ctx").unwrap(), "secret");
    }
}
