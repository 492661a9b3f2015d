//! Messages whose body may outgrow the server's `max_payload`.
//!
//! A body over the limit goes to the `payloads` object store under its SHA-256, and the
//! message carries only the key in the [`OBJECT_HEADER`] header and an empty body.
//! Content addressing makes a re-publish of the same body free and lets the reader check
//! what it got.

use async_nats::HeaderMap;
use async_nats::jetstream::object_store::ObjectStore;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::connect::Bus;
use crate::error::{BusError, Result};
use crate::topology::ObjectStoreName;

/// Names the object holding the real body: `sha256-<hex>`.
pub const OBJECT_HEADER: &str = "Gf-Object";
/// The real body's length in bytes, for readers that want to refuse big ones early.
pub const SIZE_HEADER: &str = "Gf-Object-Size";

/// The server default, used while the client has not yet seen the server's INFO.
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

impl Bus {
    /// Largest body sent inline: the server's `max_payload` less room for headers.
    pub fn payload_limit(&self) -> usize {
        let max = match self.client.server_info().max_payload {
            0 => DEFAULT_MAX_PAYLOAD,
            n => n,
        };
        max - (max / 16).min(64 * 1024)
    }

    /// Returns the headers and body to send for `body`: unchanged when it fits, else an
    /// envelope pointing at the stored body. `headers` are kept either way.
    pub async fn offload(&self, mut headers: HeaderMap, body: Bytes) -> Result<(HeaderMap, Bytes)> {
        if body.len() <= self.payload_limit() {
            return Ok((headers, body));
        }
        let store = self.object_store(ObjectStoreName::Payloads).await?;
        let key = content_key(&body);
        let store_name = self.topology.object_store(ObjectStoreName::Payloads);
        // Same key means same bytes, so an existing object is the one we would write.
        if store.info(&key).await.is_err() {
            let mut reader: &[u8] = &body;
            store
                .put(key.as_str(), &mut reader)
                .await
                .map_err(|err| BusError::Object {
                    op: "putting",
                    store: store_name,
                    key: key.clone(),
                    source: err.into(),
                })?;
        }
        headers.insert(OBJECT_HEADER, key.as_str());
        headers.insert(SIZE_HEADER, body.len().to_string().as_str());
        Ok((headers, Bytes::new()))
    }

    /// Publishes `body` to a subject captured by a stream and waits for the stream's ack,
    /// offloading the body when it is too large for one message.
    pub async fn publish_large(&self, subject: impl Into<String>, body: Bytes) -> Result<()> {
        self.publish_large_with(subject, HeaderMap::new(), body)
            .await
    }

    /// [`Bus::publish_large`] with headers of the caller's (`Nats-Msg-Id`).
    pub async fn publish_large_with(
        &self,
        subject: impl Into<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<()> {
        let subject = subject.into();
        let (headers, body) = self.offload(headers, body).await?;
        let publish_err = |err: async_nats::jetstream::context::PublishError| BusError::Publish {
            subject: subject.clone(),
            source: err.into(),
        };
        self.js
            .publish_with_headers(subject.clone(), headers, body)
            .await
            .map_err(publish_err)?
            .await
            .map_err(publish_err)?;
        Ok(())
    }

    /// The body a message stands for, whether it came inline or through the object store.
    pub async fn read_payload(&self, message: &async_nats::Message) -> Result<Bytes> {
        let key = message
            .headers
            .as_ref()
            .and_then(|h| h.get(OBJECT_HEADER))
            .map(|v| v.as_str().to_string());
        let Some(key) = key else {
            return Ok(message.payload.clone());
        };
        let store = self.object_store(ObjectStoreName::Payloads).await?;
        self.read_object(&store, &key).await
    }

    async fn read_object(&self, store: &ObjectStore, key: &str) -> Result<Bytes> {
        let store_name = self.topology.object_store(ObjectStoreName::Payloads);
        let object_err = |source: crate::error::Source| BusError::Object {
            op: "reading",
            store: store_name.clone(),
            key: key.to_string(),
            source,
        };
        let mut object = store.get(key).await.map_err(|err| object_err(err.into()))?;
        let mut body = Vec::with_capacity(object.info().size);
        object
            .read_to_end(&mut body)
            .await
            .map_err(|err| object_err(err.into()))?;
        if content_key(&body) != key {
            return Err(BusError::Corrupt {
                store: store_name,
                key: key.to_string(),
            });
        }
        Ok(Bytes::from(body))
    }
}

/// `sha256-<lowercase hex>` of the body.
pub fn content_key(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut key = String::with_capacity(7 + 64);
    key.push_str("sha256-");
    for b in digest {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_key_is_sha256_hex() {
        assert_eq!(
            content_key(b"abc"),
            "sha256-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
