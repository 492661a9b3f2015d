//! The verbs (get, list, create, update, patch, apply, delete) on one cluster's store,
//! with the API server's rules: optimistic concurrency, generation, defaults, field
//! ownership, finalizers; deletes go through `gc`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::defaults;
use crate::error::{ApiError, Cause, Result};
use crate::gc::{Propagation, delete_object, sweep};
use crate::resources::{ResourceKey, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{ClusterState, EventType, Stored};
use crate::table::TableRequest;
use crate::validation;

/// What a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    fn ns(&self) -> &str {
        if self.rt.namespaced {
            self.namespace.as_deref().unwrap_or("")
        } else {
            ""
        }
    }
}

/// Query parameters, as sent (kube-rs may send an empty leading pair: ignored).
#[derive(Debug, Clone, Default)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Self {
        let mut m = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(decode(k), decode(v));
        }
        Params(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How a write body patches the stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        Some(match base {
            "application/json-patch+json" => PatchType::Json,
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchType::Apply,
            _ => return None,
        })
    }
}

/// The serialized form of an object as seen through `rt`'s version.
pub fn present(rt: &ResourceType, s: &Stored) -> Bytes {
    let av = rt.api_version();
    if s.value["apiVersion"].as_str() == Some(av.as_str()) {
        return s.json.clone();
    }
    let mut v = s.value.clone();
    v["apiVersion"] = json!(av);
    Bytes::from(serde_json::to_vec(&v).expect("json values serialize"))
}

/// An object as seen through `rt`'s version, as a value.
fn presented_value(rt: &ResourceType, s: &Stored) -> Value {
    let mut v = s.value.clone();
    v["apiVersion"] = json!(rt.api_version());
    v
}

/// The autoscaling/v1 Scale, as a type (for its Table).
fn scale_type(parent: &ResourceType) -> ResourceType {
    ResourceType {
        group: "autoscaling".into(),
        version: "v1".into(),
        kind: "Scale".into(),
        builtin: true,
        scale: None,
        printer_columns: Vec::new(),
        ..parent.clone()
    }
}

/// The autoscaling/v1 Scale of an object whose kind has a `/scale` subresource.
pub fn scale_of(rt: &ResourceType, obj: &Value) -> Value {
    let Some(paths) = &rt.scale else {
        return Value::Null;
    };
    let int = |path: &str| {
        crate::jsonpath::get(obj, path)
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let mut meta = serde_json::Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj["metadata"].get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    // spec.replicas is omitempty, status.replicas is not.
    let spec_replicas = int(&paths.spec_replicas);
    let spec = if spec_replicas == 0 {
        json!({})
    } else {
        json!({"replicas": spec_replicas})
    };
    let mut status = json!({"replicas": int(&paths.status_replicas)});
    let selector = match paths
        .label_selector
        .as_deref()
        .and_then(|p| crate::jsonpath::get(obj, p))
    {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => crate::table::selector_string(v),
        _ => String::new(),
    };
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta,
        "spec": spec, "status": status})
}

fn field_manager_info<'a>(
    rt: &'a ResourceType,
    sub: Option<&'a str>,
    api_version: &'a str,
) -> field_manager::ObjectInfo<'a> {
    field_manager::ObjectInfo {
        kind: &rt.kind,
        api_version,
        builtin: rt.builtin,
        has_status_subresource: rt.status_subresource,
        subresource: sub,
    }
}

impl Cluster {
    pub fn get(&self, t: &Target) -> Result<Bytes> {
        let st = self.state.lock();
        let name = t.name.as_deref().unwrap_or("");
        let s = st
            .get(&t.rt.key(), t.ns(), name)
            .ok_or_else(|| ApiError::not_found(&t.rt, name))?;
        Ok(present(&t.rt, s))
    }

    /// A Table of one object (server-side printing).
    pub fn get_table(&self, t: &Target, tr: &TableRequest) -> Result<Bytes> {
        let st = self.state.lock();
        let name = t.name.as_deref().unwrap_or("");
        let s = st
            .get(&t.rt.key(), t.ns(), name)
            .ok_or_else(|| ApiError::not_found(&t.rt, name))?;
        let v = presented_value(&t.rt, s);
        let table = tr.render(
            &t.rt,
            &[&v],
            json!({"resourceVersion": s.value["metadata"]["resourceVersion"]}),
        );
        Ok(Bytes::from(table.to_string()))
    }

    /// The objects a list request selects (one page of them), the list's
    /// resourceVersion and the continue token of the next page.
    fn select(&self, t: &Target, p: &Params) -> Result<(Vec<Arc<Stored>>, u64, Option<String>)> {
        let labels = LabelSelector::parse(p.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(p.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let limit: usize = p
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let st = self.state.lock();
        let (list_rv, after) = match p.get("continue") {
            Some(c) => {
                let (rv, rest) = c.split_once('/').ok_or_else(|| {
                    ApiError::bad_request(format!("invalid continue token {c:?}"))
                })?;
                let rv: u64 = rv
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid continue token {c:?}")))?;
                if rv < st.oldest_resumable_rv() {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                let (ns, name) = rest.split_once('/').unwrap_or(("", rest));
                (rv, Some((ns.to_string(), name.to_string())))
            }
            None => (st.rv, None),
        };
        let mut items = Vec::new();
        let mut last: Option<(String, String)> = None;
        let mut more = false;
        if let Some(map) = st.list(&t.rt.key()) {
            let ns = t.namespace.clone().filter(|_| t.rt.namespaced);
            let start = match (&after, &ns) {
                (Some(a), _) => std::ops::Bound::Excluded(a.clone()),
                (None, Some(ns)) => std::ops::Bound::Included((ns.clone(), String::new())),
                (None, None) => std::ops::Bound::Unbounded,
            };
            for ((ons, oname), s) in map.range((start, std::ops::Bound::Unbounded)) {
                if let Some(ns) = &ns
                    && ons != ns
                {
                    break;
                }
                if !labels.matches(&s.value) || !fields.matches(&s.value) {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(s.clone());
                last = Some((ons.clone(), oname.clone()));
            }
        }
        let cont = match (more, last) {
            (true, Some((ns, name))) => Some(format!("{list_rv}/{ns}/{name}")),
            _ => None,
        };
        Ok((items, list_rv, cont))
    }

    pub fn list(&self, t: &Target, p: &Params) -> Result<Bytes> {
        let (objects, list_rv, cont) = self.select(t, p)?;
        let mut buf = BytesMut::with_capacity(4096);
        buf.put_slice(
            format!("{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{}\"", t.rt.kind, t.rt.api_version(), list_rv)
                .as_bytes(),
        );
        if let Some(c) = cont {
            buf.put_slice(format!(",\"continue\":\"{c}\"").as_bytes());
        }
        buf.put_slice(b"},\"items\":[");
        for (i, s) in objects.iter().enumerate() {
            if i > 0 {
                buf.put_u8(b',');
            }
            buf.put_slice(&present(&t.rt, s));
        }
        buf.put_slice(b"]}");
        Ok(buf.freeze())
    }

    /// A list as a Table (server-side printing).
    pub fn list_table(&self, t: &Target, p: &Params, tr: &TableRequest) -> Result<Bytes> {
        let (objects, list_rv, cont) = self.select(t, p)?;
        let values: Vec<Value> = objects.iter().map(|s| presented_value(&t.rt, s)).collect();
        let refs: Vec<&Value> = values.iter().collect();
        let mut meta = json!({"resourceVersion": list_rv.to_string()});
        if let Some(c) = cont {
            meta["continue"] = json!(c);
        }
        Ok(Bytes::from(tr.render(&t.rt, &refs, meta).to_string()))
    }

    /// GET of the `/scale` subresource: an autoscaling/v1 Scale, or its Table.
    pub fn get_scale(&self, t: &Target, tr: Option<&TableRequest>) -> Result<Bytes> {
        let st = self.state.lock();
        let name = t.name.as_deref().unwrap_or("");
        let s = st
            .get(&t.rt.key(), t.ns(), name)
            .ok_or_else(|| ApiError::not_found(&t.rt, name))?;
        let scale = scale_of(&t.rt, &s.value);
        Ok(Bytes::from(match tr {
            Some(tr) => tr
                .render(
                    &scale_type(&t.rt),
                    &[&scale],
                    json!({"resourceVersion": s.value["metadata"]["resourceVersion"]}),
                )
                .to_string(),
            None => scale.to_string(),
        }))
    }

    /// PUT or PATCH of the `/scale` subresource: sets the parent's desired replicas (and
    /// so bumps its generation); answers the new Scale.
    pub fn write_scale(
        &self,
        t: &Target,
        p: &Params,
        patch: Option<PatchType>,
        body: Value,
        manager: &str,
    ) -> Result<(u16, Bytes)> {
        let name = t.name.clone().unwrap_or_default();
        let paths = t.rt.scale.clone().ok_or_else(ApiError::not_found_path)?;
        let scale_rt = ResourceType {
            group: "autoscaling".into(),
            version: "v1".into(),
            kind: "Scale.autoscaling".into(),
            plural: "Scale".into(),
            ..t.rt.clone()
        };
        let mut st = self.state.lock();
        let old = st
            .get(&t.rt.key(), t.ns(), &name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&t.rt, &name))?;
        let current = scale_of(&t.rt, &old.value);
        let wanted = match patch {
            None => {
                if !body.is_object()
                    || body["kind"]
                        .as_str()
                        .is_some_and(|k| !k.is_empty() && k != "Scale")
                {
                    return Err(ApiError::bad_request(
                        "the object provided is unrecognized (must be of type Scale)",
                    ));
                }
                body
            }
            Some(PatchType::Json) => k8s_patch::apply_json_patch(&current, &body)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            Some(_) if !body.is_object() => {
                return Err(ApiError::bad_request(
                    "a patch of a Scale must be a JSON object",
                ));
            }
            // A Scale has no lists: strategic merge and apply come down to a merge.
            Some(_) => k8s_patch::apply_merge_patch(&current, &body),
        };
        if let Some(rv) = wanted["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && Some(rv) != old.value["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(&t.rt, &name));
        }
        let replicas = match &wanted["spec"]["replicas"] {
            Value::Null => 0,
            Value::Number(n) if n.as_i64().is_some_and(|r| i32::try_from(r).is_ok()) => {
                n.as_i64().unwrap_or(0)
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal {other} into Go struct field ScaleSpec.spec.replicas of type int32"
                )));
            }
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                &scale_rt,
                &name,
                vec![Cause {
                    kind: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: {replicas}: must be greater than or equal to 0"
                    ),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        let mut parent = old.value.clone();
        parent["apiVersion"] = json!(t.rt.api_version());
        if !crate::jsonpath::set(&mut parent, &paths.spec_replicas, json!(replicas)) {
            return Err(ApiError::internal(format!(
                "the scale subresource's specReplicasPath {} cannot be set",
                paths.spec_replicas
            )));
        }
        let av = t.rt.api_version();
        let info = field_manager_info(&t.rt, Some("scale"), &av);
        let time = now();
        let stored = self.finish_write(&mut st, t, Some(&old), parent, p.dry_run(), |o| {
            field_manager::record_update(
                Some(&old.value),
                o,
                &info,
                &field_manager::Operation {
                    manager,
                    time: &time,
                },
            );
            Ok(())
        })?;
        Ok((200, Bytes::from(scale_of(&t.rt, &stored.value).to_string())))
    }

    /// Returns the code, the body and the created object's name (which `generateName`
    /// may have made up).
    pub fn create(
        &self,
        t: &Target,
        p: &Params,
        mut obj: Value,
        manager: &str,
    ) -> Result<(u16, Bytes, String)> {
        check_type(&t.rt, &obj)?;
        strict(&t.rt, p, &obj)?;
        let meta = obj["metadata"].as_object().cloned().unwrap_or_default();
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty()
            && let Some(g) = meta.get("generateName").and_then(Value::as_str)
        {
            name = format!("{g}{}", random_suffix());
            obj["metadata"]["name"] = json!(name);
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                &t.rt,
                "",
                vec![Cause {
                    kind: "FieldValueRequired",
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
        self.check_namespace_field(t, &mut obj)?;
        let mut st = self.state.lock();
        if st.get(&t.rt.key(), t.ns(), &name).is_some() {
            return Err(ApiError::already_exists(&t.rt, &name));
        }
        let av = t.rt.api_version();
        let info = field_manager_info(&t.rt, None, &av);
        let time = now();
        let stored = self.finish_write(&mut st, t, None, obj, p.dry_run(), |o| {
            field_manager::record_update(
                None,
                o,
                &info,
                &field_manager::Operation {
                    manager,
                    time: &time,
                },
            );
            Ok(())
        })?;
        Ok((201, present(&t.rt, &stored), name))
    }

    /// PUT: replaces the object (or its status).
    pub fn replace(
        &self,
        t: &Target,
        p: &Params,
        obj: Value,
        manager: &str,
    ) -> Result<(u16, Bytes)> {
        check_type(&t.rt, &obj)?;
        strict(&t.rt, p, &obj)?;
        let name = t.name.clone().unwrap_or_default();
        if let Some(n) = obj["metadata"]["name"].as_str()
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let mut obj = obj;
        self.check_namespace_field(t, &mut obj)?;
        let mut st = self.state.lock();
        let old = st
            .get(&t.rt.key(), t.ns(), &name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&t.rt, &name))?;
        let av = t.rt.api_version();
        let info = field_manager_info(&t.rt, t.subresource.as_deref(), &av);
        let time = now();
        let stored = self.finish_write(&mut st, t, Some(&old), obj, p.dry_run(), |o| {
            field_manager::record_update(
                Some(&old.value),
                o,
                &info,
                &field_manager::Operation {
                    manager,
                    time: &time,
                },
            );
            Ok(())
        })?;
        Ok((200, present(&t.rt, &stored)))
    }

    pub fn patch(
        &self,
        t: &Target,
        p: &Params,
        kind: PatchType,
        patch: Value,
        manager: &str,
    ) -> Result<(u16, Bytes)> {
        let name = t.name.clone().unwrap_or_default();
        if kind == PatchType::Strategic && !t.rt.builtin {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
            ));
        }
        let mut patch = patch;
        if kind == PatchType::Apply {
            check_type(&t.rt, &patch)?;
            strict(&t.rt, p, &patch)?;
            if let Some(n) = patch["metadata"]["name"].as_str()
                && n != name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            // Also checks the namespace exists: before taking the store lock, which it takes too.
            self.check_namespace_field(t, &mut patch)?;
        }
        let mut st = self.state.lock();
        let old = st.get(&t.rt.key(), t.ns(), &name).cloned();
        let av = t.rt.api_version();
        let info = field_manager_info(&t.rt, t.subresource.as_deref(), &av);
        let time = now();
        let op = field_manager::Operation {
            manager,
            time: &time,
        };
        if kind == PatchType::Apply {
            if p.get("fieldManager").is_none() {
                return Err(ApiError::bad_request(
                    "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
                ));
            }
            let mut applied = patch;
            applied["metadata"]["name"] = json!(name);
            if let Some(old) = &old {
                let old_rv = old.value["metadata"]["resourceVersion"].as_str();
                if let Some(rv) = applied["metadata"]["resourceVersion"].as_str()
                    && Some(rv) != old_rv
                {
                    return Err(ApiError::conflict(&t.rt, &name));
                }
            }
            let force = p.flag("force");
            let result =
                field_manager::apply(old.as_ref().map(|o| &o.value), &applied, &info, &op, force)
                    .map_err(|e| apply_error(&t.rt, &name, e))?;
            let code = if old.is_some() { 200 } else { 201 };
            let stored =
                self.finish_write(&mut st, t, old.as_ref(), result, p.dry_run(), |_| Ok(()))?;
            return Ok((code, present(&t.rt, &stored)));
        }
        let old = old.ok_or_else(|| ApiError::not_found(&t.rt, &name))?;
        let mut base = old.value.clone();
        base["apiVersion"] = json!(av);
        let patched = match kind {
            PatchType::Json => k8s_patch::apply_json_patch(&base, &patch),
            PatchType::Merge if !patch.is_object() => {
                return Err(ApiError::bad_request(
                    "json merge patch must be a json object",
                ));
            }
            PatchType::Merge => Ok(k8s_patch::apply_merge_patch(&base, &patch)),
            PatchType::Strategic => {
                k8s_patch::apply_strategic_merge_patch(&base, &patch, &t.rt.kind)
            }
            PatchType::Apply => unreachable!("handled above"),
        }
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        check_type(&t.rt, &patched)?;
        strict(&t.rt, p, &patched)?;
        if patched["metadata"]["name"].as_str() != Some(name.as_str()) {
            return Err(ApiError::bad_request(
                "metadata.name: the name of an object cannot be changed by a patch",
            ));
        }
        let stored = self.finish_write(&mut st, t, Some(&old), patched, p.dry_run(), |o| {
            field_manager::record_update(Some(&old.value), o, &info, &op);
            Ok(())
        })?;
        Ok((200, present(&t.rt, &stored)))
    }

    pub fn delete(&self, t: &Target, p: &Params, opts: &Value) -> Result<(u16, Bytes)> {
        let name = t.name.clone().unwrap_or_default();
        let policy = Propagation::requested(opts, p)?;
        let dry_run = p.dry_run()
            || opts["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        let mut st = self.state.lock();
        let old = st
            .get(&t.rt.key(), t.ns(), &name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&t.rt, &name))?;
        if is_immortal_namespace(&t.rt, &name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        if let Some(uid) = opts["preconditions"]["uid"].as_str()
            && uid != old.uid()
        {
            return Err(ApiError::conflict(&t.rt, &name));
        }
        if let Some(rv) = opts["preconditions"]["resourceVersion"].as_str()
            && Some(rv) != old.value["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(&t.rt, &name));
        }
        if dry_run {
            return Ok((200, present(&t.rt, &old)));
        }
        let key = t.rt.key();
        let stored = delete_object(&mut st, &key, &old, policy);
        sweep(&mut st);
        drop(st);
        self.notify(&key, &stored);
        Ok((200, present(&t.rt, &stored)))
    }

    pub fn delete_collection(&self, t: &Target, p: &Params, opts: &Value) -> Result<(u16, Bytes)> {
        let labels = LabelSelector::parse(p.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(p.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        // An unknown policy has always meant Background here (kube-apiserver refuses it).
        let policy = Propagation::requested(opts, p).unwrap_or(Propagation::Background);
        let mut st = self.state.lock();
        let key = t.rt.key();
        let victims: Vec<Arc<Stored>> = st
            .list(&key)
            .map(|m| {
                m.values()
                    .filter(|s| {
                        t.namespace.is_none() || !t.rt.namespaced || s.namespace() == t.ns()
                    })
                    .filter(|s| labels.matches(&s.value) && fields.matches(&s.value))
                    .filter(|s| !is_immortal_namespace(&t.rt, s.name()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !p.dry_run() {
            for v in &victims {
                delete_object(&mut st, &key, v, policy);
            }
            sweep(&mut st);
        }
        let list = json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(),
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": victims.iter().map(|v| v.value.clone()).collect::<Vec<_>>()});
        Ok((200, Bytes::from(list.to_string())))
    }

    /// The tail every write shares: identity, status handling, defaults, generation,
    /// finalizers, resourceVersion, then the store (unless dry-run).
    fn finish_write(
        &self,
        st: &mut ClusterState,
        t: &Target,
        old: Option<&Arc<Stored>>,
        mut obj: Value,
        dry_run: bool,
        manage: impl FnOnce(&mut Value) -> Result<()>,
    ) -> Result<Arc<Stored>> {
        let rt = &t.rt;
        let key = rt.key();
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        if rt.namespaced {
            obj["metadata"]["namespace"] = json!(t.ns());
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if old.is_none() && !validation::is_dns_subdomain(&name) && rt.kind != "Namespace" {
            return Err(invalid_name(rt, &name));
        }
        if rt.kind == "Namespace" && !is_dns_label(&name) {
            return Err(invalid_name(rt, &name));
        }
        if let Some(old) = old {
            let ov = &old.value;
            if let Some(rv) = obj["metadata"]["resourceVersion"].as_str()
                && Some(rv) != ov["metadata"]["resourceVersion"].as_str()
            {
                return Err(ApiError::conflict(rt, &name));
            }
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match ov["metadata"].get(k) {
                    Some(v) => obj["metadata"][k] = v.clone(),
                    None => {
                        if let Some(m) = obj["metadata"].as_object_mut() {
                            m.remove(k);
                        }
                    }
                }
            }
            if t.subresource.as_deref() == Some("status") {
                // Status writes change status only.
                let status = obj.get("status").cloned();
                let mut merged = ov.clone();
                match status {
                    Some(s) => merged["status"] = s,
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                merged["metadata"]["resourceVersion"] = ov["metadata"]["resourceVersion"].clone();
                obj = merged;
            } else if rt.status_subresource {
                match ov.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        if let Some(m) = obj.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
        } else {
            if rt.status_subresource
                && let Some(m) = obj.as_object_mut()
            {
                m.remove("status");
            }
            obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
            obj["metadata"]["creationTimestamp"] = json!(now());
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("deletionTimestamp");
            }
        }
        if rt.builtin {
            // Built-in kinds decode into Go structs: a null is an absent field.
            crate::controllers::strip_nulls(&mut obj);
        }
        let mut ip_seq = st.rv;
        defaults::apply(&rt.kind, &mut obj, || {
            ip_seq = ip_seq.wrapping_mul(2654435761);
            format!("10.96.{}.{}", (ip_seq >> 8) % 255, ip_seq % 254 + 1)
        });
        if rt.kind == "CustomResourceDefinition" {
            crd_status(&mut obj);
        }
        manage(&mut obj)?;
        if t.subresource.is_none() {
            for webhook in &self.faults().mutating_webhooks {
                webhook.mutate(&mut obj);
            }
        }
        if rt.status_subresource || !rt.builtin {
            let generation = match old {
                None => 1,
                Some(o) => {
                    let g = o.value["metadata"]["generation"].as_i64().unwrap_or(1);
                    if spec_of(&o.value) != spec_of(&obj) {
                        g + 1
                    } else {
                        g
                    }
                }
            };
            obj["metadata"]["generation"] = json!(generation);
        }
        let finalizers_empty = obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        if let Some(m) = obj["metadata"].as_object_mut() {
            if m.get("finalizers")
                .is_some_and(|f| f.as_array().is_some_and(|a| a.is_empty()))
            {
                m.remove("finalizers");
            }
            if m.get("managedFields")
                .is_some_and(|f| f.as_array().is_some_and(|a| a.is_empty()))
            {
                m.remove("managedFields");
            }
        }
        if dry_run {
            if old.is_none() {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
            } else if let Some(o) = old {
                obj["metadata"]["resourceVersion"] = o.value["metadata"]["resourceVersion"].clone();
            }
            return Ok(Stored::new(obj));
        }
        if let Some(o) = old
            && o.value == obj_with_rv(&obj, &o.value)
        {
            // A no-op write stores nothing and emits no event, as the API server does.
            return Ok(o.clone());
        }
        let rv = st.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let deleting = obj["metadata"]["deletionTimestamp"].is_string();
        let stored = if deleting && finalizers_empty {
            let s = st.commit(&key, obj, EventType::Deleted);
            sweep(st);
            s
        } else {
            st.commit(
                &key,
                obj,
                if old.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                },
            )
        };
        self.notify(&key, &stored);
        Ok(stored)
    }

    fn check_namespace_field(&self, t: &Target, obj: &mut Value) -> Result<()> {
        if !t.rt.namespaced {
            return Ok(());
        }
        let url_ns = t.ns();
        match obj["metadata"]["namespace"].as_str() {
            Some(ns) if !ns.is_empty() && ns != url_ns => Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )),
            _ => {
                obj["metadata"]["namespace"] = json!(url_ns);
                self.check_namespace_exists(t)
            }
        }
    }

    fn check_namespace_exists(&self, t: &Target) -> Result<()> {
        if !t.rt.namespaced {
            return Ok(());
        }
        let st = self.state.lock();
        let ns_key = ResourceKey {
            group: String::new(),
            plural: "namespaces".into(),
        };
        match st.get(&ns_key, "", t.ns()) {
            None => Err(ApiError::namespace_not_found(t.ns())),
            Some(ns) if ns.value["metadata"]["deletionTimestamp"].is_string() => {
                Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    t.rt.qualified(),
                    t.name.as_deref().unwrap_or(""),
                    t.ns()
                )))
            }
            Some(_) => Ok(()),
        }
    }

    pub(crate) fn notify(&self, key: &ResourceKey, s: &Arc<Stored>) {
        let _ = self.controller_tx.send(crate::controllers::Work {
            key: key.clone(),
            namespace: s.namespace().to_string(),
            name: s.name().to_string(),
        });
    }
}

/// `default`, `kube-system` and `kube-public` cannot be deleted.
fn is_immortal_namespace(rt: &ResourceType, name: &str) -> bool {
    rt.group.is_empty()
        && rt.plural == "namespaces"
        && crate::bootstrap::IMMORTAL_NAMESPACES.contains(&name)
}

fn obj_with_rv(obj: &Value, old: &Value) -> Value {
    let mut o = obj.clone();
    o["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    // managedFields timestamps move on every write; a no-op is judged without them.
    o["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    if old["metadata"].get("managedFields").is_none()
        && let Some(m) = o["metadata"].as_object_mut()
    {
        m.remove("managedFields");
    }
    o
}

/// Everything but metadata and status: what `generation` counts changes of.
fn spec_of(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && validation::is_dns_subdomain(name)
        && !name.contains('.')
}

fn invalid_name(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::invalid(
        rt,
        name,
        vec![Cause {
            kind: "FieldValueInvalid",
            message: format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
            field: "metadata.name".into(),
        }],
    )
}

fn random_suffix() -> String {
    use rand::Rng;
    const CH: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..5)
        .map(|_| CH[r.random_range(0..CH.len())] as char)
        .collect()
}

/// The body must be the kind the URL names.
fn check_type(rt: &ResourceType, obj: &Value) -> Result<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request is not a {} object",
            rt.kind
        )));
    }
    let av = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): kind {kind:?} does not match the URL's resource {}",
            rt.kind,
            rt.qualified()
        )));
    }
    if !av.is_empty() && av != rt.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if !obj["metadata"].is_object() && !obj["metadata"].is_null() {
        return Err(ApiError::bad_request("metadata: expected an object"));
    }
    Ok(())
}

fn strict(rt: &ResourceType, p: &Params, obj: &Value) -> Result<()> {
    if p.get("fieldValidation") != Some("Strict") {
        return Ok(());
    }
    match validation::unknown_field(rt, obj) {
        Some(f) => Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: unknown field \"{f}\"",
            rt.kind, rt.version, rt.kind
        ))),
        None => Ok(()),
    }
}

fn apply_error(rt: &ResourceType, name: &str, e: field_manager::ApplyError) -> ApiError {
    match e {
        field_manager::ApplyError::Conflicts { conflicts, message } => {
            let fields: Vec<String> = conflicts.iter().map(|c| c.field.clone()).collect();
            ApiError::apply_conflict(rt, name, message, &fields)
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

fn crd_status(obj: &mut Value) {
    let names = obj["spec"]["names"].clone();
    let t = now();
    let stored: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    obj["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
        ],
        "storedVersions": stored,
    });
}
