//! ValidatingAdmissionPolicy and its bindings (admissionregistration.k8s.io/v1): upstream's
//! defaults, and the validation that keeps a policy evaluable — every expression compiles
//! (with the variables upstream declares), a binding names its policy and its actions.

use serde_json::{Value, json};

use super::{Strategy, set_default};
use crate::error::Cause;

/// The variables a policy's expressions may read.
pub const VARIABLES: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "params",
    "namespaceObject",
    "variables",
    "authorizer",
];

pub struct PolicyStrategy;

fn defaults_of_match(m: &mut Value) {
    set_default(m, "matchPolicy", json!("Equivalent"));
    set_default(m, "namespaceSelector", json!({}));
    set_default(m, "objectSelector", json!({}));
    for key in ["resourceRules", "excludeResourceRules"] {
        for r in m
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            set_default(r, "scope", json!("*"));
        }
    }
}

/// A compile error as upstream reports it.
fn compiles(field: String, expr: &str, causes: &mut Vec<Cause>) {
    if expr.is_empty() {
        causes.push(Cause::required(field));
    } else if let Err(e) = cel::compile(expr, VARIABLES) {
        causes.push(Cause::invalid(
            field,
            expr,
            &format!("compilation failed: {e}"),
        ));
    }
}

impl Strategy for PolicyStrategy {
    fn defaults(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            set_default(spec, "failurePolicy", json!("Fail"));
            if let Some(m) = spec.get_mut("matchConstraints") {
                defaults_of_match(m);
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = obj.get("spec").cloned().unwrap_or_default();
        let list = |key: &str| {
            spec.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let validations = list("validations");
        let audits = list("auditAnnotations");
        if validations.is_empty() && audits.is_empty() {
            causes.push(Cause {
                message:
                    "Required value: validations or auditAnnotations must contain at least one item"
                        .into(),
                ..Cause::required("spec.validations")
            });
        }
        if spec.pointer("/matchConstraints/resourceRules").is_none() {
            causes.push(Cause::required("spec.matchConstraints.resourceRules"));
        }
        for (i, v) in validations.iter().enumerate() {
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
            compiles(
                format!("spec.validations[{i}].expression"),
                s("expression"),
                &mut causes,
            );
            if !s("messageExpression").is_empty() {
                compiles(
                    format!("spec.validations[{i}].messageExpression"),
                    s("messageExpression"),
                    &mut causes,
                );
            }
        }
        for (i, v) in list("variables").iter().enumerate() {
            let expr = v.get("expression").and_then(Value::as_str).unwrap_or("");
            compiles(format!("spec.variables[{i}].expression"), expr, &mut causes);
        }
        for (i, v) in list("matchConditions").iter().enumerate() {
            let expr = v.get("expression").and_then(Value::as_str).unwrap_or("");
            compiles(
                format!("spec.matchConditions[{i}].expression"),
                expr,
                &mut causes,
            );
        }
        for (i, v) in audits.iter().enumerate() {
            let expr = v
                .get("valueExpression")
                .and_then(Value::as_str)
                .unwrap_or("");
            compiles(
                format!("spec.auditAnnotations[{i}].valueExpression"),
                expr,
                &mut causes,
            );
        }
        match spec.get("failurePolicy").and_then(Value::as_str) {
            None | Some("Fail" | "Ignore") => {}
            Some(other) => causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: "spec.failurePolicy".into(),
                message: format!(
                    "Unsupported value: {}: supported values: \"Fail\", \"Ignore\"",
                    json!(other)
                ),
            }),
        }
        causes
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

pub struct BindingStrategy;

impl Strategy for BindingStrategy {
    fn defaults(&self, obj: &mut Value) {
        if let Some(m) = obj.pointer_mut("/spec/matchResources") {
            defaults_of_match(m);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        if obj
            .pointer("/spec/policyName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required("spec.policyName"));
        }
        let actions: Vec<&str> = obj
            .pointer("/spec/validationActions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if actions.is_empty() {
            causes.push(Cause::required("spec.validationActions"));
        }
        for (i, a) in actions.iter().enumerate() {
            if !matches!(*a, "Deny" | "Warn" | "Audit") {
                causes.push(Cause {
                    reason: "FieldValueNotSupported",
                    field: format!("spec.validationActions[{i}]"),
                    message: format!(
                        "Unsupported value: {}: supported values: \"Audit\", \"Deny\", \"Warn\"",
                        json!(a)
                    ),
                });
            }
        }
        if actions.contains(&"Deny") && actions.contains(&"Warn") {
            causes.push(Cause::invalid(
                "spec.validationActions",
                json!(actions),
                "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            ));
        }
        if let Some(p) = obj.pointer("/spec/paramRef") {
            let named = p
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if named == p.get("selector").is_some() {
                causes.push(Cause::forbidden(
                    "spec.paramRef.name",
                    "name and selector are mutually exclusive, and one is required",
                ));
            }
            if !matches!(
                p.get("parameterNotFoundAction").and_then(Value::as_str),
                Some("Allow" | "Deny")
            ) {
                causes.push(Cause::required("spec.paramRef.parameterNotFoundAction"));
            }
        }
        causes
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}
