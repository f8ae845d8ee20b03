//! Server-side apply (`kubectl apply --server-side`, `application/apply-patch+yaml`).
//!
//! What is here: apply creates the object when it is missing, otherwise merges the applied
//! configuration into the live object with strategic-merge rules, and records the field
//! manager's fields in `metadata.managedFields` (FieldsV1). What is not yet: conflict
//! detection between managers (409 FieldManagerConflict, `force`), and removal of fields a
//! manager stops applying.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::patch::merge_key;

/// The FieldsV1 set of an applied configuration.
pub fn fields_v1(v: &Value) -> Value {
    let mut out = Map::new();
    if let Some(m) = v.as_object() {
        for (k, child) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            out.insert(format!("f:{k}"), field_set(k, child));
        }
    }
    Value::Object(out)
}

fn field_set(name: &str, v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                out.insert(format!("f:{k}"), field_set(k, child));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let elems: Vec<&Value> = items.iter().collect();
            let Some(key) = merge_key(name, &elems) else {
                return json!({});
            };
            let mut out = Map::new();
            for item in items {
                let id = item.get(key).cloned().unwrap_or(Value::Null);
                let mut entry = match field_set("", item) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                entry.insert(".".into(), json!({}));
                out.insert(format!("k:{}", json!({ key: id })), Value::Object(entry));
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// Sets `manager`'s Apply entry in `obj`'s managedFields.
pub fn record_manager(obj: &mut Value, applied: &Value, manager: &str, api_version: &str) {
    let entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": meta::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(applied),
    });
    let m = meta::metadata_mut(obj);
    let mut fields: Vec<Value> = m
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            !(e.get("manager").and_then(Value::as_str) == Some(manager)
                && e.get("operation").and_then(Value::as_str) == Some("Apply"))
        })
        .collect();
    fields.push(entry);
    m.insert("managedFields".into(), Value::Array(fields));
}

/// The applied configuration from the request body (kubectl and client libraries send JSON).
pub fn parse_body(body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding the apply configuration (only JSON is accepted so far): {e}"
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration must be an object",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_sets() {
        let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}});
        assert_eq!(
            fields_v1(&applied),
            json!({"f:metadata": {"f:name": {}}, "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
    }
}
