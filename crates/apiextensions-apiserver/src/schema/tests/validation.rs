//! Tests: validation.

use super::*;

#[test]
fn validates_types() {
    let p = json!({"replicas": {"type": "integer"}, "ratio": {"type": "number"}, "on": {"type": "boolean"}});
    assert_eq!(
        spec_errors(p.clone(), json!({"replicas": "abc"})),
        vec![
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        ]
    );
    assert!(spec_errors(p.clone(), json!({"replicas": 1.0, "ratio": 2, "on": true})).is_empty());
    assert_eq!(
        spec_errors(p.clone(), json!({"replicas": 1.5})),
        vec![
            "<nil>: Invalid value: \"\": Checked value must be of type integer (default format) in spec.replicas",
            "spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\"",
        ]
    );
    assert_eq!(
        spec_errors(p, json!({"on": "yes"})),
        vec![
            "spec.on: Invalid value: \"string\": spec.on in body must be of type boolean: \"string\""
        ]
    );
}

#[test]
fn validates_nullable() {
    let s = compile(spec(
        json!({"a": {"type": "string", "nullable": true}, "b": {"type": "string"}}),
    ));
    assert!(errors(&s, json!({"spec": {"a": null}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"b": null}})),
        vec!["spec.b: Invalid value: \"null\": spec.b in body must be of type string: \"null\""]
    );
}

#[test]
fn validates_formats() {
    let p = json!({
        "id": {"type": "string", "format": "uuid"},
        "at": {"type": "string", "format": "date-time"},
        "ip": {"type": "string", "format": "ipv4"},
        "n": {"type": "integer", "format": "int32"},
        "odd": {"type": "string", "format": "my-own-format"}
    });
    assert!(
        spec_errors(
            p.clone(),
            json!({"id": "123e4567-e89b-12d3-a456-426614174000", "at": "2024-01-02T03:04:05Z", "ip": "10.0.0.1", "n": 5, "odd": "?"})
        )
        .is_empty()
    );
    assert_eq!(
        spec_errors(
            p.clone(),
            json!({"id": "abc", "at": "2024-13-01T00:00:00Z", "ip": "::1"})
        ),
        vec![
            "spec.at: Invalid value: \"2024-13-01T00:00:00Z\": spec.at in body must be of type date-time: \"2024-13-01T00:00:00Z\"",
            "spec.id: Invalid value: \"abc\": spec.id in body must be of type uuid: \"abc\"",
            "spec.ip: Invalid value: \"::1\": spec.ip in body must be of type ipv4: \"::1\"",
        ]
    );
    assert_eq!(
        spec_errors(p, json!({"n": 3_000_000_000i64})),
        vec![
            "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.n"
        ]
    );
}

#[test]
fn validates_enum_and_pattern() {
    let p = json!({
        "mode": {"type": "string", "enum": ["a", "b"]},
        "level": {"type": "integer", "enum": [1, 2]},
        "name": {"type": "string", "pattern": "^[a-z]+$"}
    });
    assert!(spec_errors(p.clone(), json!({"mode": "a", "level": 2, "name": "abc"})).is_empty());
    assert_eq!(
        spec_errors(p, json!({"mode": "x", "level": 3, "name": "ABC"})),
        vec![
            "spec.level: Unsupported value: 3: supported values: \"1\", \"2\"",
            "spec.mode: Unsupported value: \"x\": supported values: \"a\", \"b\"",
            "spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'",
        ]
    );
}

#[test]
fn validates_string_lengths_in_characters() {
    let p = json!({"s": {"type": "string", "minLength": 2, "maxLength": 3}});
    assert!(spec_errors(p.clone(), json!({"s": "äöü"})).is_empty());
    assert_eq!(
        spec_errors(p.clone(), json!({"s": "äöüß"})),
        vec!["spec.s: Too long: may not be more than 3 bytes"]
    );
    assert_eq!(
        spec_errors(p, json!({"s": "ä"})),
        vec!["spec.s: Invalid value: \"ä\": spec.s in body should be at least 2 chars long"]
    );
}

#[test]
fn validates_numeric_bounds() {
    let p = json!({
        "size": {"type": "integer", "minimum": 1, "maximum": 10},
        "ex": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1.5, "exclusiveMaximum": true},
        "step": {"type": "integer", "multipleOf": 5},
        "frac": {"type": "number", "multipleOf": 0.5}
    });
    assert!(
        spec_errors(
            p.clone(),
            json!({"size": 10, "ex": 1.2, "step": 15, "frac": 2.5})
        )
        .is_empty()
    );
    // kube-openapi compares an integer value with the bound converted to int64 (1.5 -> 1).
    assert_eq!(
        spec_errors(p.clone(), json!({"ex": 1})),
        vec!["spec.ex: Invalid value: 1: spec.ex in body should be less than 1"]
    );
    assert_eq!(
        spec_errors(
            p.clone(),
            json!({"size": 11, "ex": 1.5, "step": 7, "frac": 0.3})
        ),
        vec![
            "spec.ex: Invalid value: 1.5: spec.ex in body should be less than 1.5",
            "spec.frac: Invalid value: 0.3: spec.frac in body should be a multiple of 0.5",
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
            "spec.step: Invalid value: 7: spec.step in body should be a multiple of 5",
        ]
    );
    assert_eq!(
        spec_errors(p, json!({"size": 0, "ex": 0})),
        vec![
            "spec.ex: Invalid value: 0: spec.ex in body should be greater than 0",
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ]
    );
}

#[test]
fn validates_item_and_property_counts() {
    let p = json!({
        "l": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3},
        "m": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1, "maxProperties": 2}
    });
    assert!(spec_errors(p.clone(), json!({"l": ["a", "b"], "m": {"a": "1"}})).is_empty());
    assert_eq!(
        spec_errors(p.clone(), json!({"l": ["a"], "m": {}})),
        vec![
            "spec.l: Invalid value: 1: spec.l in body should have at least 2 items",
            "spec.m: Invalid value: 0: spec.m in body should have at least 1 properties",
        ]
    );
    assert_eq!(
        spec_errors(
            p,
            json!({"l": ["a", "b", "c", "d"], "m": {"a": "1", "b": "2", "c": "3"}})
        ),
        vec![
            "spec.l: Too many: 4: must have at most 3 items",
            "spec.m: Too many: 3: must have at most 2 items"
        ]
    );
}

#[test]
fn validates_unique_items() {
    // CRDs may not declare uniqueItems; the validator still implements it.
    let s = Structural::unchecked(&props(json!({"type": "object", "properties": {
        "l": {"type": "array", "items": {"type": "integer"}, "uniqueItems": true}
    }})));
    assert!(errors(&s, json!({"l": [1, 2]})).is_empty());
    assert_eq!(
        errors(&s, json!({"l": [1, 2, 1]})),
        vec!["l: Invalid value: \"\": l in body shouldn't contain duplicates"]
    );
}

#[test]
fn validates_required_and_nested_paths() {
    let s = compile(
        json!({"type": "object", "required": ["spec"], "properties": {"spec": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "list": {"type": "array", "items": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "integer", "maximum": 5}
                }}},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}}
            }
        }}}),
    );
    assert_eq!(
        errors(&s, json!({"kind": "K"})),
        vec!["spec: Required value"]
    );
    assert_eq!(
        errors(
            &s,
            json!({"spec": {"list": [{"id": 1}, {}, {"id": 9}], "labels": {"app.kubernetes.io/x": "long"}}})
        ),
        vec![
            "spec.list[1].id: Required value",
            "spec.list[2].id: Invalid value: 9: spec.list[2].id in body should be less than or equal to 5",
            "spec.labels.app.kubernetes.io/x: Too long: may not be more than 3 bytes",
            "spec.name: Required value",
        ]
    );
}

#[test]
fn validates_additional_properties_false() {
    let s = compile(spec(
        json!({"m": {"type": "object", "additionalProperties": false}}),
    ));
    assert_eq!(
        errors(&s, json!({"spec": {"m": {"x": 1}}})),
        vec!["spec.m: Invalid value: \"x\": spec.m.x in body is a forbidden property"]
    );
}

#[test]
fn validates_logical_junctors() {
    let p = json!({
        "any": {"type": "string", "anyOf": [{"maxLength": 2}, {"pattern": "^x"}]},
        "one": {"type": "integer", "oneOf": [{"minimum": 5}, {"maximum": 10}]},
        "all": {"type": "integer", "allOf": [{"minimum": 5}, {"maximum": 10}]},
        "not": {"type": "string", "not": {"enum": ["bad"]}}
    });
    assert!(
        spec_errors(
            p.clone(),
            json!({"any": "xyz", "one": 11, "all": 7, "not": "good"})
        )
        .is_empty()
    );
    assert_eq!(
        spec_errors(p.clone(), json!({"any": "abc"})),
        vec![
            "<nil>: Invalid value: \"\": \"spec.any\" must validate at least one schema (anyOf)",
            "spec.any: Too long: may not be more than 2 bytes",
        ]
    );
    assert_eq!(
        spec_errors(p.clone(), json!({"one": 7})),
        vec![
            "<nil>: Invalid value: \"\": \"spec.one\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
        ]
    );
    assert_eq!(
        spec_errors(p.clone(), json!({"all": 11})),
        vec![
            "<nil>: Invalid value: \"\": \"spec.all\" must validate all the schemas (allOf)",
            "spec.all: Invalid value: 11: spec.all in body should be less than or equal to 10",
        ]
    );
    assert_eq!(
        spec_errors(p, json!({"not": "bad"})),
        vec!["<nil>: Invalid value: \"\": \"spec.not\" must not validate the schema (not)"]
    );
}

#[test]
fn validates_int_or_string() {
    let p = json!({"port": {
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": "^[a-z]+$"
    }});
    assert!(spec_errors(p.clone(), json!({"port": 80})).is_empty());
    assert!(spec_errors(p.clone(), json!({"port": "http"})).is_empty());
    let errs = errors(&compile(spec(p)), json!({"spec": {"port": true}}));
    assert_eq!(
        errs[0],
        "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
    );
    assert!(
        errs.contains(
            &"<nil>: Invalid value: \"\": \"spec.port\" must validate at least one schema (anyOf)"
                .to_string()
        )
    );
}

#[test]
fn validates_list_set_and_map_duplicates() {
    let s = compile(spec(json!({
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
            "items": {"type": "object", "required": ["port"], "properties": {
                "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}
            }}
        },
        "byName": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
        }
    })));
    let obj = json!({"spec": {
        "set": ["a", "b", "a", "a"],
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}, {"port": 80, "protocol": "TCP"}],
        "byName": [{"name": "x"}, {"name": "x"}]
    }});
    assert_eq!(
        errors(&s, obj),
        vec![
            "spec.set[2]: Duplicate value: \"a\"",
            "spec.ports[2]: Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}",
            "spec.byName[1]: Duplicate value: {\"name\":\"x\"}",
        ]
    );
}

#[test]
fn validates_embedded_resources() {
    let s = compile(spec(json!({"template": {
        "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true
    }})));
    assert!(errors(&s, json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}})).is_empty());
    assert_eq!(
        errors(
            &s,
            json!({"spec": {"template": {"metadata": {"name": "a/b"}}}})
        ),
        vec![
            "spec.template.apiVersion: Required value",
            "spec.template.kind: Required value",
            "spec.template.metadata.name: Invalid value: \"a/b\": may not contain '/'",
        ]
    );
    assert_eq!(
        errors(
            &s,
            json!({"spec": {"template": {"apiVersion": "a/b/c", "kind": "Bad_Kind"}}})
        ),
        vec![
            "spec.template.apiVersion: Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c",
            "spec.template.kind: Invalid value: \"Bad_Kind\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ]
    );
    assert_eq!(
        errors(
            &s,
            json!({"spec": {"template": {"apiVersion": 1, "kind": ""}}})
        ),
        vec![
            "spec.template.apiVersion: Invalid value: 1: must be a string",
            "spec.template.kind: Invalid value: \"\": must not be empty",
        ]
    );
    assert_eq!(
        errors(
            &s,
            json!({"spec": {"template": {"apiVersion": "", "kind": false}}})
        ),
        vec![
            "spec.template.apiVersion: Invalid value: \"\": must not be empty",
            "spec.template.kind: Invalid value: false: must be a string",
        ]
    );
}

#[test]
fn validates_embedded_object_meta() {
    let s = compile(spec(json!({"template": {
        "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true
    }})));
    let embedded = |meta: Value| json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": meta}}});
    assert_eq!(
        errors(&s, embedded(json!({"name": 5}))),
        vec![
            "spec.template.metadata: Invalid value: {\"name\":5}: json: cannot unmarshal number into Go struct field ObjectMeta.name of type string"
        ]
    );
    assert_eq!(
        errors(&s, embedded(json!("x"))),
        vec![
            "spec.template.metadata: Invalid value: \"x\": json: cannot unmarshal string into Go value of type v1.ObjectMeta"
        ]
    );
    assert_eq!(
        errors(
            &s,
            embedded(json!({"namespace": "a.b", "labels": {"ok": "yes", "/x": "-bad"}}))
        ),
        vec![
            "spec.template.metadata.namespace: Invalid value: \"a.b\": must not contain dots",
            "spec.template.metadata.labels: Invalid value: \"/x\": prefix part must be non-empty",
            "spec.template.metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ]
    );
}

#[test]
fn validates_root_metadata_name_restrictions_only() {
    let s = compile(
        json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 5}
        }}}}),
    );
    assert!(
        errors(
            &s,
            json!({"metadata": {"name": "abc", "labels": {"a": "b"}}})
        )
        .is_empty()
    );
    assert_eq!(
        errors(&s, json!({"metadata": {"name": "abcdef"}})),
        vec!["metadata.name: Too long: may not be more than 5 bytes"]
    );
}

#[test]
fn a_full_pipeline_on_a_thirty_field_schema() {
    let mut fields = serde_json::Map::new();
    let mut value = serde_json::Map::new();
    for i in 0..30 {
        fields.insert(
            format!("f{i}"),
            json!({"type": "string", "maxLength": 20, "default": "d"}),
        );
        if i % 2 == 0 {
            value.insert(format!("f{i}"), json!(format!("v{i}")));
        }
    }
    let s = compile(spec(Value::Object(fields)));
    let mut obj = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}, "spec": Value::Object(value)});
    s.default(&mut obj);
    assert!(s.prune(&mut obj).is_empty());
    assert!(s.validate(&obj).is_empty());
    assert_eq!(obj["spec"].as_object().map(|m| m.len()), Some(30));
    assert_eq!(obj["spec"]["f1"], json!("d"));
}

#[test]
fn compiled_schemas_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>(_: &T) -> bool {
        true
    }
    assert!(shared(&compile(spec(
        json!({"a": {"type": "string", "pattern": "^a"}})
    ))));
}

#[test]
fn null_never_matches_an_enum() {
    let s = compile(spec(
        json!({"mode": {"type": "string", "nullable": true, "enum": ["a", null]}}),
    ));
    assert!(errors(&s, json!({"spec": {"mode": "a"}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"mode": null}})),
        vec!["spec.mode: Unsupported value: null: supported values: \"a\", \"null\""]
    );
}
