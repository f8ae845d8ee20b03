//! Tests: pruning.

use super::*;

#[test]
fn prunes_unknown_fields_and_reports_their_paths() {
    let s = compile(spec(json!({
        "name": {"type": "string"},
        "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "integer"}}}}
    })));
    let mut obj = json!({
        "apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n", "whatever": 1},
        "spec": {"name": "x", "foo": 1, "list": [{"a": "1", "bar": 2}], "map": {"k": {"x": 1, "y": 2}}},
        "status": {"s": 1}
    });
    let unknown = s.prune(&mut obj);
    assert_eq!(
        unknown,
        vec!["spec.foo", "spec.list[0].bar", "spec.map.k.y", "status"]
    );
    assert_eq!(
        obj,
        json!({
            "apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n", "whatever": 1},
            "spec": {"name": "x", "list": [{"a": "1"}], "map": {"k": {"x": 1}}}
        })
    );
}

#[test]
fn prune_keeps_preserved_and_embedded_meta_fields() {
    let s = compile(spec(json!({
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                 "properties": {"typed": {"type": "object", "properties": {"a": {"type": "string"}}}}},
        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                     "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    })));
    let mut obj = json!({"spec": {
        "free": {"anything": {"deep": 1}, "typed": {"a": "x", "b": 1}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "x": 1}, "spec": {"a": "1", "b": 2}, "other": 1}
    }});
    let unknown = s.prune(&mut obj);
    assert_eq!(
        unknown,
        vec![
            "spec.free.typed.b",
            "spec.template.other",
            "spec.template.spec.b"
        ]
    );
    assert_eq!(
        obj["spec"],
        json!({
            "free": {"anything": {"deep": 1}, "typed": {"a": "x"}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "x": 1}, "spec": {"a": "1"}}
        })
    );
}

#[test]
fn prune_drops_non_nullable_nulls_without_defaults() {
    let s = compile(spec(json!({
        "a": {"type": "string"},
        "b": {"type": "string", "nullable": true},
        "c": {"type": "string", "default": "x"}
    })));
    let mut obj = json!({"spec": {"a": null, "b": null, "c": null}});
    assert!(s.prune(&mut obj).is_empty());
    assert_eq!(obj["spec"], json!({"b": null, "c": null}));
}

// ---- upstream's pruning/algorithm_test.go, as data ----

/// Prunes `obj` against `schema` as upstream's `PruneWithOptions(obj, s, isResourceRoot=false)`.
fn prune_plain(schema: Value, mut obj: Value) -> (Value, Vec<String>) {
    let node = crate::schema::node::Node::compile(&props(schema));
    let mut unknown = Vec::new();
    crate::schema::pruning::prune(&mut obj, &node, false, false, Some(&mut unknown));
    (obj, unknown)
}

#[test]
fn upstream_pruning_nested_preserve_unknown_fields() {
    let schema = json!({
        "type": "object", "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "alpha": {"type": "string"},
            "beta": {"type": "number"},
            "pruning": {"type": "object", "properties": {
                "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "pruning": {"type": "object"}
            }},
            "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "preservingUnknownType": {"x-kubernetes-preserve-unknown-fields": true},
                "pruning": {"type": "object"}
            }},
            "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "additionalProperties": {"type": "object", "properties": {"specified": {"type": "object"}}}
            },
            "preservingAdditionalPropertiesKeyPruneValues": {
                "type": "object",
                "additionalProperties": {"type": "object", "properties": {"specified": {"type": "object"}}}
            }
        }
    });
    let obj = json!({
        "unspecified": "bar",
        "alpha": "abc",
        "beta": 42.0,
        "unspecifiedObject": {"unspecified": "bar"},
        "pruning": {
            "unspecified": "bar",
            "unspecifiedObject": {"unspecified": "bar"},
            "pruning": {"unspecified": "bar"},
            "apiVersion": "unknown",
            "preserving": {"unspecified": "bar"}
        },
        "preserving": {
            "unspecified": "bar",
            "unspecifiedObject": {"unspecified": "bar"},
            "pruning": {"unspecified": "bar"},
            "preserving": {"unspecified": "bar"},
            "preservingUnknownType": [{"foo": true}, {"bar": true}]
        },
        "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields": {
            "foo": {"specified": {"unspecified": "bar"}, "unspecified": "bar"}
        },
        "preservingAdditionalPropertiesKeyPruneValues": {
            "foo": {"specified": {"unspecified": "bar"}, "unspecified": "bar"}
        }
    });
    let (pruned, unknown) = prune_plain(schema, obj);
    assert_eq!(
        pruned,
        json!({
            "unspecified": "bar",
            "alpha": "abc",
            "beta": 42.0,
            "unspecifiedObject": {"unspecified": "bar"},
            "pruning": {"pruning": {}, "preserving": {"unspecified": "bar"}},
            "preserving": {
                "unspecified": "bar",
                "unspecifiedObject": {"unspecified": "bar"},
                "pruning": {},
                "preserving": {"unspecified": "bar"},
                "preservingUnknownType": [{"foo": true}, {"bar": true}]
            },
            "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields": {"foo": {"specified": {}}},
            "preservingAdditionalPropertiesKeyPruneValues": {"foo": {"specified": {}}}
        })
    );
    assert_eq!(
        unknown,
        vec![
            "preserving.pruning.unspecified",
            "preservingAdditionalPropertiesKeyPruneValues.foo.specified.unspecified",
            "preservingAdditionalPropertiesKeyPruneValues.foo.unspecified",
            "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields.foo.specified.unspecified",
            "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields.foo.unspecified",
            "pruning.apiVersion",
            "pruning.pruning.unspecified",
            "pruning.unspecified",
            "pruning.unspecifiedObject",
        ]
    );
}

#[test]
fn upstream_pruning_additional_properties() {
    let (pruned, unknown) = prune_plain(
        json!({"properties": {"a": {}, "c": {"additionalProperties": {"type": "integer"}}}}),
        json!({"a": 1, "b": 1, "c": {"a": 1, "b": 2, "c": {"a": 1}}}),
    );
    assert_eq!(pruned, json!({"a": 1, "c": {"a": 1, "b": 2, "c": {}}}));
    assert_eq!(unknown, vec!["b", "c.c.a"]);
    let (pruned, unknown) = prune_plain(
        json!({"properties": {"a": {}, "c": {"additionalProperties": false}}}),
        json!({"a": 1, "b": 1, "c": {"a": 1, "b": 2, "c": {"a": 1, "apiVersion": "unknown"}}}),
    );
    assert_eq!(pruned, json!({"a": 1, "c": {"a": 1, "b": 2, "c": {}}}));
    assert_eq!(unknown, vec!["b", "c.c.a", "c.c.apiVersion"]);
    let (pruned, unknown) = prune_plain(
        json!({"type": "array", "items": {"properties": {"a": {}, "c": {}}}}),
        json!([{"a": 1}, {"b": 1}, {"a": 1, "b": 2, "c": 3}]),
    );
    assert_eq!(pruned, json!([{"a": 1}, {}, {"a": 1, "c": 3}]));
    assert_eq!(unknown, vec!["[1].b", "[2].b"]);
}

#[test]
fn upstream_pruning_embedded_resources() {
    let embedded = |unspecified_spec: Value| {
        json!({
            "apiVersion": "foo/v1", "kind": "Foo", "unspecified": "bar",
            "metadata": {"name": "instance", "unspecified": "bar"},
            "spec": unspecified_spec
        })
    };
    let mut nested = embedded(json!({"unspecified": "bar"}));
    nested["spec"]["embedded"] = embedded(json!({"unspecified": "bar"}));
    let obj = json!({
        "apiVersion": "foo/v1", "kind": "Foo",
        "metadata": {"name": "instance", "unspecified": "bar"},
        "unspecified": "bar",
        "pruned": embedded(json!({"unspecified": "bar"})),
        "preserving": embedded(json!({"unspecified": "bar"})),
        "nested": nested
    });
    let schema = json!({"type": "object", "properties": {
        "pruned": {"type": "object", "x-kubernetes-embedded-resource": true,
                   "properties": {"spec": {"type": "object"}}},
        "preserving": {"type": "object", "x-kubernetes-embedded-resource": true,
                       "x-kubernetes-preserve-unknown-fields": true},
        "nested": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {
            "type": "object",
            "properties": {"embedded": {"type": "object", "x-kubernetes-embedded-resource": true,
                                        "properties": {"spec": {"type": "object"}}}}
        }}}
    }});
    let (pruned, unknown) = prune_plain(schema, obj);
    let kept = |spec: Value| {
        json!({
            "apiVersion": "foo/v1", "kind": "Foo",
            "metadata": {"name": "instance", "unspecified": "bar"},
            "spec": spec
        })
    };
    let mut nested = kept(json!({}));
    nested["spec"]["embedded"] = kept(json!({}));
    assert_eq!(
        pruned,
        json!({
            "pruned": kept(json!({})),
            "preserving": embedded(json!({"unspecified": "bar"})),
            "nested": nested
        })
    );
    assert_eq!(
        unknown,
        vec![
            "nested.spec.embedded.spec.unspecified",
            "nested.spec.embedded.unspecified",
            "nested.spec.unspecified",
            "nested.unspecified",
            "pruned.spec.unspecified",
            "pruned.unspecified",
            "unspecified",
        ]
    );
}
