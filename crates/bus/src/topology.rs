//! The one place that names every subject, stream, KV bucket and object store of gitfleet.
//!
//! Every name carries a prefix (default `gf`), so tests, and tenants if ever needed, can
//! share one server without seeing each other's state. Subjects use the prefix as their
//! first token (`gf.sync.7`); streams, buckets and object stores use it as a name prefix
//! (`gf-applications`, which the server stores as stream `KV_gf-applications`).

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};

use crate::error::{BusError, Result};

pub const DEFAULT_PREFIX: &str = "gf";

/// How long the server keeps the tombstone it writes when a key's TTL runs out. Watchers
/// only learn that a member or lease expired through that tombstone, so it must outlive
/// any watcher's reconnect; a watcher that misses it falls back to reading the key.
pub const EXPIRY_MARKER_TTL: Duration = Duration::from_secs(120);

const DAY: Duration = Duration::from_secs(24 * 3600);
/// How long a cached render (and what it read) is kept without being written again.
const CACHE_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// KV buckets. Values are JSON documents unless noted at the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Applications,
    Projects,
    AppSets,
    Clusters,
    /// Repositories with their credentials, in clear JSON: whoever may read the bucket
    /// reads them (locking the bus down is issue 9's).
    Repositories,
    /// Credential templates (Argo CD's `repo-creds`): the credentials of every repository
    /// whose URL starts with the entry's and that has none of its own. In clear JSON, as
    /// `Repositories`.
    RepoCreds,
    AppStatus,
    Operations,
    /// Live members of each ownership group, one key per member, expiring by per-key TTL.
    Members,
    /// Partition leases of each ownership group, expiring by per-key TTL.
    Leases,
    Settings,
    /// What each render request read last time (`renderer::content`): the paths whose
    /// object ids key its result. Rebuilt by rendering, so entries age out.
    RenderInputs,
    /// Rendered manifests (the renderer's serialized reply) by content key, when they fit
    /// in one message; larger ones are in the `manifests` object store. A KV read is one
    /// direct get, where an object store read opens a consumer. Ages out like
    /// `RenderInputs`.
    Rendered,
    /// Secrets labelled `app.kubernetes.io/part-of: argocd` that are none of Argo CD's
    /// typed ones: the tokens the SCM and pull request generators name (`tokenRef`).
    /// Every value sealed.
    Secrets,
}

impl Bucket {
    pub const ALL: [Bucket; 14] = [
        Bucket::Applications,
        Bucket::Projects,
        Bucket::AppSets,
        Bucket::Clusters,
        Bucket::Repositories,
        Bucket::RepoCreds,
        Bucket::AppStatus,
        Bucket::Operations,
        Bucket::Members,
        Bucket::Leases,
        Bucket::Settings,
        Bucket::RenderInputs,
        Bucket::Rendered,
        Bucket::Secrets,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            Bucket::Applications => "applications",
            Bucket::Projects => "projects",
            Bucket::AppSets => "appsets",
            Bucket::Clusters => "clusters",
            Bucket::Repositories => "repositories",
            Bucket::RepoCreds => "repo-creds",
            Bucket::AppStatus => "app-status",
            Bucket::Operations => "operations",
            Bucket::Members => "members",
            Bucket::Leases => "leases",
            Bucket::Settings => "settings",
            Bucket::RenderInputs => "render-inputs",
            Bucket::Rendered => "rendered",
            Bucket::Secrets => "secrets",
        }
    }

    /// Desired objects keep a little history so a bad write can be seen and undone;
    /// derived and liveness state only needs the latest value.
    fn history(self) -> i64 {
        match self {
            Bucket::Applications
            | Bucket::Projects
            | Bucket::AppSets
            | Bucket::Settings
            | Bucket::Secrets => 5,
            _ => 1,
        }
    }

    /// Caches age out (a re-put refreshes an entry); state never does.
    fn max_age(self) -> Duration {
        match self {
            Bucket::RenderInputs | Bucket::Rendered => CACHE_AGE,
            _ => Duration::ZERO,
        }
    }

    /// Buckets whose keys carry their own TTL (`Nats-TTL`), which also makes the server
    /// write a tombstone when a key expires.
    fn per_key_ttl(self) -> bool {
        matches!(self, Bucket::Members | Bucket::Leases)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamName {
    /// A repository moved: `<p>.revision.<repo-token>`, with the changed paths.
    Revisions,
    /// Sync operations, one subject per cluster partition: `<p>.sync.<partition>`.
    /// Work-queue retention: a message is gone once an executor acks it.
    SyncWork,
    /// Application events for the notifier and the UI: `<p>.event.<app-token>`.
    Events,
    /// Who did what, through which API: `<p>.audit.<kind-token>`.
    Audit,
}

impl StreamName {
    pub const ALL: [StreamName; 4] = [
        StreamName::Revisions,
        StreamName::SyncWork,
        StreamName::Events,
        StreamName::Audit,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            StreamName::Revisions => "revisions",
            StreamName::SyncWork => "sync-work",
            StreamName::Events => "events",
            StreamName::Audit => "audit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectStoreName {
    /// Rendered manifests too large for KV `rendered`, keyed by the renderer's content key.
    Manifests,
    /// Bodies of messages and values too large for one NATS message, keyed by content
    /// hash (see [`crate::payload`]).
    Payloads,
}

impl ObjectStoreName {
    pub const ALL: [ObjectStoreName; 2] = [ObjectStoreName::Manifests, ObjectStoreName::Payloads];

    pub fn suffix(self) -> &'static str {
        match self {
            ObjectStoreName::Manifests => "manifests",
            ObjectStoreName::Payloads => "payloads",
        }
    }
}

/// All names under one prefix, and the settings the server objects are created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    /// 1 on a laptop; 3 on a JetStream cluster, where replication is the only
    /// fault tolerance gitfleet has.
    replicas: usize,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            prefix: DEFAULT_PREFIX.to_string(),
            replicas: 1,
        }
    }
}

impl Topology {
    /// The prefix must be usable both as a subject token and inside a bucket name.
    pub fn new(prefix: &str) -> Result<Self> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 32
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(BusError::InvalidPrefix {
                prefix: prefix.to_string(),
            });
        }
        Ok(Topology {
            prefix: prefix.to_string(),
            replicas: 1,
        })
    }

    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn replicas(&self) -> usize {
        self.replicas
    }

    pub fn bucket(&self, bucket: Bucket) -> String {
        format!("{}-{}", self.prefix, bucket.suffix())
    }

    pub fn stream(&self, stream: StreamName) -> String {
        format!("{}-{}", self.prefix, stream.suffix())
    }

    pub fn object_store(&self, store: ObjectStoreName) -> String {
        format!("{}-{}", self.prefix, store.suffix())
    }

    /// `<p>.revision.<repo>`: a repository's tracked refs moved.
    pub fn revision_subject(&self, repo_url: &str) -> String {
        format!("{}.revision.{}", self.prefix, subject_token(repo_url))
    }

    /// `<p>.sync.<partition>`: sync operations for the clusters in one partition.
    pub fn sync_subject(&self, partition: u32) -> String {
        format!("{}.sync.{partition}", self.prefix)
    }

    /// `<p>.event.<app>`: events about one application.
    pub fn event_subject(&self, app: &str) -> String {
        format!("{}.event.{}", self.prefix, subject_token(app))
    }

    /// `<p>.audit.<kind>`: audit records of one kind (e.g. `sync`, `login`).
    pub fn audit_subject(&self, kind: &str) -> String {
        format!("{}.audit.{}", self.prefix, subject_token(kind))
    }

    /// `<p>.webhook`: raw webhook deliveries from the api gateway to the git watcher.
    pub fn webhook_subject(&self) -> String {
        format!("{}.webhook", self.prefix)
    }

    /// `<p>.render`: render requests, request/reply on a queue group of renderers.
    pub fn render_subject(&self) -> String {
        format!("{}.render", self.prefix)
    }

    /// `<p>.git.resolve`: revision-to-commit questions for the git watchers (request/reply).
    pub fn git_resolve_subject(&self) -> String {
        format!("{}.git.resolve", self.prefix)
    }

    /// `<p>.appset.generate`: the Applications a set would produce, asked by the api
    /// gateway (`appset generate`), answered by the ApplicationSet controllers.
    pub fn appset_generate_subject(&self) -> String {
        format!("{}.appset.generate", self.prefix)
    }

    /// `<p>.git.files`: file reads for the renderers, answered by the git watchers.
    pub fn git_files_subject(&self) -> String {
        format!("{}.git.files", self.prefix)
    }

    /// `<p>.git.tree-ids`: object ids of paths at a commit, for the renderers' content
    /// keys, answered by the git watchers.
    pub fn git_tree_ids_subject(&self) -> String {
        format!("{}.git.tree-ids", self.prefix)
    }

    /// `<p>.live-request.<cluster>`: live-state questions about one cluster; only the
    /// executor owning it subscribes.
    pub fn live_request_subject(&self, cluster: &str) -> String {
        format!("{}.live-request.{}", self.prefix, subject_token(cluster))
    }

    /// `<p>.action-request.<cluster>`: resource actions on one cluster's objects (list
    /// and run); only the executor owning it subscribes, only the gateway publishes.
    pub fn action_request_subject(&self, cluster: &str) -> String {
        format!("{}.action-request.{}", self.prefix, subject_token(cluster))
    }

    /// `<p>.sync-request.<partition>`: users' sync and cascade-delete requests, for the
    /// diff worker owning the app's partition.
    pub fn sync_request_subject(&self, partition: u32) -> String {
        format!("{}.sync-request.{partition}", self.prefix)
    }

    /// `<p>.live.<partition>`: live-state deltas routed to the app partition's owner.
    pub fn live_subject(&self, partition: u32) -> String {
        format!("{}.live.{partition}", self.prefix)
    }

    /// The subjects captured by a stream, with `>`/`*` wildcards.
    pub fn stream_subjects(&self, stream: StreamName) -> Vec<String> {
        let p = &self.prefix;
        match stream {
            StreamName::Revisions => vec![format!("{p}.revision.>")],
            StreamName::SyncWork => vec![format!("{p}.sync.*")],
            StreamName::Events => vec![format!("{p}.event.>")],
            StreamName::Audit => vec![format!("{p}.audit.>")],
        }
    }

    pub fn kv_config(&self, bucket: Bucket) -> kv::Config {
        kv::Config {
            bucket: self.bucket(bucket),
            description: format!("gitfleet {}", bucket.suffix()),
            history: bucket.history(),
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            max_age: bucket.max_age(),
            limit_markers: bucket.per_key_ttl().then_some(EXPIRY_MARKER_TTL),
            ..Default::default()
        }
    }

    pub fn stream_config(&self, name: StreamName) -> stream::Config {
        let (retention, max_age) = match name {
            StreamName::Revisions => (stream::RetentionPolicy::Limits, 7 * DAY),
            // Work must not silently age out: it leaves the queue when acked.
            StreamName::SyncWork => (stream::RetentionPolicy::WorkQueue, Duration::ZERO),
            StreamName::Events => (stream::RetentionPolicy::Limits, 7 * DAY),
            StreamName::Audit => (stream::RetentionPolicy::Limits, 90 * DAY),
        };
        stream::Config {
            name: self.stream(name),
            description: Some(format!("gitfleet {}", name.suffix())),
            subjects: self.stream_subjects(name),
            retention,
            max_age,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    pub fn object_store_config(&self, store: ObjectStoreName) -> object_store::Config {
        object_store::Config {
            bucket: self.object_store(store),
            description: Some(format!("gitfleet {}", store.suffix())),
            max_age: match store {
                ObjectStoreName::Manifests => CACHE_AGE,
                ObjectStoreName::Payloads => Duration::ZERO,
            },
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

/// Creates or updates every stream, bucket and object store of `topology`.
///
/// Idempotent, and safe when several processes start at once: a lost creation race is
/// retried, and the retry finds the object the winner created.
pub async fn ensure(js: &jetstream::Context, topology: &Topology) -> Result<()> {
    for bucket in Bucket::ALL {
        let config = topology.kv_config(bucket);
        let what = format!("kv bucket {}", config.bucket);
        retry(&what, || {
            let config = config.clone();
            async move { js.create_or_update_key_value(config).await.map(drop) }
        })
        .await?;
    }
    for name in StreamName::ALL {
        let config = topology.stream_config(name);
        let what = format!("stream {}", config.name);
        retry(&what, || {
            let config = config.clone();
            async move { js.create_or_update_stream(config).await.map(drop) }
        })
        .await?;
    }
    for store in ObjectStoreName::ALL {
        let config = topology.object_store_config(store);
        let what = format!("object store {}", config.bucket);
        retry(&what, || {
            let config = config.clone();
            async move {
                // The client has no create-or-update for object stores; their settings
                // do not change between versions, so an existing store is kept as is.
                match js.get_object_store(&config.bucket).await {
                    Ok(_) => Ok(()),
                    Err(_) => js.create_object_store(config).await.map(drop),
                }
            }
        })
        .await?;
    }
    Ok(())
}

async fn retry<F, Fut, E>(what: &str, mut op: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), E>>,
    E: Into<crate::error::Source>,
{
    const ATTEMPTS: u32 = 5;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(()) => return Ok(()),
            Err(err) if attempt >= ATTEMPTS => {
                return Err(BusError::Ensure {
                    what: what.to_string(),
                    source: err.into(),
                });
            }
            Err(err) => {
                let err: crate::error::Source = err.into();
                tracing::debug!(what, attempt, error = %err, "ensure failed, retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
        }
    }
}

/// Turns any string into one valid NATS subject token that is also a valid KV key.
///
/// Reversible escaping, not a hash, so subjects stay readable in `nats sub` output and
/// [`token_to_name`] gives the name back. ASCII letters, digits, `-` and `/` are kept;
/// every other byte of the UTF-8 form (including `_` itself, `.`, `*`, `>`, whitespace)
/// becomes `_XX` with two upper-case hex digits. The empty string becomes `_`, which no
/// other name can produce. The escaping is prefix-free, so distinct names never collide.
pub fn subject_token(name: &str) -> String {
    if name.is_empty() {
        return "_".to_string();
    }
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'/' {
            out.push(b as char);
        } else {
            out.push('_');
            out.push(
                char::from_digit(u32::from(b >> 4), 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
            out.push(
                char::from_digit(u32::from(b & 0xf), 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
        }
    }
    out
}

/// The inverse of [`subject_token`]; `None` for strings it cannot have produced.
pub fn token_to_name(token: &str) -> Option<String> {
    if token == "_" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'_' {
            let hex = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            };
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            let decoded = hi << 4 | lo;
            // A byte that would have been kept as is was not escaped by us.
            if decoded.is_ascii_alphanumeric() || decoded == b'-' || decoded == b'/' {
                return None;
            }
            out.push(decoded);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'/' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the server accepts as one token of a publish subject, and what the KV client
    /// accepts as a key without dots.
    fn is_valid_token(t: &str) -> bool {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_'))
    }

    #[test]
    fn tokens_of_awkward_names() {
        let cases = [
            ("guestbook", "guestbook"),
            ("team-a/guestbook", "team-a/guestbook"),
            ("my.app", "my_2Eapp"),
            ("a_b", "a_5Fb"),
            ("*", "_2A"),
            (">", "_3E"),
            ("two words", "two_20words"),
            ("", "_"),
            ("é", "_C3_A9"),
        ];
        for (name, token) in cases {
            assert_eq!(subject_token(name), token, "token of {name:?}");
            assert_eq!(
                token_to_name(token).as_deref(),
                Some(name),
                "name of {token:?}"
            );
        }
    }

    #[test]
    fn foreign_tokens_are_rejected() {
        for t in ["", "a.b", "_2", "_zz", "_41", "_2e", "a b"] {
            assert_eq!(token_to_name(t), None, "{t:?}");
        }
    }

    proptest! {
        #[test]
        fn any_name_is_one_valid_token(name in any::<String>()) {
            let token = subject_token(&name);
            prop_assert!(is_valid_token(&token), "{token:?}");
            prop_assert_eq!(token_to_name(&token), Some(name));
        }

        #[test]
        fn distinct_names_never_collide(a in any::<String>(), b in any::<String>()) {
            prop_assume!(a != b);
            prop_assert_ne!(subject_token(&a), subject_token(&b));
        }

        #[test]
        fn near_names_never_collide(base in "[a-z._*> ]{0,6}", suffix in "[._*> /-]{1,3}") {
            let other = format!("{base}{suffix}");
            prop_assert_ne!(subject_token(&base), subject_token(&other));
        }
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(Topology::new("gf").is_ok());
        assert!(Topology::new("t-1_x").is_ok());
        for bad in ["", "a.b", "a b", "a*", ">", &"x".repeat(33)] {
            assert!(
                matches!(Topology::new(bad), Err(BusError::InvalidPrefix { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_carry_the_prefix() {
        let t = Topology::new("t7").unwrap();
        assert_eq!(t.bucket(Bucket::AppStatus), "t7-app-status");
        assert_eq!(t.stream(StreamName::SyncWork), "t7-sync-work");
        assert_eq!(t.object_store(ObjectStoreName::Manifests), "t7-manifests");
        assert_eq!(t.sync_subject(12), "t7.sync.12");
        assert_eq!(t.event_subject("my.app"), "t7.event.my_2Eapp");
        assert_eq!(
            t.revision_subject("https://git/x.git"),
            "t7.revision.https_3A//git/x_2Egit"
        );
    }

    #[test]
    fn every_subject_lands_in_exactly_its_stream() {
        let t = Topology::default();
        let matches = |filter: &str, subject: &str| {
            let f: Vec<_> = filter.split('.').collect();
            let s: Vec<_> = subject.split('.').collect();
            for (i, tok) in f.iter().enumerate() {
                match *tok {
                    ">" => return s.len() > i,
                    "*" if i < s.len() => {}
                    x if s.get(i) == Some(&x) => {}
                    _ => return false,
                }
            }
            f.len() == s.len()
        };
        let cases = [
            (t.revision_subject("r.git"), Some(StreamName::Revisions)),
            (t.sync_subject(3), Some(StreamName::SyncWork)),
            (t.event_subject("a.b"), Some(StreamName::Events)),
            (t.audit_subject("login"), Some(StreamName::Audit)),
            (t.webhook_subject(), None),
            (t.render_subject(), None),
            (t.live_subject(1), None),
            (t.action_request_subject("c"), None),
        ];
        for (subject, want) in cases {
            let got: Vec<_> = StreamName::ALL
                .into_iter()
                .filter(|s| t.stream_subjects(*s).iter().any(|f| matches(f, &subject)))
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{subject}");
        }
    }
}
