//! Which writes an admission configuration applies to (upstream's webhook predicates and
//! the policies' `matchResources`): rules by operation, group, version, resource and scope,
//! and object and namespace label selectors. For the webhooks and the
//! ValidatingAdmissionPolicies alike.

use serde_json::Value;

use crate::admission::{Attributes, Lister};
use crate::error::{ApiError, ApiResult};
use crate::selector::{LabelSelector, selector_string};

fn strings<'v>(v: &'v Value, key: &str) -> Vec<&'v str> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether any of `rules` (a webhook's `rules`, a policy's `resourceRules`) covers the
/// write's operation, group, version, resource (with subresource), scope and — where a
/// rule lists them — name.
pub(crate) fn rules_match(rules: Option<&Value>, a: &Attributes<'_>) -> bool {
    let rules = rules.and_then(Value::as_array);
    rules.into_iter().flatten().any(|rule| {
        let has =
            |key: &str, want: &str| strings(rule, key).iter().any(|v| *v == "*" || *v == want);
        let scope = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
            "Cluster" => !a.info.namespaced,
            "Namespaced" => a.info.namespaced,
            _ => true,
        };
        let names = strings(rule, "resourceNames");
        scope
            && (names.is_empty() || names.contains(&a.name))
            && has("operations", a.operation.as_str())
            && has("apiGroups", a.info.group)
            && has("apiVersions", a.info.version)
            && strings(rule, "resources")
                .iter()
                .any(|r| resource_matches(r, a.info.plural, a.subresource))
    })
}

/// `pods` matches the resource only, `pods/status` one subresource, `pods/*` every
/// subresource, `*` every resource without subresources and `*/*` everything.
fn resource_matches(rule: &str, plural: &str, sub: Option<&str>) -> bool {
    let (res, rule_sub) = match rule.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (rule, None),
    };
    if res != "*" && res != plural {
        return false;
    }
    match (rule_sub, sub) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some("*"), _) => true,
        (Some(want), Some(got)) => want == got,
        (Some(_), None) => false,
    }
}

fn parse_selector(hook: &Value, key: &str) -> ApiResult<LabelSelector> {
    LabelSelector::parse(&selector_string(hook.get(key))).map_err(|e| {
        ApiError::internal(format!(
            "{:?}: invalid {key}: {}",
            hook.get("name").and_then(Value::as_str).unwrap_or(""),
            e.message
        ))
    })
}

/// The object selector (of a webhook or a policy's match resources) matches if the new or the old object's labels match (upstream).
pub(crate) fn object_selector_matches(
    hook: &Value,
    a: &Attributes<'_>,
    obj: &Value,
) -> ApiResult<bool> {
    let sel = parse_selector(hook, "objectSelector")?;
    Ok(sel.is_empty() || matches_either(&sel, a, obj))
}

/// Whether the new object (none on delete) or the old one matches.
fn matches_either(sel: &LabelSelector, a: &Attributes<'_>, obj: &Value) -> bool {
    (!obj.is_null() && sel.matches(obj)) || a.old.is_some_and(|o| sel.matches(o))
}

/// The namespace selector applies to namespaced objects (by their namespace's labels) and to
/// Namespaces themselves; other cluster-scoped objects always match.
pub(crate) async fn namespace_selector_matches(
    lister: &dyn Lister,
    hook: &Value,
    a: &Attributes<'_>,
    obj: &Value,
    cached: &mut Option<std::sync::Arc<Value>>,
) -> ApiResult<bool> {
    let sel = parse_selector(hook, "namespaceSelector")?;
    if sel.is_empty() {
        return Ok(true);
    }
    if a.info.group.is_empty() && a.info.kind == "Namespace" {
        return Ok(matches_either(&sel, a, obj));
    }
    if !a.info.namespaced || a.namespace.is_empty() {
        return Ok(true);
    }
    if cached.is_none() {
        let info = crate::resources::by_kind("", "Namespace")?;
        *cached = Some(
            lister
                .get(info, None, a.namespace)
                .await?
                .ok_or_else(|| ApiError::not_found(info, a.namespace))?,
        );
    }
    Ok(cached.as_ref().is_some_and(|ns| sel.matches(ns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_match_like_upstream() {
        assert!(resource_matches("pods", "pods", None));
        assert!(!resource_matches("pods", "pods", Some("status")));
        assert!(resource_matches("pods/status", "pods", Some("status")));
        assert!(!resource_matches("pods/status", "pods", None));
        assert!(resource_matches("pods/*", "pods", Some("binding")));
        assert!(resource_matches("*", "configmaps", None));
        assert!(!resource_matches("*", "pods", Some("status")));
        assert!(resource_matches("*/*", "pods", Some("status")));
        assert!(resource_matches("*/status", "nodes", Some("status")));
        assert!(!resource_matches("services", "pods", None));
    }
}
