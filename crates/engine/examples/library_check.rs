//! Runs a script library's own tests: every `<group>/<kind>/health_test.yaml` under DIR
//! (Argo CD's `resource_customizations` layout: `tests: [{inputPath, healthStatus:
//! {status, message}}]`), each input judged as the diff worker judges it (the library's
//! script found by the object's group and kind, exact before wildcard), reporting every
//! verdict that differs; and every `<group>/<kind>/actions/action_test.yaml`
//! (`discoveryTests`: each action discovered must be one the test lists; `actionTests`:
//! each object an action returns must hold the expected one's fields, after Argo CD's
//! test normalizer has fixed the times in both, or its error must say the expected
//! message), as Argo CD's `custom_actions_test.go` checks them.
//! `cargo run --release -p gitfleet-engine --example library_check -- DIR`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gitfleet_engine::health::Checks;
use serde_json::Value;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: library_check DIR"));
    let library = gitfleet_lua::Library::load(&dir).expect("the library reads");
    let (checks, errors) = Checks::from_settings(&BTreeMap::new(), &library);
    assert!(errors.is_empty(), "{errors:?}");
    let (mut passed, mut failed, mut unread) = (0, 0, 0);
    let start = std::time::Instant::now();
    for test_file in files(&dir)
        .into_iter()
        .filter(|p| p.ends_with("health_test.yaml"))
    {
        let folder = test_file.parent().expect("a folder");
        let tests: Value = read_yaml(&test_file).expect("health_test.yaml reads");
        for case in tests["tests"].as_array().into_iter().flatten() {
            let Some(input) = case["inputPath"].as_str().map(|p| folder.join(p)) else {
                continue;
            };
            let Some(obj) = read_yaml(&input) else {
                unread += 1;
                println!("UNREAD {}", input.display());
                continue;
            };
            let want = (
                case["healthStatus"]["status"].as_str().unwrap_or_default(),
                case["healthStatus"]["message"].as_str().unwrap_or_default(),
            );
            let got = checks.assess(&obj);
            match &got {
                Some(h) if (h.status.as_str(), h.message.as_str()) == want => passed += 1,
                _ => {
                    failed += 1;
                    println!("FAIL {}: want {want:?}, got {got:?}", input.display());
                }
            }
        }
    }
    println!(
        "{} health scripts; {passed} cases pass, {failed} fail, {unread} inputs unread, in {:?}",
        library.health_scripts().count(),
        start.elapsed()
    );
    let start = std::time::Instant::now();
    let (mut passed, mut failed) = (0, 0);
    for test_file in files(&dir)
        .into_iter()
        .filter(|p| p.ends_with("action_test.yaml"))
    {
        let folder = test_file.parent().expect("a folder");
        let kind_dir = folder.parent().expect("<group>/<kind>");
        let key = format!(
            "{}/{}",
            name(kind_dir.parent().expect("<group>")),
            name(kind_dir)
        );
        let Some(scripts) = library.actions(&key) else {
            println!("NO ACTIONS for {key}");
            failed += 1;
            continue;
        };
        let tests: Value = read_yaml(&test_file).expect("action_test.yaml reads");
        let limits = gitfleet_lua::Limits::default();
        for case in tests["discoveryTests"].as_array().into_iter().flatten() {
            let input = folder.join(case["inputPath"].as_str().unwrap_or_default());
            let obj = read_yaml(&input).expect("input reads");
            let want: Vec<Value> = case["result"].as_array().cloned().unwrap_or_default();
            let got = scripts
                .discovery
                .as_ref()
                .expect("a discovery.lua")
                .discover_actions(&obj, &limits);
            let ok = got.as_ref().is_ok_and(|got| {
                got.iter().all(|a| {
                    want.iter().any(|w| {
                        w["name"] == a.name.as_str()
                            && w["disabled"].as_bool().unwrap_or(false) == a.disabled
                            && w["iconClass"].as_str().unwrap_or_default() == a.icon_class
                            && w["displayName"].as_str().unwrap_or_default() == a.display_name
                            && params(w) == a.params
                    })
                })
            });
            if ok {
                passed += 1;
            } else {
                failed += 1;
                println!("FAIL discovery {}: got {got:?}", input.display());
            }
        }
        for case in tests["actionTests"].as_array().into_iter().flatten() {
            let action = case["action"].as_str().unwrap_or_default();
            let input = folder.join(case["inputPath"].as_str().unwrap_or_default());
            let obj = read_yaml(&input).expect("input reads");
            let parameters: BTreeMap<String, String> = case["parameters"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let Some(script) = scripts.actions.get(action) else {
                failed += 1;
                println!("FAIL {key} has no action {action}");
                continue;
            };
            let got = script.run_action(&obj, &parameters, &limits);
            let verdict = match (&got, case["expectedErrorMessage"].as_str()) {
                (Err(e), Some(want)) => e.to_string().contains(want),
                (Ok(_), Some(_)) | (Err(_), None) => false,
                (Ok(impacted), None) => {
                    let path = folder.join(case["expectedOutputPath"].as_str().unwrap_or_default());
                    let expected = expected_objects(&path);
                    impacted.iter().all(|i| {
                        let mut result = i.object.clone();
                        let Some(mut want) = expected
                            .iter()
                            .find(|e| same_object(e, &result, &obj))
                            .cloned()
                        else {
                            return false;
                        };
                        // Names derived from the source and a time are not the test's.
                        result["metadata"]["name"] = want["metadata"]["name"].clone();
                        normalize(&mut want);
                        normalize(&mut result);
                        contains(&result, &want)
                    })
                }
            };
            if verdict {
                passed += 1;
            } else {
                failed += 1;
                println!("FAIL action {action} on {}: got {got:?}", input.display());
            }
        }
    }
    println!(
        "action tests: {passed} cases pass, {failed} fail, in {:?}",
        start.elapsed()
    );
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn params(action: &Value) -> Vec<String> {
    action["params"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

/// An expected output: one object, or a list of `{unstructuredObj}` (the list form).
fn expected_objects(path: &Path) -> Vec<Value> {
    match read_yaml(path) {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| i["unstructuredObj"].clone())
            .collect(),
        Some(obj) => vec![obj],
        None => Vec::new(),
    }
}

/// Argo CD's matching: same kind, namespace and name; a Job from a CronJob or a Workflow
/// from a (Cron)WorkflowTemplate by the source's name as prefix.
fn same_object(expected: &Value, result: &Value, source: &Value) -> bool {
    let s = |v: &Value, p: &[&str]| {
        p.iter()
            .fold(v, |v, k| &v[*k])
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    if s(expected, &["kind"]) != s(result, &["kind"])
        || s(expected, &["apiVersion"]) != s(result, &["apiVersion"])
        || s(expected, &["metadata", "namespace"]) != s(result, &["metadata", "namespace"])
    {
        return false;
    }
    let derived = matches!(
        (s(result, &["kind"]).as_str(), s(source, &["kind"]).as_str()),
        ("Job", "CronJob") | ("Workflow", "CronWorkflow" | "WorkflowTemplate")
    );
    if derived {
        s(expected, &["metadata", "name"]).starts_with(&s(source, &["metadata", "name"]))
    } else {
        s(expected, &["metadata", "name"]) == s(result, &["metadata", "name"])
    }
}

/// Argo CD's `testNormalizer`: the times an action writes, fixed.
fn normalize(obj: &mut Value) {
    const ZERO: &str = "0001-01-01T00:00:00Z";
    let group = obj["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map_or(String::new(), |(g, _)| g.to_owned());
    let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
    let remove = |obj: &mut Value, path: &[&str]| {
        let (last, parents) = path.split_last().expect("a path");
        let mut v = obj;
        for p in parents {
            v = &mut v[*p];
        }
        if let Some(m) = v.as_object_mut() {
            m.remove(*last);
        }
    };
    let flux = "By Argo CD at: 0001-01-01T00:00:00";
    match (group.as_str(), kind.as_str()) {
        ("apps", "DaemonSet" | "Deployment" | "StatefulSet") => {
            obj["spec"]["template"]["metadata"]["annotations"] =
                serde_json::json!({"kubectl.kubernetes.io/restartedAt": ZERO});
            if kind == "Deployment" {
                remove(obj, &["status"]);
                remove(obj, &["metadata", "creationTimestamp"]);
                remove(obj, &["metadata", "generation"]);
            }
        }
        ("batch", "Job") => {
            if let Some(cs) = obj["status"]["conditions"].as_array_mut() {
                for c in cs.iter_mut().filter(|c| c["type"] == "FailureTarget") {
                    c["lastTransitionTime"] = ZERO.into();
                }
            }
        }
        ("argoproj.io", "Rollout") => remove(obj, &["spec", "restartAt"]),
        ("argoproj.io", "Workflow") => {
            remove(obj, &["metadata", "resourceVersion"]);
            remove(obj, &["metadata", "uid"]);
            remove(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "workflows.argoproj.io/scheduled-time",
                ],
            );
        }
        ("external-secrets.io", "ExternalSecret" | "PushSecret") => {
            obj["metadata"]["annotations"] = serde_json::json!({"force-sync": ZERO});
        }
        ("postgresql.cnpg.io", "Cluster") => {
            obj["metadata"]["annotations"]["cnpg.io/reloadedAt"] = ZERO.into();
            obj["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] = ZERO.into();
            remove(obj, &["status", "targetPrimaryTimestamp"]);
        }
        ("helm.toolkit.fluxcd.io", "HelmRelease")
        | (
            "source.toolkit.fluxcd.io",
            "Bucket" | "GitRepository" | "HelmChart" | "HelmRepository" | "OCIRepository",
        )
        | ("image.toolkit.fluxcd.io", "ImageRepository" | "ImageUpdateAutomation")
        | ("kustomize.toolkit.fluxcd.io", "Kustomization")
        | ("notification.toolkit.fluxcd.io", "Receiver") => {
            obj["metadata"]["annotations"] =
                serde_json::json!({"reconcile.fluxcd.io/requestedAt": flux});
        }
        _ => {}
    }
}

/// Whether `got` holds every field of `want` (gitops-engine's diff of the expected object
/// against the result: a field the result adds is no difference); numbers by value.
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| wv.is_null() || g.get(k).is_some_and(|gv| contains(gv, wv))),
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(g, w)| contains(g, w))
        }
        (Value::Number(g), Value::Number(w)) => g.as_f64() == w.as_f64(),
        (g, w) => g == w,
    }
}

fn read_yaml(path: &Path) -> Option<Value> {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}
