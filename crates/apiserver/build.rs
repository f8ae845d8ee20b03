//! Derives the protobuf message tables from upstream's Go API types (`protobuf-schema/`,
//! `k8s.io/api` and `k8s.io/apimachinery` at the release rkube serves): each struct field's
//! `protobuf:"..."` tag gives its number, its `json:"..."` tag its JSON name and omitempty,
//! and its Go type whether it is a pointer, a list, a map or a message. The API server's
//! protobuf decoder (`src/protobuf/`), strategic merge patch, server-side apply and the
//! OpenAPI extensions (`src/openapi_extensions.rs`) read the generated tables: with each
//! field also its `patchStrategy`/`patchMergeKey` tags and `+listType`/`+listMapKey`
//! markers, and the structs marked `+structType=atomic`.
//!
//! The Go files are parsed line by line: struct fields in `k8s.io/api` are always one line
//! (`Name Type `tags``, or `Type `tags`` when embedded). A type this cannot place stops the
//! build, so a new upstream file cannot silently lose fields.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const SCHEMA_DIR: &str = "protobuf-schema";

/// One Go package: its structs, named types and imports.
#[derive(Default)]
struct Package {
    structs: Vec<(String, Vec<GoField>)>,
    /// Structs marked `+structType=atomic`.
    atomic: Vec<String>,
    /// `type X Y` (and `type X = Y`): X's underlying type expression.
    named: HashMap<String, String>,
    /// Import alias → package key (`metav1` → `meta/v1`).
    imports: HashMap<String, String>,
}

struct GoField {
    go_type: String,
    json: String,
    omitempty: bool,
    inline: bool,
    number: u32,
    /// `patchStrategy` / `patchMergeKey` struct tags.
    patch_strategy: String,
    patch_merge_key: String,
    /// `+listType` / `+listMapKey` markers of the field's comment.
    list_type: String,
    list_map_keys: Vec<String>,
}

/// The package key of an import path: `core/v1`, `meta/v1`, or the special packages.
fn package_key(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("k8s.io/api/") {
        return rest.to_string();
    }
    match path {
        "k8s.io/apimachinery/pkg/apis/meta/v1" => "meta/v1".into(),
        other => other.to_string(),
    }
}

fn tag<'a>(tags: &'a str, key: &str) -> Option<&'a str> {
    let start = tags.find(&format!("{key}:\""))? + key.len() + 2;
    let end = tags[start..].find('"')? + start;
    Some(&tags[start..end])
}

fn parse(text: &str) -> Package {
    let mut p = Package::default();
    let mut in_imports = false;
    let mut current: Option<(String, Vec<GoField>)> = None;
    // The markers (`+listType=map`) of the comment above the next field or type.
    let mut markers: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(c) = t.strip_prefix("//") {
            if let Some(m) = c.trim().strip_prefix('+') {
                markers.push(m.to_string());
            }
            continue;
        }
        let markers = std::mem::take(&mut markers);
        let marker = |key: &str| -> Vec<String> {
            markers
                .iter()
                .filter_map(|m| m.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
                .collect()
        };
        if t == "import (" {
            in_imports = true;
            continue;
        }
        if in_imports {
            if t == ")" {
                in_imports = false;
            } else if let Some(q) = t.find('"') {
                let path = t[q + 1..].trim_end_matches('"');
                let alias = t[..q].trim();
                let alias = if alias.is_empty() {
                    path.rsplit('/').next().unwrap_or(path).to_string()
                } else {
                    alias.to_string()
                };
                p.imports.insert(alias, package_key(path));
            }
            continue;
        }
        if let Some(rest) = t.strip_prefix("type ") {
            let mut parts = rest.splitn(2, ' ');
            let (Some(name), Some(def)) = (parts.next(), parts.next()) else {
                continue;
            };
            let def = def.trim().trim_start_matches("= ").trim();
            if def == "struct {" {
                if marker("structType").iter().any(|v| v == "atomic") {
                    p.atomic.push(name.to_string());
                }
                current = Some((name.to_string(), Vec::new()));
            } else if def != "struct{}" && !def.starts_with("interface") {
                p.named.insert(name.to_string(), def.to_string());
            }
            continue;
        }
        if t == "}" {
            if let Some(s) = current.take() {
                p.structs.push(s);
            }
            continue;
        }
        let Some((_, fields)) = current.as_mut() else {
            continue;
        };
        let Some(tick) = t.find('`') else { continue };
        let tags = &t[tick + 1..];
        let Some(proto) = tag(tags, "protobuf") else {
            continue;
        };
        let decl: Vec<&str> = t[..tick].split_whitespace().collect();
        let go_type = match decl.as_slice() {
            [ty] => ty.to_string(),
            [_, ty] => ty.to_string(),
            _ => continue,
        };
        let json = tag(tags, "json").unwrap_or("");
        let mut json_parts = json.split(',');
        let json_name = json_parts.next().unwrap_or("").to_string();
        let omitempty = json_parts.clone().any(|o| o == "omitempty");
        let inline = json_parts.any(|o| o == "inline") || (decl.len() == 1 && json_name.is_empty());
        let number = proto
            .split(',')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no field number in {t}"));
        fields.push(GoField {
            go_type,
            json: json_name,
            omitempty,
            inline,
            number,
            patch_strategy: tag(tags, "patchStrategy").unwrap_or("").to_string(),
            patch_merge_key: tag(tags, "patchMergeKey").unwrap_or("").to_string(),
            list_type: marker("listType").into_iter().next().unwrap_or_default(),
            list_map_keys: marker("listMapKey"),
        });
    }
    p
}

/// What the decoder does with one field's value (the `Ty` of `src/protobuf/mod.rs`).
enum Kind {
    Str,
    Int,
    Bool,
    Bytes,
    Msg(String),
    Time,
    MicroTime,
    Quantity,
    IntOrString,
    RawExtension,
    FieldsV1,
    /// A map with string keys; the value's kind.
    Map(Box<Kind>),
    /// A named `[]string` inside a map value (`ExtraValue`): a message of repeated field 1.
    StrList,
}

impl Kind {
    fn rust(&self) -> String {
        match self {
            Kind::Str => "Str".into(),
            Kind::Int => "Int".into(),
            Kind::Bool => "Bool".into(),
            Kind::Bytes => "Bytes".into(),
            Kind::Msg(m) => format!("Msg({m:?})"),
            Kind::Time => "Time".into(),
            Kind::MicroTime => "MicroTime".into(),
            Kind::Quantity => "Quantity".into(),
            Kind::IntOrString => "IntOrString".into(),
            Kind::RawExtension => "RawExtension".into(),
            Kind::FieldsV1 => "FieldsV1".into(),
            Kind::StrList => "StrList".into(),
            Kind::Map(v) => format!("Map(&{})", v.rust()),
        }
    }
}

/// A field's Go type resolved: kind, list, pointer.
struct Resolved {
    kind: Kind,
    repeated: bool,
    pointer: bool,
}

fn resolve(pkgs: &BTreeMap<String, Package>, pkg: &str, ty: &str) -> Resolved {
    let (pointer, ty) = match ty.strip_prefix('*') {
        Some(t) => (true, t),
        None => (false, ty),
    };
    if ty == "[]byte" {
        return Resolved {
            kind: Kind::Bytes,
            repeated: false,
            pointer,
        };
    }
    if let Some(elem) = ty.strip_prefix("[]") {
        let inner = resolve(pkgs, pkg, elem.trim_start_matches('*'));
        return Resolved {
            kind: inner.kind,
            repeated: true,
            pointer,
        };
    }
    if let Some(rest) = ty.strip_prefix("map[") {
        let close = rest
            .find(']')
            .unwrap_or_else(|| panic!("bad map type {ty}"));
        let value = &rest[close + 1..];
        let inner = resolve(pkgs, pkg, value);
        let kind = if inner.repeated {
            match inner.kind {
                Kind::Str => Kind::StrList,
                _ => panic!("map of lists {ty} in {pkg}"),
            }
        } else {
            inner.kind
        };
        return Resolved {
            kind: Kind::Map(Box::new(kind)),
            repeated: false,
            pointer,
        };
    }
    let scalar = |kind| Resolved {
        kind,
        repeated: false,
        pointer,
    };
    match ty {
        "string" => return scalar(Kind::Str),
        "int32" | "int64" | "int" | "uint32" | "uint64" => return scalar(Kind::Int),
        "bool" => return scalar(Kind::Bool),
        _ => {}
    }
    let (target_pkg, name) = match ty.split_once('.') {
        Some((alias, name)) => {
            let imported = pkgs
                .get(pkg)
                .and_then(|p| p.imports.get(alias))
                .unwrap_or_else(|| panic!("unknown import {alias} in {pkg}"));
            (imported.clone(), name)
        }
        None => (pkg.to_string(), ty),
    };
    let special = match (target_pkg.as_str(), name) {
        ("meta/v1", "Time") => Some(Kind::Time),
        ("meta/v1", "MicroTime") => Some(Kind::MicroTime),
        ("meta/v1", "FieldsV1") => Some(Kind::FieldsV1),
        ("k8s.io/apimachinery/pkg/api/resource", "Quantity") => Some(Kind::Quantity),
        ("k8s.io/apimachinery/pkg/util/intstr", "IntOrString") => Some(Kind::IntOrString),
        ("k8s.io/apimachinery/pkg/runtime", "RawExtension") => Some(Kind::RawExtension),
        ("k8s.io/apimachinery/pkg/types", _) => Some(Kind::Str),
        _ => None,
    };
    if let Some(kind) = special {
        return scalar(kind);
    }
    let target = pkgs
        .get(&target_pkg)
        .unwrap_or_else(|| panic!("type {ty} of {pkg}: package {target_pkg} not vendored"));
    if let Some(underlying) = target.named.get(name) {
        let mut r = resolve(pkgs, &target_pkg, underlying);
        r.pointer |= pointer;
        return r;
    }
    if target.structs.iter().any(|(n, _)| n == name) {
        return scalar(Kind::Msg(format!("{target_pkg}.{name}")));
    }
    panic!("type {ty} of {pkg} is not defined in the vendored files")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.file_name().is_some_and(|n| n == "types.go") {
            out.push(p);
        }
    }
}

/// The compiled-in types' JSON schemas (src/schemas.rs), compressed into the binary: about a
/// tenth of their size.
fn compress_schema_table() {
    use std::io::Write as _;
    const TABLE: &str = "schemas/builtin.json";
    println!("cargo:rerun-if-changed={TABLE}");
    // Missing only before the first generation (the generating test needs the crate built).
    let text = std::fs::read(TABLE).unwrap_or_else(|_| {
        println!("cargo:warning={TABLE} is missing: the built-in kinds have no schemas");
        br#"{"roots": {}, "defs": {}}"#.to_vec()
    });
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let out = z.write_all(&text).and_then(|()| z.finish());
    let out = out.unwrap_or_else(|e| panic!("compressing {TABLE}: {e}"));
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("{e}")))
        .join("builtin_schemas.json.z");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}

fn main() {
    compress_schema_table();
    println!("cargo:rerun-if-changed={SCHEMA_DIR}");
    let root = Path::new(SCHEMA_DIR);
    let mut paths = Vec::new();
    files(root, &mut paths);
    let mut pkgs = BTreeMap::new();
    for path in &paths {
        println!("cargo:rerun-if-changed={}", path.display());
        let rel = path
            .parent()
            .and_then(|p| p.strip_prefix(root).ok())
            .unwrap_or_else(|| panic!("{}", path.display()));
        let key = package_key(&rel.to_string_lossy().replace('\\', "/"));
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
        pkgs.insert(key, parse(&text));
    }
    let mut out = String::from(
        "// Generated by build.rs from protobuf-schema/ (upstream's Go API types): do not edit.\n\n",
    );
    out.push_str(
        "pub(crate) fn schema(message: &str) -> Option<&'static [Field]> {\n    Some(match message {\n",
    );
    for (key, p) in &pkgs {
        for (name, fields) in &p.structs {
            let _ = write!(out, "        {:?} => const {{ &[", format!("{key}.{name}"));
            for f in fields {
                let r = resolve(&pkgs, key, &f.go_type);
                let ty = if f.inline {
                    match r.kind {
                        Kind::Msg(m) => format!("Inline({m:?})"),
                        _ => panic!("inline non-struct {} in {key}.{name}", f.go_type),
                    }
                } else {
                    r.kind.rust()
                };
                // Zero values the decoder keeps: a pointer's (set), and a value field's that
                // Go's JSON writes anyway (no omitempty).
                let keep_zero = r.pointer || !f.omitempty;
                let _ = write!(
                    out,
                    "Field {{ no: {}, name: {:?}, ty: {ty}, repeated: {}, keep_zero: {keep_zero}, patch_strategy: {:?}, merge_key: {:?}, list_type: {:?}, list_map_keys: &{:?} }}, ",
                    f.number,
                    f.json,
                    r.repeated,
                    f.patch_strategy,
                    f.patch_merge_key,
                    f.list_type,
                    f.list_map_keys
                );
            }
            out.push_str("] },\n");
        }
    }
    out.push_str("        _ => return None,\n    })\n}\n\n");
    out.push_str("/// Every message the tables have.\npub(crate) static MESSAGES: &[&str] = &[\n");
    for (key, p) in &pkgs {
        for (name, _) in &p.structs {
            let _ = writeln!(out, "    {:?},", format!("{key}.{name}"));
        }
    }
    out.push_str("];\n\n/// The structs marked `+structType=atomic`.\npub(crate) static ATOMIC: &[&str] = &[\n");
    for (key, p) in &pkgs {
        for name in &p.atomic {
            let _ = writeln!(out, "    {:?},", format!("{key}.{name}"));
        }
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("{e}")));
    std::fs::write(out_dir.join("go_types.rs"), out).unwrap_or_else(|e| panic!("{e}"));
}
