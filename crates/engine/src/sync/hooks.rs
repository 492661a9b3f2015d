//! What a manifest's annotations say about syncing it: hook types (Argo CD's, else Helm's as
//! Argo CD maps them), hook delete policies, the sync wave and sync options.

use gitfleet_model::SyncOptions;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SyncPhase;
use crate::json::{annotation, annotation_list};
use crate::resource::ResourceRef;

pub const HOOK: &str = "argocd.argoproj.io/hook";
pub const HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
pub const SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
pub const HELM_HOOK: &str = "helm.sh/hook";
pub const HELM_HOOK_WEIGHT: &str = "helm.sh/hook-weight";
pub const HELM_HOOK_DELETE_POLICY: &str = "helm.sh/hook-delete-policy";

/// When a hook is deleted (`argocd.argoproj.io/hook-delete-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookDeletePolicy {
    HookSucceeded,
    HookFailed,
    BeforeHookCreation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookType {
    Phase(SyncPhase),
    Skip,
}

/// Argo CD's hook types; Helm's only when the Argo CD annotation names none.
pub(crate) fn hook_types(obj: &Value) -> Vec<HookType> {
    let argo: Vec<HookType> = annotation_list(obj, HOOK)
        .into_iter()
        .filter_map(|t| {
            Some(match t {
                "PreSync" => HookType::Phase(SyncPhase::PreSync),
                "Sync" => HookType::Phase(SyncPhase::Sync),
                "PostSync" => HookType::Phase(SyncPhase::PostSync),
                "SyncFail" => HookType::Phase(SyncPhase::SyncFail),
                "Skip" => HookType::Skip,
                // App deletion hooks: planned only for a cascade delete.
                "PreDelete" => HookType::Phase(SyncPhase::PreDelete),
                "PostDelete" => HookType::Phase(SyncPhase::PostDelete),
                _ => return None,
            })
        })
        .collect();
    if !argo.is_empty() {
        return argo;
    }
    annotation_list(obj, HELM_HOOK)
        .into_iter()
        .filter_map(|t| match t {
            "pre-install" | "pre-upgrade" => Some(HookType::Phase(SyncPhase::PreSync)),
            "post-install" | "post-upgrade" => Some(HookType::Phase(SyncPhase::PostSync)),
            _ => None,
        })
        .collect()
}

/// `Skip` alone: the resource is neither applied nor pruned.
pub(crate) fn is_skipped(obj: &Value) -> bool {
    hook_types(obj) == [HookType::Skip]
}

/// A hook runs in its phases instead of being applied as a resource. Argo CD's annotation
/// makes one even with no phase it knows (PreDelete alone): such hooks never run in a sync.
pub fn is_hook(obj: &Value) -> bool {
    if annotation(obj, HOOK).is_some() {
        return !is_skipped(obj);
    }
    !hook_types(obj).is_empty()
}

/// A PreDelete or PostDelete hook (Argo CD's annotation only; Helm's delete hooks are not
/// mapped, as in Argo CD).
pub fn is_deletion_hook(obj: &Value) -> bool {
    hook_types(obj)
        .iter()
        .any(|t| matches!(t, HookType::Phase(p) if p.is_deletion()))
}

/// The phases a hook runs in, in phase order (the deletion phases among them).
pub(crate) fn hook_phases(obj: &Value) -> Vec<SyncPhase> {
    let mut phases: Vec<SyncPhase> = hook_types(obj)
        .into_iter()
        .filter_map(|t| match t {
            HookType::Phase(p) => Some(p),
            HookType::Skip => None,
        })
        .collect();
    phases.sort();
    phases.dedup();
    phases
}

pub(crate) fn delete_policies(obj: &Value) -> Vec<HookDeletePolicy> {
    let argo: Vec<HookDeletePolicy> = annotation_list(obj, HOOK_DELETE_POLICY)
        .into_iter()
        .filter_map(|p| match p {
            "HookSucceeded" => Some(HookDeletePolicy::HookSucceeded),
            "HookFailed" => Some(HookDeletePolicy::HookFailed),
            "BeforeHookCreation" => Some(HookDeletePolicy::BeforeHookCreation),
            _ => None,
        })
        .collect();
    let policies = if argo.is_empty() {
        annotation_list(obj, HELM_HOOK_DELETE_POLICY)
            .into_iter()
            .filter_map(|p| match p {
                "hook-succeeded" => Some(HookDeletePolicy::HookSucceeded),
                "hook-failed" => Some(HookDeletePolicy::HookFailed),
                "before-hook-creation" => Some(HookDeletePolicy::BeforeHookCreation),
                _ => None,
            })
            .collect()
    } else {
        argo
    };
    if policies.is_empty() {
        vec![HookDeletePolicy::BeforeHookCreation]
    } else {
        policies
    }
}

/// `argocd.argoproj.io/sync-wave`, else `helm.sh/hook-weight`, else 0, as gitops-engine's
/// `syncwaves.Wave` reads them: a value that is not an integer (Go's `Atoi`: no spaces)
/// counts as absent. Each such value is described in `warnings`, so the operation can say
/// what was read as what.
pub(crate) fn wave(obj: &Value, resource: &ResourceRef, warnings: &mut Vec<String>) -> i32 {
    for key in [SYNC_WAVE, HELM_HOOK_WEIGHT] {
        if let Some(text) = annotation(obj, key) {
            match text.parse() {
                Ok(wave) => return wave,
                Err(_) => warnings.push(format!(
                    "{resource}: annotation {key} {text:?} is not an integer and is ignored, as Argo CD does"
                )),
            }
        }
    }
    0
}

/// The resource's `argocd.argoproj.io/sync-options` annotation.
pub fn options(obj: &Value) -> SyncOptions {
    SyncOptions::from_annotation(annotation(obj, SYNC_OPTIONS).unwrap_or(""))
}
