//! Consistency of `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and their items.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::Value;

use crate::field::FieldError;

use super::{items_schema, key, ty, type_must_be};

pub(super) fn list_checks(s: &JSONSchemaProps, p: &str, errs: &mut Vec<FieldError>) {
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
