//! What several plugins share: admission's refusal and reads of other kinds from the cache.

use serde_json::{Value, json};

use crate::admission::Lister;
use crate::admission::{Attributes, Operation};
use crate::error::{ApiError, ApiResult};

/// Admission's refusal (Kubernetes' `admission.NewForbidden`): the 403 for a write of `obj`
/// refused for `why`, naming the object by its name, else its `generateName`, else
/// "Unknown". Mutating plugins run before a generated name is chosen (as upstream, where
/// names are generated in the store), so they name the object as the client did.
pub fn forbidden(a: &Attributes<'_>, obj: Option<&Value>, why: impl std::fmt::Display) -> ApiError {
    forbidden_named(a, obj, why, false)
}

/// [`forbidden`] for a mutating plugin: an object to be named by `generateName` is called by
/// the prefix, as the client sent it.
pub fn forbidden_unnamed(
    a: &Attributes<'_>,
    obj: Option<&Value>,
    why: impl std::fmt::Display,
) -> ApiError {
    forbidden_named(a, obj, why, true)
}

fn forbidden_named(
    a: &Attributes<'_>,
    obj: Option<&Value>,
    why: impl std::fmt::Display,
    before_naming: bool,
) -> ApiError {
    let named = |p: &str| {
        obj.and_then(|o| o.pointer(p))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
    };
    let generate = named("/metadata/generateName");
    let name = match named("/metadata/name").or(Some(a.name).filter(|n| !n.is_empty())) {
        // The registry has already generated the name from the prefix.
        Some(n)
            if before_naming
                && a.operation == Operation::Create
                && generate.is_some_and(|g| n.len() == g.len() + 5 && n.starts_with(g)) =>
        {
            generate
        }
        Some(n) => Some(n),
        None => generate,
    }
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
    lister: &dyn Lister,
    group: &str,
    kind: &str,
    ns: &str,
) -> ApiResult<Vec<std::sync::Arc<Value>>> {
    let info = crate::resources::by_kind(group, kind)?;
    lister.list(info, Some(ns)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_object_as_upstream() {
        let info = crate::resources::by_kind("", "Pod").unwrap();
        let a = |name| Attributes {
            operation: Operation::Create,
            info,
            namespace: "ns",
            name,
            subresource: None,
            old: None,
            user: None,
            dry_run: false,
        };
        let generated =
            serde_json::json!({"metadata": {"name": "web-x7k2p", "generateName": "web-"}});
        let e = forbidden_unnamed(&a("web-x7k2p"), Some(&generated), "no");
        assert_eq!(e.message, "pods \"web-\" is forbidden: no");
        assert_eq!(e.details.unwrap()["kind"], "pods");
        let e = forbidden(&a("web-x7k2p"), Some(&generated), "no");
        assert_eq!(e.message, "pods \"web-x7k2p\" is forbidden: no");
        let e = forbidden(&a(""), None, "no");
        assert_eq!(e.message, "pods \"Unknown\" is forbidden: no");
    }
}
