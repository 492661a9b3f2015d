//! Server-side diff's dry runs (Argo CD's `compare-options: ServerSideDiff=true`): each
//! desired object with a live counterpart is applied as a server-side dry run by
//! `argocd-controller` (forced, fields not validated: the sync says what is invalid), and
//! the API server's answer goes back for the comparison. Answers are kept per desired
//! object and live resourceVersion (Argo CD's cache: a new dry run when the manifest or
//! the live object changed), so a fleet's periodic comparisons cost the cluster nothing
//! while nothing changes.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use futures::StreamExt;
use gitfleet_engine::ResourceRef;
use gitfleet_engine::diff::FIELD_MANAGER;
use gitfleet_messages::DryRunAnswer;
use kube::api::{Patch, PatchParams, ValidationDirective};
use serde_json::Value;

use crate::cache::key_of;
use crate::cluster::{CallError, ClusterRuntime};
use crate::executor::api;

/// Dry runs in flight per request: each is one API call under the cluster's rate limit.
const CONCURRENT: usize = 8;
/// Bytes of answers kept for the whole process (every cluster it owns).
const CACHE_BYTES: u64 = 256 << 20;

/// (cluster, live uid, live resourceVersion, hash of the desired object).
type Key = (String, String, String, u64);

fn cache() -> &'static moka::sync::Cache<Key, Arc<Value>> {
    static CACHE: OnceLock<moka::sync::Cache<Key, Arc<Value>>> = OnceLock::new();
    CACHE.get_or_init(|| {
        moka::sync::Cache::builder()
            .max_capacity(CACHE_BYTES)
            .weigher(|_, v: &Arc<Value>| {
                u32::try_from(serde_json::to_vec(&**v).map_or(0, |b| b.len())).unwrap_or(u32::MAX)
            })
            .build()
    })
}

/// The answers for `objects`, in their order; with `fresh`, none from the cache.
pub async fn answer(rt: &ClusterRuntime, objects: &[Value], fresh: bool) -> Vec<DryRunAnswer> {
    futures::stream::iter(objects.to_vec())
        .map(|desired| one(rt, desired, fresh))
        .buffered(CONCURRENT)
        .collect()
        .await
}

async fn one(rt: &ClusterRuntime, desired: Value, fresh: bool) -> DryRunAnswer {
    let r = ResourceRef::from_object(&desired);
    let Some(kind) = rt.cache.kind(&r.group, &r.kind) else {
        // Not served yet (a CRD this sync creates): nothing live to compare with.
        return DryRunAnswer::default();
    };
    let namespace = if kind.namespaced {
        r.namespace.clone()
    } else {
        String::new()
    };
    let live = rt.cache.get(&key_of(&ResourceRef {
        namespace: namespace.clone(),
        ..r.clone()
    }));
    let Some(live) = live else {
        return DryRunAnswer::default();
    };
    let key: Key = (
        rt.name.clone(),
        live["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        live["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        hash(&desired),
    );
    if !fresh && let Some(predicted) = cache().get(&key) {
        return DryRunAnswer {
            predicted: Some((*predicted).clone()),
            error: None,
        };
    }
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = true;
    params.field_validation = Some(ValidationDirective::Ignore);
    let result = rt
        .call(|client| {
            let api = api(client, &kind, &namespace);
            let (name, params, obj) = (r.name.clone(), params.clone(), desired.clone());
            async move { api.patch(&name, &params, &Patch::Apply(&obj)).await }
        })
        .await;
    match result {
        Ok(obj) => match serde_json::to_value(obj) {
            Ok(predicted) => {
                cache().insert(key, Arc::new(predicted.clone()));
                DryRunAnswer {
                    predicted: Some(predicted),
                    error: None,
                }
            }
            Err(e) => DryRunAnswer {
                predicted: None,
                error: Some(e.to_string()),
            },
        },
        Err(CallError::Api { message, .. }) | Err(CallError::Unreachable(message)) => {
            DryRunAnswer {
                predicted: None,
                error: Some(message),
            }
        }
    }
}

fn hash(value: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    value.to_string().hash(&mut h);
    h.finish()
}
