//! What several plugins share: admission's refusal and reads of other kinds from the cache.

use serde_json::{Value, json};

use crate::admission::Attributes;
use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;

/// Admission's refusal (Kubernetes' `admission.NewForbidden`): the 403 for a write of `obj` refused for `why`. The name is the object's, else its
/// `generateName`, else "Unknown", as upstream names objects not yet named.
pub fn forbidden(a: &Attributes<'_>, obj: Option<&Value>, why: impl std::fmt::Display) -> ApiError {
    let named = |p: &str| {
        obj.and_then(|o| o.pointer(p))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
    };
    let name = named("/metadata/name")
        .or_else(|| named("/metadata/generateName"))
        .or(Some(a.name).filter(|n| !n.is_empty()))
        .unwrap_or("Unknown");
    ApiError {
        details: Some(json!({"name": name, "group": a.info.group, "kind": a.info.plural})),
        ..ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: {why}",
            a.info.qualified()
        ))
    }
}

/// The objects of `group`/`kind` in `ns`, from the watch cache without waiting (as upstream's
/// plugins read listers): a consistent read per pod create would wait on every write in
/// flight.
pub async fn cached_list(
    registry: &Registry,
    group: &str,
    kind: &str,
    ns: &str,
) -> ApiResult<Vec<Value>> {
    let info = crate::resources::by_kind(group, kind)?;
    let q = crate::registry::ListQuery {
        resource_version: Some("0".into()),
        ..Default::default()
    };
    let mut list = registry.list(info, Some(ns), &q).await?;
    Ok(match list.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    })
}
