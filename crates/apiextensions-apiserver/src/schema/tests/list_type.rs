//! Tests: upstream's listtype/validation_test.go, as data.

use super::*;

#[test]
fn upstream_list_map_keys_with_nulls_and_compounds() {
    let map_list = |keys: Value| {
        json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": keys,
               "items": {"type": "object", "nullable": true, "additionalProperties": {"nullable": true}}})
    };
    let s = Structural::unchecked(&props(json!({"type": "object", "properties": {
        "nilItem": map_list(json!(["a"])),
        "compound": map_list(json!(["a"])),
        "multi": map_list(json!(["a"])),
        "twoKeys": map_list(json!(["a", "b"])),
        "notObjects": map_list(json!(["a"]))
    }})));
    let obj = json!({
        "nilItem": [null, {"a": "0", "c": "1"}, {"a": null}, {"c": "1"}],
        "compound": [{"a": [], "c": "1"}, {"a": null, "c": "1"}, {"a": ["a"], "c": "1"}, {"a": ["a", 42], "c": "2"}, {"a": ["a", 42], "c": ["3"]}],
        "multi": [{"a": []}, {"a": null}, {"a": ["a"]}, {"a": ["a", 42]}, {"a": ["a", 42]}, {"a": ["a"], "d": "1"}, {"a": ["a"], "d": "2"}],
        "twoKeys": [null, {"b": "0", "c": "1"}, {"a": null}, {"c": "1"}],
        "notObjects": ["a"]
    });
    assert_eq!(
        errors(&s, obj),
        vec![
            "notObjects[0]: Invalid value: \"string\": notObjects[0] in body must be of type object: \"string\"",
            "nilItem[3]: Duplicate value: {}",
            "compound[4]: Duplicate value: {\"a\":[\"a\",42]}",
            "multi[4]: Duplicate value: {\"a\":[\"a\",42]}",
            "multi[5]: Duplicate value: {\"a\":[\"a\"]}",
            "twoKeys[3]: Duplicate value: {}",
            "notObjects[0]: Invalid value: \"a\": must be an object for an array of list-type map",
        ]
    );
}

#[test]
fn finds_set_lists_deep_under_maps_and_lists() {
    let s = compile(spec(json!({"groups": {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }}}
    }})));
    assert_eq!(
        errors(
            &s,
            json!({"spec": {"groups": {"g1": [{"tags": ["a"]}, {"tags": ["b", "b"]}]}}})
        ),
        vec!["spec.groups[g1][1].tags[1]: Duplicate value: \"b\""]
    );
}
