//! Typed JSON documents in the bus's KV buckets, keyed by `subject_token(name)`, with
//! their credentials sealed at rest ([`gitfleet_bus::sealed`]).

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use gitfleet_bus::{Bucket, Bus, SealError, subject_token};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

use gitfleet_bus::async_nats;

/// How many reads a listing keeps in flight.
const LIST_CONCURRENCY: usize = 32;

/// One bucket, with the kind of object it holds for error messages.
#[derive(Clone)]
pub struct Store {
    kv: kv::Store,
    /// `application`, `cluster`, ... as users call it.
    kind: &'static str,
    /// Seals and opens credentials, by bucket and key.
    bus: Bus,
    bucket: Bucket,
}

fn kv_err(op: &str, store: &kv::Store, key: &str, err: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{op} key {key} in kv {}: {err}", store.name))
}

impl Store {
    pub async fn open(bus: &Bus, bucket: Bucket, kind: &'static str) -> Result<Self> {
        Ok(Store {
            kv: bus.kv(bucket).await?,
            kind,
            bus: bus.clone(),
            bucket,
        })
    }

    /// The document and its revision; `None` when absent or deleted.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<(T, u64)>> {
        let key = subject_token(name);
        let entry = self
            .kv
            .entry(&key)
            .await
            .map_err(|e| kv_err("reading", &self.kv, &key, e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                Ok(Some((self.decode(name, &e.value)?, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Every value of `name` from now on (the current one first): a watch sees each write,
    /// where polling could miss one overwritten before the next poll.
    pub async fn watch(&self, name: &str) -> Result<kv::Watch> {
        let key = subject_token(name);
        self.kv
            .watch_with_history(&key)
            .await
            .map_err(|e| kv_err("watching", &self.kv, &key, e))
    }

    /// Decodes one watched entry; `None` for deletes.
    pub fn decode_entry<T: DeserializeOwned>(
        &self,
        name: &str,
        e: &kv::Entry,
    ) -> Result<Option<(T, u64)>> {
        match e.operation {
            kv::Operation::Put => Ok(Some((self.decode(name, &e.value)?, e.revision))),
            _ => Ok(None),
        }
    }

    /// Like [`Store::get`], but absence is [`Error::NotFound`].
    pub async fn require<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.get(name)
            .await?
            .map(|(t, _)| t)
            .ok_or_else(|| Error::NotFound {
                kind: self.kind,
                name: name.to_string(),
            })
    }

    /// Stores a new document; [`Error::AlreadyExists`] when the name is taken.
    pub async fn create<T: Serialize>(&self, name: &str, value: &T) -> Result<u64> {
        let key = subject_token(name);
        match self.kv.create(&key, self.encode(name, value)?).await {
            Ok(rev) => Ok(rev),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(Error::AlreadyExists {
                kind: self.kind,
                name: name.to_string(),
            }),
            Err(e) => Err(kv_err("creating", &self.kv, &key, e)),
        }
    }

    /// Writes `value` only if the document is still at `revision`; `Ok(None)` when it
    /// moved on meanwhile.
    pub async fn update<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        revision: u64,
    ) -> Result<Option<u64>> {
        let key = subject_token(name);
        match self
            .kv
            .update(&key, self.encode(name, value)?, revision)
            .await
        {
            Ok(rev) => Ok(Some(rev)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(kv_err("updating", &self.kv, &key, e)),
        }
    }

    pub async fn put<T: Serialize>(&self, name: &str, value: &T) -> Result<u64> {
        let key = subject_token(name);
        self.kv
            .put(&key, self.encode(name, value)?)
            .await
            .map_err(|e| kv_err("writing", &self.kv, &key, e))
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let key = subject_token(name);
        self.kv
            .delete(&key)
            .await
            .map_err(|e| kv_err("deleting", &self.kv, &key, e))
    }

    /// Every document in the bucket, in key order.
    pub async fn list<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        let keys: Vec<String> = match self.kv.keys().await {
            Ok(keys) => keys
                .try_collect()
                .await
                .map_err(|e| kv_err("listing", &self.kv, "*", e))?,
            Err(e) => return Err(kv_err("listing", &self.kv, "*", e)),
        };
        let mut keys = keys;
        keys.sort();
        let reads = futures::stream::iter(keys.into_iter().map(|key| async move {
            let entry = self
                .kv
                .get(&key)
                .await
                .map_err(|e| kv_err("reading", &self.kv, &key, e))?;
            match entry {
                Some(value) => self.decode::<T>(&key, &value).map(Some),
                None => Ok(None),
            }
        }))
        .buffered(LIST_CONCURRENCY)
        .collect::<Vec<Result<Option<T>>>>()
        .await;
        let mut out = Vec::new();
        for r in reads {
            if let Some(t) = r? {
                out.push(t);
            }
        }
        Ok(out)
    }

    fn decode<T: DeserializeOwned>(&self, name: &str, bytes: &[u8]) -> Result<T> {
        self.bus
            .decode_document(self.bucket, name, bytes)
            .map_err(|e| self.seal_error(name, e))
    }

    fn encode<T: Serialize>(&self, name: &str, value: &T) -> Result<Bytes> {
        self.bus
            .encode_document(self.bucket, name, value)
            .map(Bytes::from)
            .map_err(|e| self.seal_error(name, e))
    }

    fn seal_error(&self, name: &str, e: SealError) -> Error {
        match e {
            SealError::Json(e) => Error::Corrupt {
                what: format!("{} {name:?}", self.kind),
                message: e.to_string(),
            },
            other => Error::Unavailable(format!("{} {name:?}: {other}", self.kind)),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Corrupt {
            what: "json".to_string(),
            message: e.to_string(),
        }
    }
}
