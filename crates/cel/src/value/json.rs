//! CEL values back to JSON.

use base64::Engine;
use cel_rust::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelString, CelTimestamp, CelUInt, Kind,
};
use cel_rust::common::value::Val;
use serde_json::Value;

use super::elements_of;

/// A CEL value as JSON: the result of an admission policy's expression.
pub(crate) fn to_json(val: &dyn Val) -> Result<Value, String> {
    use chrono::SecondsFormat;
    let unsupported = || {
        format!(
            "cannot convert a value of type {} to JSON",
            val.get_type().name()
        )
    };
    Ok(match val.get_type().kind() {
        Kind::NullType => Value::Null,
        Kind::Boolean => Value::Bool(
            *val.downcast_ref::<CelBool>()
                .ok_or_else(unsupported)?
                .inner(),
        ),
        Kind::Int => Value::from(
            *val.downcast_ref::<CelInt>()
                .ok_or_else(unsupported)?
                .inner(),
        ),
        Kind::UInt => Value::from(
            *val.downcast_ref::<CelUInt>()
                .ok_or_else(unsupported)?
                .inner(),
        ),
        Kind::Double => Value::from(
            *val.downcast_ref::<CelDouble>()
                .ok_or_else(unsupported)?
                .inner(),
        ),
        Kind::String => Value::String(
            val.downcast_ref::<CelString>()
                .ok_or_else(unsupported)?
                .inner()
                .to_owned(),
        ),
        Kind::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(
                val.downcast_ref::<CelBytes>()
                    .ok_or_else(unsupported)?
                    .inner(),
            ),
        ),
        Kind::Timestamp => Value::String(
            val.downcast_ref::<CelTimestamp>()
                .ok_or_else(unsupported)?
                .inner()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        ),
        Kind::Duration => Value::String(crate::duration::format(
            val.downcast_ref::<CelDuration>()
                .ok_or_else(unsupported)?
                .inner(),
        )),
        Kind::List => {
            let items = elements_of(val).ok_or_else(unsupported)?;
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Kind::Map => {
            let keys = val.as_iterable().ok_or_else(unsupported)?;
            let indexer = val.as_indexer().ok_or_else(unsupported)?;
            let mut out = serde_json::Map::new();
            let mut iter = keys.iter();
            while let Some(k) = iter.next() {
                let name = match to_json(k)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let v = indexer.get(k).map_err(|e| e.to_string())?;
                out.insert(name, to_json(v.as_ref())?);
            }
            Value::Object(out)
        }
        _ => match val.downcast_ref::<crate::library::quantity::Quantity>() {
            Some(q) => Value::String(q.canonical()),
            None => return Err(unsupported()),
        },
    })
}
