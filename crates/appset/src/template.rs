//! Template rendering as Argo CD's ApplicationSet controller does it: every string of the
//! Application template (and every map key) rendered on its own, with fasttemplate
//! (`{{name}}`, an unknown parameter left as written) or Go's text/template
//! (`goTemplate: true`, with `goTemplateOptions` such as `missingkey=error`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use crate::params::Params;

/// How a set's strings are rendered.
#[derive(Clone)]
pub struct Templater {
    go: bool,
    /// `missingkey=error`: a missing key fails the render instead of `<no value>`.
    strict: bool,
    /// Go templates parsed once per distinct string: a set renders the same strings for
    /// every one of its parameter sets.
    parsed: Rc<RefCell<HashMap<String, Rc<gtmpl::Template>>>>,
}

impl std::fmt::Debug for Templater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templater")
            .field("go", &self.go)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

/// The parameters of one render as Go template data, converted once for all its strings.
struct GoData {
    context: gtmpl::Context,
}

impl Templater {
    /// The templater of a set; an option Go's text/template does not know is an error.
    pub fn new(go_template: bool, options: &[String]) -> Result<Self, String> {
        let mut strict = false;
        for option in options {
            match option.as_str() {
                "missingkey=error" => strict = true,
                "missingkey=default" | "missingkey=invalid" | "missingkey=zero" => strict = false,
                other => {
                    return Err(format!(
                        "spec.goTemplateOptions: unrecognized option {other:?} (Go's text/template knows missingkey=default, invalid, zero and error)"
                    ));
                }
            }
        }
        Ok(Self {
            go: go_template,
            strict,
            parsed: Rc::default(),
        })
    }

    pub fn is_go(&self) -> bool {
        self.go
    }

    /// The same templater with `missingkey=error`: what interpolating a generator with an
    /// outer generator's parameters uses to tell a missing key from a real error.
    pub fn strict(&self) -> Self {
        Self {
            go: self.go,
            strict: true,
            parsed: self.parsed.clone(),
        }
    }

    /// One string rendered with `params`.
    pub fn replace(&self, text: &str, params: &Params) -> Result<String, String> {
        let mut data = None;
        self.replace_with(text, params, &mut data)
    }

    fn replace_with(
        &self,
        text: &str,
        params: &Params,
        data: &mut Option<GoData>,
    ) -> Result<String, String> {
        if !text.contains("{{") {
            return Ok(text.to_owned());
        }
        if !self.go {
            return fasttemplate(text, params);
        }
        let tmpl = self.parse(text)?;
        let data = data.get_or_insert_with(|| GoData {
            context: gtmpl::Context::from(crate::sprig::from_serde(
                &Value::Object(params.clone()),
                self.strict,
            )),
        });
        tmpl.render(&data.context)
            .map_err(|e| format!("failed to execute go template {text:?}: {e}"))
    }

    fn parse(&self, text: &str) -> Result<Rc<gtmpl::Template>, String> {
        if let Some(t) = self.parsed.borrow().get(text) {
            return Ok(t.clone());
        }
        let mut tmpl = gtmpl::Template::default();
        tmpl.add_funcs(&crate::sprig::functions());
        tmpl.parse(text)
            .map_err(|e| format!("failed to parse template {text:?}: {e}"))?;
        let tmpl = Rc::new(tmpl);
        self.parsed
            .borrow_mut()
            .insert(text.to_owned(), tmpl.clone());
        Ok(tmpl)
    }

    /// Every string and map key in `value` rendered with `params`.
    pub fn render_value(&self, value: &Value, params: &Params) -> Result<Value, String> {
        let mut data = None;
        self.render_with(value, params, &mut data)
    }

    fn render_with(
        &self,
        value: &Value,
        params: &Params,
        data: &mut Option<GoData>,
    ) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => Value::String(self.replace_with(s, params, data)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_with(v, params, data))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(
                        self.replace_with(k, params, data)?,
                        self.render_with(v, params, data)?,
                    );
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
}

/// valyala/fasttemplate with `{{`/`}}` as Argo CD calls it: the tag's text trimmed names a
/// string parameter; anything else (unknown, not a string, empty) is left as written. A
/// `{{` with no `}}` after it is an error, as fasttemplate's.
fn fasttemplate(text: &str, params: &Params) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "invalid template {text:?}: cannot find end tag \"}}}}\""
            ));
        };
        let tag = &after[..end];
        let trimmed = tag.trim();
        match params.get(trimmed).and_then(Value::as_str) {
            Some(value) if !trimmed.is_empty() => out.push_str(value),
            _ => {
                out.push_str("{{");
                out.push_str(tag);
                out.push_str("}}");
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Params {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fasttemplate_keeps_unknown_tags() {
        let t = Templater::new(false, &[]).unwrap();
        let p = params(json!({"cluster": "prod", "n": 3, "path.basename": "api"}));
        assert_eq!(
            t.replace("{{cluster}}-{{ path.basename }}-{{n}}-{{missing}}", &p)
                .unwrap(),
            "prod-api-{{n}}-{{missing}}"
        );
        assert!(
            t.replace("{{cluster", &p)
                .unwrap_err()
                .contains("cannot find end tag")
        );
    }

    #[test]
    fn go_template_with_sprig_and_missing_keys() {
        let p = params(
            json!({"name": "Prod_West", "path": {"basename": "api", "segments": ["apps", "api"]}}),
        );
        let t = Templater::new(true, &[]).unwrap();
        assert_eq!(
            t.replace(
                "{{ .name | normalize }}-{{ .path.basename | upper }}-{{ index .path.segments 0 }}",
                &p
            )
            .unwrap(),
            "prod-west-API-apps"
        );
        assert_eq!(t.replace("{{ .nope }}", &p).unwrap(), "<no value>");
        assert_eq!(
            t.replace(r#"{{ .nope | default "dflt" }}"#, &p).unwrap(),
            "dflt"
        );
        let strict = Templater::new(true, &["missingkey=error".into()]).unwrap();
        assert!(strict.replace("{{ .nope }}", &p).is_err());
        assert!(Templater::new(true, &["missingkey=maybe".into()]).is_err());
    }

    #[test]
    fn renders_keys_and_nested_strings() {
        let t = Templater::new(false, &[]).unwrap();
        let p = params(json!({"env": "prod"}));
        assert_eq!(
            t.render_value(
                &json!({"labels": {"{{env}}-team": "a-{{env}}"}, "n": 1}),
                &p
            )
            .unwrap(),
            json!({"labels": {"prod-team": "a-prod"}, "n": 1})
        );
    }
}
