//! API errors, rendered as the `Status` objects Kubernetes sends, so clients (kubectl,
//! client-go, kube-rs) parse them as they would a real API server's.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// One failure of a request: an HTTP code, a Kubernetes reason and a message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds a client should wait before retrying (429 and friends).
    pub retry_after: Option<u64>,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// One `details.causes[]` item of an Invalid or Conflict error.
pub struct Cause<'a> {
    pub kind: &'a str,
    pub message: String,
    pub field: String,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, rt: Option<&ResourceType>, name: &str, causes: &[Cause]) -> Self {
        let mut d = serde_json::Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if let Some(rt) = rt {
            if !rt.group.is_empty() {
                d.insert("group".into(), json!(rt.group));
            }
            d.insert("kind".into(), json!(rt.plural));
        }
        if !causes.is_empty() {
            let c: Vec<Value> = causes
                .iter()
                .map(|c| json!({"reason": c.kind, "type": c.kind, "message": c.message, "field": c.field}))
                .collect();
            d.insert("causes".into(), Value::Array(c));
        }
        self.details = Some(Value::Object(d));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", rt.qualified(), name),
        )
        .with_details(Some(rt), name, &[])
    }

    pub fn not_found_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
            .with_details(None, ns, &[])
            .with_kind("namespaces")
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", rt.qualified(), name),
        )
        .with_details(Some(rt), name, &[])
    }

    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                rt.qualified(),
                name
            ),
        )
        .with_details(Some(rt), name, &[])
    }

    pub fn apply_conflict(
        rt: &ResourceType,
        name: &str,
        message: String,
        fields: &[String],
    ) -> Self {
        let causes: Vec<Cause> = fields
            .iter()
            .map(|f| Cause {
                kind: "FieldManagerConflict",
                message: format!("conflict with {f}"),
                field: f.clone(),
            })
            .collect();
        Self::new(409, "Conflict", message).with_details(Some(rt), name, &causes)
    }

    /// 422 Invalid: `<Kind> "<name>" is invalid: <field>: <message>`.
    pub fn invalid(rt: &ResourceType, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        Self::new(
            422,
            "Invalid",
            format!("{} \"{}\" is invalid: {}", rt.kind, name, joined),
        )
        .with_details(Some(rt), name, &causes)
    }

    /// 400, as an admission webhook refuses a write.
    pub fn denied_by_webhook(webhook: &str, reason: &str) -> Self {
        Self::new(
            400,
            "BadRequest",
            format!("admission webhook \"{webhook}\" denied the request: {reason}"),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {ct:?})"
            ),
        )
    }

    /// A protobuf body of a kind the emulator only speaks JSON for (custom resources).
    pub fn unsupported_protobuf_kind(api_version: &str, kind: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - {kind:?} ({api_version:?}) is not accepted as application/vnd.kubernetes.protobuf; accepted media types include: application/json, application/yaml"
            ),
        )
    }

    /// 406: nothing in the `Accept` header can be produced.
    pub fn not_acceptable(protobuf: bool) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            if protobuf {
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            } else {
                "only the following media types are accepted: application/json, application/yaml"
            },
        )
    }

    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Gone", message)
    }

    pub fn too_many_requests() -> Self {
        let mut e = Self::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        );
        e.retry_after = Some(1);
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        let mut e = Self::new(500, "InternalError", message);
        e.retry_after = Some(1);
        e
    }

    pub fn watch_list_forbidden() -> Self {
        Self::new(
            422,
            "Invalid",
            "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        )
    }

    fn with_kind(mut self, kind: &str) -> Self {
        if let Some(Value::Object(d)) = &mut self.details {
            d.insert("kind".into(), json!(kind));
        }
        self
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        if let Some(r) = self.retry_after {
            s["details"]["retryAfterSeconds"] = json!(r);
        }
        s
    }
}
