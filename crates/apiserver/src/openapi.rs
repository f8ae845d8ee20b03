//! OpenAPI v3, as much as kubectl needs today: an index of group-versions, and per
//! group-version documents whose PATCH operations carry `x-kubernetes-group-version-kind`
//! and a `fieldValidation` parameter (then `apply`/`create -f` validate on the server), and a
//! schema entry per kind.

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

pub fn index(catalog: &Catalog) -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions(catalog) {
        let p = gv_path(g, v);
        let doc = build(catalog, g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

pub fn group_version_doc(catalog: &Catalog, path: &str) -> Option<Value> {
    group_versions(catalog)
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == path)
        .map(|(g, v)| build(catalog, g, v))
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
        let schema_name = if r.group.is_empty() {
            format!("io.k8s.api.core.{}.{}", r.version, r.kind)
        } else {
            format!(
                "io.k8s.api.{}.{}.{}",
                r.group.split('.').next().unwrap_or(r.group),
                r.version,
                r.kind
            )
        };
        schemas.insert(
            schema_name,
            json!({
                "type": "object",
                "description": format!("{} ({}).", r.kind, r.api_version()),
                "x-kubernetes-group-version-kind": [gvk],
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
