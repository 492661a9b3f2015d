//! Field paths as the diff reports them: `.spec.replicas`,
//! `.spec.template.spec.containers[name=web].image`, `.spec.rules[0]`.

use std::fmt;

use serde_json::{Map, Value};

/// One step from a value to a child.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seg {
    Field(String),
    /// An item of a keyed list, by its key fields.
    Key(Vec<(String, Value)>),
    Index(usize),
    /// An item of a set-like list, by value.
    Value(Value),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Path(pub Vec<Seg>);

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for seg in &self.0 {
            match seg {
                Seg::Field(name) if is_plain(name) => write!(f, ".{name}")?,
                Seg::Field(name) => write!(f, "[{name:?}]")?,
                Seg::Key(keys) => {
                    let parts: Vec<String> = keys
                        .iter()
                        .map(|(k, v)| format!("{k}={}", scalar_text(v)))
                        .collect();
                    write!(f, "[{}]", parts.join(","))?
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
                Seg::Value(v) => write!(f, "[={}]", scalar_text(v))?,
            }
        }
        Ok(())
    }
}

fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Numbers compare by value (`1` and `1.0` are one number), everything else structurally.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Whether a list item carries these key values. A key field the item leaves out matches
/// anything when `lenient`: manifests may omit defaulted keys (`protocol: TCP`).
pub(crate) fn item_matches(item: &Value, keys: &[(String, Value)], lenient: bool) -> bool {
    let Some(obj) = item.as_object() else {
        return false;
    };
    keys.iter().all(|(k, v)| match obj.get(k) {
        Some(x) => json_eq(x, v),
        None => lenient,
    })
}

/// The child `seg` names; `lenient` as in [`item_matches`].
pub(crate) fn child<'a>(v: &'a Value, seg: &Seg, lenient: bool) -> Option<&'a Value> {
    match (seg, v) {
        (Seg::Field(k), Value::Object(m)) => m.get(k),
        (Seg::Index(i), Value::Array(a)) => a.get(*i),
        (Seg::Key(keys), Value::Array(a)) => a.iter().find(|x| item_matches(x, keys, lenient)),
        (Seg::Value(want), Value::Array(a)) => a.iter().find(|x| json_eq(x, want)),
        _ => None,
    }
}

/// Removes the value at `segs`; a no-op when the path does not resolve.
pub(crate) fn remove(root: &mut Value, segs: &[Seg], lenient: bool) {
    let Some((last, parents)) = segs.split_last() else {
        return;
    };
    let mut cur = root;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Field(k), Value::Object(m)) => m.get_mut(k),
            (Seg::Index(i), Value::Array(a)) => a.get_mut(*i),
            (Seg::Key(keys), Value::Array(a)) => {
                a.iter_mut().find(|x| item_matches(x, keys, lenient))
            }
            (Seg::Value(want), Value::Array(a)) => a.iter_mut().find(|x| json_eq(x, want)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (Seg::Field(k), Value::Object(m)) => {
            m.shift_remove(k);
        }
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        (Seg::Key(keys), Value::Array(a)) => a.retain(|x| !item_matches(x, keys, lenient)),
        (Seg::Value(want), Value::Array(a)) => a.retain(|x| !json_eq(x, want)),
        _ => {}
    }
}

/// Puts `value` at `segs`, creating maps on the way; list items go where they are found or
/// at the end.
pub(crate) fn insert(root: &mut Value, segs: &[Seg], value: Value) {
    let Some((seg, rest)) = segs.split_first() else {
        *root = value;
        return;
    };
    let slot: &mut Value = match seg {
        Seg::Field(k) => {
            if !root.is_object() {
                *root = Value::Object(Map::new());
            }
            let m = root.as_object_mut().expect("just made an object");
            m.entry(k.clone()).or_insert(Value::Null)
        }
        Seg::Index(_) | Seg::Key(_) | Seg::Value(_) => {
            if !root.is_array() {
                *root = Value::Array(Vec::new());
            }
            let a = root.as_array_mut().expect("just made an array");
            let pos = match seg {
                Seg::Index(i) if *i < a.len() => Some(*i),
                Seg::Key(keys) => a.iter().position(|x| item_matches(x, keys, false)),
                Seg::Value(want) => a.iter().position(|x| json_eq(x, want)),
                _ => None,
            };
            let pos = pos.unwrap_or_else(|| {
                a.push(Value::Null);
                a.len() - 1
            });
            &mut a[pos]
        }
    };
    insert(slot, rest, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_render_like_the_brief() {
        let p = Path(vec![
            Seg::Field("spec".into()),
            Seg::Field("containers".into()),
            Seg::Key(vec![("name".into(), json!("web"))]),
            Seg::Field("image".into()),
        ]);
        assert_eq!(p.to_string(), ".spec.containers[name=web].image");
        let p = Path(vec![
            Seg::Field("metadata".into()),
            Seg::Field("labels".into()),
            Seg::Field("app.kubernetes.io/name".into()),
        ]);
        assert_eq!(
            p.to_string(),
            ".metadata.labels[\"app.kubernetes.io/name\"]"
        );
        assert!(json_eq(&json!(1), &json!(1.0)));
        assert!(!json_eq(&json!(1), &json!("1")));
    }
}
