//! gitfleet's ordering between apps (`dependsOn`, off unless used): the annotation
//! `gitfleet.dev/depends-on: app-a,app-b` makes an app sync (automatically) only once the
//! apps it names are Synced and Healthy. Read here once for the diff workers (which wait)
//! and the gateway (which refuses a cycle when an app is created).

use std::collections::{HashMap, HashSet};

use gitfleet_model::Application;

/// The annotation naming the apps an app depends on.
pub const DEPENDS_ON: &str = "gitfleet.dev/depends-on";

/// The apps `app` depends on, as its annotation names them (trimmed, no repeats).
pub fn depends_on(app: &Application) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in app
        .metadata
        .annotations
        .get(DEPENDS_ON)
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if !out.iter().any(|o| o == name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// A dependency path from `start` back to itself (`[a, b, a]`), if there is one, over
/// `edges` (each app's dependencies).
pub fn dependency_cycle(start: &str, edges: &HashMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        edges: &HashMap<String, Vec<String>>,
        path: &mut Vec<String>,
        seen: &mut HashSet<String>,
    ) -> bool {
        for next in edges.get(at).map(Vec::as_slice).unwrap_or_default() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, edges, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    let mut seen = HashSet::new();
    walk(start, start, edges, &mut path, &mut seen).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_are_read_and_cycles_named() {
        let mut a = Application::default();
        a.metadata.name = "c".into();
        a.metadata
            .annotations
            .insert(DEPENDS_ON.into(), " b, a ,,b".into());
        assert_eq!(depends_on(&a), ["b", "a"]);
        let edges: HashMap<String, Vec<String>> = [
            ("c".to_string(), vec!["b".to_string()]),
            ("b".to_string(), vec!["a".to_string()]),
        ]
        .into();
        assert_eq!(dependency_cycle("c", &edges), None);
        let mut cyclic = edges.clone();
        cyclic.insert("a".into(), vec!["x".into(), "c".into()]);
        assert_eq!(
            dependency_cycle("c", &cyclic).unwrap(),
            ["c", "b", "a", "c"]
        );
        // A cycle elsewhere is not this app's.
        let mut elsewhere = edges;
        elsewhere.insert("a".into(), vec!["b".into()]);
        assert_eq!(dependency_cycle("c", &elsewhere), None);
    }
}
