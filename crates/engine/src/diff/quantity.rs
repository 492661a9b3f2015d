//! Kubernetes resource quantities (`500m`, `0.5`, `1Gi`, `1e3`) compared by amount, as
//! Argo CD sees them after its typed round trip canonicalizes them.

use serde_json::Value;

/// Nano-units; 1Ei is 1.15e27 nano, well inside i128.
fn parse(s: &str) -> Option<i128> {
    let s = s.trim();
    let (num, mult): (&str, i128) = [
        ("Ki", 1i128 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
    ]
    .iter()
    .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m * 1_000_000_000)))
    .or_else(|| {
        [
            ("n", 1i128),
            ("u", 1_000),
            ("m", 1_000_000),
            ("k", 1_000_000_000_000),
            ("M", 1_000_000_000_000_000),
            ("G", 1_000_000_000_000_000_000),
            ("T", 1_000_000_000_000_000_000_000),
            ("P", 1_000_000_000_000_000_000_000_000),
            ("E", 1_000_000_000_000_000_000_000_000_000),
        ]
        .iter()
        .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
    })
    .unwrap_or((s, 1_000_000_000));
    let (mantissa, exp) = match num.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (num, 0),
    };
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    // value = digits * 10^(exp - frac.len()) * mult
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    let mut value = digits.checked_mul(mult)?;
    let scale = exp - frac.len() as i32;
    if scale >= 0 {
        value = value.checked_mul(10i128.checked_pow(scale as u32)?)?;
    } else {
        let div = 10i128.checked_pow((-scale) as u32)?;
        value /= div;
    }
    Some(if neg { -value } else { value })
}

fn amount(v: &Value) -> Option<i128> {
    match v {
        Value::String(s) => parse(s),
        Value::Number(n) => parse(&n.to_string()),
        _ => None,
    }
}

/// Whether both are quantities of the same amount.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    matches!((amount(a), amount(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_amount_different_spelling() {
        assert!(equal(&json!("500m"), &json!("0.5")));
        assert!(equal(&json!(0.5), &json!("500m")));
        assert!(equal(&json!("1Gi"), &json!("1073741824")));
        assert!(equal(&json!("1k"), &json!("1e3")));
        assert!(!equal(&json!("1G"), &json!("1Gi")));
        assert!(!equal(&json!("web"), &json!("web")));
    }
}
