//! `app diff` and `app manifests` without a Git or cluster client: the gateway asks the git
//! watcher to resolve the revision, a renderer for the manifests and the cluster's executor
//! for the live objects, then compares with the engine exactly as the diff workers do.

use std::time::Duration;

use gitfleet_bus::control_plane::ControlPlane;
use gitfleet_bus::{Bucket, Bus, subject_token};
use gitfleet_engine::app;
use gitfleet_engine::control_plane::ControlPlaneKind;
use gitfleet_messages::{
    IN_CLUSTER, Live, LiveRequest, RefSource, RenderRequest, Rendered, ResolveRequest, Resolved,
};
use gitfleet_model::{Application, ApplicationStatus};
use serde_json::Value;

use crate::error::{Error, Result};

pub struct AppDiff {
    pub text: String,
    pub has_diff: bool,
}

/// The manifests `application` deploys, rendered from each of its sources at `revision`
/// (else each source's target revision), prepared as the diff workers prepare them.
pub async fn desired(
    bus: &Bus,
    application: &Application,
    revision: Option<&str>,
    control_plane_namespace: &str,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let sources = application.spec.effective_sources();
    let resolve = |source: &gitfleet_model::ApplicationSource, revision: &str| {
        let request = ResolveRequest {
            chart: source.chart.clone(),
            repo: source.repo_url.clone(),
            revision: revision.to_string(),
        };
        async move {
            let resolved: Resolved = bus
                .ask(
                    "git watcher",
                    bus.topology.git_resolve_subject(),
                    &request,
                    timeout,
                )
                .await?;
            Ok::<_, Error>(resolved.commit)
        }
    };
    let mut refs = Vec::new();
    for source in sources.iter().filter(|s| !s.ref_name.is_empty()) {
        refs.push(RefSource {
            name: source.ref_name.clone(),
            repo: source.repo_url.clone(),
            commit: resolve(source, app::target_revision(source)).await?,
        });
    }
    let mut manifests = Vec::new();
    for source in sources.iter().filter(|s| !RefSource::is_ref_only(s)) {
        let revision = revision.unwrap_or_else(|| app::target_revision(source));
        let commit = resolve(source, revision).await?;
        let rendered: Rendered = bus
            .ask(
                "renderer",
                bus.topology.render_subject(),
                &RenderRequest::for_source(application, source, &commit).with_refs(refs.clone()),
                timeout,
            )
            .await?;
        manifests.extend(rendered.manifests);
    }
    Ok(app::prepare_desired(
        &manifests,
        application,
        control_plane_namespace,
    ))
}

/// The live objects of `application` in `cluster`, and the control-plane objects it holds
/// (App of Apps; see [`held`]).
pub async fn live(
    bus: &Bus,
    application: &Application,
    cluster: &str,
    control_plane_namespace: &str,
    desired: &[Value],
    timeout: Duration,
) -> Result<Vec<Value>> {
    Ok(live_and_predicted(
        bus,
        application,
        cluster,
        control_plane_namespace,
        desired,
        false,
        timeout,
    )
    .await?
    .0)
}

/// [`live`], and with `server_side` the dry runs' answers for the desired objects the app
/// compares server-side ([`app::server_side_wanted`]), as the diff workers ask for them.
async fn live_and_predicted(
    bus: &Bus,
    application: &Application,
    cluster: &str,
    control_plane_namespace: &str,
    desired: &[Value],
    server_side: bool,
    timeout: Duration,
) -> Result<(Vec<Value>, Vec<gitfleet_messages::DryRunAnswer>)> {
    let wanted = if server_side {
        app::server_side_wanted(application, desired)
    } else {
        Vec::new()
    };
    let live = ask_live(bus, application, cluster, wanted, false, timeout).await?;
    let mut resources = live.resources;
    resources.extend(held(bus, application, cluster, control_plane_namespace, desired).await?);
    Ok((resources, live.predicted))
}

/// The app's resource tree, from the executor owning `cluster` (Argo CD's
/// `ApplicationTree`).
pub async fn tree(
    bus: &Bus,
    application: &Application,
    cluster: &str,
    timeout: Duration,
) -> Result<Vec<gitfleet_model::ResourceNode>> {
    let live = ask_live(bus, application, cluster, Vec::new(), true, timeout).await?;
    Ok(live.tree)
}

/// One live request to the executor owning `cluster`: the app's objects, the dry runs of
/// `server_side_diff` (made now: the gateway asks for a user), the tree if asked.
async fn ask_live(
    bus: &Bus,
    application: &Application,
    cluster: &str,
    server_side_diff: Vec<Value>,
    resource_tree: bool,
    timeout: Duration,
) -> Result<Live> {
    let request = LiveRequest {
        app: application.metadata.name.clone(),
        cluster: cluster.to_string(),
        fresh_dry_runs: !server_side_diff.is_empty(),
        server_side_diff,
        resource_tree,
    };
    Ok(bus
        .ask(
            "sync executor",
            bus.topology.live_request_subject(cluster),
            &request,
            timeout,
        )
        .await
        .map_err(|e| e.context(format_args!("live state of cluster {cluster:?}")))?)
}

/// App of Apps: the control-plane objects `application` holds, read as the diff workers
/// read them: those `desired` names, and those its last comparison showed (its status's
/// resources, which is the diff worker's knowledge of what its syncs wrote).
async fn held(
    bus: &Bus,
    application: &Application,
    cluster: &str,
    control_plane_namespace: &str,
    desired: &[Value],
) -> Result<Vec<Value>> {
    let ns = control_plane_namespace;
    if cluster != IN_CLUSTER && !application.spec.destination.is_in_cluster() {
        return Ok(Vec::new());
    }
    let control_plane = ControlPlane::new(bus, ns);
    let wanted = control_plane.desired(desired);
    let status = bus
        .kv(Bucket::AppStatus)
        .await
        .map_err(|e| Error::Unavailable(format!("opening the status bucket: {e}")))?
        .get(subject_token(&application.metadata.name))
        .await
        .map_err(|e| Error::Unavailable(format!("reading the app's status: {e}")))?
        .and_then(|b| serde_json::from_slice::<ApplicationStatus>(&b).ok());
    let shown = status
        .iter()
        .flat_map(|s| &s.resources)
        .filter(|r| r.namespace == ns)
        .filter_map(|r| Some((ControlPlaneKind::of(&r.group, &r.kind)?, r.name.clone())));
    let instance = application.instance_name(ns);
    Ok(control_plane
        .held(&instance, &wanted, shown)
        .await?
        .into_iter()
        .map(|(_, live)| live)
        .collect())
}

/// What `app diff` compares with the live objects.
pub enum Target {
    /// The app's sources rendered at the target revision, or at this one.
    Sources(Option<String>),
    /// Manifests the caller rendered (`--local`).
    Local(Vec<Value>),
    /// A local directory's files, rendered here (`--local --server-side-generate`).
    LocalFiles(Vec<gitfleet_proto::v1::LocalFile>),
}

/// `--local --server-side-generate`: the app's single source rendered by a renderer from
/// `files` (laid out at the source's path) instead of Git, with the app's tool and
/// settings, prepared as the diff workers prepare manifests.
pub async fn local_render(
    bus: &Bus,
    application: &Application,
    files: Vec<gitfleet_proto::v1::LocalFile>,
    control_plane_namespace: &str,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let source = match (
        &application.spec.source,
        application.spec.sources.as_slice(),
    ) {
        (Some(source), []) => source,
        (None, [source]) => source,
        _ => {
            return Err(Error::invalid(
                "the app has several sources; --server-side-generate renders a single-source app",
            ));
        }
    };
    if source.is_helm_chart() {
        return Err(Error::invalid(
            "the app's source is a chart from a Helm repository, not a directory: --local has nothing to replace",
        ));
    }
    let base = source.path.trim_matches('/');
    let local_files = files
        .into_iter()
        .map(|f| {
            let path = if base.is_empty() || base == "." {
                f.path
            } else {
                format!("{base}/{}", f.path)
            };
            match String::from_utf8(f.content) {
                Ok(content) => gitfleet_messages::RepoFile {
                    path,
                    content,
                    binary: false,
                    link: String::new(),
                },
                Err(e) => gitfleet_messages::RepoFile {
                    path,
                    content: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        e.into_bytes(),
                    ),
                    binary: true,
                    link: String::new(),
                },
            }
        })
        .collect();
    let mut request = RenderRequest::for_source(application, source, "local");
    request.local_files = local_files;
    let rendered: Rendered = bus
        .ask("renderer", bus.topology.render_subject(), &request, timeout)
        .await
        .map_err(|e| e.context("rendering the local files"))?;
    Ok(app::prepare_desired(
        &rendered.manifests,
        application,
        control_plane_namespace,
    ))
}

/// `--local` manifests as sent: each a JSON object with `apiVersion` and `kind`, the
/// first that is not named by its place.
pub fn local_manifests(texts: &[String]) -> Result<Vec<Value>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| Error::invalid(format!("local manifest {}: {e}", i + 1)))?;
            let named = |field: &str| {
                value
                    .get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            };
            if !value.is_object() || !named("apiVersion") || !named("kind") {
                return Err(Error::invalid(format!(
                    "local manifest {}: expected an object with apiVersion and kind",
                    i + 1
                )));
            }
            Ok(value)
        })
        .collect()
}

pub async fn diff(
    bus: &Bus,
    application: &Application,
    cluster: &str,
    target: Target,
    control_plane_namespace: &str,
    timeout: Duration,
) -> Result<AppDiff> {
    let desired = match target {
        Target::Sources(revision) => {
            desired(
                bus,
                application,
                revision.as_deref(),
                control_plane_namespace,
                timeout,
            )
            .await?
        }
        Target::Local(manifests) => {
            app::prepare_desired(&manifests, application, control_plane_namespace)
        }
        Target::LocalFiles(files) => {
            local_render(bus, application, files, control_plane_namespace, timeout).await?
        }
    };
    let (live, predicted) = live_and_predicted(
        bus,
        application,
        cluster,
        control_plane_namespace,
        &desired,
        true,
        timeout,
    )
    .await?;
    // Server-side diff: what the diff workers compare, so `app diff` shows the same.
    let (replaced, errors) = app::server_side_compared(
        application,
        &desired,
        &live,
        predicted
            .into_iter()
            .map(gitfleet_messages::DryRunAnswer::into_result),
    );
    if let Some(error) = errors.into_iter().next() {
        return Err(Error::invalid(error));
    }
    let compared = replaced.unwrap_or(desired);
    // argocd-cm's system-level ignoreDifferences count here as in the diff worker's status.
    let settings = ControlPlane::new(bus, control_plane_namespace)
        .argocd_cm()
        .await?;
    let (system_ignores, _) = gitfleet_engine::diff::settings::system_ignore_differences(&settings);
    let text = app::diff_text(application, &compared, &live, &system_ignores)
        .map_err(|e| Error::invalid(e.to_string()))?;
    Ok(AppDiff {
        has_diff: !text.is_empty(),
        text,
    })
}
