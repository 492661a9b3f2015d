//! One ApplicationSet generated and written: its sources fetched, `gitfleet_appset`
//! deciding, the writes fenced by the set's partition lease, the outcome in its status.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gitfleet_appset::progressive::{self, AppProgress, Phase};
use gitfleet_appset::{Action, GenerateError, GeneratedApp, GitKey, GitTree, Sources};
use gitfleet_bus::control_plane::ControlPlane;
use gitfleet_bus::{Bucket, partition, subject_token};
use gitfleet_engine::control_plane::ControlPlaneKind;
use gitfleet_engine::project::{destination_of, normalize_git_url};
use gitfleet_messages::{
    APP_PARTITIONS, AuditRecord, Files, FilesRequest, ResolveRequest, Resolved, ServiceError,
    SyncRequest,
};
use gitfleet_model::{Application, ApplicationSet, Cluster, Generator, GeneratorKind};
use serde_json::{Value, json};

use crate::controller::Shared;

/// Git trees by repository and commit, shared by every set (many sets read one repo).
#[derive(Default)]
pub(crate) struct Trees {
    trees: Mutex<HashMap<(String, String), Arc<GitTree>>>,
}

/// Apps listed in a set's `status.resources` (Argo CD's default
/// `applicationsetcontroller.status.max.resources.count`).
const MAX_STATUS_RESOURCES: usize = 5000;

/// Trees kept; past it the cache starts again (a commit's tree is fetched once per
/// commit, not per set).
const TREES_KEPT: usize = 64;

/// Every generator of `set`, those nested in matrix and merge generators too.
fn all_generators(set: &ApplicationSet) -> Vec<Generator> {
    let mut out = Vec::new();
    let mut todo = set.spec.generators.clone();
    while let Some(g) = todo.pop() {
        todo.extend(g.children());
        out.push(g);
    }
    out
}

/// Whether `set` has a generator of `kind` (nested ones too).
pub(crate) fn uses(set: &ApplicationSet, kind: GeneratorKind) -> bool {
    all_generators(set).iter().any(|g| g.kind() == Some(kind))
}

/// How soon a set with pull request or SCM provider generators asks their providers
/// again: the shortest `requeueAfterSeconds` (Argo CD's default 30 minutes for both).
pub(crate) fn scm_requeue(set: &ApplicationSet) -> Option<std::time::Duration> {
    all_generators(set)
        .iter()
        .filter(|g| {
            matches!(
                g.kind(),
                Some(GeneratorKind::PullRequest | GeneratorKind::ScmProvider)
            )
        })
        .map(|g| {
            g.config()
                .and_then(|c| c.get("requeueAfterSeconds"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(gitfleet_appset::pull_request::DEFAULT_REQUEUE_AFTER_SECONDS)
                .max(1)
        })
        .min()
        .map(std::time::Duration::from_secs)
}

/// Whether one of `set`'s pull request generators lists the pull requests of the
/// repository at `url` (a webhook's).
pub(crate) fn lists_pull_requests_of(set: &ApplicationSet, url: &str) -> bool {
    all_generators(set)
        .iter()
        .filter(|g| g.kind() == Some(GeneratorKind::PullRequest))
        .filter_map(|g| g.config())
        .filter_map(|c| gitfleet_appset::pull_request::PullRequestGenerator::parse(c, "").ok())
        .any(|g| g.query.matches_repository(url))
}

/// Whether a commit on `repo` may change what `set` generates: one of its Git generators
/// reads it (or a templated repository, which may be it).
pub(crate) fn reads_repo(set: &ApplicationSet, repo: &str) -> bool {
    let repo = normalize_git_url(repo);
    all_generators(set)
        .iter()
        .filter(|g| g.kind() == Some(GeneratorKind::Git))
        .filter_map(|g| g.config()?.get("repoURL")?.as_str().map(str::to_owned))
        .any(|url| url.contains("{{") || normalize_git_url(&url) == repo)
}

/// A condition of the set's status, as Argo CD writes them.
struct Condition {
    kind: &'static str,
    status: bool,
    reason: &'static str,
    message: String,
}

/// What a generation ended with.
struct Outcome {
    conditions: Vec<Condition>,
    /// The apps the set generated (created or already there), for `status.resources`.
    resources: Vec<Application>,
    /// A RollingSync's progress per app (`status.applicationStatus`).
    progress: Option<Vec<AppProgress>>,
}

/// When to look at a set again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// At its next trigger (or requeue interval).
    Settled,
    /// It failed: after `error_retry`.
    Retry,
    /// A rollout is under way: in a couple of seconds.
    Soon,
}

impl Outcome {
    fn error(reason: &'static str, message: String, generated: bool) -> Self {
        Outcome {
            conditions: vec![
                Condition {
                    kind: "ErrorOccurred",
                    status: true,
                    reason,
                    message: message.clone(),
                },
                Condition {
                    kind: "ParametersGenerated",
                    status: generated,
                    reason: if generated {
                        "ParametersGenerated"
                    } else {
                        reason
                    },
                    message: if generated {
                        "Successfully generated parameters for all Applications".into()
                    } else {
                        message.clone()
                    },
                },
                Condition {
                    kind: "ResourcesUpToDate",
                    status: false,
                    reason,
                    message,
                },
            ],
            resources: Vec::new(),
            progress: None,
        }
    }
}

/// Generates `set` and writes what it says, while `partition` is held with `fence`.
pub(crate) async fn reconcile(
    shared: &Shared,
    set: &ApplicationSet,
    partition: u32,
    fence: u64,
) -> Next {
    let name = &set.metadata.name;
    let outcome = generate_and_apply(shared, set, partition, fence).await;
    if !shared.holds(partition, fence) {
        return Next::Settled;
    }
    let failed = outcome
        .conditions
        .iter()
        .find(|c| c.kind == "ErrorOccurred" && c.status);
    if let Some(c) = failed {
        tracing::info!(set = %name, reason = c.reason, error = %c.message, "applicationset not up to date");
    }
    // A status that could not be written is written at the next generation; it is no
    // reason to generate again sooner.
    if let Err(err) = write_status(shared, name, &outcome).await {
        tracing::warn!(set = %name, error = %err, "writing applicationset status");
    }
    let rolling = outcome
        .progress
        .as_ref()
        .is_some_and(|p| p.iter().any(|a| a.status != Phase::Healthy));
    if failed.is_some() {
        Next::Retry
    } else if rolling {
        Next::Soon
    } else {
        Next::Settled
    }
}

async fn generate_and_apply(
    shared: &Shared,
    set: &ApplicationSet,
    partition: u32,
    fence: u64,
) -> Outcome {
    let name = &set.metadata.name;
    if let Err(e) = set.validate() {
        return Outcome::error("ApplicationSetValidationError", e.to_string(), false);
    }
    let steps = match progressive::rolling_steps(set) {
        Ok(steps) => steps,
        Err(message) => return Outcome::error("ApplicationSetValidationError", message, false),
    };
    let mut generated = match generate(shared, set).await {
        Ok(apps) => apps,
        Err(ServiceError { message, .. }) => {
            tracing::info!(set = %name, error = %message, "generation failed; nothing written");
            return Outcome::error("ApplicationGenerationFromParamsError", message, false);
        }
    };
    // A rolling sync syncs the apps itself, step by step: theirs is off (as Argo CD's
    // controller turns it off), its `prune` kept for the syncs it asks for.
    let mut prune: HashMap<String, bool> = HashMap::new();
    if steps.is_some() {
        for g in &mut generated {
            if let Some(policy) = g.app.spec.sync_policy.as_mut()
                && let Some(automated) = policy.automated.take()
            {
                prune.insert(g.app.metadata.name.clone(), automated.prune);
            }
        }
    }
    // Apps their project refuses are not written (nor deleted if they exist).
    let (valid, invalid) = validate(shared, &generated);
    let generated_names: std::collections::HashSet<&str> = generated
        .iter()
        .map(|g| g.app.metadata.name.as_str())
        .collect();
    let existing: Vec<Application> = {
        let apps = shared.apps.read().unwrap_or_else(|e| e.into_inner());
        apps.values()
            .filter(|(a, _)| {
                a.metadata.owning_application_set() == Some(name.as_str())
                    || generated_names.contains(a.metadata.name.as_str())
            })
            .map(|(a, _)| (**a).clone())
            .collect()
    };
    let plan = gitfleet_appset::plan(set, &valid, &existing);
    let mut errors: Vec<(&'static str, String)> = invalid
        .iter()
        .map(|m| ("ApplicationValidationError", m.clone()))
        .collect();
    for conflict in &plan.conflicts {
        errors.push((
            "ApplicationValidationError",
            format!("application {conflict:?} already exists and is not owned by ApplicationSet {name:?}; it is left as it is"),
        ));
    }
    let valid_names: std::collections::HashSet<&str> =
        valid.iter().map(|v| v.app.metadata.name.as_str()).collect();
    let invalid_names: std::collections::HashSet<&str> = generated_names
        .iter()
        .copied()
        .filter(|n| !valid_names.contains(n))
        .collect();
    let written: std::collections::HashSet<String> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(app) | Action::Update(app) => Some(app.metadata.name.clone()),
            Action::Delete(_) => None,
        })
        .collect();
    for action in plan.actions {
        if !shared.holds(partition, fence) {
            tracing::info!(set = %name, "partition lost; stopping");
            return Outcome::error("ApplicationSetModified", "ownership moved".into(), true);
        }
        let result = match &action {
            Action::Create(app) => create(shared, app)
                .await
                .map(|()| ("create", app.metadata.name.clone())),
            Action::Update(app) => update(shared, app)
                .await
                .map(|()| ("update", app.metadata.name.clone())),
            Action::Delete(app_name) if invalid_names.contains(app_name.as_str()) => continue,
            Action::Delete(app_name) => delete(shared, app_name, name)
                .await
                .map(|()| ("delete", app_name.clone())),
        };
        match result {
            Ok((verb, app_name)) => {
                tracing::info!(set = %name, app = %app_name, verb, "application written");
                audit(shared, name, verb, &app_name, "succeeded").await;
            }
            Err(message) => {
                let (reason, verb) = match action {
                    Action::Delete(_) => ("DeleteApplicationError", "delete"),
                    _ => ("CreateApplicationError", "create"),
                };
                tracing::warn!(set = %name, error = %message, verb, "writing an application");
                errors.push((reason, message));
            }
        }
    }
    let resources: Vec<Application> = valid.iter().map(|g| g.app.clone()).collect();
    let progress = match &steps {
        Some(steps) => Some(roll(shared, set, steps, &resources, &written, &prune).await),
        None => None,
    };
    if let Some((reason, _)) = errors.first() {
        let message = errors
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let mut outcome = Outcome::error(reason, message, true);
        outcome.resources = resources;
        outcome.progress = progress;
        return outcome;
    }
    let mut conditions = Vec::new();
    if let Some(progress) = &progress {
        let pending = progress
            .iter()
            .filter(|p| p.status != Phase::Healthy)
            .count();
        conditions.push(Condition {
            kind: "RolloutProgressing",
            status: pending > 0,
            reason: if pending > 0 {
                "ApplicationSetModified"
            } else {
                "ApplicationSetRolloutComplete"
            },
            message: if pending > 0 {
                format!(
                    "ApplicationSet is performing a rollout: {pending} applications not Healthy yet"
                )
            } else {
                "ApplicationSet Rollout has completed".to_owned()
            },
        });
    }
    Outcome {
        conditions: vec![
            Condition {
                kind: "ErrorOccurred",
                status: false,
                reason: "ApplicationSetUpToDate",
                message: "Successfully generated parameters for all Applications".into(),
            },
            Condition {
                kind: "ParametersGenerated",
                status: true,
                reason: "ParametersGenerated",
                message: "Successfully generated parameters for all Applications".into(),
            },
            Condition {
                kind: "ResourcesUpToDate",
                status: true,
                reason: "ApplicationSetUpToDate",
                message: "All applications have been generated successfully".into(),
            },
        ]
        .into_iter()
        .chain(conditions)
        .collect(),
        resources,
        progress,
    }
}

/// One look at a RollingSync: each stepped app's progress from its status in KV
/// `app-status`, and a sync asked of the diff worker owning each app the rollout moves
/// to Pending. An app whose sync could not be asked goes back to Waiting (asked again at
/// the next look).
async fn roll(
    shared: &Shared,
    set: &ApplicationSet,
    steps: &[progressive::Step],
    apps: &[Application],
    written: &std::collections::HashSet<String>,
    prune: &HashMap<String, bool>,
) -> Vec<AppProgress> {
    let mut statuses: HashMap<&str, gitfleet_model::ApplicationStatus> = HashMap::new();
    for app in apps {
        if let Ok(Some(bytes)) = shared
            .status_kv
            .get(subject_token(&app.metadata.name))
            .await
            && let Ok(status) = serde_json::from_slice(&bytes)
        {
            statuses.insert(app.metadata.name.as_str(), status);
        }
    }
    let observed: Vec<progressive::Observed<'_>> = apps
        .iter()
        .map(|a| progressive::Observed {
            name: &a.metadata.name,
            labels: &a.metadata.labels,
            status: statuses.get(a.metadata.name.as_str()),
            spec_changed: written.contains(&a.metadata.name),
        })
        .collect();
    let previous: Vec<AppProgress> = set
        .status
        .as_ref()
        .and_then(|s| s.get("applicationStatus"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let (mut progress, to_sync) = progressive::advance(steps, &previous, &observed, &now());
    let asks = to_sync.iter().map(|app| {
        let request = SyncRequest {
            app: app.clone(),
            prune: prune.get(app).copied().unwrap_or(false),
            initiated_by: format!(
                "applicationset-controller: {} (RollingSync)",
                set.metadata.name
            ),
            ..SyncRequest::default()
        };
        async move { (app.clone(), ask_sync(shared, &request).await) }
    });
    for (app, asked) in futures::future::join_all(asks).await {
        match asked {
            Ok(id) => {
                tracing::info!(set = %set.metadata.name, app = %app, operation = %id, "rolling sync: app synced")
            }
            Err(err) => {
                tracing::warn!(set = %set.metadata.name, app = %app, error = %err, "rolling sync: sync not enqueued");
                if let Some(p) = progress.iter_mut().find(|p| p.application == app) {
                    p.status = Phase::Waiting;
                    p.message = format!("the sync could not be asked for: {}", err.message);
                }
            }
        }
    }
    progress
}

/// Generates with the clusters in memory, fetching each Git tree a generator asks for. A
/// generator's error is Invalid; a repository that cannot be read keeps its code.
pub(crate) async fn generate(
    shared: &Shared,
    set: &ApplicationSet,
) -> Result<Vec<GeneratedApp>, ServiceError> {
    let mut sources = Sources {
        clusters: shared
            .clusters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect::<Vec<Cluster>>(),
        git: BTreeMap::new(),
        pull_requests: BTreeMap::new(),
        scm: BTreeMap::new(),
    };
    // Each round fetches one more tree or listing; a set reads few.
    for _ in 0..32 {
        match gitfleet_appset::generate(set, &sources) {
            Err(GenerateError::NeedGit(key)) => {
                let tree = fetch_tree(shared, &key).await.map_err(|e| {
                    e.context(format_args!("reading {} at {}", key.repo, key.revision))
                })?;
                sources.git.insert(key, tree);
            }
            Err(GenerateError::NeedPullRequests { at, query }) => {
                // The generator is named, as a set's condition names any generator's error.
                let listing = crate::scm::pull_requests(shared, &query)
                    .await
                    .map_err(|e| e.context(&at))?;
                sources.pull_requests.insert(*query, listing);
            }
            Err(GenerateError::NeedScm { at, query }) => {
                let found = crate::scm::repositories(shared, &query)
                    .await
                    .map_err(|e| e.context(&at))?;
                sources.scm.insert(*query, found);
            }
            other => return other.map_err(|e| ServiceError::invalid(e.to_string())),
        }
    }
    Err(ServiceError::invalid(
        "the generators read more than 32 repositories and pull request listings",
    ))
}

async fn fetch_tree(shared: &Shared, key: &GitKey) -> Result<Arc<GitTree>, ServiceError> {
    let timeout = shared.config.request_timeout;
    let resolved: Resolved = shared
        .bus
        .ask(
            "git watcher",
            shared.bus.topology.git_resolve_subject(),
            &ResolveRequest {
                repo: key.repo.clone(),
                revision: key.revision.clone(),
                chart: String::new(),
            },
            timeout,
        )
        .await?;
    let cache_key = (key.repo.clone(), resolved.commit.clone());
    if let Some(tree) = shared
        .trees
        .trees
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&cache_key)
    {
        return Ok(tree.clone());
    }
    let files: Files = shared
        .bus
        .ask(
            "git watcher",
            shared.bus.topology.git_files_subject(),
            &FilesRequest {
                repo: key.repo.clone(),
                commit: resolved.commit.clone(),
                path: String::new(),
                recurse: true,
                chart: String::new(),
                pass_credentials: false,
            },
            timeout,
        )
        .await?;
    let tree = Arc::new(GitTree {
        commit: resolved.commit,
        files: files
            .files
            .into_iter()
            .map(|f| {
                // Binary files are listed (their folders count) but read as empty.
                let text = if f.binary { String::new() } else { f.content };
                (f.path, text)
            })
            .collect(),
    });
    let mut trees = shared.trees.trees.lock().unwrap_or_else(|e| e.into_inner());
    if trees.len() >= TREES_KEPT {
        trees.clear();
    }
    trees.insert(cache_key, tree.clone());
    Ok(tree)
}

/// Splits the generated apps into those their project permits and the refusals (each
/// naming the app and the rule), as Argo CD validates generated apps before writing.
fn validate(shared: &Shared, generated: &[GeneratedApp]) -> (Vec<GeneratedApp>, Vec<String>) {
    let clusters: Vec<Cluster> = shared
        .clusters
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    let projects = shared.projects.read().unwrap_or_else(|e| e.into_inner());
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for g in generated {
        let project = g.app.spec.project_or_default();
        let Some(rules) = projects.get(project) else {
            invalid.push(format!(
                "application {:?} references project {project:?}, which does not exist",
                g.app.metadata.name
            ));
            continue;
        };
        let cluster = destination_of(&g.app, &clusters);
        let violations =
            rules.check_application(&g.app, &cluster, &shared.config.control_plane_namespace);
        if violations.is_empty() {
            valid.push(g.clone());
        } else {
            let reasons: Vec<String> = violations.iter().map(ToString::to_string).collect();
            invalid.push(format!(
                "application {:?} is invalid: {}",
                g.app.metadata.name,
                reasons.join("; ")
            ));
        }
    }
    (valid, invalid)
}

fn encode(shared: &Shared, app: &Application) -> Result<Bytes, String> {
    shared
        .bus
        .encode_document(Bucket::Applications, &app.metadata.name, app)
        .map(Bytes::from)
        .map_err(|e| format!("encoding application {:?}: {e}", app.metadata.name))
}

async fn create(shared: &Shared, app: &Application) -> Result<(), String> {
    let name = &app.metadata.name;
    let mut app = app.clone();
    app.metadata.creation_timestamp = Some(now());
    shared
        .apps_kv
        .create(subject_token(name), encode(shared, &app)?)
        .await
        .map(|_| ())
        .map_err(|e| format!("creating application {name:?}: {e}"))
}

async fn update(shared: &Shared, app: &Application) -> Result<(), String> {
    let name = &app.metadata.name;
    let revision = shared
        .apps
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .map(|(_, r)| *r)
        .ok_or_else(|| format!("application {name:?} vanished before its update"))?;
    shared
        .apps_kv
        .update(subject_token(name), encode(shared, app)?, revision)
        .await
        .map(|_| ())
        .map_err(|e| format!("updating application {name:?}: {e}"))
}

/// Deletes an app as `app delete` does: with the resources finalizer, its resources are
/// pruned first by the diff worker owning it; then the app, its status and operation go
/// (one implementation with an App of Apps parent's prune: `gitfleet_bus::control_plane`).
pub(crate) async fn delete(shared: &Shared, name: &str, set: &str) -> Result<(), String> {
    ControlPlane::new(&shared.bus, &shared.config.control_plane_namespace)
        .remove(
            ControlPlaneKind::Application,
            name,
            &format!("applicationset-controller: {set}"),
            shared.config.delete_timeout,
            false,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.message)
}

/// Asks the diff worker owning the app for an operation (a sync, or a cascade delete);
/// the answer is the operation's id, once it is enqueued.
async fn ask_sync(shared: &Shared, request: &SyncRequest) -> Result<String, ServiceError> {
    shared
        .bus
        .ask(
            "diff worker for the app's partition",
            shared
                .bus
                .topology
                .sync_request_subject(partition(&request.app, APP_PARTITIONS)),
            request,
            shared.config.request_timeout,
        )
        .await
}

/// The apps of a deleted set go with it, as Kubernetes' garbage collector deletes the
/// apps an ApplicationSet owns.
pub(crate) async fn delete_orphans(
    shared: &Shared,
    set: &str,
    apps: Vec<Arc<Application>>,
    partition: u32,
    fence: u64,
) {
    for app in apps {
        if !shared.holds(partition, fence) {
            return;
        }
        let name = &app.metadata.name;
        match delete(shared, name, set).await {
            Ok(()) => {
                tracing::info!(set, app = %name, "application of a deleted applicationset deleted");
                audit(shared, set, "delete", name, "succeeded").await;
            }
            Err(err) => {
                tracing::warn!(set, app = %name, error = %err, "deleting an application of a deleted applicationset")
            }
        }
    }
}

async fn audit(shared: &Shared, set: &str, verb: &str, app: &str, result: &str) {
    let project = shared
        .apps
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(app)
        .map(|(a, _)| a.spec.project_or_default().to_owned())
        .unwrap_or_else(|| "default".into());
    let record = AuditRecord {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        who: format!("applicationset:{set}"),
        resource: "applications".into(),
        action: verb.into(),
        object: format!("{project}/{app}"),
        from: String::new(),
        result: result.into(),
    };
    let Ok(body) = serde_json::to_vec(&record) else {
        return;
    };
    if let Err(err) = shared
        .bus
        .publish_durable(
            shared.bus.topology.audit_subject("applicationset"),
            Bytes::from(body),
        )
        .await
    {
        tracing::error!(set, app, error = %err, "audit record lost");
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Writes `status` of the set (compare-and-set, so a user's change in between is kept),
/// keeping each condition's transition time while its status holds.
async fn write_status(shared: &Shared, name: &str, outcome: &Outcome) -> Result<(), String> {
    let key = subject_token(name);
    for _ in 0..5 {
        let Some(entry) = shared
            .sets_kv
            .entry(&key)
            .await
            .map_err(|e| e.to_string())?
            .filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
        else {
            return Ok(());
        };
        let mut doc: Value = serde_json::from_slice(&entry.value).map_err(|e| e.to_string())?;
        let old = doc.get("status").cloned().unwrap_or(Value::Null);
        let status = status_json(outcome, &old);
        if status == old {
            return Ok(());
        }
        doc["status"] = status;
        let body = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
        match shared
            .sets_kv
            .update(&key, body.into(), entry.revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => {
                continue;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the applicationset kept changing".into())
}

fn status_json(outcome: &Outcome, old: &Value) -> Value {
    let now = now();
    let conditions: Vec<Value> = outcome
        .conditions
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = old
                .get("conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter().find(|o| {
                        o.get("type").and_then(Value::as_str) == Some(c.kind)
                            && o.get("status").and_then(Value::as_str) == Some(status)
                            && o.get("message").and_then(Value::as_str) == Some(c.message.as_str())
                    })
                })
                .and_then(|o| o.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(now));
            json!({
                "type": c.kind,
                "status": status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": since,
            })
        })
        .collect();
    // At most Argo CD's default `status.max.resources.count`: a set of 10,000 apps would
    // not fit in one KV value (1 MiB).
    let resources: Vec<Value> = outcome
        .resources
        .iter()
        .take(MAX_STATUS_RESOURCES)
        .map(|a| {
            json!({
                "group": "argoproj.io",
                "version": "v1alpha1",
                "kind": "Application",
                "name": a.metadata.name,
                "namespace": a.metadata.namespace,
            })
        })
        .collect();
    let mut status = json!({ "conditions": conditions });
    if !resources.is_empty() {
        status["resources"] = Value::Array(resources);
    }
    if let Some(progress) = &outcome.progress {
        status["applicationStatus"] = serde_json::to_value(progress).unwrap_or(Value::Null);
    }
    status
}

/// `appset generate`: the Applications `set` would produce now, as the controller would
/// write them (owner reference included), nothing written.
pub(crate) async fn preview(
    shared: &Shared,
    set: ApplicationSet,
) -> Result<Vec<Application>, ServiceError> {
    if !shared.ready.load(std::sync::atomic::Ordering::Acquire) {
        return Err(ServiceError::unavailable(
            "the ApplicationSet controller is still reading the clusters; ask again",
        ));
    }
    set.validate()
        .map_err(|e| ServiceError::invalid(e.to_string()))?;
    let owner = gitfleet_appset::owner_reference(&set);
    Ok(generate(shared, &set)
        .await?
        .into_iter()
        .map(|g| {
            let mut app = g.app;
            app.metadata.owner_references = vec![owner.clone()];
            app
        })
        .collect())
}
