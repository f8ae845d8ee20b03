//! Tests: defaulting.

use super::*;

fn defaulting_schema() -> Structural {
    compile(json!({"type": "object", "properties": {
        "spec": {
            "type": "object",
            "default": {},
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "strategy": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "default": "Rolling"},
                        "maxSurge": {"type": "integer", "default": 2, "nullable": true}
                    }
                },
                "ports": {
                    "type": "array",
                    "items": {"type": "object", "properties": {
                        "protocol": {"type": "string", "default": "TCP"},
                        "port": {"type": "integer"}
                    }}
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "x"}},
                "keep": {"type": "string", "default": "d"}
            }
        }
    }}))
}

#[test]
fn defaults_missing_fields_at_every_level() {
    let s = defaulting_schema();
    let mut obj = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}});
    s.default(&mut obj);
    assert_eq!(obj["spec"], json!({"replicas": 1, "keep": "d"}));

    let mut obj = json!({"spec": {
        "replicas": 3,
        "strategy": {},
        "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
        "labels": {"a": null, "b": "y"}
    }});
    s.default(&mut obj);
    assert_eq!(
        obj["spec"],
        json!({
            "replicas": 3,
            "strategy": {"type": "Rolling", "maxSurge": 2},
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "labels": {"a": "x", "b": "y"},
            "keep": "d"
        })
    );
}

#[test]
fn defaults_non_nullable_nulls_but_keeps_nullable_ones() {
    let s = defaulting_schema();
    let mut obj = json!({"spec": {"replicas": null, "strategy": {"maxSurge": null}}});
    s.default(&mut obj);
    assert_eq!(obj["spec"]["replicas"], json!(1));
    assert_eq!(obj["spec"]["strategy"]["maxSurge"], Value::Null);
}
