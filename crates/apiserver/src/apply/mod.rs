//! Server-side apply (`kubectl apply --server-side`, `application/apply-patch+yaml`).
//!
//! What is here: apply creates the object when it is missing, otherwise merges the applied
//! configuration into the live object with strategic-merge rules, records the field manager's
//! fields in `metadata.managedFields` (FieldsV1), and refuses (409 FieldManagerConflict) to
//! change a field another manager owns unless `force=true`, which takes the field over.
//! Every other write (create, update, patch) records the fields it changed under its
//! manager's `Update` entry and takes them from the others, without conflicts, as Kubernetes
//! does. List items are keyed as upstream's list-map keys (ports by number and protocol),
//! conflicts are found inside list items too, and what an apply manager stops applying is
//! removed from the object unless another manager owns it. Custom kinds merge and own their
//! lists as their CRD schema says (`x-kubernetes-list-type`, `-list-map-keys`,
//! `x-kubernetes-map-type`): see [`shape`].

mod merge;
mod shape;

use apiextensions::schema::ListKind;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::meta;
pub use merge::merge;
pub use shape::Shape;

/// Metadata no manager owns (Kubernetes strips these from every field set).
const SERVER_METADATA: [&str; 11] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "generateName",
];

/// The FieldsV1 set of an applied configuration.
pub fn fields_v1(v: &Value, shape: Shape) -> Value {
    diff_fields(None, v, shape)
}

/// The FieldsV1 set of what `new` sets differently from `old` (all of `new` when `old` is
/// `None`), without apiVersion, kind and server-owned metadata.
pub fn diff_fields(old: Option<&Value>, new: &Value, shape: Shape) -> Value {
    let mut out = Map::new();
    if let Some(m) = new.as_object() {
        for (k, child) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            let before = old.and_then(|o| o.get(k));
            let set = if k == "metadata" {
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(m) = v.as_object_mut() {
                        for f in SERVER_METADATA {
                            m.remove(f);
                        }
                    }
                    v
                };
                diff_set(shape.field(k), k, before.map(strip).as_ref(), &strip(child))
            } else {
                diff_set(shape.field(k), k, before, child)
            };
            if let Some(set) = set.filter(|s| !is_empty_map(s) || !child.is_object()) {
                out.insert(format!("f:{k}"), set);
            }
        }
    }
    Value::Object(out)
}

fn is_empty_map(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

/// The set of `new` (field `name`, of shape `shape`) that differs from `old`: `None` when
/// nothing does.
fn diff_set(shape: Shape, name: &str, old: Option<&Value>, new: &Value) -> Option<Value> {
    if old == Some(new) {
        return None;
    }
    match new {
        Value::Object(m) if !shape.atomic_map() => {
            let old_m = old.and_then(Value::as_object);
            let mut out = Map::new();
            for (k, child) in m {
                if let Some(set) = diff_set(shape.field(k), k, old_m.and_then(|o| o.get(k)), child)
                {
                    out.insert(format!("f:{k}"), set);
                }
            }
            // Only removals: nothing newly owned.
            (old_m.is_none() || !out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let old_items = old.and_then(Value::as_array);
            let keys = match shape.list(name, items) {
                ListKind::Atomic => return Some(json!({})),
                ListKind::Set => {
                    let mut out = Map::new();
                    for v in items {
                        if !old_items.is_some_and(|o| o.contains(v)) {
                            out.insert(format!("v:{v}"), json!({}));
                        }
                    }
                    return Some(Value::Object(out));
                }
                ListKind::Map(keys) => keys,
            };
            let mut out = Map::new();
            for item in items {
                let id = item_key(item, &keys);
                let before = old_items.and_then(|o| o.iter().find(|i| item_key(i, &keys) == id));
                let Some(set) = diff_set(shape.items(), "", before, item) else {
                    continue;
                };
                let mut entry = match set {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                if before.is_none() {
                    entry.insert(".".into(), json!({}));
                }
                out.insert(format!("k:{id}"), Value::Object(entry));
            }
            Some(Value::Object(out))
        }
        _ => Some(json!({})),
    }
}

/// An item's key as FieldsV1 spells it: `{"containerPort":80,"protocol":"TCP"}` (a port's
/// protocol defaults to TCP, as the applied configuration is defaulted before it is keyed).
fn item_key<K: AsRef<str>>(item: &Value, keys: &[K]) -> String {
    let mut m = Map::new();
    for k in keys {
        let k = k.as_ref();
        match item.get(k) {
            Some(v) => {
                m.insert(k.to_string(), v.clone());
            }
            None if k == "protocol" => {
                m.insert(k.to_string(), json!("TCP"));
            }
            None => {}
        }
    }
    Value::Object(m).to_string()
}

/// Sets `manager`'s Apply entry in `obj`'s managedFields.
pub fn record_manager(
    obj: &mut Value,
    applied: &Value,
    manager: &str,
    api_version: &str,
    shape: Shape,
) {
    let entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": meta::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(applied, shape),
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

/// Records a non-apply write: `manager`'s Update entry gains the fields the write changed,
/// the other managers lose them, and fields the object no longer has leave every entry.
/// managedFields the request carried replace the stored ones (a client may reset them).
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    shape: Shape,
) {
    let changed = diff_fields(old, new, shape);
    let sent = new.pointer("/metadata/managedFields").cloned();
    let base = match (&sent, old) {
        (Some(Value::Array(_)), _) => sent,
        (_, Some(o)) => o.pointer("/metadata/managedFields").cloned(),
        _ => None,
    };
    let mut entries: Vec<Value> = base.and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let nothing_changed = is_empty_map(&changed);
    let mut mine = None;
    for e in entries.iter_mut() {
        let is_mine = e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Update")
            && e.get("subresource").and_then(Value::as_str) == subresource;
        if let Some(f) = e.get_mut("fieldsV1") {
            if !is_mine {
                subtract(f, &changed);
            }
            prune(f, new);
        }
        if is_mine {
            mine = Some(e.clone());
        }
    }
    entries.retain(|e| {
        let is_mine = mine.as_ref() == Some(e);
        !is_mine && !e.get("fieldsV1").is_some_and(is_empty_map)
    });
    if !nothing_changed || mine.is_some() {
        let mut fields = mine
            .and_then(|m| m.get("fieldsV1").cloned())
            .unwrap_or_else(|| json!({}));
        union(&mut fields, &changed);
        if !is_empty_map(&fields) {
            let mut entry = json!({
                "manager": manager,
                "operation": "Update",
                "apiVersion": api_version,
                "time": meta::now_rfc3339(),
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            });
            if let Some(sub) = subresource {
                entry["subresource"] = json!(sub);
            }
            entries.push(entry);
        }
    }
    let m = meta::metadata_mut(new);
    if entries.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Adds every field of `other` to `set`.
fn union(set: &mut Value, other: &Value) {
    let (Some(s), Some(o)) = (set.as_object_mut(), other.as_object()) else {
        return;
    };
    for (k, v) in o {
        match s.get_mut(k) {
            Some(existing) => union(existing, v),
            None => {
                s.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Removes from `set` the fields `other` owns (a leaf in `other` takes the whole subtree).
fn subtract(set: &mut Value, other: &Value) {
    let (Some(s), Some(o)) = (set.as_object_mut(), other.as_object()) else {
        return;
    };
    for (k, v) in o {
        if k == "." {
            continue;
        }
        let Some(child) = s.get_mut(k) else { continue };
        if is_empty_map(v) {
            s.remove(k);
        } else {
            let was_leaf = is_empty_map(child);
            subtract(child, v);
            if !was_leaf
                && child
                    .as_object()
                    .is_some_and(|c| c.keys().all(|k| k == "."))
            {
                s.remove(k);
            }
        }
    }
}

/// Removes from `set` the fields `obj` no longer has.
fn prune(set: &mut Value, obj: &Value) {
    let Some(s) = set.as_object_mut() else { return };
    s.retain(|k, child| {
        if k == "." {
            return true;
        }
        let value = if let Some(name) = k.strip_prefix("f:") {
            obj.get(name)
        } else if let Some(id) = k.strip_prefix("k:") {
            find_item(obj, id)
        } else if let Some(v) = k.strip_prefix("v:") {
            find_value(obj, v)
        } else {
            return true;
        };
        let Some(value) = value else { return false };
        let was_leaf = is_empty_map(child);
        prune(child, value);
        was_leaf
            || !child
                .as_object()
                .is_some_and(|c| c.keys().all(|k| k == "."))
    });
}

/// The item of list `obj` whose key is `id` (a FieldsV1 `k:` key).
fn find_item<'a>(obj: &'a Value, id: &str) -> Option<&'a Value> {
    let id: Value = serde_json::from_str(id).ok()?;
    let keys: Vec<&str> = id.as_object()?.keys().map(String::as_str).collect();
    let want = id.to_string();
    obj.as_array()?
        .iter()
        .find(|item| item_key(item, &keys) == want)
}

/// The member of set list `obj` equal to `v` (a FieldsV1 `v:` value).
fn find_value<'a>(obj: &'a Value, v: &str) -> Option<&'a Value> {
    let v: Value = serde_json::from_str(v).ok()?;
    obj.as_array()?.iter().find(|item| **item == v)
}

/// One step of a field path: a field, a list item by its key, or a set's member.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Field(String),
    Item(String),
    Value(String),
}

impl Step {
    /// The FieldsV1 key of this step.
    fn key(&self) -> String {
        match self {
            Step::Field(k) => format!("f:{k}"),
            Step::Item(id) => format!("k:{id}"),
            Step::Value(v) => format!("v:{v}"),
        }
    }
}

/// What a FieldsV1 set owns, as paths: its leaf fields, and the list items it created
/// (those with a `.` entry) as paths ending in the item.
fn owned_paths(fields: &Value, prefix: &[Step], out: &mut Vec<Vec<Step>>) {
    let Some(m) = fields.as_object() else { return };
    for (k, v) in m {
        let step = if let Some(name) = k.strip_prefix("f:") {
            Step::Field(name.to_string())
        } else if let Some(id) = k.strip_prefix("k:") {
            Step::Item(id.to_string())
        } else if let Some(v) = k.strip_prefix("v:") {
            Step::Value(v.to_string())
        } else {
            continue;
        };
        let mut p = prefix.to_vec();
        p.push(step);
        let children = v.as_object().is_some_and(|c| c.keys().any(|k| k != "."));
        let marked = v.as_object().is_some_and(|c| c.contains_key("."));
        if !children || marked {
            out.push(p.clone());
        }
        if children {
            owned_paths(v, &p, out);
        }
    }
}

/// The leaf fields among [`owned_paths`] (the values an apply sets).
fn leaf_paths(fields: &Value) -> Vec<Vec<Step>> {
    let mut all = Vec::new();
    owned_paths(fields, &[], &mut all);
    all.iter()
        .filter(|p| !all.iter().any(|q| q.len() > p.len() && q.starts_with(p)))
        .cloned()
        .collect()
}

fn value_at<'a>(obj: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, step| match step {
        Step::Field(k) => v.get(k),
        Step::Item(id) => find_item(v, id),
        Step::Value(x) => find_value(v, x),
    })
}

/// `.spec.template.spec.containers[name="web"].image`, as Kubernetes names a field in
/// conflicts.
pub fn spell(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Item(id) => {
                let id: Value = serde_json::from_str(id).unwrap_or_default();
                let parts: Vec<String> = id
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// A field another manager owns that this apply would change: (manager, `.spec.replicas`).
pub struct Conflict {
    pub manager: String,
    /// How Kubernetes names the manager in messages: `"m"`, or for an Update entry
    /// `"m" using apps/v1`.
    pub label: String,
    pub path: Vec<Step>,
}

impl Conflict {
    pub fn field(&self) -> String {
        spell(&self.path)
    }
}

/// The fields of `applied` that other Apply managers of `live` own with a different value.
pub fn conflicts(live: &Value, applied: &Value, manager: &str, shape: Shape) -> Vec<Conflict> {
    let mine = leaf_paths(&fields_v1(applied, shape));
    let mut out = Vec::new();
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    for e in entries.into_iter().flatten() {
        let other = e.get("manager").and_then(Value::as_str).unwrap_or("");
        let operation = e.get("operation").and_then(Value::as_str);
        if other == manager && operation == Some("Apply") {
            continue;
        }
        let mut label = format!("{other:?}");
        if let Some(sub) = e.get("subresource").and_then(Value::as_str) {
            label.push_str(&format!(" with subresource {sub:?}"));
        }
        if operation == Some("Update") {
            let v = e.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            label.push_str(&format!(" using {v}"));
        }
        let theirs = leaf_paths(e.get("fieldsV1").unwrap_or(&Value::Null));
        for p in mine.iter().filter(|p| theirs.contains(p)) {
            if value_at(applied, p) != value_at(live, p) {
                out.push(Conflict {
                    manager: other.to_string(),
                    label: label.clone(),
                    path: p.clone(),
                });
            }
        }
    }
    out
}

/// Removes from `obj` what `manager` applied before and no longer applies, unless another
/// manager owns it too (or something under it): a field dropped from the configuration is
/// dropped from the object, a list item with it. `obj` still carries the managedFields from
/// before this apply.
pub fn remove_unapplied(obj: &mut Value, applied: &Value, manager: &str, shape: Shape) {
    let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return;
    };
    let is_mine = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
    };
    let Some(before) = entries.iter().find(|e| is_mine(e)) else {
        return;
    };
    let mut had = Vec::new();
    owned_paths(
        before.get("fieldsV1").unwrap_or(&Value::Null),
        &[],
        &mut had,
    );
    let mut now = Vec::new();
    owned_paths(&fields_v1(applied, shape), &[], &mut now);
    let mut others = Vec::new();
    for e in entries.iter().filter(|e| !is_mine(e)) {
        owned_paths(e.get("fieldsV1").unwrap_or(&Value::Null), &[], &mut others);
    }
    let gone: Vec<Vec<Step>> = had
        .into_iter()
        .filter(|p| !now.contains(p))
        .filter(|p| !others.iter().any(|q| q.starts_with(p)))
        .collect();
    // An item that goes takes its fields with it (removing them first would lose its key).
    for p in gone
        .iter()
        .filter(|p| !gone.iter().any(|q| q.len() < p.len() && p.starts_with(q)))
    {
        remove_at(obj, p);
    }
}

fn remove_at(obj: &mut Value, path: &[Step]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut node = obj;
    for step in parent {
        let next = match step {
            Step::Field(k) => node.get_mut(k),
            Step::Item(_) | Step::Value(_) => {
                let Some(i) = index_of(node, step) else {
                    return;
                };
                node.get_mut(i)
            }
        };
        let Some(n) = next else { return };
        node = n;
    }
    match last {
        Step::Field(k) => {
            if let Some(m) = node.as_object_mut() {
                m.remove(k);
            }
        }
        Step::Item(_) | Step::Value(_) => {
            if let Some(i) = index_of(node, last)
                && let Some(items) = node.as_array_mut()
            {
                items.remove(i);
            }
        }
    }
}

/// The index of the list item (`k:`) or set member (`v:`) a step names.
fn index_of(list: &Value, step: &Step) -> Option<usize> {
    let item = match step {
        Step::Item(id) => find_item(list, id)?,
        Step::Value(v) => find_value(list, v)?,
        Step::Field(_) => return None,
    };
    list.as_array()?.iter().position(|i| std::ptr::eq(i, item))
}

/// The 409 Kubernetes answers for conflicts.
pub fn conflict_error(
    info: &crate::resources::ResourceInfo,
    name: &str,
    conflicts: &[Conflict],
) -> ApiError {
    let parts: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with {}: {}", c.label, c.field()))
        .collect();
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.label), "field": c.field()}))
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
            for (i, step) in c.path.iter().enumerate() {
                let key = step.key();
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
            fields_v1(&applied, Shape::Builtin),
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
    }
}

#[cfg(test)]
mod schema_tests;
