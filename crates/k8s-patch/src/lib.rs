//! Kubernetes patch semantics as pure functions on `serde_json::Value`: JSON merge patch
//! (RFC 7386), JSON patch (RFC 6902) and strategic merge patch, plus the list schema they
//! share with server-side apply, and what a client-side `kubectl apply` makes of an object.

pub mod error;
pub mod json;
pub mod merge;
pub mod schema;
pub mod strategic;
pub mod three_way;

pub use error::PatchError;
pub use json::apply_json_patch;
pub use merge::{apply_merge_patch, create_merge_patch};
pub use strategic::apply_strategic_merge_patch;
