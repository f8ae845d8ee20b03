//! Logical junctors (allOf/anyOf/oneOf/not): what they may not specify, and completeness
//! (what they constrain must be declared in the structural part).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;

use crate::field::FieldError;

use super::{items_schema, key};

fn is_int_or_string_any_of(list: Option<&Vec<JSONSchemaProps>>) -> bool {
    let only = |t: &str| JSONSchemaProps {
        type_: Some(t.to_string()),
        ..Default::default()
    };
    list.is_some_and(|l| l.len() == 2 && l[0] == only("integer") && l[1] == only("string"))
}

pub(super) fn junctor_checks(s: &JSONSchemaProps, p: &str, errs: &mut Vec<FieldError>) {
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
    const EMPTY: &str = "must be empty to be structural";
    const UNDEFINED: &str = "must be undefined to be structural";
    const FALSE: &str = "must be false to be structural";
    let non_empty = |s: &Option<String>| s.as_ref().is_some_and(|s| !s.is_empty());
    let t = |b: Option<bool>| b == Some(true);
    let forbidden = [
        (non_empty(&v.type_), "type", EMPTY),
        (
            v.additional_properties.is_some(),
            "additionalProperties",
            UNDEFINED,
        ),
        (v.default.is_some(), "default", UNDEFINED),
        (non_empty(&v.title), "title", EMPTY),
        (non_empty(&v.description), "description", EMPTY),
        (v.nullable == Some(true), "nullable", FALSE),
        (
            t(v.x_kubernetes_preserve_unknown_fields),
            "x-kubernetes-preserve-unknown-fields",
            FALSE,
        ),
        (
            t(v.x_kubernetes_embedded_resource),
            "x-kubernetes-embedded-resource",
            FALSE,
        ),
        (
            t(v.x_kubernetes_int_or_string),
            "x-kubernetes-int-or-string",
            FALSE,
        ),
        (
            v.x_kubernetes_list_map_keys
                .as_ref()
                .is_some_and(|k| !k.is_empty()),
            "x-kubernetes-list-map-keys",
            EMPTY,
        ),
        (
            v.x_kubernetes_list_type.is_some(),
            "x-kubernetes-list-type",
            UNDEFINED,
        ),
        (
            v.x_kubernetes_map_type.is_some(),
            "x-kubernetes-map-type",
            UNDEFINED,
        ),
        (
            v.x_kubernetes_validations
                .as_ref()
                .is_some_and(|x| !x.is_empty()),
            "x-kubernetes-validations",
            EMPTY,
        ),
    ];
    for (set, name, detail) in forbidden {
        if set {
            errs.push(FieldError::forbidden(format!("{p}.{name}"), detail));
        }
    }
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
pub(super) fn completeness(s: &JSONSchemaProps, p: &str, errs: &mut Vec<FieldError>) {
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
