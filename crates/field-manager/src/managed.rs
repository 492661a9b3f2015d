//! `metadata.managedFields` entries: reading them from an object, writing them back in
//! the order the API server keeps them, and naming a manager the way conflicts do.

use std::fmt;

use serde_json::{Map, Value};

use crate::fieldset::FieldSet;

/// The kind of write that gave a manager its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ManagedOperation {
    Apply,
    Update,
}

impl ManagedOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            ManagedOperation::Apply => "Apply",
            ManagedOperation::Update => "Update",
        }
    }
}

impl fmt::Display for ManagedOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedFieldsEntry {
    pub manager: String,
    pub operation: ManagedOperation,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    /// Whether this entry is the one `(manager, operation, subresource)` names.
    pub fn is(
        &self,
        manager: &str,
        operation: ManagedOperation,
        subresource: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn from_value(value: &Value) -> Option<Self> {
        let map = value.as_object()?;
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
        let operation = match map.get("operation")?.as_str()? {
            "Apply" => ManagedOperation::Apply,
            "Update" => ManagedOperation::Update,
            _ => return None,
        };
        if map
            .get("fieldsType")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "FieldsV1")
        {
            return None;
        }
        let fields = match map.get("fieldsV1") {
            Some(v1) => FieldSet::from_fields_v1(v1)?,
            None => FieldSet::new(),
        };
        Some(ManagedFieldsEntry {
            manager: text("manager").unwrap_or_default(),
            operation,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields,
        })
    }

    /// The JSON form, fields in the order of the Go struct.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("manager".into(), self.manager.clone().into());
        map.insert("operation".into(), self.operation.as_str().into());
        map.insert("apiVersion".into(), self.api_version.clone().into());
        if let Some(time) = &self.time {
            map.insert("time".into(), time.clone().into());
        }
        map.insert("fieldsType".into(), "FieldsV1".into());
        map.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(sub) = &self.subresource {
            map.insert("subresource".into(), sub.clone().into());
        }
        Value::Object(map)
    }

    /// The identifier the API server keys managers by (a JSON object without time and
    /// fields; appliers also without apiVersion). Conflicts are grouped and sorted by it.
    pub(crate) fn identifier(&self) -> String {
        let mut map = Map::new();
        map.insert("manager".into(), self.manager.clone().into());
        map.insert("operation".into(), self.operation.as_str().into());
        if self.operation == ManagedOperation::Update && !self.api_version.is_empty() {
            map.insert("apiVersion".into(), self.api_version.clone().into());
        }
        if let Some(sub) = &self.subresource {
            map.insert("subresource".into(), sub.clone().into());
        }
        Value::Object(map).to_string()
    }

    /// How conflict messages name this manager: `"m"`, `"m" with subresource "status"`,
    /// and for updaters `... using apps/v1` (the identifier carries no time, so the
    /// API server never prints one).
    pub(crate) fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == ManagedOperation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

/// The managedFields entries of `object`; unreadable entries are skipped, and `None`
/// means the object has no usable list at all.
pub fn read(object: &Value) -> Option<Vec<ManagedFieldsEntry>> {
    let list = object.get("metadata")?.get("managedFields")?.as_array()?;
    Some(
        list.iter()
            .filter_map(ManagedFieldsEntry::from_value)
            .collect(),
    )
}

/// Whether `object` carries the `[{}]` marker a client sends to reset managedFields.
pub(crate) fn is_reset_marker(object: &Value) -> bool {
    let list = object
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array);
    matches!(list.map(Vec::as_slice), Some([Value::Object(m)]) if m.is_empty())
}

/// Stores `entries` in `object`, dropping empty ones, in the API server's order:
/// Apply before Update, then by time, manager, apiVersion and subresource. No entries
/// means no `managedFields` key.
pub(crate) fn write(object: &mut Value, mut entries: Vec<ManagedFieldsEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    // RFC 3339 times in UTC sort correctly as text.
    entries.sort_by(|a, b| {
        (
            a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(ManagedFieldsEntry::to_value).collect()),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_and_sorts_entries() {
        let mut object = json!({"metadata": {"name": "x", "managedFields": [
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:b": {}}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2026-01-02T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}, "subresource": "status"},
            {"manager": "z", "operation": "Apply", "apiVersion": "v1", "time": "2026-01-03T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:z": {}}}},
            {"manager": "empty", "operation": "Apply", "apiVersion": "v1", "fieldsV1": {}}
        ]}});
        let entries = read(&object).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[1].subresource.as_deref(), Some("status"));
        write(&mut object, entries);
        let managers: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["z", "b", "a"]);
        assert_eq!(
            object["metadata"]["managedFields"][2]["subresource"],
            "status"
        );
    }

    #[test]
    fn describes_managers_like_the_api_server() {
        let mut entry = ManagedFieldsEntry {
            manager: "kubectl-client-side-apply".into(),
            operation: ManagedOperation::Update,
            api_version: "apps/v1".into(),
            time: Some("2026-01-01T00:00:00Z".into()),
            subresource: None,
            fields: FieldSet::new(),
        };
        assert_eq!(
            entry.describe(),
            r#""kubectl-client-side-apply" using apps/v1"#
        );
        entry.operation = ManagedOperation::Apply;
        entry.subresource = Some("status".into());
        assert_eq!(
            entry.describe(),
            r#""kubectl-client-side-apply" with subresource "status""#
        );
    }

    #[test]
    fn recognises_the_reset_marker() {
        assert!(is_reset_marker(
            &json!({"metadata": {"managedFields": [{}]}})
        ));
        assert!(!is_reset_marker(
            &json!({"metadata": {"managedFields": []}})
        ));
    }
}
