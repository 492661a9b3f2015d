//! One bare mirror per repository for the whole fleet, and the fetch that keeps it current:
//! run off the async runtime, bounded in time, and never two at once for one mirror.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitfleet_messages::error_chain;
use gix::bstr::ByteSlice;
use gix::protocol::handshake::Ref;
use gix::protocol::transport::client::blocking_io::Transport;
use tokio::sync::watch;

use crate::credentials::{RepoCredentials, SshCredentials};
use crate::error::{GitError, Result};
use crate::files::ReadLimits;
use crate::ssh::SshSettings;
use crate::tls::TlsCredentials;
use crate::url::RepoUrl;

/// Settings shared by every mirror of a [`Mirrors`].
#[derive(Debug, Clone)]
pub struct MirrorsConfig {
    /// Upper bound on one fetch, connection included. A fetch that hits it reports
    /// [`GitError::Timeout`]; its socket reads time out too, so its thread does not linger.
    pub fetch_timeout: Duration,
    /// Limits on what [`Mirror::read_dir`] hands to the renderer.
    pub read_limits: ReadLimits,
    /// Whether `file://` URLs and local paths may be mirrored. Off unless the operator
    /// turns it on: a local path lets an Application read any repository on the
    /// watcher's disk (Argo CD had CVEs of this kind).
    pub allow_local: bool,
    /// How ssh URLs are fetched: the known hosts file (Argo CD's, by default) and the
    /// OpenSSH client.
    pub ssh: SshSettings,
    /// CA certificates per https host, one PEM file named by the host (Argo CD's
    /// `argocd-tls-certs-cm`; see [`crate::tls::default_certs_dir`]).
    pub tls_certs_dir: PathBuf,
}

impl Default for MirrorsConfig {
    fn default() -> Self {
        // Argo CD's repo-server gives `git fetch` 90 s by default (ARGOCD_EXEC_TIMEOUT).
        MirrorsConfig {
            fetch_timeout: Duration::from_secs(90),
            read_limits: ReadLimits::default(),
            allow_local: false,
            ssh: SshSettings::default(),
            tls_certs_dir: crate::tls::default_certs_dir(),
        }
    }
}

/// The set of mirrors under one directory, one per repository whatever its URL spelling.
#[derive(Clone)]
pub struct Mirrors {
    inner: Arc<MirrorsInner>,
}

struct MirrorsInner {
    root: PathBuf,
    config: MirrorsConfig,
    /// By normalized URL key: every caller asking for a repository gets the same `Mirror`,
    /// which is what makes the per-mirror fetch serialization hold process-wide.
    by_key: Mutex<HashMap<String, Mirror>>,
}

impl Mirrors {
    /// Mirrors under `root` with the default [`MirrorsConfig`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_config(root, MirrorsConfig::default())
    }

    pub fn with_config(root: impl Into<PathBuf>, config: MirrorsConfig) -> Self {
        Mirrors {
            inner: Arc::new(MirrorsInner {
                root: root.into(),
                config,
                by_key: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn config(&self) -> &MirrorsConfig {
        &self.inner.config
    }

    /// The mirror of `repo_url`, created (as an empty bare repository) on first use.
    ///
    /// Credentials embedded in the URL are moved to the mirror's credentials.
    pub fn mirror(&self, repo_url: &str) -> Result<Mirror> {
        let url = RepoUrl::parse(repo_url)?;
        self.check_local(&url)?;
        let mut by_key = self.inner.by_key.lock().expect("mirrors lock poisoned");
        if let Some(mirror) = by_key.get(url.key()) {
            if let Some(creds) = url.embedded_credentials() {
                mirror.set_credentials(Some(creds.clone()));
            }
            return Ok(mirror.clone());
        }
        let path = self.inner.root.join(dir_name(url.key()));
        let mirror = Mirror::open_or_init(url, path, self.inner.config.clone())?;
        by_key.insert(mirror.url().key().to_owned(), mirror.clone());
        Ok(mirror)
    }

    /// A local repository only when allowed, and never one inside the mirrors' folder.
    fn check_local(&self, url: &RepoUrl) -> Result<()> {
        let Some(path) = url.local_path() else {
            return Ok(());
        };
        let refuse = |reason: &str| GitError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_owned(),
        };
        if !self.inner.config.allow_local {
            return Err(refuse(
                "local repositories are refused; the operator allows them with \
                 --allow-local-repositories",
            ));
        }
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        if canonical(&path).starts_with(canonical(&self.inner.root)) {
            return Err(refuse("it is inside the git watcher's mirrors folder"));
        }
        Ok(())
    }

    /// The mirrors handed out so far.
    pub fn mirrors(&self) -> Vec<Mirror> {
        self.inner
            .by_key
            .lock()
            .expect("mirrors lock poisoned")
            .values()
            .cloned()
            .collect()
    }
}

/// A directory name from the normalized URL: a hash keeps it short and filesystem-safe
/// whatever the URL holds, and stable across restarts so mirrors are reused.
fn dir_name(key: &str) -> String {
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(key.as_bytes());
    match hasher.try_finalize() {
        Ok(id) => id.to_hex().to_string(),
        // Only a detected SHA-1 collision attack fails here, and a URL is not one.
        Err(_) => format!("{:016x}", fnv1a64(key.as_bytes())),
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What one fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    /// Counts fetches of this mirror; callers that shared one fetch see the same number.
    pub generation: u64,
    /// What `HEAD` points to on the remote (`refs/heads/main`), or `None` if it is detached
    /// or the remote did not say.
    pub default_branch: Option<String>,
    /// Branches and tags on the remote after the fetch.
    pub refs: usize,
    /// Local branches and tags removed because the remote no longer has them.
    pub pruned: usize,
}

/// The bare mirror of one repository. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<MirrorInner>,
}

struct MirrorInner {
    url: RepoUrl,
    path: PathBuf,
    config: MirrorsConfig,
    repo: gix::ThreadSafeRepository,
    credentials: Mutex<Option<RepoCredentials>>,
    /// The private key for ssh URLs; see [`crate::ssh`].
    ssh_credentials: Mutex<Option<SshCredentials>>,
    /// Client certificate and `insecure` for https URLs; see [`crate::tls`].
    tls_credentials: Mutex<Option<TlsCredentials>>,
    /// The fetch in flight, if any: later callers subscribe to its result instead of
    /// starting their own.
    in_flight: Mutex<Option<watch::Receiver<Option<Result<FetchOutcome>>>>>,
    /// Held by the blocking fetch itself: a fetch abandoned on timeout may still be winding
    /// down, and the next one must not write refs and packs beside it.
    disk: Arc<Mutex<()>>,
    generation: AtomicU64,
    /// Trees decoded once, by id; see [`crate::files::TreeIndex`].
    trees: moka::sync::Cache<gix::ObjectId, Arc<crate::files::TreeIndex>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("url", &self.inner.url)
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Mirror {
    fn open_or_init(url: RepoUrl, path: PathBuf, config: MirrorsConfig) -> Result<Mirror> {
        let mirror_err = |message: String| GitError::Mirror {
            repo: url.to_string(),
            path: path.display().to_string(),
            message,
        };
        if !path.join("HEAD").is_file() {
            std::fs::create_dir_all(&path).map_err(|e| mirror_err(e.to_string()))?;
            gix::init_bare(&path).map_err(|e| mirror_err(error_chain(&e)))?;
            // For people looking at the mirror directory: the name is only a hash.
            let _ = std::fs::write(
                path.join("description"),
                format!("gitfleet mirror of {url}\n"),
            );
        }
        // Isolated: a mirror must behave the same whatever the host's global git config says.
        let repo = gix::open::Options::isolated()
            .open(&path)
            .map_err(|e| mirror_err(error_chain(&e)))?;
        let credentials = Mutex::new(url.embedded_credentials().cloned());
        Ok(Mirror {
            inner: Arc::new(MirrorInner {
                url,
                path,
                config,
                repo,
                credentials,
                ssh_credentials: Mutex::new(None),
                tls_credentials: Mutex::new(None),
                in_flight: Mutex::new(None),
                disk: Arc::new(Mutex::new(())),
                generation: AtomicU64::new(0),
                trees: crate::files::tree_cache(),
            }),
        })
    }

    pub fn url(&self) -> &RepoUrl {
        &self.inner.url
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Credentials for the next fetches; ignored for schemes other than http(s).
    pub fn set_credentials(&self, credentials: Option<RepoCredentials>) {
        *self
            .inner
            .credentials
            .lock()
            .expect("credentials lock poisoned") = credentials;
    }

    /// The client certificate and `insecure` for the next fetches; ignored for schemes
    /// other than https.
    pub fn set_tls_credentials(&self, credentials: Option<TlsCredentials>) {
        *self
            .inner
            .tls_credentials
            .lock()
            .expect("credentials lock poisoned") = credentials;
    }

    /// The private key for the next fetches; ignored for schemes other than ssh.
    pub fn set_ssh_credentials(&self, credentials: Option<SshCredentials>) {
        *self
            .inner
            .ssh_credentials
            .lock()
            .expect("credentials lock poisoned") = credentials;
    }

    /// How many fetches of this mirror have been started.
    pub fn fetches_started(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn repo(&self) -> gix::Repository {
        self.inner.repo.to_thread_local()
    }

    pub(crate) fn read_limits(&self) -> &ReadLimits {
        &self.inner.config.read_limits
    }

    pub(crate) fn trees(&self) -> &moka::sync::Cache<gix::ObjectId, Arc<crate::files::TreeIndex>> {
        &self.inner.trees
    }

    /// The root tree of `commit`, which must be a full or abbreviated commit id (or anything
    /// [`Mirror::resolve`] accepts).
    pub(crate) fn commit_tree<'r>(
        &self,
        repo: &'r gix::Repository,
        commit: &str,
    ) -> Result<gix::Tree<'r>> {
        let resolved = self.resolve(commit)?;
        let id = gix::ObjectId::from_hex(resolved.commit.as_bytes())
            .map_err(|e| self.read_error(commit, &e))?;
        let commit_obj = repo
            .find_commit(id)
            .map_err(|e| self.read_error(commit, &e))?;
        commit_obj.tree().map_err(|e| self.read_error(commit, &e))
    }

    pub(crate) fn read_error(&self, what: &str, e: &(dyn std::error::Error + 'static)) -> GitError {
        GitError::Read {
            repo: self.url().to_string(),
            what: what.to_owned(),
            message: error_chain(e),
        }
    }

    /// Fetches all branches and tags, force-updating them and pruning those gone from the
    /// remote, and records the remote's default branch as the mirror's `HEAD`.
    ///
    /// A caller arriving while a fetch of this mirror runs waits for it and gets its result
    /// rather than starting another, so N subscribers of one repository cost one fetch.
    pub async fn fetch(&self) -> Result<FetchOutcome> {
        let mut rx = {
            let mut in_flight = self.inner.in_flight.lock().expect("fetch lock poisoned");
            match in_flight.as_ref() {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    *in_flight = Some(rx.clone());
                    // A task of its own, so that a caller giving up (dropped future) neither
                    // cancels the fetch nor leaves the other waiters without a result.
                    tokio::spawn(self.clone().run_fetch(tx));
                    rx
                }
            }
        };
        match rx.wait_for(Option::is_some).await {
            Ok(result) => result.clone().expect("waited for a result"),
            Err(_) => Err(GitError::FetchFailed {
                repo: self.inner.url.to_string(),
                message: "fetch task ended without a result".to_owned(),
            }),
        }
    }

    async fn run_fetch(self, tx: watch::Sender<Option<Result<FetchOutcome>>>) {
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let timeout = self.inner.config.fetch_timeout;
        let interrupt = Arc::new(AtomicBool::new(false));
        let job = {
            let mirror = self.clone();
            let interrupt = interrupt.clone();
            tokio::task::spawn_blocking(move || mirror.fetch_blocking(generation, &interrupt))
        };
        let repo = self.inner.url.to_string();
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(timeout, job).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(GitError::FetchFailed {
                repo: repo.clone(),
                message: format!("fetch thread failed: {join}"),
            }),
            Err(_) => {
                interrupt.store(true, Ordering::SeqCst);
                Err(GitError::Timeout {
                    repo: repo.clone(),
                    after: timeout,
                })
            }
        };
        match &result {
            Ok(outcome) => tracing::debug!(
                repo = %repo,
                generation,
                refs = outcome.refs,
                pruned = outcome.pruned,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "fetched"
            ),
            Err(err) => tracing::warn!(repo = %repo, generation, error = %err, "fetch failed"),
        }
        // Clear before publishing: whoever comes after the result must start a new fetch,
        // since the remote may have moved since this one began.
        *self.inner.in_flight.lock().expect("fetch lock poisoned") = None;
        tx.send_replace(Some(result));
    }

    fn fetch_blocking(&self, generation: u64, interrupt: &AtomicBool) -> Result<FetchOutcome> {
        let _disk = self
            .inner
            .disk
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if interrupt.load(Ordering::SeqCst) {
            return Err(GitError::Timeout {
                repo: self.inner.url.to_string(),
                after: self.inner.config.fetch_timeout,
            });
        }
        let failed = |message: String| GitError::FetchFailed {
            repo: self.inner.url.to_string(),
            message,
        };
        let repo = self.repo();
        let remote = repo
            .remote_at(self.inner.url.as_str())
            .and_then(|remote| {
                remote.with_refspecs(
                    ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                    gix::remote::Direction::Fetch,
                )
            })
            .map_err(|e| failed(error_chain(&e)))?
            // Tags come through the explicit refspec; auto-following would only add noise.
            .with_fetch_tags(gix::remote::fetch::Tags::None);

        let credentials = if self.inner.url.accepts_credentials() {
            self.inner
                .credentials
                .lock()
                .expect("credentials lock poisoned")
                .clone()
        } else {
            None
        };
        let timeout = self.inner.config.fetch_timeout;
        let listing = match self.inner.url.scheme() {
            gix::url::Scheme::Git => {
                let transport = connect_git_daemon(&remote, timeout).map_err(&failed)?;
                let connection = remote.to_connection_with_transport(transport);
                receive(connection, credentials, interrupt)
            }
            gix::url::Scheme::Ssh => {
                let key = self
                    .inner
                    .ssh_credentials
                    .lock()
                    .expect("credentials lock poisoned")
                    .clone();
                let url = remote
                    .url(gix::remote::Direction::Fetch)
                    .ok_or_else(|| failed("no url".into()))?;
                let (transport, session) =
                    crate::ssh::connect(url, key.as_ref(), &self.inner.config.ssh, timeout)
                        .map_err(&failed)?;
                let connection = remote.to_connection_with_transport(transport);
                // The connection is gone once `receive` returns, so `ssh` ends and has said
                // why it failed, if it did.
                receive(connection, None, interrupt)
                    .map_err(|e| BoxError::from(session.explain(&error_chain(&*e))))
            }
            scheme => {
                let mut connection = remote
                    .connect(gix::remote::Direction::Fetch)
                    .map_err(|e| failed(error_chain(&e)))?;
                if matches!(scheme, gix::url::Scheme::Http | gix::url::Scheme::Https) {
                    let tls = Tls {
                        host: remote
                            .url(gix::remote::Direction::Fetch)
                            .and_then(|u| u.host().map(str::to_owned))
                            .unwrap_or_default(),
                        certs_dir: self.inner.config.tls_certs_dir.clone(),
                        credentials: self
                            .inner
                            .tls_credentials
                            .lock()
                            .expect("credentials lock poisoned")
                            .clone(),
                    };
                    // Checked here, so a bad certificate is the error, not gix's "client
                    // configuration failed".
                    crate::tls::configure(
                        reqwest::blocking::ClientBuilder::new(),
                        &tls.host,
                        &tls.certs_dir,
                        tls.credentials.as_ref(),
                    )
                    .map(drop)
                    .map_err(|e| failed(e.to_string()))?;
                    if let Some(options) =
                        http_options(&repo, self.inner.url.as_str(), timeout, tls)
                    {
                        connection = connection.with_transport_options(options);
                    }
                }
                receive(connection, credentials, interrupt)
            }
        }
        .map_err(|e| failed(error_chain(&*e)))?;

        let pruned = self
            .prune(&repo, &listing.names)
            .map_err(|e| failed(format!("pruning refs: {}", error_chain(&*e))))?;
        if let Some(head) = &listing.head_target {
            set_head(&repo, head)
                .map_err(|e| failed(format!("recording default branch: {}", error_chain(&*e))))?;
        }
        Ok(FetchOutcome {
            generation,
            default_branch: listing.head_target,
            refs: listing.names.len(),
            pruned,
        })
    }

    /// gix does not prune, so the refs under our two refspecs that the remote no longer lists
    /// are deleted here; otherwise a deleted branch would keep resolving forever.
    fn prune(
        &self,
        repo: &gix::Repository,
        remote_names: &HashSet<String>,
    ) -> Result<usize, BoxError> {
        let mut edits = Vec::new();
        let platform = repo.references()?;
        for prefix in ["refs/heads/", "refs/tags/"] {
            for reference in platform.prefixed(prefix)? {
                let reference = reference?;
                let name = reference.name().as_bstr().to_str_lossy().into_owned();
                if !remote_names.contains(&name) {
                    edits.push(gix::refs::transaction::RefEdit {
                        change: gix::refs::transaction::Change::Delete {
                            expected: gix::refs::transaction::PreviousValue::Any,
                            log: gix::refs::transaction::RefLog::AndReference,
                        },
                        name: reference.name().to_owned(),
                        deref: false,
                    });
                }
            }
        }
        let pruned = edits.len();
        if pruned > 0 {
            repo.edit_references(edits)?;
        }
        Ok(pruned)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What the remote advertised, as far as the mirror cares.
struct Listing {
    /// Full names of the remote's branches and tags.
    names: HashSet<String>,
    /// The branch the remote's `HEAD` points to.
    head_target: Option<String>,
}

fn receive<T: Transport>(
    connection: gix::remote::Connection<'_, '_, '_, T>,
    credentials: Option<RepoCredentials>,
    interrupt: &AtomicBool,
) -> Result<Listing, BoxError> {
    let connection = match credentials {
        Some(creds) => connection.with_credentials(move |action| match action {
            gix::credentials::helper::Action::Get(context) => {
                Ok(Some(gix::credentials::protocol::Outcome {
                    identity: gix::sec::identity::Account {
                        username: creds.username().to_owned(),
                        password: creds.password().to_owned(),
                        oauth_refresh_token: None,
                    },
                    next: context.into(),
                }))
            }
            // Nothing to store or erase: the credentials live in the repository settings.
            _ => Ok(None),
        }),
        // Never fall back to the host's credential helpers or a prompt: a service has no one
        // to ask, and the fleet's credentials are the only ones that should be used.
        None => connection.with_credentials(|_| Ok(None)),
    };
    // `HEAD` is listed only when asked for; it is how the default branch is learned.
    let head =
        gix::refspec::parse("HEAD".into(), gix::refspec::parse::Operation::Fetch)?.to_owned();
    let options = gix::remote::ref_map::Options {
        extra_refspecs: vec![head],
        ..Default::default()
    };
    let prepare = connection.prepare_fetch(gix::progress::Discard, options)?;
    let outcome = prepare.receive(gix::progress::Discard, interrupt)?;
    let mut listing = Listing {
        names: HashSet::new(),
        head_target: None,
    };
    for remote_ref in &outcome.ref_map.remote_refs {
        let (name, target) = match remote_ref {
            Ref::Direct { full_ref_name, .. } | Ref::Peeled { full_ref_name, .. } => {
                (full_ref_name, None)
            }
            Ref::Symbolic {
                full_ref_name,
                target,
                ..
            }
            | Ref::Unborn {
                full_ref_name,
                target,
            } => (full_ref_name, Some(target)),
        };
        let name = name.to_str_lossy();
        if name == "HEAD" {
            listing.head_target = target
                .map(|t| t.to_str_lossy().into_owned())
                .filter(|t| t.starts_with("refs/heads/"));
        } else if (name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
            && !name.ends_with("^{}")
        {
            listing.names.insert(name.into_owned());
        }
    }
    Ok(listing)
}

/// gix's own git:// connect has a fixed connect timeout and no read timeout; a daemon that
/// accepts and then stalls would pin the fetch thread forever, so the socket is made here.
fn connect_git_daemon(
    remote: &gix::Remote<'_>,
    timeout: Duration,
) -> Result<
    gix::protocol::transport::client::git::blocking_io::Connection<
        std::net::TcpStream,
        std::net::TcpStream,
    >,
    String,
> {
    use std::net::ToSocketAddrs;
    let url = remote.url(gix::remote::Direction::Fetch).ok_or("no url")?;
    let host = url.host().ok_or("git url without host")?;
    let port = url.port.unwrap_or(9418);
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    let mut last_err = format!("{host} has no address");
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                let io = |e: std::io::Error| format!("configuring connection to {addr}: {e}");
                stream.set_read_timeout(Some(timeout)).map_err(io)?;
                stream.set_write_timeout(Some(timeout)).map_err(io)?;
                let write = stream.try_clone().map_err(io)?;
                return Ok(
                    gix::protocol::transport::client::git::blocking_io::Connection::new(
                        stream,
                        write,
                        gix::protocol::transport::Protocol::V2,
                        url.path.clone(),
                        Some((host.to_owned(), url.port)),
                        gix::protocol::transport::client::git::ConnectMode::Daemon,
                        false,
                    ),
                );
            }
            Err(e) => last_err = format!("connecting to {addr}: {e}"),
        }
    }
    Err(last_err)
}

/// HTTP options from the (isolated) repository configuration, plus a whole-request timeout
/// on the reqwest client so that a stalled server cannot pin the fetch thread.
/// What an https fetch's client is set up with ([`crate::tls::configure`]).
struct Tls {
    host: String,
    certs_dir: PathBuf,
    credentials: Option<TlsCredentials>,
}

fn http_options(
    repo: &gix::Repository,
    url: &str,
    timeout: Duration,
    tls: Tls,
) -> Option<Box<dyn std::any::Any>> {
    use gix::protocol::transport::client::blocking_io::http;
    let mut options = repo.transport_options(url, None).ok().flatten()?;
    let http_options = options.downcast_mut::<http::Options>()?;
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |builder| {
            let builder = crate::tls::configure(
                builder.timeout(timeout),
                &tls.host,
                &tls.certs_dir,
                tls.credentials.as_ref(),
            )
            .map_err(gix::Error::from_error)?;
            Ok(builder)
        })),
        configure_request: None,
    };
    http_options.backend = Some(Arc::new(Mutex::new(backend)));
    http_options.connect_timeout = Some(timeout);
    Some(options)
}

fn set_head(repo: &gix::Repository, target: &str) -> Result<(), BoxError> {
    use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
    let current = repo.find_reference("HEAD")?;
    if let gix::refs::TargetRef::Symbolic(name) = current.target()
        && name.as_bstr() == target
    {
        return Ok(());
    }
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: "fetch: remote HEAD".into(),
            },
            expected: PreviousValue::Any,
            new: gix::refs::Target::Symbolic(target.try_into()?),
        },
        name: "HEAD".try_into()?,
        deref: false,
    })?;
    Ok(())
}
