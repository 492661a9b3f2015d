//! `kubectl apply` without `--server-side` (client-side apply): the object it leaves,
//! from the last applied configuration (kept in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation), the configuration being
//! applied and the live object. This is what the three-way strategic merge patch kubectl
//! sends makes of the live object: fields the new configuration sets take its values,
//! fields the last one set and the new one does not are removed, and everything else
//! (defaults, fields other clients set) stays. Lists of built-in kinds merge by their
//! merge key or as sets, as the schema says; other lists, and every list of a custom
//! resource (JSON merge patch), are replaced whole.

use serde_json::{Map, Value};

use crate::schema::{ListType, list_type};

/// The annotation in which client-side apply keeps the configuration it last applied.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `modified` with the last-applied annotation kubectl writes: the object itself, as
/// compact JSON, without that annotation.
pub fn with_last_applied(modified: &Value) -> Value {
    let mut bare = modified.clone();
    if let Some(annotations) = bare
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty()
            && let Some(meta) = bare.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("annotations");
        }
    }
    let mut out = bare.clone();
    out["metadata"]["annotations"][LAST_APPLIED] = Value::String(bare.to_string());
    out
}

/// The configuration `live` says was last applied to it; `None` when it has none (made
/// some other way) or it does not read.
pub fn last_applied(live: &Value) -> Option<Value> {
    live.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
}

/// The object applying `modified` over `live` leaves, `original` being the configuration
/// last applied. `builtin`: the kind is a built-in one (its lists merge as the schema
/// says); else every list is replaced whole.
pub fn merge(
    original: Option<&Value>,
    modified: &Value,
    live: &Value,
    kind: &str,
    builtin: bool,
) -> Value {
    let merger = Merger { kind, builtin };
    merger.value(original, modified, live, &mut Vec::new())
}

struct Merger<'a> {
    kind: &'a str,
    builtin: bool,
}

impl Merger<'_> {
    fn value<'p>(
        &self,
        original: Option<&Value>,
        modified: &'p Value,
        live: &Value,
        path: &mut Vec<&'p str>,
    ) -> Value {
        match (modified, live) {
            (Value::Object(m), Value::Object(l)) => {
                let o = original.and_then(Value::as_object);
                Value::Object(self.map(o, m, l, path))
            }
            (Value::Array(m), Value::Array(l)) => {
                let o = original.and_then(Value::as_array).map(Vec::as_slice);
                let list = if self.builtin {
                    list_type(self.kind, path)
                } else {
                    ListType::Atomic
                };
                Value::Array(self.list(list, o, m, l, path))
            }
            _ => modified.clone(),
        }
    }

    fn map<'p>(
        &self,
        original: Option<&Map<String, Value>>,
        modified: &'p Map<String, Value>,
        live: &Map<String, Value>,
        path: &mut Vec<&'p str>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, l) in live {
            match modified.get_key_value(k) {
                // A null in the configuration removes the field, as in a merge patch.
                Some((_, Value::Null)) => {}
                Some((mk, m)) => {
                    path.push(mk.as_str());
                    let merged = self.value(original.and_then(|o| o.get(k)), m, l, path);
                    path.pop();
                    out.insert(k.clone(), merged);
                }
                // Set by the last apply and no longer: removed.
                None if original.is_some_and(|o| o.contains_key(k)) => {}
                None => {
                    out.insert(k.clone(), l.clone());
                }
            }
        }
        for (k, m) in modified {
            if !live.contains_key(k) && !m.is_null() {
                out.insert(k.clone(), m.clone());
            }
        }
        out
    }

    fn list<'p>(
        &self,
        list: ListType,
        original: Option<&[Value]>,
        modified: &'p [Value],
        live: &[Value],
        path: &mut Vec<&'p str>,
    ) -> Vec<Value> {
        match list {
            ListType::Atomic => modified.to_vec(),
            ListType::Set => {
                let removed =
                    |v: &Value| original.is_some_and(|o| o.contains(v)) && !modified.contains(v);
                let mut out: Vec<Value> = live.iter().filter(|v| !removed(v)).cloned().collect();
                for m in modified {
                    if !out.contains(m) {
                        out.push(m.clone());
                    }
                }
                out
            }
            ListType::Map(keys) => {
                // Strategic merge patch identifies items by the first key alone.
                let key = keys[0];
                let id = |v: &Value| v.get(key).cloned();
                let find = |items: &'p [Value], want: &Option<Value>| {
                    want.as_ref()
                        .and_then(|w| items.iter().find(|v| v.get(key) == Some(w)))
                };
                let mut out = Vec::new();
                for l in live {
                    let k = id(l);
                    match find(modified, &k) {
                        Some(m) => {
                            let o = original.and_then(|o| {
                                o.iter().find(|v| k.is_some() && v.get(key) == k.as_ref())
                            });
                            out.push(self.value(o, m, l, path));
                        }
                        None if original.is_some_and(|o| {
                            k.is_some() && o.iter().any(|v| v.get(key) == k.as_ref())
                        }) => {}
                        None => out.push(l.clone()),
                    }
                }
                for m in modified {
                    let k = id(m);
                    if k.is_none() || !live.iter().any(|l| l.get(key) == k.as_ref()) {
                        out.push(m.clone());
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, extra_env: bool) -> Value {
        let mut env = vec![json!({"name": "MODE", "value": "prod"})];
        if extra_env {
            env.push(json!({"name": "DEBUG", "value": "1"}));
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": image, "env": env}]}}}})
    }

    #[test]
    fn fields_dropped_from_the_configuration_go_and_others_fields_stay() {
        let original = deployment("nginx:1", true);
        let mut modified = deployment("nginx:2", false);
        modified["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("tier");
        let mut live = with_last_applied(&original);
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["labels"]["team"] = json!("ops");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "envoy"}));
        live["status"] = json!({"replicas": 2});

        let out = merge(
            last_applied(&live).as_ref(),
            &with_last_applied(&modified),
            &live,
            "Deployment",
            true,
        );
        assert_eq!(out["metadata"]["resourceVersion"], "7");
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "team": "ops"})
        );
        let containers = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 2, "the injected sidecar stays");
        assert_eq!(containers[0]["image"], "nginx:2");
        assert_eq!(containers[0]["imagePullPolicy"], "Always");
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "MODE", "value": "prod"}])
        );
        assert_eq!(out["status"], json!({"replicas": 2}));
        assert_eq!(last_applied(&out), Some(modified));
    }

    #[test]
    fn custom_resource_lists_are_replaced_and_a_first_apply_keeps_live_fields() {
        let live = json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"items": [1, 2, 3], "owner": "someone"}});
        let modified = json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"items": [4]}});
        let out = merge(None, &modified, &live, "W", false);
        assert_eq!(out["spec"], json!({"items": [4], "owner": "someone"}));
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let modified = json!({"metadata": {"finalizers": ["a", "c"]}});
        let live = json!({"metadata": {"finalizers": ["a", "b", "x"]}});
        let out = merge(Some(&original), &modified, &live, "ConfigMap", true);
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "x", "c"]));
    }
}
