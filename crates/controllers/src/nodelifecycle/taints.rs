//! The taints the node lifecycle controller owns, and the set arithmetic on a node's taints
//! (upstream's `pkg/util/taints`): taints are the same when key and effect are.

use k8s_openapi::api::core::v1::{Node, Taint};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// A taint without value or time.
pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        value: None,
        time_added: None,
    }
}

/// The NoExecute taint of a node whose Ready condition is False.
pub fn not_ready_no_execute() -> Taint {
    taint(NOT_READY, NO_EXECUTE)
}

/// The NoExecute taint of a node whose Ready condition is Unknown.
pub fn unreachable_no_execute() -> Taint {
    taint(UNREACHABLE, NO_EXECUTE)
}

/// The taint key a node condition in a given status calls for, if any.
fn condition_taint(type_: &str, status: &str) -> Option<&'static str> {
    match (type_, status) {
        ("Ready", "False") => Some(NOT_READY),
        ("Ready", "Unknown") => Some(UNREACHABLE),
        ("MemoryPressure", "True") => Some(MEMORY_PRESSURE),
        ("DiskPressure", "True") => Some(DISK_PRESSURE),
        ("NetworkUnavailable", "True") => Some(NETWORK_UNAVAILABLE),
        ("PIDPressure", "True") => Some(PID_PRESSURE),
        _ => None,
    }
}

/// Whether a taint key is one a node condition calls for.
fn is_condition_taint(key: &str) -> bool {
    [
        NOT_READY,
        UNREACHABLE,
        MEMORY_PRESSURE,
        DISK_PRESSURE,
        NETWORK_UNAVAILABLE,
        PID_PRESSURE,
    ]
    .contains(&key)
}

pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// The NoSchedule taints the node's conditions and `spec.unschedulable` call for
/// (upstream's TaintNodesByCondition).
pub fn wanted_no_schedule(node: &Node) -> Vec<Taint> {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut wanted: Vec<Taint> = conditions
        .iter()
        .filter_map(|c| condition_taint(&c.type_, &c.status))
        .map(|key| taint(key, NO_SCHEDULE))
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push(taint(UNSCHEDULABLE, NO_SCHEDULE));
    }
    wanted
}

/// The node's NoSchedule taints that this controller manages (so compares with
/// [`wanted_no_schedule`]); anyone else's are left alone.
pub fn managed_no_schedule(node: &Node) -> Vec<Taint> {
    node_taints(node)
        .iter()
        .filter(|t| {
            t.effect == NO_SCHEDULE && (t.key == UNSCHEDULABLE || is_condition_taint(&t.key))
        })
        .cloned()
        .collect()
}

fn same(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// Whether `taints` has one with the key and effect of `t`.
pub fn exists(taints: &[Taint], t: &Taint) -> bool {
    taints.iter().any(|x| same(x, t))
}

/// What to add to `current` and remove from it to make it `wanted`.
pub fn diff(wanted: &[Taint], current: &[Taint]) -> (Vec<Taint>, Vec<Taint>) {
    let add = wanted
        .iter()
        .filter(|t| !exists(current, t))
        .cloned()
        .collect();
    let remove = current
        .iter()
        .filter(|t| !exists(wanted, t))
        .cloned()
        .collect();
    (add, remove)
}

/// `taints` with `t` put in (replacing one of its key and effect); `None` when it is already
/// there exactly.
pub fn add_or_update(taints: &[Taint], t: &Taint) -> Option<Vec<Taint>> {
    if taints.iter().any(|x| x == t) {
        return None;
    }
    let mut out: Vec<Taint> = Vec::with_capacity(taints.len() + 1);
    let mut replaced = false;
    for x in taints {
        if same(x, t) {
            out.push(t.clone());
            replaced = true;
        } else {
            out.push(x.clone());
        }
    }
    if !replaced {
        out.push(t.clone());
    }
    Some(out)
}

/// `taints` without those of the key and effect of any in `remove`; `None` when none was
/// there.
pub fn without(taints: &[Taint], remove: &[Taint]) -> Option<Vec<Taint>> {
    let kept: Vec<Taint> = taints
        .iter()
        .filter(|t| !exists(remove, t))
        .cloned()
        .collect();
    (kept.len() != taints.len()).then_some(kept)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn conditions_and_cordoning_call_for_no_schedule_taints() {
        let n = node(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": true, "taints": [
                {"key": UNREACHABLE, "effect": "NoSchedule"},
                {"key": UNREACHABLE, "effect": "NoExecute"},
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "MemoryPressure", "status": "True"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "NetworkUnavailable", "status": "True"},
                {"type": "PIDPressure", "status": "Unknown"}]}
        }));
        let keys = |ts: &[Taint]| ts.iter().map(|t| t.key.clone()).collect::<Vec<_>>();
        let wanted = wanted_no_schedule(&n);
        assert_eq!(
            keys(&wanted),
            [
                NOT_READY,
                MEMORY_PRESSURE,
                NETWORK_UNAVAILABLE,
                UNSCHEDULABLE
            ]
        );
        assert!(wanted.iter().all(|t| t.effect == NO_SCHEDULE));
        // The NoExecute taint and someone else's taint are not this pass's business.
        let managed = managed_no_schedule(&n);
        assert_eq!(keys(&managed), [UNREACHABLE]);
        let (add, remove) = diff(&wanted, &managed);
        assert_eq!(
            keys(&add),
            [
                NOT_READY,
                MEMORY_PRESSURE,
                NETWORK_UNAVAILABLE,
                UNSCHEDULABLE
            ]
        );
        assert_eq!(keys(&remove), [UNREACHABLE]);
    }

    #[test]
    fn taints_are_replaced_by_key_and_effect() {
        let mut t = taint(UNREACHABLE, NO_EXECUTE);
        let base = vec![taint("a", NO_SCHEDULE), t.clone()];
        assert_eq!(add_or_update(&base, &t), None, "already there exactly");
        t.value = Some("x".into());
        let updated = add_or_update(&base, &t).unwrap();
        assert_eq!(updated.len(), 2);
        assert_eq!(updated[1].value.as_deref(), Some("x"));
        let added = add_or_update(&base, &taint(NOT_READY, NO_EXECUTE)).unwrap();
        assert_eq!(added.len(), 3);
        assert_eq!(
            without(&base, &[taint(UNREACHABLE, NO_EXECUTE)]).unwrap(),
            vec![taint("a", NO_SCHEDULE)]
        );
        assert_eq!(without(&base, &[taint(UNREACHABLE, NO_SCHEDULE)]), None);
    }
}
