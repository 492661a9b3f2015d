//! JSON merge patch (RFC 7386), the `application/merge-patch+json` patch type.

use serde_json::{Map, Value};

/// Applies `patch` to `target` as an RFC 7386 merge patch: objects merge recursively, `null`
/// deletes a key, anything else (arrays included) replaces the target value whole.
/// Key order of the target is kept; new keys follow in patch order.
pub fn apply_merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            // shift, not swap: a deletion must not reorder the remaining keys.
            out.shift_remove(key);
        } else {
            let merged = apply_merge_patch(out.get(key).unwrap_or(&Value::Null), value);
            out.insert(key.clone(), merged);
        }
    }
    Value::Object(out)
}

/// The merge patch that turns `original` into `modified` (what Go's
/// `jsonpatch.CreateMergePatch` computes): keys gone from `modified` are `null`, objects
/// are compared key by key, anything else that differs is replaced whole. `{}` when they
/// are equal. Applying it to `original` gives `modified` unless `modified` holds `null`s
/// (a merge patch cannot set one).
pub fn create_merge_patch(original: &Value, modified: &Value) -> Value {
    match (original, modified) {
        (Value::Object(original), Value::Object(modified)) => {
            let mut patch = Map::new();
            for (key, before) in original {
                match modified.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(after) if after == before => {}
                    Some(after) => {
                        let inner = if before.is_object() && after.is_object() {
                            create_merge_patch(before, after)
                        } else {
                            after.clone()
                        };
                        patch.insert(key.clone(), inner);
                    }
                }
            }
            for (key, after) in modified {
                if !original.contains_key(key) {
                    patch.insert(key.clone(), after.clone());
                }
            }
            Value::Object(patch)
        }
        _ => modified.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        // The test vectors of RFC 7386 appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(
                apply_merge_patch(&target, &patch),
                want,
                "{target} + {patch}"
            );
        }
    }

    #[test]
    fn deletion_keeps_key_order() {
        let out = apply_merge_patch(&json!({"a": 1, "b": 2, "c": 3}), &json!({"a": null}));
        let keys: Vec<_> = out.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["b", "c"]);
    }
}
