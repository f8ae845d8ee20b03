//! The access reviews, answered and never stored: SubjectAccessReview (may this user...?),
//! LocalSubjectAccessReview (the same, in one namespace), SelfSubjectAccessReview (may I?,
//! `kubectl auth can-i`), SelfSubjectRulesReview (what may I do here?, `kubectl auth
//! can-i --list`) and SelfSubjectReview (who am I?, `kubectl auth whoami`).

use serde_json::{Value, json};

use super::{Attributes, Authorizer, Decision};
use crate::authn::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The attributes a review's spec asks about, for `user`.
fn spec_attributes(info: &ResourceInfo, spec: &Value, user: UserInfo) -> ApiResult<Attributes> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        return Ok(Attributes {
            user,
            verb: s(r, "verb"),
            is_resource_request: true,
            api_group: s(r, "group"),
            resource: s(r, "resource"),
            subresource: s(r, "subresource"),
            namespace: s(r, "namespace"),
            name: s(r, "name"),
            path: String::new(),
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|r| r.is_object()) {
        return Ok(Attributes {
            user,
            verb: s(n, "verb"),
            path: s(n, "path"),
            ..Default::default()
        });
    }
    Err(ApiError::new(
        422,
        "Invalid",
        format!(
            "{}.{} \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            info.kind, info.group
        ),
    ))
}

/// Without an authorizer everything is allowed.
fn decide(authz: Option<&Authorizer>, a: &Attributes) -> Decision {
    authz.map_or(Decision::Allow, |z| z.authorize(a))
}

fn access_status(decision: Decision) -> Value {
    match decision {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny(reason) => json!({"allowed": false, "denied": true, "reason": reason}),
        Decision::NoOpinion => json!({"allowed": false}),
    }
}

/// Answers a review created by `user`; `namespace` is the URL's (LocalSubjectAccessReview).
pub fn create(
    authz: Option<&Authorizer>,
    info: &ResourceInfo,
    namespace: Option<&str>,
    mut obj: Value,
    user: &UserInfo,
) -> ApiResult<Value> {
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match info.kind {
        "SelfSubjectReview" => json!({"userInfo": user.to_json()}),
        "SelfSubjectAccessReview" => {
            let a = spec_attributes(info, &spec, user.clone())?;
            access_status(decide(authz, &a))
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let subject = UserInfo {
                name: spec
                    .get("user")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                uid: spec
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                groups: strs(spec.get("groups")),
                extra: spec
                    .get("extra")
                    .and_then(Value::as_object)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), strs(Some(v)))).collect())
                    .unwrap_or_default(),
            };
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "{}.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified",
                        info.kind
                    ),
                ));
            }
            let a = spec_attributes(info, &spec, subject)?;
            if info.kind == "LocalSubjectAccessReview"
                && namespace.is_some_and(|ns| ns != a.namespace)
            {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {}",
                    namespace.unwrap_or("")
                )));
            }
            access_status(decide(authz, &a))
        }
        "SelfSubjectRulesReview" => {
            let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
            let rules = authz
                .map(|z| z.rbac.rules_for(user, ns))
                .unwrap_or_default();
            let resource_rules: Vec<Value> = rules
                .iter()
                .filter(|r| r.non_resource_urls.is_empty())
                .map(|r| {
                    let mut v = r.to_value();
                    // Kubernetes lists resource rules with all four fields.
                    for k in ["apiGroups", "resources"] {
                        if v.get(k).is_none() {
                            v[k] = json!([]);
                        }
                    }
                    v
                })
                .collect();
            let non_resource_rules: Vec<Value> = rules
                .iter()
                .filter(|r| !r.non_resource_urls.is_empty())
                .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
                .collect();
            json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
        }
        other => {
            return Err(ApiError::internal(format!(
                "{other} is not answered by the authorizer"
            )));
        }
    };
    obj["status"] = status;
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({});
    }
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
    Ok(obj)
}
