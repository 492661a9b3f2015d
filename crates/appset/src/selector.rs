//! Label selectors (`matchLabels`, `matchExpressions`) over a string map: clusters'
//! labels for the cluster generator, flattened parameters for a generator's `selector`.
//! As Argo CD's copy of Kubernetes' selector, values are not restricted to label syntax
//! (so a selector can match a server URL).

use std::collections::BTreeMap;

use serde_json::Value;

/// A parsed label selector. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Reads a selector as written in a manifest; `field` names it in errors.
    pub fn parse(value: Option<&Value>, field: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(Self::default());
        };
        let map = value
            .as_object()
            .ok_or_else(|| format!("{field}: expected a label selector object"))?;
        for key in map.keys() {
            if key != "matchLabels" && key != "matchExpressions" {
                return Err(format!(
                    "{field}: unknown field {key:?} (expected matchLabels, matchExpressions)"
                ));
            }
        }
        if let Some(labels) = map.get("matchLabels").filter(|v| !v.is_null()) {
            let labels = labels
                .as_object()
                .ok_or_else(|| format!("{field}.matchLabels: expected a map of strings"))?;
            for (k, v) in labels {
                let v = v.as_str().ok_or_else(|| {
                    format!("{field}.matchLabels.{k}: expected a string, got {v}")
                })?;
                requirements.push(Requirement::In(k.clone(), vec![v.to_owned()]));
            }
        }
        if let Some(exprs) = map.get("matchExpressions").filter(|v| !v.is_null()) {
            let exprs = exprs
                .as_array()
                .ok_or_else(|| format!("{field}.matchExpressions: expected a list"))?;
            for (i, e) in exprs.iter().enumerate() {
                let at = format!("{field}.matchExpressions[{i}]");
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{at}.key: required"))?
                    .to_owned();
                let values: Vec<String> = match e.get("values") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| format!("{at}.values: expected strings"))
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(format!("{at}.values: expected a list of strings")),
                };
                let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
                let req = match op {
                    "In" | "NotIn" if values.is_empty() => {
                        return Err(format!("{at}.values: must be non-empty for operator {op}"));
                    }
                    "Exists" | "DoesNotExist" if !values.is_empty() => {
                        return Err(format!("{at}.values: must be empty for operator {op}"));
                    }
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    "DoesNotExist" => Requirement::DoesNotExist(key),
                    other => {
                        return Err(format!(
                            "{at}.operator: {other:?} is not a valid label selector operator (In, NotIn, Exists, DoesNotExist)"
                        ));
                    }
                };
                requirements.push(req);
            }
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches<'a>(&self, labels: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => labels(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Requirement::Exists(k) => labels(k).is_some(),
            Requirement::DoesNotExist(k) => labels(k).is_none(),
        })
    }

    pub fn matches_map(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches(|k| labels.get(k).map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn match_labels_and_expressions() {
        let s = Selector::parse(
            Some(&json!({"matchLabels": {"environment": "production"},
                "matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]},
                                     {"key": "tier", "operator": "Exists"}]})),
            "spec.generators[0].clusters.selector",
        )
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(s.matches_map(&labels(&[("environment", "production"), ("tier", "1")])));
        assert!(!s.matches_map(&labels(&[
            ("environment", "production"),
            ("region", "eu"),
            ("tier", "1")
        ])));
        assert!(!s.matches_map(&labels(&[("environment", "staging"), ("tier", "1")])));
        assert!(!s.matches_map(&labels(&[("environment", "production")])));
    }

    #[test]
    fn bad_selectors_are_named() {
        let err = Selector::parse(
            Some(&json!({"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]})),
            "sel",
        )
        .unwrap_err();
        assert!(err.contains("sel.matchExpressions[0].operator"), "{err}");
        let err = Selector::parse(
            Some(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]})),
            "sel",
        )
        .unwrap_err();
        assert!(err.contains("must be non-empty"), "{err}");
    }
}
