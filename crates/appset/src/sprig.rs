//! The template functions of `goTemplate: true`: those of Masterminds' sprig that Argo CD's
//! ApplicationSet docs and users reach for, with sprig's argument order (the piped value
//! last), plus Argo CD's own `normalize`, `slugify`, `toYaml`, `fromYaml` and
//! `fromYamlArray`. Go's built-ins (`eq`, `index`, `printf`, `len`, ...) come with gtmpl.
//! Like Argo CD, nothing here reads the environment (`env`, `expandenv` are absent).

use std::collections::HashMap;

use base64::Engine as _;
use gtmpl::{Func, FuncError, Value};
use sha2::Digest as _;

use crate::params::sanitize_name;

/// Every function, by the name templates call it.
pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("upper", upper),
        ("lower", lower),
        ("title", title),
        ("trim", trim),
        ("trimAll", trim_all),
        ("trimPrefix", trim_prefix),
        ("trimSuffix", trim_suffix),
        ("trunc", trunc),
        ("replace", replace),
        ("repeat", repeat),
        ("substr", substr),
        ("nospace", nospace),
        ("quote", quote),
        ("squote", squote),
        ("cat", cat),
        ("contains", contains),
        ("hasPrefix", has_prefix),
        ("hasSuffix", has_suffix),
        ("default", default),
        ("empty", empty),
        ("coalesce", coalesce),
        ("ternary", ternary),
        ("join", join),
        ("splitList", split_list),
        ("list", list),
        ("dict", dict),
        ("toString", to_string),
        ("toJson", to_json),
        ("toPrettyJson", to_pretty_json),
        ("fromJson", from_json),
        ("toYaml", to_yaml),
        ("fromYaml", from_yaml),
        ("fromYamlArray", from_yaml_array),
        ("b64enc", b64enc),
        ("b64dec", b64dec),
        ("sha256sum", sha256sum),
        ("normalize", normalize),
        ("slugify", slugify),
        ("kebabcase", kebabcase),
        ("snakecase", snakecase),
        ("indent", indent),
        ("nindent", nindent),
        ("add", add),
        ("sub", sub),
        ("int", int),
        ("atoi", int),
        ("first", first),
        ("last", last),
    ]
}

fn err(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

/// A value as Go's `%v` prints it; nil and missing as the empty string (sprig's
/// string functions take `interface{}` and print nil as empty).
fn text(v: &Value) -> String {
    match v {
        Value::NoValue | Value::Nil => String::new(),
        other => other.to_string(),
    }
}

fn args_exact<'a>(name: &str, args: &'a [Value], n: usize) -> Result<&'a [Value], FuncError> {
    if args.len() == n {
        Ok(args)
    } else {
        Err(FuncError::ExactlyXArgs(name.into(), n))
    }
}

fn string_fn(name: &str, args: &[Value], f: impl Fn(&str) -> String) -> Result<Value, FuncError> {
    let a = args_exact(name, args, 1)?;
    Ok(Value::String(f(&text(&a[0]))))
}

fn int_of(v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| err("expected an integer")),
        Value::String(s) => Ok(s.trim().parse::<i64>().unwrap_or(0)),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::NoValue | Value::Nil => Ok(0),
        other => Err(err(format!("expected an integer, got {other}"))),
    }
}

/// Whether sprig's `empty` holds: nil, false, 0, "" and empty lists and maps.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        Value::Function(_) => false,
    }
}

fn upper(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("upper", a, str::to_uppercase)
}
fn lower(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("lower", a, str::to_lowercase)
}
fn title(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("title", a, |s| {
        let mut out = String::with_capacity(s.len());
        let mut start = true;
        for c in s.chars() {
            if start && c.is_alphabetic() {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            start = c.is_whitespace() || c == '-' || c == '_';
        }
        out
    })
}
fn trim(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("trim", a, |s| s.trim().to_owned())
}
fn trim_all(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("trimAll", a, 2)?;
    let cut = text(&a[0]);
    Ok(Value::String(
        text(&a[1]).trim_matches(|c| cut.contains(c)).to_owned(),
    ))
}
fn trim_prefix(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("trimPrefix", a, 2)?;
    let (p, s) = (text(&a[0]), text(&a[1]));
    Ok(Value::String(s.strip_prefix(&p).unwrap_or(&s).to_owned()))
}
fn trim_suffix(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("trimSuffix", a, 2)?;
    let (p, s) = (text(&a[0]), text(&a[1]));
    Ok(Value::String(s.strip_suffix(&p).unwrap_or(&s).to_owned()))
}
fn trunc(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("trunc", a, 2)?;
    let n = int_of(&a[0])?;
    let chars: Vec<char> = text(&a[1]).chars().collect();
    let len = chars.len() as i64;
    let out: String = if n < 0 {
        chars[(len + n).max(0) as usize..].iter().collect()
    } else {
        chars[..n.min(len) as usize].iter().collect()
    };
    Ok(Value::String(out))
}
fn replace(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("replace", a, 3)?;
    Ok(Value::String(
        text(&a[2]).replace(&text(&a[0]), &text(&a[1])),
    ))
}
fn repeat(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("repeat", a, 2)?;
    let n = int_of(&a[0])?.clamp(0, 10_000) as usize;
    Ok(Value::String(text(&a[1]).repeat(n)))
}
fn substr(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("substr", a, 3)?;
    let s: Vec<char> = text(&a[2]).chars().collect();
    let (start, end) = (int_of(&a[0])?, int_of(&a[1])?);
    let len = s.len() as i64;
    let start = start.clamp(0, len) as usize;
    let end = if end < 0 || end > len { len } else { end } as usize;
    Ok(Value::String(s[start.min(end)..end].iter().collect()))
}
fn nospace(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("nospace", a, |s| {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    })
}
fn quote(a: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !matches!(v, Value::NoValue | Value::Nil))
        .map(|v| serde_json::to_string(&text(v)).unwrap_or_default())
        .collect();
    Ok(Value::String(parts.join(" ")))
}
fn squote(a: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !matches!(v, Value::NoValue | Value::Nil))
        .map(|v| format!("'{}'", text(v)))
        .collect();
    Ok(Value::String(parts.join(" ")))
}
fn cat(a: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !matches!(v, Value::NoValue | Value::Nil))
        .map(text)
        .collect();
    Ok(Value::String(parts.join(" ")))
}
fn contains(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("contains", a, 2)?;
    Ok(Value::Bool(text(&a[1]).contains(&text(&a[0]))))
}
fn has_prefix(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("hasPrefix", a, 2)?;
    Ok(Value::Bool(text(&a[1]).starts_with(&text(&a[0]))))
}
fn has_suffix(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("hasSuffix", a, 2)?;
    Ok(Value::Bool(text(&a[1]).ends_with(&text(&a[0]))))
}
fn default(a: &[Value]) -> Result<Value, FuncError> {
    match a {
        [d] => Ok(d.clone()),
        [d, given] => Ok(if is_empty(given) {
            d.clone()
        } else {
            given.clone()
        }),
        _ => Err(FuncError::AtLeastXArgs("default".into(), 1)),
    }
}
fn empty(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(a.first().is_none_or(is_empty)))
}
fn coalesce(a: &[Value]) -> Result<Value, FuncError> {
    Ok(a.iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}
fn ternary(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("ternary", a, 3)?;
    Ok(if is_empty(&a[2]) {
        a[1].clone()
    } else {
        a[0].clone()
    })
}
fn join(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("join", a, 2)?;
    let sep = text(&a[0]);
    let items: Vec<String> = match &a[1] {
        Value::Array(items) => items.iter().map(text).collect(),
        other => vec![text(other)],
    };
    Ok(Value::String(items.join(&sep)))
}
fn split_list(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("splitList", a, 2)?;
    let (sep, s) = (text(&a[0]), text(&a[1]));
    Ok(Value::Array(
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_owned()))
            .collect(),
    ))
}
fn list(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(a.to_vec()))
}
fn dict(a: &[Value]) -> Result<Value, FuncError> {
    let mut map = HashMap::new();
    for pair in a.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or(Value::String(String::new()));
        map.insert(text(&pair[0]), v);
    }
    Ok(Value::Map(map))
}
fn to_string(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("toString", a, str::to_owned)
}
fn to_json(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("toJson", a, 1)?;
    Ok(Value::String(
        serde_json::to_string(&to_serde(&a[0])).unwrap_or_default(),
    ))
}
fn to_pretty_json(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("toPrettyJson", a, 1)?;
    Ok(Value::String(
        serde_json::to_string_pretty(&to_serde(&a[0])).unwrap_or_default(),
    ))
}
fn from_json(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("fromJson", a, 1)?;
    let v: serde_json::Value =
        serde_json::from_str(&text(&a[0])).map_err(|e| err(format!("fromJson: {e}")))?;
    Ok(from_serde(&v, false))
}
fn to_yaml(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("toYaml", a, 1)?;
    let y = serde_yaml_ng::to_string(&to_serde(&a[0])).map_err(|e| err(format!("toYaml: {e}")))?;
    Ok(Value::String(y.trim_end_matches('\n').to_owned()))
}
fn from_yaml(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("fromYaml", a, 1)?;
    let v: serde_json::Value =
        serde_yaml_ng::from_str(&text(&a[0])).map_err(|e| err(format!("fromYaml: {e}")))?;
    if !(v.is_object() || v.is_null()) {
        return Err(err("fromYaml: the document is not a map"));
    }
    Ok(from_serde(&v, false))
}
fn from_yaml_array(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("fromYamlArray", a, 1)?;
    let v: serde_json::Value =
        serde_yaml_ng::from_str(&text(&a[0])).map_err(|e| err(format!("fromYamlArray: {e}")))?;
    if !(v.is_array() || v.is_null()) {
        return Err(err("fromYamlArray: the document is not a list"));
    }
    Ok(from_serde(&v, false))
}
fn b64enc(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("b64enc", a, |s| {
        base64::engine::general_purpose::STANDARD.encode(s)
    })
}
fn b64dec(a: &[Value]) -> Result<Value, FuncError> {
    // sprig answers a decoding error as the error's text.
    string_fn(
        "b64dec",
        a,
        |s| match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => e.to_string(),
        },
    )
}
fn sha256sum(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("sha256sum", a, |s| {
        sha2::Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}
fn normalize(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("normalize", a, sanitize_name)
}
/// Argo CD's `slugify [maxSize=50] [smartTruncate=true] name`.
fn slugify(a: &[Value]) -> Result<Value, FuncError> {
    let (name, opts) = a
        .split_last()
        .ok_or(FuncError::AtLeastXArgs("slugify".into(), 1))?;
    let max = opts.first().map(int_of).transpose()?.unwrap_or(50).max(0) as usize;
    let smart = opts.get(1).is_none_or(|v| !is_empty(v));
    Ok(Value::String(slug(&text(name), max, smart)))
}

/// gosimple/slug over Argo CD's sanitised name: `[a-z0-9]` kept, runs of anything else one
/// `-`, trimmed; cut to `max`, at the last `-` before it when `smart`.
pub fn slug(name: &str, max: usize, smart: bool) -> String {
    let sanitized = sanitize_name(name);
    let mut out = String::new();
    for c in sanitized.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_owned();
    if max == 0 || out.len() <= max {
        return out;
    }
    let cut = &out[..max];
    if smart
        && out.as_bytes()[max] != b'-'
        && let Some(i) = cut.rfind('-')
    {
        return cut[..i].to_owned();
    }
    cut.trim_end_matches('-').to_owned()
}

fn words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}
fn kebabcase(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("kebabcase", a, |s| words(s).join("-"))
}
fn snakecase(a: &[Value]) -> Result<Value, FuncError> {
    string_fn("snakecase", a, |s| words(s).join("_"))
}
fn indent(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("indent", a, 2)?;
    let pad = " ".repeat(int_of(&a[0])?.clamp(0, 1000) as usize);
    let s = text(&a[1]);
    Ok(Value::String(format!(
        "{pad}{}",
        s.replace('\n', &format!("\n{pad}"))
    )))
}
fn nindent(a: &[Value]) -> Result<Value, FuncError> {
    let Value::String(s) = indent(a)? else {
        unreachable!()
    };
    Ok(Value::String(format!("\n{s}")))
}
fn add(a: &[Value]) -> Result<Value, FuncError> {
    let mut sum = 0i64;
    for v in a {
        sum = sum.wrapping_add(int_of(v)?);
    }
    Ok(Value::from(sum))
}
fn sub(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("sub", a, 2)?;
    Ok(Value::from(int_of(&a[0])?.wrapping_sub(int_of(&a[1])?)))
}
fn int(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("int", a, 1)?;
    Ok(Value::from(int_of(&a[0])?))
}
fn first(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("first", a, 1)?;
    match &a[0] {
        Value::Array(items) => Ok(items.first().cloned().unwrap_or(Value::Nil)),
        other => Err(err(format!("first: expected a list, got {other}"))),
    }
}
fn last(a: &[Value]) -> Result<Value, FuncError> {
    let a = args_exact("last", a, 1)?;
    match &a[0] {
        Value::Array(items) => Ok(items.last().cloned().unwrap_or(Value::Nil)),
        other => Err(err(format!("last: expected a list, got {other}"))),
    }
}

/// JSON into a template value; with `strict` a missing map key is an error
/// (`missingkey=error`), else it reads as Go's `<no value>`.
pub fn from_serde(v: &serde_json::Value, strict: bool) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => {
            Value::Array(a.iter().map(|x| from_serde(x, strict)).collect())
        }
        serde_json::Value::Object(o) => {
            let map: HashMap<String, Value> = o
                .iter()
                .map(|(k, x)| (k.clone(), from_serde(x, strict)))
                .collect();
            if strict {
                Value::Object(map)
            } else {
                Value::Map(map)
            }
        }
    }
}

/// A template value as JSON, map keys sorted as Go's encoders write them.
pub fn to_serde(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_serde).collect()),
        Value::Map(m) | Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), to_serde(&m[k])))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slug_as_argo_cd() {
        assert_eq!(slug("Hello World", 50, true), "hello-world");
        assert_eq!(slug("a-very-long-name-here", 12, true), "a-very-long");
        assert_eq!(slug("a-very-long-name-here", 12, false), "a-very-long");
        assert_eq!(slug("abc.def", 50, true), "abc-def");
    }
}
