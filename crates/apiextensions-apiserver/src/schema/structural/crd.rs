//! `ValidateCustomResourceDefinitionOpenAPISchema`: the keywords and extensions CRDs allow.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use crate::field::FieldError;

use super::{items_schema, key, ty, type_must_be};

/// Where a schema sits, for the checks that depend on it.
#[derive(Clone, Default)]
pub(super) struct Ctx {
    /// Inside apiVersion, kind or metadata of the root or of an embedded resource.
    in_meta: bool,
    /// Why defaults are forbidden here, if they are.
    no_defaults: Option<&'static str>,
}

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// `ValidateCustomResourceDefinitionOpenAPISchema`: applies to every schema, junctors included.
pub(super) fn openapi_checks(
    s: &JSONSchemaProps,
    p: &str,
    is_root: bool,
    ctx: &Ctx,
    errs: &mut Vec<FieldError>,
) {
    const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
    let t = ty(s);
    if !t.is_empty() && t != "null" && !TYPES.contains(&t) {
        errs.push(FieldError::not_supported(
            format!("{p}.type"),
            Value::from(t),
            &TYPES,
        ));
    }
    if t == "null" {
        errs.push(FieldError::forbidden(
            format!("{p}.type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if s.default.is_some()
        && let Some(why) = ctx.no_defaults
    {
        errs.push(FieldError::forbidden(
            format!("{p}.default"),
            format!("must not be set {why}"),
        ));
    }
    if ctx.in_meta && s.x_kubernetes_embedded_resource == Some(true) {
        errs.push(FieldError::forbidden(
            format!("{p}.x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
    for (set, name) in [
        (s.id.is_some(), "id"),
        (s.additional_items.is_some(), "additionalItems"),
        (
            s.pattern_properties.as_ref().is_some_and(|m| !m.is_empty()),
            "patternProperties",
        ),
        (
            s.definitions.as_ref().is_some_and(|m| !m.is_empty()),
            "definitions",
        ),
        (s.dependencies.is_some(), "dependencies"),
        (s.ref_path.is_some(), "$ref"),
    ] {
        if set {
            errs.push(FieldError::forbidden(
                format!("{p}.{name}"),
                format!("{name} is not supported"),
            ));
        }
    }
    if matches!(s.items, Some(JSONSchemaPropsOrArray::Schemas(_))) {
        errs.push(FieldError::forbidden(
            format!("{p}.items"),
            "items must be a schema object and not an array",
        ));
    }
    if s.unique_items == Some(true) {
        errs.push(FieldError::forbidden(
            format!("{p}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let has_props = s.properties.as_ref().is_some_and(|m| !m.is_empty());
    if let Some(ap) = &s.additional_properties {
        if has_props && !matches!(ap, JSONSchemaPropsOrBool::Bool(true)) {
            errs.push(FieldError::forbidden(
                format!("{p}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let JSONSchemaPropsOrBool::Schema(x) = ap {
            let mut sub = ctx.clone();
            if ctx.in_meta {
                // Pruning cannot tell a defaulted metadata entry from a missing one.
                sub.no_defaults = Some("inside additionalProperties applying to object metadata");
            }
            openapi_checks(x, &format!("{p}.additionalProperties"), false, &sub, errs);
        }
    }
    for (k, x) in s.properties.iter().flatten() {
        let mut sub = ctx.clone();
        if (is_root || s.x_kubernetes_embedded_resource == Some(true))
            && META_FIELDS.contains(&k.as_str())
        {
            sub.in_meta = true;
            if is_root {
                sub.no_defaults = Some(match k.as_str() {
                    "apiVersion" => "in top-level apiVersion",
                    "kind" => "in top-level kind",
                    _ => "in top-level metadata",
                });
            }
        }
        openapi_checks(x, &key(p, "properties", k), false, &sub, errs);
    }
    for (name, list) in [
        ("allOf", &s.all_of),
        ("oneOf", &s.one_of),
        ("anyOf", &s.any_of),
    ] {
        for (i, x) in list.iter().flatten().enumerate() {
            openapi_checks(x, &format!("{p}.{name}[{i}]"), false, ctx, errs);
        }
    }
    if let Some(x) = &s.not {
        openapi_checks(x, &format!("{p}.not"), false, ctx, errs);
    }
    if let Some(x) = items_schema(s) {
        openapi_checks(x, &format!("{p}.items"), false, ctx, errs);
    }
    if s.x_kubernetes_preserve_unknown_fields == Some(false) {
        errs.push(FieldError::invalid(
            format!("{p}.x-kubernetes-preserve-unknown-fields"),
            Value::from(false),
            "must be true or undefined",
        ));
    }
    if let Some(mt) = &s.x_kubernetes_map_type {
        if t != "object" {
            type_must_be(
                errs,
                p,
                t,
                "must be object if x-kubernetes-map-type is specified",
            );
        }
        if mt != "atomic" && mt != "granular" {
            errs.push(FieldError::not_supported(
                format!("{p}.x-kubernetes-map-type"),
                Value::from(mt.as_str()),
                &["atomic", "granular"],
            ));
        }
    }
    super::list_types::list_checks(s, p, errs);
}
