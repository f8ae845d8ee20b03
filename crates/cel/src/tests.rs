//! Behaviour tests: CRD rules end to end, the libraries, cost limits and the general API.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Value, json};

use crate::{CompileError, Reason, Rules, Violation, compile};

const ROOT: &str = "spec.validation.openAPIV3Schema";

fn schema(v: Value) -> JSONSchemaProps {
    serde_json::from_value(v).unwrap()
}

fn rules(v: Value) -> Rules {
    Rules::new(&schema(v), ROOT).unwrap()
}

fn compile_errors(v: Value) -> Vec<CompileError> {
    Rules::new(&schema(v), ROOT).unwrap_err()
}

/// A root object with `spec` of the given schema.
fn with_spec(spec: Value) -> Value {
    json!({"type": "object", "properties": {"spec": spec}})
}

fn invalid(field: &str, ty: &str, message: &str) -> Violation {
    Violation {
        field: field.into(),
        reason: Reason::FieldValueInvalid,
        message: message.into(),
        value: Some(json!(ty)),
    }
}

fn replicas_spec(rule: Value) -> Value {
    with_spec(json!({
        "type": "object",
        "properties": {
            "minReplicas": {"type": "integer"},
            "replicas": {"type": "integer"},
            "name": {"type": "string"}
        },
        "x-kubernetes-validations": [rule]
    }))
}

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

/// Evaluates a boolean expression with no variables.
fn eval(expr: &str) -> bool {
    match compile(expr, &[]).and_then(|p| p.eval_bool(&[])) {
        Ok(b) => b,
        Err(e) => panic!("{expr}: {e}"),
    }
}

fn eval_err(expr: &str) -> String {
    compile(expr, &[]).and_then(|p| p.eval(&[])).unwrap_err()
}

#[test]
fn lists_library() {
    for e in [
        "[1, 2, 3].isSorted()",
        "!([3, 1].isSorted())",
        "['a', 'b'].isSorted()",
        "[1, 2, 3].sum() == 6",
        "[1.0, 2.5].sum() == 3.5",
        "[].sum() == 0",
        "[duration('1s'), duration('2s')].sum() == duration('3s')",
        "[3, 1, 2].min() == 1",
        "[3, 1, 2].max() == 3",
        "['b', 'a'].min() == 'a'",
        "[1, 2, 2, 3].indexOf(2) == 1",
        "[1, 2, 2, 3].lastIndexOf(2) == 2",
        "['a'].indexOf('z') == -1",
    ] {
        assert!(eval(e), "{e}");
    }
    assert!(eval_err("[].min()").contains("min called on empty list"));
}

#[test]
fn regex_library() {
    for e in [
        "'abc 123'.find('[0-9]+') == '123'",
        "'abc'.find('[0-9]+') == ''",
        "'123 abc 456'.findAll('[0-9]+') == ['123', '456']",
        "'123 abc 456'.findAll('[0-9]+', 1) == ['123']",
        "'123 abc 456'.findAll('[0-9]+', -1) == ['123', '456']",
        "'abc'.matches('^a.c$')",
    ] {
        assert!(eval(e), "{e}");
    }
}

#[test]
fn urls_library() {
    for e in [
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getScheme() == 'https'",
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getHost() == 'kubernetes.io:80'",
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getHostname() == 'kubernetes.io'",
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getPort() == '80'",
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getEscapedPath() == '/path'",
        "url('https://kubernetes.io/?k=a&k=b&x=%20y').getQuery() == {'k': ['a', 'b'], 'x': [' y']}",
        "url('https://[::1]:80/').getHostname() == '::1'",
        "url('https://[::1]/').getHost() == '[::1]'",
        "url('https://[::1]/').getPort() == ''",
        "url('/path').getScheme() == ''",
        "url('https://example.com/path with spaces/').getEscapedPath() == '/path%20with%20spaces/'",
        "isURL('https://kubernetes.io/')",
        "isURL('/absolute-path')",
        "!isURL('../relative-path')",
        "!isURL('https://kubernetes.io/%')",
        "!isURL('://example.com')",
        "!isURL('')",
    ] {
        assert!(eval(e), "{e}");
    }
    assert!(eval_err("url('../x')").contains("URL parse error during conversion from string"));
}

#[test]
fn quantity_library() {
    for e in [
        "quantity('50M').isLessThan(quantity('50Mi'))",
        "quantity('50Mi').isGreaterThan(quantity('50M'))",
        "quantity('1').compareTo(quantity('2')) == -1",
        "quantity('2').compareTo(quantity('2000m')) == 0",
        "quantity('1Ki').asInteger() == 1024",
        "quantity('1Ki').isInteger()",
        "!quantity('1.5').isInteger()",
        "quantity('200m').asApproximateFloat() == 0.2",
        "quantity('50k').add(quantity('20')) == quantity('50.02k')",
        "quantity('50k').add(20) == quantity('50020')",
        "quantity('50k').sub(quantity('20')) == quantity('49980')",
        "quantity('50k').sub(20).isInteger()",
        "quantity('-1').sign() == -1",
        "quantity('0').sign() == 0",
        "quantity('10Gi').sign() == 1",
        "isQuantity('20Mi')",
        "isQuantity('1e3')",
        "!isQuantity('1.5.5')",
        "!isQuantity('abc')",
        "!isQuantity(' 1')",
    ] {
        assert!(eval(e), "{e}");
    }
    assert!(eval_err("quantity('1.5').asInteger()").contains("cannot convert value to integer"));
    assert!(eval_err("quantity('x')").contains("quantities must match the regular expression"));
}

#[test]
fn strings_library_and_builtins() {
    for e in [
        "'hello'.charAt(1) == 'e'",
        "'hello'.indexOf('l') == 2",
        "'hello'.lastIndexOf('l') == 3",
        "'TacoCat'.lowerAscii() == 'tacocat'",
        "'TacoCat'.upperAscii() == 'TACOCAT'",
        "'aaa'.replace('a', 'b') == 'bbb'",
        "'a,b'.split(',') == ['a', 'b']",
        "'hello'.substring(1, 3) == 'el'",
        "'  x '.trim() == 'x'",
        "['a', 'b'].join('-') == 'a-b'",
        "size([1, 2]) == 2 && size('abc') == 3",
        "has({'a': 1}.a) && !has({'a': 1}.b)",
        "'abc'.startsWith('a') && 'abc'.endsWith('c') && 'abc'.contains('b')",
        "[1, 2].all(x, x > 0) && [1, 2].exists(x, x == 2) && [1, 2].exists_one(x, x == 1)",
        "[1, 2].map(x, x * 2) == [2, 4] && [1, 2].filter(x, x > 1) == [2]",
    ] {
        assert!(eval(e), "{e}");
    }
}

#[test]
fn general_api() {
    let p = compile(
        "object.spec.replicas <= params.maxReplicas",
        &["object", "oldObject", "params"],
    )
    .unwrap();
    assert!(p.uses("object") && p.uses("params") && !p.uses("oldObject"));
    let object = json!({"spec": {"replicas": 3}});
    assert!(
        p.eval_bool(&[("object", &object), ("params", &json!({"maxReplicas": 5}))])
            .unwrap()
    );
    assert!(
        !p.eval_bool(&[("object", &object), ("params", &json!({"maxReplicas": 2}))])
            .unwrap()
    );

    let msg = compile("'replicas: ' + string(object.spec.replicas)", &["object"]).unwrap();
    assert_eq!(
        msg.eval_string(&[("object", &object)]).unwrap(),
        "replicas: 3"
    );
    let v = compile("object.spec", &["object"]).unwrap();
    assert_eq!(
        v.eval(&[("object", &object)]).unwrap(),
        json!({"replicas": 3})
    );
    assert_eq!(
        compile("quantity('1.5Gi')", &[])
            .unwrap()
            .eval(&[])
            .unwrap(),
        json!("1610612736")
    );

    let err = compile("object.x == request.y", &["object"]).unwrap_err();
    assert_eq!(
        err,
        "ERROR: <input>:1:13: undeclared reference to 'request' (in container '')"
    );
    assert!(
        compile("object.", &["object"])
            .unwrap_err()
            .starts_with("ERROR: <input>:1:")
    );
}

#[test]
fn runtime_cost_limit_stops_expensive_expressions() {
    // 3000 × 3000 iterations: far over the per-call limit; must end quickly with an error.
    let items: Vec<Value> = (0..3000).map(Value::from).collect();
    let object = json!({"items": items});
    let p = compile(
        "object.items.all(x, object.items.all(y, x != y || x == y))",
        &["object"],
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = p.eval(&[("object", &object)]).unwrap_err();
    assert_eq!(err, "operation cancelled: actual cost limit exceeded");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // The same in a CRD rule, with maxItems low enough to pass the static estimate.
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {"items": {"type": "array", "maxItems": 600, "items": {"type": "integer"}}},
        "x-kubernetes-validations": [{"rule": "self.items.all(x, self.items.all(y, x != y || x == y))"}]
    })));
    let items: Vec<Value> = (0..600).map(Value::from).collect();
    let v = r.validate(&json!({"spec": {"items": items}}), None);
    assert_eq!(
        v,
        vec![invalid(
            "spec",
            "object",
            "'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.items.all(x, self.items.all(y, x != y || x == y))"
        )]
    );
}

#[test]
fn runtime_budget_spans_rules() {
    // Each item's rule costs ~630k; 20 items exceed the 10M budget for the object.
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {"lists": {
            "type": "array", "maxItems": 20,
            "items": {
                "type": "array", "maxItems": 300, "items": {"type": "integer"},
                "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, true))"}]
            }
        }}
    })));
    let list: Vec<Value> = (0..300).map(Value::from).collect();
    let lists: Vec<Value> = (0..20).map(|_| Value::from(list.clone())).collect();
    let v = r.validate(&json!({"spec": {"lists": lists}}), None);
    let last = v.last().unwrap();
    assert_eq!(
        last.message,
        "validation failed due to running out of cost budget, no further validation rules will be run"
    );
}

#[test]
fn static_cost_limit_rejects_unbounded_rules() {
    let errs = compile_errors(with_spec(json!({
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "string"}}},
        "x-kubernetes-validations": [{"rule": "self.items.all(x, self.items.all(y, x == y))"}]
    })));
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].field,
        format!("{ROOT}.properties[spec].x-kubernetes-validations[0].rule")
    );
    assert_eq!(errs[0].reason, Reason::FieldValueForbidden);
    assert!(errs[0].message.starts_with(
        "estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule"
    ));
    // Bounded, it compiles.
    rules(with_spec(json!({
        "type": "object",
        "properties": {"items": {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 64}}},
        "x-kubernetes-validations": [{"rule": "self.items.all(x, self.items.all(y, x == y))"}]
    })));
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
