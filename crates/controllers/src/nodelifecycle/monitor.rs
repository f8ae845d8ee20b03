//! The health pass over every node (upstream's monitorNodeHealth): new and deleted nodes,
//! each node's health (status written when it went silent), its NoExecute tainting, its pods'
//! readiness, and then the zones' disruption states.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

use super::health::{self, Check};
use super::zones::{self, zone_key};
use super::{MIN_PASS_GAP, NODE_LEASE_NAMESPACE, NodeLifecycleController, lock, pod_status};

/// Nodes looked at concurrently (upstream's nodeUpdateWorkerSize).
const NODE_UPDATE_WORKERS: usize = 8;
/// Attempts at writing a node's status, with a fresh read between them.
const STATUS_UPDATE_ATTEMPTS: usize = 5;
const STATUS_RETRY_DELAY: Duration = Duration::from_millis(20);
/// Nodes with this label are left out of their zone's disruption state.
const EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";

/// One node's outcome in a health pass.
struct Updated {
    /// Its zone and Ready-ness for the disruption states (`None`: left out).
    zone: Option<(String, bool)>,
    /// The node and its new Ready condition, when this pass marked it Unknown.
    went_silent: Option<(Node, NodeCondition)>,
}

/// The nodes of a pass as they compare with the last one.
#[derive(Default)]
struct Classified {
    added: Vec<Arc<Node>>,
    deleted: Vec<Arc<Node>>,
    /// Known nodes whose zone is not tracked (their labels changed).
    new_zone: Vec<Arc<Node>>,
}

fn name_of(n: &Node) -> &str {
    n.metadata.name.as_deref().unwrap_or_default()
}

/// How long to wait before the next health pass: the monitor period, or less when a node's
/// grace period runs out sooner (the pass then marks it at its deadline, not up to a period
/// later). Only deadlines after `started` count (earlier ones were the pass's to act on);
/// passes start at least `min_gap` apart.
fn next_wake(
    deadlines: impl Iterator<Item = Timestamp>,
    started: Timestamp,
    now: Timestamp,
    period: Duration,
    min_gap: Duration,
) -> Duration {
    let Some(soonest) = deadlines.filter(|d| *d > started).min() else {
        return period;
    };
    let millis = |from: Timestamp, to: Timestamp| {
        Duration::from_millis(
            u64::try_from(to.as_millisecond() - from.as_millisecond()).unwrap_or_default(),
        )
    };
    let gap = min_gap.saturating_sub(millis(started, now));
    millis(now, soonest).max(gap).min(period)
}

impl NodeLifecycleController {
    /// The wait before the next health pass, given when this one started.
    pub(super) fn next_pass_in(&self, started: Timestamp) -> Duration {
        let health = lock(&self.health);
        next_wake(
            health
                .values()
                .filter_map(|h| health::deadline(h, &self.options)),
            started,
            Timestamp::now(),
            self.options.node_monitor_period,
            MIN_PASS_GAP,
        )
    }

    fn record_node_event(&self, node: &Node, reason: &str, event: String) {
        let name = name_of(node);
        self.recorder
            .record(node, false, reason, format!("Node {name} event: {event}"));
    }

    /// Nodes new to this controller, nodes gone, and known nodes in a zone not tracked yet.
    fn classify(&self, nodes: &[Arc<Node>]) -> Classified {
        let known = lock(&self.known);
        let zones = lock(&self.zones);
        let mut c = Classified::default();
        for n in nodes {
            if !known.contains_key(name_of(n)) {
                c.added.push(n.clone());
            } else if !zones.states.contains_key(&zone_key(n)) {
                c.new_zone.push(n.clone());
            }
        }
        let present: HashSet<&str> = nodes.iter().map(|n| name_of(n)).collect();
        c.deleted = known
            .iter()
            .filter(|(name, _)| !present.contains(name.as_str()))
            .map(|(_, n)| n.clone())
            .collect();
        c
    }

    pub(super) async fn monitor_node_health(&self) {
        let nodes = self.nodes.list();
        let Classified {
            added,
            deleted,
            new_zone,
        } = self.classify(&nodes);
        for n in &new_zone {
            self.add_tainter_for_new_zone(n);
        }
        for n in &added {
            let name = name_of(n);
            tracing::debug!(node = name, "observed a new node");
            self.record_node_event(
                n,
                "RegisteredNode",
                format!("Registered Node {name} in Controller"),
            );
            lock(&self.known).insert(name.to_string(), n.clone());
            self.add_tainter_for_new_zone(n);
            if let Err(e) = self.mark_node_as_reachable(n).await {
                tracing::warn!(node = name, error = %format!("{e:#}"), "failed to remove NoExecute taints");
            }
        }
        for n in &deleted {
            let name = name_of(n);
            tracing::debug!(node = name, "observed a node deletion");
            self.record_node_event(
                n,
                "RemovingNode",
                format!("Removing Node {name} from Controller"),
            );
            lock(&self.known).remove(name);
        }
        let results: Vec<Updated> = futures::stream::iter(nodes.iter().cloned())
            .map(|n| self.update_node(n))
            .buffer_unordered(NODE_UPDATE_WORKERS)
            .collect()
            .await;
        let mut ready_by_zone: HashMap<String, Vec<bool>> = HashMap::new();
        let mut went_silent = Vec::new();
        for u in results {
            if let Some((zone, ready)) = u.zone {
                ready_by_zone.entry(zone).or_default().push(ready);
            }
            went_silent.extend(u.went_silent);
        }
        self.handle_disruption(&ready_by_zone, &nodes).await;
        // Upstream queues a node for its NoExecute taint on the pass after the one that
        // marked it Unknown (it acts on the condition observed at a pass's start); that
        // costs a whole monitor period. Queued here instead, once the zones' states (and so
        // their tainting rates) account for it, which is all that pass would have added.
        for (node, current) in &went_silent {
            self.process_taint_based_eviction(node, current).await;
        }
    }

    /// Reads the node's health (writing its status if it went silent).
    async fn update_node(&self, cached: Arc<Node>) -> Updated {
        let mut went_silent = None;
        let zone = self.update_node_health(cached, &mut went_silent).await;
        Updated { zone, went_silent }
    }

    /// Returns the node's zone and Ready-ness for the disruption states (`None`: left out);
    /// a node this pass marked Unknown goes into `went_silent`.
    async fn update_node_health(
        &self,
        cached: Arc<Node>,
        went_silent: &mut Option<(Node, NodeCondition)>,
    ) -> Option<(String, bool)> {
        let name = name_of(&cached).to_string();
        let mut node = (*cached).clone();
        let mut attempt = 1;
        let check = loop {
            match self.try_update_node_health(&mut node).await {
                Ok(c) => break c,
                Err(e) if attempt < STATUS_UPDATE_ATTEMPTS => {
                    tracing::debug!(node = %name, error = %format!("{e:#}"), "updating node health; retrying");
                    attempt += 1;
                    tokio::time::sleep(STATUS_RETRY_DELAY).await;
                    let api: Api<Node> = Api::all(self.client.clone());
                    node = match api.get(&name).await {
                        Ok(n) => n,
                        Err(e) => {
                            tracing::warn!(node = %name, error = %e, "cannot read the node to retry its health update (deleted?)");
                            return None;
                        }
                    };
                }
                Err(e) => {
                    tracing::warn!(node = %name, error = %format!("{e:#}"), "updating node health failed; no pods will be evicted from it this pass");
                    return None;
                }
            }
        };
        let excluded = node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(EXCLUDE_DISRUPTION));
        let ready = check
            .current_ready
            .as_ref()
            .is_some_and(|c| c.status == "True");
        let zone_entry = (!excluded).then(|| (zone_key(&node), ready));
        if let Some(current) = &check.current_ready {
            let observed = &check.observed_ready;
            let pods = self.pods_by_node.pods(&name);
            self.process_taint_based_eviction(&node, observed).await;
            if current.status != observed.status {
                *went_silent = Some((node.clone(), current.clone()));
            }
            let needs_retry = lock(&self.retry).contains(&name);
            let went_down = current.status != "True" && observed.status == "True";
            if went_down {
                // Once, when the status changes.
                self.recorder.record(
                    &node,
                    false,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
            }
            if (went_down || (needs_retry && observed.status != "True"))
                && let Err(e) =
                    pod_status::mark_pods_not_ready(&self.client, &self.recorder, &pods, &name)
                        .await
            {
                tracing::warn!(node = %name, error = %format!("{e:#}"), "marking pods not ready; retrying next pass");
                lock(&self.retry).insert(name);
                return zone_entry;
            }
        }
        lock(&self.retry).remove(&name);
        zone_entry
    }

    /// One look at the node's health; its status is written when it went silent.
    async fn try_update_node_health(&self, node: &mut Node) -> anyhow::Result<Check> {
        let name = name_of(node).to_string();
        let saved = lock(&self.health).get(&name).cloned();
        let lease = self.leases.get(Some(NODE_LEASE_NAMESPACE), &name);
        let check = health::check(
            node,
            saved.as_ref(),
            lease.as_deref(),
            Timestamp::now(),
            &self.options,
        );
        let Some(status) = &check.new_status else {
            lock(&self.health).insert(name, check.health.clone());
            return Ok(check);
        };
        node.status = Some(status.clone());
        let api: Api<Node> = Api::all(self.client.clone());
        match api
            .replace_status(&name, &PostParams::default(), node)
            .await
        {
            Ok(_) => {
                tracing::info!(node = %name, "node stopped posting status; its conditions are now Unknown");
                lock(&self.health).insert(name, check.health_after_write.clone());
                Ok(check)
            }
            Err(e) => {
                lock(&self.health).insert(name.clone(), check.health.clone());
                Err(e).with_context(|| format!("writing the status of node {name}"))
            }
        }
    }

    /// Updates the zones' states and acts on what changed (upstream's handleDisruption).
    async fn handle_disruption(
        &self,
        ready_by_zone: &HashMap<String, Vec<bool>>,
        nodes: &[Arc<Node>],
    ) {
        let plan = {
            let mut z = lock(&self.zones);
            let plan = zones::plan(&mut z.states, ready_by_zone, &self.options);
            let now = Instant::now();
            // Rates first: once every zone is down nothing may be tainted while the
            // taints come off.
            for (zone, rate) in &plan.rates {
                if let Some(q) = z.tainters.get_mut(zone) {
                    q.swap_limiter(*rate, now);
                }
            }
            plan
        };
        if plan.enter_full_disruption {
            tracing::info!(
                "every node is not Ready: entering full disruption mode (no NoExecute taints)"
            );
            for n in nodes {
                if let Err(e) = self.mark_node_as_reachable(n).await {
                    tracing::warn!(node = name_of(n), error = %format!("{e:#}"), "failed to remove NoExecute taints");
                }
            }
        }
        if plan.exit_full_disruption {
            tracing::info!("some nodes are Ready again: leaving full disruption mode");
            // Every node gets a full grace period from now.
            let now = Timestamp::now();
            let mut health = lock(&self.health);
            for n in nodes {
                if let Some(h) = health.get_mut(name_of(n)) {
                    h.probe_timestamp = now;
                    h.ready_transition_timestamp = now;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
    }

    const PERIOD: Duration = Duration::from_secs(5);
    const GAP: Duration = Duration::from_millis(200);

    #[test]
    fn the_next_pass_comes_at_the_first_deadline_within_the_period() {
        let wake = |deadlines: &[i64], started: i64, now: i64| {
            next_wake(
                deadlines.iter().map(|d| at(*d)),
                at(started),
                at(now),
                PERIOD,
                GAP,
            )
        };
        // No node near its deadline: the monitor period.
        assert_eq!(wake(&[], 0, 10), PERIOD);
        assert_eq!(wake(&[60_000, 90_000], 0, 10), PERIOD);
        // A node's grace period runs out in 1.3 s: the pass comes then, not 5 s later.
        assert_eq!(wake(&[60_000, 1_310], 0, 10), Duration::from_millis(1_300));
        // Deadlines the pass itself covered are not woken for again (a failed write is
        // retried on the period, not in a loop).
        assert_eq!(wake(&[-5], 0, 10), PERIOD);
        // Many nodes lost one after another: passes at least the gap apart.
        assert_eq!(wake(&[50, 60, 70], 0, 40), Duration::from_millis(160));
        assert_eq!(wake(&[50], 0, 400), Duration::ZERO);
    }
}
