//! Kubernetes server-side apply field ownership on JSON objects: who owns which field
//! (`metadata.managedFields`), the merge of an applied configuration with conflict
//! detection, and the ownership changes of ordinary writes. Pure: the caller supplies
//! the clock and does all I/O.

mod apply;
mod error;
mod fields;
pub mod fieldset;
pub mod managed;
mod merge;
pub mod path;
mod update;

pub use apply::{BEFORE_FIRST_APPLY, applied_fields, apply};
pub use error::{ApplyError, Conflict};
pub use fieldset::FieldSet;
pub use managed::{ManagedFieldsEntry, ManagedOperation};
pub use update::record_update;

/// What the written object is, as far as field ownership cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo<'a> {
    pub kind: &'a str,
    /// The apiVersion recorded in the writer's managedFields entry (`apps/v1`).
    pub api_version: &'a str,
    /// Built-in kinds merge lists by their Kubernetes list type; custom resources treat
    /// every list as atomic.
    pub builtin: bool,
    /// Whether `status` belongs to a status subresource, so main-resource writes neither
    /// change nor own it.
    pub has_status_subresource: bool,
    /// `Some("status")` for writes to the status subresource, which own only `status`.
    pub subresource: Option<&'a str>,
}

/// Who writes, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation<'a> {
    /// The `fieldManager` of the request.
    pub manager: &'a str,
    /// RFC 3339 UTC time stored in the manager's entry (`2026-11-29T20:00:00Z`).
    pub time: &'a str,
}
