//! Kubernetes patch semantics as pure functions on `serde_json::Value`: JSON merge patch
//! (RFC 7386), JSON patch (RFC 6902) and strategic merge patch, plus the list schema they
//! share with server-side apply.

pub mod schema;
