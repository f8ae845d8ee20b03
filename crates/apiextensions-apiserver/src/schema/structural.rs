//! Whether a CRD schema is structural and allowed, as upstream's
//! `ValidateCustomResourceDefinitionOpenAPISchema` and `structural.ValidateStructural` report it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use crate::field::FieldError;

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
    openapi_checks(s, path, true, &Ctx::default(), &mut errs);
    let mut structural = Vec::new();
    invariants(s, Level::Root, path, &mut structural);
    completeness(s, path, &mut structural);
    structural.sort_by_key(|e| e.to_string());
    errs.extend(structural);
    errs
}

/// Where a schema sits, for the checks that depend on it.
#[derive(Clone, Default)]
struct Ctx {
    /// Inside apiVersion, kind or metadata of the root or of an embedded resource.
    in_meta: bool,
    /// Why defaults are forbidden here, if they are.
    no_defaults: Option<&'static str>,
}

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// `ValidateCustomResourceDefinitionOpenAPISchema`: applies to every schema, junctors included.
fn openapi_checks(
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
    list_checks(s, p, errs);
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

fn list_checks(s: &JSONSchemaProps, p: &str, errs: &mut Vec<FieldError>) {
    let t = ty(s);
    let lt = s.x_kubernetes_list_type.as_deref();
    let keys = s.x_kubernetes_list_map_keys.as_deref().unwrap_or_default();
    if lt.is_some() && t != "array" {
        type_must_be(
            errs,
            p,
            t,
            "must be array if x-kubernetes-list-type is specified",
        );
    } else if lt == Some("set")
        && let Some(is) = items_schema(s)
    {
        match ty(is) {
            "array"
                if is
                    .x_kubernetes_list_type
                    .as_deref()
                    .is_some_and(|x| x != "atomic") =>
            {
                errs.push(FieldError::invalid(
                    format!("{p}.items.x-kubernetes-list-type"),
                    Value::from(is.x_kubernetes_list_type.clone()),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                ));
            }
            "object" if is.x_kubernetes_map_type.as_deref() != Some("atomic") => {
                errs.push(FieldError::invalid(
                    format!("{p}.items.x-kubernetes-map-type"),
                    Value::from(is.x_kubernetes_list_type.clone()),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                ));
            }
            _ => {}
        }
    }
    if let Some(l) = lt
        && !["atomic", "set", "map"].contains(&l)
    {
        errs.push(FieldError::not_supported(
            format!("{p}.x-kubernetes-list-type"),
            Value::from(l),
            &["atomic", "set", "map"],
        ));
    }
    if !keys.is_empty() {
        match lt {
            None => errs.push(FieldError::required(
                format!("{p}.x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(l) if l != "map" => errs.push(FieldError::invalid(
                format!("{p}.x-kubernetes-list-type"),
                Value::from(l),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            _ => {}
        }
    }
    if lt != Some("map") {
        if lt == Some("set")
            && let Some(is) = items_schema(s)
            && is.nullable == Some(true)
        {
            errs.push(FieldError::forbidden(
                format!("{p}.items.nullable"),
                "cannot be nullable when x-kubernetes-list-type is set",
            ));
        }
        return;
    }
    let keys_value = || Value::from(keys.to_vec());
    if keys.is_empty() {
        errs.push(FieldError::required(
            format!("{p}.x-kubernetes-list-map-keys"),
            "must not be empty if x-kubernetes-list-type is map",
        ));
    }
    let Some(is) = items_schema(s) else {
        if s.items.is_none() {
            errs.push(FieldError::required(
                format!("{p}.items"),
                "must have a schema if x-kubernetes-list-type is map",
            ));
        }
        return;
    };
    if ty(is) != "object" {
        errs.push(FieldError::invalid(
            format!("{p}.items.type"),
            Value::from(ty(is)),
            "must be object if parent array's x-kubernetes-list-type is map",
        ));
        return;
    }
    let mut seen: Vec<&str> = Vec::new();
    for k in keys {
        match is.properties.as_ref().and_then(|m| m.get(k)) {
            Some(ks) => {
                if matches!(ty(ks), "array" | "object") {
                    errs.push(FieldError::invalid(
                        format!("{}.type", key(&format!("{p}.items"), "properties", k)),
                        Value::from(ty(is)),
                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                    ));
                }
                let required = is.required.iter().flatten().any(|r| r == k);
                if !required && ks.default.is_none() {
                    errs.push(FieldError::required(
                        format!("{}.default", key(&format!("{p}.items"), "properties", k)),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if ks.nullable == Some(true) {
                    errs.push(FieldError::forbidden(
                        format!("{}.nullable", key(&format!("{p}.items"), "properties", k)),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
            None => errs.push(FieldError::invalid(
                format!("{p}.x-kubernetes-list-map-keys"),
                keys_value(),
                "entries must all be names of item properties",
            )),
        }
        if seen.contains(&k.as_str()) {
            errs.push(FieldError::invalid(
                format!("{p}.x-kubernetes-list-map-keys"),
                keys_value(),
                "must not contain duplicate entries",
            ));
        }
        seen.push(k);
    }
    if is.nullable == Some(true) {
        errs.push(FieldError::forbidden(
            format!("{p}.items.nullable"),
            "cannot be nullable when x-kubernetes-list-type is map",
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
    junctor_checks(s, p, errs);
    if let Some(pat) = &s.pattern
        && let Err(e) = regex::Regex::new(pat)
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

fn is_int_or_string_any_of(list: Option<&Vec<JSONSchemaProps>>) -> bool {
    let only = |t: &str| JSONSchemaProps {
        type_: Some(t.to_string()),
        ..Default::default()
    };
    list.is_some_and(|l| l.len() == 2 && l[0] == only("integer") && l[1] == only("string"))
}

fn junctor_checks(s: &JSONSchemaProps, p: &str, errs: &mut Vec<FieldError>) {
    let skip_any_of = is_int_or_string_any_of(s.any_of.as_ref());
    let skip_all_of0 = s
        .all_of
        .as_ref()
        .and_then(|a| a.first())
        .is_some_and(|a| is_int_or_string_any_of(a.any_of.as_ref()));
    value_validation(s, skip_any_of, skip_all_of0, p, errs);
}

/// `validateValueValidation`: the junctors of `s` (skipping the int-or-string patterns).
fn value_validation(
    s: &JSONSchemaProps,
    skip_any_of: bool,
    skip_all_of0: bool,
    p: &str,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, x) in s.any_of.iter().flatten().enumerate() {
            nested(x, false, &format!("{p}.anyOf[{i}]"), errs);
        }
    }
    for (i, x) in s.all_of.iter().flatten().enumerate() {
        nested(x, skip_all_of0 && i == 0, &format!("{p}.allOf[{i}]"), errs);
    }
    for (i, x) in s.one_of.iter().flatten().enumerate() {
        nested(x, false, &format!("{p}.oneOf[{i}]"), errs);
    }
    if let Some(x) = &s.not {
        nested(x, false, &format!("{p}.not"), errs);
    }
}

/// `validateNestedValueValidation`: what a schema inside a junctor may not specify.
fn nested(v: &JSONSchemaProps, skip_any_of: bool, p: &str, errs: &mut Vec<FieldError>) {
    value_validation(v, skip_any_of, false, p, errs);
    if let Some(is) = items_schema(v) {
        nested(is, false, &format!("{p}.items"), errs);
    }
    for (k, x) in v.properties.iter().flatten() {
        nested(x, false, &key(p, "properties", k), errs);
    }
    let forbid = |errs: &mut Vec<FieldError>, set: bool, name: &str, detail: &str| {
        if set {
            errs.push(FieldError::forbidden(format!("{p}.{name}"), detail));
        }
    };
    forbid(
        errs,
        v.type_.as_ref().is_some_and(|t| !t.is_empty()),
        "type",
        "must be empty to be structural",
    );
    forbid(
        errs,
        v.additional_properties.is_some(),
        "additionalProperties",
        "must be undefined to be structural",
    );
    forbid(
        errs,
        v.default.is_some(),
        "default",
        "must be undefined to be structural",
    );
    forbid(
        errs,
        v.title.as_ref().is_some_and(|t| !t.is_empty()),
        "title",
        "must be empty to be structural",
    );
    forbid(
        errs,
        v.description.as_ref().is_some_and(|t| !t.is_empty()),
        "description",
        "must be empty to be structural",
    );
    forbid(
        errs,
        v.nullable == Some(true),
        "nullable",
        "must be false to be structural",
    );
    let t = |b: Option<bool>| b == Some(true);
    forbid(
        errs,
        t(v.x_kubernetes_preserve_unknown_fields),
        "x-kubernetes-preserve-unknown-fields",
        "must be false to be structural",
    );
    forbid(
        errs,
        t(v.x_kubernetes_embedded_resource),
        "x-kubernetes-embedded-resource",
        "must be false to be structural",
    );
    forbid(
        errs,
        t(v.x_kubernetes_int_or_string),
        "x-kubernetes-int-or-string",
        "must be false to be structural",
    );
    forbid(
        errs,
        v.x_kubernetes_list_map_keys
            .as_ref()
            .is_some_and(|k| !k.is_empty()),
        "x-kubernetes-list-map-keys",
        "must be empty to be structural",
    );
    forbid(
        errs,
        v.x_kubernetes_list_type.is_some(),
        "x-kubernetes-list-type",
        "must be undefined to be structural",
    );
    forbid(
        errs,
        v.x_kubernetes_map_type.is_some(),
        "x-kubernetes-map-type",
        "must be undefined to be structural",
    );
    forbid(
        errs,
        v.x_kubernetes_validations
            .as_ref()
            .is_some_and(|x| !x.is_empty()),
        "x-kubernetes-validations",
        "must be empty to be structural",
    );
    if v.properties
        .as_ref()
        .is_some_and(|m| m.contains_key("metadata"))
    {
        errs.push(FieldError::forbidden(
            key(p, "properties", "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// `validateStructuralCompleteness`: whatever a junctor constrains must also be declared in
/// the structural part (properties and items).
fn completeness(s: &JSONSchemaProps, p: &str, errs: &mut Vec<FieldError>) {
    // Upstream checks the root's junctors only.
    value_completeness(s, Some(s), p, p, errs);
}

fn value_completeness(
    v: &JSONSchemaProps,
    s: Option<&JSONSchemaProps>,
    sp: &str,
    vp: &str,
    errs: &mut Vec<FieldError>,
) {
    for (name, list) in [
        ("allOf", &v.all_of),
        ("anyOf", &v.any_of),
        ("oneOf", &v.one_of),
    ] {
        for (i, x) in list.iter().flatten().enumerate() {
            nested_completeness(x, s, sp, &format!("{vp}.{name}[{i}]"), errs);
        }
    }
    if let Some(x) = &v.not {
        nested_completeness(x, s, sp, &format!("{vp}.not"), errs);
    }
}

fn nested_completeness(
    v: &JSONSchemaProps,
    s: Option<&JSONSchemaProps>,
    sp: &str,
    vp: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            sp,
            format!("because it is defined in {vp}"),
        ));
        return;
    };
    value_completeness(v, Some(s), sp, vp, errs);
    if let Some(vi) = items_schema(v) {
        nested_completeness(
            vi,
            items_schema(s),
            &format!("{sp}.items"),
            &format!("{vp}.items"),
            errs,
        );
    }
    for (k, vf) in v.properties.iter().flatten() {
        match s.properties.as_ref().and_then(|m| m.get(k)) {
            Some(sf) => nested_completeness(
                vf,
                Some(sf),
                &key(sp, "properties", k),
                &key(vp, "properties", k),
                errs,
            ),
            None => errs.push(FieldError::required(
                key(sp, "properties", k),
                format!("because it is defined in {}", key(vp, "properties", k)),
            )),
        }
    }
}
