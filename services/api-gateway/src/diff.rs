//! `app diff` and `app manifests` without a Git or cluster client: the gateway asks the git
//! watcher to resolve the revision, a renderer for the manifests and the cluster's executor
//! for the live objects, then compares with the engine exactly as the diff workers do.

use std::time::Duration;

use gitfleet_bus::Bus;
use gitfleet_engine::app;
use gitfleet_messages::{
    Live, LiveRequest, RefSource, RenderRequest, Rendered, ResolveRequest, Resolved,
};
use gitfleet_model::Application;
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

/// The live objects of `application` in `cluster`.
pub async fn live(
    bus: &Bus,
    application: &Application,
    cluster: &str,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let live: Live = bus
        .ask(
            "sync executor",
            bus.topology.live_request_subject(cluster),
            &LiveRequest {
                app: application.metadata.name.clone(),
                cluster: cluster.to_string(),
            },
            timeout,
        )
        .await
        .map_err(|e| e.context(format_args!("live state of cluster {cluster:?}")))?;
    Ok(live.resources)
}

pub async fn diff(
    bus: &Bus,
    application: &Application,
    cluster: &str,
    control_plane_namespace: &str,
    timeout: Duration,
) -> Result<AppDiff> {
    let desired = desired(bus, application, None, control_plane_namespace, timeout).await?;
    let live = live(bus, application, cluster, timeout).await?;
    let text =
        app::diff_text(application, &desired, &live).map_err(|e| Error::invalid(e.to_string()))?;
    Ok(AppDiff {
        has_diff: !text.is_empty(),
        text,
    })
}
