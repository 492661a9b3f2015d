//! Rendered results by input, bounded by entries and bytes (least recently used leaves
//! first), with single flight: concurrent requests for the same input share one render.
//! Only successes are kept; a failure is handed to everyone who waited for it, then
//! forgotten, so a fixed input renders again.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use gitfleet_messages::ServiceError;

type Flight = Shared<BoxFuture<'static, Result<Bytes, ServiceError>>>;

pub struct RenderCache<K> {
    inner: Mutex<Inner<K>>,
    max_entries: usize,
    max_bytes: usize,
}

struct Inner<K> {
    entries: HashMap<K, Entry>,
    in_flight: HashMap<K, Flight>,
    bytes: usize,
    /// Ticks on every use; an entry's last tick orders eviction.
    clock: u64,
}

struct Entry {
    value: Bytes,
    used: u64,
}

impl<K: Eq + Hash + Clone + Send + 'static> RenderCache<K> {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        RenderCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                in_flight: HashMap::new(),
                bytes: 0,
                clock: 0,
            }),
            max_entries,
            max_bytes,
        }
    }

    /// The cached value of `key`, else the result of the render already running for it,
    /// else the result of `render` (started here). `cacheable: false` still shares a
    /// running render but keeps nothing (inputs that may mean something else later).
    pub async fn get_or_render<F>(
        &self,
        key: K,
        cacheable: bool,
        render: F,
    ) -> Result<Bytes, ServiceError>
    where
        F: Future<Output = Result<Bytes, ServiceError>> + Send + 'static,
    {
        let flight = {
            let mut inner = self.inner.lock().expect("cache lock poisoned");
            inner.clock += 1;
            let now = inner.clock;
            if let Some(entry) = inner.entries.get_mut(&key) {
                entry.used = now;
                return Ok(entry.value.clone());
            }
            match inner.in_flight.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let flight = render.boxed().shared();
                    inner.in_flight.insert(key.clone(), flight.clone());
                    flight
                }
            }
        };
        let result = flight.clone().await;
        // Whoever finishes first files the result; a leader that was cancelled midway
        // leaves that to the others, which is why this is not the leader's job alone.
        let mut inner = self.inner.lock().expect("cache lock poisoned");
        if inner.in_flight.get(&key).is_some_and(|f| f.ptr_eq(&flight)) {
            inner.in_flight.remove(&key);
            if let Ok(value) = &result
                && cacheable
                && value.len() <= self.max_bytes
            {
                inner.clock += 1;
                let used = inner.clock;
                inner.bytes += value.len();
                if let Some(old) = inner.entries.insert(
                    key,
                    Entry {
                        value: value.clone(),
                        used,
                    },
                ) {
                    inner.bytes -= old.value.len();
                }
                self.evict(&mut inner);
            }
        }
        result
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .expect("cache lock poisoned")
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops least recently used entries until both bounds hold. A scan per eviction is
    /// fine at the few thousand entries this cache is sized for.
    fn evict(&self, inner: &mut Inner<K>) {
        while inner.entries.len() > self.max_entries || inner.bytes > self.max_bytes {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some(entry) = inner.entries.remove(&oldest) {
                inner.bytes -= entry.value.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn counted(
        calls: &Arc<AtomicUsize>,
        value: &'static str,
    ) -> impl Future<Output = Result<Bytes, ServiceError>> + Send + 'static {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Bytes::from_static(value.as_bytes()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_render_and_results_are_kept() {
        let cache = Arc::new(RenderCache::new(10, 1 << 20));
        let calls = Arc::new(AtomicUsize::new(0));
        let results = futures::future::join_all(
            (0..5).map(|_| cache.get_or_render("k", true, counted(&calls, "v"))),
        )
        .await;
        assert!(results.iter().all(|r| r.as_deref() == Ok(&b"v"[..])));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache
            .get_or_render("k", true, counted(&calls, "v"))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_and_uncacheable_results_are_not_kept() {
        let cache = RenderCache::new(10, 1 << 20);
        let err = cache
            .get_or_render("k", true, async {
                Err::<Bytes, _>(ServiceError::invalid("boom"))
            })
            .await;
        assert_eq!(err, Err(ServiceError::invalid("boom")));
        let calls = Arc::new(AtomicUsize::new(0));
        cache
            .get_or_render("k", true, counted(&calls, "v"))
            .await
            .unwrap();
        cache
            .get_or_render("b", false, counted(&calls, "v"))
            .await
            .unwrap();
        cache
            .get_or_render("b", false, counted(&calls, "v"))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn least_recently_used_leaves_first() {
        let cache = RenderCache::new(2, 1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        for key in ["a", "b"] {
            cache
                .get_or_render(key, true, counted(&calls, "v"))
                .await
                .unwrap();
        }
        // Touch a, then c pushes out b.
        cache
            .get_or_render("a", true, counted(&calls, "v"))
            .await
            .unwrap();
        cache
            .get_or_render("c", true, counted(&calls, "v"))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        cache
            .get_or_render("a", true, counted(&calls, "v"))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        cache
            .get_or_render("b", true, counted(&calls, "v"))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_bound_holds() {
        let cache = RenderCache::new(100, 4);
        let calls = Arc::new(AtomicUsize::new(0));
        cache
            .get_or_render("a", true, counted(&calls, "xyz"))
            .await
            .unwrap();
        cache
            .get_or_render("b", true, counted(&calls, "xyz"))
            .await
            .unwrap();
        assert_eq!(cache.len(), 1);
        cache
            .get_or_render("big", true, counted(&calls, "12345"))
            .await
            .unwrap();
        assert_eq!(cache.len(), 1);
    }
}
