//! The NoExecute taints (upstream's taint-based eviction half of the node lifecycle
//! controller): a node not Ready is queued in its zone's rate-limited queue, and a pass every
//! 100 ms gives it the `not-ready` or `unreachable` NoExecute taint (the two are exclusive,
//! as the Ready condition's False and Unknown); taint eviction then deletes its pods. Taints
//! are rate limited here because eviction itself is not.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::Api;
use tokio::time::Instant;

use super::health::ready_condition;
use super::rate_limited_queue::RateLimitedTimedQueue;
use super::taints::{self, node_taints, not_ready_no_execute, unreachable_no_execute};
use super::zones::{ZoneState, zone_key};
use super::{NodeLifecycleController, lock, node_taints as write};

/// Zone states and each zone's tainting queue.
#[derive(Default)]
pub struct Zones {
    pub states: HashMap<String, ZoneState>,
    pub tainters: HashMap<String, RateLimitedTimedQueue>,
}

/// How soon to retry a node without a Ready condition.
const NO_CONDITION_RETRY: Duration = Duration::from_millis(50);

impl NodeLifecycleController {
    fn new_tainter(&self) -> RateLimitedTimedQueue {
        RateLimitedTimedQueue::new(self.options.node_eviction_rate, Instant::now())
    }

    /// Starts tracking the node's zone if it is new.
    pub(super) fn add_tainter_for_new_zone(&self, node: &Node) {
        let zone = zone_key(node);
        let fresh = self.new_tainter();
        let mut z = lock(&self.zones);
        if !z.states.contains_key(&zone) {
            tracing::info!(zone = %zone.replace('\0', ""), "initializing tainting for zone");
            z.states.insert(zone.clone(), ZoneState::Initial);
            z.tainters.insert(zone, fresh);
        }
    }

    /// Queues the node for the NoExecute taint its Ready `status` calls for; a node that
    /// lost that taint meanwhile is queued anew.
    fn mark_node_for_tainting(&self, node: &Node, status: &str) -> bool {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let uid = node.metadata.uid.as_deref().unwrap_or_default();
        let has = |t| taints::exists(node_taints(node), &t);
        let fresh = self.new_tainter();
        let mut z = lock(&self.zones);
        let q = z.tainters.entry(zone_key(node)).or_insert(fresh);
        if (status == "False" && !has(not_ready_no_execute()))
            || (status == "Unknown" && !has(unreachable_no_execute()))
        {
            q.remove(name);
        }
        q.add(name, uid, Instant::now())
    }

    /// Takes both NoExecute taints off the node and out of its zone's queue; true when it
    /// was queued.
    pub(super) async fn mark_node_as_reachable(&self, node: &Node) -> anyhow::Result<bool> {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        write::remove(&self.client, name, Some(node), &[unreachable_no_execute()]).await?;
        write::remove(&self.client, name, Some(node), &[not_ready_no_execute()]).await?;
        let mut z = lock(&self.zones);
        Ok(z.tainters
            .get_mut(&zone_key(node))
            .is_some_and(|q| q.remove(name)))
    }

    /// Acts on the node's Ready condition (upstream's processTaintBaseEviction): as observed
    /// at the start of the health pass, and again as written when the pass marked it
    /// Unknown.
    pub(super) async fn process_taint_based_eviction(&self, node: &Node, observed: &NodeCondition) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let has = |t| taints::exists(node_taints(node), &t);
        match observed.status.as_str() {
            // Already tainted the other way: swap right away, no rate limit.
            "False" if has(unreachable_no_execute()) => {
                let add = vec![not_ready_no_execute()];
                if let Err(e) =
                    write::swap(&self.client, node, add, &[unreachable_no_execute()]).await
                {
                    tracing::warn!(node = name, error = %format!("{e:#}"), "failed to swap the unreachable taint for not-ready; retrying next pass");
                }
            }
            "Unknown" if has(not_ready_no_execute()) => {
                let add = vec![unreachable_no_execute()];
                if let Err(e) =
                    write::swap(&self.client, node, add, &[not_ready_no_execute()]).await
                {
                    tracing::warn!(node = name, error = %format!("{e:#}"), "failed to swap the not-ready taint for unreachable; retrying next pass");
                }
            }
            s @ ("False" | "Unknown") if self.mark_node_for_tainting(node, s) => {
                tracing::info!(
                    node = name,
                    status = s,
                    "node is not ready; queued for a NoExecute taint"
                );
            }
            "True" => match self.mark_node_as_reachable(node).await {
                Ok(true) => tracing::info!(node = name, "node is healthy again"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(node = name, error = %format!("{e:#}"), "failed to remove NoExecute taints; retrying next pass")
                }
            },
            _ => {}
        }
    }

    /// Taints the nodes each zone's queue lets through now (upstream's
    /// doNoExecuteTaintingPass).
    pub(super) async fn no_execute_tainting_pass(&self) {
        let zones: Vec<String> = lock(&self.zones).tainters.keys().cloned().collect();
        for zone in zones {
            loop {
                let due = lock(&self.zones)
                    .tainters
                    .get_mut(&zone)
                    .and_then(|q| q.next_due(Instant::now()));
                let Some(value) = due else { break };
                let retry = self.taint_no_execute(&value.value).await;
                if let Some(q) = lock(&self.zones).tainters.get_mut(&zone) {
                    q.finish(&value, retry, Instant::now());
                }
            }
        }
    }

    /// Gives a queued node the NoExecute taint its Ready condition calls for; `Some(wait)`
    /// to try again after `wait`.
    async fn taint_no_execute(&self, name: &str) -> Option<Duration> {
        let Some(mut node) = self.nodes.get(None, name).map(|n| (*n).clone()) else {
            tracing::debug!(node = name, "node gone; not tainting it");
            return None;
        };
        // A node queued in the pass that marked it Unknown may not have reached the
        // informer yet: when the cache still says Ready but this controller saw otherwise,
        // the server's copy decides (a retry would cost a token of the zone's limiter).
        let cached_ready = ready_condition(&node).is_some_and(|c| c.status == "True");
        let seen_not_ready = lock(&self.health)
            .get(name)
            .and_then(|h| h.ready.as_ref())
            .is_some_and(|c| c.status != "True");
        if cached_ready && seen_not_ready {
            let api: Api<Node> = Api::all(self.client.clone());
            match api.get(name).await {
                Ok(fresh) => node = fresh,
                Err(kube::Error::Api(e)) if e.code == 404 => return None,
                Err(e) => {
                    tracing::warn!(node = name, error = %e, "reading the node to taint it");
                    return Some(Duration::ZERO);
                }
            }
        }
        let Some(ready) = ready_condition(&node) else {
            return Some(NO_CONDITION_RETRY);
        };
        let (add, opposite) = match ready.status.as_str() {
            "False" => (not_ready_no_execute(), unreachable_no_execute()),
            "Unknown" => (unreachable_no_execute(), not_ready_no_execute()),
            // Ready again meanwhile.
            _ => return None,
        };
        match write::swap(&self.client, &node, vec![add], &[opposite]).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(node = name, error = %format!("{e:#}"), "failed to add a NoExecute taint");
                Some(Duration::ZERO)
            }
        }
    }
}
