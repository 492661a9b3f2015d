//! The end-to-end sandbox: a real nats-server, a real Git repository served by
//! `git daemon`, the cluster emulator over HTTPS registered as Argo CD's in-cluster
//! destination, and every gitfleet service started in-process through `gitfleet-stack`.
//! Tests read as the user's story: given a repo, when the app is created and synced, then
//! the cluster holds the objects and the app reports Synced and Healthy.

use std::sync::Arc;
use std::time::Duration;

use cluster_sim::{ClusterConfig, Sim, SimConfig};
use gitfleet_bus::testkit::NatsServer;
use gitfleet_bus::{Bucket, Bus, Identities, Role, subject_token};
use gitfleet_stack::{ServiceBuses, Stack, StackConfig};
use serde_json::{Value, json};

pub use gitfleet_gitkit::{GitDaemon, Upstream};

/// Timings short enough for tests, long enough for a busy 2-core machine.
pub struct Timings {
    pub poll: Duration,
    pub refresh: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            poll: Duration::from_secs(3),
            refresh: Duration::from_secs(30),
        }
    }
}

/// Where a sandbox keeps its services' NKey seeds (`<role>.nk`), in its work folder.
const IDENTITIES: &str = "nats-identities";

pub struct Sandbox {
    pub nats: NatsServer,
    pub bus: Bus,
    pub sim: Sim,
    pub repo: Upstream,
    pub daemon: GitDaemon,
    pub stack: Option<Stack>,
    pub work: tempfile::TempDir,
    pub timings: Timings,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

impl Sandbox {
    /// Everything up, with `files` committed on `main` of the served repository.
    pub async fn start(files: &[(&str, &str)], timings: Timings) -> Sandbox {
        Self::start_with(files, timings, gitfleet_stack::Services::ALL).await
    }

    /// As [`Sandbox::start`], running only `services` in the test process (the others
    /// are started by the test, e.g. as separate processes with [`Sandbox::spawn_node`]).
    pub async fn start_with(
        files: &[(&str, &str)],
        timings: Timings,
        services: gitfleet_stack::Services,
    ) -> Sandbox {
        init_tracing();
        let work = tempfile::tempdir().expect("tempdir");
        // A locked bus, as a deployment has: each service its own NATS user with its
        // role's permissions (the sandbox itself connects as the admin).
        let prefix = gitfleet_bus::testkit::unique_prefix();
        let identities = Identities::generate();
        identities
            .write_dir(&work.path().join(IDENTITIES))
            .expect("writing the NATS identities");
        let topology = gitfleet_bus::Topology::new(&prefix).expect("prefix");
        let nats = NatsServer::start_locked(&topology, &identities);
        // Connected the way services connect (reconnecting forever), so a test may
        // restart the server under it; credentials sealed with a key of this sandbox,
        // which the nodes it spawns read too.
        let mut bus_config = gitfleet_bus::BusConfig::new(nats.url());
        bus_config.prefix = prefix;
        bus_config.nkey_seed = Some(identities.seed(Role::Admin).to_owned());
        let key_file = work.path().join("credentials.key");
        let key = Arc::new(
            gitfleet_bus::CredentialKey::load_or_create(&key_file).expect("credentials key"),
        );
        let bus = gitfleet_bus::connect(&bus_config)
            .await
            .expect("bus")
            .with_credentials_key(key.clone());
        let buses = ServiceBuses::connect_locked(&bus_config, &identities, Some(key))
            .await
            .expect("service buses");
        let sim = Sim::start(SimConfig {
            tls: true,
            cluster: ClusterConfig {
                ready_delay: Duration::from_millis(300),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .expect("cluster emulator starts");
        let repo = Upstream::new();
        for (path, content) in files {
            repo.write(path, content);
        }
        repo.commit("initial manifests");
        repo.push_all();
        let daemon = GitDaemon::serve(&repo.base());
        let mut sb = Sandbox {
            nats,
            bus,
            sim,
            repo,
            daemon,
            stack: None,
            work,
            timings,
        };
        sb.bus.ensure().await.expect("topology");
        sb.register_in_cluster().await;
        let mut cfg = sb.stack_config("one");
        cfg.services = services;
        sb.stack = Some(
            gitfleet_stack::start_with(cfg, buses)
                .await
                .expect("services start"),
        );
        sb
    }

    /// Starts `services` in a separate process (the `e2e-node` binary) as member `member`,
    /// returning once it is up; kill it with [`std::process::Child::kill`] (SIGKILL).
    pub fn spawn_node(&self, node_bin: &str, member: &str, services: &str) -> Node {
        self.spawn_node_with(node_bin, member, services, &[])
    }

    /// [`Sandbox::spawn_node`] with more of `e2e-node`'s arguments (`--wave-delay-ms`).
    pub fn spawn_node_with(
        &self,
        node_bin: &str,
        member: &str,
        services: &str,
        extra: &[&str],
    ) -> Node {
        use std::io::BufRead;
        let mut child = std::process::Command::new(node_bin)
            .args(extra)
            .args([
                "--nats-url",
                &self.nats.url(),
                "--prefix",
                self.bus.topology.prefix(),
                "--member-id",
                member,
            ])
            .args(["--services", services, "--ttl-seconds", "2"])
            .arg("--credentials-key-file")
            .arg(self.work.path().join("credentials.key"))
            .arg("--nats-identities")
            .arg(self.work.path().join(IDENTITIES))
            .arg("--work-dir")
            .arg(self.work.path().join(format!("node-{member}")))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("e2e-node starts");
        // Log lines may come first; the node says "ready" once its services run.
        let mut out = std::io::BufReader::new(child.stdout.as_mut().expect("stdout"));
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            let n = out.read_line(&mut line).expect("reading e2e-node's output");
            if line.trim() == "ready" {
                break;
            }
            assert!(n > 0, "e2e-node {member} did not start: {seen:?}");
            seen.push(line);
        }
        Node(child)
    }

    pub fn repo_url(&self) -> String {
        self.daemon.url(&self.repo.name)
    }

    pub fn stack_config(&self, member: &str) -> StackConfig {
        let mut c = StackConfig::new(member, self.work.path().join(format!("mirrors-{member}")));
        c.grpc_addr = "127.0.0.1:0".parse().unwrap();
        c.http_addr = "127.0.0.1:0".parse().unwrap();
        c.poll_interval = self.timings.poll;
        c.refresh_interval = self.timings.refresh;
        c.wave_delay = Duration::ZERO;
        c.ownership_ttl = Duration::from_secs(2);
        // These tests are about delivery; the front door has its own.
        c.disable_auth = true;
        c
    }

    /// `http://127.0.0.1:PORT` of the api gateway's gRPC endpoint.
    pub fn grpc(&self) -> String {
        format!(
            "http://{}",
            self.stack
                .as_ref()
                .and_then(|s| s.grpc_addr)
                .expect("gateway running")
        )
    }

    pub fn webhook_url(&self) -> String {
        format!(
            "http://{}/api/webhook",
            self.stack
                .as_ref()
                .and_then(|s| s.http_addr)
                .expect("gateway running")
        )
    }

    /// Registers the emulated cluster as Argo CD's in-cluster destination, as `gitfleet up` does.
    async fn register_in_cluster(&self) {
        let ca = self.sim.ca_pem().expect("tls on");
        self.register_cluster(
            gitfleet_messages::IN_CLUSTER,
            &self.sim.url(0),
            &self.sim.cluster(0).token,
            Some(ca),
        )
        .await;
    }

    /// Puts a cluster into KV `clusters`, as `gitfleet cluster add` does.
    pub async fn register_cluster(
        &self,
        name: &str,
        server: &str,
        token: &str,
        ca_pem: Option<&str>,
    ) {
        let mut cluster = json!({"name": name, "server": server, "config": {"bearerToken": token}});
        match ca_pem {
            Some(ca) => {
                cluster["config"]["tlsClientConfig"] =
                    json!({"caData": cluster_sim::kubeconfig::base64(ca.as_bytes())})
            }
            None => cluster["config"]["tlsClientConfig"] = json!({"insecure": true}),
        }
        let kv = self
            .bus
            .kv(Bucket::Clusters)
            .await
            .expect("clusters bucket");
        // Sealed, as the gateway stores it.
        let body = self
            .bus
            .encode_document(Bucket::Clusters, name, &cluster)
            .expect("sealing the cluster's credentials");
        kv.put(subject_token(name), body.into())
            .await
            .expect("register cluster");
    }

    /// The app's status as the diff worker last wrote it.
    pub async fn status(&self, app: &str) -> Option<Value> {
        let kv = self.bus.kv(Bucket::AppStatus).await.ok()?;
        let entry = kv.get(subject_token(app)).await.ok()??;
        serde_json::from_slice(&entry).ok()
    }

    /// Polls the app's status until `pred` holds; panics with the last status after `secs`.
    pub async fn until_status(
        &self,
        app: &str,
        secs: u64,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status(app).await;
            if let Some(s) = s.as_ref().filter(|s| pred(s)) {
                return s.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{app}: timed out after {secs} s waiting for {what}; last status: {s:#?}"
            );
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One live object from the emulated cluster, or None.
    pub fn live(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = cluster_sim::resources::ResourceKey {
            group: group.into(),
            plural: plural.into(),
        };
        self.sim
            .cluster(0)
            .state
            .lock()
            .get(&key, namespace, name)
            .map(|s| s.value.clone())
    }

    /// Commits new content and pushes it to the served repository; returns the commit.
    pub fn commit(&self, files: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, content) in files {
            match content {
                Some(c) => self.repo.write(path, c),
                None => {
                    let _ = std::fs::remove_file(self.repo.work.join(path));
                }
            }
        }
        let c = self.repo.commit(message);
        self.repo.push_all();
        c
    }

    /// A GitHub push webhook for the served repository.
    pub async fn github_push(&self) -> reqwest::StatusCode {
        let body = json!({"ref": "refs/heads/main", "repository": {"clone_url": self.repo_url(), "html_url": self.repo_url()}});
        reqwest::Client::new()
            .post(self.webhook_url())
            .header("X-GitHub-Event", "push")
            .json(&body)
            .send()
            .await
            .expect("webhook delivered")
            .status()
    }

    pub fn sync_status(s: &Value) -> &str {
        s["sync"]["status"].as_str().unwrap_or("")
    }

    pub fn health(s: &Value) -> &str {
        s["health"]["status"].as_str().unwrap_or("")
    }
}

/// An Argo CD Application for the sandbox repository, written as Argo CD users write it.
pub fn application(name: &str, repo: &str, path: &str, automated: Option<&str>) -> String {
    let policy = match automated {
        Some(extra) => format!(
            "  syncPolicy:\n    automated:\n{extra}    syncOptions:\n    - CreateNamespace=true\n"
        ),
        None => "  syncPolicy:\n    syncOptions:\n    - CreateNamespace=true\n".to_string(),
    };
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {repo}\n    targetRevision: main\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {name}\n{policy}"
    )
}

pub const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
"#;

pub const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
"#;

pub const CONFIGMAP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
"#;

/// What a CLI invocation printed and its exit code (errors print as `main` does).
pub struct CliOut {
    pub code: i32,
    pub stdout: String,
}

impl Sandbox {
    /// Runs `gitfleet --server <gateway> ARGS...` in process, as a user would type it.
    pub async fn cli(&self, args: &[&str]) -> CliOut {
        use clap::Parser;
        let server = self
            .stack
            .as_ref()
            .and_then(|s| s.grpc_addr)
            .expect("gateway running")
            .to_string();
        let mut argv = vec!["gitfleet", "--server", server.as_str()];
        argv.extend_from_slice(args);
        let cli = gitfleet::Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("bad test command {argv:?}: {e}"));
        let mut out = Vec::new();
        let code = match gitfleet::run(&cli, &mut out).await {
            Ok(code) => code,
            Err(e) => {
                out.extend_from_slice(format!("error: {e}\n").as_bytes());
                cli.error_exit_code()
            }
        };
        CliOut {
            code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
        }
    }

    /// Writes a file into the sandbox's work dir (for `app create -f`).
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.work.path().join(name);
        std::fs::write(&p, content).expect("write file");
        p.to_string_lossy().into_owned()
    }
}

impl Sandbox {
    /// Runs the real kubectl against the emulated cluster; returns (exit code, stdout+stderr).
    pub fn kubectl(&self, args: &[&str]) -> (i32, String) {
        let kubectl = std::env::var("GITFLEET_KUBECTL")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/bin/kubectl")
            });
        assert!(
            kubectl.exists(),
            "kubectl not found at {}: run `cargo xtask tools`",
            kubectl.display()
        );
        let kc = self.work.path().join("kubeconfig");
        std::fs::write(&kc, self.sim.kubeconfig()).expect("write kubeconfig");
        let out = std::process::Command::new(kubectl)
            .env("KUBECONFIG", &kc)
            .arg("--cache-dir")
            .arg(self.work.path().join("kube-cache"))
            .args(args)
            .output()
            .expect("kubectl runs");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    /// Creates the app from `yaml` with the CLI, asserting success.
    pub async fn create_app(&self, name: &str, yaml: &str) {
        let f = self.file(&format!("{name}.yaml"), yaml);
        let out = self.cli(&["app", "create", "-f", &f]).await;
        assert_eq!(out.code, 0, "app create {name}: {}", out.stdout);
    }

    pub fn image_of(&self, ns: &str, name: &str) -> Option<String> {
        self.live("apps", "deployments", ns, name).and_then(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(String::from)
        })
    }

    /// An Application as KV `applications` holds it (a generated or registered one
    /// included), or None.
    pub async fn stored_app(&self, name: &str) -> Option<Value> {
        let kv = self.bus.kv(Bucket::Applications).await.ok()?;
        let bytes = kv.get(subject_token(name)).await.ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Polls until Application `name` is stored (`present`) or gone; panics after `secs`.
    pub async fn until_stored_app(&self, name: &str, present: bool, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.stored_app(name).await.is_some() != present {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {secs} s waiting for application {name} to be {}",
                if present { "stored" } else { "gone" }
            );
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The write-log sequence of the first successful apply (not a dry run) of
    /// `resource` (`deployments.apps`) in namespace `ns` on the emulated cluster.
    pub fn first_apply(&self, resource: &str, ns: &str) -> u64 {
        self.sim
            .cluster(0)
            .write_log()
            .into_iter()
            .find(|w| {
                w.verb == "apply"
                    && !w.dry_run
                    && w.code < 300
                    && w.resource == resource
                    && w.namespace.as_deref() == Some(ns)
            })
            .map(|w| w.seq)
            .unwrap_or_else(|| panic!("no apply of {resource} in {ns}"))
    }

    /// Polls `f` until it returns true; panics with `what` after `secs`.
    pub async fn until(&self, secs: u64, what: &str, f: impl Fn(&Sandbox) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !f(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {secs} s waiting for {what}"
            );
            // Poll interval of a wait bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `automated:` bodies for [`application`].
pub const AUTOMATED: &str = "      prune: true\n";
pub const AUTOMATED_SELF_HEAL: &str = "      prune: true\n      selfHeal: true\n";
pub const AUTOMATED_NO_PRUNE: &str = "      prune: false\n";

/// A separate service process; SIGKILLed when dropped so no test leaves one behind.
pub struct Node(pub std::process::Child);

impl Node {
    /// SIGKILL, as a crash: nothing is handed over.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Drop for Sandbox {
    /// What the locked bus refused, so a test that fails for want of a permission says
    /// which (the server names the connection: `<member> <role>`).
    fn drop(&mut self) {
        for line in self.nats.log().lines().filter(|l| l.contains("Violation")) {
            eprintln!("nats-server: {line}");
        }
    }
}
