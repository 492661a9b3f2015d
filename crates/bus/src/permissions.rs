//! A locked bus: what each service may publish and subscribe to, as nats-server
//! permissions for one NATS user (an NKey) per service role.
//!
//! JetStream is reached through subjects too (`$JS.API.*` for stream and consumer calls,
//! `$KV.<bucket>.<key>` for KV writes, `$JS.ACK.*` for acks), so a role lists exactly the
//! buckets, streams and object stores it uses: the renderer cannot publish a sync
//! operation, and a service without a credentials bucket in its list cannot read that
//! bucket (nor change its stream's configuration to copy it elsewhere). Creating the
//! topology (`ensure`) belongs to [`Role::Admin`], the identity `gitfleet up` and the
//! operator's tools use; services find it made.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;

use crate::topology::{Bucket, ObjectStoreName, StreamName, Topology};

/// Who connects. Each service is one role; every replica of a service shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    GitWatcher,
    Renderer,
    DiffWorker,
    SyncExecutor,
    ApiGateway,
    Notifier,
    AppSetController,
    /// Creates the topology and runs the operator's commands (`gitfleet admin`,
    /// `export`): everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::GitWatcher,
        Role::Renderer,
        Role::DiffWorker,
        Role::SyncExecutor,
        Role::ApiGateway,
        Role::Notifier,
        Role::AppSetController,
        Role::Admin,
    ];

    /// Whether the role holds the key credentials are sealed with: those that use
    /// credentials (the git watcher and the sync executors), the gateway that stores them,
    /// the renderer (which seals its cache of rendered manifests, Secrets among them: only
    /// it may read that bucket, and it cannot read the credentials buckets), the diff
    /// workers (which seal a Secret's values in the sync operations they queue), the
    /// ApplicationSet controller (the pull request generator's API tokens, in the
    /// settings Secrets; clusters' credentials it never reads), and the admin. The
    /// notifier goes without.
    pub fn holds_credentials_key(self) -> bool {
        !matches!(self, Role::Notifier)
    }

    /// The service's name, as its binary and `--services` call it.
    pub fn name(self) -> &'static str {
        match self {
            Role::GitWatcher => "git-watcher",
            Role::Renderer => "renderer",
            Role::DiffWorker => "diff-worker",
            Role::SyncExecutor => "sync-executor",
            Role::ApiGateway => "api-gateway",
            Role::Notifier => "notifier",
            Role::AppSetController => "appset-controller",
            Role::Admin => "admin",
        }
    }
}

/// What a KV bucket is used for by a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// The subjects one role may publish to and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

impl Permissions {
    fn js_api(&mut self, call: &str) {
        self.publish.push(format!("$JS.API.{call}"));
    }

    /// Reading a stream's messages: info, direct and stored gets, and consumers of any
    /// kind (KV watches and key listings are ordered consumers).
    fn read_stream(&mut self, stream: &str) {
        for call in [
            format!("STREAM.INFO.{stream}"),
            format!("STREAM.MSG.GET.{stream}"),
            format!("DIRECT.GET.{stream}"),
            format!("DIRECT.GET.{stream}.>"),
            format!("CONSUMER.CREATE.{stream}"),
            format!("CONSUMER.CREATE.{stream}.>"),
            format!("CONSUMER.DURABLE.CREATE.{stream}.>"),
            format!("CONSUMER.INFO.{stream}.>"),
            format!("CONSUMER.DELETE.{stream}.>"),
            format!("CONSUMER.MSG.NEXT.{stream}.>"),
        ] {
            self.js_api(&call);
        }
        self.publish.push(format!("$JS.ACK.{stream}.>"));
        self.publish.push(format!("$JS.FC.{stream}.>"));
    }

    fn kv(&mut self, topology: &Topology, bucket: Bucket, access: Access) {
        let name = topology.bucket(bucket);
        self.read_stream(&format!("KV_{name}"));
        if access == Access::Write {
            self.publish.push(format!("$KV.{name}.>"));
        }
    }

    fn object_store(&mut self, topology: &Topology, store: ObjectStoreName) {
        let name = topology.object_store(store);
        let stream = format!("OBJ_{name}");
        self.read_stream(&stream);
        self.js_api(&format!("STREAM.PURGE.{stream}"));
        self.publish.push(format!("$O.{name}.>"));
    }

    fn produce(&mut self, topology: &Topology, stream: StreamName) {
        self.js_api(&format!("STREAM.INFO.{}", topology.stream(stream)));
        self.publish.extend(topology.stream_subjects(stream));
    }

    fn consume(&mut self, topology: &Topology, stream: StreamName) {
        self.read_stream(&topology.stream(stream));
    }
}

impl Topology {
    /// The permissions of `role` under this prefix.
    pub fn permissions(&self, role: Role) -> Permissions {
        use Access::{Read, Write};
        let p = self.prefix();
        let mut perm = Permissions::default();
        if role == Role::Admin {
            perm.publish.push(">".into());
            perm.subscribe.push(">".into());
            return perm;
        }
        // Every role: answers to its own questions and publish acks, account info, and
        // large payloads through the payloads store.
        perm.subscribe.push("_INBOX.>".into());
        perm.publish.push("_INBOX.>".into());
        perm.js_api("INFO");
        perm.object_store(self, ObjectStoreName::Payloads);
        match role {
            Role::GitWatcher => {
                perm.kv(self, Bucket::Applications, Read);
                perm.kv(self, Bucket::Repositories, Read);
                perm.kv(self, Bucket::RepoCreds, Read);
                perm.produce(self, StreamName::Revisions);
                for subject in [
                    self.git_resolve_subject(),
                    self.git_files_subject(),
                    self.git_tree_ids_subject(),
                    self.webhook_subject(),
                ] {
                    perm.subscribe.push(subject);
                }
            }
            Role::Renderer => {
                perm.kv(self, Bucket::RenderInputs, Write);
                perm.kv(self, Bucket::Rendered, Write);
                perm.object_store(self, ObjectStoreName::Manifests);
                perm.subscribe.push(self.render_subject());
                perm.publish.push(format!("{p}.git.*"));
            }
            Role::DiffWorker => {
                perm.kv(self, Bucket::Members, Write);
                perm.kv(self, Bucket::Leases, Write);
                perm.kv(self, Bucket::Applications, Read);
                perm.kv(self, Bucket::Projects, Read);
                // App of Apps: the sets and settings a parent's comparison reads; argocd-cm
                // (watched) for its system-level ignoreDifferences.
                perm.kv(self, Bucket::AppSets, Read);
                perm.kv(self, Bucket::Settings, Read);
                // Names and namespaces only: the credentials in it are sealed, and this
                // role holds no key.
                perm.kv(self, Bucket::Clusters, Read);
                perm.kv(self, Bucket::AppStatus, Write);
                perm.kv(self, Bucket::Operations, Write);
                perm.consume(self, StreamName::Revisions);
                perm.produce(self, StreamName::SyncWork);
                perm.produce(self, StreamName::Events);
                perm.produce(self, StreamName::Audit);
                perm.publish.push(self.render_subject());
                perm.publish.push(self.git_resolve_subject());
                perm.publish.push(format!("{p}.live-request.>"));
                // A child app's changed status is its parent's live change (App of Apps).
                perm.publish.push(format!("{p}.live.*"));
                perm.subscribe.push(format!("{p}.live.*"));
                perm.subscribe.push(format!("{p}.sync-request.*"));
                perm.subscribe.push(self.webhook_subject());
            }
            Role::SyncExecutor => {
                perm.kv(self, Bucket::Members, Write);
                perm.kv(self, Bucket::Leases, Write);
                perm.kv(self, Bucket::Clusters, Read);
                perm.kv(self, Bucket::Operations, Write);
                // App of Apps: a sync registers and prunes the Argo CD objects an app holds
                // for the control plane, reads the children's health, and asks a child's
                // diff worker for its cascade delete.
                perm.kv(self, Bucket::Applications, Write);
                perm.kv(self, Bucket::Projects, Write);
                perm.kv(self, Bucket::AppSets, Write);
                perm.kv(self, Bucket::AppStatus, Write);
                perm.kv(self, Bucket::Settings, Read);
                perm.publish.push(format!("{p}.sync-request.*"));
                perm.consume(self, StreamName::SyncWork);
                perm.produce(self, StreamName::Events);
                perm.produce(self, StreamName::Audit);
                perm.publish.push(format!("{p}.live.*"));
                perm.subscribe.push(format!("{p}.live-request.>"));
                perm.subscribe.push(format!("{p}.action-request.>"));
            }
            Role::ApiGateway => {
                for bucket in [
                    Bucket::Applications,
                    Bucket::Projects,
                    Bucket::AppSets,
                    Bucket::Clusters,
                    Bucket::Repositories,
                    Bucket::RepoCreds,
                    Bucket::Settings,
                    Bucket::Secrets,
                ] {
                    perm.kv(self, bucket, Write);
                }
                // Writes app status only to remove a deleted app's.
                perm.kv(self, Bucket::AppStatus, Write);
                perm.kv(self, Bucket::Operations, Write);
                perm.kv(self, Bucket::Leases, Read);
                perm.kv(self, Bucket::Members, Read);
                perm.produce(self, StreamName::Audit);
                perm.produce(self, StreamName::Events);
                perm.publish.push(self.webhook_subject());
                perm.publish.push(self.render_subject());
                perm.publish.push(self.git_resolve_subject());
                perm.publish.push(format!("{p}.live-request.>"));
                perm.publish.push(format!("{p}.action-request.>"));
                perm.publish.push(format!("{p}.sync-request.*"));
                perm.publish.push(self.appset_generate_subject());
            }
            Role::Notifier => {
                perm.consume(self, StreamName::Events);
            }
            Role::AppSetController => {
                perm.kv(self, Bucket::Members, Write);
                perm.kv(self, Bucket::Leases, Write);
                // Writes a set's status; writes, and deletes, the apps it generates (and
                // their status and operation once deleted).
                perm.kv(self, Bucket::AppSets, Write);
                perm.kv(self, Bucket::Applications, Write);
                perm.kv(self, Bucket::AppStatus, Write);
                perm.kv(self, Bucket::Operations, Write);
                perm.kv(self, Bucket::Projects, Read);
                // Names, servers and labels: the credentials in it stay sealed.
                perm.kv(self, Bucket::Clusters, Read);
                // The SCM generators' tokens: in Argo CD's settings Secrets, or Secrets
                // labelled as Argo CD's.
                perm.kv(self, Bucket::Settings, Read);
                perm.kv(self, Bucket::Secrets, Read);
                perm.consume(self, StreamName::Revisions);
                perm.produce(self, StreamName::Audit);
                perm.publish.push(self.git_resolve_subject());
                perm.publish.push(self.git_files_subject());
                // Cascade deletes of the apps it no longer generates.
                perm.publish.push(format!("{p}.sync-request.*"));
                perm.subscribe.push(self.appset_generate_subject());
                // Webhooks: pull requests opened, closed, labelled or pushed to.
                perm.subscribe.push(self.webhook_subject());
            }
            Role::Admin => unreachable!("handled above"),
        }
        perm
    }

    /// The `authorization` block of a nats-server configuration: one NKey user per role,
    /// `users` pairing each role with the public key (`U...`) its seed belongs to.
    pub fn server_authorization(&self, users: &[(Role, String)]) -> String {
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let list = |items: &[String]| {
            items
                .iter()
                .map(|s| quote(s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::from("authorization {\n  users = [\n");
        for (role, public_key) in users {
            let perm = self.permissions(*role);
            let _ = writeln!(
                out,
                "    {{ nkey: {}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }} }}",
                quote(public_key),
                list(&perm.publish),
                list(&perm.subscribe),
            );
        }
        out.push_str("  ]\n}\n");
        out
    }
}

/// One NKey per role: the seeds each service connects with, and the public keys the
/// server's configuration lists. `Debug` prints the public keys only.
#[derive(Clone)]
pub struct Identities {
    seeds: BTreeMap<Role, String>,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.public_keys().iter().map(|(r, k)| (r.name(), k)))
            .finish()
    }
}

impl Identities {
    /// A fresh key pair for every role.
    pub fn generate() -> Self {
        let seeds = Role::ALL
            .into_iter()
            .map(|role| {
                let pair = nkeys::KeyPair::new_user();
                (role, pair.seed().expect("a new user key has a seed"))
            })
            .collect();
        Identities { seeds }
    }

    /// The seed `role` connects with (`SU...`): a secret.
    pub fn seed(&self, role: Role) -> &str {
        &self.seeds[&role]
    }

    pub fn public_keys(&self) -> Vec<(Role, String)> {
        self.seeds
            .iter()
            .map(|(role, seed)| {
                let pair = nkeys::KeyPair::from_seed(seed).expect("seeds made or read here parse");
                (*role, pair.public_key())
            })
            .collect()
    }

    /// Writes one seed file per role (`<role>.nk`, owner-only) into `dir`.
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (role, seed) in &self.seeds {
            let path = dir.join(format!("{}.nk", role.name()));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(&mut options.open(&path)?, format!("{seed}\n").as_bytes())?;
        }
        Ok(())
    }

    /// Reads the seed files in `dir` and makes (and writes) those of roles that have
    /// none yet: a folder made before a role existed gains that role's identity, the
    /// others are kept.
    pub fn read_or_extend_dir(dir: &Path) -> Result<Self, String> {
        let mut seeds = BTreeMap::new();
        let mut added = false;
        for role in Role::ALL {
            let path = dir.join(format!("{}.nk", role.name()));
            let seed = if path.exists() {
                read_seed(&path)?
            } else {
                added = true;
                nkeys::KeyPair::new_user()
                    .seed()
                    .map_err(|e| format!("making the {} identity: {e}", role.name()))?
            };
            seeds.insert(role, seed);
        }
        let ids = Identities { seeds };
        if added {
            ids.write_dir(dir)
                .map_err(|e| format!("writing {}: {e}", dir.display()))?;
        }
        Ok(ids)
    }

    /// Reads the seed files [`Identities::write_dir`] wrote.
    pub fn read_dir(dir: &Path) -> Result<Self, String> {
        let mut seeds = BTreeMap::new();
        for role in Role::ALL {
            let path = dir.join(format!("{}.nk", role.name()));
            let seed = read_seed(&path)?;
            seeds.insert(role, seed);
        }
        Ok(Identities { seeds })
    }
}

/// Reads an NKey seed file (`SU...`, whitespace ignored), checking that it parses; the
/// error names the file, never the seed.
pub fn read_seed(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let seed = text.trim().to_owned();
    nkeys::KeyPair::from_seed(&seed)
        .map_err(|_| format!("{}: not an NKey seed (expected SU...)", path.display()))?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(patterns: &[String], subject: &str) -> bool {
        patterns.iter().any(|p| {
            let (p, s): (Vec<&str>, Vec<&str>) =
                (p.split('.').collect(), subject.split('.').collect());
            for (i, token) in p.iter().enumerate() {
                match *token {
                    ">" => return s.len() > i,
                    "*" if i < s.len() => {}
                    t if s.get(i) == Some(&t) => {}
                    _ => return false,
                }
            }
            p.len() == s.len()
        })
    }

    #[test]
    fn only_the_watcher_executor_and_gateway_reach_credentials() {
        let t = Topology::default();
        let read_repos = "$JS.API.DIRECT.GET.KV_gf-repositories.$KV.gf-repositories.r1";
        let read_clusters = "$JS.API.CONSUMER.CREATE.KV_gf-clusters.x.$KV.gf-clusters.>";
        for role in Role::ALL {
            let perm = t.permissions(role);
            let repos = allows(&perm.publish, read_repos);
            let clusters = allows(&perm.publish, read_clusters);
            match role {
                Role::GitWatcher => assert!(repos && !clusters),
                Role::SyncExecutor => assert!(!repos && clusters),
                // The diff workers read a cluster's name and namespaces; its credentials
                // are sealed and they hold no key.
                Role::DiffWorker | Role::AppSetController => assert!(!repos && clusters),
                Role::ApiGateway | Role::Admin => assert!(repos && clusters),
                Role::Renderer | Role::Notifier => assert!(!repos && !clusters, "{role:?}"),
            }
            // Only the admin changes a stream's configuration.
            assert_eq!(
                allows(&perm.publish, "$JS.API.STREAM.UPDATE.KV_gf-repositories"),
                role == Role::Admin
            );
        }
    }

    #[test]
    fn only_diff_workers_publish_sync_operations() {
        let t = Topology::default();
        for role in Role::ALL {
            let perm = t.permissions(role);
            assert_eq!(
                allows(&perm.publish, "gf.sync.3"),
                matches!(role, Role::DiffWorker | Role::Admin),
                "{role:?}"
            );
        }
    }

    #[test]
    fn identities_round_trip_through_files_and_hide_seeds() {
        let ids = Identities::generate();
        let dir = tempfile::tempdir().unwrap();
        ids.write_dir(dir.path()).unwrap();
        let back = Identities::read_dir(dir.path()).unwrap();
        assert_eq!(back.public_keys(), ids.public_keys());
        let shown = format!("{ids:?}");
        assert!(!shown.contains(ids.seed(Role::Renderer)), "{shown}");
        std::fs::write(dir.path().join("renderer.nk"), "nope").unwrap();
        let err = Identities::read_dir(dir.path()).unwrap_err();
        assert!(
            err.contains("renderer.nk") && !err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn a_folder_made_before_a_role_existed_gains_its_identity() {
        let ids = Identities::generate();
        let dir = tempfile::tempdir().unwrap();
        ids.write_dir(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("appset-controller.nk")).unwrap();
        assert!(Identities::read_dir(dir.path()).is_err());
        let extended = Identities::read_or_extend_dir(dir.path()).unwrap();
        assert_eq!(extended.seed(Role::Admin), ids.seed(Role::Admin));
        assert_ne!(
            extended.seed(Role::AppSetController),
            ids.seed(Role::AppSetController)
        );
        let again = Identities::read_dir(dir.path()).unwrap();
        assert_eq!(again.public_keys(), extended.public_keys());
    }

    #[test]
    fn the_server_block_names_each_user_once() {
        let t = Topology::default();
        let text = t.server_authorization(&[
            (Role::Renderer, "UAAA".into()),
            (Role::Notifier, "UBBB".into()),
        ]);
        assert_eq!(text.matches("nkey:").count(), 2, "{text}");
        assert!(text.contains("\"gf.render\""), "{text}");
    }
}
