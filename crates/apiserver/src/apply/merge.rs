//! Merging an applied configuration into the live object by its [`Shape`]: lists by their
//! list type (a built-in kind's from its Go types, a custom kind's from its schema: atomic
//! unless said otherwise, as upstream's structured merge of CRDs), objects granular unless
//! atomic; objects of no known type by strategic-merge rules. A `null` removes the field.

use apiextensions::schema::ListKind;
use serde_json::Value;

use super::{Shape, item_key};
use crate::error::ApiResult;
use crate::patch::strategic_merge;

/// Merges `applied` into `live` (a whole object of shape `shape`).
pub fn merge(live: &mut Value, applied: &Value, shape: Shape) -> ApiResult<()> {
    match shape {
        Shape::Builtin => strategic_merge(live, applied),
        _ => merge_value(live, applied, shape, ""),
    }
}

fn merge_value(live: &mut Value, applied: &Value, shape: Shape, name: &str) -> ApiResult<()> {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !shape.atomic_map() => {
            for (k, v) in a {
                if v.is_null() {
                    l.remove(k);
                    continue;
                }
                let child = shape.field(k);
                match l.get_mut(k) {
                    // An object of no known type merges by strategic-merge rules.
                    Some(existing @ Value::Object(_)) if matches!(child, Shape::Builtin) => {
                        strategic_merge(existing, v)?
                    }
                    Some(existing) => merge_value(existing, v, child, k)?,
                    None => {
                        l.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match shape.list(name, a) {
            ListKind::Atomic => *l = a.clone(),
            ListKind::Set => {
                for v in a {
                    if !l.contains(v) {
                        l.push(v.clone());
                    }
                }
            }
            ListKind::Map(keys) => {
                for item in a {
                    let id = item_key(item, &keys);
                    match l.iter_mut().find(|i| item_key(i, &keys) == id) {
                        Some(existing) => merge_value(existing, item, shape.items(), "")?,
                        None => l.push(item.clone()),
                    }
                }
            }
        },
        (live, applied) => *live = applied.clone(),
    }
    Ok(())
}
