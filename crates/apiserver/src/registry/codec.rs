//! How objects are stored: the layout of their bytes (`apiVersion`, `kind`, `metadata` first;
//! no `resourceVersion`, which the store's revision stands for), encryption at rest around
//! them, and the storage version they are converted from and to.

use bytes::Bytes;
use serde_json::Value;

use crate::conversion;
use crate::encryption::{Opened, Transformer};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::resources::ResourceInfo;

/// The stored bytes as plaintext: decrypted when the resource is encrypted at rest, with
/// whether a rewrite would store them differently (written with an older key).
pub(super) fn unseal<'a>(
    tf: Option<&Transformer>,
    kv: &'a store::KeyValue,
) -> ApiResult<Opened<'a>> {
    match tf {
        None => Ok(Opened {
            data: std::borrow::Cow::Borrowed(&kv.value[..]),
            stale: false,
        }),
        Some(t) => t.from_storage(&kv.key, &kv.value).map_err(|e| {
            tracing::warn!(key = %kv.key, error = %e, "cannot decrypt a stored object");
            ApiError::internal(format!(
                "Internal error occurred: unable to transform key {:?}: {e}",
                kv.key
            ))
        }),
    }
}

/// The bytes to store under `key`: encrypted when the resource is encrypted at rest.
pub(super) fn seal(tf: Option<&Transformer>, key: &str, plain: Bytes) -> ApiResult<Bytes> {
    match tf {
        None => Ok(plain),
        Some(t) => t.to_storage(key, &plain).map(Bytes::from).map_err(|e| {
            ApiError::internal(format!(
                "Internal error occurred: unable to transform key {key:?}: {e}"
            ))
        }),
    }
}

pub(super) fn decode(
    tf: Option<&Transformer>,
    info: &ResourceInfo,
    kv: &store::KeyValue,
) -> ApiResult<Value> {
    decode_stale(tf, info, kv).map(|(obj, _)| obj)
}

/// [`decode`], and whether the object was stored with an older encryption key.
pub(super) fn decode_stale(
    tf: Option<&Transformer>,
    info: &ResourceInfo,
    kv: &store::KeyValue,
) -> ApiResult<(Value, bool)> {
    let opened = unseal(tf, kv)?;
    let obj: Value = serde_json::from_slice(&opened.data).map_err(|e| {
        ApiError::internal(format!(
            "stored {} {:?} is not valid JSON: {e}",
            info.kind, kv.key
        ))
    })?;
    let mut obj = conversion::from_storage(info, obj)?;
    meta::set_resource_version(&mut obj, kv.mod_revision);
    Ok((obj, opened.stale))
}

/// Stored layout: `apiVersion`, `kind`, `metadata` first (so the first `"metadata":{` in the
/// bytes is the object's own), no `resourceVersion` (the store's revision is the truth).
/// Written straight from the object, without copying it into that order first.
pub(super) fn encode(info: &ResourceInfo, obj: &Value) -> ApiResult<Bytes> {
    use serde::ser::{SerializeMap, Serializer};
    const FIRST: [&str; 3] = ["apiVersion", "kind", "metadata"];
    /// Metadata as stored: without the fields the store's revision stands for.
    struct StoredMetadata<'a>(&'a Value);
    impl serde::Serialize for StoredMetadata<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let Some(m) = self.0.as_object() else {
                return self.0.serialize(s);
            };
            let mut out = s.serialize_map(None)?;
            for (k, v) in m {
                if k != "resourceVersion" && k != "selfLink" {
                    out.serialize_entry(k, v)?;
                }
            }
            out.end()
        }
    }
    let obj = conversion::to_storage(info, obj)?;
    let Some(m) = obj.as_object() else {
        return Err(ApiError::internal("only objects are stored"));
    };
    let mut buf = Vec::with_capacity(1024);
    let mut ser = serde_json::Serializer::new(&mut buf);
    let write = |ser: &mut serde_json::Serializer<&mut Vec<u8>>| {
        let mut out = ser.serialize_map(None)?;
        for k in FIRST {
            match m.get(k) {
                Some(v) if k == "metadata" => out.serialize_entry(k, &StoredMetadata(v))?,
                Some(v) => out.serialize_entry(k, v)?,
                None => {}
            }
        }
        for (k, v) in m {
            if !FIRST.contains(&k.as_str()) {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    };
    write(&mut ser).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Bytes::from(buf))
}

/// Stored bytes with `metadata.resourceVersion` spliced in, when they have the layout
/// [`encode`] writes (`metadata` after the string-valued `apiVersion` and `kind`).
pub(super) fn with_resource_version(stored: &[u8], rev: i64) -> Option<Vec<u8>> {
    const META: &[u8] = b"\"metadata\":{";
    let at = stored.windows(META.len()).position(|w| w == META)? + META.len();
    // Only apiVersion and kind (plain strings) may come before metadata.
    let mut before = std::str::from_utf8(&stored[..at - META.len()])
        .ok()?
        .strip_prefix('{')?;
    while !before.is_empty() {
        let rest = before
            .strip_prefix("\"apiVersion\":\"")
            .or_else(|| before.strip_prefix("\"kind\":\""))?;
        let end = rest.find('"')?;
        if rest[..end].contains('\\') {
            return None;
        }
        before = rest[end + 1..].strip_prefix(',')?;
    }
    let rv = format!("\"resourceVersion\":\"{rev}\"");
    let mut out = Vec::with_capacity(stored.len() + rv.len() + 1);
    out.extend_from_slice(&stored[..at]);
    out.extend_from_slice(rv.as_bytes());
    if stored.get(at) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&stored[at..]);
    Some(out)
}
