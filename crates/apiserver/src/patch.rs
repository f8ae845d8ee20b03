//! Strategic merge patch, as `kubectl apply`, `patch` and `rollout` send it: maps merge,
//! `null` deletes, lists with a merge key (containers by `name`, container ports by
//! `containerPort`, ...) merge element by element, other lists are replaced, and the
//! `$patch`, `$setElementOrder`, `$deleteFromPrimitiveList` and `$retainKeys` directives apply.
//! A built-in kind's lists merge as its Go types' `patchStrategy`/`patchMergeKey` tags say
//! ([`crate::go_types`]); where no type is known (server-side apply's merge of a built-in
//! kind) the merge key follows from the field's name ([`merge_key`]).

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::go_types::{self, Field, Holds, PatchMerge};

/// What a patched value is, as far as the type tables know.
#[derive(Clone, Copy)]
enum Node {
    /// A Go struct (`core/v1.PodSpec`).
    Struct(&'static str),
    /// A Go map whose values are this struct (or scalars).
    MapOf(Option<&'static str>),
    /// No type known: merge keys by field name.
    Unknown,
}

impl Node {
    fn of(f: &Field) -> Node {
        match f.holds() {
            Holds::Struct(m) => Node::Struct(m),
            Holds::MapOf(m) => Node::MapOf(m),
            Holds::Scalar => Node::Unknown,
        }
    }

    /// The value under `key`, and the field that holds it when this is a struct.
    fn child(self, key: &str) -> (Node, Option<&'static Field>) {
        match self {
            Node::Struct(m) => match go_types::field(m, key) {
                Some(f) => (Node::of(f), Some(f)),
                None => (Node::Unknown, None),
            },
            Node::MapOf(Some(m)) => (Node::Struct(m), None),
            Node::MapOf(None) | Node::Unknown => (Node::Unknown, None),
        }
    }
}

/// How a list merges.
enum ListMerge {
    Replace,
    /// Primitive values merged as a set (`finalizers`).
    Set,
    /// Objects merged by this key.
    Keyed(&'static str),
}

/// How list `name` merges: by its field's tags when known, else by its name.
fn list_merge(name: &str, field: Option<&Field>, elems: &[&Value]) -> ListMerge {
    match field {
        Some(f) => match f.patch_merge() {
            PatchMerge::Replace => ListMerge::Replace,
            PatchMerge::Set => ListMerge::Set,
            PatchMerge::Keyed(key) => ListMerge::Keyed(key),
        },
        None if is_set_list(name) => ListMerge::Set,
        None => merge_key(name, elems).map_or(ListMerge::Replace, ListMerge::Keyed),
    }
}

/// The merge key of a list field, from Kubernetes' `patchMergeKey` tags. Ports depend on
/// where they are (container ports by `containerPort`, service ports by `port`), which the
/// elements themselves tell.
pub(crate) fn merge_key(field: &str, elems: &[&Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "imagePullSecrets"
        | "volumes"
        | "env"
        | "schedulingGates"
        | "resourceClaims"
        | "secrets" => "name",
        "ports" => {
            if elems.iter().any(|e| e.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ownerReferences" => "uid",
        "conditions" | "addresses" => "type",
        "podIPs" | "hostIPs" => "ip",
        _ => return None,
    })
}

/// Whether every element of `list` has its own value of `key`.
pub(crate) fn keys_unique(list: &[Value], key: &str) -> bool {
    let mut seen = std::collections::HashSet::new();
    list.iter()
        .all(|e| seen.insert(e.get(key).map(Value::to_string).unwrap_or_default()))
}

/// Primitive lists merged as sets rather than replaced.
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

/// A strategic merge patch of an object of unknown type (lists keyed by field name).
pub fn strategic_merge(doc: &mut Value, patch: &Value) -> ApiResult<()> {
    merge_root(doc, patch, Node::Unknown)
}

/// A strategic merge patch of an object of Go type `message` (`apps/v1.Deployment`), its
/// lists merged as the type's tags say; `None`: as [`strategic_merge`].
pub fn strategic_merge_typed(
    doc: &mut Value,
    patch: &Value,
    message: Option<&'static str>,
) -> ApiResult<()> {
    merge_root(doc, patch, message.map_or(Node::Unknown, Node::Struct))
}

fn merge_root(doc: &mut Value, patch: &Value, node: Node) -> ApiResult<()> {
    match (doc.as_object_mut(), patch.as_object()) {
        (Some(d), Some(p)) => merge_map(d, p, node),
        _ => Err(ApiError::bad_request(
            "a strategic merge patch must be a JSON object",
        )),
    }
}

fn merge_map(
    doc: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    node: Node,
) -> ApiResult<()> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *doc = patch.clone();
            doc.remove("$patch");
            return Ok(());
        }
        Some("delete") => {
            doc.clear();
            return Ok(());
        }
        _ => {}
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        doc.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        let (child, field) = node.child(k);
        match v {
            Value::Null => {
                doc.remove(k);
            }
            Value::Object(pm) => match doc.get_mut(k) {
                Some(Value::Object(dm)) => merge_map(dm, pm, child)?,
                _ => {
                    let mut fresh = Map::new();
                    merge_map(&mut fresh, pm, child)?;
                    doc.insert(k.clone(), Value::Object(fresh));
                }
            },
            Value::Array(pl) => {
                let merged = match doc.get(k) {
                    Some(Value::Array(dl)) => merge_list(k, field, child, dl, pl)?,
                    _ => merge_list(k, field, child, &[], pl)?,
                };
                doc.insert(k.clone(), Value::Array(merged));
            }
            other => {
                doc.insert(k.clone(), other.clone());
            }
        }
    }
    // Removals from primitive lists apply to the merged list.
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/")
            && let (Some(Value::Array(list)), Some(del)) = (doc.get_mut(field), v.as_array())
        {
            list.retain(|x| !del.contains(x));
        }
    }
    // Reorder lists as the patch's $setElementOrder says.
    for (k, order) in patch {
        let Some(field) = k.strip_prefix("$setElementOrder/") else {
            continue;
        };
        let (Some(Value::Array(list)), Some(order)) = (doc.get_mut(field), order.as_array()) else {
            continue;
        };
        let elems: Vec<&Value> = order.iter().collect();
        match list_merge(field, node.child(field).1, &elems) {
            ListMerge::Keyed(key) => {
                let pos = |e: &Value| order.iter().position(|o| o.get(key) == e.get(key));
                list.sort_by_key(|e| pos(e).unwrap_or(usize::MAX));
            }
            ListMerge::Set | ListMerge::Replace => {
                let pos = |e: &Value| order.iter().position(|o| o == e);
                list.sort_by_key(|e| pos(e).unwrap_or(usize::MAX));
            }
        }
    }
    Ok(())
}

/// Merges list `field` (held by `held_by` when known; its items of type `items`).
fn merge_list(
    field: &str,
    held_by: Option<&Field>,
    items: Node,
    doc: &[Value],
    patch: &[Value],
) -> ApiResult<Vec<Value>> {
    // `[{"$patch": "replace"}, ...]` replaces the whole list.
    if patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|e| e.get("$patch").is_none())
            .cloned()
            .collect());
    }
    let elems: Vec<&Value> = doc.iter().chain(patch.iter()).collect();
    let key = match list_merge(field, held_by, &elems) {
        ListMerge::Replace => return Ok(patch.to_vec()),
        ListMerge::Set => {
            let mut out = doc.to_vec();
            for v in patch {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            return Ok(out);
        }
        ListMerge::Keyed(key) => key,
    };
    // A key that does not tell elements apart (an EndpointSlice's or a Service's ports
    // 53/UDP and 53/TCP, keyed by `port` alone) would merge two into one: such a list is
    // replaced as a whole instead.
    if !keys_unique(doc, key) || !keys_unique(patch, key) {
        return Ok(patch.to_vec());
    }
    let mut out = doc.to_vec();
    for p in patch {
        let Some(pm) = p.as_object() else {
            return Err(ApiError::bad_request(format!(
                "strategic merge patch: list {field} needs objects with {key}"
            )));
        };
        let id = pm.get(key);
        let existing = out
            .iter()
            .position(|d| d.get(key).is_some() && d.get(key) == id);
        match (pm.get("$patch").and_then(Value::as_str), existing) {
            (Some("delete"), Some(i)) => {
                out.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => {
                if let Some(dm) = out[i].as_object_mut() {
                    merge_map(dm, pm, items)?;
                }
            }
            (_, None) => {
                let mut fresh = Map::new();
                merge_map(&mut fresh, pm, items)?;
                out.push(Value::Object(fresh));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(doc: Value, patch: Value) -> Value {
        let mut d = doc;
        strategic_merge(&mut d, &patch).unwrap();
        d
    }

    #[test]
    fn containers_merge_by_name() {
        let doc = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
            {"name": "b", "image": "b:1"}]}});
        let out = smp(
            doc,
            json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "a:2", "env": [{"$patch": "delete", "name": "Y"}]}]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [
            {"name": "b", "image": "b:1"},
            {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}]}]}})
        );
    }

    #[test]
    fn null_deletes_and_plain_lists_replace() {
        let out = smp(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"args": ["x", "y"]}}),
            json!({"metadata": {"labels": {"a": null}}, "spec": {"args": ["z"]}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"args": ["z"]}})
        );
    }

    #[test]
    fn retain_keys_and_ports() {
        let out = smp(
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                   "ports": [{"port": 80, "protocol": "TCP"}]}),
            json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                   "ports": [{"port": 443}]}),
        );
        assert_eq!(
            out,
            json!({"strategy": {"type": "Recreate"},
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443}]})
        );
    }

    #[test]
    fn finalizers_are_a_set() {
        let out = smp(
            json!({"finalizers": ["a"]}),
            json!({"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]}),
        );
        assert_eq!(out, json!({"finalizers": ["b"]}));
    }

    #[test]
    fn typed_lists_merge_as_their_go_tags_say() {
        let smp_as = |ty: &'static str, doc: Value, patch: Value| {
            let mut d = doc;
            strategic_merge_typed(&mut d, &patch, Some(ty)).unwrap();
            d
        };
        // A Deployment's containers (through the template's PodSpec) merge by name, their
        // env by name.
        let out = smp_as(
            "apps/v1.Deployment",
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "b:1"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "env": [{"name": "Y", "value": "2"}]}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"},
                {"name": "Y", "value": "2"}]}, {"name": "b", "image": "b:1"}])
        );
        // An EndpointSlice's ports have no patch strategy: replaced (by field name alone
        // they would merge by `port`).
        let doc = json!({"ports": [{"name": "a", "port": 80}]});
        let patch = json!({"ports": [{"name": "b", "port": 443}]});
        assert_eq!(
            smp_as("discovery/v1.EndpointSlice", doc.clone(), patch.clone()),
            json!({"ports": [{"name": "b", "port": 443}]})
        );
        assert_eq!(
            smp(doc, patch),
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]})
        );
        // A pod's readiness gates are replaced; its volumes (an embedded VolumeSource in
        // each) merge by name; metadata's finalizers are a set.
        let out = smp_as(
            "core/v1.Pod",
            json!({"metadata": {"finalizers": ["a"]}, "spec": {
                "readinessGates": [{"conditionType": "x"}],
                "volumes": [{"name": "v", "configMap": {"name": "c"}}]}}),
            json!({"metadata": {"finalizers": ["b"]}, "spec": {
                "readinessGates": [{"conditionType": "y"}],
                "volumes": [{"name": "w", "emptyDir": {}}]}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {
                "readinessGates": [{"conditionType": "y"}],
                "volumes": [{"name": "v", "configMap": {"name": "c"}},
                    {"name": "w", "emptyDir": {}}]}})
        );
    }

    #[test]
    fn ports_that_share_a_number_are_replaced_not_merged() {
        let mut doc = json!({"ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]});
        let patch = doc.clone();
        strategic_merge(&mut doc, &patch).unwrap();
        assert_eq!(doc, patch);
    }
}
