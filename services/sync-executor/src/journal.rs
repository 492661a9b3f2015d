//! An operation's progress, kept in its KV `operations` record while it runs: the results
//! of a step once its writes are done, and the last step finished. An executor that takes
//! the operation over (the one running it died and its job was redelivered) resumes after
//! what the record shows: a hook this operation created is never created again, a step it
//! finished is not run again (Argo CD keeps the same in `status.operationState`).

use std::sync::Mutex;

use gitfleet_engine::ResourceRef;
use gitfleet_engine::sync::{SyncPhase, Task, TaskAction};
use gitfleet_messages::{Operation, Progress, ResourceResult, ResultCode, SyncOperation, SyncStep};
use gitfleet_model::OperationPhase;

use crate::queue::{self, Shared};

/// What an earlier run of the attempt under way did before it stopped.
#[derive(Debug, Default, Clone)]
pub struct Earlier {
    /// The last step it finished: its tasks all ran and became healthy.
    pub finished: Option<(SyncPhase, i32)>,
    /// Its results, which name the tasks it did.
    pub results: Vec<ResourceResult>,
}

impl Earlier {
    /// What `stored`, the record of a running operation, says its attempt did; `None`
    /// when it holds no progress (nothing was recorded yet, or it waits to be retried).
    pub fn of(stored: &Operation) -> Option<Earlier> {
        let progress = stored.progress.as_ref()?;
        let finished = match &progress.finished {
            None => None,
            // A step of a phase this version does not know: start the attempt over.
            Some(step) => Some((SyncPhase::parse(&step.phase)?, step.wave)),
        };
        Some(Earlier {
            finished,
            results: stored.resources.clone(),
        })
    }

    /// Whether the step `phase`/`wave` was finished.
    pub fn finished(&self, phase: SyncPhase, wave: i32) -> bool {
        self.finished.is_some_and(|f| (phase, wave) <= f)
    }

    /// Whether `task` of `phase` was done: its object applied, pruned or created. A hook
    /// this operation created is not deleted to be created again either.
    pub fn did(&self, phase: SyncPhase, task: &Task) -> bool {
        self.results.iter().any(|r| {
            names(r, &task.resource)
                && r.sync_phase == phase.as_str()
                && match task.action {
                    TaskAction::Apply | TaskAction::CreateHook => r.status == ResultCode::Synced,
                    TaskAction::Prune => r.status == ResultCode::Pruned,
                    TaskAction::DeleteHook => {
                        !r.hook_type.is_empty() && r.status == ResultCode::Synced
                    }
                }
        })
    }
}

fn names(r: &ResourceResult, resource: &ResourceRef) -> bool {
    r.group == resource.group
        && r.kind == resource.kind
        && r.namespace == resource.namespace
        && r.name == resource.name
}

/// Where one attempt of an operation records its steps. Before each write, the app's
/// lease is read again: an operation whose app has a new owner stops there.
pub struct Journal<'a> {
    shared: &'a Shared,
    op: &'a SyncOperation,
    /// The record as the attempt started (phase Running, its start and retry count).
    record: Mutex<Operation>,
    /// Its message then, which a wait's message replaces while it lasts.
    message: String,
    earlier: Earlier,
}

impl<'a> Journal<'a> {
    pub fn new(
        shared: &'a Shared,
        op: &'a SyncOperation,
        record: &Operation,
        earlier: Earlier,
    ) -> Self {
        Journal {
            shared,
            op,
            record: Mutex::new(record.clone()),
            message: record.message.clone(),
            earlier,
        }
    }

    pub fn earlier(&self) -> &Earlier {
        &self.earlier
    }

    /// The operation's start, unix seconds: the name of a `generateName` hook, which must
    /// be the same in a run that resumes the operation.
    pub fn started_at(&self) -> i64 {
        let record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        chrono::DateTime::parse_from_rfc3339(&record.started_at)
            .map_or_else(|_| chrono::Utc::now().timestamp(), |t| t.timestamp())
    }

    /// Stores `results` as the attempt's so far, with `finished` as the last step done.
    /// Fails when the app has a new owner (the operation must not go on) or the record
    /// cannot be written (an executor taking over would not know what ran).
    pub async fn record(
        &self,
        results: &[ResourceResult],
        finished: Option<(SyncPhase, i32)>,
    ) -> Result<(), String> {
        self.write(results, finished, &self.message).await
    }

    /// Fails when the app has a new owner (the operation must not go on); writes nothing.
    pub async fn check_owner(&self) -> Result<(), String> {
        match queue::check_fencing(self.shared, self.op).await {
            Ok(None) => Ok(()),
            Ok(Some(current)) => Err(format!(
                "the app has a new owner (lease token {current}): the operation stopped before its next step"
            )),
            Err(err) => Err(format!("reading the app's lease: {err}")),
        }
    }

    /// As [`Journal::record`], the operation's message saying what it waits for.
    pub async fn waiting(
        &self,
        message: &str,
        results: &[ResourceResult],
        finished: Option<(SyncPhase, i32)>,
    ) -> Result<(), String> {
        self.write(results, finished, message).await
    }

    async fn write(
        &self,
        results: &[ResourceResult],
        finished: Option<(SyncPhase, i32)>,
        message: &str,
    ) -> Result<(), String> {
        if self.op.dry_run {
            return Ok(());
        }
        self.check_owner().await?;
        let record = {
            let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
            record.phase = OperationPhase::Running;
            message.clone_into(&mut record.message);
            record.resources = results.to_vec();
            record.progress = Some(Progress {
                finished: finished.map(|(phase, wave)| SyncStep {
                    phase: phase.as_str().to_owned(),
                    wave,
                }),
            });
            record.clone()
        };
        if queue::write_running(self.shared, &record).await {
            Ok(())
        } else {
            Err("the executor is stopping".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(action: TaskAction, name: &str) -> Task {
        let object = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "ns"}});
        Task {
            action,
            resource: ResourceRef::from_object(&object),
            object,
            hook_delete_policy: Vec::new(),
        }
    }

    fn done(name: &str, phase: &str, hook: bool, status: ResultCode) -> ResourceResult {
        ResourceResult {
            group: "batch".into(),
            kind: "Job".into(),
            namespace: "ns".into(),
            name: name.into(),
            status,
            message: String::new(),
            sync_phase: phase.into(),
            hook_type: if hook { phase.into() } else { String::new() },
        }
    }

    fn record(finished: Option<(&str, i32)>, resources: Vec<ResourceResult>) -> Operation {
        serde_json::from_value(json!({
            "id": "op", "app": "a", "phase": "Running", "revision": "r",
            "startedAt": "2026-01-01T00:00:00.000Z",
            "resources": resources,
            "progress": {"finished": finished.map(|(p, w)| json!({"phase": p, "wave": w}))},
        }))
        .unwrap()
    }

    #[test]
    fn a_created_hook_is_neither_created_nor_deleted_again_in_its_phase() {
        let earlier = Earlier::of(&record(
            None,
            vec![done("migrate", "PreSync", true, ResultCode::Synced)],
        ))
        .unwrap();
        assert!(earlier.did(SyncPhase::PreSync, &task(TaskAction::CreateHook, "migrate")));
        assert!(earlier.did(SyncPhase::PreSync, &task(TaskAction::DeleteHook, "migrate")));
        // The same hook in another phase runs there.
        assert!(!earlier.did(
            SyncPhase::PostSync,
            &task(TaskAction::CreateHook, "migrate")
        ));
        assert!(!earlier.did(SyncPhase::PreSync, &task(TaskAction::CreateHook, "other")));
        // Its step is not finished until the record says so.
        assert!(!earlier.finished(SyncPhase::PreSync, 0));
    }

    #[test]
    fn steps_up_to_the_finished_one_are_finished_and_failures_are_not_done() {
        let earlier = Earlier::of(&record(
            Some(("Sync", 1)),
            vec![
                done("a", "Sync", false, ResultCode::Synced),
                done("b", "Sync", false, ResultCode::SyncFailed),
                done("c", "Sync", false, ResultCode::Pruned),
            ],
        ))
        .unwrap();
        assert!(earlier.finished(SyncPhase::PreSync, 5));
        assert!(earlier.finished(SyncPhase::Sync, 1));
        assert!(!earlier.finished(SyncPhase::Sync, 2));
        assert!(!earlier.finished(SyncPhase::PostSync, -1));
        assert!(earlier.did(SyncPhase::Sync, &task(TaskAction::Apply, "a")));
        assert!(!earlier.did(SyncPhase::Sync, &task(TaskAction::Apply, "b")));
        assert!(earlier.did(SyncPhase::Sync, &task(TaskAction::Prune, "c")));
        assert!(!earlier.did(SyncPhase::Sync, &task(TaskAction::Apply, "c")));
    }

    #[test]
    fn a_record_without_progress_or_of_an_unknown_phase_resumes_nothing() {
        let mut without = record(None, vec![]);
        without.progress = None;
        assert!(Earlier::of(&without).is_none());
        assert!(Earlier::of(&record(Some(("Later", 0)), vec![])).is_none());
    }
}
