//! Static and runtime cost limits.

use serde_json::{Value, json};

use super::*;
use crate::compile;

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

    // Loops over literal lists are metered too, map and filter included.
    let hundred = format!(
        "[{}]",
        (0..100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for expr in [
        format!("{hundred}.map(a, {hundred}.map(b, {hundred}.map(c, a + b + c))).size() > 0"),
        format!(
            "{hundred}.filter(a, {hundred}.filter(b, {hundred}.filter(c, c < 0).size() > 0).size() > 0).size() > 0"
        ),
        format!("{hundred}.all(a, {hundred}.all(b, {hundred}.all(c, c >= 0)))"),
    ] {
        let err = compile(&expr, &[]).unwrap().eval(&[]).unwrap_err();
        assert_eq!(
            err, "operation cancelled: actual cost limit exceeded",
            "{expr}"
        );
    }
    let small = compile("[1, 2, 3].map(x, x * 2).filter(x, x > 2) == [4, 6]", &[]).unwrap();
    assert!(small.eval_bool(&[]).unwrap());

    // Building big strings in a loop is charged by size, so it stops before using much memory.
    let big = json!({"items": (0..1000).collect::<Vec<_>>(), "s": "x".repeat(1 << 20)});
    let p = compile(
        "object.items.map(x, object.s + object.s).size() > 0",
        &["object"],
    )
    .unwrap();
    let err = p.eval(&[("object", &big)]).unwrap_err();
    assert_eq!(err, "operation cancelled: actual cost limit exceeded");

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

/// Not a unit test: `cargo test -p rkube-cel --release -- --ignored --nocapture timing`.
#[test]
#[ignore]
fn timing() {
    let r = rules(replicas_spec(
        json!({"rule": "self.minReplicas <= self.replicas"}),
    ));
    let r2 = rules(with_spec(json!({
        "type": "object",
        "properties": {"minReplicas": {"type": "integer"}, "replicas": {"type": "integer"}, "name": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.replicas"},
            {"rule": "self.name.size() < 64", "message": "name too long"}
        ]
    })));
    let obj = json!({
        "apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {"minReplicas": 1, "replicas": 3, "name": "hello"}
    });
    for (label, r) in [("one rule", &r), ("two rules", &r2)] {
        let n = 100_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            assert!(r.validate(&obj, None).is_empty());
        }
        println!("{label}: {:?} per validate", start.elapsed() / n);
    }
    let two_rules = schema(with_spec(json!({
        "type": "object",
        "properties": {"minReplicas": {"type": "integer"}, "replicas": {"type": "integer"}, "name": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.replicas"},
            {"rule": "self.name.size() < 64", "message": "name too long"}
        ]
    })));
    let n = 1000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        assert!(Rules::new(&two_rules, ROOT).is_ok());
    }
    println!("compile two rules: {:?} per CRD", start.elapsed() / n);
}
