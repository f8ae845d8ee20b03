//! Whether a CRD schema is structural and allowed, as upstream's
//! `ValidateCustomResourceDefinitionOpenAPISchema` and `structural.ValidateStructural` report it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use crate::field::FieldError;

mod crd;
mod junctors;
mod list_types;

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

fn key(p: &str, child: &str, k: &str) -> String {
    format!("{p}.{child}[{k}]")
}

fn items_schema(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(x)) => Some(x),
        _ => None,
    }
}

fn additional_schema(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(x)) => Some(x),
        _ => None,
    }
}

fn ty(s: &JSONSchemaProps) -> &str {
    s.type_.as_deref().unwrap_or("")
}

/// All errors for `s` at `path`, sorted like upstream sorts structural errors.
pub(crate) fn check(s: &JSONSchemaProps, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    crd::openapi_checks(s, path, true, &crd::Ctx::default(), &mut errs);
    if !convertible(s) {
        // Upstream cannot build the structural schema then; the errors above say why.
        return errs;
    }
    let mut structural = Vec::new();
    invariants(s, Level::Root, path, &mut structural);
    junctors::completeness(s, path, &mut structural);
    structural.sort_by_key(|e| e.to_string());
    errs.extend(structural);
    errs
}

/// Whether upstream's `NewStructural` can convert `s` (no keywords it does not support).
fn convertible(s: &JSONSchemaProps) -> bool {
    let own = s.id.is_none()
        && s.schema.is_none()
        && s.ref_path.is_none()
        && s.pattern_properties.is_none()
        && s.dependencies.is_none()
        && s.additional_items.is_none()
        && s.definitions.is_none()
        && !matches!(s.items, Some(JSONSchemaPropsOrArray::Schemas(_)))
        && s.x_kubernetes_preserve_unknown_fields != Some(false);
    let junctors = [&s.all_of, &s.any_of, &s.one_of];
    own && s.properties.iter().flatten().all(|(_, x)| convertible(x))
        && items_schema(s).is_none_or(convertible)
        && additional_schema(s).is_none_or(convertible)
        && s.not.as_deref().is_none_or(convertible)
        && junctors.iter().all(|l| l.iter().flatten().all(convertible))
}

fn type_must_be(errs: &mut Vec<FieldError>, p: &str, t: &str, detail: &str) {
    if t.is_empty() {
        errs.push(FieldError::required(format!("{p}.type"), detail));
    } else {
        errs.push(FieldError::invalid(
            format!("{p}.type"),
            Value::from(t),
            detail,
        ));
    }
}

/// `validateStructuralInvariants` for the structural (non-junctor) part.
fn invariants(s: &JSONSchemaProps, lvl: Level, p: &str, errs: &mut Vec<FieldError>) {
    let t = ty(s);
    let int_or_string = s.x_kubernetes_int_or_string == Some(true);
    let preserve = s.x_kubernetes_preserve_unknown_fields == Some(true);
    let embedded = s.x_kubernetes_embedded_resource == Some(true);
    if t == "array" && s.items.is_none() {
        errs.push(FieldError::required(
            format!("{p}.items"),
            "must be specified",
        ));
    }
    if let Some(is) = items_schema(s) {
        invariants(is, Level::Item, &format!("{p}.items"), errs);
    }
    for (k, x) in s.properties.iter().flatten() {
        invariants(x, Level::Field, &key(p, "properties", k), errs);
    }
    if s.additional_properties.is_some() {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(
                format!("{p}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(x) = additional_schema(s) {
            invariants(x, Level::Field, &format!("{p}.additionalProperties"), errs);
        }
    }
    if int_or_string && preserve {
        errs.push(FieldError::invalid(
            format!("{p}.x-kubernetes-preserve-unknown-fields"),
            Value::from(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(FieldError::invalid(
            format!("{p}.x-kubernetes-embedded-resource"),
            Value::from(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    junctors::junctor_checks(s, p, errs);
    if let Some(pat) = &s.pattern
        && let Err(e) = crate::schema::pattern::compile(pat)
    {
        errs.push(FieldError::invalid(
            format!("{p}.pattern"),
            Value::from(pat.as_str()),
            format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
    let check_meta = lvl == Level::Root || embedded;
    if embedded && t != "object" {
        type_must_be(
            errs,
            p,
            t,
            "must be object if x-kubernetes-embedded-resource is true",
        );
    } else if t.is_empty() && !int_or_string && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(format!("{p}.type"), detail));
    }
    if embedded && s.additional_properties.is_some() {
        errs.push(FieldError::forbidden(
            format!("{p}.additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !t.is_empty() && t != "object" {
        errs.push(FieldError::invalid(
            format!("{p}.type"),
            Value::from(t),
            "must be object at the root",
        ));
    }
    let props = s.properties.as_ref();
    for name in ["kind", "apiVersion"] {
        if let Some(x) = props.and_then(|m| m.get(name))
            && check_meta
            && ty(x) != "string"
        {
            errs.push(FieldError::invalid(
                format!("{}.type", key(p, "properties", name)),
                Value::from(ty(x)),
                "must be string",
            ));
        }
    }
    if let Some(meta) = props.and_then(|m| m.get("metadata")) {
        let mp = key(p, "properties", "metadata");
        if check_meta && ty(meta) != "object" {
            errs.push(FieldError::invalid(
                format!("{mp}.type"),
                Value::from(ty(meta)),
                "must be object",
            ));
        }
        if lvl == Level::Root && !root_metadata_ok(meta) {
            errs.push(FieldError::forbidden(
                mp,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if embedded && !preserve && props.is_none_or(|m| m.is_empty()) {
        errs.push(FieldError::required(
            format!("{p}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// The root `metadata` may only be `type: object` with restrictions of name and generateName.
fn root_metadata_ok(meta: &JSONSchemaProps) -> bool {
    let only_names = meta
        .properties
        .iter()
        .flatten()
        .all(|(k, _)| k == "name" || k == "generateName");
    let rest = JSONSchemaProps {
        type_: None,
        default: None,
        properties: None,
        ..meta.clone()
    };
    only_names && rest == JSONSchemaProps::default()
}
