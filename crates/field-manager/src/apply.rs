//! Server-side apply: merge an applied configuration into the live object, refuse or
//! force through conflicts with other managers, and drop fields the applier let go of.

use serde_json::{Map, Value};

use crate::error::{ApplyError, Conflict};
use crate::fields::{Schema, Scope, applied_set, changed_set, strip_nulls, tracked};
use crate::fieldset::FieldSet;
use crate::managed::{self, ManagedFieldsEntry, ManagedOperation};
use crate::merge::{merge, prune};
use crate::{ObjectInfo, Operation};

/// The manager Kubernetes makes owner of everything an object had when it is first
/// applied to without any managedFields.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

fn invalid(message: impl Into<String>) -> ApplyError {
    ApplyError::Invalid {
        message: message.into(),
    }
}

/// Server-side apply of `applied` by `op.manager` (`None` live: create). Returns the new
/// object with `metadata.managedFields` updated; identity (`apiVersion`, `kind`,
/// `metadata.name`, `metadata.namespace`) comes from `applied`, other server-owned
/// metadata from `live`.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    info: &ObjectInfo,
    op: &Operation,
    force: bool,
) -> Result<Value, ApplyError> {
    validate(applied, info)?;
    let scope = Scope::new(info);
    let schema = Schema::new(info);
    if scope == Scope::Status && live.is_none() {
        return Err(invalid(
            "cannot apply to the status subresource of an object that does not exist",
        ));
    }
    let mut config = applied.clone();
    strip_nulls(&mut config);
    let config = tracked(&config, scope);
    let applied_fields = applied_set(&config, &schema)?;

    let live_object = match live {
        Some(object) => without_managed_fields(object),
        None => Value::Object(Map::new()),
    };
    let mut entries = live.and_then(managed::read).unwrap_or_default();
    if live.is_some() && entries.is_empty() {
        // Objects written before anyone tracked them: the existing values are someone's
        // intent, so a differing apply must conflict rather than silently win.
        entries.push(ManagedFieldsEntry {
            manager: BEFORE_FIRST_APPLY.to_owned(),
            operation: ManagedOperation::Update,
            api_version: info.api_version.to_owned(),
            time: Some(op.time.to_owned()),
            subresource: info.subresource.map(str::to_owned),
            fields: changed_set(
                &Value::Object(Map::new()),
                &tracked(&live_object, scope),
                &schema,
            ),
        });
    }

    let mut object = live_object.clone();
    merge(&mut object, &config, &schema);
    copy_identity(&mut object, applied);

    let is_mine =
        |e: &ManagedFieldsEntry| e.is(op.manager, ManagedOperation::Apply, info.subresource);
    // Only what this apply adds or modifies can conflict: equal values are co-owned.
    let changed = changed_set(
        &tracked(&live_object, scope),
        &tracked(&object, scope),
        &schema,
    );
    let mut conflicts = Vec::new();
    let mut taken = Vec::new();
    for (i, entry) in entries.iter().enumerate().filter(|(_, e)| !is_mine(e)) {
        let overlap = entry.fields.intersection(&changed);
        if overlap.is_empty() {
            continue;
        }
        conflicts.extend(overlap.paths().iter().map(|p| Conflict::new(entry, p)));
        taken.push((i, overlap));
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::conflicts(conflicts));
    }
    for (i, overlap) in taken {
        entries[i].fields.remove_all(&overlap);
    }

    let previous = entries.iter().position(is_mine);
    let mut dropped = previous
        .map(|i| entries[i].fields.clone())
        .unwrap_or_default();
    dropped.remove_all(&applied_fields);
    let mut kept = applied_fields.clone();
    for entry in entries.iter().filter(|e| !is_mine(e)) {
        kept.union_with(&entry.fields);
    }
    prune(&mut object, &dropped, &kept);

    // Like the API server, a no-op apply leaves the entry's time alone.
    let time = match previous.and_then(|i| entries[i].time.clone()) {
        Some(time) if object == live_object => time,
        _ => op.time.to_owned(),
    };
    let mine = ManagedFieldsEntry {
        manager: op.manager.to_owned(),
        operation: ManagedOperation::Apply,
        api_version: info.api_version.to_owned(),
        time: Some(time),
        subresource: info.subresource.map(str::to_owned),
        fields: applied_fields,
    };
    match previous {
        Some(i) => entries[i] = mine,
        None => entries.push(mine),
    }
    for entry in &mut entries {
        entry.fields.retain_existing(&object);
    }
    managed::write(&mut object, entries);
    Ok(object)
}

fn validate(applied: &Value, info: &ObjectInfo) -> Result<(), ApplyError> {
    let Some(map) = applied.as_object() else {
        return Err(invalid("the applied configuration must be an object"));
    };
    if let Some(managed_fields) = applied.get("metadata").and_then(|m| m.get("managedFields"))
        && !(managed_fields.is_null() || managed_fields.as_array().is_some_and(Vec::is_empty))
    {
        return Err(invalid("metadata.managedFields must be nil"));
    }
    if let Some(meta) = map.get("metadata")
        && !meta.is_object()
        && !meta.is_null()
    {
        return Err(invalid(".metadata: expected an object"));
    }
    for (field, expected) in [("kind", info.kind), ("apiVersion", info.api_version)] {
        if let Some(found) = map.get(field).and_then(Value::as_str)
            && found != expected
        {
            return Err(invalid(format!(
                "{field} {found:?} of the applied configuration does not match {expected:?}"
            )));
        }
    }
    Ok(())
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    object
}

fn copy_identity(object: &mut Value, applied: &Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    for field in ["apiVersion", "kind"] {
        if let Some(v) = applied.get(field).filter(|v| !v.is_null()) {
            map.insert(field.to_owned(), v.clone());
        }
    }
    let Some(applied_meta) = applied.get("metadata") else {
        return;
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        for field in ["name", "namespace"] {
            if let Some(v) = applied_meta.get(field).filter(|v| !v.is_null()) {
                meta.insert(field.to_owned(), v.clone());
            }
        }
    }
}

/// The field set an applied configuration would own, without applying it (dry runs,
/// diagnostics).
pub fn applied_fields(applied: &Value, info: &ObjectInfo) -> Result<FieldSet, ApplyError> {
    validate(applied, info)?;
    let mut config = applied.clone();
    strip_nulls(&mut config);
    applied_set(&tracked(&config, Scope::new(info)), &Schema::new(info))
}
