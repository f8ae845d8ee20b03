//! Tests: structural checks.

use super::*;

#[test]
fn refuses_missing_types() {
    let errs = refused(
        json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
    );
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.properties[spec].type: Required value: must not be empty for specified object fields"
        )]
    );
    let errs =
        refused(json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}}}));
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.properties[l].items.type: Required value: must not be empty for specified array items"
        )]
    );
    let errs = refused(json!({"properties": {}}));
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.type: Required value: must not be empty at the root"
        )]
    );
}

#[test]
fn refuses_non_object_root_and_array_without_items() {
    assert_eq!(
        refused(json!({"type": "string"})),
        vec![format!(
            "{ROOT}.type: Invalid value: \"string\": must be object at the root"
        )]
    );
    assert_eq!(
        refused(spec(json!({"l": {"type": "array"}}))),
        vec![format!(
            "{ROOT}.properties[spec].properties[l].items: Required value: must be specified"
        )]
    );
}

#[test]
fn refuses_additional_properties_with_properties_and_at_root() {
    let errs = refused(spec(json!({"m": {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": {"type": "string"}
    }})));
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.properties[spec].properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        )]
    );
    let errs = refused(json!({"type": "object", "additionalProperties": {"type": "string"}}));
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.additionalProperties: Forbidden: must not be used at the root"
        )]
    );
}

#[test]
fn refuses_items_array_and_unique_items() {
    let errs = refused(spec(
        json!({"l": {"type": "array", "items": [{"type": "string"}]}}),
    ));
    // Not convertible to a structural schema: only the CRD check reports it.
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.properties[spec].properties[l].items: Forbidden: items must be a schema object and not an array"
        )]
    );
    let errs = refused(spec(
        json!({"l": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}}),
    ));
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.properties[spec].properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        )]
    );
}

#[test]
fn refuses_junctors_that_specify_structure() {
    let errs = refused(spec(json!({"a": {
        "type": "string",
        "anyOf": [{"type": "string", "default": "x", "nullable": true}]
    }})));
    let p = format!("{ROOT}.properties[spec].properties[a].anyOf[0]");
    assert_eq!(
        errs,
        vec![
            format!("{p}.default: Forbidden: must be undefined to be structural"),
            format!("{p}.nullable: Forbidden: must be false to be structural"),
            format!("{p}.type: Forbidden: must be empty to be structural"),
        ]
    );
}

#[test]
fn refuses_junctor_properties_not_in_the_structure() {
    let errs = refused(json!({
        "type": "object",
        "properties": {"spec": {"type": "object"}},
        "anyOf": [{"properties": {"spec": {"properties": {"x": {"minLength": 1}}}}}]
    }));
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.properties[spec].properties[x]: Required value: because it is defined in {ROOT}.anyOf[0].properties[spec].properties[x]"
        )]
    );
}

#[test]
fn accepts_the_int_or_string_patterns() {
    compile(spec(json!({
        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "size": {
            "x-kubernetes-int-or-string": true,
            "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^[0-9]+$"}]
        }
    })));
    let errs = refused(spec(
        json!({"p": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}}),
    ));
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.properties[spec].properties[p].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
        )]
    );
}

#[test]
fn refuses_root_metadata_beyond_name_and_generate_name() {
    compile(
        json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 10}
        }}}}),
    );
    let errs = refused(
        json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
            "labels": {"type": "object"}
        }}}}),
    );
    assert_eq!(
        errs,
        vec![format!(
            "{ROOT}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        )]
    );
    let errs = refused(spec(
        json!({"x": {"type": "object", "anyOf": [{"properties": {"metadata": {}}}]}}),
    ));
    assert!(errs.contains(&format!(
        "{ROOT}.properties[spec].properties[x].anyOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"
    )));
}

#[test]
fn refuses_inconsistent_list_types() {
    let p = format!("{ROOT}.properties[spec].properties[l]");
    let errs = refused(spec(
        json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}}),
    ));
    assert_eq!(
        errs,
        vec![format!(
            "{p}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
        )]
    );
    let errs = refused(spec(json!({"l": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "nope"],
        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    }})));
    assert_eq!(
        errs,
        vec![format!(
            "{p}.x-kubernetes-list-map-keys: Invalid value: [\"name\",\"nope\"]: entries must all be names of item properties"
        )]
    );
    let errs = refused(spec(json!({"l": {
        "type": "array", "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "properties": {"name": {"type": "string"}}}
    }})));
    assert_eq!(
        errs,
        vec![format!(
            "{p}.x-kubernetes-list-type: Required value: must be map if x-kubernetes-list-map-keys is non-empty"
        )]
    );
    let errs = refused(spec(
        json!({"l": {"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}}}),
    ));
    assert_eq!(
        errs,
        vec![format!(
            "{p}.x-kubernetes-list-type: Unsupported value: \"bag\": supported values: \"atomic\", \"set\", \"map\""
        )]
    );
    let errs = refused(spec(json!({"l": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "properties": {"name": {"type": "string"}}}
    }})));
    assert_eq!(
        errs,
        vec![format!(
            "{p}.items.properties[name].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
        )]
    );
}

#[test]
fn refuses_bad_embedded_resources_and_patterns() {
    let p = format!("{ROOT}.properties[spec].properties[e]");
    let errs = refused(spec(
        json!({"e": {"type": "string", "x-kubernetes-embedded-resource": true}}),
    ));
    assert!(errs.contains(&format!(
        "{p}.type: Invalid value: \"string\": must be object if x-kubernetes-embedded-resource is true"
    )));
    let errs = refused(spec(
        json!({"e": {"type": "object", "x-kubernetes-embedded-resource": true}}),
    ));
    assert_eq!(
        errs,
        vec![format!(
            "{p}.properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
        )]
    );
    let errs = refused(spec(json!({"s": {"type": "string", "pattern": "a("}})));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(&format!(
        "{ROOT}.properties[spec].properties[s].pattern: Invalid value: \"a(\": must be a valid regular expression, but isn't: "
    )));
}

#[test]
fn refuses_defaults_in_top_level_metadata() {
    let errs = refused(json!({"type": "object", "properties": {
        "kind": {"type": "string", "default": "K"},
        "spec": {"type": "object", "properties": {"e": {
            "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"metadata": {"type": "object", "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "x"}}
            }}}
        }}}
    }}));
    assert_eq!(
        errs,
        vec![
            format!(
                "{ROOT}.properties[kind].default: Forbidden: must not be set in top-level kind"
            ),
            format!(
                "{ROOT}.properties[spec].properties[e].properties[metadata].properties[labels].additionalProperties.default: Forbidden: must not be set inside additionalProperties applying to object metadata"
            ),
        ]
    );
}

#[test]
fn refuses_invalid_and_unpruned_defaults() {
    let p = format!("{ROOT}.properties[spec].properties");
    let errs = refused(spec(
        json!({"replicas": {"type": "integer", "default": "three"}}),
    ));
    assert_eq!(
        errs,
        vec![format!(
            "{p}[replicas].default: Invalid value: \"string\":  in body must be of type integer: \"string\""
        )]
    );
    let errs = refused(spec(json!({"o": {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 2}},
        "default": {"a": "abc", "b": 1}
    }})));
    assert_eq!(
        errs,
        vec![
            format!(
                "{p}[o].default: Invalid value: {{\"a\":\"abc\",\"b\":1}}: must not have unknown fields"
            ),
            format!("{p}[o].default.a: Too long: may not be more than 2 bytes"),
        ]
    );
}
