//! Kubernetes' OpenAPI extensions on the built-in types, which k8s-openapi's schemas lack:
//! `x-kubernetes-patch-strategy` / `-patch-merge-key` (what kubectl's client-side apply
//! merges lists by), `x-kubernetes-list-type` / `-list-map-keys` and
//! `x-kubernetes-map-type: atomic`, from upstream's Go types' struct tags and `+listType` /
//! `+listMapKey` / `+structType` markers ([`crate::go_types`]).

use serde_json::{Value, json};

use crate::go_types;

/// Adds the extensions of definition `name` (`io.k8s.api.core.v1.PodSpec`) to its schema.
pub fn annotate(name: &str, schema: &mut Value) {
    let Some(message) = go_types::of_definition(name) else {
        return;
    };
    let Some(m) = schema.as_object_mut() else {
        return;
    };
    if go_types::ATOMIC.contains(&message) {
        m.insert("x-kubernetes-map-type".into(), json!("atomic"));
    }
    let (Some(fields), Some(props)) = (
        go_types::schema(message),
        m.get_mut("properties").and_then(Value::as_object_mut),
    ) else {
        return;
    };
    for f in fields {
        let Some(p) = props.get_mut(f.name).and_then(Value::as_object_mut) else {
            continue;
        };
        for (key, value) in [
            ("x-kubernetes-patch-strategy", f.patch_strategy),
            ("x-kubernetes-patch-merge-key", f.merge_key),
            ("x-kubernetes-list-type", f.list_type),
        ] {
            if !value.is_empty() {
                p.insert(key.into(), json!(value));
            }
        }
        if !f.list_map_keys.is_empty() {
            p.insert("x-kubernetes-list-map-keys".into(), json!(f.list_map_keys));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_merge_by_name_and_ports_by_number_and_protocol() {
        let mut spec = json!({"properties": {"containers": {"type": "array"}, "hostname": {}}});
        annotate("io.k8s.api.core.v1.PodSpec", &mut spec);
        assert_eq!(
            spec["properties"]["containers"],
            json!({"type": "array", "x-kubernetes-patch-strategy": "merge",
                "x-kubernetes-patch-merge-key": "name", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"]})
        );
        assert_eq!(spec["properties"]["hostname"], json!({}));
        let mut container = json!({"properties": {"ports": {}}});
        annotate("io.k8s.api.core.v1.Container", &mut container);
        assert_eq!(
            container["properties"]["ports"]["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        let mut reference = json!({"properties": {}});
        annotate("io.k8s.api.core.v1.LocalObjectReference", &mut reference);
        assert_eq!(reference["x-kubernetes-map-type"], "atomic");
    }
}
