//! Parameter sets: what one generator element gives the template, and the helpers
//! Argo CD applies to them (flattening for selectors, name normalisation, deep merge).

use serde_json::{Map, Value};

/// One parameter set. With fasttemplate every value is a string under a dotted key
/// (`metadata.labels.env`); with Go templates values nest as written.
pub type Params = Map<String, Value>;

/// Argo CD's `normalize`: lower case, every character outside `[-a-z0-9.]` made `-`, at
/// most 253 characters, no leading or trailing `-` or `.`.
pub fn sanitize_name(name: &str) -> String {
    let lowered = name.to_lowercase();
    let mut out: String = lowered
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.len() > 253 {
        let mut end = 253;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out.trim_matches(|c| c == '-' || c == '.').to_owned()
}

/// The parameter set as flat `a.b.c` keys with string values, as Argo CD flattens it
/// before matching a generator's `selector` (Go's `%v` for scalars; lists by index).
pub fn flatten(params: &Params) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    walk(&join(prefix, k), v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&join(prefix, &i.to_string()), v, out);
                }
            }
            other => out.push((prefix.to_owned(), scalar_text(other))),
        }
    }
    fn join(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    }
    let mut out = Vec::new();
    for (k, v) in params {
        walk(k, v, &mut out);
    }
    out
}

/// A scalar as Go's `%v` prints it (`<nil>` for null).
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_owned(),
        other => other.to_string(),
    }
}

/// Merges `overlay` into `base`, maps deeply, `overlay` winning (mergo's `WithOverride`).
pub fn merge_override(base: &mut Params, overlay: &Params) {
    for (k, v) in overlay {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge_override(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Fills what `dest` leaves empty from `base`, deeply (mergo's `Merge` without override):
/// a generator's own `template` over the set's.
pub fn fill_empty(dest: &mut Value, base: &Value) {
    match (dest, base) {
        (Value::Object(d), Value::Object(b)) => {
            for (k, bv) in b {
                match d.get_mut(k) {
                    Some(dv) if !is_empty(dv) => fill_empty(dv, bv),
                    _ => {
                        d.insert(k.clone(), bv.clone());
                    }
                }
            }
        }
        (d, b) if is_empty(d) => *d = b.clone(),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sanitize_as_argo_cd() {
        assert_eq!(sanitize_name("Prod_Cluster.1-"), "prod-cluster.1");
        assert_eq!(sanitize_name("--a/b--"), "a-b");
        assert_eq!(sanitize_name(&"x".repeat(300)).len(), 253);
    }

    #[test]
    fn flatten_nests_with_dots() {
        let p = json!({"a": {"b": "c", "n": 2}, "l": ["x"], "z": null});
        let p = p.as_object().unwrap();
        assert_eq!(
            flatten(p),
            vec![
                ("a.b".into(), "c".into()),
                ("a.n".into(), "2".into()),
                ("l.0".into(), "x".into()),
                ("z".into(), "<nil>".into())
            ]
        );
    }

    #[test]
    fn merges() {
        let mut base = json!({"a": {"x": 1, "y": 2}, "b": 1})
            .as_object()
            .unwrap()
            .clone();
        merge_override(
            &mut base,
            json!({"a": {"y": 3}, "c": 4}).as_object().unwrap(),
        );
        assert_eq!(
            Value::Object(base),
            json!({"a": {"x": 1, "y": 3}, "b": 1, "c": 4})
        );
        let mut dest = json!({"metadata": {"name": "own"}, "spec": {"project": ""}});
        fill_empty(
            &mut dest,
            &json!({"metadata": {"name": "base", "labels": {"a": "b"}}, "spec": {"project": "p"}}),
        );
        assert_eq!(
            dest,
            json!({"metadata": {"name": "own", "labels": {"a": "b"}}, "spec": {"project": "p"}})
        );
    }
}
