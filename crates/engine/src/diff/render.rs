//! `app diff` text: for each resource, its live state cut down to what the manifest states
//! (plus what a sync would remove) against the manifest, as YAML in unified-diff form.

use serde_json::Value;

use super::ResourceDiff;
use super::path::{Seg, child};

const CONTEXT: usize = 3;

/// Renders one resource's diff; `name` heads it (`apps/Deployment default/web`). Empty
/// when Synced.
pub fn render_unified(name: &str, diff: &ResourceDiff) -> String {
    if diff.changes.is_empty() {
        return String::new();
    }
    let desired = to_yaml(&diff.normalized_desired);
    let live = if diff.normalized_live.is_null() {
        Vec::new()
    } else {
        let mut projected =
            project(&diff.normalized_desired, &diff.normalized_live).unwrap_or(Value::Null);
        for c in diff.changes.iter().filter(|c| c.desired.is_none()) {
            if let (Some(segs), Some(v)) = (parse_path(&c.path), &c.live) {
                super::path::insert(&mut projected, &segs, v.clone());
            }
        }
        to_yaml(&projected)
    };
    let mut out = format!("===== {name} ======\n--- live\n+++ desired\n");
    for line in unified(&live, &desired) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn to_yaml(v: &Value) -> Vec<String> {
    if v.is_null() {
        return Vec::new();
    }
    serde_yaml_ng::to_string(v)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Live, keeping only what `desired` states, in desired's order.
fn project(desired: &Value, live: &Value) -> Option<Value> {
    match (desired, live) {
        (_, Value::Null) => None,
        (Value::Object(d), Value::Object(l)) => Some(Value::Object(
            d.iter()
                .filter_map(|(k, dv)| Some((k.clone(), project(dv, l.get(k)?)?)))
                .collect(),
        )),
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => Some(Value::Array(
            d.iter()
                .zip(l)
                .filter_map(|(dv, lv)| project(dv, lv))
                .collect(),
        )),
        (Value::Array(d), Value::Array(_)) if d.iter().all(Value::is_object) => {
            // Keyed lists: match items on the fields they share that look like keys.
            let items: Vec<Value> = d
                .iter()
                .filter_map(|dv| {
                    let keys: Vec<(String, Value)> = [
                        "name",
                        "containerPort",
                        "port",
                        "mountPath",
                        "devicePath",
                        "ip",
                        "topologyKey",
                        "type",
                        "uid",
                    ]
                    .iter()
                    .filter_map(|k| dv.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                    .collect();
                    if keys.is_empty() {
                        return None;
                    }
                    let lv = child(live, &Seg::Key(keys), true)?;
                    project(dv, lv)
                })
                .collect();
            // No item could be matched: show live whole rather than nothing.
            Some(if items.is_empty() {
                live.clone()
            } else {
                Value::Array(items)
            })
        }
        (_, l) => Some(l.clone()),
    }
}

/// Re-reads a rendered path (the inverse of `Path`'s display, for the shapes
/// [`super::compare`] emits from managed fields).
fn parse_path(text: &str) -> Option<Vec<Seg>> {
    let mut segs = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            segs.push(Seg::Field(r[..end].to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]")?;
            segs.push(Seg::Field(r[..end].to_owned()));
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            if let Ok(i) = inner.parse::<usize>() {
                segs.push(Seg::Index(i));
            } else if let Some(v) = inner.strip_prefix('=') {
                segs.push(Seg::Value(
                    serde_json::from_str(v).unwrap_or(Value::String(v.to_owned())),
                ));
            } else {
                let keys = inner
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        let v = serde_json::from_str::<Value>(v)
                            .ok()
                            .filter(|v| !v.is_string())
                            .unwrap_or(Value::String(v.to_owned()));
                        Some((k.to_owned(), v))
                    })
                    .collect::<Option<Vec<_>>>()?;
                segs.push(Seg::Key(keys));
            }
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(segs)
}

/// Unified-diff hunks of `a` → `b`, with line-level LCS after trimming the common ends.
fn unified(a: &[String], b: &[String]) -> Vec<String> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    // ops over the whole of a and b: ' ' keep, '-' from a, '+' from b
    let mut ops: Vec<(char, &str)> = a[..prefix].iter().map(|l| (' ', l.as_str())).collect();
    let (n, m) = (am.len(), bm.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if am[i] == bm[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && am[i] == bm[j] {
            ops.push((' ', &am[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // What goes before what comes, as `diff -u` (and so `argocd app diff`) prints.
            ops.push(('-', &am[i]));
            i += 1;
        } else {
            ops.push(('+', &bm[j]));
            j += 1;
        }
    }
    ops.extend(a[a.len() - suffix..].iter().map(|l| (' ', l.as_str())));

    let mut out = Vec::new();
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c != ' ')
        .map(|(i, _)| i)
        .collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= end + 2 * CONTEXT + 1 {
            k += 1;
            end = changed[k];
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let a_start = ops[..start].iter().filter(|(c, _)| *c != '+').count();
        let b_start = ops[..start].iter().filter(|(c, _)| *c != '-').count();
        let a_len = ops[start..end].iter().filter(|(c, _)| *c != '+').count();
        let b_len = ops[start..end].iter().filter(|(c, _)| *c != '-').count();
        out.push(format!(
            "@@ -{},{a_len} +{},{b_len} @@",
            a_start + usize::from(a_len > 0),
            b_start + usize::from(b_len > 0)
        ));
        out.extend(ops[start..end].iter().map(|(c, l)| format!("{c}{l}")));
        k += 1;
    }
    out
}
