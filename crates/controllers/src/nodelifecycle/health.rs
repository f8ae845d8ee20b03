//! Node health (upstream's tryUpdateNodeHealth): a node is alive while its Ready
//! condition's heartbeat or its Lease's renewTime keeps moving, as seen by this controller's
//! own clock (so clock skew between machines does not matter). Past the grace period its
//! conditions become Unknown.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

use super::Options;

/// What this controller last saw of a node (upstream's nodeHealthData).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeHealth {
    /// When this controller last saw a heartbeat (its own clock).
    pub probe_timestamp: Timestamp,
    /// When this controller last saw the Ready condition change.
    pub ready_transition_timestamp: Timestamp,
    /// The Ready condition as last seen.
    pub ready: Option<NodeCondition>,
    /// The Lease as last seen: its renewTime.
    pub lease: Option<Option<MicroTime>>,
}

/// The outcome of looking at one node.
#[derive(Clone, Debug)]
pub struct Check {
    /// The Ready condition as the node had it (a made-up Unknown one when it has none).
    pub observed_ready: NodeCondition,
    /// The Ready condition as it is after this check.
    pub current_ready: Option<NodeCondition>,
    /// The status to write, when the Ready condition changed.
    pub new_status: Option<NodeStatus>,
    /// What to remember if the status is not written (or need not be).
    pub health: NodeHealth,
    /// What to remember once the status is written.
    pub health_after_write: NodeHealth,
}

/// The conditions set to Unknown when a node goes silent. NetworkUnavailable is left
/// alone, as upstream: the network plugin, not the kubelet, reports it.
const SILENT_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

pub fn condition<'a>(status: Option<&'a NodeStatus>, type_: &str) -> Option<&'a NodeCondition> {
    status
        .and_then(|s| s.conditions.as_deref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
}

pub fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    condition(node.status.as_ref(), "Ready")
}

fn fresh(ready: Option<NodeCondition>, now: Timestamp) -> NodeHealth {
    NodeHealth {
        probe_timestamp: now,
        ready_transition_timestamp: now,
        ready,
        lease: None,
    }
}

/// `a` renewed before `b` (false when either has no time, as metav1.MicroTime's Before).
fn renewed_before(a: &Option<MicroTime>, b: &Option<MicroTime>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a.0 < b.0)
}

fn after(now: Timestamp, since: Timestamp, grace: Duration) -> bool {
    let grace = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    now.as_millisecond() > since.as_millisecond().saturating_add(grace)
}

/// When the node's grace period runs out, as this controller counts it: the last heartbeat
/// it saw plus the grace period (the startup one for a node that never posted Ready). None
/// for a node already Unknown: nothing more happens to it until it comes back.
pub fn deadline(h: &NodeHealth, o: &Options) -> Option<Timestamp> {
    let grace = match &h.ready {
        Some(r) if r.status == "Unknown" => return None,
        Some(_) => o.node_monitor_grace_period,
        None => o.node_startup_grace_period,
    };
    let grace = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    // `after` is strict: one millisecond past the grace period.
    Timestamp::from_millisecond(h.probe_timestamp.as_millisecond().saturating_add(grace + 1)).ok()
}

/// Records a Lease renewal seen as it happens (the informer's event): the probe time is
/// then when the renewal arrived, not when the next pass happens to look, so a node's
/// deadline is its last renewal plus the grace period. True when it was newer.
pub fn observe_lease(h: &mut NodeHealth, renew: Option<MicroTime>, now: Timestamp) -> bool {
    let newer = match &h.lease {
        None => true,
        Some(seen) => renewed_before(seen, &renew),
    };
    if newer {
        h.lease = Some(renew);
        h.probe_timestamp = now;
    }
    newer
}

/// Looks at `node` given what was seen of it before (`saved`) and its Lease, at `now`.
pub fn check(
    node: &Node,
    saved: Option<&NodeHealth>,
    lease: Option<&Lease>,
    now: Timestamp,
    o: &Options,
) -> Check {
    let created = node
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let current = ready_condition(node).cloned();
    let (observed, grace, mut health) = match &current {
        // Never posted: the node counts from its creation, with the startup grace period.
        None => {
            let observed = NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(created)),
                ..Default::default()
            };
            let health = match saved {
                Some(h) => NodeHealth {
                    ready: None,
                    ..h.clone()
                },
                None => NodeHealth {
                    probe_timestamp: created,
                    ready_transition_timestamp: created,
                    ready: None,
                    lease: None,
                },
            };
            (observed, o.node_startup_grace_period, Some(health))
        }
        Some(c) => (c.clone(), o.node_monitor_grace_period, saved.cloned()),
    };
    let saved_ready = health.as_ref().and_then(|h| h.ready.clone());
    let saved_lease = health.as_ref().and_then(|h| h.lease.clone());
    let mut health = match (health.take(), &saved_ready, &current) {
        (None, _, _) => fresh(current.clone(), now),
        // The controller restarted with the node already there, or the condition was
        // removed: start counting now.
        (Some(_), None, Some(_)) | (Some(_), Some(_), None) => fresh(current.clone(), now),
        (Some(h), Some(s), Some(c)) if s.last_heartbeat_time != c.last_heartbeat_time => {
            let transition = if s.last_transition_time != c.last_transition_time {
                now
            } else {
                h.ready_transition_timestamp
            };
            NodeHealth {
                ready_transition_timestamp: transition,
                ..fresh(current.clone(), now)
            }
        }
        (Some(h), _, _) => h,
    };
    // A renewed Lease is a heartbeat too (a kubelet renews it more often than it posts
    // status).
    if let Some(l) = lease {
        let renew = l.spec.as_ref().and_then(|s| s.renew_time.clone());
        health.lease = saved_lease;
        observe_lease(&mut health, renew, now);
    }
    let observed_lease = lease.map(|l| l.spec.as_ref().and_then(|s| s.renew_time.clone()));
    let mut out = Check {
        observed_ready: observed.clone(),
        current_ready: current.clone(),
        new_status: None,
        health: health.clone(),
        health_after_write: health.clone(),
    };
    if !after(now, health.probe_timestamp, grace) {
        return out;
    }
    // Silent past the grace period: every condition the kubelet posts becomes Unknown.
    let now_time = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let mut status = node.status.clone().unwrap_or_default();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for type_ in SILENT_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => conditions.push(NodeCondition {
                type_: type_.into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(now_time.clone()),
            }),
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(now_time.clone());
            }
            Some(_) => {}
        }
    }
    let new_ready = condition(Some(&status), "Ready").cloned();
    out.current_ready = new_ready.clone();
    if new_ready.as_ref() != Some(&observed) {
        out.health_after_write = NodeHealth {
            probe_timestamp: health.probe_timestamp,
            ready_transition_timestamp: now,
            ready: new_ready,
            lease: observed_lease,
        };
        out.new_status = Some(status);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const T0: &str = "2025-01-01T00:00:00Z";

    fn at(secs: i64) -> Timestamp {
        T0.parse::<Timestamp>().unwrap() + k8s_openapi::jiff::SignedDuration::from_secs(secs)
    }

    fn node(conditions: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n", "creationTimestamp": T0},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn ready(status: &str, heartbeat: i64) -> serde_json::Value {
        json!({"type": "Ready", "status": status, "reason": "KubeletReady",
            "lastHeartbeatTime": at(heartbeat).to_string(),
            "lastTransitionTime": T0})
    }

    fn lease(renew: i64) -> Lease {
        serde_json::from_value(json!({"metadata": {"name": "n"},
            "spec": {"renewTime": at(renew).to_string()}}))
        .unwrap()
    }

    fn lease_time(renew: i64) -> MicroTime {
        MicroTime(at(renew))
    }

    fn opts() -> Options {
        Options {
            node_monitor_grace_period: Duration::from_secs(40),
            ..Options::default()
        }
    }

    #[test]
    fn a_silent_node_goes_unknown_after_the_grace_period() {
        let n = node(json!([ready("True", 0),
            {"type": "MemoryPressure", "status": "False"},
            {"type": "NetworkUnavailable", "status": "False"}]));
        let first = check(&n, None, None, at(1), &opts());
        assert!(first.new_status.is_none());
        assert_eq!(first.health.probe_timestamp, at(1));
        // 40 s after the controller first saw it: still within the grace period.
        let c = check(&n, Some(&first.health), None, at(41), &opts());
        assert!(c.new_status.is_none());
        let c = check(&n, Some(&first.health), None, at(42), &opts());
        assert_eq!(c.observed_ready.status, "True");
        let status = c.new_status.unwrap();
        let get = |t: &str| condition(Some(&status), t).unwrap().clone();
        let r = get("Ready");
        assert_eq!(r.status, "Unknown");
        assert_eq!(r.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            r.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(r.last_heartbeat_time, Some(Time(at(0))), "heartbeat kept");
        assert_eq!(r.last_transition_time, Some(Time(at(42))));
        assert_eq!(get("MemoryPressure").status, "Unknown");
        // Never posted by the kubelet: added as never updated.
        let disk = get("DiskPressure");
        assert_eq!(disk.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            disk.message.as_deref(),
            Some("Kubelet never posted node status.")
        );
        assert_eq!(get("NetworkUnavailable").status, "False", "left alone");
        assert_eq!(c.current_ready.unwrap().status, "Unknown");
        assert_eq!(c.health_after_write.ready_transition_timestamp, at(42));
        // Once written, the next look changes nothing more.
        let mut unknown = n.clone();
        unknown.status = Some(status);
        let again = check(&unknown, Some(&c.health_after_write), None, at(50), &opts());
        assert!(again.new_status.is_none());
        assert_eq!(again.observed_ready.status, "Unknown");
    }

    #[test]
    fn heartbeats_and_lease_renewals_both_keep_a_node_alive() {
        let n = node(json!([ready("True", 0)]));
        let h = check(&n, None, Some(&lease(0)), at(0), &opts()).health;
        // The status stops, the lease goes on.
        let h = check(&n, Some(&h), Some(&lease(30)), at(30), &opts()).health;
        assert_eq!(h.probe_timestamp, at(30));
        let c = check(&n, Some(&h), Some(&lease(30)), at(60), &opts());
        assert!(c.new_status.is_none(), "renewed 30 s ago");
        let c = check(&n, Some(&h), Some(&lease(30)), at(71), &opts());
        assert!(c.new_status.is_some(), "neither for 41 s");
        // A new heartbeat counts from when this controller sees it.
        let beat = node(json!([ready("True", 65)]));
        let c = check(&beat, Some(&h), Some(&lease(30)), at(71), &opts());
        assert!(c.new_status.is_none());
        assert_eq!(c.health.probe_timestamp, at(71));
    }

    #[test]
    fn a_node_that_never_posted_gets_the_startup_grace_period() {
        let n = node(json!([]));
        let c = check(&n, None, None, at(60), &opts());
        assert!(c.new_status.is_none());
        assert_eq!(c.observed_ready.status, "Unknown");
        assert_eq!(c.observed_ready.last_heartbeat_time, Some(Time(at(0))));
        assert!(c.current_ready.is_none());
        let c = check(&n, Some(&c.health), None, at(61), &opts());
        let status = c.new_status.unwrap();
        let r = condition(Some(&status), "Ready").unwrap();
        assert_eq!(r.reason.as_deref(), Some("NodeStatusNeverUpdated"));
    }

    #[test]
    fn the_deadline_is_the_last_heartbeat_seen_plus_the_grace_period() {
        let o = opts();
        let n = node(json!([ready("True", 0)]));
        let h = check(&n, None, Some(&lease(0)), at(0), &o).health;
        let due = deadline(&h, &o).unwrap();
        assert_eq!(due.as_millisecond(), at(40).as_millisecond() + 1);
        // Just before it the node is alive, at it the node goes Unknown.
        let before = Timestamp::from_millisecond(due.as_millisecond() - 1).unwrap();
        assert!(
            check(&n, Some(&h), Some(&lease(0)), before, &o)
                .new_status
                .is_none()
        );
        let c = check(&n, Some(&h), Some(&lease(0)), due, &o);
        assert!(c.new_status.is_some());
        // Once Unknown there is no deadline left to wake for.
        assert_eq!(deadline(&c.health_after_write, &o), None);
        // A node that never posted Ready counts with the startup grace period.
        let fresh = check(&node(json!([])), None, None, at(0), &o).health;
        assert_eq!(
            deadline(&fresh, &o).unwrap().as_millisecond(),
            at(60).as_millisecond() + 1
        );
    }

    #[test]
    fn a_renewal_seen_between_passes_counts_from_when_it_arrived() {
        let o = opts();
        let n = node(json!([ready("True", 0)]));
        let mut h = check(&n, None, Some(&lease(0)), at(0), &o).health;
        // The kubelet renews at 10 s; the informer delivers it then, the next pass is at 14 s.
        assert!(observe_lease(&mut h, Some(lease_time(10)), at(10)));
        assert!(
            !observe_lease(&mut h, Some(lease_time(10)), at(12)),
            "seen already"
        );
        let c = check(&n, Some(&h), Some(&lease(10)), at(14), &o);
        assert_eq!(c.health.probe_timestamp, at(10), "not the pass's time");
        assert_eq!(
            deadline(&c.health, &o).unwrap().as_millisecond(),
            at(50).as_millisecond() + 1
        );
        // An older renewal (a stale event) moves nothing.
        assert!(!observe_lease(&mut h, Some(lease_time(5)), at(15)));
        assert_eq!(h.probe_timestamp, at(10));
    }
}
