//! Policy CSV as Argo CD reads it (`loadPolicyLine`): one rule a line, fields split by
//! commas with leading spaces trimmed and double quotes honoured; `#` starts a comment
//! line. `p` lines have five fields after the `p`, `g` lines two. A bad line is named by
//! its number, so the policy it belongs to can be refused whole.

/// One policy line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `p, <subject>, <resource>, <action>, <object>, <allow|deny>`.
    Policy([String; 5]),
    /// `g, <member>, <role>`.
    Grouping(String, String),
}

/// A line of a policy that is not one; `source` is where the policy came from
/// (`argocd-rbac-cm policy.csv`, `project platform`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin} line {line}: {message}: {text:?}")]
pub struct PolicyError {
    pub origin: String,
    pub line: usize,
    pub text: String,
    pub message: String,
}

/// Parses every line of `csv`; the first bad line is the error.
pub fn parse_policy(source: &str, csv: &str) -> Result<Vec<Rule>, PolicyError> {
    let mut rules = Vec::new();
    for (index, raw) in csv.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |message: String| PolicyError {
            origin: source.to_owned(),
            line: index + 1,
            text: line.to_owned(),
            message,
        };
        let fields = split(line).map_err(fail)?;
        let rule = match fields.first().map(String::as_str) {
            Some("p") if fields.len() == 6 => {
                let effect = fields[5].as_str();
                if effect != "allow" && effect != "deny" {
                    return Err(fail(format!(
                        "the effect must be allow or deny, not {effect:?}"
                    )));
                }
                if fields[1..5].iter().any(String::is_empty) {
                    return Err(fail(
                        "subject, resource, action and object must not be empty".to_owned(),
                    ));
                }
                let mut it = fields.into_iter().skip(1);
                Rule::Policy(std::array::from_fn(|_| it.next().unwrap_or_default()))
            }
            Some("p") => {
                return Err(fail(format!(
                    "a p line has 6 fields (p, subject, resource, action, object, effect), this one {}",
                    fields.len()
                )));
            }
            Some("g") if fields.len() == 3 => {
                if fields[1].is_empty() || fields[2].is_empty() {
                    return Err(fail("member and role must not be empty".to_owned()));
                }
                Rule::Grouping(fields[1].clone(), fields[2].clone())
            }
            Some("g") => {
                return Err(fail(format!(
                    "a g line has 3 fields (g, member, role), this one {}",
                    fields.len()
                )));
            }
            _ => return Err(fail("a line starts with p or g".to_owned())),
        };
        rules.push(rule);
    }
    Ok(rules)
}

/// Go's `encoding/csv` for one record with `TrimLeadingSpace`: fields may be quoted, and a
/// quote inside a quoted field is doubled.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".to_owned()),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("{c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim_end().to_owned());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a quote inside an unquoted field".to_owned()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim_end().to_owned());
        }
    }
}
