//! Field errors as upstream's `k8s.io/apimachinery/pkg/util/validation/field` spells them.

use std::fmt;

use serde_json::Value;

use common::gofmt;

/// Upstream's `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Invalid,
    Required,
    NotSupported,
    Duplicate,
    Forbidden,
    TooLong,
    TooMany,
    TypeInvalid,
}

/// One field's error: `field` is the path as upstream names it (`spec.replicas`,
/// `spec.ports[0].name`, `metadata.labels[app]`).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub error_type: ErrorType,
    pub field: String,
    /// `None` is upstream's `omitValue` (the body shows only the type).
    pub bad_value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    /// Upstream's `field.Invalid`.
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, field, Some(value), detail)
    }

    /// Upstream's `field.TypeInvalid`.
    pub fn type_invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::TypeInvalid, field, Some(value), detail)
    }

    /// Upstream's `field.Required`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Required, field, Some(Value::from("")), detail)
    }

    /// Upstream's `field.Forbidden`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, field, Some(Value::from("")), detail)
    }

    /// Upstream's `field.Duplicate`.
    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        Self::new(ErrorType::Duplicate, field, Some(value), "")
    }

    /// Upstream's `field.NotSupported`: `valid` values are quoted in the detail.
    pub fn not_supported<S: AsRef<str>>(
        field: impl Into<String>,
        value: Value,
        valid: &[S],
    ) -> Self {
        let mut detail = String::new();
        if !valid.is_empty() {
            detail.push_str("supported values: ");
            for (i, v) in valid.iter().enumerate() {
                if i > 0 {
                    detail.push_str(", ");
                }
                gofmt::quote_into(&mut detail, v.as_ref());
            }
        }
        Self::new(ErrorType::NotSupported, field, Some(value), detail)
    }

    /// Upstream's `field.TooLong` (the value is never shown).
    pub fn too_long(field: impl Into<String>, max: i64) -> Self {
        let detail = if max >= 0 {
            format!(
                "may not be more than {max} {}",
                if max == 1 { "byte" } else { "bytes" }
            )
        } else {
            "value is too long".to_string()
        };
        Self::new(
            ErrorType::TooLong,
            field,
            Some(Value::from("<value omitted>")),
            detail,
        )
    }

    /// Upstream's `field.TooMany`.
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!(
                "must have at most {max} {}",
                if max == 1 { "item" } else { "items" }
            )
        } else {
            "has too many items".to_string()
        };
        let actual = (actual >= 0).then(|| Value::from(actual));
        Self::new(ErrorType::TooMany, field, actual, detail)
    }

    fn new(
        error_type: ErrorType,
        field: impl Into<String>,
        bad_value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            error_type,
            field: field.into(),
            bad_value,
            detail: detail.into(),
        }
    }

    /// The `reason` of a Status cause (`FieldValueInvalid`, ...).
    pub fn reason(&self) -> &'static str {
        match self.error_type {
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    fn type_string(&self) -> &'static str {
        match self.error_type {
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::Required => "Required value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
        }
    }

    /// Upstream's `ErrorBody`: the message without the field (`Invalid value: "x": detail`).
    pub fn message(&self) -> String {
        let mut s = String::from(self.type_string());
        let shows_value = !matches!(
            self.error_type,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong
        );
        if shows_value && let Some(v) = &self.bad_value {
            s.push_str(": ");
            match v {
                // Go prints strings with %q and scalars with %v; the rest as JSON.
                Value::String(x) => gofmt::quote_into(&mut s, x),
                Value::Number(_) | Value::Bool(_) => gofmt::value_into(&mut s, v),
                _ => gofmt::json_into(&mut s, v),
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_as_upstream_prints_them() {
        let e = FieldError::type_invalid(
            "spec.replicas",
            json!("string"),
            "spec.replicas in body must be of type integer: \"string\"",
        );
        assert_eq!(e.reason(), "FieldValueTypeInvalid");
        assert_eq!(
            e.to_string(),
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        );
        assert_eq!(
            FieldError::required("spec.a", "").message(),
            "Required value"
        );
        assert_eq!(
            FieldError::forbidden("x", "nope").message(),
            "Forbidden: nope"
        );
        assert_eq!(
            FieldError::not_supported("m", json!("x"), &["a", "b"]).message(),
            "Unsupported value: \"x\": supported values: \"a\", \"b\""
        );
        assert_eq!(
            FieldError::duplicate("l[1]", json!({"b": 1, "a": 1.5})).message(),
            "Duplicate value: {\"a\":1.5,\"b\":1}"
        );
        assert_eq!(
            FieldError::invalid("n", json!(1e6), "d").message(),
            "Invalid value: 1e+06: d"
        );
        assert_eq!(
            FieldError::too_long("s", 1).message(),
            "Too long: may not be more than 1 byte"
        );
        assert_eq!(
            FieldError::too_many("l", 3, 2).message(),
            "Too many: 3: must have at most 2 items"
        );
        assert_eq!(
            FieldError::too_many("l", -1, 2).message(),
            "Too many: must have at most 2 items"
        );
        assert_eq!(
            FieldError::duplicate("x", json!("a")).reason(),
            "FieldValueDuplicate"
        );
    }
}
