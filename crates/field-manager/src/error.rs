//! Why an apply was refused: conflicts with other managers, or a configuration that
//! cannot be applied.

use crate::managed::{ManagedFieldsEntry, ManagedOperation};
use crate::path;

/// One field the applier would change although another manager owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    pub operation: ManagedOperation,
    /// The other manager's apiVersion (printed for updaters only).
    pub api_version: String,
    pub subresource: Option<String>,
    /// The field as Kubernetes prints it: `.spec.template.spec.containers[name="nginx"].image`.
    pub field: String,
}

impl Conflict {
    pub(crate) fn new(owner: &ManagedFieldsEntry, path: &[String]) -> Self {
        Conflict {
            manager: owner.manager.clone(),
            operation: owner.operation,
            api_version: owner.api_version.clone(),
            subresource: owner.subresource.clone(),
            field: path::display(path),
        }
    }

    fn owner(&self) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: self.manager.clone(),
            operation: self.operation,
            api_version: self.api_version.clone(),
            time: None,
            subresource: self.subresource.clone(),
            fields: Default::default(),
        }
    }

    /// The message of this conflict's `StatusCause` (type `FieldManagerConflict`, field
    /// `field`): `conflict with "m" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.owner().describe())
    }
}

/// An apply the server refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields the configuration changes, and `force` was not set
    /// (HTTP 409, reason Conflict).
    #[error("{message}")]
    Conflicts {
        conflicts: Vec<Conflict>,
        message: String,
    },
    /// The configuration cannot be applied (HTTP 400 or 422).
    #[error("{message}")]
    Invalid { message: String },
}

impl ApplyError {
    /// Builds the error with the API server's message: one line for a single conflict,
    /// otherwise one group per manager, managers sorted by their identifier.
    pub(crate) fn conflicts(mut conflicts: Vec<Conflict>) -> Self {
        // Stable: each manager's fields stay in path order.
        conflicts.sort_by_key(|c| c.owner().identifier());
        let message = match conflicts.as_slice() {
            [only] => format!(
                "Apply failed with 1 conflict: {}: {}",
                only.cause_message(),
                only.field
            ),
            _ => {
                let mut lines = Vec::new();
                let mut last: Option<String> = None;
                for conflict in &conflicts {
                    let id = conflict.owner().identifier();
                    if last.as_ref() != Some(&id) {
                        lines.push(format!("conflicts with {}:", conflict.owner().describe()));
                        last = Some(id);
                    }
                    lines.push(format!("- {}", conflict.field));
                }
                format!(
                    "Apply failed with {} conflicts: {}",
                    conflicts.len(),
                    lines.join("\n")
                )
            }
        };
        ApplyError::Conflicts { conflicts, message }
    }
}
