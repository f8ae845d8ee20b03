//! CRD validation rules: semantics, messages, field paths, compile errors.

use serde_json::{Value, json};

use super::*;
use crate::{Reason, Violation};

#[test]
fn object_rule() {
    let r = rules(replicas_spec(
        json!({"rule": "self.minReplicas <= self.replicas"}),
    ));
    assert!(!r.is_empty());
    assert!(
        r.validate(&json!({"spec": {"minReplicas": 1, "replicas": 3}}), None)
            .is_empty()
    );
    assert_eq!(
        r.validate(&json!({"spec": {"minReplicas": 5, "replicas": 3}}), None),
        vec![invalid(
            "spec",
            "object",
            "failed rule: self.minReplicas <= self.replicas"
        )]
    );
    // A missing field is an evaluation error, reported as upstream words it.
    assert_eq!(
        r.validate(&json!({"spec": {"replicas": 3}}), None),
        vec![invalid(
            "spec",
            "object",
            "no such key: minReplicas evaluating rule: self.minReplicas <= self.replicas"
        )]
    );
}

#[test]
fn rule_at_the_root_reports_nil_field() {
    let r = rules(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        "x-kubernetes-validations": [{"rule": "self.spec.x > 0", "message": "x must be positive"}]
    }));
    assert_eq!(
        r.validate(&json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"x": 0}}), None),
        vec![invalid("<nil>", "object", "x must be positive")]
    );
}

#[test]
fn no_rules_is_empty() {
    let r = rules(with_spec(json!({"type": "object"})));
    assert!(r.is_empty());
    assert!(r.validate(&json!({"spec": {}}), None).is_empty());
}

#[test]
fn transition_rule() {
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "Value is immutable"}]
            }
        }
    })));
    let new = json!({"spec": {"name": "a"}});
    // Skipped on create: no oldSelf.
    assert!(r.validate(&new, None).is_empty());
    assert!(
        r.validate(&new, Some(&json!({"spec": {"name": "a"}})))
            .is_empty()
    );
    assert_eq!(
        r.validate(&new, Some(&json!({"spec": {"name": "b"}}))),
        vec![invalid("spec.name", "string", "Value is immutable")]
    );
}

#[test]
fn optional_old_self() {
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "x-kubernetes-validations": [{
            "rule": "!oldSelf.hasValue() || self.n >= oldSelf.value().n",
            "optionalOldSelf": true,
            "message": "n may not decrease"
        }]
    })));
    assert!(r.validate(&json!({"spec": {"n": 1}}), None).is_empty());
    assert_eq!(
        r.validate(&json!({"spec": {"n": 1}}), Some(&json!({"spec": {"n": 2}}))),
        vec![invalid("spec", "object", "n may not decrease")]
    );
}

#[test]
fn message_expression() {
    let r = rules(replicas_spec(json!({
        "rule": "self.replicas < 10",
        "messageExpression": "'replicas ' + string(self.replicas) + ' is too many'",
        "message": "static"
    })));
    assert_eq!(
        r.validate(&json!({"spec": {"replicas": 12}}), None),
        vec![invalid("spec", "object", "replicas 12 is too many")]
    );
    // A messageExpression that fails falls back to the message.
    let r = rules(replicas_spec(json!({
        "rule": "self.replicas < 10",
        "messageExpression": "self.name",
        "message": "static"
    })));
    assert_eq!(
        r.validate(&json!({"spec": {"replicas": 12}}), None),
        vec![invalid("spec", "object", "static")]
    );
}

#[test]
fn reason_and_field_path() {
    let r = rules(replicas_spec(json!({
        "rule": "self.replicas < 10",
        "reason": "FieldValueForbidden",
        "fieldPath": ".replicas",
        "message": "too many"
    })));
    assert_eq!(
        r.validate(&json!({"spec": {"replicas": 12}}), None),
        vec![Violation {
            field: "spec.replicas".into(),
            reason: Reason::FieldValueForbidden,
            message: "too many".into(),
            value: None
        }]
    );
    let r = rules(replicas_spec(
        json!({"rule": "false", "reason": "FieldValueRequired"}),
    ));
    assert_eq!(
        r.validate(&json!({"spec": {}}), None)[0].reason,
        Reason::FieldValueRequired
    );
    let r = rules(replicas_spec(
        json!({"rule": "false", "reason": "FieldValueDuplicate"}),
    ));
    assert_eq!(
        r.validate(&json!({"spec": {}}), None),
        vec![Violation {
            field: "spec".into(),
            reason: Reason::FieldValueDuplicate,
            message: String::new(),
            value: Some(json!("object"))
        }]
    );
}

fn lists_spec(rule: &str) -> Value {
    with_spec(json!({
        "type": "object",
        "properties": {
            "a": {"type": "array", "maxItems": 100, "items": {"type": "integer"}, "x-kubernetes-list-type": "set"},
            "b": {"type": "array", "maxItems": 100, "items": {"type": "integer"}, "x-kubernetes-list-type": "set"},
            "atomic": {"type": "array", "maxItems": 100, "items": {"type": "integer"}},
            "m": {
                "type": "array", "maxItems": 100,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}
            },
            "n": {
                "type": "array", "maxItems": 100,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}
            }
        },
        "x-kubernetes-validations": [{"rule": rule}]
    }))
}

fn passes(rule: &str, spec: Value) -> bool {
    rules(lists_spec(rule))
        .validate(&json!({"spec": spec}), None)
        .is_empty()
}

#[test]
fn list_set_and_map_semantics() {
    let spec = json!({
        "a": [1, 2], "b": [2, 1], "atomic": [2, 1],
        "m": [{"name": "x", "v": 1}, {"name": "y", "v": 2}],
        "n": [{"name": "y", "v": 2}, {"name": "x", "v": 1}]
    });
    assert!(passes("self.a == self.b", spec.clone()));
    // Equality takes the left operand's list type.
    assert!(passes("self.a == self.atomic", spec.clone()));
    assert!(!passes("self.atomic == self.a", spec.clone()));
    assert!(passes("self.atomic == [2, 1]", spec.clone()));
    assert!(passes("[2, 1] == self.atomic", spec.clone()));
    assert!(passes("self.m == self.n", spec.clone()));
    assert!(passes("self.a + [2, 3] == [1, 2, 3]", spec.clone()));
    assert!(passes("self.atomic + [2] == [2, 1, 2]", spec.clone()));
    assert!(passes(
        "size(self.m + [{'name': 'x', 'v': 5}]) == 2",
        spec.clone()
    ));
    assert!(passes(
        "2 in self.a && self.m.exists(e, e.name == 'y' && e.v == 2)",
        spec.clone()
    ));
    assert!(passes("self.m.map(e, e.name) == ['x', 'y']", spec.clone()));
    assert!(passes(
        "self.a.all(x, x > 0) && self.a.exists_one(x, x == 1)",
        spec
    ));
}

#[test]
fn map_list_items_correlate_with_old_items() {
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {
            "m": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "v": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "may not decrease"}]}
                    }
                }
            }
        }
    })));
    let old = json!({"spec": {"m": [{"name": "x", "v": 5}, {"name": "y", "v": 1}]}});
    let new = json!({"spec": {"m": [{"name": "y", "v": 1}, {"name": "x", "v": 4}, {"name": "z", "v": 0}]}});
    assert_eq!(
        r.validate(&new, Some(&old)),
        vec![invalid("spec.m[1].v", "integer", "may not decrease")]
    );
}

#[test]
fn int_or_string_and_formats() {
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": true},
            "at": {"type": "string", "format": "date-time"},
            "every": {"type": "string", "format": "duration"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "my-field": {"type": "string"}
        },
        "x-kubernetes-validations": [
            {"rule": "self.port == 80 || self.port == 'http'", "message": "port"},
            {"rule": "self.at < timestamp('2030-01-01T00:00:00Z')", "message": "at"},
            {"rule": "self.every >= duration('1m')", "message": "every"},
            {"rule": "!('forbidden' in self.labels) && self.labels.all(k, self.labels[k] != '')", "message": "labels"},
            {"rule": "self.my__dash__field.startsWith('x')", "message": "escaped"}
        ]
    })));
    let ok = json!({"spec": {
        "port": 80, "at": "2024-05-01T10:00:00Z", "every": "1h30m",
        "labels": {"a": "b"}, "my-field": "xyz"
    }});
    assert!(r.validate(&ok, None).is_empty());
    let named = json!({"spec": {
        "port": "http", "at": "2024-05-01T10:00:00Z", "every": "1h30m",
        "labels": {"a": "b"}, "my-field": "xyz"
    }});
    assert!(r.validate(&named, None).is_empty());
    let bad = json!({"spec": {
        "port": "https", "at": "2031-01-01T00:00:00+02:00", "every": "30s",
        "labels": {"forbidden": "x"}, "my-field": "abc"
    }});
    let messages: Vec<String> = r
        .validate(&bad, None)
        .into_iter()
        .map(|v| v.message)
        .collect();
    assert_eq!(messages, ["port", "at", "every", "labels", "escaped"]);

    // int-or-string bypasses type checking upstream too: a mismatch is a runtime error.
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {"port": {"x-kubernetes-int-or-string": true}},
        "x-kubernetes-validations": [{"rule": "self.port > 0"}]
    })));
    assert_eq!(
        r.validate(&json!({"spec": {"port": "http"}}), None),
        vec![invalid(
            "spec",
            "object",
            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: self.port > 0"
        )]
    );
}

#[test]
fn ratcheting_keeps_unchanged_values_valid() {
    let r = rules(replicas_spec(json!({"rule": "self.replicas < 10"})));
    let obj = json!({"spec": {"replicas": 12}});
    assert_eq!(r.validate(&obj, None).len(), 1);
    assert!(r.validate(&obj, Some(&obj.clone())).is_empty());
    assert_eq!(
        r.validate(&obj, Some(&json!({"spec": {"replicas": 11}})))
            .len(),
        1
    );
}

#[test]
fn rules_and_programs_are_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Rules>();
    send_sync::<crate::Program>();
}

#[test]
fn object_immutability_and_optional_fields() {
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "spec is immutable"},
            {"rule": "self.?b.orValue('x') != 'bad' && (!has(self.a) || self.a > 0)", "message": "b or a"}
        ]
    })));
    let obj = json!({"spec": {"a": 1}});
    assert!(r.validate(&obj, None).is_empty());
    assert!(
        r.validate(&obj, Some(&json!({"spec": {"a": 1}})))
            .is_empty()
    );
    assert_eq!(
        r.validate(&obj, Some(&json!({"spec": {"a": 2}}))),
        vec![invalid("spec", "object", "spec is immutable")]
    );
    assert_eq!(
        r.validate(&json!({"spec": {"a": 0, "b": "bad"}}), None),
        vec![invalid("spec", "object", "b or a")]
    );
}

#[test]
fn resource_root_sees_name_not_other_metadata() {
    let root = |rule: &str| {
        json!({
            "type": "object",
            "properties": {"spec": {"type": "object"}},
            "x-kubernetes-validations": [{"rule": rule}]
        })
    };
    let r = rules(root(
        "self.metadata.name.startsWith('ok-') && self.kind == 'Widget'",
    ));
    let obj = |name: &str| json!({"apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {}});
    assert!(r.validate(&obj("ok-1"), None).is_empty());
    assert_eq!(r.validate(&obj("bad"), None).len(), 1);
    let errs = compile_errors(root("has(self.metadata.labels)"));
    assert!(
        errs[0].message.contains("undefined field 'labels'"),
        "{}",
        errs[0].message
    );
}

#[test]
fn preserve_unknown_fields_are_not_fields() {
    let spec = |rule: &str| {
        with_spec(json!({
            "type": "object",
            "properties": {
                "known": {"type": "string"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            },
            "x-kubernetes-preserve-unknown-fields": true,
            "x-kubernetes-validations": [{"rule": rule}]
        }))
    };
    rules(spec("self.known != '' && has(self.free)"));
    for rule in ["self.other == 1", "self.free.x == 1", "has(self.free.x)"] {
        let errs = compile_errors(spec(rule));
        assert!(
            errs[0].message.contains("undefined field"),
            "{rule}: {}",
            errs[0].message
        );
    }
}

#[test]
fn compile_errors_name_the_rule() {
    let errs = compile_errors(replicas_spec(json!({"rule": "self.replicas <"})));
    assert_eq!(
        errs[0].field,
        format!("{ROOT}.properties[spec].x-kubernetes-validations[0].rule")
    );
    assert_eq!(errs[0].reason, Reason::FieldValueInvalid);
    assert!(
        errs[0]
            .message
            .starts_with("compilation failed: ERROR: <input>:1:"),
        "{}",
        errs[0].message
    );

    let errs = compile_errors(replicas_spec(json!({"rule": "self.nope > 1"})));
    assert_eq!(
        errs[0].message,
        "compilation failed: ERROR: <input>:1:5: undefined field 'nope'"
    );
    let errs = compile_errors(replicas_spec(json!({"rule": "foo > 1"})));
    assert_eq!(
        errs[0].message,
        "compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')"
    );
    let errs = compile_errors(replicas_spec(json!({"rule": "true", "reason": "Bogus"})));
    assert_eq!(
        errs[0].field,
        format!("{ROOT}.properties[spec].x-kubernetes-validations[0].reason")
    );
    assert_eq!(errs[0].reason, Reason::FieldValueNotSupported);
    let errs = compile_errors(replicas_spec(json!({"rule": "true", "fieldPath": ".nope"})));
    assert_eq!(
        errs[0].message,
        "fieldPath must be a valid path: does not refer to a valid field"
    );
    let errs = compile_errors(replicas_spec(
        json!({"rule": "true", "messageExpression": "'a' +"}),
    ));
    assert!(
        errs[0]
            .message
            .starts_with("messageExpression compilation failed: ERROR:")
    );

    // Transition rules need an old value to compare with: not under a set list.
    let errs = compile_errors(with_spec(json!({
        "type": "array",
        "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}
    })));
    assert_eq!(
        errs[0].message,
        format!(
            "oldSelf cannot be used on the uncorrelatable portion of the schema within {ROOT}.properties[spec].items"
        )
    );
}

#[test]
fn indexing_data_lists() {
    // A list read from the object is an owned value the interpreter indexes by moving the
    // element out (Gateway API's HTTPRoute rules do `self.matches[0].path`).
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {
            "matches": {"type": "array", "maxItems": 8, "items": {
                "type": "object",
                "properties": {"path": {"type": "object", "properties": {"type": {"type": "string"}}}}
            }},
            "tags": {"type": "array", "maxItems": 8, "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        },
        "x-kubernetes-validations": [
            {"rule": "size(self.matches) != 1 || !has(self.matches[0].path) || self.matches[0].path.type == 'PathPrefix'", "message": "m"},
            {"rule": "!has(self.tags) || self.tags[size(self.tags) - 1] != 'x'", "message": "t"},
            {"rule": "!has(self.tags) || !self.tags[?5].hasValue() || self.tags[?5].value() != ''", "message": "o"}
        ]
    })));
    let ok = json!({"spec": {"matches": [{"path": {"type": "PathPrefix"}}], "tags": ["a", "b"]}});
    assert!(r.validate(&ok, None).is_empty());
    assert!(
        r.validate(&json!({"spec": {"matches": [{}]}}), None)
            .is_empty()
    );
    assert_eq!(
        r.validate(
            &json!({"spec": {"matches": [{"path": {"type": "Exact"}}], "tags": ["x"]}}),
            None
        ),
        vec![
            invalid("spec", "object", "m"),
            invalid("spec", "object", "t")
        ]
    );
    let p = crate::compile("self.a[1].b + self.a.size()", &["self"]).unwrap();
    assert_eq!(
        p.eval(&[("self", &json!({"a": [{"b": 1}, {"b": 2}]}))]),
        Ok(json!(4))
    );
    assert_eq!(
        p.eval(&[("self", &json!({"a": [{"b": 1}]}))]),
        Err("index out of bounds: 1".to_owned())
    );
}
