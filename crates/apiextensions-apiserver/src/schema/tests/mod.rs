//! Behaviour and messages as upstream reports them (cases ported from upstream's tests
//! where they exist), one file per concern; the helpers are here.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Value, json};

use super::Structural;
use crate::field::FieldError;

mod defaulting;
mod list_type;
mod pruning;
mod structural;
mod upstream_validation;
mod validation;

const ROOT: &str = "spec.versions[0].schema.openAPIV3Schema";

fn props(v: Value) -> JSONSchemaProps {
    serde_json::from_value(v).expect("schema")
}

fn compile(v: Value) -> Structural {
    match Structural::new(&props(v), ROOT) {
        Ok(s) => s,
        Err(errs) => panic!("not structural: {}", strings(&errs).join("\n")),
    }
}

fn refused(v: Value) -> Vec<String> {
    match Structural::new(&props(v), ROOT) {
        Ok(_) => panic!("accepted"),
        Err(errs) => strings(&errs),
    }
}

fn strings(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

/// A root schema with `spec` of the given properties.
fn spec(properties: Value) -> Value {
    json!({"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}})
}

fn errors(s: &Structural, obj: Value) -> Vec<String> {
    strings(&s.validate(&obj))
}

/// The errors for `spec`, sorted (objects are walked in document order).
fn spec_errors(properties: Value, spec_value: Value) -> Vec<String> {
    let mut errs = errors(
        &compile(spec(properties)),
        json!({"apiVersion": "a/v1", "kind": "K", "spec": spec_value}),
    );
    errs.sort();
    errs
}
