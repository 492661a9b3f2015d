//! One evaluation with jaq: the paths `path(EXPR)` gives. Run by the helper process only
//! (see the crate docs for why).

use std::collections::HashMap;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

/// Longest error text passed on: jaq's messages can quote the object.
const MAX_MESSAGE: usize = 300;

type Data = data::JustLut<Val>;

/// Compiled programs by expression: compiling with jaq's standard library costs far more
/// than running a path expression, and a fleet's expressions are few.
#[derive(Default)]
pub struct Programs {
    compiled: HashMap<String, jaq_core::Filter<Data>>,
}

/// Programs kept at most; then the cache starts over.
const MAX_PROGRAMS: usize = 1_000;

impl Programs {
    /// The paths `expression` selects in `object` (jq's `path(EXPR)`), at most
    /// `max_paths`.
    pub fn paths(
        &mut self,
        expression: &str,
        object: &Value,
        max_paths: usize,
    ) -> Result<Vec<Vec<Value>>, String> {
        if !self.compiled.contains_key(expression) {
            if self.compiled.len() >= MAX_PROGRAMS {
                self.compiled.clear();
            }
            self.compiled
                .insert(expression.to_owned(), compile(expression)?);
        }
        let filter = &self.compiled[expression];
        run(filter, object, max_paths)
    }
}

fn compile(expression: &str) -> Result<jaq_core::Filter<Data>, String> {
    let program = format!("path({expression})");
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: program.as_str(),
                path: (),
            },
        )
        .map_err(|errors| format!("does not parse ({} errors)", errors.len()))?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let undefined: Vec<String> = errors
                .iter()
                .flat_map(|(_, errs)| errs.iter().map(|(name, _)| (*name).to_owned()))
                .collect();
            format!("does not compile: undefined {}", undefined.join(", "))
        })
}

fn run(
    filter: &jaq_core::Filter<Data>,
    object: &Value,
    max_paths: usize,
) -> Result<Vec<Vec<Value>>, String> {
    let input = jaq_json::read::parse_single(object.to_string().as_bytes())
        .map_err(|e| format!("the object does not read: {e}"))?;
    let ctx = Ctx::<Data>::new(&filter.lut, Vars::new([]));
    let secret = object.get("kind").and_then(Value::as_str) == Some("Secret");
    let mut out = Vec::new();
    for item in filter.id.run((ctx, input)).map(unwrap_valr) {
        let path = item.map_err(|e| {
            if secret {
                // Its message could quote the Secret's data.
                "failed on a Secret (the error is not shown: it could quote the data)".to_owned()
            } else {
                let text = e.to_string();
                match text.char_indices().nth(MAX_MESSAGE) {
                    Some((cut, _)) => format!("failed: {}...", &text[..cut]),
                    None => format!("failed: {text}"),
                }
            }
        })?;
        if out.len() == max_paths {
            return Err(format!("selects more than {max_paths} paths"));
        }
        let path: Value = serde_json::from_str(&path.to_string())
            .map_err(|e| format!("gave a path that is not JSON: {e}"))?;
        match path {
            Value::Array(steps) => out.push(steps),
            other => return Err(format!("gave {other} where a path was expected")),
        }
    }
    Ok(out)
}
