//! The small subset of JSONPath that CRDs use for `additionalPrinterColumns` and the
//! `/scale` subresource's paths: `.a.b`, `.a[0].b`, optionally wrapped in `{…}`.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

/// Parses `.a.b[0].c` (a leading `{` `}` pair and `$` are accepted); None when the path
/// uses anything beyond fields and indexes.
fn parse(path: &str) -> Option<Vec<Step>> {
    let mut p = path.trim();
    if let Some(inner) = p.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        p = inner.trim();
    }
    p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return None;
            }
            steps.push(Step::Field(name.to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            match inner.parse::<usize>() {
                Ok(i) => steps.push(Step::Index(i)),
                Err(_) => {
                    // ['a.b']: a quoted field name.
                    let name = inner
                        .strip_prefix('\'')
                        .and_then(|n| n.strip_suffix('\''))?;
                    steps.push(Step::Field(name.to_string()));
                }
            }
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// The value at `path` in `v`, if the path is supported and leads somewhere.
pub fn get<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = v;
    for s in parse(path)? {
        cur = match s {
            Step::Field(f) => cur.as_object()?.get(&f)?,
            Step::Index(i) => cur.as_array()?.get(i)?,
        };
    }
    Some(cur)
}

/// Sets the value at a path of fields (creating objects on the way); false when the path
/// is unsupported or crosses a non-object.
pub fn set(v: &mut Value, path: &str, new: Value) -> bool {
    let Some(steps) = parse(path) else {
        return false;
    };
    let Some((last, init)) = steps.split_last() else {
        return false;
    };
    let mut cur = v;
    for s in init {
        cur = match s {
            Step::Field(f) => {
                let Some(m) = cur.as_object_mut() else {
                    return false;
                };
                m.entry(f.clone())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            Step::Index(i) => match cur.as_array_mut().and_then(|a| a.get_mut(*i)) {
                Some(x) => x,
                None => return false,
            },
        };
    }
    match (last, cur) {
        (Step::Field(f), Value::Object(m)) => {
            m.insert(f.clone(), new);
            true
        }
        (Step::Index(i), Value::Array(a)) if *i < a.len() => {
            a[*i] = new;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_and_indexes() {
        let v = json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]},
            "metadata": {"labels": {"a.b/c": "x"}}});
        assert_eq!(get(&v, ".spec.replicas"), Some(&json!(3)));
        assert_eq!(get(&v, "{.spec.ports[1].port}"), Some(&json!(443)));
        assert_eq!(get(&v, "$.spec.ports[0].port"), Some(&json!(80)));
        assert_eq!(get(&v, ".metadata.labels['a.b/c']"), Some(&json!("x")));
        assert_eq!(get(&v, ".spec.ports[2].port"), None);
        assert_eq!(get(&v, ".spec.missing"), None);
        assert_eq!(
            get(&v, ".spec.ports[*].port"),
            None,
            "wildcards are not supported"
        );
    }

    #[test]
    fn set_creates_objects_on_the_way() {
        let mut v = json!({"spec": {}});
        assert!(set(&mut v, ".spec.replicas", json!(4)));
        assert!(set(&mut v, ".status.replicas", json!(2)));
        assert_eq!(
            v,
            json!({"spec": {"replicas": 4}, "status": {"replicas": 2}})
        );
        assert!(!set(&mut v, ".spec.replicas.x", json!(1)));
    }
}
