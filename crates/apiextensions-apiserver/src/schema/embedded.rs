//! TypeMeta and ObjectMeta of embedded resources (`x-kubernetes-embedded-resource`), as
//! upstream's `objectmeta/validation.go` checks them (ObjectMeta itself in `objectmeta.rs`).
//! The root object's metadata is the API server's job.

use serde_json::{Map, Value};

use super::node::{Node, walk};
use super::path::Path;
use crate::field::FieldError;

pub(crate) fn validate<'a>(
    x: &'a Value,
    s: &'a Node,
    path: &mut Path<'a>,
    errs: &mut Vec<FieldError>,
) {
    walk(x, s, path, |s| s.has_embedded, &mut |x, s, path| {
        if let Value::Object(m) = x
            && s.embedded
            && !path.is_empty()
        {
            validate_embedded(m, path, errs);
        }
    });
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
    // A DNS-1123 label that starts with a letter.
    let ok = s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && super::objectmeta::is_dns1123_label(s);
    if !ok {
        out.push(DNS1035_MSG.to_string());
    }
    out
}

fn validate_embedded(m: &Map<String, Value>, path: &Path, errs: &mut Vec<FieldError>) {
    for k in ["apiVersion", "kind"] {
        if !m.contains_key(k) {
            errs.push(FieldError::required(child(path, k), ""));
        }
    }
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {
                let detail = match v.as_str() {
                    None => Some("must be a string".to_string()),
                    Some("") => Some("must not be empty".to_string()),
                    Some(av) if k == "apiVersion" => (av.matches('/').count() > 1)
                        .then(|| format!("unexpected GroupVersion string: {av}")),
                    Some(kind) => {
                        let e = dns1035_errors(&kind.to_lowercase());
                        (!e.is_empty()).then(|| {
                            format!(
                                "may have mixed case, but should otherwise match: {}",
                                e.join(",")
                            )
                        })
                    }
                };
                if let Some(detail) = detail {
                    errs.push(FieldError::invalid(child(path, k), v.clone(), detail));
                }
            }
            "metadata" => super::objectmeta::validate(v, &child(path, k), errs),
            _ => {}
        }
    }
}
