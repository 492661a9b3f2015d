//! Validation of Applications: everything Argo CD would refuse, each problem with its
//! field path.

use super::{Application, ApplicationSource, ApplicationSpec, Destination, SyncPolicy};
use crate::validate::{Problems, ValidationErrors};

impl Application {
    /// Checks everything Argo CD would refuse, and returns every problem at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.object_name("metadata.name", &self.metadata.name);
        p.namespace("metadata.namespace", &self.metadata.namespace);
        validate_spec(&mut p, "spec", &self.spec);
        p.finish()
    }
}

/// Validates an Application spec at `prefix` (`spec`, or `spec.template.spec`).
pub(crate) fn validate_spec(p: &mut Problems, prefix: &str, spec: &ApplicationSpec) {
    if spec.project.is_empty() {
        p.push(format!("{prefix}.project"), "required");
    }
    if !spec.sources.is_empty() {
        for (i, source) in spec.sources.iter().enumerate() {
            validate_source(p, &format!("{prefix}.sources[{i}]"), source);
        }
    } else if let Some(source) = &spec.source {
        validate_source(p, &format!("{prefix}.source"), source);
    } else {
        p.push(
            format!("{prefix}.source"),
            "one of source or sources is required",
        );
    }
    validate_destination(p, &format!("{prefix}.destination"), &spec.destination);
    if let Some(policy) = &spec.sync_policy {
        validate_sync_policy(p, &format!("{prefix}.syncPolicy"), policy);
    }
    for (i, ignore) in spec.ignore_differences.iter().enumerate() {
        if ignore.kind.is_empty() {
            p.push(format!("{prefix}.ignoreDifferences[{i}].kind"), "required");
        }
    }
    if spec.revision_history_limit.is_some_and(|n| n < 0) {
        p.push(
            format!("{prefix}.revisionHistoryLimit"),
            "must not be negative",
        );
    }
}

fn validate_source(p: &mut Problems, path: &str, source: &ApplicationSource) {
    p.repo_url(&format!("{path}.repoURL"), &source.repo_url);
    let types = source.explicit_types();
    if types.len() > 1 {
        p.push(
            path,
            format!(
                "multiple source types set ({}); at most one of helm, kustomize, directory, plugin is allowed",
                types.join(", ")
            ),
        );
    }
}

fn validate_destination(p: &mut Problems, path: &str, dest: &Destination) {
    match (dest.server.is_empty(), dest.name.is_empty()) {
        (true, true) => p.push(path, "either server or name is required"),
        (false, false) => p.push(path, "server and name are mutually exclusive"),
        _ => {}
    }
    let server = &dest.server;
    if !server.is_empty() {
        let host = server
            .strip_prefix("https://")
            .or_else(|| server.strip_prefix("http://"))
            .unwrap_or("");
        if host.is_empty() || server.chars().any(char::is_whitespace) {
            p.push(
                format!("{path}.server"),
                format!("{server:?} is not a valid cluster URL (expected https:// or http://)"),
            );
        }
    }
    p.namespace(&format!("{path}.namespace"), &dest.namespace);
}

fn validate_sync_policy(p: &mut Problems, path: &str, policy: &SyncPolicy) {
    for (i, opt) in policy.sync_options.0.iter().enumerate() {
        let ok = opt
            .split_once('=')
            .is_some_and(|(k, _)| !k.trim().is_empty());
        if !ok {
            p.push(
                format!("{path}.syncOptions[{i}]"),
                format!("{opt:?} must be Key=Value"),
            );
        }
    }
    if let Some(backoff) = policy.retry.as_ref().and_then(|r| r.backoff.as_ref()) {
        p.duration(&format!("{path}.retry.backoff.duration"), &backoff.duration);
        p.duration(
            &format!("{path}.retry.backoff.maxDuration"),
            &backoff.max_duration,
        );
        if backoff.factor.is_some_and(|f| f < 1) {
            p.push(format!("{path}.retry.backoff.factor"), "must be at least 1");
        }
    }
}
