//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook: the writes matched by a
//! Mutating/ValidatingWebhookConfiguration's rules and selectors are sent to the webhook as an
//! `admission.k8s.io/v1` AdmissionReview over HTTPS; its answer allows, refuses or (mutating
//! webhooks) patches the object. Mutating webhooks run in order after the built-in mutating
//! plugins, validating webhooks concurrently before ResourceQuota, as upstream.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::matching::{namespace_selector_matches, object_selector_matches, rules_match};
use crate::admission::{Attributes, Operation};
use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;

const GROUP: &str = "admissionregistration.k8s.io";
/// Upstream's limit on an AdmissionReview response body.
const MAX_RESPONSE: usize = 3 * 1024 * 1024;

/// Runs the matching mutating webhooks, in configuration-name order, applying their patches.
pub async fn mutate(registry: &Registry, a: &Attributes<'_>, obj: &mut Value) -> ApiResult<()> {
    if exempt(a) {
        return Ok(());
    }
    for hook in matching(registry, a, obj, "MutatingWebhookConfiguration").await? {
        let Some(resp) = call(registry, a, &hook, obj).await? else {
            continue;
        };
        if let Some(patch) = resp.get("patch").and_then(Value::as_str) {
            apply_patch(a, obj, &resp, patch)?;
        }
    }
    Ok(())
}

/// Runs the matching validating webhooks concurrently; the first refusal wins.
pub async fn validate(registry: &Registry, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    if exempt(a) {
        return Ok(());
    }
    let hooks = matching(registry, a, obj, "ValidatingWebhookConfiguration").await?;
    let calls = hooks.iter().map(|h| call(registry, a, h, obj));
    for result in futures::future::join_all(calls).await {
        result?;
    }
    Ok(())
}

/// Upstream never sends writes of the webhook configurations themselves to webhooks, so a
/// broken webhook cannot lock its own configuration.
fn exempt(a: &Attributes<'_>) -> bool {
    a.info.group == GROUP
}

/// The webhooks of every configuration of `kind` whose rules and selectors match the write.
async fn matching(
    registry: &Registry,
    a: &Attributes<'_>,
    obj: &Value,
    kind: &str,
) -> ApiResult<Vec<Value>> {
    let info = crate::resources::by_kind(GROUP, kind)?;
    // From the watch cache without waiting, as upstream reads a lister.
    let mut configs = registry.cached_objects(info, None).await?;
    // Upstream calls configurations in name order.
    configs.sort_by(|x, y| crate::meta::name(x).cmp(crate::meta::name(y)));
    let mut namespace: Option<std::sync::Arc<Value>> = None;
    let mut out = Vec::new();
    for config in configs {
        let hooks = config.get("webhooks").and_then(Value::as_array);
        for hook in hooks.into_iter().flatten() {
            if !rules_match(hook.get("rules"), a) || !object_selector_matches(hook, a, obj)? {
                continue;
            }
            if !namespace_selector_matches(registry, hook, a, obj, &mut namespace).await? {
                continue;
            }
            out.push(hook.clone());
        }
    }
    Ok(out)
}

fn hook_name(hook: &Value) -> &str {
    hook.get("name").and_then(Value::as_str).unwrap_or("")
}

/// Calls one webhook: its `response` when it allowed the write, `None` when the call failed
/// and the failure policy is Ignore, the refusal or failure otherwise.
async fn call(
    registry: &Registry,
    a: &Attributes<'_>,
    hook: &Value,
    obj: &Value,
) -> ApiResult<Option<Value>> {
    let name = hook_name(hook);
    if a.dry_run
        && !matches!(
            hook.get("sideEffects").and_then(Value::as_str),
            Some("None" | "NoneOnDryRun")
        )
    {
        return Err(ApiError::bad_request(format!(
            "admission webhook {name:?} does not support dry run"
        )));
    }
    let uid = crate::meta::new_uid().to_string();
    let review = review(a, &uid, obj);
    let timeout = hook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10);
    let resp = match send(registry, hook, timeout, &review).await {
        Ok(body) => check_response(&body, &uid),
        Err(e) => Err(e),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            if hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") {
                tracing::warn!(webhook = name, error = %e, "failed calling webhook, failing open");
                return Ok(None);
            }
            tracing::warn!(webhook = name, error = %e, "failed calling webhook, failing closed");
            return Err(ApiError::internal(format!(
                "Internal error occurred: failed calling webhook {name:?}: {e}"
            )));
        }
    };
    for w in resp
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        crate::typed::warn(w.to_string());
    }
    if resp.get("allowed").and_then(Value::as_bool) != Some(true) {
        return Err(denied(name, resp.get("status")));
    }
    Ok(Some(resp))
}

/// Upstream's refusal: the webhook's status, its message prefixed with the webhook's name,
/// 403 unless the webhook gave a code.
fn denied(name: &str, status: Option<&Value>) -> ApiError {
    let get = |k: &str| status.and_then(|s| s.get(k));
    let message = match get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        Some(m) => format!("admission webhook {name:?} denied the request: {m}"),
        None => format!("admission webhook {name:?} denied the request without explanation"),
    };
    let code = get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(403);
    ApiError {
        code,
        reason: static_reason(get("reason").and_then(Value::as_str).unwrap_or("")),
        message,
        details: get("details").cloned(),
    }
}

/// The webhook's reason as one of the well-known reasons (`ApiError` holds static ones);
/// others become the unknown (empty) reason.
fn static_reason(reason: &str) -> &'static str {
    const KNOWN: [&str; 12] = [
        "Forbidden",
        "Unauthorized",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Invalid",
        "BadRequest",
        "MethodNotAllowed",
        "TooManyRequests",
        "InternalError",
        "ServiceUnavailable",
        "Timeout",
    ];
    KNOWN.into_iter().find(|k| *k == reason).unwrap_or("")
}

/// The AdmissionReview sent for the write.
fn review(a: &Attributes<'_>, uid: &str, obj: &Value) -> Value {
    let info = a.info;
    let user = match &a.user {
        Some(u) => u.to_json(),
        // The API server's own writes (upstream's loopback identity).
        None => json!({"username": "system:apiserver", "groups": ["system:masters"]}),
    };
    let kind = json!({"group": info.group, "version": info.version, "kind": info.kind});
    let resource = json!({"group": info.group, "version": info.version, "resource": info.plural});
    let options_kind = match a.operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
    };
    let mut req = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": a.name,
        "operation": a.operation.as_str(),
        "userInfo": user,
        "object": obj,
        "oldObject": a.old.cloned().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
    });
    if let Some(sub) = a.subresource {
        req["subResource"] = json!(sub);
        req["requestSubResource"] = json!(sub);
    }
    if !a.namespace.is_empty() {
        req["namespace"] = json!(a.namespace);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
}

/// The webhook's `response`, checked as upstream checks it (a failure to call otherwise).
fn check_response(body: &[u8], uid: &str) -> Result<Value, String> {
    let mut review: Value = serde_json::from_slice(body)
        .map_err(|e| format!("failed to decode the AdmissionReview response: {e}"))?;
    let got = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if got != "admission.k8s.io/v1" {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {got}"
        ));
    }
    let Some(resp) = review.get_mut("response").map(Value::take) else {
        return Err("webhook response was absent".into());
    };
    let got_uid = resp.get("uid").and_then(Value::as_str).unwrap_or("");
    if got_uid != uid {
        return Err(format!("expected response.uid={uid:?}, got {got_uid:?}"));
    }
    Ok(resp)
}

/// Applies a mutating webhook's JSONPatch to `obj`, re-decoded through the kind's type.
fn apply_patch(a: &Attributes<'_>, obj: &mut Value, resp: &Value, patch: &str) -> ApiResult<()> {
    match resp.get("patchType").and_then(Value::as_str) {
        Some("JSONPatch") => {}
        other => {
            return Err(ApiError::internal(format!(
                "Internal error occurred: unsupported patch type {:?}",
                other.unwrap_or("")
            )));
        }
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| ApiError::internal(format!("Internal error occurred: {e}")))?;
    let p: json_patch::Patch = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("Internal error occurred: {e}")))?;
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &p)
        .map_err(|e| ApiError::internal(format!("Internal error occurred: {e}")))?;
    *obj = crate::typed::decode(a.info, patched, crate::typed::FieldValidation::Ignore)?;
    Ok(())
}

/// Where a webhook is reached: the address dialled, the TLS name checked, the request target.
struct Endpoint {
    connect: (String, u16),
    server_name: String,
    authority: String,
    path: String,
    /// The URL as upstream's errors show it.
    url: String,
}

async fn endpoint(registry: &Registry, hook: &Value, timeout: u64) -> Result<Endpoint, String> {
    let cc = hook.get("clientConfig");
    let with_timeout = |path: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}timeout={timeout}s")
    };
    if let Some(url) = cc.and_then(|c| c.get("url")).and_then(Value::as_str) {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid webhook URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("webhook URL {url:?} is not https"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("webhook URL {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let path = with_timeout(uri.path_and_query().map_or("/", |p| p.as_str()));
        let authority = uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.to_string());
        return Ok(Endpoint {
            url: format!("https://{authority}{path}"),
            connect: (host.clone(), port),
            server_name: host,
            authority,
            path,
        });
    }
    let svc = cc
        .and_then(|c| c.get("service"))
        .ok_or("webhook has no clientConfig url or service")?;
    let s = |k: &str| svc.get(k).and_then(Value::as_str).unwrap_or("");
    let (name, ns) = (s("name"), s("namespace"));
    let port = svc
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(443);
    let path = with_timeout(svc.get("path").and_then(Value::as_str).unwrap_or("/"));
    let host = format!("{name}.{ns}.svc");
    // The API server may not use cluster DNS: the Service's cluster IP is dialled, and the
    // certificate checked for the service's DNS name, as upstream's service resolver does.
    let info = crate::resources::by_kind("", "Service").map_err(|e| e.message)?;
    let service = registry
        .get(info, Some(ns), name)
        .await
        .map_err(|e| e.message)?;
    let ip = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .ok_or_else(|| format!("service {ns}/{name} has no cluster IP"))?;
    let authority = format!("{host}:{port}");
    Ok(Endpoint {
        url: format!("https://{authority}{path}"),
        connect: (ip.to_string(), port),
        server_name: host,
        authority,
        path,
    })
}

fn tls_connector(hook: &Value) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(bundle) = hook
        .pointer("/clientConfig/caBundle")
        .and_then(Value::as_str)
    {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .map_err(|e| format!("invalid caBundle: {e}"))?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("invalid caBundle: {e}"))?;
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("invalid caBundle certificate: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(cfg)))
}

/// POSTs the review to the webhook within its timeout; the response body. Errors read as
/// upstream's (`failed to call webhook: Post "<url>": ...`).
async fn send(
    registry: &Registry,
    hook: &Value,
    timeout: u64,
    review: &Value,
) -> Result<Vec<u8>, String> {
    let ep = endpoint(registry, hook, timeout).await?;
    let tls = tls_connector(hook)?;
    let body = serde_json::to_vec(review).map_err(|e| format!("encoding the review: {e}"))?;
    let call = post(&ep, tls, body);
    match tokio::time::timeout(Duration::from_secs(timeout), call).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(format!("failed to call webhook: Post {:?}: {e}", ep.url)),
        Err(_) => Err(format!(
            "failed to call webhook: Post {:?}: context deadline exceeded",
            ep.url
        )),
    }
}

async fn post(ep: &Endpoint, tls: TlsConnector, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let (host, port) = (&ep.connect.0, ep.connect.1);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                format!("dial tcp {host}:{port}: connect: connection refused")
            }
            _ => format!("dial tcp {host}:{port}: {e}"),
        })?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(ep.server_name.clone())
        .map_err(|e| format!("invalid server name {:?}: {e}", ep.server_name))?;
    let tls = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "webhook connection ended with an error");
        }
    });
    let req = http::Request::post(ep.path.as_str())
        .header(http::header::HOST, ep.authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "kube-apiserver-admission")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| format!("reading the response: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "the server responded with the status code {} but did not return more information",
            status.as_u16()
        ));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_upstream() {
        let e = denied(
            "deny.example.com",
            Some(&json!({"message": "no", "code": 400})),
        );
        assert_eq!(
            e.message,
            "admission webhook \"deny.example.com\" denied the request: no"
        );
        assert_eq!(e.code, 400);
        let e = denied("d", None);
        assert_eq!(e.code, 403);
        assert!(e.message.ends_with("without explanation"));
    }
}
