//! TypeMeta and ObjectMeta of embedded resources (`x-kubernetes-embedded-resource`), as
//! upstream's `objectmeta/validation.go` checks them (ObjectMeta itself in `objectmeta.rs`). The root object's metadata is the API
//! server's job.

use serde_json::{Map, Value};

use super::node::{Additional, Node};
use super::path::{Path, Seg};
use crate::field::FieldError;

pub(crate) fn validate<'a>(
    x: &'a Value,
    s: &'a Node,
    path: &mut Path<'a>,
    errs: &mut Vec<FieldError>,
) {
    if !s.has_embedded {
        return;
    }
    match x {
        Value::Object(m) => {
            if s.embedded && !path.is_empty() {
                validate_embedded(m, path, errs);
            }
            for (k, v) in m {
                if let Some(p) = s.properties.get(k) {
                    path.push(Seg::Prop(k));
                    validate(v, p, path, errs);
                    path.pop();
                } else if let Some(Additional::Schema(a)) = &s.additional {
                    path.push(Seg::Key(k));
                    validate(v, a, path, errs);
                    path.pop();
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = &s.items {
                for (i, v) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    validate(v, items, path, errs);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

fn child(path: &Path, name: &str) -> String {
    let mut f = path.field("");
    if !f.is_empty() {
        f.push('.');
    }
    f.push_str(name);
    f
}

const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// Upstream's `IsDNS1035Label` messages.
fn dns1035_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        out.push(DNS1035_MSG.to_string());
    }
    out
}

fn validate_embedded(m: &Map<String, Value>, path: &Path, errs: &mut Vec<FieldError>) {
    if !m.contains_key("apiVersion") {
        errs.push(FieldError::required(child(path, "apiVersion"), ""));
    }
    if !m.contains_key("kind") {
        errs.push(FieldError::required(child(path, "kind"), ""));
    }
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" => match v.as_str() {
                None => errs.push(FieldError::invalid(
                    child(path, k),
                    v.clone(),
                    "must be a string",
                )),
                Some("") => errs.push(FieldError::invalid(
                    child(path, k),
                    v.clone(),
                    "must not be empty",
                )),
                Some(av) if av.matches('/').count() > 1 => errs.push(FieldError::invalid(
                    child(path, k),
                    v.clone(),
                    format!("unexpected GroupVersion string: {av}"),
                )),
                Some(_) => {}
            },
            "kind" => match v.as_str() {
                None => errs.push(FieldError::invalid(
                    child(path, k),
                    v.clone(),
                    "must be a string",
                )),
                Some("") => errs.push(FieldError::invalid(
                    child(path, k),
                    v.clone(),
                    "must not be empty",
                )),
                Some(kind) => {
                    let e = dns1035_errors(&kind.to_lowercase());
                    if !e.is_empty() {
                        errs.push(FieldError::invalid(
                            child(path, k),
                            v.clone(),
                            format!(
                                "may have mixed case, but should otherwise match: {}",
                                e.join(",")
                            ),
                        ));
                    }
                }
            },
            "metadata" => super::objectmeta::validate(v, &child(path, k), errs),
            _ => {}
        }
    }
}
