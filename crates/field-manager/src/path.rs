//! Path elements of a field path, in their `fieldsV1` encoding (`f:`, `k:`, `v:`, `i:`),
//! how they resolve inside a JSON object, and how conflicts print them.

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq)]
pub enum PathElement {
    /// A map field.
    Field(String),
    /// An item of a keyed list, by its key fields (sorted by name).
    Key(Map<String, Value>),
    /// An item of a set list, by value.
    Value(Value),
    /// An item by position (only lists that are neither keyed nor atomic; unused here
    /// but parsed so stored sets from elsewhere survive).
    Index(usize),
}

impl PathElement {
    pub fn field(name: &str) -> String {
        format!("f:{name}")
    }

    /// Encodes the key of a keyed list item. Keys are sorted by field name, as
    /// structured-merge-diff does, so `k:{"containerPort":80,"protocol":"TCP"}`.
    pub fn key(key: &[(String, Value)]) -> String {
        let mut sorted: Vec<&(String, Value)> = key.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let map: Map<String, Value> = sorted.into_iter().cloned().collect();
        format!("k:{}", Value::Object(map))
    }

    pub fn value(value: &Value) -> String {
        format!("v:{value}")
    }

    /// Parses an encoded element; `None` if it is not one.
    pub fn decode(encoded: &str) -> Option<PathElement> {
        let (tag, rest) = encoded.split_once(':')?;
        match tag {
            "f" => Some(PathElement::Field(rest.to_owned())),
            "k" => match serde_json::from_str(rest).ok()? {
                Value::Object(map) => Some(PathElement::Key(map)),
                _ => None,
            },
            "v" => serde_json::from_str(rest).ok().map(PathElement::Value),
            "i" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }
}

/// The value a key field takes when an item leaves it out. The OpenAPI schema defaults
/// `protocol` to TCP on every list keyed by it (container ports, service ports), and
/// structured-merge-diff uses such defaults to key items.
pub fn key_field_default(field: &str) -> Option<Value> {
    (field == "protocol").then(|| Value::String("TCP".to_owned()))
}

/// The key of a keyed list item, or the name of the first key field it lacks.
pub fn item_key(item: &Value, keys: &[&str]) -> Result<Vec<(String, Value)>, String> {
    let Some(map) = item.as_object() else {
        return Err(keys.first().copied().unwrap_or_default().to_owned());
    };
    keys.iter()
        .map(|&k| {
            match map
                .get(k)
                .filter(|v| !v.is_null())
                .cloned()
                .or_else(|| key_field_default(k))
            {
                Some(v) => Ok((k.to_owned(), v)),
                None => Err(k.to_owned()),
            }
        })
        .collect()
}

fn item_matches(item: &Value, key: &Map<String, Value>) -> bool {
    let Some(map) = item.as_object() else {
        return false;
    };
    key.iter()
        .all(|(k, want)| match map.get(k).filter(|v| !v.is_null()) {
            Some(v) => v == want,
            None => key_field_default(k).as_ref() == Some(want),
        })
}

/// Position of the list item an encoded element names.
pub fn item_index(list: &[Value], element: &PathElement) -> Option<usize> {
    match element {
        PathElement::Key(key) => list.iter().position(|item| item_matches(item, key)),
        PathElement::Value(v) => list.iter().position(|item| item == v),
        PathElement::Index(i) => (*i < list.len()).then_some(*i),
        PathElement::Field(_) => None,
    }
}

/// The value one encoded element leads to from `value`.
pub fn child<'v>(value: &'v Value, encoded: &str) -> Option<&'v Value> {
    match (PathElement::decode(encoded)?, value) {
        (PathElement::Field(name), Value::Object(map)) => map.get(&name),
        (element, Value::Array(list)) => item_index(list, &element).map(|i| &list[i]),
        _ => None,
    }
}

pub fn child_mut<'v>(value: &'v mut Value, encoded: &str) -> Option<&'v mut Value> {
    match (PathElement::decode(encoded)?, value) {
        (PathElement::Field(name), Value::Object(map)) => map.get_mut(&name),
        (element, Value::Array(list)) => item_index(list, &element).map(move |i| &mut list[i]),
        _ => None,
    }
}

/// Removes the child one encoded element names; whether something was removed.
pub fn remove_child(value: &mut Value, encoded: &str) -> bool {
    match (PathElement::decode(encoded), value) {
        (Some(PathElement::Field(name)), Value::Object(map)) => map.shift_remove(&name).is_some(),
        (Some(element), Value::Array(list)) => match item_index(list, &element) {
            Some(i) => {
                list.remove(i);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// The path as Kubernetes prints it in conflicts: `.spec.containers[name="nginx"].image`,
/// `[containerPort=80,protocol="TCP"]` for several keys, `[="x"]` for set items.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for encoded in path {
        match PathElement::decode(encoded) {
            Some(PathElement::Field(name)) => {
                out.push('.');
                out.push_str(&name);
            }
            Some(PathElement::Key(key)) => {
                let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push('[');
                out.push_str(&parts.join(","));
                out.push(']');
            }
            Some(PathElement::Value(v)) => out.push_str(&format!("[={v}]")),
            Some(PathElement::Index(i)) => out.push_str(&format!("[{i}]")),
            None => out.push_str(encoded),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_are_sorted_and_compact() {
        let key = vec![
            ("protocol".to_owned(), json!("TCP")),
            ("containerPort".to_owned(), json!(80)),
        ];
        assert_eq!(
            PathElement::key(&key),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
    }

    #[test]
    fn missing_protocol_keys_as_tcp() {
        let key = item_key(
            &json!({"containerPort": 80}),
            &["containerPort", "protocol"],
        )
        .unwrap();
        assert_eq!(
            PathElement::key(&key),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        let err = item_key(&json!({"image": "x"}), &["name"]).unwrap_err();
        assert_eq!(err, "name");
    }

    #[test]
    fn resolves_and_prints_paths() {
        let obj = json!({"spec": {"ports": [{"port": 80}, {"port": 443, "protocol": "TCP"}]}});
        let path = vec![
            "f:spec".to_owned(),
            "f:ports".to_owned(),
            r#"k:{"port":443,"protocol":"TCP"}"#.to_owned(),
        ];
        let spec = child(&obj, &path[0]).unwrap();
        let ports = child(spec, &path[1]).unwrap();
        assert_eq!(child(ports, &path[2]).unwrap()["port"], 443);
        // The defaulted protocol still matches an item that leaves it out.
        assert!(child(ports, r#"k:{"port":80,"protocol":"TCP"}"#).is_some());
        assert_eq!(display(&path), r#".spec.ports[port=443,protocol="TCP"]"#);
        assert_eq!(
            display(&[
                "f:metadata".into(),
                "f:finalizers".into(),
                r#"v:"a""#.into()
            ]),
            r#".metadata.finalizers[="a"]"#
        );
    }
}
