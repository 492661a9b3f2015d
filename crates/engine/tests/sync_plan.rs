//! Sync planning: phases, waves, kind order, hooks, pruning, namespaces.

use gitfleet_engine::sync::{
    HookDeletePolicy, SyncPhase, SyncPlan, SyncSettings, TaskAction, plan,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn obj(api: &str, kind: &str, name: &str, annotations: Value) -> Value {
    json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "annotations": annotations}})
}

fn opts() -> SyncSettings<'static> {
    SyncSettings {
        destination_namespace: "prod".into(),
        ..SyncSettings::default()
    }
}

/// `phase/wave action kind/name` per task, in execution order.
fn steps(p: &SyncPlan) -> Vec<String> {
    p.tasks()
        .map(|(phase, wave, t)| {
            format!(
                "{phase:?}/{wave} {:?} {}/{}",
                t.action, t.resource.kind, t.resource.name
            )
        })
        .collect()
}

#[test]
fn kinds_in_helm_order_then_names_then_waves() {
    let desired = vec![
        obj("apps/v1", "Deployment", "b", json!({})),
        obj("apps/v1", "Deployment", "a", json!({})),
        obj("v1", "Service", "z", json!({})),
        obj("example.com/v1", "Widget", "w", json!({})),
        obj(
            "v1",
            "ConfigMap",
            "late",
            json!({"argocd.argoproj.io/sync-wave": "2"}),
        ),
        obj("v1", "ServiceAccount", "sa", json!({})),
        obj(
            "v1",
            "Secret",
            "early",
            json!({"argocd.argoproj.io/sync-wave": "-1"}),
        ),
    ];
    let p = plan("app", desired, vec![], &opts()).unwrap();
    assert_eq!(
        steps(&p),
        [
            "Sync/-1 Apply Secret/early",
            "Sync/0 Apply ServiceAccount/sa",
            "Sync/0 Apply Service/z",
            "Sync/0 Apply Deployment/a",
            "Sync/0 Apply Deployment/b",
            "Sync/0 Apply Widget/w",
            "Sync/2 Apply ConfigMap/late",
        ]
    );
    let dep = &p.phases[0].waves[1].tasks[2];
    assert_eq!(
        dep.object["metadata"]["namespace"], "prod",
        "namespaced objects get the destination"
    );
}

/// As gitops-engine's `syncwaves.Wave`: a sync-wave that is not an integer falls back to
/// the Helm hook weight, and one of those that is not either to 0; the plan says so.
#[test]
fn a_wave_that_is_not_an_integer_reads_as_argo_cd_reads_it() {
    let mut web = obj(
        "apps/v1",
        "Deployment",
        "web",
        json!({"argocd.argoproj.io/sync-wave": "x"}),
    );
    web["metadata"]["namespace"] = json!("default");
    let mut db = obj(
        "apps/v1",
        "StatefulSet",
        "db",
        json!({"argocd.argoproj.io/sync-wave": " 1", "helm.sh/hook-weight": "-1"}),
    );
    db["metadata"]["namespace"] = json!("default");
    let mut cache = obj(
        "apps/v1",
        "Deployment",
        "cache",
        json!({"argocd.argoproj.io/sync-wave": "2"}),
    );
    cache["metadata"]["namespace"] = json!("default");
    let planned = plan("app", vec![web, db, cache], vec![], &opts()).unwrap();
    let waves: Vec<(i32, Vec<&str>)> = planned.phases[0]
        .waves
        .iter()
        .map(|w| {
            (
                w.wave,
                w.tasks.iter().map(|t| t.resource.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        waves,
        [(-1, vec!["db"]), (0, vec!["web"]), (2, vec!["cache"])]
    );
    assert_eq!(
        planned.warnings,
        [
            "apps/Deployment default/web: annotation argocd.argoproj.io/sync-wave \"x\" is not an integer and is ignored, as Argo CD does",
            "apps/StatefulSet default/db: annotation argocd.argoproj.io/sync-wave \" 1\" is not an integer and is ignored, as Argo CD does",
        ]
    );
    let helm = obj(
        "batch/v1",
        "Job",
        "j",
        json!({"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "1.5"}),
    );
    let planned = plan("app", vec![helm], vec![], &opts()).unwrap();
    assert_eq!(planned.phases[0].waves[0].wave, 0);
    assert_eq!(planned.warnings.len(), 1);
}

#[test]
fn hooks_run_in_their_phases_with_delete_policies() {
    let mut gen_hook = obj(
        "batch/v1",
        "Job",
        "",
        json!({"argocd.argoproj.io/hook": "PreSync,PostSync"}),
    );
    gen_hook["metadata"]["generateName"] = json!("migrate-");
    let desired = vec![
        obj("apps/v1", "Deployment", "web", json!({})),
        gen_hook,
        obj(
            "batch/v1",
            "Job",
            "smoke",
            json!({"argocd.argoproj.io/hook": "PostSync", "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}),
        ),
        obj(
            "batch/v1",
            "Job",
            "helm-pre",
            json!({"helm.sh/hook": "pre-upgrade", "helm.sh/hook-weight": "-2", "helm.sh/hook-delete-policy": "hook-succeeded,hook-failed"}),
        ),
        obj(
            "batch/v1",
            "Job",
            "cleanup",
            json!({"argocd.argoproj.io/hook": "SyncFail"}),
        ),
        obj(
            "batch/v1",
            "Job",
            "on-delete",
            json!({"argocd.argoproj.io/hook": "PreDelete"}),
        ),
        obj(
            "v1",
            "ConfigMap",
            "skipped",
            json!({"argocd.argoproj.io/hook": "Skip"}),
        ),
    ];
    let mut live_hook = obj(
        "batch/v1",
        "Job",
        "cleanup",
        json!({"argocd.argoproj.io/hook": "SyncFail"}),
    );
    live_hook["metadata"]["namespace"] = json!("prod");
    let o = SyncSettings {
        revision: "abcdef1234".into(),
        started_at: 1700000000,
        ..opts()
    };
    let p = plan("app", desired, vec![live_hook], &o).unwrap();
    assert_eq!(
        steps(&p),
        [
            "PreSync/-2 CreateHook Job/helm-pre",
            "PreSync/0 CreateHook Job/migrate-abcdef1-presync-1700000000",
            "Sync/0 Apply Deployment/web",
            "PostSync/0 CreateHook Job/migrate-abcdef1-postsync-1700000000",
            "PostSync/0 CreateHook Job/smoke",
            "SyncFail/0 DeleteHook Job/cleanup",
            "SyncFail/0 CreateHook Job/cleanup",
        ]
    );
    let policies: Vec<_> = p
        .tasks()
        .map(|(_, _, t)| t.hook_delete_policy.clone())
        .collect();
    use HookDeletePolicy::*;
    assert_eq!(policies[0], [HookSucceeded, HookFailed]);
    assert_eq!(policies[1], [BeforeHookCreation]);
    assert_eq!(policies[2], Vec::<HookDeletePolicy>::new());
    assert_eq!(policies[4], [HookSucceeded]);
    assert!(p.requires_pruning.is_empty(), "live hooks are never pruned");
}

fn live(kind: &str, name: &str, annotations: Value) -> Value {
    let mut o = obj(
        if kind == "Deployment" {
            "apps/v1"
        } else {
            "v1"
        },
        kind,
        name,
        annotations,
    );
    o["metadata"]["namespace"] = json!("prod");
    o
}

#[test]
fn pruning_reverse_waves_prune_last_and_opt_outs() {
    let desired = vec![obj(
        "apps/v1",
        "Deployment",
        "web",
        json!({"argocd.argoproj.io/sync-wave": "1"}),
    )];
    let lives = vec![
        live("Deployment", "web", json!({})),
        live(
            "ConfigMap",
            "w-neg",
            json!({"argocd.argoproj.io/sync-wave": "-1"}),
        ),
        live(
            "ConfigMap",
            "w-five",
            json!({"argocd.argoproj.io/sync-wave": "5"}),
        ),
        live("Secret", "w-zero", json!({})),
        live(
            "ConfigMap",
            "keep",
            json!({"argocd.argoproj.io/sync-options": "Prune=false"}),
        ),
        live(
            "ConfigMap",
            "keep2",
            json!({"argocd.argoproj.io/sync-options": "Delete=false"}),
        ),
        live(
            "ConfigMap",
            "last",
            json!({"argocd.argoproj.io/sync-options": "PruneLast=true"}),
        ),
        live(
            "ConfigMap",
            "skip",
            json!({"argocd.argoproj.io/hook": "Skip"}),
        ),
    ];
    let no_prune = plan("app", desired.clone(), lives.clone(), &opts()).unwrap();
    assert_eq!(steps(&no_prune), ["Sync/1 Apply Deployment/web"]);
    let names: Vec<_> = no_prune
        .requires_pruning
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["w-neg", "w-five", "w-zero", "keep", "keep2", "last"]
    );

    let p = plan(
        "app",
        desired.clone(),
        lives.clone(),
        &SyncSettings {
            prune: true,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        steps(&p),
        [
            "Sync/-1 Prune ConfigMap/w-five",
            "Sync/0 Prune Secret/w-zero",
            "Sync/1 Apply Deployment/web",
            "Sync/5 Prune ConfigMap/w-neg",
            "Sync/6 Prune ConfigMap/last",
        ]
    );
    let kept: Vec<_> = p.prune_disabled.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(kept, ["keep", "keep2"]);

    let last = plan(
        "app",
        desired,
        lives,
        &SyncSettings {
            prune: true,
            options: gitfleet_model::SyncOptions(vec!["PruneLast=true".into()]),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        steps(&last),
        [
            "Sync/1 Apply Deployment/web",
            "Sync/6 Prune Secret/w-zero",
            "Sync/6 Prune ConfigMap/last",
            "Sync/6 Prune ConfigMap/w-five",
            "Sync/6 Prune ConfigMap/w-neg",
        ]
    );
}

#[test]
fn create_namespace_goes_first_even_before_presync_hooks() {
    let desired = vec![
        obj("apps/v1", "Deployment", "web", json!({})),
        obj(
            "batch/v1",
            "Job",
            "pre",
            json!({"argocd.argoproj.io/hook": "PreSync", "argocd.argoproj.io/sync-wave": "-3"}),
        ),
        obj(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "reader",
            json!({"argocd.argoproj.io/sync-wave": "-9"}),
        ),
    ];
    let o = SyncSettings {
        options: gitfleet_model::SyncOptions(vec!["CreateNamespace=true".into()]),
        namespace_exists: false,
        ..opts()
    };
    let p = plan("app", desired.clone(), vec![], &o).unwrap();
    assert_eq!(
        steps(&p),
        [
            "PreSync/-3 Apply Namespace/prod",
            "PreSync/-3 CreateHook Job/pre",
            "Sync/-9 Apply ClusterRole/reader",
            "Sync/0 Apply Deployment/web",
        ]
    );
    assert_eq!(
        p.phases[2 - 1].waves[0].tasks[0].object["metadata"].get("namespace"),
        None,
        "cluster-scoped keeps no namespace"
    );
    let exists = plan(
        "app",
        desired,
        vec![],
        &SyncSettings {
            options: gitfleet_model::SyncOptions(vec!["CreateNamespace=true".into()]),
            ..opts()
        },
    )
    .unwrap();
    assert!(!steps(&exists).iter().any(|s| s.contains("Namespace")));
}

#[test]
fn namespaces_and_crds_move_ahead_of_their_users() {
    let mut in_ns = obj(
        "v1",
        "ConfigMap",
        "c",
        json!({"argocd.argoproj.io/sync-wave": "-1"}),
    );
    in_ns["metadata"]["namespace"] = json!("team");
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com", "annotations": {"argocd.argoproj.io/sync-wave": "3"}},
        "spec": {"group": "example.com", "names": {"kind": "Widget"}}});
    let desired = vec![
        obj(
            "v1",
            "Namespace",
            "team",
            json!({"argocd.argoproj.io/sync-wave": "2"}),
        ),
        in_ns,
        obj("example.com/v1", "Widget", "w", json!({})),
        crd,
    ];
    let p = plan("app", desired, vec![], &opts()).unwrap();
    assert_eq!(
        steps(&p),
        [
            "Sync/-1 Apply Namespace/team",
            "Sync/-1 Apply ConfigMap/c",
            "Sync/0 Apply CustomResourceDefinition/widgets.example.com",
            "Sync/0 Apply Widget/w",
        ]
    );
}

#[test]
fn selective_sync_skips_hooks_and_unselected() {
    let desired = vec![
        obj("apps/v1", "Deployment", "web", json!({})),
        obj("apps/v1", "Deployment", "api", json!({})),
        obj(
            "batch/v1",
            "Job",
            "pre",
            json!({"argocd.argoproj.io/hook": "PreSync"}),
        ),
    ];
    let lives = vec![
        live("ConfigMap", "old", json!({})),
        live("ConfigMap", "other", json!({})),
    ];
    let pick = |kind: &str, name: &str| gitfleet_engine::ResourceRef {
        group: if kind == "Deployment" {
            "apps".into()
        } else {
            String::new()
        },
        kind: kind.into(),
        namespace: "prod".into(),
        name: name.into(),
        ..Default::default()
    };
    let o = SyncSettings {
        prune: true,
        resources: Some(vec![pick("Deployment", "web"), pick("ConfigMap", "old")]),
        ..opts()
    };
    let p = plan("app", desired, lives, &o).unwrap();
    assert_eq!(
        steps(&p),
        ["Sync/0 Prune ConfigMap/old", "Sync/0 Apply Deployment/web"]
    );
}

proptest! {
    /// Apply tasks come out ordered by (wave, kind rank, name), every desired resource once.
    #[test]
    fn waves_are_ordered_and_complete(specs in prop::collection::btree_map("[a-z]{1,5}", (-3i32..4, 0usize..5), 0..12)) {
        let kinds = [("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service"), ("example.com/v1", "Widget"), ("v1", "Secret")];
        let desired: Vec<Value> = specs
            .iter()
            .map(|(name, (wave, k))| obj(kinds[*k].0, kinds[*k].1, name, json!({"argocd.argoproj.io/sync-wave": wave.to_string()})))
            .collect();
        let p = plan("app", desired, vec![], &opts()).unwrap();
        let got: Vec<(i32, usize, String)> = p
            .tasks()
            .map(|(phase, wave, t)| {
                assert_eq!(phase, SyncPhase::Sync);
                assert_eq!(t.action, TaskAction::Apply);
                let rank = gitfleet_engine::sync::KIND_ORDER.iter().position(|k| *k == t.resource.kind).unwrap_or(99);
                (wave, rank, t.resource.name.clone())
            })
            .collect();
        let mut sorted = got.clone();
        sorted.sort();
        prop_assert_eq!(&got, &sorted);
        prop_assert_eq!(got.len(), specs.len());
        for w in &p.phases[..] { for pair in w.waves.windows(2) { prop_assert!(pair[0].wave < pair[1].wave); } }
    }
}

/// One generated desired object: its kind (index into [`KINDS`]), wave, and what it is.
#[derive(Debug, Clone)]
enum Role {
    Resource,
    /// A hook in these phases, with `BeforeHookCreation` or not.
    Hook(Vec<&'static str>, bool),
    Skip,
}

const KINDS: [(&str, &str); 6] = [
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("example.com/v1", "Widget"),
    ("v1", "Secret"),
    ("batch/v1", "Job"),
];

fn role() -> impl Strategy<Value = Role> {
    let phases = prop::sample::subsequence(vec!["PreSync", "Sync", "PostSync", "SyncFail"], 1..=2);
    prop_oneof![
        6 => Just(Role::Resource),
        3 => (phases, any::<bool>()).prop_map(|(p, before)| Role::Hook(p, before)),
        1 => Just(Role::Skip),
    ]
}

fn phase_of(name: &str) -> SyncPhase {
    match name {
        "PreSync" => SyncPhase::PreSync,
        "Sync" => SyncPhase::Sync,
        "PostSync" => SyncPhase::PostSync,
        _ => SyncPhase::SyncFail,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For random sets of resources with waves, hooks, skips and live leftovers with prune
    /// options, the plan keeps every ordering rule: phases in order, waves rising, kind
    /// order inside a wave, prunes then hook deletions then creations inside a wave, every
    /// resource applied once and every hook created once per phase, live leftovers pruned
    /// (or listed as not pruned) exactly once, in reverse wave order, PruneLast after the
    /// last Sync wave.
    #[test]
    fn plans_keep_every_ordering_rule(
        desired_specs in prop::collection::btree_map("[a-z]{1,4}", (0usize..6, -2i32..3, role()), 0..10),
        live_specs in prop::collection::btree_map("[a-z]{1,4}", (0usize..3, -2i32..3, 0u8..4), 0..6),
        prune in any::<bool>(),
        prune_last_app in any::<bool>(),
    ) {
        let desired: Vec<Value> = desired_specs
            .iter()
            .map(|(name, (k, wave, role))| {
                let mut annotations = json!({"argocd.argoproj.io/sync-wave": wave.to_string()});
                match role {
                    Role::Resource => {}
                    Role::Hook(phases, before) => {
                        annotations["argocd.argoproj.io/hook"] = json!(phases.join(","));
                        let policy = if *before { "BeforeHookCreation" } else { "HookSucceeded" };
                        annotations["argocd.argoproj.io/hook-delete-policy"] = json!(policy);
                    }
                    Role::Skip => annotations["argocd.argoproj.io/hook"] = json!("Skip"),
                }
                let mut o = obj(KINDS[*k].0, KINDS[*k].1, name, annotations);
                o["metadata"]["namespace"] = json!("prod");
                o
            })
            .collect();
        // Live leftovers under names no desired object has (prefix `old-`), and the live
        // copies of BeforeHookCreation hooks, which must be deleted before re-creation.
        let mut live_objects: Vec<Value> = live_specs
            .iter()
            .map(|(name, (k, wave, opt))| {
                let mut annotations = json!({"argocd.argoproj.io/sync-wave": wave.to_string()});
                match opt {
                    1 => annotations["argocd.argoproj.io/sync-options"] = json!("Prune=false"),
                    2 => annotations["argocd.argoproj.io/sync-options"] = json!("PruneLast=true"),
                    _ => {}
                }
                live(KINDS[*k].1, &format!("old-{name}"), annotations)
            })
            .collect();
        for (name, (k, _, role)) in &desired_specs {
            if let Role::Hook(_, true) = role {
                let mut o = obj(KINDS[*k].0, KINDS[*k].1, name, json!({"argocd.argoproj.io/hook": "Sync"}));
                o["metadata"]["namespace"] = json!("prod");
                live_objects.push(o);
            }
        }
        let mut settings = opts();
        settings.prune = prune;
        if prune_last_app {
            settings.options = gitfleet_model::SyncOptions::from_annotation("PruneLast=true");
        }
        let p = plan("app", desired, live_objects, &settings).unwrap();

        // Phases in order, each once; waves strictly rising inside each.
        for pair in p.phases.windows(2) {
            prop_assert!(pair[0].phase < pair[1].phase, "{:?}", steps(&p));
        }
        for phase in &p.phases {
            for pair in phase.waves.windows(2) {
                prop_assert!(pair[0].wave < pair[1].wave, "{:?}", steps(&p));
            }
            for wave in &phase.waves {
                // Prunes, then hook deletions, then applies and creations.
                let order: Vec<u8> = wave.tasks.iter().map(|t| match t.action {
                    TaskAction::Prune => 0,
                    TaskAction::DeleteHook => 1,
                    _ => 2,
                }).collect();
                prop_assert!(order.windows(2).all(|w| w[0] <= w[1]), "{:?}", steps(&p));
                // Kind order among the applies of a wave.
                let ranks: Vec<(usize, &str)> = wave.tasks.iter()
                    .filter(|t| t.action == TaskAction::Apply)
                    .map(|t| (
                        gitfleet_engine::sync::KIND_ORDER.iter().position(|k| *k == t.resource.kind).unwrap_or(99),
                        t.resource.name.as_str(),
                    ))
                    .collect();
                prop_assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{:?}", steps(&p));
            }
        }

        let tasks: Vec<(SyncPhase, i32, TaskAction, String)> = p
            .tasks()
            .map(|(phase, wave, t)| (phase, wave, t.action, t.resource.name.clone()))
            .collect();
        let count = |action: TaskAction, name: &str| tasks.iter().filter(|t| t.2 == action && t.3 == name).count();
        for (name, (_, wave, role)) in &desired_specs {
            match role {
                Role::Resource => {
                    prop_assert_eq!(count(TaskAction::Apply, name), 1, "{} in {:?}", name, steps(&p));
                    let t = tasks.iter().find(|t| t.2 == TaskAction::Apply && &t.3 == name).unwrap();
                    prop_assert_eq!((t.0, t.1), (SyncPhase::Sync, *wave));
                }
                Role::Skip => {
                    prop_assert_eq!(count(TaskAction::Apply, name), 0);
                    prop_assert_eq!(count(TaskAction::CreateHook, name), 0);
                }
                Role::Hook(phases, before) => {
                    prop_assert_eq!(count(TaskAction::Apply, name), 0);
                    let mut created: Vec<SyncPhase> = tasks.iter()
                        .filter(|t| t.2 == TaskAction::CreateHook && &t.3 == name)
                        .map(|t| t.0)
                        .collect();
                    created.sort();
                    let mut wanted: Vec<SyncPhase> = phases.iter().map(|p| phase_of(p)).collect();
                    wanted.sort();
                    prop_assert_eq!(&created, &wanted, "{} in {:?}", name, steps(&p));
                    // Its live copy is deleted right before each creation, in the same wave.
                    if *before {
                        for (i, t) in tasks.iter().enumerate().filter(|(_, t)| t.2 == TaskAction::CreateHook && &t.3 == name) {
                            prop_assert!(tasks[..i].iter().any(|d| d.2 == TaskAction::DeleteHook && &d.3 == name && d.0 == t.0 && d.1 == t.1), "{:?}", steps(&p));
                        }
                    } else {
                        prop_assert_eq!(count(TaskAction::DeleteHook, name), 0);
                    }
                }
            }
        }

        // Live leftovers: pruned once, or listed as not pruned, never both.
        let last_sync_wave = tasks.iter()
            .filter(|t| t.0 == SyncPhase::Sync && t.2 != TaskAction::Prune)
            .map(|t| t.1)
            .max();
        let mut pruned_waves: Vec<(i32, i32)> = Vec::new();
        for (name, (_, wave, opt)) in &live_specs {
            let name = format!("old-{name}");
            let pruned = count(TaskAction::Prune, &name);
            let skipped = p.requires_pruning.iter().chain(&p.prune_disabled).filter(|r| r.name == name).count();
            prop_assert_eq!(pruned + skipped, 1, "{} in {:?}", name, steps(&p));
            prop_assert_eq!(pruned == 1, prune && *opt != 1, "{}", name);
            if pruned == 1 {
                let t = tasks.iter().find(|t| t.2 == TaskAction::Prune && t.3 == name).unwrap();
                prop_assert_eq!(t.0, SyncPhase::Sync);
                if prune_last_app || *opt == 2 {
                    prop_assert!(last_sync_wave.is_none_or(|w| t.1 > w), "{} in {:?}", name, steps(&p));
                } else {
                    pruned_waves.push((*wave, t.1));
                }
            }
        }
        // Without PruneLast, prune waves run in reverse: a higher declared wave prunes no later.
        for a in &pruned_waves {
            for b in &pruned_waves {
                if a.0 < b.0 {
                    prop_assert!(a.1 >= b.1, "{:?} vs {:?} in {:?}", a, b, steps(&p));
                }
            }
        }
    }
}

/// The app's `Prune` option is the default of every resource's; the resource's own wins
/// (Argo CD's `defaultPruneOption`).
#[test]
fn the_apps_prune_option_is_each_resources_default() {
    use gitfleet_engine::sync::{deletion_approved, requires_confirmation};
    use gitfleet_model::SyncOptions;

    let lives = vec![
        live("ConfigMap", "plain", json!({})),
        live(
            "ConfigMap",
            "allowed",
            json!({"argocd.argoproj.io/sync-options": "Prune=true"}),
        ),
    ];
    let p = plan(
        "app",
        Vec::new(),
        lives.clone(),
        &SyncSettings {
            prune: true,
            options: SyncOptions(vec!["Prune=false".into()]),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(steps(&p), ["Sync/0 Prune ConfigMap/allowed"]);
    let kept: Vec<_> = p.prune_disabled.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(kept, ["plain"]);

    // Confirmation: the resource's Prune option, else the app's; Delete only on deletion.
    let app_confirms = SyncOptions(vec!["Prune=confirm".into()]);
    assert!(requires_confirmation(&lives[0], &app_confirms, false));
    assert!(!requires_confirmation(&lives[1], &app_confirms, false));
    let confirm_delete = live(
        "Namespace",
        "critical",
        json!({"argocd.argoproj.io/sync-options": "Delete=confirm"}),
    );
    let none = SyncOptions::default();
    assert!(!requires_confirmation(&confirm_delete, &none, false));
    assert!(requires_confirmation(&confirm_delete, &none, true));
    assert!(requires_confirmation(
        &lives[0],
        &SyncOptions(vec!["Delete=confirm".into()]),
        true
    ));

    // Approved at or after the operation's start (RFC 3339, whole seconds).
    let app = |at: &str| json!({"metadata": {"annotations": {"argocd.argoproj.io/deletion-approved": at}}});
    let started = 1_767_225_600; // 2026-01-01T00:00:00Z
    assert!(deletion_approved(&app("2026-01-01T00:00:00Z"), started));
    assert!(deletion_approved(&app("2026-01-01T00:00:01Z"), started));
    assert!(!deletion_approved(&app("2025-12-31T23:59:59Z"), started));
    assert!(!deletion_approved(&app("yesterday"), started));
    assert!(!deletion_approved(&json!({}), started));
}
