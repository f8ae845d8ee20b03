//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook: the writes matched by a
//! Mutating/ValidatingWebhookConfiguration's rules and selectors are sent to the webhook as an
//! `admission.k8s.io/v1` AdmissionReview over HTTPS; its answer allows, refuses or (mutating
//! webhooks) patches the object. Mutating webhooks run in order after the built-in mutating
//! plugins, validating webhooks concurrently before ResourceQuota, as upstream.

use base64::Engine;
use serde_json::{Value, json};

use super::matching::{namespace_selector_matches, object_selector_matches, rules_match};
use crate::admission::{Attributes, Lister, Operation};
use crate::error::{ApiError, ApiResult};

const GROUP: &str = "admissionregistration.k8s.io";

/// Runs the matching mutating webhooks, in configuration-name order, applying their patches.
pub async fn mutate(lister: &dyn Lister, a: &Attributes<'_>, obj: &mut Value) -> ApiResult<()> {
    if exempt(a) {
        return Ok(());
    }
    for hook in matching(lister, a, obj, "MutatingWebhookConfiguration").await? {
        let Some(resp) = call(lister, a, &hook, obj).await? else {
            continue;
        };
        if let Some(patch) = resp.get("patch").and_then(Value::as_str) {
            apply_patch(a, obj, &resp, patch)?;
        }
    }
    Ok(())
}

/// Runs the matching validating webhooks concurrently; the first refusal wins.
pub async fn validate(lister: &dyn Lister, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    if exempt(a) {
        return Ok(());
    }
    let hooks = matching(lister, a, obj, "ValidatingWebhookConfiguration").await?;
    let calls = hooks.iter().map(|h| call(lister, a, h, obj));
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
    lister: &dyn Lister,
    a: &Attributes<'_>,
    obj: &Value,
    kind: &str,
) -> ApiResult<Vec<Value>> {
    let info = crate::resources::by_kind(GROUP, kind)?;
    // From the watch cache without waiting, as upstream reads a lister.
    let mut configs = lister.list(info, None).await?;
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
            if !namespace_selector_matches(lister, hook, a, obj, &mut namespace).await? {
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
    lister: &dyn Lister,
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
    let resp = match crate::webhook_client::send(
        lister,
        hook,
        timeout,
        &review,
        "kube-apiserver-admission",
    )
    .await
    {
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
