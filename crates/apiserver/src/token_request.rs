//! `serviceaccounts/<name>/token` (the TokenRequest API, `kubectl create token`): a signed
//! token for the ServiceAccount, for the audiences and time asked, optionally bound to a
//! Pod, Secret or Node so it dies with that object.

use serde_json::{Value, json};

use crate::authn::serviceaccount::{Binding, ISSUER};
use crate::error::{ApiError, ApiResult};
use crate::handler::ApiState;
use crate::meta;

const DEFAULT_SECONDS: i64 = 3600;
const MIN_SECONDS: i64 = 600;

fn invalid(message: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("TokenRequest.authentication.k8s.io \"\" is invalid: {message}"),
    )
}

pub async fn create(state: &ApiState, ns: &str, name: &str, req: Value) -> ApiResult<Value> {
    let signer = state
        .authenticator
        .service_accounts
        .as_ref()
        .ok_or_else(|| ApiError::internal("this server issues no service account tokens"))?;
    let catalog = &state.catalog;
    let sa_info = catalog
        .by_kind("", "ServiceAccount")
        .ok_or_else(|| ApiError::internal("no ServiceAccount resource"))?;
    let sa = state.registry.get(sa_info, Some(ns), name).await?;
    let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_SECONDS);
    if seconds < MIN_SECONDS {
        return Err(invalid(&format!(
            "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
        )));
    }
    if seconds > 1 << 32 {
        return Err(invalid(
            "spec.expirationSeconds: Invalid value: may not specify a duration larger than 2^32 seconds",
        ));
    }
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = vec![ISSUER.to_string()];
    }
    let mut binding = Binding::default();
    if let Some(r) = spec.get("boundObjectRef").filter(|r| r.is_object()) {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let obj_name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let info = match kind {
            "Pod" | "Secret" | "Node" => catalog.by_kind("", kind),
            _ => None,
        }
        .ok_or_else(|| {
            invalid(&format!(
                "spec.boundObjectRef.kind: Unsupported value: \"{kind}\": supported values: \"Pod\", \"Secret\", \"Node\""
            ))
        })?;
        let obj_ns = (kind != "Node").then_some(ns);
        let obj = state.registry.get(info, obj_ns, obj_name).await?;
        let uid = meta::str_at(&obj, "/metadata/uid")
            .unwrap_or("")
            .to_string();
        if let Some(want) = r
            .get("uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            && want != uid
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{obj_name}\": the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated",
                    info.qualified()
                ),
            ));
        }
        let pair = Some((obj_name.to_string(), uid));
        match kind {
            "Pod" => {
                // A pod's token also names its node, as upstream's does.
                if let Some(node) = obj.pointer("/spec/nodeName").and_then(Value::as_str)
                    && let Some(node_info) = catalog.by_kind("", "Node")
                    && let Ok(n) = state.registry.get(node_info, None, node).await
                {
                    binding.node = Some((
                        node.to_string(),
                        meta::str_at(&n, "/metadata/uid").unwrap_or("").to_string(),
                    ));
                }
                if obj
                    .pointer("/spec/serviceAccountName")
                    .and_then(Value::as_str)
                    != Some(name)
                {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount \"{name}\" to pod running with different serviceaccount name."
                    )));
                }
                binding.pod = pair;
            }
            "Secret" => binding.secret = pair,
            _ => binding.node = pair,
        }
    }
    let sa_uid = meta::str_at(&sa, "/metadata/uid").unwrap_or("");
    let (token, exp) = signer
        .issue((ns, name, sa_uid), &audiences, seconds, &binding)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    let exp = time::OffsetDateTime::from_unix_timestamp(exp)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let mut out = req;
    out["apiVersion"] = json!("authentication.k8s.io/v1");
    out["kind"] = json!("TokenRequest");
    if out.get("metadata").is_none_or(|m| !m.is_object()) {
        out["metadata"] = json!({});
    }
    out["metadata"]["name"] = json!(name);
    out["metadata"]["namespace"] = json!(ns);
    let mut spec = spec;
    spec["audiences"] = json!(audiences);
    spec["expirationSeconds"] = json!(seconds);
    out["spec"] = spec;
    out["status"] = json!({"token": token, "expirationTimestamp": exp});
    Ok(out)
}
