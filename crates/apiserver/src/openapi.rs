//! OpenAPI v3: an index of group-versions, and per group-version documents whose operations
//! carry `x-kubernetes-group-version-kind` and a `fieldValidation` parameter (then kubectl's
//! `apply`/`create -f` validate on the server), with every kind's schema generated from the
//! same `k8s-openapi` types the server decodes with (so `kubectl explain` works and the
//! schema cannot drift from what is stored). Documents are built once, on first use.

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::resources::Catalog;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions(catalog: &Catalog) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in &catalog.resources {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// FNV-1a, hex: a content hash for the index's cache-busting `hash` parameter.
fn hash(v: &Value) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// (index path, document bytes, content hash) per group-version.
fn documents(catalog: &Catalog) -> &'static [(String, Bytes, String)] {
    static DOCS: OnceLock<Vec<(String, Bytes, String)>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions(catalog)
            .into_iter()
            .map(|(g, v)| {
                let doc = build(catalog, g, v);
                let h = hash(&doc);
                let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
                (gv_path(g, v), bytes, h)
            })
            .collect()
    })
}

pub fn index(catalog: &Catalog) -> Value {
    let mut paths = Map::new();
    for (p, _, h) in documents(catalog) {
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")}),
        );
    }
    json!({"paths": paths})
}

pub fn group_version_doc(catalog: &Catalog, path: &str) -> Option<Bytes> {
    documents(catalog)
        .iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, doc, _)| doc.clone())
}

/// Points JSON-Schema `$defs` references at the document's `components.schemas`.
fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/components/schemas/{name}");
            }
            m.values_mut().for_each(rewrite_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn build(catalog: &Catalog, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for r in catalog
        .resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        match crate::typed::json_schema(r) {
            Some(Value::Object(mut schema)) => {
                if let Some(Value::Object(defs)) = schema.remove("$defs") {
                    schemas.extend(defs);
                }
                schema.remove("$schema");
                let name = schema
                    .get("title")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| r.kind.to_string());
                schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
                schemas.insert(name, Value::Object(schema));
            }
            _ => {
                schemas.insert(
                    format!("{}.{}", r.api_version(), r.kind),
                    json!({"type": "object", "x-kubernetes-group-version-kind": [gvk]}),
                );
            }
        }
    }
    let mut schemas = Value::Object(schemas);
    rewrite_refs(&mut schemas);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
