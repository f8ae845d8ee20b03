//! ObjectMeta conventions every kind shares: names, uid, timestamps, resourceVersion.

use serde_json::{Map, Value};

use crate::error::Cause;

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// A time as Kubernetes writes it.
pub fn format_time(t: time::OffsetDateTime) -> String {
    let now = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Seconds since a Kubernetes timestamp, if it parses.
pub fn age_seconds(ts: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    Some((time::OffsetDateTime::now_utc() - t).whole_seconds().max(0))
}

/// `kubectl`'s short age: 45s, 5m, 3h, 2d (as the server-side printers format it).
pub fn human_age(ts: Option<&str>) -> String {
    let Some(secs) = ts.and_then(age_seconds) else {
        return "<unknown>".into();
    };
    human_duration(secs)
}

/// A duration in seconds as `duration.HumanDuration` prints it (ages, CSR durations).
pub fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// A new random (version 4) UUID: object uids, audit and review ids. From the thread's
/// generator (seeded from the OS), not a system call per object.
pub fn new_uid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// The random suffix for `generateName` (Kubernetes' alphabet, no vowels or look-alikes).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    rand::random::<[u8; 5]>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// DNS-1123 subdomain: what most object names must be.
pub fn check_subdomain(field: &str, name: &str) -> Option<Cause> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    (!ok).then(|| {
        Cause::invalid(
            field,
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    })
}

/// DNS-1123 label: names of namespaces, services and a few others.
pub fn check_label(field: &str, name: &str) -> Option<Cause> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then(|| {
        Cause::invalid(
            field,
            name,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )
    })
}

/// Mutable access to `metadata`, creating it if absent.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

pub fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

/// Sets `metadata.resourceVersion` (it is never stored: the store's revision is the truth).
pub fn set_resource_version(obj: &mut Value, rev: i64) {
    metadata_mut(obj).insert("resourceVersion".into(), Value::String(rev.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_subdomain("metadata.name", "web-1.example").is_none());
        assert!(check_subdomain("metadata.name", "Web").is_some());
        assert!(check_subdomain("metadata.name", "-a").is_some());
        assert!(check_label("metadata.name", "a.b").is_some());
        assert!(check_label("metadata.name", "kube-system").is_none());
        assert_eq!(random_suffix().len(), 5);
    }

    #[test]
    fn ages() {
        assert_eq!(human_age(Some(&now_rfc3339())), "0s");
        assert_eq!(human_age(None), "<unknown>");
    }
}
