//! Server-side apply of custom objects: lists merged and owned as the CRD schema says.

use apiextensions::schema::Structural;
use serde_json::{Value, json};

use super::*;

fn schema() -> Structural {
    let props = serde_json::from_value(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "port"],
                "items": {"type": "object", "required": ["name", "port"], "properties": {
                    "name": {"type": "string"}, "port": {"type": "integer"},
                    "value": {"type": "string"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "string"}},
            "hosts": {"type": "array", "items": {"type": "string"}},
            "conditions": {"type": "array", "items": {"type": "object",
                "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}},
            "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                "additionalProperties": {"type": "string"}}}}}
    }))
    .expect("schema");
    Structural::new(&props, "schema").unwrap_or_else(|e| panic!("{e:?}"))
}

fn object(spec: Value) -> Value {
    json!({"apiVersion": "x.example.com/v1", "kind": "Thing",
        "metadata": {"name": "t", "finalizers": ["a.example.com/f"]}, "spec": spec})
}

/// One apply as the handler does it: conflicts, merge, removal of what the manager dropped,
/// its managedFields entry. Returns the conflicting fields (nothing changed then).
fn apply(live: &mut Value, applied: &Value, manager: &str, shape: Shape) -> Vec<String> {
    let found = conflicts(live, applied, manager, shape);
    if !found.is_empty() {
        return found.iter().map(Conflict::field).collect();
    }
    merge(live, applied, shape).expect("merge");
    remove_unapplied(live, applied, manager, shape);
    record_manager(live, applied, manager, "x.example.com/v1", shape);
    Vec::new()
}

#[test]
fn lists_are_owned_and_merged_by_the_schema() {
    let s = schema();
    let shape = Shape::of(Some(&s));
    let first = object(json!({
        "items": [{"name": "a", "port": 1, "value": "x"}],
        "tags": ["t1"], "hosts": ["h1"], "conditions": [{"type": "Ready"}],
        "selector": {"app": "web"}}));
    assert_eq!(
        fields_v1(&first, shape)["f:spec"],
        json!({
            "f:items": {"k:{\"name\":\"a\",\"port\":1}":
                {".": {}, "f:name": {}, "f:port": {}, "f:value": {}}},
            "f:tags": {"v:\"t1\"": {}},
            // No list type: atomic (a built-in `conditions` would be keyed by type).
            "f:hosts": {}, "f:conditions": {},
            "f:selector": {}})
    );
    let mut live = first.clone();
    live["metadata"]["managedFields"] = json!([]);
    assert!(apply(&mut live, &first, "one", shape).is_empty());

    // Another manager adds an item with the same name but another port, and a tag.
    let second = object(json!({"items": [{"name": "a", "port": 2, "value": "y"}], "tags": ["t2"]}));
    assert!(apply(&mut live, &second, "two", shape).is_empty());
    assert_eq!(
        live["spec"]["items"],
        json!([{"name": "a", "port": 1, "value": "x"}, {"name": "a", "port": 2, "value": "y"}])
    );
    assert_eq!(live["spec"]["tags"], json!(["t1", "t2"]));
    // The ObjectMeta inside merges as built-in metadata: finalizers are a set.
    assert_eq!(live["metadata"]["finalizers"], json!(["a.example.com/f"]));

    // Atomic lists and maps conflict whole; a keyed item's field conflicts on its own.
    let third = object(json!({"hosts": ["h2"], "selector": {"app": "db"},
        "items": [{"name": "a", "port": 1, "value": "z"}]}));
    let mut fields = apply(&mut live, &third, "three", shape);
    fields.sort();
    assert_eq!(
        fields,
        [
            ".spec.hosts",
            ".spec.items[name=\"a\",port=1].value",
            ".spec.selector"
        ]
    );

    // The first manager stops applying t1 and its item: only those go.
    let again = object(json!({"hosts": ["h1"], "conditions": [{"type": "Ready"}],
        "selector": {"app": "web"}}));
    assert!(apply(&mut live, &again, "one", shape).is_empty());
    assert_eq!(
        live["spec"]["items"],
        json!([{"name": "a", "port": 2, "value": "y"}])
    );
    assert_eq!(live["spec"]["tags"], json!(["t2"]));
    assert_eq!(live["spec"]["hosts"], json!(["h1"]));

    // An atomic list applied again is replaced, not merged.
    let hosts = object(
        json!({"hosts": ["h3", "h4"], "conditions": [{"type": "Ready"}],
        "selector": {"app": "web"}}),
    );
    assert!(apply(&mut live, &hosts, "one", shape).is_empty());
    assert_eq!(live["spec"]["hosts"], json!(["h3", "h4"]));
}

#[test]
fn builtin_finalizers_are_a_set() {
    let applied = json!({"metadata": {"name": "n", "finalizers": ["a/b"]}});
    assert_eq!(
        fields_v1(&applied, Shape::Builtin),
        json!({"f:metadata": {"f:finalizers": {"v:\"a/b\"": {}}}})
    );
}

#[test]
fn builtin_kinds_key_lists_by_their_go_markers() {
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "finalizers": ["x/y"]},
        "spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "nginx",
                "ports": [{"containerPort": 80}], "args": ["a"]}],
            "tolerations": [{"key": "k", "operator": "Exists"}]}}}});
    let shape = Shape::Typed("apps/v1.Deployment");
    assert_eq!(
        fields_v1(&applied, shape),
        json!({"f:metadata": {"f:finalizers": {"v:\"x/y\"": {}}},
            "f:spec": {"f:template": {"f:spec": {
                "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {},
                    // +listMapKey=containerPort, +listMapKey=protocol (TCP when unset).
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":
                        {".": {}, "f:containerPort": {}}},
                    // +listType=atomic.
                    "f:args": {}}},
                "f:tolerations": {}}}}})
    );
    // An EndpointSlice's ports are atomic (by field name alone they would be keyed by port).
    let slice = json!({"ports": [{"name": "http", "port": 80}]});
    assert_eq!(
        fields_v1(&slice, Shape::Typed("discovery/v1.EndpointSlice")),
        json!({"f:ports": {}})
    );
    assert_ne!(fields_v1(&slice, Shape::Builtin), json!({"f:ports": {}}));
}
