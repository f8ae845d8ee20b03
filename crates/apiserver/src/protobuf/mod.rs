//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which kubectl sends for
//! `create configmap|secret|namespace|deployment|...` and client-go programs configured for
//! protobuf send for everything: the `k8s\0` magic, a `runtime.Unknown` envelope naming
//! apiVersion and kind, and the object in Kubernetes' protobuf encoding.
//!
//! A small wire decoder driven by tables generated at build time from upstream's Go API
//! types (`build.rs`, `protobuf-schema/`): every message of every built-in kind, with its
//! field numbers, JSON names and Go semantics (a pointer's zero is kept, a value field's zero
//! only without omitempty). Fields a newer client sends that the tables lack are skipped.
//! Kinds without a message (custom kinds, rkube's own) get a 415 that says to send JSON.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

const MAGIC: &[u8] = b"k8s\0";

/// Request bodies of subresources (not kinds of their own) that may be protobuf:
/// `kubectl create token` posts a TokenRequest.
const SUBRESOURCE_BODIES: [(&str, &str, &str); 1] =
    [("authentication.k8s.io", "v1", "TokenRequest")];

use crate::go_types::Ty::*;
use crate::go_types::{Ty, message_of, schema};

fn bad(m: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to decode the protobuf body: {m}"))
}

/// One wire field's value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width number: no field of the tables is one, so only skipped.
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> ApiResult<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn take(&mut self, len: usize) -> ApiResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("truncated field"))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn next(&mut self) -> ApiResult<Option<(u64, Wire<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
                Wire::Bytes(self.take(len)?)
            }
            t => return Err(bad(format!("unsupported wire type {t}"))),
        };
        Ok(Some((key >> 3, wire)))
    }
}

/// A small message as (field number → value) pairs, for the wrapper types.
fn fields(buf: &[u8]) -> ApiResult<Vec<(u64, Wire<'_>)>> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

fn string(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("a string is not UTF-8"))
}

/// Field 1 of a wrapper message as bytes (Quantity's string, RawExtension's and FieldsV1's
/// raw JSON).
fn first_bytes(b: &[u8]) -> ApiResult<&[u8]> {
    for (no, w) in fields(b)? {
        if let (1, Wire::Bytes(s)) = (no, w) {
            return Ok(s);
        }
    }
    Ok(&[])
}

/// Raw JSON bytes inlined (RawExtension, FieldsV1); empty is null.
fn raw_json(b: &[u8]) -> ApiResult<Value> {
    let raw = first_bytes(b)?;
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| bad(format!("embedded JSON: {e}")))
}

/// A `metav1.Time` / `MicroTime` (seconds 1, nanos 2) as Kubernetes writes it; Go writes an
/// unset time as an empty message: JSON null, left out.
fn timestamp(b: &[u8], micro: bool) -> ApiResult<Option<Value>> {
    let (mut secs, mut nanos) = (0i64, 0i64);
    for (no, w) in fields(b)? {
        match (no, w) {
            (1, Wire::Varint(s)) => secs = s as i64,
            (2, Wire::Varint(n)) => nanos = i64::from(n as i32),
            _ => {}
        }
    }
    if secs == 0 && nanos == 0 {
        return Ok(None);
    }
    let t = time::OffsetDateTime::from_unix_timestamp(secs).map_err(bad)?;
    Ok(Some(json!(if micro {
        let s = crate::meta::format_time(t);
        format!("{}.{:06}Z", s.trim_end_matches('Z'), nanos / 1000)
    } else {
        crate::meta::format_time(t)
    })))
}

/// Whether a decoded value is its type's zero (what omitempty leaves out).
fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// One value of type `ty`; `None` when Go's JSON would leave it out (an unset time).
fn value(ty: Ty, wire: Wire<'_>) -> ApiResult<Option<Value>> {
    Ok(match (ty, wire) {
        (Str, Wire::Bytes(b)) => Some(json!(string(b)?)),
        (Int, Wire::Varint(v)) => Some(json!(v as i64)),
        (Bool, Wire::Varint(v)) => Some(json!(v != 0)),
        (Bytes, Wire::Bytes(b)) => Some(json!(base64::engine::general_purpose::STANDARD.encode(b))),
        (Msg(m), Wire::Bytes(b)) => Some(message(m, b)?),
        (Time, Wire::Bytes(b)) => timestamp(b, false)?,
        (MicroTime, Wire::Bytes(b)) => timestamp(b, true)?,
        (Quantity, Wire::Bytes(b)) => {
            let q = first_bytes(b)?;
            Some(json!(if q.is_empty() { "0".into() } else { string(q)? }))
        }
        (IntOrString, Wire::Bytes(b)) => {
            let (mut kind, mut int, mut s) = (0, 0i64, String::new());
            for (no, w) in fields(b)? {
                match (no, w) {
                    (1, Wire::Varint(v)) => kind = v,
                    (2, Wire::Varint(v)) => int = i64::from(v as i32),
                    (3, Wire::Bytes(v)) => s = string(v)?,
                    _ => {}
                }
            }
            Some(if kind == 1 { json!(s) } else { json!(int) })
        }
        (RawExtension | FieldsV1, Wire::Bytes(b)) => Some(raw_json(b)?),
        (StrList, Wire::Bytes(b)) => {
            let mut items = Vec::new();
            for (no, w) in fields(b)? {
                if let (1, Wire::Bytes(s)) = (no, w) {
                    items.push(json!(string(s)?));
                }
            }
            Some(Value::Array(items))
        }
        _ => return Err(bad("a field's wire type does not match its schema")),
    })
}

/// A map entry message: key (1) and value (2).
fn entry(b: &[u8], ty: Ty) -> ApiResult<(String, Value)> {
    let (mut key, mut value) = (String::new(), None);
    for (no, w) in fields(b)? {
        match no {
            1 => {
                if let Wire::Bytes(k) = w {
                    key = string(k)?;
                }
            }
            2 => value = self::value(ty, w)?,
            _ => {}
        }
    }
    // A missing value is the type's zero.
    let value = match (value, ty) {
        (Some(v), _) => v,
        (None, Quantity) => json!("0"),
        (None, Str | Bytes) => json!(""),
        (None, Int) => json!(0),
        (None, Bool) => json!(false),
        (None, StrList) => json!([]),
        (None, _) => json!({}),
    };
    Ok((key, value))
}

/// Appends the elements of a repeated scalar field: one per wire field, or several packed
/// into one length-delimited field.
fn push_repeated(list: &mut Vec<Value>, ty: Ty, wire: Wire<'_>) -> ApiResult<()> {
    match (ty, wire) {
        (Int | Bool, Wire::Bytes(packed)) => {
            let mut r = Reader {
                buf: packed,
                pos: 0,
            };
            while r.pos < packed.len() {
                let v = r.varint()?;
                list.push(if matches!(ty, Bool) {
                    json!(v != 0)
                } else {
                    json!(v as i64)
                });
            }
        }
        (ty, wire) => {
            if let Some(v) = value(ty, wire)? {
                list.push(v);
            }
        }
    }
    Ok(())
}

fn message(name: &str, buf: &[u8]) -> ApiResult<Value> {
    let schema = schema(name).ok_or_else(|| bad(format!("no schema for {name}")))?;
    let mut out = Map::new();
    let mut r = Reader { buf, pos: 0 };
    while let Some((no, wire)) = r.next()? {
        let Some(field) = schema.iter().find(|f| f.no == no) else {
            continue;
        };
        match field.ty {
            Map(value_ty) => {
                let Wire::Bytes(b) = wire else {
                    return Err(bad("a map entry is not length-delimited"));
                };
                let (k, v) = entry(b, *value_ty)?;
                if let Value::Object(m) = out.entry(field.name).or_insert_with(|| json!({})) {
                    m.insert(k, v);
                }
            }
            Inline(m) => {
                let Wire::Bytes(b) = wire else {
                    return Err(bad("an embedded message is not length-delimited"));
                };
                if let Value::Object(inner) = message(m, b)? {
                    out.extend(inner);
                }
            }
            // In a list every element counts (`apiGroups: [""]` is the core group).
            ty if field.repeated => {
                if let Value::Array(a) = out.entry(field.name).or_insert_with(|| json!([])) {
                    push_repeated(a, ty, wire)?;
                }
            }
            ty => {
                let Some(v) = value(ty, wire)? else { continue };
                if field.keep_zero || !is_zero(&v) {
                    out.insert(field.name.to_string(), v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf request body into the object's JSON.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf prefix"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (no, w) in fields(rest)? {
        match (no, w) {
            (1, Wire::Bytes(type_meta)) => {
                for (n, w) in fields(type_meta)? {
                    match (n, w) {
                        (1, Wire::Bytes(v)) => api_version = string(v)?,
                        (2, Wire::Bytes(k)) => kind = string(k)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    // Kubernetes' own kinds (and subresource bodies such as TokenRequest) have messages;
    // custom kinds and rkube's own do not.
    let builtin = crate::kinds::by_gvk(group, version, &kind)
        .and_then(|k| k.typed())
        .is_some_and(|t| t.is_builtin());
    let subresource_body = SUBRESOURCE_BODIES
        .iter()
        .any(|(g, v, k)| (*g, *v, *k) == (group, version, kind.as_str()));
    let top = message_of(group, version, &kind);
    if !(builtin || subresource_body) || schema(&top).is_none() {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "protobuf request bodies for {api_version} {kind} are not supported by this server: send JSON (application/json)"
            ),
        ));
    }
    let mut obj = message(&top, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod encoded_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_kubectl_create_configmap_sends() {
        // Recorded from kubectl 1.33: `kubectl create configmap cm1 --from-literal=a=b`.
        let body = b"k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12\x1d\n\x13\n\x03cm1\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12\x06\n\x01a\x12\x01b\x1a\x00\"\x00";
        assert_eq!(
            decode(body).unwrap(),
            json!({"metadata": {"name": "cm1"}, "data": {"a": "b"}, "apiVersion": "v1", "kind": "ConfigMap"})
        );
    }

    #[test]
    fn decodes_what_kubectl_create_namespace_sends() {
        let body = b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1b\n\x13\n\x03foo\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00\"\x00";
        assert_eq!(
            decode(body).unwrap(),
            // The empty status kubectl sends is kept: Go's JSON writes a struct even when empty.
            json!({"metadata": {"name": "foo"}, "spec": {}, "status": {}, "apiVersion": "v1", "kind": "Namespace"})
        );
    }

    #[test]
    fn both_autoscaling_versions_take_it() {
        // v1 and v2 HorizontalPodAutoscalers are different messages, both generated.
        let hpa = |api_version: &str| {
            let mut body = b"k8s\x00\n".to_vec();
            let type_meta = [
                &[0x0a, api_version.len() as u8][..],
                api_version.as_bytes(),
                b"\x12\x17HorizontalPodAutoscaler",
            ]
            .concat();
            body.push(type_meta.len() as u8);
            body.extend(type_meta);
            body.extend(b"\x12\x00");
            decode(&body)
        };
        for v in ["autoscaling/v1", "autoscaling/v2"] {
            assert_eq!(
                hpa(v).unwrap(),
                json!({"apiVersion": v, "kind": "HorizontalPodAutoscaler"})
            );
        }
    }

    #[test]
    fn unknown_kinds_are_415() {
        let body = b"k8s\x00\n\x15\n\x09policy/v1\x12\x08Eviction\x12\x00";
        assert_eq!(decode(body).unwrap_err().code, 415);
    }
}
