//! Task order: phase, wave, kind (Helm's install order, as gitops-engine uses it), name;
//! then namespaces and CRDs pulled ahead of the first task that needs them.

use std::collections::HashMap;

use super::{PlannedTask, TaskAction};
use crate::json::str_at;

/// gitops-engine's `kindOrder` (from Helm's kind sorter); other kinds come after.
pub const KIND_ORDER: [&str; 35] = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

pub(super) fn sort(tasks: &mut Vec<PlannedTask>) {
    tasks.sort_by(|a, b| {
        (
            a.phase,
            a.wave,
            kind_rank(&a.task.resource.kind),
            &a.task.resource.name,
            &a.task.resource.namespace,
        )
            .cmp(&(
                b.phase,
                b.wave,
                kind_rank(&b.task.resource.kind),
                &b.task.resource.name,
                &b.task.resource.namespace,
            ))
    });
    adjust_deps(
        tasks,
        |t| {
            (t.resource.group.is_empty() && t.resource.kind == "Namespace")
                .then(|| t.resource.name.clone())
        },
        |t| (!t.resource.namespace.is_empty()).then(|| t.resource.namespace.clone()),
    );
    adjust_deps(
        tasks,
        |t| {
            (t.resource.group == "apiextensions.k8s.io"
                && t.resource.kind == "CustomResourceDefinition")
                .then(|| {
                    format!(
                        "{}/{}",
                        str_at(&t.object, &["spec", "group"]),
                        str_at(&t.object, &["spec", "names", "kind"])
                    )
                })
        },
        |t| Some(format!("{}/{}", t.resource.group, t.resource.kind)),
    );
}

/// gitops-engine's `adjustDeps`: a dependency found after the first task that refers to it
/// moves in front of that task and takes its phase and wave.
fn adjust_deps(
    tasks: &mut Vec<PlannedTask>,
    is_dep: impl Fn(&super::Task) -> Option<String>,
    refers_to: impl Fn(&super::Task) -> Option<String>,
) {
    let mut first: HashMap<String, usize> = HashMap::new();
    for i in 0..tasks.len() {
        if tasks[i].task.action == TaskAction::Prune {
            continue;
        }
        if let Some(key) = is_dep(&tasks[i].task) {
            if let Some(&index) = first.get(&key) {
                let (phase, wave) = (tasks[index].phase, tasks[index].wave);
                let mut t = tasks.remove(i);
                t.phase = phase;
                t.wave = wave;
                tasks.insert(index, t);
                first
                    .values_mut()
                    .filter(|v| **v >= index)
                    .for_each(|v| *v += 1);
            }
        } else if let Some(key) = refers_to(&tasks[i].task) {
            first.entry(key).or_insert(i);
        }
    }
}
