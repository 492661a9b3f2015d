//! The one error type every patch flavour returns, so the API server can map any patch
//! failure to a single status without caring which content type the client sent.

use serde_json::Value;

/// Why a patch could not be applied. Paths are JSON pointers (RFC 6901); for strategic
/// merge patch they point into the patch document, with list indices of the patch lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The JSON patch body is not an array.
    #[error("json patch must be an array of operations, got {found}")]
    JsonPatchNotArray { found: &'static str },

    /// A JSON patch operation is malformed (unknown op, missing member, bad pointer).
    #[error("json patch operation {index}: {reason}")]
    InvalidOperation { index: usize, reason: String },

    /// A well-formed JSON patch operation could not be applied to the document.
    #[error("json patch operation {index} ({op} {}): {reason}", shown(path))]
    OperationFailed {
        index: usize,
        op: &'static str,
        path: String,
        reason: String,
    },

    /// The strategic merge patch body is not an object.
    #[error("strategic merge patch must be a json object, got {found}")]
    NotAnObject { found: &'static str },

    /// The object being patched is not an object.
    #[error("strategic merge patch target must be a json object, got {found}")]
    TargetNotAnObject { found: &'static str },

    /// An item of a list merged by key lacks the key (`name` of a container, ...).
    /// `document` is `"patch"` or `"target"`: which one holds the bad item.
    #[error("strategic merge patch: {document} list item {path} has no merge key \"{key}\"")]
    MissingMergeKey {
        document: &'static str,
        path: String,
        key: &'static str,
    },

    /// A list merged by key holds something other than objects.
    #[error(
        "strategic merge patch: {document} list item {path} must be an object (merge key \"{key}\"), got {found}"
    )]
    NotAMergeItem {
        document: &'static str,
        path: String,
        key: &'static str,
        found: &'static str,
    },

    /// A value a directive needs to be a list is something else.
    #[error("strategic merge patch: {path} must be a list, got {found}")]
    NotAList { path: String, found: &'static str },

    /// A `$patch`, `$retainKeys`, `$setElementOrder/...` or `$deleteFromPrimitiveList/...`
    /// directive is malformed or contradicts the rest of the patch.
    #[error("strategic merge patch: invalid directive at {path}: {reason}")]
    BadDirective { path: String, reason: String },
}

/// The JSON type name of a value, for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON pointer as shown in messages: the root pointer is empty, which reads badly.
pub(crate) fn shown(pointer: &str) -> &str {
    if pointer.is_empty() { "\"\"" } else { pointer }
}
