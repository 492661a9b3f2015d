//! App of Apps at the KV boundary: the control-plane objects an app holds (Applications,
//! AppProjects, ApplicationSets its manifests carry for gitfleet itself) read as live
//! objects, written by a sync and deleted by a prune as `app delete` deletes them. What
//! counts as one, and how it reads, is `gitfleet_engine::control_plane`; the diff workers
//! and the sync executors both come here, so a comparison and a sync see the same thing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::kv;
use gitfleet_engine::ResourceRef;
use gitfleet_engine::control_plane::{self, ControlPlaneKind, Registration};
use gitfleet_engine::health::Checks;
use gitfleet_engine::tracking::tracking_id;
use gitfleet_messages::{APP_PARTITIONS, ServiceError, SyncRequest};
use gitfleet_model::{Application, ApplicationStatus, OperationPhase, RESOURCES_FINALIZER};
use serde_json::Value;

use crate::{Bucket, Bus, partition, subject_token};

/// Argo CD's settings ConfigMap, where the Application health customization lives.
/// Argo CD's settings ConfigMap, as KV `settings` keeps it.
pub const SETTINGS_CONFIG_MAP: &str = "argocd-cm";

/// Whether `cluster` is the one gitfleet runs in (`https://kubernetes.default.svc`, or
/// named `in-cluster`): only an app deploying there holds control-plane objects.
pub fn is_in_cluster(cluster: &gitfleet_model::Cluster) -> bool {
    cluster.server.trim_end_matches('/') == gitfleet_model::IN_CLUSTER_SERVER
        || cluster.name == gitfleet_model::IN_CLUSTER_NAME
}

/// Where each kind is kept.
pub fn bucket(kind: ControlPlaneKind) -> Bucket {
    match kind {
        ControlPlaneKind::Application => Bucket::Applications,
        ControlPlaneKind::AppProject => Bucket::Projects,
        ControlPlaneKind::ApplicationSet => Bucket::AppSets,
    }
}

/// The health checks `argocd-cm`'s `data` and `library` give; a customization that does
/// not read is left out (logged).
pub fn checks_of(data: &BTreeMap<String, String>, library: &gitfleet_lua::Library) -> Checks {
    let (checks, errors) = Checks::from_settings(data, library);
    for error in errors {
        tracing::warn!(%error, "a health customization of {SETTINGS_CONFIG_MAP} is left out");
    }
    checks
}

/// The control plane as one app's comparison or sync sees it.
pub struct ControlPlane<'a> {
    bus: &'a Bus,
    /// The namespace whose Argo CD objects gitfleet keeps (Argo CD's `argocd`).
    namespace: &'a str,
}

fn unavailable(
    what: String,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> ServiceError {
    move |e| ServiceError::unavailable(format!("{what}: {e}"))
}

impl<'a> ControlPlane<'a> {
    pub fn new(bus: &'a Bus, namespace: &'a str) -> Self {
        ControlPlane { bus, namespace }
    }

    pub fn namespace(&self) -> &str {
        self.namespace
    }

    async fn store(&self, bucket: Bucket) -> Result<kv::Store, ServiceError> {
        self.bus.kv(bucket).await.map_err(|e| {
            ServiceError::unavailable(format!(
                "opening kv bucket {}: {e}",
                self.bus.topology.bucket(bucket)
            ))
        })
    }

    /// The health checks: built-in, `argocd-cm`'s Lua customizations, then `library`'s
    /// scripts. A customization that does not read is left out (logged).
    pub async fn checks(&self, library: &gitfleet_lua::Library) -> Result<Checks, ServiceError> {
        Ok(checks_of(&self.argocd_cm().await?, library))
    }

    /// `argocd-cm`'s data (empty when none is stored).
    pub async fn argocd_cm(&self) -> Result<BTreeMap<String, String>, ServiceError> {
        let store = self.store(Bucket::Settings).await?;
        let Some(bytes) = store
            .get(SETTINGS_CONFIG_MAP)
            .await
            .map_err(|e| unavailable(format!("reading {SETTINGS_CONFIG_MAP}"))(Box::new(e)))?
        else {
            return Ok(BTreeMap::new());
        };
        self.decode_argocd_cm(&bytes)
    }

    /// `argocd-cm`'s data as a watch of its key gives it: empty once deleted.
    pub fn argocd_cm_of(
        &self,
        entry: &kv::Entry,
    ) -> Result<BTreeMap<String, String>, ServiceError> {
        match entry.operation {
            kv::Operation::Put => self.decode_argocd_cm(&entry.value),
            kv::Operation::Delete | kv::Operation::Purge => Ok(BTreeMap::new()),
        }
    }

    fn decode_argocd_cm(&self, bytes: &[u8]) -> Result<BTreeMap<String, String>, ServiceError> {
        self.bus
            .decode_document(Bucket::Settings, SETTINGS_CONFIG_MAP, bytes)
            .map_err(|e| ServiceError::invalid(format!("{SETTINGS_CONFIG_MAP} does not read: {e}")))
    }

    /// The stored document of `kind` `name` (an app's own, for its annotations).
    pub async fn document(
        &self,
        kind: ControlPlaneKind,
        name: &str,
    ) -> Result<Option<Value>, ServiceError> {
        Ok(self.stored(kind, name).await?.map(|(doc, _)| doc))
    }

    /// The stored document of `kind` `name`, as stored, with its KV revision.
    async fn stored(
        &self,
        kind: ControlPlaneKind,
        name: &str,
    ) -> Result<Option<(Value, u64)>, ServiceError> {
        let store = self.store(bucket(kind)).await?;
        let what = format!("reading {} {name:?}", kind.kind());
        let Some(entry) = store
            .entry(subject_token(name))
            .await
            .map_err(|e| unavailable(what.clone())(Box::new(e)))?
        else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let doc: Value = self
            .bus
            .decode_document(bucket(kind), name, &entry.value)
            .map_err(|e| ServiceError::internal(format!("{what}: {e}")))?;
        Ok(Some((doc, entry.revision)))
    }

    /// `kind` `name` as the live object app `instance` compares and syncs against (see
    /// [`control_plane::live_object`]); `None` when it is not stored, or when it is
    /// neither `desired` by the app nor written by its syncs (another app's, or one made
    /// by hand: never pruned by this one).
    pub async fn live(
        &self,
        instance: &str,
        kind: ControlPlaneKind,
        name: &str,
        desired: bool,
    ) -> Result<Option<Value>, ServiceError> {
        let Some((doc, _)) = self.stored(kind, name).await? else {
            return Ok(None);
        };
        let written = tracking_id(&doc).is_some_and(|t| t.app == instance);
        if !written && !desired {
            return Ok(None);
        }
        let status = if kind == ControlPlaneKind::Application {
            self.status(name).await?
        } else {
            None
        };
        Ok(Some(control_plane::live_object(
            &doc,
            status.as_ref(),
            self.namespace,
            written,
        )))
    }

    /// The control-plane objects among an app's desired ones (its destination being the
    /// in-cluster one), by kind and name.
    pub fn desired(&self, desired: &[Value]) -> BTreeSet<(ControlPlaneKind, String)> {
        desired
            .iter()
            .filter_map(|d| {
                let r = ResourceRef::from_object(d);
                Some((control_plane::kind_of(&r, true, self.namespace)?, r.name))
            })
            .collect()
    }

    /// What app `instance` holds, read once each: the objects it `desired` and those
    /// `written` by its syncs as the caller knows them (see [`Self::live`]), by kind and
    /// name. The one reading of a parent's children for the diff workers, the executors
    /// and the gateway's diff.
    pub async fn held(
        &self,
        instance: &str,
        desired: &BTreeSet<(ControlPlaneKind, String)>,
        written: impl IntoIterator<Item = (ControlPlaneKind, String)>,
    ) -> Result<Vec<((ControlPlaneKind, String), Value)>, ServiceError> {
        let mut names = desired.clone();
        names.extend(written);
        let mut out = Vec::new();
        for (kind, name) in names {
            let wanted = desired.contains(&(kind, name.clone()));
            if let Some(live) = self.live(instance, kind, &name, wanted).await? {
                out.push(((kind, name), live));
            }
        }
        Ok(out)
    }

    async fn status(&self, name: &str) -> Result<Option<ApplicationStatus>, ServiceError> {
        let store = self.store(Bucket::AppStatus).await?;
        let Some(bytes) = store
            .get(subject_token(name))
            .await
            .map_err(|e| unavailable(format!("reading the status of {name:?}"))(Box::new(e)))?
        else {
            return Ok(None);
        };
        // An unreadable status is no status: the child is then Progressing, not an error of
        // the parent's.
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// Writes a sync's desired object: created, or its spec, labels, annotations and
    /// finalizers replaced at the revision read (compare-and-set; a change meanwhile is a
    /// conflict the sync's retry takes again). A dry run only validates. Returns the
    /// result message.
    pub async fn register(
        &self,
        kind: ControlPlaneKind,
        desired: &Value,
        dry_run: bool,
    ) -> Result<&'static str, ServiceError> {
        let registration =
            control_plane::registration(kind, desired).map_err(ServiceError::invalid)?;
        if dry_run {
            return Ok("registered (dry run)");
        }
        let name = registration.name().to_owned();
        let doc = match &registration {
            Registration::Application(app) => serde_json::to_value(app),
            Registration::AppProject(p) => serde_json::to_value(p),
            Registration::ApplicationSet(s) => serde_json::to_value(s),
        }
        .map_err(|e| ServiceError::internal(format!("encoding {} {name:?}: {e}", kind.kind())))?;
        let store = self.store(bucket(kind)).await?;
        let key = subject_token(&name);
        let what = format!("writing {} {name:?}", kind.kind());
        let current = self.stored(kind, &name).await?;
        let mut doc = doc;
        if let Some((old, _)) = &current {
            // What the server keeps of an object being replaced: its identity and a
            // deletion under way.
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "ownerReferences",
            ] {
                if let Some(v) = old.pointer(&format!("/metadata/{field}"))
                    && let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    meta.entry(field.to_owned()).or_insert_with(|| v.clone());
                }
            }
            if *old == doc {
                return Ok("unchanged");
            }
        }
        let bytes = self
            .bus
            .encode_document(bucket(kind), &name, &doc)
            .map_err(|e| ServiceError::internal(format!("{what}: {e}")))?;
        match current {
            None => store
                .create(&key, bytes.into())
                .await
                .map(|_| "created")
                .map_err(|e| ServiceError::conflict(format!("{what}: {e}"))),
            Some((_, revision)) => store
                .update(&key, bytes.into(), revision)
                .await
                .map(|_| "updated")
                .map_err(|e| ServiceError::conflict(format!("{what}: {e}"))),
        }
    }

    /// Deletes `kind` `name` as a prune deletes it. An Application goes as `app delete`
    /// does: with the resources finalizer it is marked deleted, its diff worker prunes
    /// everything it deployed (a cascade delete, waited for up to `timeout`), then the
    /// app, its status and its operation go. A dry run deletes nothing.
    pub async fn remove(
        &self,
        kind: ControlPlaneKind,
        name: &str,
        initiated_by: &str,
        timeout: Duration,
        dry_run: bool,
    ) -> Result<&'static str, ServiceError> {
        if dry_run {
            return Ok("pruned (dry run)");
        }
        let key = subject_token(name);
        let what = format!("deleting {} {name:?}", kind.kind());
        if kind == ControlPlaneKind::Application
            && let Some((doc, revision)) = self.stored(kind, name).await?
        {
            let mut app: Application = serde_json::from_value(doc)
                .map_err(|e| ServiceError::internal(format!("{what}: {e}")))?;
            if app
                .metadata
                .finalizers
                .iter()
                .any(|f| f.starts_with(RESOURCES_FINALIZER))
            {
                if app.metadata.deletion_timestamp.is_none() {
                    // Marked first, as Argo CD does: its diff worker stops syncing it, so
                    // nothing recreates what the cascade delete removes.
                    app.metadata.deletion_timestamp =
                        Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                    let bytes = self
                        .bus
                        .encode_document(Bucket::Applications, name, &app)
                        .map_err(|e| ServiceError::internal(format!("{what}: {e}")))?;
                    self.store(Bucket::Applications)
                        .await?
                        .update(&key, bytes.into(), revision)
                        .await
                        .map_err(|e| ServiceError::conflict(format!("{what}: {e}")))?;
                }
                self.delete_resources(name, initiated_by, timeout).await?;
            }
        }
        self.store(bucket(kind))
            .await?
            .delete(&key)
            .await
            .map_err(|e| unavailable(what.clone())(Box::new(e)))?;
        if kind == ControlPlaneKind::Application {
            for b in [Bucket::AppStatus, Bucket::Operations] {
                let _ = self.store(b).await?.delete(&key).await;
            }
        }
        Ok("pruned")
    }

    /// Asks the diff worker owning app `name` for a cascade delete and waits for it to
    /// succeed.
    async fn delete_resources(
        &self,
        name: &str,
        initiated_by: &str,
        timeout: Duration,
    ) -> Result<(), ServiceError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let request = SyncRequest {
            app: name.to_owned(),
            delete_resources: true,
            initiated_by: initiated_by.to_owned(),
            ..SyncRequest::default()
        };
        let id: String = self
            .bus
            .ask(
                "diff worker for the app's partition",
                self.bus
                    .topology
                    .sync_request_subject(partition(name, APP_PARTITIONS)),
                &request,
                timeout,
            )
            .await
            .map_err(|e| {
                e.context(format_args!(
                    "deleting the resources of application {name:?}"
                ))
            })?;
        match crate::completed_operation(self.bus, name, &id, deadline).await {
            Ok(Some(op)) if op.phase == OperationPhase::Succeeded => Ok(()),
            Ok(Some(op)) => Err(ServiceError::unavailable(format!(
                "deleting the resources of application {name:?} ended {}: {}",
                op.phase, op.message
            ))),
            Ok(None) => Err(ServiceError::unavailable(format!(
                "timed out after {}s deleting the resources of application {name:?}",
                timeout.as_secs()
            ))),
            Err(e) => Err(ServiceError::unavailable(format!(
                "watching the cascade delete of application {name:?}: {e}"
            ))),
        }
    }
}
