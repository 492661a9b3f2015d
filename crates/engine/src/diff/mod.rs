//! Desired (rendered from Git) against live (read from the cluster), reported the way Argo CD
//! reports it for an app synced by server-side apply under the field manager
//! [`FIELD_MANAGER`].
//!
//! Rules, in order:
//! - No live object: OutOfSync, every desired field a change.
//! - Both sides are normalized: `metadata.managedFields`, `resourceVersion`, `uid`,
//!   `generation`, `creationTimestamp`, `selfLink`, `status`, the
//!   `kubectl.kubernetes.io/last-applied-configuration` and `argocd.argoproj.io/tracking-id`
//!   annotations go; a Secret's `stringData` is folded into base64 `data`, as the API
//!   server stores it. `apiVersion` is not compared: live is expected to be read at the
//!   desired version.
//! - Only what the manifest states is compared: live-only fields (defaults, fields other
//!   managers own) are not differences. A manifest `null`, empty map, empty list, `false`,
//!   `0` or `""` matches an absent live field, because the API server drops such values.
//! - Lists of built-in kinds merge by key as server-side apply does
//!   ([`k8s_patch::schema::list_type`]): each desired item is matched to the live item with
//!   its keys (a key the manifest omits, like a defaulted `protocol`, matches anything), and
//!   live-only items are not differences. Set lists (`finalizers`) need the desired values
//!   present. Atomic lists (every list of a custom resource) of equal length are compared
//!   item by item on the desired items' fields; of different length they differ whole.
//! - Numbers compare by value; resource quantities of built-in kinds by amount
//!   (`500m` = `0.5`).
//! - What a sync would remove is a difference too: a live field [`FIELD_MANAGER`] applied
//!   that the manifest no longer sets and no other manager owns.
//! - `ignoreDifferences` rules matching the resource drop their JSON pointers and the fields
//!   their `managedFieldsManagers` own from both sides, and what their `jqPathExpressions`
//!   select on each side from that side (as Argo CD applies `del(EXPR)` to each), through
//!   the process's [`JqPaths`] evaluator (`gitfleet-jq`); without one they are refused.
//! - Secret values are masked (`++++++++`) in everything returned.

mod managed_fields;
mod path;
mod quantity;
mod render;
pub mod server_side;
pub mod settings;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gitfleet_model::{ResourceIgnoreDifferences, SyncStatusCode, TRACKING_ANNOTATION};
use k8s_patch::schema::{ListType, list_type};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::glob::Glob;
use crate::resource::ResourceRef;
use path::{Path, Seg, child, json_eq};

pub use render::render_unified;

/// The server-side apply field manager gitfleet syncs with, as Argo CD does.
pub const FIELD_MANAGER: &str = "argocd-controller";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const SECRET_MASK: &str = "++++++++";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiffOptions {
    /// The app's `spec.ignoreDifferences`.
    pub ignore_differences: Vec<IgnoreRule>,
}

/// One `spec.ignoreDifferences` entry. Empty `group` is the core group; `kind` and `group`
/// are globs (compiled once, here); empty `name`/`namespace` match any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IgnoreRule {
    #[serde(default)]
    pub group: Glob,
    #[serde(default)]
    pub kind: Glob,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub json_pointers: Vec<String>,
    /// Evaluated by the installed [`JqPaths`]; without one a matching rule with any makes
    /// [`compare`] fail.
    #[serde(default)]
    pub jq_path_expressions: Vec<String>,
    #[serde(default)]
    pub managed_fields_managers: Vec<String>,
}

impl DiffOptions {
    /// The options of an app with these `spec.ignoreDifferences`.
    pub fn of(rules: &[ResourceIgnoreDifferences]) -> Self {
        DiffOptions {
            ignore_differences: rules.iter().map(IgnoreRule::from).collect(),
        }
    }
}

impl From<&ResourceIgnoreDifferences> for IgnoreRule {
    fn from(r: &ResourceIgnoreDifferences) -> Self {
        Self {
            group: Glob::new(&r.group),
            kind: Glob::new(&r.kind),
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            json_pointers: r.json_pointers.clone(),
            jq_path_expressions: r.jq_path_expressions.clone(),
            managed_fields_managers: r.managed_fields_managers.clone(),
        }
    }
}

impl IgnoreRule {
    pub fn matches(&self, r: &ResourceRef) -> bool {
        self.group.matches(&r.group)
            && self.kind.matches(&r.kind)
            && (self.name.is_empty() || self.name == r.name)
            && (self.namespace.is_empty() || self.namespace == r.namespace)
    }
}

/// The verdict for one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceDiff {
    /// Synced or OutOfSync.
    pub sync: SyncStatusCode,
    pub normalized_desired: Value,
    /// `Null` when the object does not exist live.
    pub normalized_live: Value,
    /// Empty exactly when Synced.
    pub changes: Vec<FieldChange>,
}

/// One difference: a field the manifest sets that live lacks or holds otherwise (`live`
/// `None` when absent), or a live field a sync would remove (`desired` `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// `.spec.replicas`, `.spec.template.spec.containers[name=web].image`; `""` is the
    /// whole object.
    pub path: String,
    pub desired: Option<Value>,
    pub live: Option<Value>,
}

/// Evaluates `jqPathExpressions`: for each object, the paths (jq's `path(EXPR)`: object
/// keys as strings, list indexes as numbers) an expression selects in it, or why it gave
/// none. Several objects at once: a comparison asks for both sides in one call.
pub trait JqPaths: Send + Sync {
    fn paths(&self, expression: &str, objects: &[&Value]) -> Result<Vec<Vec<Vec<Value>>>, String>;
}

static JQ: std::sync::OnceLock<Box<dyn JqPaths>> = std::sync::OnceLock::new();

/// Installs the process's jq evaluator (each service does at start; `gitfleet-jq`); the
/// first one installed stays. False when one was there already.
pub fn install_jq(evaluator: Box<dyn JqPaths>) -> bool {
    JQ.set(evaluator).is_ok()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error(
        "{resource}: ignoreDifferences jqPathExpressions need a jq evaluator, and this process has none ({expression:?})"
    )]
    JqUnsupported {
        resource: String,
        expression: String,
    },
    #[error("{resource}: ignoreDifferences jqPathExpression {expression:?}: {message}")]
    Jq {
        resource: String,
        expression: String,
        message: String,
    },
    #[error("{resource}: ignoreDifferences json pointer {pointer:?} is malformed")]
    BadPointer { resource: String, pointer: String },
}

/// Compares one resource's desired manifest with its live object.
pub fn compare(
    desired: &Value,
    live: Option<&Value>,
    opts: &DiffOptions,
) -> Result<ResourceDiff, DiffError> {
    let resource = ResourceRef::from_object(desired);
    let mut norm_desired = normalize(desired);
    let mut norm_live = live.map(normalize);
    let ignored = ignored_paths(opts, &resource, desired, live)?;
    for segs in ignored.both.iter().chain(&ignored.desired) {
        path::remove(&mut norm_desired, segs, true);
    }
    if let Some(l) = &mut norm_live {
        for segs in ignored.both.iter().chain(&ignored.live) {
            path::remove(l, segs, false);
        }
    }

    let kind = resource.kind.clone();
    let mut walker = Walker {
        builtin: k8s_patch::schema::is_builtin_group(&resource.group),
        kind: &kind,
        changes: Vec::new(),
    };
    match &norm_live {
        None => walker.changes.push(Change {
            path: Path::default(),
            desired: Some(norm_desired.clone()),
            live: None,
        }),
        Some(l) => {
            let mut top = norm_desired.clone();
            if let Some(m) = top.as_object_mut() {
                m.shift_remove("apiVersion");
            }
            walker.walk(&top, Some(l), &mut Path::default(), &mut Vec::new());
            if let Some(raw) = live {
                walker.removed_by_apply(raw, &norm_desired, l);
            }
        }
    }
    let changes = walker.changes;
    let is_secret = resource.group.is_empty() && kind == "Secret";
    let mut diff = ResourceDiff {
        sync: if changes.is_empty() {
            SyncStatusCode::Synced
        } else {
            SyncStatusCode::OutOfSync
        },
        normalized_desired: norm_desired,
        normalized_live: norm_live.unwrap_or(Value::Null),
        changes: Vec::new(),
    };
    if is_secret {
        mask_secret(&mut diff.normalized_desired, &mut diff.normalized_live);
    }
    diff.changes = changes
        .into_iter()
        .map(|c| {
            let (mut desired, mut live) = (c.desired, c.live);
            if is_secret && secret_data_path(&c.path) {
                mask_change(&c.path, &mut desired, &mut live);
            }
            FieldChange {
                path: c.path.to_string(),
                desired,
                live,
            }
        })
        .collect();
    Ok(diff)
}

/// What the `ignoreDifferences` rules matching a resource cover: on both sides, their
/// JSON pointers and the fields their `managedFieldsManagers` own in live; on each side,
/// what their jq expressions select there (last index first, so removing one list item
/// does not move the next).
#[derive(Default)]
struct Ignored {
    both: Vec<Vec<Seg>>,
    desired: Vec<Vec<Seg>>,
    live: Vec<Vec<Seg>>,
}

fn ignored_paths(
    opts: &DiffOptions,
    resource: &ResourceRef,
    desired: &Value,
    live: Option<&Value>,
) -> Result<Ignored, DiffError> {
    let rules: Vec<&IgnoreRule> = opts
        .ignore_differences
        .iter()
        .filter(|r| r.matches(resource))
        .collect();
    let mut ignored = Ignored::default();
    for pointer in rules.iter().flat_map(|r| &r.json_pointers) {
        ignored
            .both
            .push(pointer_segs(pointer).ok_or_else(|| DiffError::BadPointer {
                resource: resource.to_string(),
                pointer: pointer.clone(),
            })?);
    }
    let managers: Vec<&str> = rules
        .iter()
        .flat_map(|r| &r.managed_fields_managers)
        .map(String::as_str)
        .collect();
    if let (Some(raw), false) = (live, managers.is_empty()) {
        for trie in managed_fields::tries(raw, |m, _| managers.contains(&m)) {
            ignored.both.extend(managed_fields::leaves(trie));
        }
    }
    for expression in rules.iter().flat_map(|r| &r.jq_path_expressions) {
        let Some(jq) = JQ.get() else {
            return Err(DiffError::JqUnsupported {
                resource: resource.to_string(),
                expression: expression.clone(),
            });
        };
        let objects: Vec<&Value> = std::iter::once(desired).chain(live).collect();
        let mut sides = jq
            .paths(expression, &objects)
            .map_err(|message| DiffError::Jq {
                resource: resource.to_string(),
                expression: expression.clone(),
                message,
            })?
            .into_iter()
            .map(|paths| {
                let mut segs: Vec<Vec<Seg>> = paths.iter().filter_map(|p| jq_segs(p)).collect();
                segs.sort_by(|a, b| seg_order(b, a));
                segs
            });
        ignored.desired.extend(sides.next().unwrap_or_default());
        ignored.live.extend(sides.next().unwrap_or_default());
    }
    Ok(ignored)
}

/// A jq path (`["spec", "containers", 1]`) as steps; `None` for the whole object (`del(.)`
/// is no ignore rule) or a step that is neither a key nor an index.
fn jq_segs(path: &[Value]) -> Option<Vec<Seg>> {
    if path.is_empty() {
        return None;
    }
    path.iter()
        .map(|step| match step {
            Value::String(key) => Some(Seg::Field(key.clone())),
            Value::Number(n) => n.as_u64().map(|i| Seg::Index(i as usize)),
            _ => None,
        })
        .collect()
}

/// Paths in order, list indexes by number.
fn seg_order(a: &[Seg], b: &[Seg]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Seg::Index(i), Seg::Index(j)) => i.cmp(j),
            (Seg::Field(k), Seg::Field(l)) => k.cmp(l),
            _ => std::cmp::Ordering::Equal,
        };
        if o.is_ne() {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// `RespectIgnoreDifferences=true`: `desired` with every field the matching
/// `ignoreDifferences` rules cover (JSON pointers, fields their `managedFieldsManagers`
/// own) set to its value in `live`, or removed where live has none, so a sync leaves
/// those fields as they are (Argo CD's `normalizeTargetResources`). `status` is never
/// taken from live: it is the resource's controller's.
pub fn respect_ignored(
    desired: &Value,
    live: &Value,
    opts: &DiffOptions,
) -> Result<Value, DiffError> {
    let resource = ResourceRef::from_object(desired);
    let mut out = desired.clone();
    let ignored = ignored_paths(opts, &resource, desired, Some(live))?;
    // What jq selects in live is what the sync keeps as live has it.
    for segs in ignored.both.into_iter().chain(ignored.live) {
        if segs.is_empty() || matches!(segs.first(), Some(Seg::Field(f)) if f == "status") {
            continue;
        }
        let mut at = Some(live);
        for seg in &segs {
            at = at.and_then(|v| child(v, seg, false));
        }
        match at {
            Some(value) => path::insert(&mut out, &segs, value.clone()),
            None => path::remove(&mut out, &segs, true),
        }
    }
    Ok(out)
}

/// Drops what the API server or the sync adds, and folds Secret `stringData` into `data`.
fn normalize(obj: &Value) -> Value {
    let mut out = obj.clone();
    let Some(root) = out.as_object_mut() else {
        return out;
    };
    root.shift_remove("status");
    if let Some(Value::Object(meta)) = root.get_mut("metadata") {
        for f in [
            "managedFields",
            "resourceVersion",
            "uid",
            "generation",
            "creationTimestamp",
            "selfLink",
        ] {
            meta.shift_remove(f);
        }
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            ann.shift_remove(LAST_APPLIED);
            ann.shift_remove(TRACKING_ANNOTATION);
            if ann.is_empty() {
                meta.shift_remove("annotations");
            }
        }
    }
    let is_secret = root.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && root.get("kind").and_then(Value::as_str) == Some("Secret");
    if is_secret && let Some(Value::Object(string_data)) = root.shift_remove("stringData") {
        let data = root
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(data) = data {
            for (k, v) in string_data {
                let text = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                data.insert(k, Value::String(STANDARD.encode(text)));
            }
        }
    }
    out
}

/// RFC 6901 pointer to path steps; numeric tokens index lists.
fn pointer_segs(pointer: &str) -> Option<Vec<Seg>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .map(|t| match t.parse::<usize>() {
                Ok(i) if !t.starts_with('+') => Seg::Index(i),
                _ => Seg::Field(t),
            })
            .collect(),
    )
}

fn secret_data_path(p: &Path) -> bool {
    matches!(p.0.first(), Some(Seg::Field(f)) if f == "data" || f == "stringData") || p.0.is_empty()
}

/// Equal values share a mask; differing ones get masks of different length, so a reader
/// still sees that a value changed, as Argo CD shows it.
fn mask_change(path: &Path, desired: &mut Option<Value>, live: &mut Option<Value>) {
    fn mask(path: &Path, v: &mut Value, mask: &str) {
        let map = match path.0.len() {
            0 => v.get_mut("data"),
            1 => Some(v),
            _ => {
                *v = Value::String(mask.into());
                None
            }
        };
        if let Some(Value::Object(m)) = map {
            m.values_mut().for_each(|x| *x = Value::String(mask.into()));
        }
    }
    if let Some(d) = desired {
        mask(path, d, &format!("{SECRET_MASK}+"));
    }
    if let Some(l) = live {
        mask(path, l, SECRET_MASK);
    }
}

/// One object as a user may see it, as Argo CD's `HideSecretData` shows it alone: a core
/// `Secret`'s `stringData` folded into `data` (base64, as the API server stores it), every
/// value replaced by `++++++++`, and a `last-applied-configuration` annotation (which
/// holds the values too) replaced whole. Other objects are left as they are.
pub fn hide_secret_data(obj: &mut Value) {
    use base64::Engine as _;
    let is_secret = obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1");
    let Some(map) = obj.as_object_mut().filter(|_| is_secret) else {
        return;
    };
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(data) = data {
            for (k, v) in string_data {
                let encoded = match v {
                    Value::String(s) => {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(s))
                    }
                    other => other,
                };
                data.insert(k, encoded);
            }
        }
    }
    if let Some(Value::Object(data)) = map.get_mut("data") {
        data.values_mut()
            .for_each(|v| *v = Value::String(SECRET_MASK.into()));
    }
    if let Some(Value::Object(annotations)) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        && let Some(v) = annotations.get_mut("kubectl.kubernetes.io/last-applied-configuration")
    {
        *v = Value::String(SECRET_MASK.into());
    }
}

fn mask_secret(desired: &mut Value, live: &mut Value) {
    let live_data = live.get("data").cloned();
    if let Some(Value::Object(d)) = desired.get_mut("data") {
        for (k, v) in d.iter_mut() {
            let same = live_data
                .as_ref()
                .and_then(|l| l.get(k))
                .is_some_and(|l| l == v);
            *v = Value::String(if same {
                SECRET_MASK.into()
            } else {
                format!("{SECRET_MASK}+")
            });
        }
    }
    if let Some(Value::Object(d)) = live.get_mut("data") {
        d.values_mut()
            .for_each(|v| *v = Value::String(SECRET_MASK.into()));
    }
}

struct Change {
    path: Path,
    desired: Option<Value>,
    live: Option<Value>,
}

struct Walker<'a> {
    builtin: bool,
    kind: &'a str,
    changes: Vec<Change>,
}

/// A manifest value that says nothing the API server would keep.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

const QUANTITY_PARENTS: [&str; 6] = [
    "resources",
    "hard",
    "capacity",
    "overhead",
    "limits",
    "requests",
];

impl Walker<'_> {
    fn change(&mut self, path: &Path, desired: Option<&Value>, live: Option<&Value>) {
        self.changes.push(Change {
            path: path.clone(),
            desired: desired.cloned(),
            live: live.cloned(),
        });
    }

    /// `fields` are the field names from the root with list steps left out: the key
    /// [`list_type`] reads.
    fn walk(
        &mut self,
        desired: &Value,
        live: Option<&Value>,
        path: &mut Path,
        fields: &mut Vec<String>,
    ) {
        let live = live.filter(|l| !l.is_null());
        match (desired, live) {
            (Value::Null, _) => {}
            (d, None) if is_zero(d) => {}
            (_, None) => self.change(path, Some(desired), None),
            (Value::Object(dm), Some(Value::Object(lm))) => {
                for (k, dv) in dm {
                    path.0.push(Seg::Field(k.clone()));
                    fields.push(k.clone());
                    self.walk(dv, lm.get(k), path, fields);
                    fields.pop();
                    path.0.pop();
                }
            }
            (Value::Array(da), Some(Value::Array(la))) => self.walk_list(da, la, path, fields),
            (Value::Object(_) | Value::Array(_), Some(l)) => {
                self.change(path, Some(desired), Some(l))
            }
            (d, Some(l)) => {
                let quantity = self.builtin
                    && fields
                        .iter()
                        .any(|f| QUANTITY_PARENTS.contains(&f.as_str()))
                    && quantity::equal(d, l);
                if !json_eq(d, l) && !quantity {
                    self.change(path, Some(d), Some(l));
                }
            }
        }
    }

    fn walk_list(&mut self, da: &[Value], la: &[Value], path: &mut Path, fields: &mut Vec<String>) {
        let ty = if self.builtin {
            let names: Vec<&str> = fields.iter().map(String::as_str).collect();
            list_type(self.kind, &names)
        } else {
            ListType::Atomic
        };
        match ty {
            ListType::Map(keys) if da.iter().all(Value::is_object) => {
                for item in da {
                    let key: Vec<(String, Value)> = keys
                        .iter()
                        .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                        .collect();
                    if key.is_empty() {
                        // Without its key the item cannot be matched: the list differs whole.
                        self.change(
                            path,
                            Some(&Value::Array(da.to_vec())),
                            Some(&Value::Array(la.to_vec())),
                        );
                        return;
                    }
                    let seg = Seg::Key(key);
                    let live_item = child(&Value::Array(la.to_vec()), &seg, false).cloned();
                    path.0.push(seg);
                    self.walk(item, live_item.as_ref(), path, fields);
                    path.0.pop();
                }
            }
            ListType::Set => {
                if !da.iter().all(|d| la.iter().any(|l| json_eq(d, l))) {
                    self.change(
                        path,
                        Some(&Value::Array(da.to_vec())),
                        Some(&Value::Array(la.to_vec())),
                    );
                }
            }
            _ if da.len() == la.len() => {
                for (i, (d, l)) in da.iter().zip(la).enumerate() {
                    path.0.push(Seg::Index(i));
                    self.walk(d, Some(l), path, fields);
                    path.0.pop();
                }
            }
            _ => self.change(
                path,
                Some(&Value::Array(da.to_vec())),
                Some(&Value::Array(la.to_vec())),
            ),
        }
    }

    /// Live fields [`FIELD_MANAGER`] applied that the manifest dropped: the next apply
    /// removes them unless another manager holds them too.
    fn removed_by_apply(&mut self, raw_live: &Value, desired: &Value, live: &Value) {
        let ours = managed_fields::tries(raw_live, |m, op| m == FIELD_MANAGER && op == "Apply");
        let others =
            managed_fields::tries(raw_live, |m, op| !(m == FIELD_MANAGER && op == "Apply"));
        for trie in ours {
            self.owned_walk(
                trie,
                Some(desired),
                live,
                &mut Path::default(),
                &mut Vec::new(),
                &others,
            );
        }
    }

    fn owned_walk<'k>(
        &mut self,
        trie: &'k Map<String, Value>,
        desired: Option<&Value>,
        live: &Value,
        path: &mut Path,
        keys: &mut Vec<&'k str>,
        others: &[&Map<String, Value>],
    ) {
        for (key, sub) in trie {
            let Some(seg) = managed_fields::seg_of(key) else {
                continue;
            };
            let Some(live_child) = child(live, &seg, false) else {
                continue;
            };
            let desired_child = desired
                .and_then(|d| child(d, &seg, true))
                .filter(|d| !d.is_null());
            keys.push(key);
            path.0.push(seg);
            match (desired_child, sub.as_object()) {
                // Gone from the manifest: reported whole where nobody else holds any of
                // it, else field by field down to what only we hold.
                (None, sub) => {
                    if !managed_fields::any_owns(others, keys) {
                        self.change(path, None, Some(live_child));
                    } else if let Some(sub) = sub.filter(|s| !s.is_empty()) {
                        self.owned_walk(sub, None, live_child, path, keys, others);
                    }
                }
                (Some(d), Some(sub)) if !sub.is_empty() => {
                    self.owned_walk(sub, Some(d), live_child, path, keys, others)
                }
                _ => {}
            }
            path.0.pop();
            keys.pop();
        }
    }
}

#[cfg(test)]
mod hide_tests {
    use super::*;

    #[test]
    fn a_secret_shown_alone_keeps_its_keys_not_its_values() {
        let mut secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"a\":\"czNjcjN0\"}}"}},
            "data": {"a": "czNjcjN0"},
            "stringData": {"b": "plain-secret"},
        });
        hide_secret_data(&mut secret);
        let text = secret.to_string();
        assert!(
            !text.contains("czNjcjN0") && !text.contains("plain-secret"),
            "{text}"
        );
        assert_eq!(secret["data"]["a"], SECRET_MASK);
        assert_eq!(secret["data"]["b"], SECRET_MASK);
        assert!(secret.get("stringData").is_none());
        // Not a core Secret: untouched.
        let mut other = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Secret", "data": {"a": "x"}});
        hide_secret_data(&mut other);
        assert_eq!(other["data"]["a"], "x");
    }
}
