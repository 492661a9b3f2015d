//! The HTTP face of one cluster: faults and auth first, then routing of discovery,
//! OpenAPI, health and resource paths to the verbs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::Value;

use crate::api::{Params, PatchType, Target};
use crate::cluster::{Cluster, WriteRecord};
use crate::discovery;
use crate::error::{ApiError, Result};
use crate::protobuf::{self, Encoding};
use crate::table::TableRequest;
use crate::watch;

/// etcd's request size limit, which the API server enforces too.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn router(cluster: Arc<Cluster>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(cluster)
}

fn json_response(code: u16, body: Bytes) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("static response parts are valid")
}

fn value_response(v: &Value) -> Response {
    json_response(200, Bytes::from(v.to_string()))
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, Bytes::from(e.to_status().to_string()));
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

async fn handle(State(cluster): State<Arc<Cluster>>, req: Request) -> Response {
    let faults = cluster.faults();
    if faults.latency_ms > 0 || faults.latency_jitter_ms > 0 {
        let jitter = if faults.latency_jitter_ms > 0 {
            rand::random_range(0..=faults.latency_jitter_ms)
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(faults.latency_ms + jitter)).await;
    }
    let retry_after = |mut e: ApiError| {
        cluster
            .injected
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(s) = faults.retry_after_seconds {
            e.retry_after = Some(s);
        }
        e
    };
    if let Some(qps) = faults.rate_limit_qps
        && !cluster.rate.lock().take(qps)
    {
        return error_response(&retry_after(ApiError::too_many_requests()));
    }
    if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
        let e = match faults.error_code {
            Some(429) => ApiError::too_many_requests(),
            _ => ApiError::internal("simulated server error (sim fault injection)"),
        };
        return error_response(&retry_after(e));
    }
    match serve(&cluster, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// A request must carry the cluster's bearer token, except over plain HTTP where
/// client-go never sends one: there a request without credentials is served, as the old
/// kube-apiserver insecure port did. A wrong token is refused either way.
fn authorized(cluster: &Cluster, req: &Request) -> bool {
    let Some(h) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return !cluster.tls;
    };
    h.strip_prefix("Bearer ")
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), cluster.token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn serve(cluster: &Arc<Cluster>, req: Request) -> Result<Response> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => return Ok(value_response(&discovery::version())),
        ["healthz" | "readyz" | "livez", ..] => {
            return Ok(Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from("ok"))
                .expect("static response parts are valid"));
        }
        _ => {}
    }
    if !authorized(cluster, &req) {
        return Err(ApiError::unauthorized());
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let registry = cluster.state.lock().registry.clone();
    let discovery_reply = |v: Option<Value>| {
        v.map(|v| value_response(&v))
            .ok_or_else(ApiError::not_found_path)
    };
    let aggregated = |core: bool| {
        let mut r = value_response(&discovery::aggregated(&registry, core));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
        );
        Ok(r)
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    match segs.as_slice() {
        [] => {
            return Ok(value_response(
                &serde_json::json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/openapi/v3", "/readyz", "/version"]}),
            ));
        }
        ["api"] if discovery::wants_aggregated(&accept) => return aggregated(true),
        ["api"] => return Ok(value_response(&discovery::api_versions(&host))),
        ["apis"] if discovery::wants_aggregated(&accept) => return aggregated(false),
        ["apis"] => return Ok(value_response(&discovery::api_group_list(&registry))),
        ["apis", g] => return discovery_reply(discovery::api_group_doc(&registry, g)),
        ["api", v] => return discovery_reply(discovery::resource_list(&registry, "", v)),
        ["apis", g, v] => return discovery_reply(discovery::resource_list(&registry, g, v)),
        ["openapi", "v3"] => return Ok(value_response(&discovery::openapi_index(&registry))),
        ["openapi", "v3", "api", v] => {
            return discovery_reply(discovery::openapi_group_version(&registry, "", v));
        }
        ["openapi", "v3", "apis", g, v] => {
            return discovery_reply(discovery::openapi_group_version(&registry, g, v));
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::not_found_path()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() && !matches!(r[0], "status" | "finalize") => {
            (Some(ns.to_string()), r)
        }
        r => (None, r),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::not_found_path()),
    };
    let rt = registry
        .find(group, version, plural)
        .cloned()
        .ok_or_else(ApiError::not_found_path)?;
    let served_sub = |s: &str| match s {
        "status" => rt.status_subresource,
        "scale" => rt.scale.is_some(),
        _ => false,
    };
    if sub.as_deref().is_some_and(|s| !served_sub(s)) {
        return Err(ApiError::not_found_path());
    }
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::not_found_path());
    }
    let t = Target {
        rt,
        namespace,
        name,
        subresource: sub,
    };
    let params = Params::parse(req.uri().query());
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let manager = params
        .get("fieldManager")
        .map(String::from)
        .unwrap_or_else(|| {
            let ua = user_agent.as_deref().unwrap_or("unknown");
            ua.split('/').next().unwrap_or("unknown").to_string()
        });

    let table = TableRequest::requested(&accept, &params);
    // The answer's encoding is settled before anything runs, as the API server does:
    // protobuf for the built-in kinds that have a message when Accept prefers it (their
    // watches too, in protobuf stream framing), JSON otherwise (tables, custom
    // resources, `/scale`), 406 when Accept allows neither.
    let scale = t.subresource.as_deref() == Some("scale");
    let protobuf_ok =
        t.rt.builtin && !scale && protobuf::supports(&t.rt.group, &t.rt.version, &t.rt.kind);
    let encoding = if table.is_some() {
        Encoding::Json
    } else {
        protobuf::negotiate(&accept, protobuf_ok)
            .ok_or_else(|| ApiError::not_acceptable(protobuf_ok))?
    };
    let reply = |code: u16, body: Bytes| respond(encoding, code, body);
    if method == Method::GET {
        return match (&t.name, params.flag("watch")) {
            (Some(_), _) if scale => Ok(json_response(200, cluster.get_scale(&t, table.as_ref())?)),
            (Some(_), _) => match &table {
                Some(tr) => Ok(json_response(200, cluster.get_table(&t, tr)?)),
                None => Ok(reply(200, cluster.get(&t)?)),
            },
            (None, true) => {
                if params.flag("sendInitialEvents")
                    && params
                        .get("resourceVersionMatch")
                        .is_none_or(|m| m != "NotOlderThan")
                {
                    return Err(ApiError::bad_request(
                        "sendInitialEvents requires resourceVersionMatch=NotOlderThan",
                    ));
                }
                let rx = watch::start(cluster, t, &params, table, encoding)?;
                let stream =
                    tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
                let content_type = match encoding {
                    Encoding::Protobuf => protobuf::WATCH_CONTENT_TYPE,
                    Encoding::Json => "application/json",
                };
                Ok(Response::builder()
                    .header(header::CONTENT_TYPE, content_type)
                    .header(header::CACHE_CONTROL, "no-cache, private")
                    .body(Body::from_stream(stream))
                    .expect("static response parts are valid"))
            }
            (None, false) => match &table {
                Some(tr) => Ok(json_response(200, cluster.list_table(&t, &params, tr)?)),
                None => Ok(reply(200, cluster.list(&t, &params)?)),
            },
        };
    }

    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())?;
    if t.subresource.is_some() && method != Method::PUT && method != Method::PATCH {
        // Subresources take get, update and patch only.
        return Err(ApiError::method_not_allowed());
    }
    let verb = match (&method, t.name.is_some()) {
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true)
            if PatchType::from_content_type(&content_type) == Some(PatchType::Apply) =>
        {
            "apply"
        }
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    let result = if !params.dry_run() && cluster.take_rejection() {
        Err(ApiError::denied_by_webhook(
            "faults.sim.gitfleet.dev",
            "injected rejection",
        ))
    } else {
        write(cluster, &t, &params, verb, &content_type, &body, &manager)
    };
    cluster.log_write(WriteRecord {
        seq: 0,
        // Milliseconds, as an audit log's microseconds: writes a second apart must tell.
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        verb: verb.into(),
        resource: t.rt.qualified(),
        subresource: t.subresource.clone(),
        namespace: t.namespace.clone().filter(|_| t.rt.namespaced),
        name: t
            .name
            .clone()
            .or_else(|| result.as_ref().ok().and_then(|(_, _, n)| n.clone())),
        field_manager: if verb.starts_with("delete") {
            None
        } else {
            Some(manager.clone())
        },
        dry_run: params.dry_run(),
        user_agent,
        code: match &result {
            Ok((c, _, _)) => *c,
            Err(e) => e.code,
        },
    });
    let (code, out, _) = result?;
    Ok(reply(code, out))
}

/// A JSON answer in the negotiated encoding. An object that does not fit its message
/// (which would be an emulator bug) is answered in JSON rather than not at all.
fn respond(encoding: Encoding, code: u16, body: Bytes) -> Response {
    if encoding == Encoding::Protobuf
        && let Ok(v) = serde_json::from_slice::<Value>(&body)
        && let Some(pb) = protobuf::encode(&v)
    {
        return Response::builder()
            .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
            .header(header::CONTENT_TYPE, protobuf::MEDIA_TYPE)
            .body(Body::from(pb))
            .expect("static response parts are valid");
    }
    json_response(code, body)
}

/// Parses a request body: JSON, or YAML where the content type says so.
pub fn parse_body(content_type: &str, body: &[u8]) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let base = content_type.split(';').next().unwrap_or("").trim();
    if protobuf::is_protobuf(base) {
        return protobuf::decode(body);
    }
    if base.contains("protobuf") || base.contains("cbor") {
        return Err(ApiError::unsupported_media_type(base));
    }
    if base.ends_with("yaml") && !body.starts_with(b"{") {
        serde_yaml_ng::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
    } else {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    }
}

/// Runs one mutating request; the name is returned for the write log when the URL has
/// none (a create), so the response is not parsed again.
fn write(
    cluster: &Arc<Cluster>,
    t: &Target,
    p: &Params,
    verb: &str,
    ct: &str,
    body: &[u8],
    manager: &str,
) -> Result<(u16, Bytes, Option<String>)> {
    let unnamed = |r: Result<(u16, Bytes)>| r.map(|(c, b)| (c, b, None));
    if t.subresource.as_deref() == Some("scale") {
        let patch = match verb {
            "update" => None,
            "apply" | "patch" => Some(
                PatchType::from_content_type(ct)
                    .ok_or_else(|| ApiError::unsupported_media_type(ct))?,
            ),
            _ => return Err(ApiError::method_not_allowed()),
        };
        return unnamed(cluster.write_scale(t, p, patch, parse_body(ct, body)?, manager));
    }
    match verb {
        "create" => cluster
            .create(t, p, parse_body(ct, body)?, manager)
            .map(|(c, b, n)| (c, b, Some(n))),
        "update" => unnamed(cluster.replace(t, p, parse_body(ct, body)?, manager)),
        "apply" | "patch" => {
            let kind = PatchType::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            unnamed(cluster.patch(t, p, kind, parse_body(ct, body)?, manager))
        }
        "delete" | "deletecollection" => {
            let opts = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                parse_body(ct, body)?
            };
            unnamed(if verb == "delete" {
                cluster.delete(t, p, &opts)
            } else {
                cluster.delete_collection(t, p, &opts)
            })
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
