//! ObjectMeta of embedded resources, as upstream decodes it (`objectmeta.GetObjectMeta`) and
//! validates it on create (`ValidateObjectMetaAccessor` with path-segment names): name,
//! generateName, namespace, labels and annotations.

use serde_json::{Map, Value};

use crate::field::FieldError;

/// The fields of ObjectMeta whose JSON type is checked, with their Go types.
const TYPED: [(&str, &str); 8] = [
    ("name", "string"),
    ("generateName", "string"),
    ("namespace", "string"),
    ("uid", "string"),
    ("resourceVersion", "string"),
    ("selfLink", "string"),
    ("labels", "map[string]string"),
    ("annotations", "map[string]string"),
];

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `json.Unmarshal` error for the first field of the wrong type, if any.
fn unmarshal_error(meta: &Map<String, Value>) -> Option<String> {
    for (k, v) in meta {
        let Some((_, go)) = TYPED.iter().find(|(f, _)| f == k) else {
            continue;
        };
        let bad = match (*go, v) {
            (_, Value::Null) | ("string", Value::String(_)) => None,
            ("string", _) => Some((json_kind(v), "string")),
            (_, Value::Object(m)) => m
                .values()
                .find(|x| !x.is_string() && !x.is_null())
                .map(|x| (json_kind(x), "string")),
            _ => Some((json_kind(v), *go)),
        };
        if let Some((kind, ty)) = bad {
            return Some(format!(
                "json: cannot unmarshal {kind} into Go struct field ObjectMeta.{k} of type {ty}"
            ));
        }
    }
    None
}

/// Validates the embedded `metadata` value `v` at `field`.
pub(crate) fn validate(v: &Value, field: &str, errs: &mut Vec<FieldError>) {
    let meta = match v {
        Value::Object(m) => m,
        Value::Null => return,
        _ => {
            let msg = format!(
                "json: cannot unmarshal {} into Go value of type v1.ObjectMeta",
                json_kind(v)
            );
            errs.push(FieldError::invalid(field, v.clone(), msg));
            return;
        }
    };
    if let Some(msg) = unmarshal_error(meta) {
        errs.push(FieldError::invalid(field, v.clone(), msg));
        return;
    }
    let text = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or("");
    let (generate_name, name, namespace) = (text("generateName"), text("name"), text("namespace"));
    if !generate_name.is_empty() {
        for msg in path_segment_errors(generate_name, true) {
            errs.push(FieldError::invalid(
                format!("{field}.generateName"),
                Value::from(generate_name),
                msg,
            ));
        }
    }
    // Upstream names a nameless embedded object "fakename" before validating it.
    for msg in path_segment_errors(name, false) {
        errs.push(FieldError::invalid(
            format!("{field}.name"),
            Value::from(name),
            msg,
        ));
    }
    if !namespace.is_empty() {
        for msg in dns1123_label_errors(namespace) {
            errs.push(FieldError::invalid(
                format!("{field}.namespace"),
                Value::from(namespace),
                msg,
            ));
        }
    }
    if let Some(Value::Object(labels)) = meta.get("labels") {
        let f = format!("{field}.labels");
        for (k, v) in labels {
            for msg in label_key_errors(k) {
                errs.push(FieldError::invalid(f.clone(), Value::from(k.as_str()), msg));
            }
            let v = v.as_str().unwrap_or("");
            for msg in label_value_errors(v) {
                errs.push(FieldError::invalid(f.clone(), Value::from(v), msg));
            }
        }
    }
    if let Some(Value::Object(annotations)) = meta.get("annotations") {
        let f = format!("{field}.annotations");
        let mut size = 0;
        for (k, v) in annotations {
            for msg in label_key_errors(&k.to_lowercase()) {
                errs.push(FieldError::invalid(f.clone(), Value::from(k.as_str()), msg));
            }
            size += k.len() + v.as_str().map_or(0, str::len);
        }
        const LIMIT: i64 = 256 * 1024;
        if size as i64 > LIMIT {
            errs.push(FieldError::too_long(f, LIMIT));
        }
    }
}

/// Upstream's `IsPathSegmentName`/`IsPathSegmentPrefix`.
fn path_segment_errors(name: &str, prefix: bool) -> Vec<String> {
    if !prefix && (name == "." || name == "..") {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

fn is_alnum_lower(c: &u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, of any length.
pub(super) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(is_alnum_lower)
        && b.last().is_some_and(is_alnum_lower)
        && b.iter().all(|c| is_alnum_lower(c) || *c == b'-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(is_dns1123_label)
}

/// Upstream's `validation.IsDNS1123Label` (namespaces).
fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !is_dns1123_label(s) {
        out.push(if is_dns1123_subdomain(s) {
            "must not contain dots".to_string()
        } else {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
        });
    }
    out
}

const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter()
            .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

/// Upstream's `content.IsLabelKey` (qualified names).
fn label_key_errors(k: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = k.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 bytes".to_string());
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
                }
            }
            *name
        }
        _ => {
            return vec![format!(
                "a valid label key {LABEL_KEY_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 bytes".to_string());
    }
    if !is_label_name(name) {
        errs.push(format!("name part {LABEL_KEY_MSG}"));
    }
    errs
}

/// Upstream's `content.IsLabelValue`.
fn label_value_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 bytes".to_string());
    }
    if !v.is_empty() && !is_label_name(v) {
        errs.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string());
    }
    errs
}
