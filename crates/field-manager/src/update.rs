//! Ownership changes of non-apply writes (create, replace, JSON/merge/strategic patch):
//! the writer takes every field it changed, without conflicts.

use serde_json::{Map, Value};

use crate::fields::{Schema, Scope, changed_set, tracked};
use crate::managed::{self, ManagedFieldsEntry, ManagedOperation};
use crate::{ObjectInfo, Operation};

/// Records a non-apply write of `new` over `old` (`None` on create) by `op.manager`:
/// sets `new`'s `metadata.managedFields`.
///
/// Like the API server, managedFields the request itself carries (non-empty, readable,
/// main resource only) replace the stored ones before the write is recorded, and the
/// `[{}]` marker clears them without recording the write.
pub fn record_update(old: Option<&Value>, new: &mut Value, info: &ObjectInfo, op: &Operation) {
    if !new.is_object() {
        return;
    }
    if managed::is_reset_marker(new) {
        managed::write(new, Vec::new());
        return;
    }
    let scope = Scope::new(info);
    let schema = Schema::new(info);
    let from_request = match info.subresource {
        None => managed::read(new).filter(|entries| !entries.is_empty()),
        Some(_) => None,
    };
    let mut entries = from_request
        .or_else(|| old.and_then(managed::read))
        .unwrap_or_default();

    let before = old.map_or_else(|| Value::Object(Map::new()), |o| tracked(o, scope));
    let changed = changed_set(&before, &tracked(new, scope), &schema);

    let is_mine =
        |e: &ManagedFieldsEntry| e.is(op.manager, ManagedOperation::Update, info.subresource);
    for entry in entries.iter_mut().filter(|e| !is_mine(e)) {
        entry.fields.remove_all(&changed);
    }
    // A write that changed nothing leaves the writer's entry (and its time) alone.
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| is_mine(e)) {
            Some(entry) => {
                entry.fields.union_with(&changed);
                entry.api_version = info.api_version.to_owned();
                entry.time = Some(op.time.to_owned());
            }
            None => entries.push(ManagedFieldsEntry {
                manager: op.manager.to_owned(),
                operation: ManagedOperation::Update,
                api_version: info.api_version.to_owned(),
                time: Some(op.time.to_owned()),
                subresource: info.subresource.map(str::to_owned),
                fields: changed,
            }),
        }
    }
    for entry in &mut entries {
        entry.fields.retain_existing(new);
    }
    managed::write(new, entries);
}
