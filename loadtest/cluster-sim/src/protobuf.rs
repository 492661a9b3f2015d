//! Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`), which client-go's
//! typed clients speak: `kubectl create configmap|namespace|secret|deployment|job` and
//! `kubectl expose` send it, and ask for it first in `Accept`.
//!
//! The wire form is the magic `k8s\0`, then a `runtime.Unknown` message: `typeMeta`
//! (apiVersion, kind), `raw` (the object's own message, which has no TypeMeta of its
//! own), `contentEncoding` and `contentType` (both empty).
//!
//! # How objects are converted
//! The emulator keeps every object as JSON, so protobuf is only a translation at the
//! edge: a body is decoded into JSON before the verbs see it, and a JSON answer is
//! encoded when the client prefers protobuf. The translation is generic, by
//! reflection: `build.rs` compiles the upstream `generated.proto` files of k8s.io/api
//! and apimachinery (copied under `proto/` from kube-rs/k8s-pb, Kubernetes 1.36) into a
//! descriptor set with protox (no `protoc`), and `prost-reflect` walks messages against
//! it. The field names of those `.proto` files are the JSON names, so one walker plus a
//! handful of special messages covers every kind. The alternatives cost far more
//! hand-written code: the `k8s-pb` crate has prost structs but no serde and no
//! descriptor set, so reaching JSON from it means a field-by-field conversion to
//! k8s-openapi for every type of every supported kind (hundreds of types).
//!
//! Special JSON forms (by message name): `IntOrString` (a number or a string),
//! `Quantity` (a string), `Time` / `MicroTime` (RFC 3339 strings, seconds and
//! microseconds; a `{seconds, nanos}` message here), `Duration` (Go's `1h2m3s`),
//! `RawExtension` and `FieldsV1` (embedded JSON in bytes), `bytes` (base64),
//! `map<string,_>` (objects).
//!
//! `omitempty`: Go's protobuf marshaller writes every non-pointer scalar, zero or not,
//! so a zero scalar on the wire is dropped from the JSON (as `omitempty` would) unless
//! it is a pointer field where zero means something (`spec.replicas: 0`,
//! `backoffLimit: 0`, `runAsUser: 0`, ...: [`KEEP_ZERO`]). Messages that are present
//! stay, even empty (`emptyDir: {}`, `status: {}`, as Go's JSON prints them), except a
//! zero `Time`, which Go prints as `null`. Map values and list items are always kept.
//! JSON to protobuf writes exactly the fields the JSON has; fields the messages do not
//! know (`apiVersion` and `kind` inside objects) are left out, as upstream.
//!
//! Kinds: the emulator's built-in kinds ([`SUPPORTED`]) and their lists, plus
//! `Status` and `DeleteOptions`. Custom resources (and CRDs themselves) are JSON only:
//! a protobuf body of such a kind gets 415, and answers are JSON when `Accept`
//! allows it (as the API server does), else 406.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage as _, Value as PV,
};
use serde_json::{Map, Value};

use crate::error::{ApiError, Result};

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// What precedes every protobuf-encoded object.
pub const MAGIC: &[u8; 4] = b"k8s\0";

const META: &str = "apimachinery.pkg.apis.meta.v1";
const UNKNOWN: &str = "apimachinery.pkg.runtime.Unknown";

/// The built-in kinds (group, version, kind) that travel in protobuf, with their lists.
pub const SUPPORTED: &[(&str, &str, &str)] = &[
    ("", "v1", "Namespace"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("", "v1", "PersistentVolumeClaim"),
    ("", "v1", "Pod"),
    ("", "v1", "Endpoints"),
    ("", "v1", "Event"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "ReplicaSet"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "DaemonSet"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
    ("networking.k8s.io", "v1", "Ingress"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"),
];

/// Pointer scalars whose zero value means something: kept when decoding protobuf.
/// `Message.field` or just `field` (any message).
const KEEP_ZERO: &[&str] = &[
    "DeploymentSpec.replicas",
    "StatefulSetSpec.replicas",
    "ReplicaSetSpec.replicas",
    "minReplicas",
    "backoffLimit",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "parallelism",
    "completions",
    "suspend",
    "ttlSecondsAfterFinished",
    "activeDeadlineSeconds",
    "startingDeadlineSeconds",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "automountServiceAccountToken",
    "terminationGracePeriodSeconds",
    "gracePeriodSeconds",
    "enableServiceLinks",
    "shareProcessNamespace",
    "hostUsers",
    "setHostnameAsFQDN",
    "priority",
    "immutable",
    "optional",
    "defaultMode",
    "mode",
    "storageClassName",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "privileged",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "allocateLoadBalancerNodePorts",
    "orphanDependents",
    "blockOwnerDeletion",
    "controller",
    "ready",
    "serving",
    "terminating",
    "expirationSeconds",
    "partition",
    // Not pointers, but printed by Go's JSON even when zero (no `omitempty`).
    "ContainerStatus.restartCount",
    "ContainerStatus.imageID",
    "ContainerStateTerminated.exitCode",
];

/// Go structs embedded with `json:",inline"`: a message field on the wire, its fields
/// directly in the parent's JSON object.
const INLINE: &[&str] = &[
    "Volume.volumeSource",
    "Probe.handler",
    "IngressRule.ingressRuleValue",
    "EphemeralContainer.ephemeralContainerCommon",
    "PersistentVolumeSpec.persistentVolumeSource",
    "VolumeMountStatus.volumeStatus",
    "ConfigMapEnvSource.localObjectReference",
    "ConfigMapKeySelector.localObjectReference",
    "ConfigMapProjection.localObjectReference",
    "ConfigMapVolumeSource.localObjectReference",
    "SecretEnvSource.localObjectReference",
    "SecretKeySelector.localObjectReference",
    "SecretProjection.localObjectReference",
];

fn inline(msg: &MessageDescriptor, field: &FieldDescriptor) -> bool {
    INLINE.iter().any(|k| {
        k.split_once('.')
            .is_some_and(|(m, f)| m == msg.name() && f == field.name())
    })
}

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(&include_bytes!(concat!(env!("OUT_DIR"), "/k8s.fds"))[..])
        .expect("build.rs wrote a valid descriptor set")
});

/// The message of `apiVersion`/`kind`, when it is one that travels in protobuf.
pub fn message_for(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let name = match kind {
        "Status" | "DeleteOptions" => format!("{META}.{kind}"),
        _ => {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let base = kind.strip_suffix("List").unwrap_or(kind);
            if !SUPPORTED
                .iter()
                .any(|(g, v, k)| *g == group && *v == version && *k == base)
            {
                return None;
            }
            let pkg = if group.is_empty() {
                "core"
            } else {
                group.split('.').next().unwrap_or(group)
            };
            format!("api.{pkg}.{version}.{kind}")
        }
    };
    POOL.get_message_by_name(&name)
}

/// Whether objects of this group/version/kind can be answered in protobuf.
pub fn supports(group: &str, version: &str, kind: &str) -> bool {
    SUPPORTED
        .iter()
        .any(|(g, v, k)| *g == group && *v == version && *k == kind)
}

/// Whether a content type is the protobuf one.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|b| b.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// How to answer, from the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Protobuf,
}

/// Picks the first media type of `accept` (by `q`, then order) that can be produced:
/// protobuf when `protobuf_ok` (a built-in kind), JSON (or YAML, answered as JSON, as
/// before) otherwise. `None` means 406.
pub fn negotiate(accept: &str, protobuf_ok: bool) -> Option<Encoding> {
    if accept.trim().is_empty() {
        return Some(Encoding::Json);
    }
    // (q, media type, whether it asks for a transformed answer such as `as=Table`)
    let mut entries: Vec<(f32, String, bool)> = accept
        .split(',')
        .map(|e| {
            let mut parts = e.split(';');
            let base = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let (mut q, mut transformed) = (1.0f32, false);
            for (k, v) in parts.filter_map(|p| p.split_once('=')) {
                match k.trim() {
                    "q" => q = v.trim().parse().unwrap_or(1.0),
                    "as" => transformed = true,
                    _ => {}
                }
            }
            (q, base, transformed)
        })
        .collect();
    entries.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (q, base, transformed) in entries {
        if q <= 0.0 {
            continue;
        }
        match base.as_str() {
            MEDIA_TYPE if protobuf_ok && !transformed => return Some(Encoding::Protobuf),
            "application/json" | "application/yaml" | "application/*" | "*/*" | "*" => {
                return Some(Encoding::Json);
            }
            _ => {}
        }
    }
    None
}

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("the protobuf request body is invalid: {message}"))
}

/// A protobuf request body (magic + `runtime.Unknown`) as the JSON object it stands for.
/// Corrupt bytes are 400; a kind that does not travel in protobuf is 415.
pub fn decode(body: &[u8]) -> Result<Value> {
    let rest = body
        .strip_prefix(&MAGIC[..])
        .ok_or_else(|| bad("it does not start with the \"k8s\\x00\" prefix"))?;
    let unknown = POOL
        .get_message_by_name(UNKNOWN)
        .expect("runtime.Unknown is in the descriptor set");
    let env = DynamicMessage::decode(unknown, rest).map_err(bad)?;
    let text = |m: &DynamicMessage, f: &str| match m.get_field_by_name(f).as_deref() {
        Some(PV::String(s)) => s.clone(),
        _ => String::new(),
    };
    let type_meta = match env.get_field_by_name("typeMeta").as_deref() {
        Some(PV::Message(m)) => m.clone(),
        _ => return Err(bad("runtime.Unknown has no typeMeta")),
    };
    let (api_version, kind) = (text(&type_meta, "apiVersion"), text(&type_meta, "kind"));
    let encoding = text(&env, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ApiError::unsupported_media_type(&format!(
            "{MEDIA_TYPE} with contentEncoding {encoding}"
        )));
    }
    let Some(desc) = message_for(&api_version, &kind) else {
        return Err(ApiError::unsupported_protobuf_kind(&api_version, &kind));
    };
    let raw = match env.get_field_by_name("raw").as_deref() {
        Some(PV::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let msg = DynamicMessage::decode(desc, raw).map_err(bad)?;
    let mut out = Map::new();
    if !api_version.is_empty() {
        out.insert("apiVersion".into(), Value::String(api_version));
    }
    out.insert("kind".into(), Value::String(kind));
    if let Value::Object(fields) = message_to_json(&msg).map_err(bad)? {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// A JSON object (with `apiVersion` and `kind`) in the protobuf wire form, or `None`
/// when its kind does not travel in protobuf or a field does not fit its message.
pub fn encode(obj: &Value) -> Option<Vec<u8>> {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str()?;
    let desc = message_for(api_version, kind)?;
    let msg = json_to_message(&desc, obj).ok()?;
    Some(envelope(api_version, kind, &msg.encode_to_vec()))
}

/// Wraps an object's message bytes: magic + `runtime.Unknown`.
pub fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let unknown = POOL
        .get_message_by_name(UNKNOWN)
        .expect("runtime.Unknown is in the descriptor set");
    let tm_desc = unknown
        .get_field_by_name("typeMeta")
        .and_then(|f| match f.kind() {
            Kind::Message(m) => Some(m),
            _ => None,
        })
        .expect("Unknown.typeMeta is a message");
    let mut tm = DynamicMessage::new(tm_desc);
    tm.set_field_by_name("apiVersion", PV::String(api_version.into()));
    tm.set_field_by_name("kind", PV::String(kind.into()));
    let mut env = DynamicMessage::new(unknown);
    env.set_field_by_name("typeMeta", PV::Message(tm));
    env.set_field_by_name("raw", PV::Bytes(raw.to_vec().into()));
    env.set_field_by_name("contentEncoding", PV::String(String::new()));
    env.set_field_by_name("contentType", PV::String(String::new()));
    let mut out = MAGIC.to_vec();
    out.extend(env.encode_to_vec());
    out
}

/// The content type of a protobuf watch stream.
pub const WATCH_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

/// One event of a protobuf watch stream, framed. As upstream (the protobuf serializer's
/// `LengthDelimitedFramer` and `RawSerializer`, `handlers/watch.go`): a 4-byte big-endian
/// length, then a `meta.v1.WatchEvent` message *without* magic or `runtime.Unknown`
/// (the stream serializer is the raw one), whose `object.raw` is the object in the full
/// wire form, magic and `runtime.Unknown` included (the embedded encoder is the normal
/// one): `object` here is what [`encode`] gives.
pub fn watch_frame(event_type: &str, object: &[u8]) -> Vec<u8> {
    let event = POOL
        .get_message_by_name(&format!("{META}.WatchEvent"))
        .expect("meta.v1.WatchEvent is in the descriptor set");
    let ext = POOL
        .get_message_by_name("apimachinery.pkg.runtime.RawExtension")
        .expect("runtime.RawExtension is in the descriptor set");
    let mut raw = DynamicMessage::new(ext);
    raw.set_field_by_name("raw", PV::Bytes(object.to_vec().into()));
    let mut ev = DynamicMessage::new(event);
    ev.set_field_by_name("type", PV::String(event_type.into()));
    ev.set_field_by_name("object", PV::Message(raw));
    let body = ev.encode_to_vec();
    let len = u32::try_from(body.len()).expect("a watch event is smaller than 4 GiB");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend(body);
    out
}

// ---- protobuf -> JSON ----

fn special(desc: &MessageDescriptor) -> Option<&'static str> {
    Some(match desc.full_name() {
        "apimachinery.pkg.util.intstr.IntOrString" => "IntOrString",
        "apimachinery.pkg.api.resource.Quantity" => "Quantity",
        "apimachinery.pkg.apis.meta.v1.Time" => "Time",
        "apimachinery.pkg.apis.meta.v1.MicroTime" => "MicroTime",
        "apimachinery.pkg.apis.meta.v1.Duration" => "Duration",
        "apimachinery.pkg.apis.meta.v1.FieldsV1" => "FieldsV1",
        "apimachinery.pkg.runtime.RawExtension" => "RawExtension",
        _ => return None,
    })
}

fn int_field(m: &DynamicMessage, name: &str) -> i64 {
    match m.get_field_by_name(name).as_deref() {
        Some(PV::I64(v)) => *v,
        Some(PV::I32(v)) => i64::from(*v),
        _ => 0,
    }
}

fn str_field(m: &DynamicMessage, name: &str) -> String {
    match m.get_field_by_name(name).as_deref() {
        Some(PV::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn bytes_field(m: &DynamicMessage, name: &str) -> Vec<u8> {
    match m.get_field_by_name(name).as_deref() {
        Some(PV::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// A special message as JSON; `Value::Null` means "leave the field out".
fn special_to_json(which: &str, m: &DynamicMessage) -> std::result::Result<Value, String> {
    Ok(match which {
        "IntOrString" => {
            if int_field(m, "type") == 1 {
                Value::String(str_field(m, "strVal"))
            } else {
                Value::from(int_field(m, "intVal"))
            }
        }
        "Quantity" => Value::String(str_field(m, "string")),
        "Time" | "MicroTime" => {
            let (s, n) = (int_field(m, "seconds"), int_field(m, "nanos"));
            if s == 0 && n == 0 {
                return Ok(Value::Null);
            }
            let t = chrono::DateTime::from_timestamp(s, u32::try_from(n).unwrap_or(0))
                .ok_or_else(|| format!("time {s}.{n} is out of range"))?;
            let fmt = if which == "Time" {
                "%Y-%m-%dT%H:%M:%SZ"
            } else {
                "%Y-%m-%dT%H:%M:%S%.6fZ"
            };
            Value::String(t.format(fmt).to_string())
        }
        "Duration" => Value::String(format_duration(int_field(m, "duration"))),
        _ => {
            // FieldsV1 / RawExtension: embedded JSON.
            let raw = bytes_field(m, if which == "FieldsV1" { "Raw" } else { "raw" });
            if raw.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(&raw).map_err(|e| format!("{which} is not JSON: {e}"))?
        }
    })
}

fn is_zero(v: &PV) -> bool {
    match v {
        PV::Bool(b) => !b,
        PV::I32(n) => *n == 0,
        PV::I64(n) => *n == 0,
        PV::U32(n) => *n == 0,
        PV::U64(n) => *n == 0,
        PV::F32(n) => *n == 0.0,
        PV::F64(n) => *n == 0.0,
        PV::String(s) => s.is_empty(),
        PV::Bytes(b) => b.is_empty(),
        PV::EnumNumber(n) => *n == 0,
        PV::List(l) => l.is_empty(),
        PV::Map(m) => m.is_empty(),
        PV::Message(_) => false,
    }
}

fn keep_zero(msg: &MessageDescriptor, field: &FieldDescriptor) -> bool {
    KEEP_ZERO.iter().any(|k| match k.split_once('.') {
        Some((m, f)) => m == msg.name() && f == field.name(),
        None => *k == field.name(),
    })
}

/// A decoded message as JSON, by the rules in the module docs.
pub fn message_to_json(m: &DynamicMessage) -> std::result::Result<Value, String> {
    let desc = m.descriptor();
    if let Some(which) = special(&desc) {
        return special_to_json(which, m);
    }
    let mut out = Map::new();
    for (field, value) in m.fields() {
        if !field.is_list() && !field.is_map() && is_zero(value) && !keep_zero(&desc, &field) {
            continue;
        }
        let v = field_to_json(value)?;
        if inline(&desc, &field) {
            if let Value::Object(fields) = v {
                out.extend(fields);
            }
            continue;
        }
        if !v.is_null() {
            out.insert(field.name().to_string(), v);
        }
    }
    Ok(Value::Object(out))
}

fn field_to_json(v: &PV) -> std::result::Result<Value, String> {
    match v {
        PV::List(items) => items
            .iter()
            .map(scalar_to_json)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Value::Array),
        PV::Map(entries) => {
            let mut out = Map::new();
            let mut keys: Vec<_> = entries.iter().collect();
            keys.sort_by_key(|(k, _)| map_key_string(k));
            for (k, v) in keys {
                out.insert(map_key_string(k), scalar_to_json(v)?);
            }
            Ok(Value::Object(out))
        }
        other => scalar_to_json(other),
    }
}

fn map_key_string(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn scalar_to_json(v: &PV) -> std::result::Result<Value, String> {
    Ok(match v {
        PV::Bool(b) => Value::Bool(*b),
        PV::I32(n) => Value::from(*n),
        PV::I64(n) => Value::from(*n),
        PV::U32(n) => Value::from(*n),
        PV::U64(n) => Value::from(*n),
        PV::F32(n) => Value::from(f64::from(*n)),
        PV::F64(n) => Value::from(*n),
        PV::String(s) => Value::String(s.clone()),
        PV::Bytes(b) => Value::String(B64.encode(b)),
        PV::EnumNumber(n) => Value::from(*n),
        PV::Message(m) => message_to_json(m)?,
        PV::List(_) | PV::Map(_) => return Err("nested repeated field".into()),
    })
}

// ---- JSON -> protobuf ----

/// A JSON object as a message of `desc`: the fields the JSON has, the rest absent.
pub fn json_to_message(
    desc: &MessageDescriptor,
    v: &Value,
) -> std::result::Result<DynamicMessage, String> {
    let mut m = DynamicMessage::new(desc.clone());
    if let Some(which) = special(desc) {
        special_from_json(which, &mut m, v)?;
        return Ok(m);
    }
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{} must be an object", desc.name()))?;
    for field in desc.fields().filter(|f| inline(desc, f)) {
        if let Kind::Message(sub) = field.kind() {
            let part = json_to_message(&sub, v)?;
            if part.fields().next().is_some() {
                m.set_field(&field, PV::Message(part));
            }
        }
    }
    for (k, fv) in obj {
        if fv.is_null() {
            continue;
        }
        let Some(field) = desc.get_field_by_name(k).filter(|f| !inline(desc, f)) else {
            continue;
        };
        let pv = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return Err(format!("{k}: map without an entry message"));
            };
            let value_field = entry.map_entry_value_field();
            let items = fv
                .as_object()
                .ok_or_else(|| format!("{k} must be an object"))?;
            let mut map = HashMap::new();
            for (mk, mv) in items {
                map.insert(
                    MapKey::String(mk.clone()),
                    json_to_scalar(&value_field.kind(), mv, k)?,
                );
            }
            PV::Map(map)
        } else if field.is_list() {
            let items = fv.as_array().ok_or_else(|| format!("{k} must be a list"))?;
            PV::List(
                items
                    .iter()
                    .map(|i| json_to_scalar(&field.kind(), i, k))
                    .collect::<std::result::Result<_, _>>()?,
            )
        } else {
            json_to_scalar(&field.kind(), fv, k)?
        };
        m.set_field(&field, pv);
    }
    Ok(m)
}

fn json_to_scalar(kind: &Kind, v: &Value, name: &str) -> std::result::Result<PV, String> {
    let int = || {
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| format!("{name} must be an integer"))
    };
    let wrong = || format!("{name}: {v} does not fit the field");
    Ok(match kind {
        Kind::Bool => PV::Bool(v.as_bool().ok_or_else(wrong)?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            PV::I32(i32::try_from(int()?).map_err(|_| wrong())?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => PV::I64(int()?),
        Kind::Uint32 | Kind::Fixed32 => PV::U32(u32::try_from(int()?).map_err(|_| wrong())?),
        Kind::Uint64 | Kind::Fixed64 => PV::U64(u64::try_from(int()?).map_err(|_| wrong())?),
        Kind::Float => PV::F32(v.as_f64().ok_or_else(wrong)? as f32),
        Kind::Double => PV::F64(v.as_f64().ok_or_else(wrong)?),
        Kind::String => PV::String(v.as_str().ok_or_else(wrong)?.to_string()),
        Kind::Bytes => PV::Bytes(
            B64.decode(v.as_str().ok_or_else(wrong)?)
                .map_err(|e| format!("{name}: not base64: {e}"))?
                .into(),
        ),
        Kind::Enum(_) => PV::EnumNumber(i32::try_from(int()?).map_err(|_| wrong())?),
        Kind::Message(d) => PV::Message(json_to_message(d, v)?),
    })
}

fn special_from_json(
    which: &str,
    m: &mut DynamicMessage,
    v: &Value,
) -> std::result::Result<(), String> {
    match which {
        "IntOrString" => match v {
            Value::String(s) => {
                m.set_field_by_name("type", PV::I64(1));
                m.set_field_by_name("strVal", PV::String(s.clone()));
            }
            Value::Number(n) => {
                let n = n
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or("IntOrString out of range")?;
                m.set_field_by_name("type", PV::I64(0));
                m.set_field_by_name("intVal", PV::I32(n));
            }
            _ => return Err("IntOrString must be a number or a string".into()),
        },
        "Quantity" => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err("a quantity must be a string".into()),
            };
            m.set_field_by_name("string", PV::String(s));
        }
        "Time" | "MicroTime" => {
            let s = v.as_str().ok_or("a time must be an RFC 3339 string")?;
            let t =
                chrono::DateTime::parse_from_rfc3339(s).map_err(|e| format!("time {s:?}: {e}"))?;
            m.set_field_by_name("seconds", PV::I64(t.timestamp()));
            let nanos = t.timestamp_subsec_nanos();
            if nanos != 0 {
                m.set_field_by_name("nanos", PV::I32(i32::try_from(nanos).unwrap_or(0)));
            }
        }
        "Duration" => {
            let s = v.as_str().ok_or("a duration must be a string")?;
            m.set_field_by_name("duration", PV::I64(parse_duration(s)?));
        }
        _ => {
            let field = if which == "FieldsV1" { "Raw" } else { "raw" };
            m.set_field_by_name(field, PV::Bytes(v.to_string().into_bytes().into()));
        }
    }
    Ok(())
}

/// Go's `time.Duration.String()` for whole units: `1h2m3s`, `1.5s`, `300ms`, `0s`.
fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1.0)
        } else if ns < 1_000_000 {
            ("µs", 1e3)
        } else {
            ("ms", 1e6)
        };
        return format!("{sign}{}{unit}", ns as f64 / div);
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = (ns % 60_000_000_000) as f64 / 1e9;
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

fn parse_duration(s: &str) -> std::result::Result<i64, String> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {s:?} lacks a unit"))?;
        let value: f64 = rest[..n]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("unknown unit {other:?} in duration {s:?}")),
        };
        total += value * unit;
        rest = &rest[u..];
    }
    let total = total.round() as i64;
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back() {
        for s in ["0s", "1h0m0s", "1m30s", "1.5s", "300ms", "2h3m4s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn negotiation() {
        let pb = "application/vnd.kubernetes.protobuf,application/json";
        assert_eq!(negotiate(pb, true), Some(Encoding::Protobuf));
        assert_eq!(negotiate(pb, false), Some(Encoding::Json));
        assert_eq!(negotiate("", true), Some(Encoding::Json));
        assert_eq!(negotiate(MEDIA_TYPE, false), None);
        assert_eq!(negotiate("application/cbor", true), None);
        assert_eq!(
            negotiate(
                "application/json;q=0.5,application/vnd.kubernetes.protobuf",
                true
            ),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf;as=Table", true),
            None
        );
    }
}
