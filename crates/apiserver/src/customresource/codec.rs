//! A custom kind's decoding: unknown fields pruned by the version's structural schema
//! (reported as upstream reports them: `unknown field "spec.foo"`), and the kind's OpenAPI
//! schema, as upstream publishes it for `kubectl explain` and server-side validation.

use std::sync::Arc;

use apiextensions::schema::Structural;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Map, Value, json};

use crate::schemas::OBJECT_META;

pub struct SchemaCodec {
    schema: Arc<Structural>,
    /// The OpenAPI schema, built once.
    openapi: Value,
}

/// Upstream's definition name of a custom kind: the group reversed, then version and
/// kind (`com.example.stable.v1.CronTab`).
fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    format!("{}.{version}.{kind}", parts.join("."))
}

impl SchemaCodec {
    pub fn new(
        schema: Arc<Structural>,
        props: &JSONSchemaProps,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Self {
        let mut root = serde_json::to_value(props).unwrap_or_else(|_| json!({}));
        if !root.is_object() {
            root = json!({});
        }
        let meta = crate::schemas::table()
            .schema(crate::schemas::OBJECT_META)
            .unwrap_or_default();
        let mut defs = meta
            .get("$defs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut meta_def = meta;
        if let Some(m) = meta_def.as_object_mut() {
            m.remove("$defs");
            m.remove("$schema");
        }
        defs.insert(OBJECT_META.into(), meta_def);
        if let Some(m) = root.as_object_mut() {
            m.insert("type".into(), json!("object"));
            let props = m
                .entry("properties")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(p) = props.as_object_mut() {
                p.insert(
                    "apiVersion".into(),
                    json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}),
                );
                p.insert(
                    "kind".into(),
                    json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}),
                );
                p.insert(
                    "metadata".into(),
                    json!({"$ref": format!("#/$defs/{OBJECT_META}"), "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
                );
            }
            m.insert("title".into(), json!(definition_name(group, version, kind)));
            m.insert("$defs".into(), Value::Object(defs));
        }
        SchemaCodec {
            schema,
            openapi: root,
        }
    }
}

impl crate::typed::SchemaCodec for SchemaCodec {
    fn prune(&self, obj: &mut Value) -> Vec<String> {
        self.schema.prune(obj)
    }
    fn schema(&self) -> Value {
        self.openapi.clone()
    }
    fn structural(&self) -> &Structural {
        &self.schema
    }
}
