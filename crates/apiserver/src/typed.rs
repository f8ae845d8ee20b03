//! Decoding as Kubernetes decodes: every object passes through its `k8s-openapi` type, so a
//! wrongly typed field is a 400, and fields the type does not have are dropped — or, with
//! `fieldValidation=Strict` (kubectl's default), refused with "strict decoding error:
//! unknown field". Custom kinds are pruned by their CRD's schema instead, with the same
//! reports.

use apiextensions::schema::Structural;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;

/// A kind's decoding: through its `k8s-openapi` (or own) type, or — for custom kinds —
/// through the pruning of its CRD's structural schema. What a registration holds
/// ([`crate::kinds`]).
pub struct Typed {
    codec: Codec,
}

enum Codec {
    /// Built in: decoded into the type and encoded again (the normalized object).
    Type {
        round_trip: fn(&Value) -> Result<Value, String>,
        /// `schema_for!` of the type, for generating [`crate::schemas`]' table.
        #[cfg(feature = "schemas")]
        generate: fn() -> Value,
    },
    /// Defined at run time: pruned by a schema.
    Schema(Box<dyn SchemaCodec>),
}

/// A run-time kind's decoding (a CRD version's structural schema).
pub trait SchemaCodec: Send + Sync {
    /// Drops the fields the schema does not declare; returns their paths (`spec.foo`).
    fn prune(&self, obj: &mut Value) -> Vec<String>;
    /// The kind's OpenAPI schema (for `/openapi`), with `$defs` if it refers to any.
    fn schema(&self) -> Value;
    /// The compiled structural schema (server-side apply merges lists by it).
    fn structural(&self) -> &Structural;
}

impl Typed {
    pub fn of<T>() -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + crate::schemas::Source,
    {
        Typed {
            codec: Codec::Type {
                round_trip: round_trip_as::<T>,
                #[cfg(feature = "schemas")]
                generate: || serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default(),
            },
        }
    }

    /// The type's schema as `schema_for!` makes it (a built-in kind; generating the table).
    #[cfg(feature = "schemas")]
    pub fn generate(&self) -> Option<Value> {
        match &self.codec {
            Codec::Type { generate, .. } => Some(generate()),
            Codec::Schema(_) => None,
        }
    }

    /// Decoding by a schema (a custom kind).
    pub fn by_schema(codec: impl SchemaCodec + 'static) -> Self {
        Typed {
            codec: Codec::Schema(Box::new(codec)),
        }
    }

    /// Whether this is a compiled-in type (which Go would encode with its zero values).
    pub fn is_builtin(&self) -> bool {
        matches!(self.codec, Codec::Type { .. })
    }

    /// A custom kind's compiled schema; `None` for a built-in kind.
    pub fn structural(&self) -> Option<&Structural> {
        match &self.codec {
            Codec::Type { .. } => None,
            Codec::Schema(c) => Some(c.structural()),
        }
    }

    fn schema(&self, info: &ResourceInfo) -> Option<Value> {
        match &self.codec {
            Codec::Type { .. } => crate::schemas::table().schema(&crate::schemas::kind_key(
                info.group,
                info.version,
                info.kind,
            )),
            Codec::Schema(c) => Some(c.schema()),
        }
    }
}

fn round_trip_as<T: serde::Serialize + serde::de::DeserializeOwned>(
    obj: &Value,
) -> Result<Value, String> {
    // From the borrowed tree: cloning the object first cost as much as decoding it.
    let t = <T as serde::Deserialize>::deserialize(obj).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// The kind's JSON schema (with `$defs`), from its type or CRD.
pub fn json_schema(info: &ResourceInfo) -> Option<Value> {
    crate::kinds::of(info).typed().and_then(|t| t.schema(info))
}

/// A step of a field path: a key or a list index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Paths (`spec.replica`) present in `original` but not in `typed`: the unknown fields.
/// Nulls are not fields. The path is kept as steps and spelled only for a field reported.
fn dropped<'a>(
    original: &'a Value,
    typed: &Value,
    path: &mut Vec<Step<'a>>,
    out: &mut Vec<String>,
) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                if v.is_null() {
                    continue;
                }
                path.push(Step::Key(k));
                match t.get(k) {
                    Some(tv) => dropped(v, tv, path, out),
                    None if is_empty(v) => {}
                    None => out.push(spell(path)),
                }
                path.pop();
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, (ov, tv)) in o.iter().zip(t).enumerate() {
                path.push(Step::Index(i));
                dropped(ov, tv, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `spec.containers[0].foo`, as Kubernetes' decoding errors name a field.
fn spell(path: &[Step<'_>]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Values the typed encoding leaves out even for known fields (empty optional lists/maps).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_empty),
        _ => false,
    }
}

/// What to do with fields the kind's type does not have (`fieldValidation`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in a `Warning` header (Kubernetes' default).
    #[default]
    Warn,
    /// Refuse the request (kubectl's default).
    Strict,
}

impl FieldValidation {
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
}

tokio::task_local! {
    /// Warnings for the request being served (sent as `Warning` headers).
    pub static WARNINGS: std::cell::RefCell<Vec<String>>;
}

/// Records a warning for the current request, if one is being served.
pub(crate) fn warn(message: String) {
    let _ = WARNINGS.try_with(|w| w.borrow_mut().push(message));
}

/// Normalizes `obj` through its type; unknown fields are dropped, warned about or refused as
/// `validation` says. Kinds without a type here pass unchanged.
pub fn decode(info: &ResourceInfo, obj: Value, validation: FieldValidation) -> ApiResult<Value> {
    let Some(typed) = crate::kinds::of(info).typed() else {
        return Ok(obj);
    };
    let cannot = |detail: String| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {detail}",
            info.kind, info.version, info.kind
        ))
    };
    let (out, unknown) = match &typed.codec {
        Codec::Type { round_trip, .. } => {
            let typed = round_trip(&obj).map_err(cannot)?;
            let mut unknown = Vec::new();
            if validation != FieldValidation::Ignore {
                dropped(&obj, &typed, &mut Vec::new(), &mut unknown);
            }
            // Keep the client's key order where it can be kept (typed encoding sorts keys).
            (reorder_like(&obj, typed, true), unknown)
        }
        Codec::Schema(codec) => {
            let mut obj = obj;
            let unknown = codec.prune(&mut obj);
            (obj, unknown)
        }
    };
    if validation != FieldValidation::Ignore && !unknown.is_empty() {
        let list = unknown.iter().map(|u| format!("unknown field \"{u}\""));
        match validation {
            FieldValidation::Strict => {
                return Err(cannot(format!(
                    "strict decoding error: {}",
                    list.collect::<Vec<_>>().join(", ")
                )));
            }
            FieldValidation::Warn => list.for_each(warn),
            FieldValidation::Ignore => {}
        }
    }
    Ok(out)
}

/// `typed` in `original`'s key order. Below the root, `apiVersion` and `kind` the typed
/// encoding writes for embedded resources (a StatefulSet's `volumeClaimTemplates`) stay only
/// if the client sent them: Go's embedded `TypeMeta` is `omitempty`.
fn reorder_like(original: &Value, typed: Value, root: bool) -> Value {
    match (original, typed) {
        (Value::Object(o), Value::Object(mut t)) => {
            // Taking values out in place (not removing keys, which shifts the rest of an
            // ordered map each time) keeps this linear in the object's size.
            let mut out = Map::new();
            for (k, ov) in o {
                if let Some(tv) = t.get_mut(k) {
                    out.insert(k.clone(), reorder_like(ov, tv.take(), false));
                }
            }
            for (k, tv) in t {
                if !o.contains_key(&k) && (root || (k != "apiVersion" && k != "kind")) {
                    out.insert(k, tv);
                }
            }
            Value::Object(out)
        }
        (Value::Array(o), Value::Array(t)) => {
            let mut items: Vec<Value> = Vec::with_capacity(t.len());
            for (i, tv) in t.into_iter().enumerate() {
                items.push(match o.get(i) {
                    Some(ov) => reorder_like(ov, tv, false),
                    None => tv,
                });
            }
            Value::Array(items)
        }
        (_, t) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> ResourceInfo {
        crate::resources::all()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap()
    }

    #[test]
    fn unknown_fields() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replica": 3, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicyy": "x"}]}}}});
        let err = decode(&deployments(), d.clone(), FieldValidation::Strict).unwrap_err();
        assert!(
            err.message
                .contains("strict decoding error: unknown field \"spec.replica\""),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("spec.template.spec.containers[0].imagePullPolicyy"),
            "{}",
            err.message
        );
        let pruned = decode(&deployments(), d, FieldValidation::Ignore).unwrap();
        assert!(pruned.pointer("/spec/replica").is_none());
        assert_eq!(
            pruned.pointer("/spec/template/spec/containers/0/name"),
            Some(&json!("c"))
        );
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "three"}});
        let err = decode(&deployments(), d, FieldValidation::Ignore).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("cannot be handled as a Deployment"),
            "{}",
            err.message
        );
    }

    /// Upstream's serialized fixtures (every field set) pass through rkube's decoding and
    /// the always-written-fields pass unchanged: no field upstream writes is dropped, renamed
    /// or reformatted, and nothing is added to a complete object.
    #[test]
    fn upstream_fixtures_survive_decoding() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/testdata/upstream-v1.33.0");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let fixture: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let api_version = fixture["apiVersion"].as_str().unwrap();
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let kind = fixture["kind"].as_str().unwrap();
            let info = crate::resources::all()
                .into_iter()
                .find(|r| r.group == group && r.version == version && r.kind == kind)
                .unwrap_or_else(|| panic!("{} is not served", path.display()));
            let decoded = decode(&info, fixture.clone(), FieldValidation::Strict)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut diffs = Vec::new();
            differences(&fixture, &decoded, String::new(), &mut diffs);
            assert!(diffs.is_empty(), "{}: {diffs:#?}", path.display());
            let mut filled = decoded.clone();
            crate::zero_fields::fill(&info, &mut filled);
            assert_eq!(
                filled,
                decoded,
                "{}: filling changed a complete object",
                path.display()
            );
            seen += 1;
        }
        assert_eq!(seen, 9, "the fixtures in {}", dir.display());
    }

    fn differences(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                    match (x.get(k), y.get(k)) {
                        (Some(p), Some(q)) => differences(p, q, format!("{at}.{k}"), out),
                        (p, q) => out.push(format!("{at}.{k}: {p:?} vs {q:?}")),
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    differences(p, q, format!("{at}[{i}]"), out);
                }
            }
            (p, q) if p != q => out.push(format!("{at}: {p} vs {q}")),
            _ => {}
        }
    }
}
