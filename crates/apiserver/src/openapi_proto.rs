//! `/openapi/v2` in protobuf: gnostic's `openapi.v2.Document` (`OpenAPIv2.proto`), the only
//! form kubectl asks for (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`)
//! when it validates a `List` client-side or looks up patch strategies. Written from the
//! JSON document ([`crate::openapi::v2`]): the swagger version, info and every definition
//! with its schema keywords and vendor extensions (`x-kubernetes-group-version-kind`,
//! `x-kubernetes-patch-merge-key`, ...); values of `default`, `enum`, `example` and the
//! extensions go in gnostic's `Any.yaml`, as JSON text (which YAML reads as the same value).
//! Paths are left out: kubectl reads definitions only.

use serde_json::Value;

/// A protobuf message being written.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }
    fn message(&mut self, field: u32, m: Writer) {
        self.bytes(field, &m.0);
    }
    fn bool(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }
    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v as u64);
        }
    }
    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// `Any { yaml = 2 }`.
fn any(v: &Value) -> Writer {
    let mut w = Writer::default();
    w.string(2, &v.to_string());
    w
}

/// `NamedAny { name = 1; value = 2 }`: a vendor extension.
fn named_any(name: &str, v: &Value) -> Writer {
    let mut w = Writer::default();
    w.string(1, name);
    w.message(2, any(v));
    w
}

/// `NamedSchema { name = 1; value = 2 }`.
fn named_schema(name: &str, s: &Value) -> Writer {
    let mut w = Writer::default();
    w.string(1, name);
    w.message(2, schema(s));
    w
}

/// gnostic's `Schema`, field by field.
fn schema(s: &Value) -> Writer {
    let mut w = Writer::default();
    let Some(m) = s.as_object() else { return w };
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    for (k, v) in m {
        match k.as_str() {
            "$ref" => w.string(1, &str_of(v)),
            "format" => w.string(2, &str_of(v)),
            "title" => w.string(3, &str_of(v)),
            "description" => w.string(4, &str_of(v)),
            "default" => w.message(5, any(v)),
            "multipleOf" => w.double(6, v.as_f64().unwrap_or_default()),
            "maximum" => w.double(7, v.as_f64().unwrap_or_default()),
            "exclusiveMaximum" => w.bool(8, v.as_bool().unwrap_or_default()),
            "minimum" => w.double(9, v.as_f64().unwrap_or_default()),
            "exclusiveMinimum" => w.bool(10, v.as_bool().unwrap_or_default()),
            "maxLength" => w.int64(11, v.as_i64().unwrap_or_default()),
            "minLength" => w.int64(12, v.as_i64().unwrap_or_default()),
            "pattern" => w.string(13, &str_of(v)),
            "maxItems" => w.int64(14, v.as_i64().unwrap_or_default()),
            "minItems" => w.int64(15, v.as_i64().unwrap_or_default()),
            "uniqueItems" => w.bool(16, v.as_bool().unwrap_or_default()),
            "maxProperties" => w.int64(17, v.as_i64().unwrap_or_default()),
            "minProperties" => w.int64(18, v.as_i64().unwrap_or_default()),
            "required" => {
                for r in v.as_array().into_iter().flatten() {
                    w.bytes(19, str_of(r).as_bytes());
                }
            }
            "enum" => {
                for e in v.as_array().into_iter().flatten() {
                    w.message(20, any(e));
                }
            }
            // AdditionalPropertiesItem: oneof schema = 1 | boolean = 2.
            "additionalProperties" => {
                let mut item = Writer::default();
                match v {
                    Value::Bool(b) => {
                        item.key(2, 0);
                        item.varint(u64::from(*b));
                    }
                    other => item.message(1, schema(other)),
                }
                w.message(21, item);
            }
            // TypeItem { repeated string value = 1 }.
            "type" => {
                let mut item = Writer::default();
                match v {
                    Value::Array(types) => {
                        for t in types {
                            item.bytes(1, str_of(t).as_bytes());
                        }
                    }
                    t => item.bytes(1, str_of(t).as_bytes()),
                }
                w.message(22, item);
            }
            // ItemsItem { repeated Schema schema = 1 }.
            "items" => {
                let mut item = Writer::default();
                match v {
                    Value::Array(schemas) => {
                        for s in schemas {
                            item.message(1, schema(s));
                        }
                    }
                    s => item.message(1, schema(s)),
                }
                w.message(23, item);
            }
            "allOf" => {
                for s in v.as_array().into_iter().flatten() {
                    w.message(24, schema(s));
                }
            }
            // Properties { repeated NamedSchema additional_properties = 1 }.
            "properties" => {
                let mut props = Writer::default();
                for (name, s) in v.as_object().into_iter().flatten() {
                    props.message(1, named_schema(name, s));
                }
                w.message(25, props);
            }
            "discriminator" => w.string(26, &str_of(v)),
            "readOnly" => w.bool(27, v.as_bool().unwrap_or_default()),
            "example" => w.message(30, any(v)),
            x if x.starts_with("x-") => w.message(31, named_any(x, v)),
            _ => {}
        }
    }
    w
}

/// The protobuf form of the v2 document.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, doc["swagger"].as_str().unwrap_or("2.0"));
    let mut info = Writer::default();
    info.string(1, doc["info"]["title"].as_str().unwrap_or_default());
    info.string(2, doc["info"]["version"].as_str().unwrap_or_default());
    w.message(2, info);
    // Definitions { repeated NamedSchema additional_properties = 1 }.
    let mut defs = Writer::default();
    for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
        defs.message(1, named_schema(name, s));
    }
    w.message(9, defs);
    w.0
}
