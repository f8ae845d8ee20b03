//! Structural defaulting (upstream's `defaulting/algorithm.go`).

use serde_json::Value;

use super::node::{Additional, Node};

fn is_non_nullable_null(x: &Value, s: Option<&Node>) -> bool {
    x.is_null() && s.is_some_and(|s| !s.nullable)
}

/// Sets the defaults of missing (or non-nullable null) properties, recursively.
pub(crate) fn default(x: &mut Value, s: &Node) {
    if !s.has_defaults {
        return;
    }
    match x {
        Value::Object(m) => {
            for (k, prop) in &s.properties {
                let Some(d) = &prop.default else { continue };
                match m.get_mut(k) {
                    None => {
                        m.insert(k.clone(), d.clone());
                    }
                    Some(v) if is_non_nullable_null(v, Some(prop)) => *v = d.clone(),
                    Some(_) => {}
                }
            }
            let additional = match &s.additional {
                Some(Additional::Schema(a)) => Some(&**a),
                _ => None,
            };
            for (k, v) in m.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    default(v, prop);
                } else if let Some(a) = additional {
                    if is_non_nullable_null(v, Some(a)) {
                        *v = a.default.clone().unwrap_or(Value::Null);
                    }
                    default(v, a);
                }
            }
        }
        Value::Array(a) => {
            let Some(items) = &s.items else { return };
            for x in a.iter_mut() {
                if is_non_nullable_null(x, Some(items)) {
                    *x = items.default.clone().unwrap_or(Value::Null);
                }
                default(x, items);
            }
        }
        _ => {}
    }
}
