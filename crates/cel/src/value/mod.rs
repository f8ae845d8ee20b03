//! JSON values as CEL values, typed by their schema node, converted lazily: an object is
//! a view that converts a field when the expression reads it, so a rule touching
//! `self.spec.replicas` converts one integer rather than the object. A list converts its
//! own elements when read (objects among them stay views) and keeps its
//! `x-kubernetes-list-type` semantics for `==` and `+`.

use std::sync::LazyLock;

use base64::Engine;
use cel_rust::ExecutionError;
use cel_rust::common::traits;
use cel_rust::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelNull, CelString, CelTimestamp, CelUInt,
    Kind,
};
use cel_rust::common::value::Val;
use serde_json::Value;

use crate::cost;
use crate::schema::{self, Format, ListType, Node};

mod json;
mod list;
mod object;

pub(crate) use json::to_json;
use list::List;
use object::Object;

static ANY: LazyLock<Node> = LazyLock::new(Node::any);
static ATOMIC: ListType = ListType::Atomic;

/// `json` as a CEL value typed by `node`.
pub(crate) fn to_val<'a>(
    json: &'a Value,
    node: &'a Node,
) -> Result<Box<dyn Val + 'a>, ExecutionError> {
    Ok(match json {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match (node.ty, n.as_i64(), n.as_u64()) {
            (schema::Type::Number, _, _) => Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0))),
            (_, Some(i), _) => Box::new(CelInt::from(i)),
            (_, None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => string(s, node.format)?,
        Value::Array(items) => {
            let elem = node.items.as_deref().unwrap_or(&ANY);
            let list_type = if node.ty == schema::Type::Any {
                &ATOMIC
            } else {
                &node.list_type
            };
            Box::new(List::from_json(items, elem, list_type)?)
        }
        Value::Object(map) => Box::new(Object::new(map, node)),
    })
}

/// A typed value for untyped JSON (admission policies' variables).
pub(crate) fn to_val_untyped(json: &Value) -> Result<Box<dyn Val + '_>, ExecutionError> {
    to_val(json, &ANY)
}

fn format_error(what: &str, s: &str) -> ExecutionError {
    ExecutionError::function_error("format", format!("invalid {what}: {s:?}"))
}

fn string<'a>(s: &'a str, format: Format) -> Result<Box<dyn Val + 'a>, ExecutionError> {
    // By size, as cel-go charges string operations: what an expression can build from
    // data strings is then bounded by the cost limit.
    cost::charge(1 + s.len() as u64 / 10);
    Ok(match format {
        Format::None => Box::new(CelString::from(s)),
        Format::DateTime => {
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| format_error("date-time", s))?;
            Box::new(CelTimestamp::from(t))
        }
        Format::Date => {
            let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| format_error("date", s))?;
            let t = d.and_time(chrono::NaiveTime::MIN).and_utc().fixed_offset();
            Box::new(CelTimestamp::from(t))
        }
        Format::Duration => {
            let d = crate::duration::parse(s).ok_or_else(|| format_error("duration", s))?;
            Box::new(CelDuration::from(d))
        }
        Format::Byte => {
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| format_error("byte", s))?;
            Box::new(CelBytes::from(b))
        }
    })
}

/// Iterates a slice, charging each element to the cost meter and stopping once the
/// budget is spent (the evaluation's result is then discarded).
pub(super) struct Metered<'b, T> {
    pub items: &'b [T],
    pub pos: usize,
}

impl<'b, 'v, T: Val + 'v> traits::Iterator<'b, 'v> for Metered<'b, T> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        if !cost::charge(1) {
            return None;
        }
        let item = self.items.get(self.pos)?;
        self.pos += 1;
        Some(item)
    }
}

pub(super) struct MeteredBoxes<'b, 'a> {
    pub items: &'b [Box<dyn Val + 'a>],
    pub pos: usize,
}

impl<'b, 'a: 'v, 'v> traits::Iterator<'b, 'v> for MeteredBoxes<'b, 'a> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        if !cost::charge(1) {
            return None;
        }
        let item = self.items.get(self.pos)?;
        self.pos += 1;
        Some(item.as_ref())
    }
}

/// The elements of any list value.
pub(super) fn elements_of<'b, 'v>(val: &'b (dyn Val + 'v)) -> Option<Vec<&'b (dyn Val + 'v)>> {
    if val.get_type().kind() != Kind::List {
        return None;
    }
    let mut iter = val.as_iterable()?.iter();
    let mut out = Vec::new();
    while let Some(v) = iter.next() {
        out.push(v);
    }
    Some(out)
}
