//! Server-side apply (`kubectl apply --server-side`, `application/apply-patch+yaml`).
//!
//! What is here: apply creates the object when it is missing, otherwise merges the applied
//! configuration into the live object with strategic-merge rules, records the field manager's
//! fields in `metadata.managedFields` (FieldsV1), and refuses (409 FieldManagerConflict) to
//! change a field another Apply manager owns unless `force=true`, which takes the field over.
//! What is not yet: ownership by non-apply writes (Update entries), conflicts inside list
//! items, and removal of fields a manager stops applying.

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

/// Field paths (`["spec", "replicas"]`) a FieldsV1 set owns, through maps; an owned list
/// item (`k:{...}`) is not descended into.
fn leaf_paths(fields: &Value, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let Some(m) = fields.as_object() else { return };
    for (k, v) in m {
        let Some(name) = k.strip_prefix("f:") else {
            continue;
        };
        let mut p = prefix.to_vec();
        p.push(name.to_string());
        let has = |prefix: &str| {
            v.as_object()
                .is_some_and(|c| c.keys().any(|k| k.starts_with(prefix)))
        };
        if has("f:") {
            leaf_paths(v, &p, out);
        } else if !has("k:") {
            out.push(p);
        }
    }
}

fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

/// A field another manager owns that this apply would change: (manager, `.spec.replicas`).
pub struct Conflict {
    pub manager: String,
    pub path: Vec<String>,
}

impl Conflict {
    pub fn field(&self) -> String {
        format!(".{}", self.path.join("."))
    }
}

/// The fields of `applied` that other Apply managers of `live` own with a different value.
pub fn conflicts(live: &Value, applied: &Value, manager: &str) -> Vec<Conflict> {
    let mut mine = Vec::new();
    leaf_paths(&fields_v1(applied), &[], &mut mine);
    let mut out = Vec::new();
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    for e in entries.into_iter().flatten() {
        let other = e.get("manager").and_then(Value::as_str).unwrap_or("");
        if other == manager || e.get("operation").and_then(Value::as_str) != Some("Apply") {
            continue;
        }
        let mut theirs = Vec::new();
        leaf_paths(e.get("fieldsV1").unwrap_or(&Value::Null), &[], &mut theirs);
        for p in mine.iter().filter(|p| theirs.contains(p)) {
            if value_at(applied, p) != value_at(live, p) {
                out.push(Conflict {
                    manager: other.to_string(),
                    path: p.clone(),
                });
            }
        }
    }
    out
}

/// The 409 Kubernetes answers for conflicts.
pub fn conflict_error(
    info: &crate::resources::ResourceInfo,
    name: &str,
    conflicts: &[Conflict],
) -> ApiError {
    let parts: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field()))
        .collect();
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": c.field()}))
        .collect();
    ApiError {
        code: 409,
        reason: "Conflict",
        message: format!(
            "Apply failed with {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            parts.join("; ")
        ),
        details: Some(
            json!({"name": name, "group": info.group, "kind": info.plural, "causes": causes}),
        ),
    }
}

/// Takes the conflicting fields away from their previous owners (an apply with force=true).
pub fn take_over(obj: &mut Value, conflicts: &[Conflict]) {
    let Some(entries) = obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for e in entries.iter_mut() {
        let manager = e
            .get("manager")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        for c in conflicts.iter().filter(|c| c.manager == manager) {
            let mut node = e.get_mut("fieldsV1");
            for (i, k) in c.path.iter().enumerate() {
                let key = format!("f:{k}");
                let Some(m) = node.and_then(Value::as_object_mut) else {
                    break;
                };
                if i + 1 == c.path.len() {
                    m.remove(&key);
                    break;
                }
                node = m.get_mut(&key);
            }
        }
    }
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
