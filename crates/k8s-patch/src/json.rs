//! JSON patch (RFC 6902), the `application/json-patch+json` patch type: parsing and
//! validating each operation ourselves so errors name the operation, then applying it with
//! the `json-patch` crate.

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::Value;

use crate::error::{PatchError, type_name};

/// Applies an RFC 6902 patch (an array of operations) to a copy of `target`. Operations
/// apply in order and the whole patch fails if any one does (the target is untouched).
pub fn apply_json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::JsonPatchNotArray {
            found: type_name(patch),
        });
    };
    // Parse everything first: a malformed operation late in the patch is a bad request even
    // if an earlier operation would have failed to apply.
    let ops = ops
        .iter()
        .enumerate()
        .map(|(index, raw)| parse_op(index, raw))
        .collect::<Result<Vec<_>, _>>()?;
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        // One operation at a time so the error carries our index and the document as it was
        // just before the failing operation (json-patch rolls back a failed operation).
        json_patch::patch(&mut doc, std::slice::from_ref(op))
            .map_err(|err| failure(index, op, &doc, &err.kind))?;
    }
    Ok(doc)
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

fn parse_op(index: usize, raw: &Value) -> Result<PatchOperation, PatchError> {
    let invalid = |reason: String| PatchError::InvalidOperation { index, reason };
    let Value::Object(fields) = raw else {
        return Err(invalid(format!(
            "operation must be an object, got {}",
            type_name(raw)
        )));
    };
    let op = match fields.get("op") {
        None => return Err(invalid("missing \"op\"".into())),
        Some(Value::String(op)) => op.as_str(),
        Some(other) => {
            return Err(invalid(format!(
                "\"op\" must be a string, got {}",
                type_name(other)
            )));
        }
    };
    let required: &[&str] = match op {
        "add" | "replace" | "test" => &["path", "value"],
        "remove" => &["path"],
        "move" | "copy" => &["from", "path"],
        _ => {
            return Err(invalid(format!(
                "unknown op \"{op}\" (expected add, remove, replace, move, copy or test)"
            )));
        }
    };
    for &member in required {
        let Some(value) = fields.get(member) else {
            return Err(invalid(format!("{op} operation is missing \"{member}\"")));
        };
        if member == "value" {
            continue;
        }
        let Value::String(pointer) = value else {
            return Err(invalid(format!(
                "\"{member}\" must be a string, got {}",
                type_name(value)
            )));
        };
        if let Err(why) = check_pointer(pointer) {
            return Err(invalid(format!(
                "\"{member}\" {pointer:?} is not a json pointer: {why}"
            )));
        }
    }
    serde_json::from_value(raw.clone()).map_err(|err| invalid(err.to_string()))
}

fn check_pointer(pointer: &str) -> Result<(), &'static str> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err("it must be empty or start with \"/\"");
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("\"~\" must be followed by 0 or 1");
        }
    }
    Ok(())
}

fn failure(index: usize, op: &PatchOperation, doc: &Value, kind: &PatchErrorKind) -> PatchError {
    let path = op.path().to_string();
    let from = match op {
        PatchOperation::Move(m) => Some(m.from.to_string()),
        PatchOperation::Copy(c) => Some(c.from.to_string()),
        _ => None,
    };
    let creates = matches!(
        op,
        PatchOperation::Add(_) | PatchOperation::Move(_) | PatchOperation::Copy(_)
    );
    let reason = match kind {
        PatchErrorKind::TestFailed => "value does not match the test value".to_string(),
        PatchErrorKind::InvalidFromPointer => {
            let from = from.unwrap_or_default();
            format!("from {from}: {}", diagnose(doc, &from, false))
        }
        PatchErrorKind::InvalidPointer if path.is_empty() => {
            "cannot remove the whole document".to_string()
        }
        PatchErrorKind::InvalidPointer => diagnose(doc, &path, creates),
        PatchErrorKind::CannotMoveInsideItself => {
            "cannot move a value into one of its own children".to_string()
        }
        other => other.to_string(),
    };
    PatchError::OperationFailed {
        index,
        op: op_name(op),
        path,
        reason,
    }
}

/// Says which step of `pointer` does not resolve in `doc`. With `creates`, the last step
/// may name a new key or the end of an array, as `add` allows.
fn diagnose(doc: &Value, pointer: &str, creates: bool) -> String {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut current = doc;
    let mut prefix = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        let here = if prefix.is_empty() {
            "/".to_string()
        } else {
            prefix.clone()
        };
        match current {
            Value::Object(map) => match map.get(token) {
                Some(next) => current = next,
                None if last => return "path does not exist".to_string(),
                None => return format!("path {prefix}/{token} does not exist"),
            },
            Value::Array(items) => {
                let index = if token == "-" {
                    items.len()
                } else if token == "0"
                    || (!token.starts_with('0') && token.parse::<usize>().is_ok())
                {
                    token.parse::<usize>().unwrap_or(usize::MAX)
                } else {
                    return format!("{token:?} is not an array index (array at {here})");
                };
                let limit = if last && creates {
                    items.len() + 1
                } else {
                    items.len()
                };
                match items.get(index) {
                    Some(next) if index < limit => current = next,
                    _ if index < limit => return "path does not exist".to_string(),
                    _ => {
                        return format!(
                            "array index {token} out of range (array at {here} has {} items)",
                            items.len()
                        );
                    }
                }
            }
            scalar => {
                return format!(
                    "{here} is a {}, which has no member {token:?}",
                    type_name(scalar)
                );
            }
        }
        prefix.push('/');
        prefix.push_str(&token.replace('~', "~0").replace('/', "~1"));
    }
    "path does not exist".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(target: Value, patch: Value) -> String {
        apply_json_patch(&target, &patch).unwrap_err().to_string()
    }

    #[test]
    fn applies_all_operations() {
        let target = json!({"spec": {"replicas": 1, "list": ["a", "c"]}, "old": true});
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/list/1", "value": "b"},
            {"op": "add", "path": "/spec/list/-", "value": "d"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
            {"op": "move", "from": "/old", "path": "/metadata"},
            {"op": "remove", "path": "/spec/list/0"},
        ]);
        assert_eq!(
            apply_json_patch(&target, &patch).unwrap(),
            json!({"spec": {"replicas": 3, "list": ["b", "c", "d"], "copied": 3}, "metadata": true})
        );
    }

    #[test]
    fn empty_patch_is_identity() {
        let target = json!({"a": 1});
        assert_eq!(apply_json_patch(&target, &json!([])).unwrap(), target);
    }

    #[test]
    fn replace_of_missing_path_names_the_operation() {
        assert_eq!(
            err(
                json!({"spec": {}}),
                json!([
                    {"op": "test", "path": "/spec", "value": {}},
                    {"op": "add", "path": "/spec/bar", "value": 1},
                    {"op": "replace", "path": "/spec/foo", "value": 1}
                ])
            ),
            "json patch operation 2 (replace /spec/foo): path does not exist"
        );
    }

    #[test]
    fn failures_are_described() {
        let doc = json!({"spec": {"list": [1, 2], "n": 5}});
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "add", "path": "/spec/x/y", "value": 1}])
            ),
            "json patch operation 0 (add /spec/x/y): path /spec/x does not exist"
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "add", "path": "/spec/list/5", "value": 1}])
            ),
            "json patch operation 0 (add /spec/list/5): array index 5 out of range (array at /spec/list has 2 items)"
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "remove", "path": "/spec/list/x"}])
            ),
            "json patch operation 0 (remove /spec/list/x): \"x\" is not an array index (array at /spec/list)"
        );
        assert_eq!(
            err(doc.clone(), json!([{"op": "remove", "path": "/spec/n/m"}])),
            "json patch operation 0 (remove /spec/n/m): /spec/n is a number, which has no member \"m\""
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "test", "path": "/spec/n", "value": 6}])
            ),
            "json patch operation 0 (test /spec/n): value does not match the test value"
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "move", "from": "/nope", "path": "/spec/m"}])
            ),
            "json patch operation 0 (move /spec/m): from /nope: path does not exist"
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}])
            ),
            "json patch operation 0 (move /spec/inner): cannot move a value into one of its own children"
        );
        assert_eq!(
            err(doc, json!([{"op": "remove", "path": ""}])),
            "json patch operation 0 (remove \"\"): cannot remove the whole document"
        );
    }

    #[test]
    fn failed_patch_leaves_no_partial_result() {
        let target = json!({"a": 1});
        let patch = json!([
            {"op": "replace", "path": "/a", "value": 2},
            {"op": "remove", "path": "/b"}
        ]);
        assert!(apply_json_patch(&target, &patch).is_err());
        assert_eq!(target, json!({"a": 1}));
    }

    #[test]
    fn malformed_operations_are_rejected() {
        assert_eq!(
            err(json!({}), json!({"op": "add"})),
            "json patch must be an array of operations, got object"
        );
        assert_eq!(
            err(json!({}), json!([1])),
            "json patch operation 0: operation must be an object, got number"
        );
        assert_eq!(
            err(json!({}), json!([{"path": "/a"}])),
            "json patch operation 0: missing \"op\""
        );
        assert_eq!(
            err(json!({}), json!([{"op": "frob", "path": "/a"}])),
            "json patch operation 0: unknown op \"frob\" (expected add, remove, replace, move, copy or test)"
        );
        assert_eq!(
            err(json!({}), json!([{"op": "add", "path": "/a"}])),
            "json patch operation 0: add operation is missing \"value\""
        );
        assert_eq!(
            err(json!({}), json!([{"op": "move", "path": "/a"}])),
            "json patch operation 0: move operation is missing \"from\""
        );
        assert_eq!(
            err(json!({}), json!([{"op": "remove", "path": "a"}])),
            "json patch operation 0: \"path\" \"a\" is not a json pointer: it must be empty or start with \"/\""
        );
        assert_eq!(
            err(json!({}), json!([{"op": "remove", "path": 3}])),
            "json patch operation 0: \"path\" must be a string, got number"
        );
        // A malformed later operation rejects the patch even if an earlier one would fail.
        assert_eq!(
            err(
                json!({}),
                json!([{"op": "remove", "path": "/x"}, {"op": "nope"}])
            ),
            "json patch operation 1: unknown op \"nope\" (expected add, remove, replace, move, copy or test)"
        );
    }

    #[test]
    fn escaped_pointer_tokens() {
        let target = json!({"metadata": {"annotations": {"a/b": "1", "c~d": "2"}}});
        let patch = json!([
            {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "x"},
            {"op": "remove", "path": "/metadata/annotations/c~0d"}
        ]);
        assert_eq!(
            apply_json_patch(&target, &patch).unwrap(),
            json!({"metadata": {"annotations": {"a/b": "x"}}})
        );
    }
}
