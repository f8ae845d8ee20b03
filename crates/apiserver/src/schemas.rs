//! The JSON schemas of the compiled-in types (what `/openapi`, the Go zero values and custom
//! kinds' `metadata` are built from), read from a table made ahead of time rather than
//! generated at run time: schemars and k8s-openapi's `JsonSchema` impls were over 2 MB of
//! the release binary.
//!
//! `schemas/builtin.json` holds, for each served kind (`group/version/Kind`) and each extra
//! type (by definition name), the root schema `schemars::schema_for!` makes, and every
//! definition they refer to once. `build.rs` compresses it into the binary; it is parsed
//! when first needed and dropped when the last user lets go of it ([`table`]).
//!
//! The table is generated from the types themselves by a test built with the `schemas`
//! feature (which every `cargo test` of this crate has, through its dev-dependency on
//! itself): it fails when the file is stale, and
//! `RKUBE_UPDATE_SCHEMAS=1 cargo test -p rkube-apiserver --lib schemas` writes it again.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::{Arc, Mutex, Weak};

use serde_json::{Map, Value};

/// What [`crate::kinds::KindRegistration::of`] asks of a type: its `JsonSchema` when the
/// table is being generated, nothing otherwise.
#[cfg(feature = "schemas")]
pub trait Source: schemars::JsonSchema {}
#[cfg(feature = "schemas")]
impl<T: schemars::JsonSchema> Source for T {}
#[cfg(not(feature = "schemas"))]
pub trait Source {}
#[cfg(not(feature = "schemas"))]
impl<T> Source for T {}

static COMPRESSED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/builtin_schemas.json.z"));

/// Where references into the definitions point (schemars' layout).
const DEFS_PREFIX: &str = "#/$defs/";

/// The parsed table.
pub struct Table {
    roots: Map<String, Value>,
    defs: Map<String, Value>,
}

/// The table, shared while anyone holds it: hold the `Arc` across a loop of lookups.
pub fn table() -> Arc<Table> {
    static CURRENT: Mutex<Weak<Table>> = Mutex::new(Weak::new());
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = current.upgrade() {
        return t;
    }
    let t = Arc::new(parse(COMPRESSED));
    *current = Arc::downgrade(&t);
    t
}

fn parse(compressed: &[u8]) -> Table {
    let mut text = Vec::new();
    let parsed = flate2::read::ZlibDecoder::new(compressed)
        .read_to_end(&mut text)
        .ok()
        .and_then(|_| serde_json::from_slice::<Value>(&text).ok());
    let mut doc = match parsed {
        Some(Value::Object(doc)) => doc,
        // Built from a file the generating test checks: cannot happen in a build that passed.
        _ => {
            tracing::error!("the built-in schema table is unreadable");
            Map::new()
        }
    };
    let mut take = |k: &str| match doc.remove(k) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Table {
        roots: take("roots"),
        defs: take("defs"),
    }
}

/// The table's key of a served kind.
pub fn kind_key(group: &str, version: &str, kind: &str) -> String {
    format!("{group}/{version}/{kind}")
}

impl Table {
    /// The schema of a kind or extra type (`key`: [`kind_key`], or a definition name for the
    /// extra types), with `$defs` for what it refers to, as `schema_for!` makes it.
    pub fn schema(&self, key: &str) -> Option<Value> {
        self.roots.get(key).map(|root| self.with_defs(root.clone()))
    }

    /// `root` with `$defs` holding every definition it refers to, directly or not.
    /// Definitions `root` already has (types of its own) are kept, and what they refer to
    /// added too.
    pub fn with_defs(&self, mut root: Value) -> Value {
        let mut defs = match root.as_object_mut().and_then(|m| m.remove("$defs")) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut names = BTreeSet::new();
        let mut pending = Vec::new();
        refs(&root, &mut pending);
        defs.values().for_each(|d| refs(d, &mut pending));
        while let Some(name) = pending.pop() {
            if names.insert(name.clone())
                && let Some(def) = self.defs.get(&name)
            {
                refs(def, &mut pending);
            }
        }
        for name in names {
            if let Some(def) = self.defs.get(&name)
                && !defs.contains_key(&name)
            {
                defs.insert(name, def.clone());
            }
        }
        if let Value::Object(m) = &mut root
            && !defs.is_empty()
        {
            m.insert("$defs".into(), Value::Object(defs));
        }
        root
    }
}

/// The definition names `v` refers to (`{"$ref": "#/$defs/<name>"}`), outside its own `$defs`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(DEFS_PREFIX) {
                            out.push(name.to_string());
                        }
                    }
                    ("$defs", _) => {}
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Generating the table from the types (the `schemas` feature, in tests).
#[cfg(all(test, feature = "schemas"))]
mod generate {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The path of the checked-in table.
    fn path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/builtin.json")
    }

    fn schema_as<T: schemars::JsonSchema>() -> Value {
        serde_json::to_value(schemars::schema_for!(T)).unwrap()
    }

    /// The types the OpenAPI documents and custom kinds use besides the served kinds.
    fn extras() -> Vec<(&'static str, Value)> {
        use k8s_openapi::api::{autoscaling::v1::Scale, core::v1::Binding};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
        vec![
            (crate::schemas::LIST_META, schema_as::<meta::ListMeta>()),
            (
                crate::schemas::DELETE_OPTIONS,
                schema_as::<meta::DeleteOptions>(),
            ),
            (crate::schemas::PATCH, schema_as::<meta::Patch>()),
            (crate::schemas::STATUS, schema_as::<meta::Status>()),
            (crate::schemas::SCALE, schema_as::<Scale>()),
            (crate::schemas::BINDING, schema_as::<Binding>()),
            (crate::schemas::OBJECT_META, schema_as::<meta::ObjectMeta>()),
        ]
    }

    /// The table's JSON, one root or definition per line (so a change reads as a diff).
    fn render() -> String {
        let mut roots = std::collections::BTreeMap::new();
        let mut defs = std::collections::BTreeMap::new();
        let mut add = |key: String, mut schema: Value| {
            if let Some(Value::Object(d)) = schema.as_object_mut().and_then(|m| m.remove("$defs")) {
                for (name, def) in d {
                    if let Some(old) = defs.insert(name.clone(), def.clone()) {
                        assert_eq!(old, def, "two schemas named {name}");
                    }
                }
            }
            roots.insert(key, schema);
        };
        for info in crate::resources::all() {
            let Some(schema) = crate::kinds::of(&info).typed().and_then(|t| t.generate()) else {
                continue;
            };
            add(kind_key(info.group, info.version, info.kind), schema);
        }
        for (name, schema) in extras() {
            add(name.to_string(), schema);
        }
        let section = |m: &std::collections::BTreeMap<String, Value>| {
            m.iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        serde_json::to_string(k).unwrap(),
                        serde_json::to_string(v).unwrap()
                    )
                })
                .collect::<Vec<_>>()
                .join(",\n")
        };
        format!(
            "{{\"roots\": {{\n{}\n}},\n\"defs\": {{\n{}\n}}}}\n",
            section(&roots),
            section(&defs)
        )
    }

    #[test]
    fn the_checked_in_table_is_what_the_types_generate() {
        let fresh = render();
        if std::env::var_os("RKUBE_UPDATE_SCHEMAS").is_some() {
            std::fs::write(path(), &fresh).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(path()).unwrap_or_default();
        assert!(
            checked_in == fresh,
            "{} is stale: run `RKUBE_UPDATE_SCHEMAS=1 cargo test -p rkube-apiserver --lib schemas`",
            path().display()
        );
    }

    #[test]
    fn every_kind_reads_back_as_generated() {
        let table = table();
        for info in crate::resources::all() {
            let Some(generated) = crate::kinds::of(&info).typed().and_then(|t| t.generate()) else {
                continue;
            };
            let key = kind_key(info.group, info.version, info.kind);
            assert_eq!(table.schema(&key), Some(generated), "{key}");
        }
        for (name, generated) in extras() {
            assert_eq!(table.schema(name), Some(generated), "{name}");
        }
    }
}

/// Definition names of the extra types.
pub const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
pub const BINDING: &str = "io.k8s.api.core.v1.Binding";
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn a_root_gets_the_definitions_it_reaches() {
        let t = Table {
            roots: Map::new(),
            defs: serde_json::from_value(json!({
                "A": {"properties": {"b": {"$ref": "#/$defs/B"}}},
                "B": {"items": {"$ref": "#/$defs/C"}},
                "C": {"type": "string"},
                "D": {"type": "integer"},
            }))
            .unwrap(),
        };
        let out = t.with_defs(json!({"properties": {"a": {"$ref": "#/$defs/A"}}}));
        let defs = out["$defs"].as_object().unwrap();
        let names: Vec<&str> = defs.keys().map(String::as_str).collect();
        assert_eq!(names, ["A", "B", "C"]);
        // Nothing to refer to: no `$defs` at all.
        assert_eq!(
            t.with_defs(json!({"type": "string"})),
            json!({"type": "string"})
        );
    }

    #[test]
    fn the_built_in_table_has_pods_and_object_meta() {
        let t = table();
        let pod = t.schema(&kind_key("", "v1", "Pod")).unwrap();
        assert!(pod["properties"]["spec"].is_object(), "{pod}");
        assert!(pod["$defs"]["io.k8s.api.core.v1.PodSpec"].is_object());
        let meta = t.schema(OBJECT_META).unwrap();
        assert!(meta["properties"]["labels"].is_object(), "{meta}");
    }
}
