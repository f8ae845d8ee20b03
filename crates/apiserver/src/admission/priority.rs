//! Priority: a pod's `priorityClassName` becomes its `priority` (and `preemptionPolicy`)
//! from the PriorityClass; a pod without one gets the global default class, or 0. The
//! scheduler orders and preempts by these numbers.

use serde_json::{Value, json};

use crate::admission::Lister;
use crate::error::{ApiError, ApiResult};

/// The two classes every cluster has (they are also created at start).
pub const SYSTEM_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// Sets `spec.priority` and `spec.preemptionPolicy` of a new pod.
pub async fn admit_pod(lister: &dyn Lister, pod: &mut Value) -> ApiResult<()> {
    let info = crate::resources::by_kind("scheduling.k8s.io", "PriorityClass")?;
    let class_name = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let class = match &class_name {
        // From the cache (a miss reads the store), as upstream's lister.
        Some(name) => match lister.get(info, None, name).await? {
            Some(c) => Some(c),
            None => {
                return Err(ApiError::forbidden(format!(
                    "pods \"{}\" is forbidden: no PriorityClass with name {name} was found",
                    crate::meta::name(pod)
                )));
            }
        },
        None => {
            // From the watch cache without waiting (as upstream's admission reads a lister):
            // a consistent read per pod create would wait on every write in flight.
            lister
                .list(info, None)
                .await?
                .into_iter()
                .find(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
        }
    };
    let value = class
        .as_ref()
        .and_then(|c| c.get("value"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64)
        && given != value
    {
        return Err(ApiError::forbidden(format!(
            "pods \"{}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name",
            crate::meta::name(pod)
        )));
    }
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("priority".into(), json!(value));
        if let Some(c) = &class
            && class_name.is_none()
        {
            spec.insert("priorityClassName".into(), c["metadata"]["name"].clone());
        }
        let policy = class
            .as_ref()
            .and_then(|c| c.get("preemptionPolicy").cloned())
            .unwrap_or_else(|| json!("PreemptLowerPriority"));
        spec.insert("preemptionPolicy".into(), policy);
    }
    Ok(())
}
