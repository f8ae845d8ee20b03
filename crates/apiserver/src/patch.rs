//! Strategic merge patch, as `kubectl apply`, `patch` and `rollout` send it: maps merge,
//! `null` deletes, lists with a merge key (containers by `name`, container ports by
//! `containerPort`, ...) merge element by element, other lists are replaced, and the
//! `$patch`, `$setElementOrder`, `$deleteFromPrimitiveList` and `$retainKeys` directives apply.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

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

pub fn strategic_merge(doc: &mut Value, patch: &Value) -> ApiResult<()> {
    match (doc.as_object_mut(), patch.as_object()) {
        (Some(d), Some(p)) => merge_map(d, p),
        _ => Err(ApiError::bad_request(
            "a strategic merge patch must be a JSON object",
        )),
    }
}

fn merge_map(doc: &mut Map<String, Value>, patch: &Map<String, Value>) -> ApiResult<()> {
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
        match v {
            Value::Null => {
                doc.remove(k);
            }
            Value::Object(pm) => match doc.get_mut(k) {
                Some(Value::Object(dm)) => merge_map(dm, pm)?,
                _ => {
                    let mut fresh = Map::new();
                    merge_map(&mut fresh, pm)?;
                    doc.insert(k.clone(), Value::Object(fresh));
                }
            },
            Value::Array(pl) => {
                let merged = match doc.get(k) {
                    Some(Value::Array(dl)) => merge_list(k, dl, pl)?,
                    _ => merge_list(k, &[], pl)?,
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
        match merge_key(field, &elems) {
            Some(key) => {
                let pos = |e: &Value| order.iter().position(|o| o.get(key) == e.get(key));
                list.sort_by_key(|e| pos(e).unwrap_or(usize::MAX));
            }
            None => {
                let pos = |e: &Value| order.iter().position(|o| o == e);
                list.sort_by_key(|e| pos(e).unwrap_or(usize::MAX));
            }
        }
    }
    Ok(())
}

fn merge_list(field: &str, doc: &[Value], patch: &[Value]) -> ApiResult<Vec<Value>> {
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
    if is_set_list(field) {
        let mut out = doc.to_vec();
        for v in patch {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        return Ok(out);
    }
    let elems: Vec<&Value> = doc.iter().chain(patch.iter()).collect();
    let Some(key) = merge_key(field, &elems) else {
        return Ok(patch.to_vec());
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
                    merge_map(dm, pm)?;
                }
            }
            (_, None) => {
                let mut fresh = Map::new();
                merge_map(&mut fresh, pm)?;
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
    fn ports_that_share_a_number_are_replaced_not_merged() {
        let mut doc = json!({"ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]});
        let patch = doc.clone();
        strategic_merge(&mut doc, &patch).unwrap();
        assert_eq!(doc, patch);
    }
}
