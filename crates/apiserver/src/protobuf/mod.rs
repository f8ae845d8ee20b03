//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which kubectl sends for
//! `create configmap|secret|namespace|deployment|service|job|cronjob|serviceaccount`: the
//! `k8s\0` magic, a `runtime.Unknown` envelope naming apiVersion and kind, and the object in
//! Kubernetes' protobuf encoding.
//!
//! A small wire decoder driven by tables of the messages those commands produce (field
//! numbers and JSON names of Kubernetes' wire format), one module per API group; fields
//! outside the tables are skipped. A kind's registration ([`crate::kinds`]) says whether its
//! bodies may be protobuf; other kinds get a 415 that says to send JSON.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

const MAGIC: &[u8] = b"k8s\0";

/// Request bodies of subresources (not kinds of their own) that may be protobuf:
/// `kubectl create token` posts a TokenRequest.
const SUBRESOURCE_BODIES: [(&str, &str, &str); 1] =
    [("authentication.k8s.io", "v1", "TokenRequest")];

#[derive(Clone, Copy)]
enum Ty {
    Str,
    /// A Go value field: zero means unset (and JSON leaves it out).
    Int,
    Bool,
    /// A Go pointer field: present means set, zero included.
    OptInt,
    OptBool,
    Msg(&'static str),
    /// An embedded Go struct: its fields appear in the parent's JSON.
    Inline(&'static str),
    Time,
    IntOrString,
    MapStr,
    MapBytes,
    MapQuantity,
}

struct Field {
    no: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(no: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        no,
        name,
        ty,
        repeated: false,
    }
}

const fn r(no: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        no,
        name,
        ty,
        repeated: true,
    }
}

use Ty::*;

mod apps;
mod authentication;
mod authorization;
mod autoscaling;
mod batch;
mod core;
mod meta;
mod networking;
mod policy;
mod rbac;
mod scheduling;

/// The fields of a message, from the table of the group that defines it.
fn schema(message: &str) -> Option<&'static [Field]> {
    meta::schema(message)
        .or_else(|| core::schema(message))
        .or_else(|| apps::schema(message))
        .or_else(|| batch::schema(message))
        .or_else(|| autoscaling::schema(message))
        .or_else(|| networking::schema(message))
        .or_else(|| rbac::schema(message))
        .or_else(|| authentication::schema(message))
        .or_else(|| authorization::schema(message))
        .or_else(|| policy::schema(message))
        .or_else(|| scheduling::schema(message))
}

fn bad(m: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to decode the protobuf body: {m}"))
}

/// One wire field: its number and value (varint, or bytes for length-delimited).
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
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

    fn next(&mut self) -> ApiResult<Option<(u64, Wire<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 | 5 => {
                self.pos += if key & 7 == 1 { 8 } else { 4 };
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or_else(|| bad("truncated field"))?;
                let b = &self.buf[self.pos..end];
                self.pos = end;
                Wire::Bytes(b)
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

fn quantity(b: &[u8]) -> ApiResult<Value> {
    for (no, w) in fields(b)? {
        if let (1, Wire::Bytes(s)) = (no, w) {
            return Ok(json!(string(s)?));
        }
    }
    Ok(json!("0"))
}

/// A map entry message: key (1) and value (2).
fn entry(b: &[u8], ty: Ty) -> ApiResult<(String, Value)> {
    let (mut key, mut value) = (String::new(), Value::Null);
    for (no, w) in fields(b)? {
        match (no, w) {
            (1, Wire::Bytes(k)) => key = string(k)?,
            (2, Wire::Bytes(v)) => {
                value = match ty {
                    MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(v)),
                    MapQuantity => quantity(v)?,
                    _ => json!(string(v)?),
                }
            }
            _ => {}
        }
    }
    if value.is_null() {
        value = match ty {
            MapQuantity => json!("0"),
            _ => json!(""),
        };
    }
    Ok((key, value))
}

fn value(ty: Ty, wire: Wire<'_>) -> ApiResult<Option<Value>> {
    Ok(match (ty, wire) {
        (Str, Wire::Bytes(b)) => Some(json!(string(b)?)).filter(|v| v != ""),
        (Int, Wire::Varint(v)) => Some(json!(v as i64)).filter(|_| v != 0),
        (Bool, Wire::Varint(v)) => Some(json!(true)).filter(|_| v != 0),
        (OptInt, Wire::Varint(v)) => Some(json!(v as i64)),
        (OptBool, Wire::Varint(v)) => Some(json!(v != 0)),
        (Msg(m), Wire::Bytes(b)) => Some(message(m, b)?),
        (Time, Wire::Bytes(b)) => {
            let mut secs = 0i64;
            for (no, w) in fields(b)? {
                if let (1, Wire::Varint(s)) = (no, w) {
                    secs = s as i64;
                }
            }
            // Go writes an unset time as an empty message: JSON null, left out.
            if secs == 0 {
                None
            } else {
                let t = time::OffsetDateTime::from_unix_timestamp(secs).map_err(bad)?;
                Some(json!(crate::meta::format_time(t)))
            }
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
        _ => return Err(bad("a field's wire type does not match its schema")),
    })
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
            MapStr | MapBytes | MapQuantity => {
                let Wire::Bytes(b) = wire else {
                    return Err(bad("a map entry is not length-delimited"));
                };
                let (k, v) = entry(b, field.ty)?;
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
            // In a list an empty string is an element (`apiGroups: [""]` is the core group).
            Str if field.repeated => {
                let Wire::Bytes(b) = wire else {
                    return Err(bad("a string is not length-delimited"));
                };
                if let Value::Array(a) = out.entry(field.name).or_insert_with(|| json!([])) {
                    a.push(json!(string(b)?));
                }
            }
            ty => {
                let Some(v) = value(ty, wire)? else { continue };
                if field.repeated {
                    if let Value::Array(a) = out.entry(field.name).or_insert_with(|| json!([])) {
                        a.push(v);
                    }
                } else {
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
    // Top-level messages: the registered kinds that take protobuf, and subresource bodies.
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    let top = crate::kinds::by_gvk(group, version, &kind)
        .and_then(|k| k.protobuf())
        .or_else(|| {
            SUBRESOURCE_BODIES
                .iter()
                .find(|(g, v, k)| (*g, *v, *k) == (group, version, kind.as_str()))
                .map(|(_, _, k)| *k)
        });
    let Some(top) = top else {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "protobuf request bodies for {api_version} {kind} are not supported by this server yet: send JSON (application/json)"
            ),
        ));
    };
    let mut obj = message(top, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

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
            json!({"metadata": {"name": "foo"}, "spec": {}, "apiVersion": "v1", "kind": "Namespace"})
        );
    }

    #[test]
    fn only_the_versions_registered_for_protobuf_take_it() {
        // The v1 message has `targetCPUUtilizationPercentage`; v2 objects have no table here.
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
        assert_eq!(
            hpa("autoscaling/v1").unwrap(),
            json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler"})
        );
        assert_eq!(hpa("autoscaling/v2").unwrap_err().code, 415);
    }

    #[test]
    fn unknown_kinds_are_415() {
        let body = b"k8s\x00\n\x15\n\x09policy/v1\x12\x08Eviction\x12\x00";
        assert_eq!(decode(body).unwrap_err().code, 415);
    }
}
