//! Renders by content: a result is kept under the object ids of exactly what its render
//! read (its inputs), with the request's other settings and the tools' fingerprint, not
//! under the commit. A commit that leaves an app's inputs as they were costs that app no
//! render, on this renderer, on another, and after a restart: results live in memory
//! (bounded by bytes) and in NATS (KV `rendered`, or the `manifests` object store for a
//! result too large for one message), and what each request read lives in KV
//! `render-inputs`.
//!
//! A request's key is its *recipe* (the request without the commit) and the ids of the
//! inputs its last render read. Same recipe and same input ids mean the same files are
//! read by the same tool with the same settings, so the same manifests come out; a
//! render whose output may name the commit (a plugin, which sees `ARGOCD_APP_REVISION`,
//! or settings that substitute it) keeps the commit in its key.
//!
//! Nothing here may fail a render: an unreachable store or git watcher means a render.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gitfleet_bus::async_nats::jetstream::{kv, object_store::ObjectStore};
use gitfleet_bus::{Bucket, Bus, ObjectStoreName, content_key};
use gitfleet_messages::{RenderRequest, TreeIds, TreeIdsRequest};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;
use tokio_util::task::TaskTracker;

use crate::service::is_full_commit_id;
use crate::source::{Tool, Tools};

/// What a render of one recipe read, as kept in KV `render-inputs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipe {
    /// Repository-relative paths (folders with everything below them, single files).
    pub inputs: Vec<String>,
    /// The output may depend on the commit itself, not only on what it holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub commit_bound: bool,
}

/// Where a request's result would be, once its inputs' ids are known.
#[derive(Debug, Clone)]
pub struct Lookup {
    recipe_key: String,
    request: RenderRequest,
}

pub struct ContentCache {
    bus: Bus,
    recipes_kv: Option<kv::Store>,
    /// Results that fit in one message.
    results_kv: Option<kv::Store>,
    /// Larger results.
    results_store: Option<ObjectStore>,
    recipes: moka::sync::Cache<String, Arc<Recipe>>,
    results: moka::sync::Cache<String, Bytes>,
    fingerprint: String,
    timeout: Duration,
    counters: Arc<Counters>,
    /// Results being kept, written behind their replies.
    writes: TaskTracker,
}

/// How requests were answered, for tests and the bench.
#[derive(Debug, Default)]
pub struct Counters {
    /// Found by content in memory.
    pub memory_hits: std::sync::atomic::AtomicU64,
    /// Found by content in NATS (KV or the object store).
    pub store_hits: std::sync::atomic::AtomicU64,
    /// Rendered.
    pub renders: std::sync::atomic::AtomicU64,
}

impl ContentCache {
    /// `fingerprint` names the tools and their settings: a new tool version is a new key.
    /// `max_bytes` bounds the results kept in memory.
    pub async fn open(
        bus: Bus,
        fingerprint: String,
        max_bytes: u64,
        timeout: Duration,
        counters: Arc<Counters>,
    ) -> ContentCache {
        // A bus without the buckets (an old topology) still renders: in memory only.
        let recipes_kv = match bus.kv(Bucket::RenderInputs).await {
            Ok(store) => Some(store),
            Err(err) => {
                tracing::warn!(error = %err, "render inputs are not kept across restarts");
                None
            }
        };
        let results_kv = match bus.kv(Bucket::Rendered).await {
            Ok(store) => Some(store),
            Err(err) => {
                tracing::warn!(error = %err, "rendered manifests are not kept across restarts");
                None
            }
        };
        let results_store = match bus.object_store(ObjectStoreName::Manifests).await {
            Ok(store) => Some(store),
            Err(err) => {
                tracing::warn!(error = %err, "rendered manifests are not kept across restarts");
                None
            }
        };
        ContentCache {
            bus,
            recipes_kv,
            results_kv,
            results_store,
            recipes: moka::sync::Cache::builder()
                .max_capacity(64 << 20)
                .weigher(|k: &String, v: &Arc<Recipe>| {
                    weight(k.len() + v.inputs.iter().map(|i| i.len() + 24).sum::<usize>())
                })
                .build(),
            results: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Bytes| weight(k.len() + v.len()))
                .build(),
            fingerprint,
            timeout,
            counters,
            writes: TaskTracker::new(),
        }
    }

    /// Waits (up to `limit`) for the results still being kept, so a renderer that stops
    /// leaves what it rendered to the next one.
    pub async fn finish_writes(&self, limit: Duration) {
        self.writes.close();
        if tokio::time::timeout(limit, self.writes.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = self.writes.len(),
                "stopped before every rendered result was kept"
            );
        }
    }

    /// Where `request`'s result is keyed, or `None` when it cannot be shared across
    /// commits: a chart from a Helm repository (already keyed by its version) or a commit
    /// that is not a full commit id (a moving branch).
    pub fn lookup(&self, request: &RenderRequest) -> Option<Lookup> {
        if request.source.is_helm_chart()
            || !is_full_commit_id(&request.commit)
            || !request.local_files.is_empty()
        {
            return None;
        }
        let recipe = RenderRequest {
            commit: String::new(),
            ..request.clone()
        };
        let json = serde_json::to_string(&recipe).ok()?;
        let recipe_key = content_key(format!("{}\n{json}", self.fingerprint).as_bytes());
        Some(Lookup {
            recipe_key,
            request: request.clone(),
        })
    }

    /// The result kept for `lookup`'s inputs at its commit, if any.
    pub async fn get(&self, lookup: &Lookup) -> Option<Bytes> {
        let recipe = self.recipe(&lookup.recipe_key).await?;
        let key = self.content_key(lookup, &recipe).await?;
        if let Some(hit) = self.results.get(&key) {
            self.counters
                .memory_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Some(hit);
        }
        let Some(body) = self.read_result(&key).await else {
            tracing::debug!(app = %lookup.request.app_name, key, "no result kept for these inputs");
            return None;
        };
        self.counters
            .store_hits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.results.insert(key, body.clone());
        Some(body)
    }

    /// Keeps `body`, the reply of a render of `lookup` that read `inputs`. In the
    /// background: the reply does not wait for the store (a stopping renderer waits for
    /// these writes, see [`ContentCache::finish_writes`]).
    pub fn put(self: &Arc<Self>, lookup: Lookup, tool: Tool, inputs: Vec<String>, body: Bytes) {
        if inputs.is_empty() {
            // Unknown inputs: any change may matter.
            return;
        }
        let recipe = Recipe {
            inputs,
            commit_bound: commit_bound(&lookup.request, tool),
        };
        let this = self.clone();
        self.writes.spawn(async move {
            let Some(key) = this.content_key(&lookup, &recipe).await else {
                return;
            };
            this.results.insert(key.clone(), body.clone());
            let known = this.recipes.get(&lookup.recipe_key);
            if known.as_deref() != Some(&recipe) {
                if let Some(kv) = &this.recipes_kv
                    && let Ok(json) = serde_json::to_vec(&recipe)
                    && let Err(err) = kv.put(&lookup.recipe_key, json.into()).await
                {
                    tracing::debug!(error = %err, "keeping render inputs failed");
                }
                this.recipes
                    .insert(lookup.recipe_key.clone(), Arc::new(recipe));
            }
            this.write_result(&key, body).await;
        });
    }

    /// The result kept under `key`: in KV, else (a large one) in the object store.
    async fn read_result(&self, key: &str) -> Option<Bytes> {
        let mut kept = None;
        if let Some(kv) = &self.results_kv {
            match kv.get(key).await {
                Ok(Some(body)) => kept = Some(body),
                Ok(None) => {}
                Err(err) => tracing::debug!(key, error = %err, "reading a kept result failed"),
            }
        }
        if kept.is_none() {
            kept = read_object(self.results_store.as_ref()?, key).await;
        }
        let kept = kept?;
        match self.bus.credentials_key() {
            Some(sealing) => match sealing.open_bytes(&kept, key) {
                Ok(plain) => Some(Bytes::from(plain)),
                Err(err) => {
                    tracing::debug!(key, error = %err, "a kept result does not open; rendering");
                    None
                }
            },
            None => Some(kept),
        }
    }

    /// Keeps `body` under `key`: in KV when it fits in one message, else in the object
    /// store. Same key, same bytes, so a result already kept is not written again. Sealed
    /// when this renderer holds the credentials key: a render may hold a Secret's data.
    async fn write_result(&self, key: &str, body: Bytes) {
        let body = match self.bus.credentials_key() {
            Some(sealing) => Bytes::from(sealing.seal_bytes(&body, key)),
            None => body,
        };
        let written = if body.len() <= self.bus.payload_limit() {
            let Some(kv) = &self.results_kv else { return };
            if matches!(kv.get(key).await, Ok(Some(_))) {
                return;
            }
            kv.put(key, body).await.map(drop).map_err(|e| e.to_string())
        } else {
            let Some(store) = &self.results_store else {
                return;
            };
            if store.info(key).await.is_ok() {
                return;
            }
            let mut reader: &[u8] = &body;
            store
                .put(key, &mut reader)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        if let Err(error) = written {
            tracing::debug!(key, error, "keeping rendered manifests failed");
        }
    }

    pub fn count_render(&self) {
        self.counters
            .renders
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    async fn recipe(&self, recipe_key: &str) -> Option<Arc<Recipe>> {
        let recipe = self.recipe_kept(recipe_key).await;
        if recipe.is_none() {
            tracing::debug!(recipe_key, "no render inputs kept for this request");
        }
        recipe
    }

    async fn recipe_kept(&self, recipe_key: &str) -> Option<Arc<Recipe>> {
        if let Some(recipe) = self.recipes.get(recipe_key) {
            return Some(recipe);
        }
        let kv = self.recipes_kv.as_ref()?;
        let entry = match kv.get(recipe_key).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return None,
            Err(err) => {
                tracing::debug!(error = %err, "reading render inputs failed");
                return None;
            }
        };
        let recipe: Arc<Recipe> = Arc::new(serde_json::from_slice(&entry).ok()?);
        self.recipes.insert(recipe_key.to_owned(), recipe.clone());
        Some(recipe)
    }

    /// The key of `lookup`'s result when it reads `recipe.inputs`: the ids of those paths
    /// at the commit, asked of the git watcher.
    async fn content_key(&self, lookup: &Lookup, recipe: &Recipe) -> Option<String> {
        let ids: TreeIds = self
            .bus
            .ask(
                "git watcher",
                self.bus.topology.git_tree_ids_subject(),
                &TreeIdsRequest {
                    repo: lookup.request.repo.clone(),
                    commit: lookup.request.commit.clone(),
                    paths: recipe.inputs.clone(),
                },
                self.timeout,
            )
            .await
            .inspect_err(|err| tracing::debug!(error = %err, "reading input ids failed"))
            .ok()?;
        if ids.ids.len() != recipe.inputs.len() {
            return None;
        }
        let mut text = lookup.recipe_key.clone();
        if recipe.commit_bound {
            text.push('\n');
            text.push_str(&lookup.request.commit);
        }
        for (path, id) in recipe.inputs.iter().zip(&ids.ids) {
            text.push('\n');
            text.push_str(path);
            text.push('\0');
            text.push_str(id);
        }
        Some(content_key(text.as_bytes()))
    }
}

/// Whether a render's output may name the commit: a plugin (named or discovered) sees
/// `ARGOCD_APP_REVISION` in its environment, and any setting may substitute it
/// (`${ARGOCD_APP_REVISION}`, `_SHORT`, `_SHORT_8`).
fn commit_bound(request: &RenderRequest, tool: Tool) -> bool {
    tool == Tool::Plugin
        || serde_json::to_string(&request.source).is_ok_and(|s| s.contains("ARGOCD_APP_REVISION"))
}

/// Names the tools and their settings, so a new tool version (or a changed plugin) is a
/// new key: gitfleet's version, the settings, and the size and time of each tool's file.
pub fn fingerprint(tools: &Tools) -> String {
    let stamp = |path: &std::path::Path| {
        std::fs::metadata(path).ok().map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos());
            (m.len(), modified)
        })
    };
    let kustomize = tools
        .kustomize
        .command
        .first()
        .map(|program| stamp(std::path::Path::new(program)));
    let helm = tools.helm.library.as_deref().map(stamp);
    content_key(
        format!(
            "{} {tools:?} {kustomize:?} {helm:?}",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    )
}

fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

async fn read_object(store: &ObjectStore, key: &str) -> Option<Bytes> {
    let mut object = store
        .get(key)
        .await
        .inspect_err(|err| tracing::debug!(key, error = %err, "reading a kept result failed"))
        .ok()?;
    let mut body = Vec::with_capacity(object.info().size);
    object
        .read_to_end(&mut body)
        .await
        .inspect_err(|err| tracing::debug!(key, error = %err, "reading a kept result failed"))
        .ok()?;
    Some(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfleet_model::ApplicationSource;

    fn request(source: ApplicationSource) -> RenderRequest {
        RenderRequest {
            repo: "https://example.com/r.git".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            source,
            app_name: "a".into(),
            namespace: "n".into(),
            refs: Vec::new(),
            local_files: Vec::new(),
        }
    }

    #[test]
    fn outputs_that_may_name_the_commit_keep_it_in_their_key() {
        let plain = request(ApplicationSource::default());
        assert!(!commit_bound(&plain, Tool::Kustomize));
        assert!(commit_bound(&plain, Tool::Plugin));
        let source = ApplicationSource {
            kustomize: Some(
                serde_json::from_value(
                    serde_json::json!({"commonLabels": {"rev": "${ARGOCD_APP_REVISION_SHORT}"}}),
                )
                .unwrap(),
            ),
            ..Default::default()
        };
        assert!(commit_bound(&request(source), Tool::Kustomize));
    }
}
