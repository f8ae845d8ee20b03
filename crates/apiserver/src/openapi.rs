//! OpenAPI v3: an index of group-versions, and per group-version documents whose operations
//! carry `x-kubernetes-group-version-kind` and a `fieldValidation` parameter (then kubectl's
//! `apply`/`create -f` validate on the server), with every kind's schema generated from the
//! same `k8s-openapi` types the server decodes with (so `kubectl explain` works and the
//! schema cannot drift from what is stored). Custom kinds' schemas are their CRDs'.
//! Documents are built on first use and again after the served kinds change.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::resources::{Catalog, ResourceInfo};

const GVK: &str = "x-kubernetes-group-version-kind";
const V3_REFS: &str = "#/components/schemas/";
const V2_REFS: &str = "#/definitions/";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions(catalog: &Catalog) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in catalog.resources() {
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

/// A value derived from the served kinds, rebuilt when they change (a CRD).
struct Derived<T>(Mutex<Option<(u64, Arc<T>)>>);

impl<T> Derived<T> {
    const fn new() -> Self {
        Derived(Mutex::new(None))
    }

    fn get(&self, build: impl FnOnce() -> T) -> Arc<T> {
        let generation = crate::kinds::generation();
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*guard {
            Some((g, v)) if *g == generation => v.clone(),
            _ => {
                // Built under the lock: concurrent first readers wait rather than build
                // the same documents twice.
                let v = Arc::new(build());
                *guard = Some((generation, v.clone()));
                v
            }
        }
    }
}

type Documents = Vec<(String, Bytes, String)>;

/// (index path, document bytes, content hash) per group-version.
fn documents(catalog: &Catalog) -> Arc<Documents> {
    static DOCS: Derived<Documents> = Derived::new();
    DOCS.get(|| {
        // One parse of the schema table for every group-version's document.
        let _table = crate::schemas::table();
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
    for (p, _, h) in documents(catalog).iter() {
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")}),
        );
    }
    // Remote group-versions: their servers' own documents, as the aggregator fetched them.
    for r in catalog.remote.all().iter() {
        if let Some(doc) = r.openapi.as_ref().filter(|_| r.available()) {
            let p = gv_path(r.group, r.version);
            let url = format!("/openapi/v3/{p}?hash={}", doc.hash);
            paths.insert(p, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

pub fn group_version_doc(catalog: &Catalog, path: &str) -> Option<Bytes> {
    documents(catalog)
        .iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, doc, _)| doc.clone())
        .or_else(|| {
            let remotes = catalog.remote.all();
            let r = remotes
                .iter()
                .find(|r| r.available() && gv_path(r.group, r.version) == path)?;
            r.openapi.as_ref().map(|doc| doc.bytes.clone())
        })
}

/// Points `$ref`s under `from` at `to` instead: schemars' `$defs` at a v3 document's
/// `components.schemas`, and those at the v2 document's `definitions`.
fn rewrite_refs(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref")
                && let Some(name) = r.strip_prefix(from)
            {
                *r = format!("{to}{name}");
            }
            m.values_mut().for_each(|v| rewrite_refs(v, from, to));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rewrite_refs(v, from, to)),
        _ => {}
    }
}

/// Files a schemars root schema and the `$defs` it refers to in `schemas`: the root,
/// annotated with `gvk` if given, under its title (Kubernetes' definition name,
/// `io.k8s.api.apps.v1.Deployment`) or else `fallback`, replacing what is there; a `$def`
/// only where nothing is, so that a kind filed earlier keeps its annotation when a later
/// kind contains it.
fn file_schema(
    mut schema: Map<String, Value>,
    fallback: &str,
    gvk: Option<Value>,
    schemas: &mut Map<String, Value>,
) {
    if let Some(Value::Object(defs)) = schema.remove("$defs") {
        for (name, mut def) in defs {
            if !schemas.contains_key(&name) {
                crate::openapi_extensions::annotate(&name, &mut def);
                schemas.insert(name, def);
            }
        }
    }
    schema.remove("$schema");
    if let Some(gvk) = gvk {
        schema.insert(GVK.into(), json!([gvk]));
    }
    let name = schema
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or(fallback)
        .to_string();
    let mut schema = Value::Object(schema);
    crate::openapi_extensions::annotate(&name, &mut schema);
    schemas.insert(name, schema);
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
        .resources()
        .into_iter()
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
                GVK: gvk,
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "OK"}},
            })
        };
        let ops = if r.read_only {
            json!({"get": op("get")})
        } else {
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")})
        };
        paths.insert(item, ops);
        match crate::typed::json_schema(r).or_else(|| catalog.local_schema(r)) {
            Some(Value::Object(schema)) => {
                file_schema(schema, r.kind, Some(gvk), &mut schemas);
            }
            _ => {
                schemas.insert(
                    format!("{}.{}", r.api_version(), r.kind),
                    json!({"type": "object", GVK: [gvk]}),
                );
            }
        }
    }
    let mut schemas = Value::Object(schemas);
    rewrite_refs(&mut schemas, "#/$defs/", V3_REFS);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

// OpenAPI v2 (Swagger 2.0), for clients that still read it (Terraform's
// `kubernetes_manifest`, older client libraries): one document with every group-version,
// its definitions the v3 documents' schemas under the same names.

/// The v2 document's JSON, built on first use and after the served kinds change.
pub fn v2(catalog: &Catalog) -> Bytes {
    static DOC: Derived<Bytes> = Derived::new();
    Bytes::clone(
        &DOC.get(|| Bytes::from(serde_json::to_vec(&build_v2(catalog)).unwrap_or_default())),
    )
}

/// The v2 document in protobuf (what kubectl asks for), built with the JSON one.
pub fn v2_protobuf(catalog: &Catalog) -> Bytes {
    static DOC: Derived<Bytes> = Derived::new();
    Bytes::clone(&DOC.get(|| Bytes::from(crate::openapi_proto::encode(&build_v2(catalog)))))
}

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const BINDING: &str = "io.k8s.api.core.v1.Binding";

/// Adds a v2 definition. A kind's own schema (annotated with its group-version-kind) wins
/// over the same type met as another kind's field (the core PersistentVolumeClaim in
/// apps/v1, as a StatefulSet's claim template), whichever document comes first.
fn add_definition(defs: &mut Map<String, Value>, name: String, mut schema: Value) {
    if defs
        .get(&name)
        .is_some_and(|old| old.get(GVK).is_some() || schema.get(GVK).is_none())
    {
        return;
    }
    // Swagger 2.0 has no `x-kubernetes-int-or-string`; Kubernetes' v2 document calls an
    // IntOrString a string of format `int-or-string` and a Quantity a plain string.
    if let Value::Object(m) = &mut schema
        && m.remove("x-kubernetes-int-or-string").is_some()
        && !m.contains_key("type")
    {
        m.insert("type".into(), json!("string"));
        if name != QUANTITY {
            m.insert("format".into(), json!("int-or-string"));
        }
    }
    defs.insert(name, schema);
}

/// The name of the definition annotated with this group-version-kind.
fn kind_definition(
    defs: &Map<String, Value>,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<String> {
    let want = json!({"group": group, "version": version, "kind": kind});
    defs.iter()
        .find(|(_, d)| {
            d.get(GVK)
                .and_then(Value::as_array)
                .is_some_and(|gvks| gvks.contains(&want))
        })
        .map(|(name, _)| name.clone())
}

fn build_v2(catalog: &Catalog) -> Value {
    let mut defs = Map::new();
    for (_, doc, _) in documents(catalog).iter() {
        let Ok(mut doc) = serde_json::from_slice::<Value>(doc) else {
            continue;
        };
        if let Some(Value::Object(schemas)) =
            doc.pointer_mut("/components/schemas").map(Value::take)
        {
            for (name, mut schema) in schemas {
                rewrite_refs(&mut schema, V3_REFS, V2_REFS);
                add_definition(&mut defs, name, schema);
            }
        }
    }
    // What the operations take and return besides the served kinds, from the same
    // `k8s-openapi` types: list metadata, deletes' options and results, patch bodies, and
    // the scale and binding subresources' kinds.
    {
        use crate::schemas::{BINDING, DELETE_OPTIONS, LIST_META, PATCH, SCALE, STATUS};
        let table = crate::schemas::table();
        let extras = [
            (LIST_META, None),
            (DELETE_OPTIONS, None),
            (PATCH, None),
            (STATUS, Some(("", "v1", "Status"))),
            (SCALE, Some(("autoscaling", "v1", "Scale"))),
            (BINDING, Some(("", "v1", "Binding"))),
        ];
        for (name, gvk) in extras {
            let Some(Value::Object(schema)) = table.schema(name) else {
                continue;
            };
            let gvk = gvk.map(|(g, v, k)| json!({"group": g, "version": v, "kind": k}));
            let mut filed = Map::new();
            file_schema(schema, "", gvk, &mut filed);
            for (name, mut schema) in filed {
                rewrite_refs(&mut schema, "#/$defs/", V2_REFS);
                add_definition(&mut defs, name, schema);
            }
        }
    }
    let mut paths = Map::new();
    for r in catalog.resources() {
        // Every served kind has a schema in the v3 documents, annotated so.
        let Some(def) = kind_definition(&defs, r.group, r.version, r.kind) else {
            continue;
        };
        // k8s-openapi has one generic List type, so no list schemas to reuse.
        let list = format!("{def}List");
        defs.entry(list.clone()).or_insert_with(|| {
            json!({
                "description": format!("{}List is a list of {}.", r.kind, r.kind),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"$ref": format!("{V2_REFS}{LIST_META}")},
                    "items": {"type": "array", "items": {"$ref": format!("{V2_REFS}{def}")}},
                },
                GVK: [{"group": r.group, "version": r.version, "kind": format!("{}List", r.kind)}],
            })
        });
        resource_paths(r, &def, &list, &mut paths);
    }
    json!({
        "swagger": "2.0",
        // The release, without this build's `+rkube` (as Kubernetes leaves out its own).
        "info": {
            "title": "Kubernetes",
            "version": crate::discovery::GIT_VERSION.split(['+', '-']).next().unwrap_or_default(),
        },
        "paths": paths,
        "definitions": defs,
        "securityDefinitions": {
            "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"},
        },
        "security": [{"BearerToken": []}],
    })
}

/// Kubernetes' name for a group in operation ids: `RbacAuthorization` for
/// `rbac.authorization.k8s.io`, `Core` for the core group.
fn group_id(group: &str) -> String {
    let group = if group.is_empty() {
        "core"
    } else {
        group.trim_end_matches(".k8s.io")
    };
    group.split(['.', '-']).map(capitalize).collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn query_param(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "type": ty, "uniqueItems": true, "description": description})
}

fn body_param(def: &str, required: bool) -> Value {
    json!({"name": "body", "in": "body", "required": required, "schema": {"$ref": format!("{V2_REFS}{def}")}})
}

/// Responses with the given codes, each returning a `def`.
fn responses(codes: &[(&str, &str)], def: &str) -> Value {
    let mut out = Map::new();
    for (code, description) in codes {
        out.insert(
            code.to_string(),
            json!({"description": description, "schema": {"$ref": format!("{V2_REFS}{def}")}}),
        );
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

/// The query parameters the server reads on writes.
fn write_params() -> Vec<Value> {
    vec![
        query_param(
            "dryRun",
            "string",
            "When present (`All`), the modification is validated but not persisted.",
        ),
        query_param(
            "fieldManager",
            "string",
            "The name of the actor making the change, recorded in managedFields.",
        ),
        query_param(
            "fieldValidation",
            "string",
            "What to do with unknown fields in the object: Ignore, Warn (the default) or Strict.",
        ),
    ]
}

/// The query parameters the server reads on lists and watches.
fn list_params() -> Vec<Value> {
    vec![
        query_param(
            "labelSelector",
            "string",
            "Restricts the list to objects with matching labels.",
        ),
        query_param(
            "fieldSelector",
            "string",
            "Restricts the list to objects with matching fields.",
        ),
        query_param(
            "limit",
            "integer",
            "The most objects to return; `continue` fetches the rest.",
        ),
        query_param(
            "continue",
            "string",
            "The token from a previous limited list's metadata, to fetch the next part.",
        ),
        query_param(
            "resourceVersion",
            "string",
            "The version to list at, or to watch from.",
        ),
        query_param("watch", "boolean", "Watch for changes instead of listing."),
        query_param(
            "allowWatchBookmarks",
            "boolean",
            "Whether a watch may send BOOKMARK events.",
        ),
        query_param(
            "sendInitialEvents",
            "boolean",
            "Whether a watch starts with the current objects as ADDED events.",
        ),
        query_param("timeoutSeconds", "integer", "How long a watch lasts."),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        body_param(DELETE_OPTIONS, false),
        query_param(
            "dryRun",
            "string",
            "When present (`All`), the deletion is validated but not persisted.",
        ),
        query_param(
            "gracePeriodSeconds",
            "integer",
            "Seconds before the object is deleted; 0 deletes it now.",
        ),
        query_param(
            "propagationPolicy",
            "string",
            "Whether and how dependents are deleted: Orphan, Background or Foreground.",
        ),
    ]
}

const PRODUCES: [&str; 3] = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// The operations on a resource, its subresources and (if namespaced) its list across
/// namespaces — those the handler serves — as Kubernetes names and annotates them.
fn resource_paths(r: &ResourceInfo, def: &str, list: &str, paths: &mut Map<String, Value>) {
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let tag = {
        let mut id = group_id(r.group);
        if let Some(first) = id.get_mut(..1) {
            first.make_ascii_lowercase();
        }
        format!("{id}_{}", r.version)
    };
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let gv = format!("{}{}", group_id(r.group), capitalize(r.version));
    let op = |id: String,
              action: &str,
              description: String,
              gvk: &Value,
              parameters: Vec<Value>,
              responses: Value| {
        json!({
            "operationId": id,
            "description": description,
            "tags": [tag],
            "consumes": ["*/*"],
            "produces": PRODUCES,
            "schemes": ["https"],
            "parameters": parameters,
            "responses": responses,
            "x-kubernetes-action": action,
            GVK: gvk,
        })
    };
    let kind = r.kind;
    let namespace = json!({"name": "namespace", "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": "object name and auth scope, such as for teams and projects"});
    let name = json!({"name": "name", "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": format!("name of the {kind}")});
    let prefix = format!("/{}", gv_path(r.group, r.version));
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let shared = |with_name: bool| {
        let mut p = Vec::new();
        if with_name {
            p.push(name.clone());
        }
        if r.namespaced {
            p.push(namespace.clone());
        }
        p
    };
    let with_body = |def: &str| {
        let mut p = vec![body_param(def, true)];
        p.extend(write_params());
        p
    };

    let mut delete_collection = delete_params();
    delete_collection.extend(list_params());
    paths.insert(collection.clone(), json!({
        "get": op(format!("list{gv}{scope}{kind}"), "list", format!("list or watch objects of kind {kind}"), &gvk, list_params(), responses(&[("200", "OK")], list)),
        "post": op(format!("create{gv}{scope}{kind}"), "post", format!("create a {kind}"), &gvk, with_body(def), responses(&[("200", "OK"), ("201", "Created"), ("202", "Accepted")], def)),
        "delete": op(format!("delete{gv}Collection{scope}{kind}"), "deletecollection", format!("delete collection of {kind}"), &gvk, delete_collection, responses(&[("200", "OK")], STATUS)),
        "parameters": shared(false),
    }));

    // Kinds whose DELETE answers with the object (a pod, which graceful termination keeps
    // for a while) document that; the rest answer with a Status.
    let deleted = if crate::kinds::of(r).hooks().return_deleted_object() {
        def
    } else {
        STATUS
    };
    let mut patch = with_body(PATCH);
    patch.push(query_param(
        "force",
        "boolean",
        "Whether a server-side apply takes over fields other managers own.",
    ));
    let item = format!("{collection}/{{name}}");
    paths.insert(item.clone(), json!({
        "get": op(format!("read{gv}{scope}{kind}"), "get", format!("read the specified {kind}"), &gvk, vec![], responses(&[("200", "OK")], def)),
        "put": op(format!("replace{gv}{scope}{kind}"), "put", format!("replace the specified {kind}"), &gvk, with_body(def), responses(&[("200", "OK"), ("201", "Created")], def)),
        "patch": patch_op(op(format!("patch{gv}{scope}{kind}"), "patch", format!("partially update the specified {kind}"), &gvk, patch.clone(), responses(&[("200", "OK"), ("201", "Created")], def))),
        "delete": op(format!("delete{gv}{scope}{kind}"), "delete", format!("delete a {kind}"), &gvk, delete_params(), responses(&[("200", "OK"), ("202", "Accepted")], deleted)),
        "parameters": shared(true),
    }));

    for sub in r.subresources {
        let (sub_def, sub_gvk) = match *sub {
            "status" => (def, gvk.clone()),
            "scale" => (
                SCALE,
                json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
            ),
            "binding" => {
                paths.insert(format!("{item}/binding"), json!({
                    "post": op(format!("create{gv}{scope}{kind}Binding"), "post", format!("create binding of a {kind}"), &json!({"group": "", "version": "v1", "kind": "Binding"}), with_body(BINDING), responses(&[("200", "OK"), ("201", "Created"), ("202", "Accepted")], BINDING)),
                    "parameters": shared(true),
                }));
                continue;
            }
            // Namespaces' `finalize`: replace only, as upstream publishes it.
            "finalize" => {
                paths.insert(format!("{item}/finalize"), json!({
                    "put": op(format!("replace{gv}{scope}{kind}Finalize"), "put", format!("replace finalize of the specified {kind}"), &gvk, with_body(def), responses(&[("200", "OK"), ("201", "Created")], def)),
                    "parameters": shared(true),
                }));
                continue;
            }
            _ => continue,
        };
        let suffix = capitalize(sub);
        paths.insert(format!("{item}/{sub}"), json!({
            "get": op(format!("read{gv}{scope}{kind}{suffix}"), "get", format!("read {sub} of the specified {kind}"), &sub_gvk, vec![], responses(&[("200", "OK")], sub_def)),
            "put": op(format!("replace{gv}{scope}{kind}{suffix}"), "put", format!("replace {sub} of the specified {kind}"), &sub_gvk, with_body(sub_def), responses(&[("200", "OK"), ("201", "Created")], sub_def)),
            "patch": patch_op(op(format!("patch{gv}{scope}{kind}{suffix}"), "patch", format!("partially update {sub} of the specified {kind}"), &sub_gvk, patch.clone(), responses(&[("200", "OK"), ("201", "Created")], sub_def))),
            "parameters": shared(true),
        }));
    }

    if r.namespaced {
        paths.insert(format!("{prefix}/{}", r.plural), json!({
            "get": op(format!("list{gv}{kind}ForAllNamespaces"), "list", format!("list or watch objects of kind {kind}"), &gvk, list_params(), responses(&[("200", "OK")], list)),
        }));
    }
}

/// A patch takes its body in one of the patch media types, not any.
fn patch_op(mut op: Value) -> Value {
    op["consumes"] = json!([
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ]);
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_doc() -> Value {
        serde_json::from_slice(&v2(&Catalog::new())).expect("v2 is JSON")
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn v2_definitions() {
        let doc = v2_doc();
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(
            doc["info"],
            json!({"title": "Kubernetes", "version": "v1.33.0"})
        );
        let defs = doc["definitions"].as_object().expect("definitions");
        let deployment = &defs["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment[GVK],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        assert_eq!(
            deployment["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        for r in Catalog::new().resources() {
            let def = kind_definition(defs, r.group, r.version, r.kind)
                .unwrap_or_else(|| panic!("no definition for {}", r.kind));
            let list = format!("{}List", r.kind);
            assert!(
                kind_definition(defs, r.group, r.version, &list) == Some(format!("{def}List")),
                "no {list}"
            );
        }
        // Served in core/v1, contained by apps/v1's StatefulSet: still annotated.
        assert!(defs["io.k8s.api.core.v1.PersistentVolumeClaim"][GVK].is_array());
        assert_eq!(
            defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
            "int-or-string"
        );
        assert_eq!(defs[QUANTITY]["type"], "string");
        let text = doc.to_string();
        // (JSONSchemaProps has a property of that name: the extension is the one set true.)
        for gone in [
            "#/components/",
            "#/$defs/",
            "\"x-kubernetes-int-or-string\":true",
        ] {
            assert!(!text.contains(gone), "{gone} left in v2");
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let name = r.strip_prefix(V2_REFS).unwrap_or(r);
            assert!(defs.contains_key(name), "dangling {r}");
        }
    }

    #[test]
    fn v2_paths() {
        let doc = v2_doc();
        let paths = doc["paths"].as_object().expect("paths");
        let gvk = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        let deployment = json!({"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"});

        let p = &paths["/apis/apps/v1/namespaces/{namespace}/deployments"];
        assert_eq!(p["get"]["operationId"], "listAppsV1NamespacedDeployment");
        assert_eq!(p["get"]["x-kubernetes-action"], "list");
        assert_eq!(p["get"][GVK], gvk);
        assert_eq!(
            p["get"]["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.DeploymentList"
        );
        assert_eq!(p["parameters"][0]["name"], "namespace");
        let post = &p["post"];
        assert_eq!(post["x-kubernetes-action"], "post");
        assert_eq!(post[GVK], gvk);
        let params = post["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["in"] == "body" && p["schema"] == deployment)
        );
        assert!(params.iter().any(|p| p["name"] == "fieldValidation"));
        assert_eq!(post["responses"]["201"]["schema"], deployment);
        assert_eq!(p["delete"]["x-kubernetes-action"], "deletecollection");

        let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        for (method, action) in [
            ("get", "get"),
            ("put", "put"),
            ("patch", "patch"),
            ("delete", "delete"),
        ] {
            assert_eq!(item[method]["x-kubernetes-action"], action, "{method}");
            assert_eq!(item[method][GVK], gvk, "{method}");
        }
        assert_eq!(item["put"]["responses"]["200"]["schema"], deployment);
        assert_eq!(
            item["patch"]["parameters"][0]["schema"]["$ref"],
            format!("{V2_REFS}{PATCH}")
        );
        assert_eq!(
            paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"][GVK]["kind"],
            "Scale"
        );
        assert_eq!(
            paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]["put"]["operationId"],
            "replaceAppsV1NamespacedDeploymentStatus"
        );
        assert_eq!(
            paths["/apis/apps/v1/deployments"]["get"]["operationId"],
            "listAppsV1DeploymentForAllNamespaces"
        );
        assert_eq!(
            paths["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["get"]["operationId"],
            "listRbacAuthorizationV1ClusterRole"
        );
        assert_eq!(
            paths["/api/v1/nodes/{name}"]["get"]["tags"],
            json!(["core_v1"])
        );
        assert_eq!(
            paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"][GVK]["kind"],
            "Binding"
        );

        // Every served resource, every operation annotated.
        for r in Catalog::new().resources() {
            let scope = if r.namespaced {
                "/namespaces/{namespace}"
            } else {
                ""
            };
            let collection = format!("/{}{scope}/{}", gv_path(r.group, r.version), r.plural);
            assert!(paths.contains_key(&collection), "{collection}");
            assert!(
                paths.contains_key(&format!("{collection}/{{name}}")),
                "{collection}"
            );
        }
        for (path, item) in paths {
            for (method, op) in item.as_object().into_iter().flatten() {
                if method == "parameters" {
                    continue;
                }
                assert!(op["x-kubernetes-action"].is_string(), "{method} {path}");
                assert!(op[GVK]["kind"].is_string(), "{method} {path}");
                assert!(
                    op["responses"]["200"]["schema"]["$ref"].is_string(),
                    "{method} {path}"
                );
            }
        }
    }
}
