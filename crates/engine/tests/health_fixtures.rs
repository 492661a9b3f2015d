//! Every `fixtures/health/<kind>-<case>.yaml` is a live object whose header comments give
//! the expected verdict: `# expect: <HealthStatusCode>|none` and optionally
//! `# message: <exact message>`. One check walks them all.

use std::path::Path;

use gitfleet_engine::health;

fn check(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let header = |key: &str| {
        text.lines()
            .take_while(|l| l.starts_with('#'))
            .find_map(|l| {
                l.strip_prefix(&format!("# {key}:"))
                    .map(|v| v.trim().to_owned())
            })
    };
    let expect = header("expect").ok_or("missing `# expect:` header")?;
    let message = header("message");
    let obj: serde_json::Value = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    // The optional checks too (the Application customization): its fixtures are here.
    let got = health::Checks::all().assess(&obj);
    match (expect.as_str(), got) {
        ("none", None) => Ok(()),
        ("none", Some(h)) => Err(format!("expected no health check, got {h:?}")),
        (_, None) => Err(format!("expected {expect}, got no health check")),
        (_, Some(h)) => {
            if h.status.as_str() != expect {
                return Err(format!("expected {expect}, got {h:?}"));
            }
            match message {
                Some(m) if m != h.message => {
                    Err(format!("expected message {m:?}, got {:?}", h.message))
                }
                _ => Ok(()),
            }
        }
    }
}

#[test]
fn health_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/health");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() > 50, "fixtures missing from {}", dir.display());
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            check(p)
                .err()
                .map(|e| format!("{}: {e}", p.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
