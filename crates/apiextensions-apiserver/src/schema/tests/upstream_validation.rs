//! Tests: upstream's TestValidateCustomResource (pkg/apiserver/validation), as data.

use super::*;

/// Validates each object against `schema` (compiled without the CRD checks, as upstream's
/// test does) and compares the errors as a set.
fn upstream_case(schema: Value, ok: &[Value], failing: &[(Value, &[&str])]) {
    let s = Structural::unchecked(&props(schema));
    for obj in ok {
        assert_eq!(errors(&s, obj.clone()), Vec::<String>::new(), "{obj}");
    }
    for (obj, want) in failing {
        let mut got = errors(&s, obj.clone());
        got.sort();
        got.dedup();
        let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{obj}");
    }
}

fn type_failures(ty: &str, values: &[(Value, &str)]) -> Vec<(Value, Vec<String>)> {
    values
        .iter()
        .map(|(v, kind)| {
            (
                json!({"field": v}),
                vec![format!("field: Invalid value: \"{kind}\": field in body must be of type {ty}: \"{kind}\"")],
            )
        })
        .collect()
}

fn as_refs(cases: &[(Value, Vec<String>)]) -> Vec<(Value, Vec<&str>)> {
    cases
        .iter()
        .map(|(v, e)| (v.clone(), e.iter().map(String::as_str).collect()))
        .collect()
}

fn upstream_owned(schema: Value, ok: &[Value], failing: &[(Value, Vec<String>)]) {
    let refs = as_refs(failing);
    let failing: Vec<(Value, &[&str])> = refs
        .iter()
        .map(|(v, e)| (v.clone(), e.as_slice()))
        .collect();
    upstream_case(schema, ok, &failing);
}

#[test]
fn upstream_nullable_cases() {
    let kinds = [
        (json!("foo"), "string"),
        (json!(42), "integer"),
        (json!(true), "boolean"),
        (json!(1.2), "number"),
        (json!([]), "array"),
    ];
    let mut with_null = type_failures("object", &kinds);
    with_null.extend(type_failures("object", &[(Value::Null, "null")]));
    upstream_owned(
        json!({"type": "object", "properties": {"field": {"type": "object"}}}),
        &[json!({}), json!({"field": {}})],
        &with_null,
    );
    upstream_owned(
        json!({"type": "object", "properties": {"field": {"type": "object", "nullable": true}}}),
        &[json!({}), json!({"field": {}}), json!({"field": null})],
        &type_failures("object", &kinds),
    );
    upstream_owned(
        json!({"type": "object", "properties": {"field": {"nullable": true}}}),
        &[
            json!({}),
            json!({"field": {}}),
            json!({"field": null}),
            json!({"field": "foo"}),
            json!({"field": 42}),
            json!({"field": true}),
            json!({"field": 1.2}),
            json!({"field": []}),
        ],
        &[],
    );
}

#[test]
fn upstream_int_or_string_cases() {
    let kinds = [
        (json!(true), "boolean"),
        (json!(1.2), "number"),
        (json!({}), "object"),
        (json!([]), "array"),
    ];
    let mut with_null = type_failures("integer,string", &kinds);
    with_null.extend(type_failures("integer,string", &[(Value::Null, "null")]));
    upstream_owned(
        json!({"type": "object", "properties": {"field": {"x-kubernetes-int-or-string": true}}}),
        &[json!({}), json!({"field": 42}), json!({"field": "foo"})],
        &with_null,
    );
    upstream_owned(
        json!({"type": "object", "properties": {"field": {"x-kubernetes-int-or-string": true, "nullable": true}}}),
        &[
            json!({}),
            json!({"field": 42}),
            json!({"field": "foo"}),
            json!({"field": null}),
        ],
        &type_failures("integer,string", &kinds),
    );

    let any_of = |kind: &str, checked: bool| -> Vec<String> {
        let mut v = vec![
            "<nil>: Invalid value: \"\": \"field\" must validate at least one schema (anyOf)"
                .to_string(),
            format!(
                "field: Invalid value: \"{kind}\": field in body must be of type integer,string: \"{kind}\""
            ),
            format!(
                "field: Invalid value: \"{kind}\": field in body must be of type integer: \"{kind}\""
            ),
        ];
        if checked {
            v.push("<nil>: Invalid value: \"\": Checked value must be of type integer (default format) in field".into());
        }
        v
    };
    let failing: Vec<(Value, Vec<String>)> = kinds
        .iter()
        .map(|(v, k)| (json!({"field": v}), any_of(k, *k == "number")))
        .collect();
    let ok = [
        json!({}),
        json!({"field": null}),
        json!({"field": 42}),
        json!({"field": "foo"}),
    ];
    upstream_owned(
        json!({"type": "object", "properties": {"field": {
            "nullable": true, "x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]
        }}}),
        &ok,
        &failing,
    );
    let failing: Vec<(Value, Vec<String>)> = failing
        .into_iter()
        .map(|(v, mut e)| {
            e.push("<nil>: Invalid value: \"\": \"field\" must validate all the schemas (allOf). None validated".into());
            (v, e)
        })
        .collect();
    upstream_owned(
        json!({"type": "object", "properties": {"field": {
            "nullable": true, "x-kubernetes-int-or-string": true,
            "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}]
        }}}),
        &ok,
        &failing,
    );
}

#[test]
fn upstream_required_enum_and_count_cases() {
    upstream_case(
        json!({"type": "object", "required": ["field"], "properties": {"field": {
            "type": "object", "required": ["nested"], "properties": {"nested": {}}
        }}}),
        &[],
        &[
            (json!({"test": "a"}), &["field: Required value"]),
            (json!({"field": {}}), &["field.nested: Required value"]),
        ],
    );
    upstream_case(
        json!({"type": "object", "properties": {"field": {
            "type": "object", "required": ["nestedint", "nestedstring"],
            "properties": {
                "nestedint": {"type": "integer", "enum": [1, 2]},
                "nestedstring": {"type": "string", "enum": ["a", "b"]}
            }
        }}}),
        &[],
        &[
            (
                json!({"field": {}}),
                &[
                    "field.nestedint: Required value",
                    "field.nestedstring: Required value",
                ],
            ),
            (
                json!({"field": {"nestedint": "x", "nestedstring": true}}),
                &[
                    "field.nestedint: Invalid value: \"string\": field.nestedint in body must be of type integer: \"string\"",
                    "field.nestedint: Unsupported value: \"x\": supported values: \"1\", \"2\"",
                    "field.nestedstring: Invalid value: \"boolean\": field.nestedstring in body must be of type string: \"boolean\"",
                    "field.nestedstring: Unsupported value: true: supported values: \"a\", \"b\"",
                ],
            ),
        ],
    );
    upstream_case(
        json!({"type": "object", "properties": {
            "fieldX": {"type": "object", "maxProperties": 2},
            "fieldY": {"type": "array", "maxItems": 2},
            "fieldZ": {"type": "string", "maxLength": 2}
        }}),
        &[],
        &[
            (
                json!({"fieldX": {"a": true, "b": true, "c": true}}),
                &["fieldX: Too many: 3: must have at most 2 items"],
            ),
            (
                json!({"fieldY": ["a", "b", "c"]}),
                &["fieldY: Too many: 3: must have at most 2 items"],
            ),
            (
                json!({"fieldZ": "abc"}),
                &["fieldZ: Too long: may not be more than 2 bytes"],
            ),
        ],
    );
}

#[test]
fn upstream_format_cases() {
    upstream_case(
        json!({"type": "object", "properties": {
            "fieldX": {"type": "string", "format": "k8s-long-name"},
            "fieldY": {"type": "string", "format": "k8s-short-name"}
        }}),
        &[json!({"fieldX": "a.b-c", "fieldY": "a-b"})],
        &[
            (
                json!({"fieldX": "a.-"}),
                &[
                    "fieldX: Invalid value: \"a.-\": fieldX in body must be of type k8s-long-name: \"a.-\"",
                ],
            ),
            (
                json!({"fieldY": "a-"}),
                &[
                    "fieldY: Invalid value: \"a-\": fieldY in body must be of type k8s-short-name: \"a-\"",
                ],
            ),
        ],
    );
    let schema = json!({"type": "object", "properties": {
        "intThirtyTwo": {"type": "integer", "format": "int32"},
        "intSixtyFour": {"type": "integer", "format": "int64"},
        "floatThreeTwo": {"type": "number", "format": "float"},
        "floatSixFour": {"type": "number", "format": "double"}
    }});
    let f32max = f64::from(f32::MAX);
    upstream_case(
        schema,
        &[
            json!({"intThirtyTwo": i32::MIN, "intSixtyFour": i64::MIN, "floatThreeTwo": -f32max, "floatSixFour": -f64::MAX}),
            json!({"intThirtyTwo": 0, "intSixtyFour": 0, "floatThreeTwo": 0.0, "floatSixFour": 0.0}),
            json!({"intThirtyTwo": i32::MAX, "intSixtyFour": i64::MAX, "floatThreeTwo": f32max, "floatSixFour": f64::MAX}),
        ],
        &[
            (
                json!({"intThirtyTwo": i64::from(i32::MAX) + 1}),
                &[
                    "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in intThirtyTwo",
                ],
            ),
            (
                json!({"intThirtyTwo": i64::from(i32::MIN) - 1}),
                &[
                    "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in intThirtyTwo",
                ],
            ),
            (
                json!({"intSixtyFour": i64::MAX as f64 * 1.1}),
                &[
                    "intSixtyFour: Invalid value: \"float64\": intSixtyFour in body must be of type int64: \"float64\"",
                    "<nil>: Invalid value: \"\": Checked value must be of type integer with format int64 in intSixtyFour",
                ],
            ),
            (
                json!({"floatThreeTwo": f32max * 1.1}),
                &[
                    "<nil>: Invalid value: \"\": Checked value must be of type number with format float in floatThreeTwo",
                ],
            ),
        ],
    );
}
