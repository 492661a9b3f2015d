//! Runs a script library's own tests: every `<group>/<kind>/health_test.yaml` under DIR
//! (Argo CD's `resource_customizations` layout: `tests: [{inputPath, healthStatus:
//! {status, message}}]`), each input judged as the diff worker judges it (the library's
//! script found by the object's group and kind, exact before wildcard), reporting every
//! verdict that differs. `cargo run --release -p gitfleet-engine --example library_check -- DIR`

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
        "{} scripts; {passed} cases pass, {failed} fail, {unread} inputs unread, in {:?}",
        library.health_scripts().count(),
        start.elapsed()
    );
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
