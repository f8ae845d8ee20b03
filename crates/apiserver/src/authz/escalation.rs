//! RBAC's escalation prevention, on writes of roles and bindings: you cannot grant what you
//! do not hold. A role may be written by a user who holds every rule in it (or may
//! `escalate` roles); a binding by a user who holds every rule of the role it binds (or may
//! `bind` that role). Checked as part of admission, so patches are checked on their result.

use serde_json::Value;

use super::rbac::{Rule, uncovered};
use super::{Attributes, Authorizer, Decision};
use crate::admission;
use crate::error::{ApiError, ApiResult};

const GROUP: &str = "rbac.authorization.k8s.io";

/// Upstream's `CompactString` of a rule, as escalation errors print them.
fn compact(r: &Rule) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut parts = Vec::new();
    for (name, v) in [
        ("APIGroups", &r.api_groups),
        ("Resources", &r.resources),
        ("ResourceNames", &r.resource_names),
        ("NonResourceURLs", &r.non_resource_urls),
        ("Verbs", &r.verbs),
    ] {
        if !v.is_empty() {
            parts.push(format!("{name}:[{}]", list(v)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

fn rules_of(obj: &Value) -> Vec<Rule> {
    obj.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(Rule::from_value)
        .collect()
}

/// Checks a create or update of a Role, ClusterRole, RoleBinding or ClusterRoleBinding.
pub fn check(authz: &Authorizer, a: &admission::Attributes<'_>, obj: &Value) -> ApiResult<()> {
    let Some(user) = a.user else {
        return Ok(());
    };
    if a.info.group != GROUP || a.subresource.is_some() {
        return Ok(());
    }
    let namespace = if a.info.namespaced { a.namespace } else { "" };
    let allowed_to = |verb: &str, resource: &str, name: &str| {
        authz.authorize(&Attributes {
            user: user.clone(),
            verb: verb.into(),
            is_resource_request: true,
            api_group: GROUP.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }) == Decision::Allow
    };
    let wanted = match a.info.kind {
        "Role" | "ClusterRole" => {
            if allowed_to("escalate", a.info.plural, a.name) {
                return Ok(());
            }
            rules_of(obj)
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let kind = obj
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let role = obj
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let resource = if kind == "ClusterRole" {
                "clusterroles"
            } else {
                "roles"
            };
            if allowed_to("bind", resource, role) {
                return Ok(());
            }
            match authz.rbac.role_rules(kind, namespace, role) {
                Some(rules) => rules,
                None => {
                    return Err(ApiError::forbidden(format!(
                        "{}.{GROUP} \"{}\" is forbidden: user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held: {} {:?} not found",
                        a.info.plural, a.name, user.name, user.groups, resource, role
                    )));
                }
            }
        }
        _ => return Ok(()),
    };
    let held = authz.rbac.rules_for(user, namespace);
    let missing = uncovered(&held, &wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = missing.iter().map(compact).collect();
    Err(ApiError::forbidden(format!(
        "{}.{GROUP} \"{}\" is forbidden: user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
        a.info.plural,
        a.name,
        user.name,
        user.groups,
        listed.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_print_as_upstream() {
        let r = Rule::from_value(
            &json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}),
        );
        assert_eq!(
            compact(&r),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}"#
        );
    }
}
