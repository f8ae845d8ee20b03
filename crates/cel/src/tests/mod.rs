//! Behaviour tests: CRD rules end to end, the libraries, cost limits and the general API.

mod api;
mod cost;
mod library;
mod net;
mod rules;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Value, json};

use crate::{CompileError, Reason, Rules, Violation, compile};

/// Evaluates a boolean expression with no variables.
pub(super) fn eval(expr: &str) -> bool {
    match compile(expr, &[]).and_then(|p| p.eval_bool(&[])) {
        Ok(b) => b,
        Err(e) => panic!("{expr}: {e}"),
    }
}

/// Asserts that each expression (no variables) is true.
pub(super) fn assert_all(exprs: &[&str]) {
    for e in exprs {
        assert!(eval(e), "{e}");
    }
}

/// The error of an expression with no variables.
pub(super) fn eval_err(expr: &str) -> String {
    compile(expr, &[]).and_then(|p| p.eval(&[])).unwrap_err()
}

pub(super) const ROOT: &str = "spec.validation.openAPIV3Schema";

pub(super) fn schema(v: Value) -> JSONSchemaProps {
    serde_json::from_value(v).unwrap()
}

pub(super) fn rules(v: Value) -> Rules {
    Rules::new(&schema(v), ROOT).unwrap()
}

pub(super) fn compile_errors(v: Value) -> Vec<CompileError> {
    Rules::new(&schema(v), ROOT).unwrap_err()
}

/// A root object with `spec` of the given schema.
pub(super) fn with_spec(spec: Value) -> Value {
    json!({"type": "object", "properties": {"spec": spec}})
}

pub(super) fn invalid(field: &str, ty: &str, message: &str) -> Violation {
    Violation {
        field: field.into(),
        reason: Reason::FieldValueInvalid,
        message: message.into(),
        value: Some(json!(ty)),
    }
}

pub(super) fn replicas_spec(rule: Value) -> Value {
    with_spec(json!({
        "type": "object",
        "properties": {
            "minReplicas": {"type": "integer"},
            "replicas": {"type": "integer"},
            "name": {"type": "string"}
        },
        "x-kubernetes-validations": [rule]
    }))
}
