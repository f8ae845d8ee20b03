//! OpenAPI validation of values as kube-openapi's `validate.SchemaValidator` does it, with
//! its errors converted to field errors as upstream's `kubeOpenAPIResultToFieldErrors` does.

use serde_json::{Map, Value};

use super::node::{Additional, Node, Type};
use super::path::{Path, Seg};
use crate::field::FieldError;
use common::gofmt;

mod junctors;
mod number;

use number::{Num, is_json_integer};

/// Collects field errors; `prefix` is the field path the value sits at (None: a whole object,
/// upstream's nil path, printed `<nil>` for errors without a name).
pub(crate) struct Validator<'p> {
    prefix: Option<&'p str>,
    pub(crate) errs: Vec<FieldError>,
    /// kube-openapi's `MatchCount` (validators applied), which picks the anyOf/oneOf branch
    /// whose errors are reported.
    matches: u32,
}

fn type_of(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::String(_) => ("string", ""),
        Value::Number(n) if n.as_i64().is_some() => ("integer", "int64"),
        Value::Number(_) => ("number", "float64"),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

impl<'p> Validator<'p> {
    pub(crate) fn new(prefix: Option<&'p str>) -> Self {
        Validator {
            prefix,
            errs: Vec::new(),
            matches: 0,
        }
    }

    /// The field of an error kube-openapi names `name` (a path relative to the prefix).
    fn field(&self, name: &str) -> String {
        match (self.prefix, name.is_empty()) {
            (None, true) => "<nil>".to_string(),
            (None, false) => name.to_string(),
            (Some(p), true) => p.to_string(),
            (Some(""), false) => name.to_string(),
            (Some(p), false) => format!("{p}.{name}"),
        }
    }

    /// An error kube-openapi reports without a name (composite or plain errors).
    fn unnamed(&mut self, msg: String) {
        let f = self
            .prefix
            .map_or_else(|| "<nil>".to_string(), str::to_string);
        self.errs.push(FieldError::invalid(f, Value::from(""), msg));
    }

    fn invalid(&mut self, name: &str, value: Value, msg: String) {
        let f = self.field(name);
        self.errs.push(FieldError::invalid(f, value, msg));
    }

    fn invalid_type(&mut self, name: &str, type_name: &str, value: &str) {
        let msg = format!(
            "{name} in body must be of type {type_name}: {}",
            gofmt::quote(value)
        );
        let f = self.field(name);
        self.errs
            .push(FieldError::type_invalid(f, Value::from(value), msg));
    }

    /// Validates `v` against `n` at `path`.
    pub(crate) fn validate<'a>(&mut self, n: &'a Node, v: &'a Value, path: &mut Path<'a>) {
        if !n.has_value_checks {
            return;
        }
        let before = self.errs.len();
        if v.is_null() {
            if n.ty != Type::Any && !n.nullable {
                self.invalid_type(&path.openapi(), n.ty.name(), "null");
            } else {
                self.matches += 1;
            }
            self.check_enum(n, v, path);
            return;
        }
        // kube-openapi's match count: one per validator applied (type, junctors, enum, the
        // kind's own) plus the counts their results carry, plus one for the schema.
        self.matches += 4 + match v {
            Value::String(_) => {
                1 + u32::from(n.format.as_ref().is_some_and(|(_, f)| f.checks_strings()))
            }
            Value::Number(_) | Value::Array(_) => 2,
            Value::Object(_) => 1,
            _ => 0,
        };
        let types_checked = n.ty != Type::Any || n.format.is_some();
        self.check_type(n, v, path);
        if types_checked {
            self.matches += 1 + u32::from(self.errs.len() == before);
        }
        self.check_junctors(n, v, path);
        match v {
            Value::String(s) => {
                self.check_string(n, s, path);
                if let Some((name, f)) = &n.format
                    && f.checks_strings()
                    && !f.is_valid(s)
                {
                    self.invalid_type(&path.openapi(), name, s);
                }
            }
            Value::Number(x) => self.check_number(n, Num::of(x), path),
            Value::Array(a) => self.check_array(n, a, path),
            _ => {}
        }
        self.check_enum(n, v, path);
        if let Value::Object(m) = v {
            self.check_object(n, m, path);
        }
    }

    fn check_type(&mut self, n: &Node, v: &Value, path: &Path) {
        let fmt_name = n.format.as_ref().map(|(s, _)| s.as_str());
        if n.ty == Type::Any && fmt_name.is_none() {
            return;
        }
        let (sch, sch_fmt) = type_of(v);
        let is_float_int = match v {
            Value::Number(x) if x.as_i64().is_none() => {
                is_json_integer(x.as_f64().unwrap_or(0.5)) && n.ty.contains("integer")
            }
            _ => false,
        };
        let is_int_float = sch == "integer" && n.ty.contains("number");
        let stringish = matches!(v, Value::String(_) | Value::Array(_));
        if let Some(tf) = fmt_name
            && !stringish
            && !(n.ty.contains(sch) || sch_fmt == tf || is_float_int || is_int_float)
        {
            self.invalid_type(&path.openapi(), tf, sch_fmt);
            return;
        }
        if fmt_name.is_some() && stringish && !(n.ty.contains("number") || n.ty.contains("integer"))
        {
            return;
        }
        if n.ty != Type::Any && !(n.ty.contains(sch) || is_float_int || is_int_float) {
            self.invalid_type(&path.openapi(), n.ty.name(), sch);
        }
    }

    fn check_string(&mut self, n: &Node, s: &str, path: &Path) {
        if n.max_length.is_none() && n.min_length.is_none() && n.pattern.is_none() {
            return;
        }
        let len = || s.chars().count() as i64;
        if let Some(max) = n.max_length
            && len() > max
        {
            self.errs
                .push(FieldError::too_long(self.field(&path.openapi()), max));
            return;
        }
        if let Some(min) = n.min_length
            && len() < min
        {
            let name = path.openapi();
            self.invalid(
                &name,
                Value::from(s),
                format!("{name} in body should be at least {min} chars long"),
            );
            return;
        }
        if let Some((p, re)) = &n.pattern {
            let name = path.openapi();
            match re {
                Some(re) if re.is_match(s) => {}
                Some(_) => self.invalid(
                    &name,
                    Value::from(s),
                    format!("{name} in body should match '{p}'"),
                ),
                None => self.invalid(
                    &name,
                    Value::from(s),
                    format!("{name} in body should match '{p}, but pattern is invalid'"),
                ),
            }
        }
    }

    fn check_array<'a>(&mut self, n: &'a Node, a: &'a [Value], path: &mut Path<'a>) {
        if let Some(items) = &n.items
            && items.has_value_checks
        {
            for (i, x) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                self.validate(items, x, path);
                path.pop();
            }
        }
        let size = a.len() as i64;
        self.check_count(size, n.min_items, n.max_items, "items", path);
        if n.unique_items
            && a.iter()
                .enumerate()
                .any(|(i, x)| a[..i].iter().any(|y| json_equal(x, y)))
        {
            let name = path.openapi();
            self.invalid(
                &name,
                Value::from(""),
                format!("{name} in body shouldn't contain duplicates"),
            );
        }
    }

    /// `minItems`/`maxItems` or `minProperties`/`maxProperties`: `size` counts `what`.
    fn check_count(
        &mut self,
        size: i64,
        min: Option<i64>,
        max: Option<i64>,
        what: &str,
        path: &Path,
    ) {
        if let Some(min) = min
            && size < min
        {
            let name = path.openapi();
            self.invalid(
                &name,
                Value::from(size),
                format!("{name} in body should have at least {min} {what}"),
            );
        }
        if let Some(max) = max
            && size > max
        {
            self.errs
                .push(FieldError::too_many(self.field(&path.openapi()), size, max));
        }
    }

    fn check_enum(&mut self, n: &Node, v: &Value, path: &Path) {
        if n.enum_.is_empty() || n.enum_.iter().any(|e| enum_equal(v, e)) {
            return;
        }
        let valid: Vec<String> = n
            .enum_
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                e => gofmt::json(e),
            })
            .collect();
        let f = self.field(&path.openapi());
        self.errs
            .push(FieldError::not_supported(f, v.clone(), &valid));
    }

    fn check_object<'a>(&mut self, n: &'a Node, m: &'a Map<String, Value>, path: &mut Path<'a>) {
        let size = m.len() as i64;
        let (min, max) = (n.min_properties, n.max_properties);
        self.check_count(size, min, max, "properties", path);
        for (k, v) in m {
            if let Some(p) = n.properties.get(k) {
                if p.has_value_checks {
                    path.push(Seg::Prop(k));
                    self.validate(p, v, path);
                    path.pop();
                }
                continue;
            }
            match &n.additional {
                Some(Additional::Schema(a)) if a.has_value_checks => {
                    path.push(Seg::Key(k));
                    self.validate(a, v, path);
                    path.pop();
                }
                Some(Additional::Bool(false)) => {
                    let name = path.openapi();
                    self.invalid(
                        &name,
                        Value::from(k.as_str()),
                        format!("{name}.{k} in body is a forbidden property"),
                    );
                }
                _ => {}
            }
        }
        for k in &n.required {
            if !m.contains_key(k) {
                path.push(Seg::Prop(k));
                let f = self.field(&path.openapi());
                path.pop();
                self.errs.push(FieldError::required(f, ""));
            }
        }
    }
}

/// kube-openapi's enum match: numbers compare by value (Go converts between int64 and
/// float64), everything else must be deeply equal; null matches nothing (not even a null
/// in the enum, which kube-openapi skips).
fn enum_equal(v: &Value, e: &Value) -> bool {
    match (v, e) {
        (Value::Null, _) => false,
        (Value::Number(a), Value::Number(b)) => Num::of(a).f64() == Num::of(b).f64(),
        _ => v == e,
    }
}

/// `reflect.DeepEqual` of decoded JSON values (int64 and float64 differ).
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    a == b
}

/// Drops errors with the same field and message (kube-openapi reports each message once).
pub(crate) fn dedup(errs: &mut Vec<FieldError>) {
    if errs.len() < 2 {
        return;
    }
    let mut out: Vec<FieldError> = Vec::with_capacity(errs.len());
    for e in errs.drain(..) {
        if !out
            .iter()
            .any(|o| o.field == e.field && o.detail == e.detail && o.error_type == e.error_type)
        {
            out.push(e);
        }
    }
    *errs = out;
}
