//! Zones and their disruption states: how many of a zone's nodes are not Ready decides how
//! fast nodes there get NoExecute taints, and when every zone is down the controller assumes
//! the trouble is its own (or the network's) and stops tainting altogether.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Node;

use super::Options;

/// A zone's state (upstream's ZoneState).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    /// Just seen; no decision made yet.
    Initial,
    Normal,
    /// At least three nodes and `--unhealthy-zone-threshold` of them not Ready.
    PartialDisruption,
    /// No node Ready.
    FullDisruption,
}

/// The zone of a node: region and zone labels (the deprecated beta ones first, as upstream's
/// GetZoneKey), "" when it has neither.
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |beta: &str, stable: &str| {
        labels
            .and_then(|l| l.get(beta).or_else(|| l.get(stable)))
            .cloned()
            .unwrap_or_default()
    };
    let zone = get(
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/zone",
    );
    let region = get(
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/region",
    );
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    // A NUL cannot be in a label value, so region and zone never run together.
    format!("{region}:\0:{zone}")
}

/// Not-Ready nodes and the state of a zone whose nodes are (`true`) or are not Ready.
pub fn compute_state(ready: &[bool], unhealthy_threshold: f32) -> (usize, ZoneState) {
    let up = ready.iter().filter(|r| **r).count();
    let down = ready.len() - up;
    let state = if up == 0 && down > 0 {
        ZoneState::FullDisruption
    } else if down > 2 && down as f32 / (down + up) as f32 >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    };
    (down, state)
}

/// The NoExecute tainting rate for a zone of `size` nodes in `state`; `None` leaves it as it
/// is.
pub fn rate_for(state: ZoneState, size: usize, o: &Options) -> Option<f32> {
    match state {
        ZoneState::Initial => None,
        ZoneState::Normal | ZoneState::FullDisruption => Some(o.node_eviction_rate),
        // A large zone slows down; a small one stops (it is probably the zone's fault).
        ZoneState::PartialDisruption => Some(
            if i64::try_from(size).unwrap_or(i64::MAX) > i64::from(o.large_cluster_size_threshold) {
                o.secondary_node_eviction_rate
            } else {
                0.0
            },
        ),
    }
}

/// What one pass decided about the zones.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Every zone just became fully disrupted: NoExecute taints come off every node and
    /// tainting stops everywhere.
    pub enter_full_disruption: bool,
    /// Some node is Ready again after that: every node gets a fresh grace period.
    pub exit_full_disruption: bool,
    /// New tainting rates by zone.
    pub rates: Vec<(String, f32)>,
}

/// Updates `states` from the Ready-ness of each zone's nodes (zones without nodes are
/// forgotten) and says what changes (upstream's handleDisruption).
pub fn plan(
    states: &mut HashMap<String, ZoneState>,
    ready_by_zone: &HashMap<String, Vec<bool>>,
    o: &Options,
) -> Plan {
    let mut new_states: HashMap<String, ZoneState> = HashMap::new();
    let mut all_are_fully_disrupted = true;
    for (zone, ready) in ready_by_zone {
        let (_, state) = compute_state(ready, o.unhealthy_zone_threshold);
        if state != ZoneState::FullDisruption {
            all_are_fully_disrupted = false;
        }
        new_states.insert(zone.clone(), state);
        states.entry(zone.clone()).or_insert(ZoneState::Initial);
    }
    states.retain(|zone, _| ready_by_zone.contains_key(zone));
    let all_were_fully_disrupted = states.values().all(|s| *s == ZoneState::FullDisruption);
    let mut plan = Plan::default();
    if all_are_fully_disrupted && all_were_fully_disrupted {
        // Still all down: nothing changes.
        return plan;
    }
    let size = |zone: &str| ready_by_zone.get(zone).map_or(0, Vec::len);
    if all_are_fully_disrupted {
        plan.enter_full_disruption = true;
        for (zone, state) in states.iter_mut() {
            plan.rates.push((zone.clone(), 0.0));
            *state = ZoneState::FullDisruption;
        }
    } else if all_were_fully_disrupted {
        plan.exit_full_disruption = true;
        for (zone, state) in states.iter_mut() {
            let new = new_states.get(zone).copied().unwrap_or(ZoneState::Initial);
            if let Some(rate) = rate_for(new, size(zone), o) {
                plan.rates.push((zone.clone(), rate));
            }
            *state = new;
        }
    } else {
        for (zone, state) in states.iter_mut() {
            let new = new_states.get(zone).copied().unwrap_or(ZoneState::Initial);
            if *state == new {
                continue;
            }
            tracing::info!(zone = %zone.replace('\0', ""), ?new, "zone is in a new state");
            if let Some(rate) = rate_for(new, size(zone), o) {
                plan.rates.push((zone.clone(), rate));
            }
            *state = new;
        }
    }
    plan.rates.sort_by(|a, b| a.0.cmp(&b.0));
    plan
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn zone_keys_prefer_the_beta_labels() {
        let node = |labels: serde_json::Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}})).unwrap()
        };
        assert_eq!(zone_key(&node(json!({}))), "");
        assert_eq!(
            zone_key(&node(json!({"topology.kubernetes.io/region": "r",
                "topology.kubernetes.io/zone": "z"}))),
            "r:\0:z"
        );
        assert_eq!(
            zone_key(&node(json!({"topology.kubernetes.io/zone": "z",
                "failure-domain.beta.kubernetes.io/zone": "old"}))),
            ":\0:old"
        );
    }

    #[test]
    fn zone_state_by_share_of_not_ready_nodes() {
        let t = 0.55;
        assert_eq!(compute_state(&[true, true], t), (0, ZoneState::Normal));
        assert_eq!(compute_state(&[false], t), (1, ZoneState::FullDisruption));
        assert_eq!(compute_state(&[], t), (0, ZoneState::Normal));
        // Two of three down is 66%, but a partial disruption needs three down.
        assert_eq!(
            compute_state(&[false, false, true], t),
            (2, ZoneState::Normal)
        );
        assert_eq!(
            compute_state(&[false, false, false, true], t),
            (3, ZoneState::PartialDisruption)
        );
        // Three of six is 50%: below the threshold.
        let six = [false, false, false, true, true, true];
        assert_eq!(compute_state(&six, t), (3, ZoneState::Normal));
    }

    #[test]
    fn partial_disruption_slows_large_zones_and_stops_small_ones() {
        let o = Options::default();
        assert_eq!(rate_for(ZoneState::Normal, 3, &o), Some(0.1));
        assert_eq!(rate_for(ZoneState::FullDisruption, 3, &o), Some(0.1));
        assert_eq!(rate_for(ZoneState::PartialDisruption, 50, &o), Some(0.0));
        assert_eq!(rate_for(ZoneState::PartialDisruption, 51, &o), Some(0.01));
        assert_eq!(rate_for(ZoneState::Initial, 51, &o), None);
    }

    fn zones(v: &[(&str, &[bool])]) -> HashMap<String, Vec<bool>> {
        v.iter().map(|(z, r)| (z.to_string(), r.to_vec())).collect()
    }

    #[test]
    fn disruption_state_machine() {
        let o = Options::default();
        let mut states = HashMap::new();
        // First look: both zones fine.
        let p = plan(
            &mut states,
            &zones(&[("a", &[true]), ("b", &[true, false])]),
            &o,
        );
        assert_eq!(
            p.rates,
            vec![("a".to_string(), 0.1), ("b".to_string(), 0.1)]
        );
        assert!(!p.enter_full_disruption && !p.exit_full_disruption);
        assert_eq!(states["a"], ZoneState::Normal);
        // One zone down entirely: it keeps the normal rate (its nodes are evicted).
        let p = plan(
            &mut states,
            &zones(&[("a", &[false]), ("b", &[true, false])]),
            &o,
        );
        assert_eq!(p.rates, vec![("a".to_string(), 0.1)]);
        assert_eq!(states["a"], ZoneState::FullDisruption);
        // Every zone down: stop everything.
        let p = plan(
            &mut states,
            &zones(&[("a", &[false]), ("b", &[false, false])]),
            &o,
        );
        assert!(p.enter_full_disruption);
        assert_eq!(
            p.rates,
            vec![("a".to_string(), 0.0), ("b".to_string(), 0.0)]
        );
        // Still all down: nothing to do.
        let p = plan(
            &mut states,
            &zones(&[("a", &[false]), ("b", &[false, false])]),
            &o,
        );
        assert_eq!(p, Plan::default());
        // One node back: rates as each zone's state says, and fresh grace periods.
        let p = plan(
            &mut states,
            &zones(&[("a", &[false]), ("b", &[true, false])]),
            &o,
        );
        assert!(p.exit_full_disruption);
        assert_eq!(
            p.rates,
            vec![("a".to_string(), 0.1), ("b".to_string(), 0.1)]
        );
        assert_eq!(states["a"], ZoneState::FullDisruption);
        assert_eq!(states["b"], ZoneState::Normal);
        // A zone without nodes is forgotten.
        plan(&mut states, &zones(&[("b", &[true])]), &o);
        assert!(!states.contains_key("a"));
    }

    #[test]
    fn a_small_partially_disrupted_zone_stops_tainting() {
        let o = Options::default();
        let mut states = HashMap::new();
        plan(
            &mut states,
            &zones(&[("a", &[true; 4]), ("b", &[true])]),
            &o,
        );
        let p = plan(
            &mut states,
            &zones(&[("a", &[false, false, false, true]), ("b", &[true])]),
            &o,
        );
        assert_eq!(p.rates, vec![("a".to_string(), 0.0)]);
        assert_eq!(states["a"], ZoneState::PartialDisruption);
        // The rate follows state changes only (as upstream): back to normal, then a large
        // zone's partial disruption slows down instead.
        plan(
            &mut states,
            &zones(&[("a", &[true; 60]), ("b", &[true])]),
            &o,
        );
        let large: Vec<bool> = (0..60).map(|i| i < 10).collect();
        let p = plan(&mut states, &zones(&[("a", &large), ("b", &[true])]), &o);
        assert_eq!(p.rates, vec![("a".to_string(), 0.01)]);
    }
}
