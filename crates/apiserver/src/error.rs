//! Errors as clients see them: a Kubernetes `Status` with the right code and reason.

use serde_json::{Map, Value, json};

use crate::resources::ResourceInfo;

/// One field-level problem in a 422 Invalid.
#[derive(Clone, Debug)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn invalid(field: impl Into<String>, value: impl Into<BadValue>, detail: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", value.into().0),
        }
    }
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }
    /// `field: message`, as an Invalid error's message lists each cause.
    pub fn line(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
    /// `field.NotSupported`: `value` is none of `supported` (listed as upstream lists them).
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: \"{value}\": supported values: {}",
                list.join(", ")
            ),
        }
    }
}

/// A field's value as `field.Invalid` prints it: numbers and booleans bare (`-1`), strings
/// quoted as Go's `%q` (`"a b"`).
pub struct BadValue(String);

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        // JSON string quoting matches Go's %q for everything a field holds in practice.
        BadValue(Value::String(s.to_string()).to_string())
    }
}
impl From<String> for BadValue {
    fn from(s: String) -> Self {
        s.as_str().into()
    }
}
impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        s.as_str().into()
    }
}
impl From<&Value> for BadValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::String(s) => s.as_str().into(),
            Value::Null => BadValue("\"null\"".into()),
            // Labels and other string maps print as Go's %#v of a map[string]string (keys
            // sorted, as fmt prints maps).
            Value::Object(m) if m.values().all(Value::is_string) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let entries: Vec<String> = keys
                    .into_iter()
                    .map(|k| format!("{}:{}", Value::String(k.clone()), m[k]))
                    .collect();
                BadValue(format!("map[string]string{{{}}}", entries.join(", ")))
            }
            other => BadValue(other.to_string()),
        }
    }
}
impl From<Value> for BadValue {
    fn from(v: Value) -> Self {
        (&v).into()
    }
}
macro_rules! bare_values {
    ($($t:ty),*) => {$(
        impl From<$t> for BadValue {
            fn from(v: $t) -> Self {
                BadValue(v.to_string())
            }
        }
    )*};
}
bare_values!(i64, i32, u64, u32, u16, bool);

/// An API error: becomes a `Status` body with `code`.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

fn details(info: &ResourceInfo, name: &str) -> Value {
    json!({"name": name, "group": info.group, "kind": info.plural})
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    /// A path that names no resource: upstream's generic server response, whose details
    /// are present and empty.
    pub fn not_found_path() -> Self {
        ApiError {
            details: Some(json!({})),
            ..Self::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }
    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(info, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", info.qualified()),
            )
        }
    }
    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(info, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", info.qualified()),
            )
        }
    }
    pub fn conflict(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(info, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    info.qualified()
                ),
            )
        }
    }
    pub fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes.iter().map(Cause::line).collect();
        // The kind qualified by its group, as `schema.GroupKind.String()`: `Deployment.apps`.
        let kind = if info.group.is_empty() {
            info.kind.to_string()
        } else {
            format!("{}.{}", info.kind, info.group)
        };
        let message = match summary.len() {
            1 => format!("{kind} \"{name}\" is invalid: {}", summary[0]),
            _ => format!("{kind} \"{name}\" is invalid: [{}]", summary.join(", ")),
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        ApiError {
            code: 422,
            reason: "Invalid",
            message,
            details: Some(
                json!({"name": name, "group": info.group, "kind": info.kind, "causes": causes}),
            ),
        }
    }
    pub fn method_not_allowed() -> Self {
        ApiError {
            details: Some(json!({})),
            ..Self::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        }
    }
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn unsupported_media_type(content_type: &str) -> Self {
        let message = if content_type == "application/vnd.kubernetes.protobuf" {
            "protobuf request bodies are not supported by this server yet: send JSON (application/json)".to_string()
        } else {
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (JSON body)"
            )
        };
        Self::new(415, "UnsupportedMediaType", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object, with the fields in the order Go's encoding writes them and the
    /// `omitempty` ones left out when empty (clients print and compare these bytes).
    pub fn to_status(&self) -> Value {
        let mut s = Map::new();
        s.insert("kind".into(), json!("Status"));
        s.insert("apiVersion".into(), json!("v1"));
        s.insert("metadata".into(), json!({}));
        s.insert("status".into(), json!("Failure"));
        if !self.message.is_empty() {
            s.insert("message".into(), json!(self.message));
        }
        if !self.reason.is_empty() {
            s.insert("reason".into(), json!(self.reason));
        }
        if let Some(d) = self.details.as_ref().and_then(status_details) {
            s.insert("details".into(), d);
        }
        if self.code != 0 {
            s.insert("code".into(), json!(self.code));
        }
        Value::Object(s)
    }

    /// Maps a store error for an object of `info` named `name`.
    pub fn from_store(info: &ResourceInfo, name: &str, e: store::Error) -> Self {
        match e {
            store::Error::AlreadyExists { .. } => Self::already_exists(info, name),
            store::Error::NotFound { .. } => Self::not_found(info, name),
            store::Error::Conflict { .. } => Self::conflict(info, name),
            store::Error::Compacted {
                requested,
                compacted,
            } => Self::gone(match compacted {
                Some(c) => format!("too old resource version: {requested} ({c})"),
                None => format!("too old resource version: {requested}"),
            }),
            store::Error::FutureRevision { requested, current } => Self::new(
                504,
                "Timeout",
                format!("Too large resource version: {requested}, current: {current}"),
            ),
            store::Error::Unavailable(m) => Self::unavailable(m),
            store::Error::DiskFull(m) => Self::new(507, "InternalError", m),
            other => Self::internal(other.to_string()),
        }
    }
}

/// `StatusDetails` as Go writes it: name, group, kind, uid, causes, retryAfterSeconds, each
/// only when set. Details given but empty are `{}`, as Go writes a non-nil pointer to an
/// empty struct (the generic 404 and 405 have them).
fn status_details(d: &Value) -> Option<Value> {
    let d = d.as_object()?;
    let mut out = Map::new();
    for k in ["name", "group", "kind", "uid"] {
        if let Some(v) = d
            .get(k)
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(causes) = d.get("causes").and_then(Value::as_array) {
        let causes: Vec<Value> = causes.iter().map(status_cause).collect();
        if !causes.is_empty() {
            out.insert("causes".into(), Value::Array(causes));
        }
    }
    if let Some(v) = d
        .get("retryAfterSeconds")
        .filter(|v| v.as_i64().unwrap_or(0) != 0)
    {
        out.insert("retryAfterSeconds".into(), v.clone());
    }
    Some(Value::Object(out))
}

/// `StatusCause`: reason, message, field, each `omitempty`.
fn status_cause(c: &Value) -> Value {
    let mut out = Map::new();
    for k in ["reason", "message", "field"] {
        if let Some(v) = c
            .get(k)
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(e: &ApiError) -> String {
        serde_json::to_string(&e.to_status()).unwrap()
    }

    #[test]
    fn status_bodies_for_reasons_without_an_http_trigger_read_as_upstream() {
        let many = ApiError {
            details: Some(json!({"retryAfterSeconds": 1, "group": "", "causes": []})),
            ..ApiError::new(
                429,
                "TooManyRequests",
                "too many requests, please try again later",
            )
        };
        assert_eq!(
            bytes(&many),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too many requests, please try again later","reason":"TooManyRequests","details":{"retryAfterSeconds":1},"code":429}"#
        );
        assert_eq!(
            bytes(&ApiError::gone("too old resource version: 1 (5)")),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}"#
        );
        let unsupported = ApiError::unsupported_media_type("text/plain");
        assert!(
            bytes(&unsupported).ends_with(r#","reason":"UnsupportedMediaType","code":415}"#),
            "{}",
            bytes(&unsupported)
        );
    }

    #[test]
    fn invalid_values_print_as_go_prints_them() {
        let c = |v: BadValue| Cause::invalid("f", v, "d").message;
        assert_eq!(c((-1i64).into()), "Invalid value: -1: d");
        assert_eq!(c(true.into()), "Invalid value: true: d");
        assert_eq!(c("a \"b\"".into()), r#"Invalid value: "a \"b\"": d"#);
        assert_eq!(
            c(json!({"b": "2", "a": "1"}).into()),
            r#"Invalid value: map[string]string{"a":"1", "b":"2"}: d"#
        );
    }
}
