//! Container garbage collection on its own schedule, as upstream's `kuberuntime_gc`: every
//! minute, exited containers and dead sandboxes nobody needs are removed.
//!
//! - Exited containers (created at least `min_age` ago) are grouped by pod UID and container
//!   name. Those of pods the kubelet no longer has (deleted) all go; of the others the newest
//!   `max_per_pod_container` instances stay (for `lastState` and `kubectl logs --previous`);
//!   then, if more than `max_containers` are left on the node, each group is cut to its share
//!   and the oldest go.
//! - Sandboxes that are not ready and hold no container: all of a deleted pod's go, a live
//!   pod keeps its newest.
//!
//! Until the kubelet has seen every pod bound to the node once, no pod counts as deleted (a
//! pod not listed yet is not a deleted one: upstream's `allSourcesReady`). Under disk pressure
//! the eviction manager's reclaim goes further ([`crate::eviction`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info};

use crate::cri::{RuntimeClient, api};
use crate::kuberuntime::LABEL_POD_UID;

/// `--minimum-container-ttl-duration`, `--maximum-dead-containers-per-container`,
/// `--maximum-dead-containers` (upstream's defaults: 0, 1, -1 = no limit), and how often.
#[derive(Clone, Debug)]
pub struct ContainerGcPolicy {
    pub min_age: Duration,
    pub max_per_pod_container: i32,
    pub max_containers: i32,
    /// Upstream's `ContainerGCPeriod`, one minute.
    pub period: Duration,
}

impl Default for ContainerGcPolicy {
    fn default() -> Self {
        ContainerGcPolicy {
            min_age: Duration::ZERO,
            max_per_pod_container: 1,
            max_containers: -1,
            period: Duration::from_secs(60),
        }
    }
}

/// An exited container as the collector sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Dead {
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    /// Nanoseconds since the epoch (CRI's `created_at`).
    pub created_at: i64,
}

/// Which of `dead` to remove (upstream's `evictContainers`). `deleted(uid)`: the pod is gone.
pub fn containers_to_remove(
    dead: Vec<Dead>,
    policy: &ContainerGcPolicy,
    deleted: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut units: HashMap<(String, String), Vec<Dead>> = HashMap::new();
    for d in dead {
        units
            .entry((d.pod_uid.clone(), d.name.clone()))
            .or_default()
            .push(d);
    }
    let mut remove = Vec::new();
    units.retain(|(uid, _), list| {
        if deleted(uid) {
            remove.extend(list.drain(..).map(|d| d.id));
            false
        } else {
            // Newest first: the instances kept are the front of the list.
            list.sort_by_key(|d| std::cmp::Reverse(d.created_at));
            true
        }
    });
    let mut keep_per_unit = |units: &mut HashMap<(String, String), Vec<Dead>>, n: usize| {
        for list in units.values_mut() {
            if list.len() > n {
                remove.extend(list.drain(n..).map(|d| d.id));
            }
        }
    };
    if let Ok(n) = usize::try_from(policy.max_per_pod_container) {
        keep_per_unit(&mut units, n);
    }
    if let Ok(max) = usize::try_from(policy.max_containers) {
        let count = |u: &HashMap<_, Vec<Dead>>| u.values().map(Vec::len).sum::<usize>();
        if count(&units) > max {
            let share = (max / units.len().max(1)).max(1);
            keep_per_unit(&mut units, share);
        }
        if count(&units) > max {
            let mut all: Vec<Dead> = units.into_values().flatten().collect();
            all.sort_by_key(|d| std::cmp::Reverse(d.created_at));
            remove.extend(all.drain(max.min(all.len())..).map(|d| d.id));
        }
    }
    remove
}

/// A sandbox as the collector sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxInfo {
    pub id: String,
    pub pod_uid: String,
    pub created_at: i64,
    /// Ready, or holding a container: never removed.
    pub active: bool,
}

/// Which sandboxes to remove (upstream's `evictSandboxes`): of each pod's, newest first, the
/// inactive ones among all (a deleted pod) or all but the newest (a live one).
pub fn sandboxes_to_remove(
    sandboxes: Vec<SandboxInfo>,
    deleted: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut by_pod: HashMap<String, Vec<SandboxInfo>> = HashMap::new();
    for s in sandboxes {
        by_pod.entry(s.pod_uid.clone()).or_default().push(s);
    }
    let mut remove = Vec::new();
    for (uid, mut list) in by_pod {
        list.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let skip = usize::from(!deleted(&uid));
        remove.extend(
            list.into_iter()
                .skip(skip)
                .filter(|s| !s.active)
                .map(|s| s.id),
        );
    }
    remove
}

/// The collector: what it asks of the runtime and of the kubelet.
pub struct ContainerGc {
    pub cri: RuntimeClient,
    pub policy: ContainerGcPolicy,
    /// Whether the kubelet runs a pod of this UID (its pod workers).
    pub known: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// True once every pod bound to the node has been seen.
    pub synced: watch::Receiver<bool>,
}

impl ContainerGc {
    /// Collects every period, until aborted.
    pub async fn run(self) {
        loop {
            tokio::time::sleep(self.policy.period).await;
            match self.collect().await {
                Ok((0, 0)) => {}
                Ok((containers, sandboxes)) => {
                    info!(
                        containers,
                        sandboxes, "removed dead containers and sandboxes"
                    )
                }
                Err(e) => debug!(error = %format!("{e:#}"), "container garbage collection"),
            }
        }
    }

    /// One round; returns how many containers and sandboxes went.
    pub async fn collect(&self) -> anyhow::Result<(usize, usize)> {
        let synced = *self.synced.borrow();
        let deleted = |uid: &str| synced && !(self.known)(uid);
        let containers = self.cri.list_containers(None).await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let min_age = i64::try_from(self.policy.min_age.as_nanos()).unwrap_or(i64::MAX);
        let dead = containers
            .iter()
            .filter(|c| c.state == api::ContainerState::ContainerExited as i32)
            .filter(|c| c.created_at <= now.saturating_sub(min_age))
            .map(|c| Dead {
                id: c.id.clone(),
                pod_uid: c.labels.get(LABEL_POD_UID).cloned().unwrap_or_default(),
                name: c
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                created_at: c.created_at,
            })
            .collect();
        let mut removed_containers = HashSet::new();
        for id in containers_to_remove(dead, &self.policy, &deleted) {
            match self.cri.remove_container(&id).await {
                Ok(()) => {
                    removed_containers.insert(id);
                }
                Err(e) => debug!(container = %id, error = %e, "cannot remove a dead container"),
            }
        }
        let holding: HashSet<&str> = containers
            .iter()
            .filter(|c| !removed_containers.contains(&c.id))
            .map(|c| c.pod_sandbox_id.as_str())
            .collect();
        let sandboxes = self
            .cri
            .list_pod_sandbox(None)
            .await?
            .into_iter()
            .map(|s| SandboxInfo {
                active: s.state == api::PodSandboxState::SandboxReady as i32
                    || holding.contains(s.id.as_str()),
                pod_uid: s.metadata.map(|m| m.uid).unwrap_or_default(),
                created_at: s.created_at,
                id: s.id,
            })
            .collect();
        let mut removed_sandboxes = 0;
        for id in sandboxes_to_remove(sandboxes, &deleted) {
            match self.cri.remove_pod_sandbox(&id).await {
                Ok(()) => removed_sandboxes += 1,
                Err(e) => debug!(sandbox = %id, error = %e, "cannot remove a dead sandbox"),
            }
        }
        Ok((removed_containers.len(), removed_sandboxes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(id: &str, uid: &str, name: &str, at: i64) -> Dead {
        Dead {
            id: id.into(),
            pod_uid: uid.into(),
            name: name.into(),
            created_at: at,
        }
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn the_newest_dead_instance_of_each_container_stays() {
        let policy = ContainerGcPolicy::default();
        let live = |_: &str| false;
        let out = containers_to_remove(
            vec![
                dead("a1", "p", "app", 1),
                dead("a3", "p", "app", 3),
                dead("a2", "p", "app", 2),
                dead("s1", "p", "sidecar", 1),
            ],
            &policy,
            &live,
        );
        assert_eq!(sorted(out), ["a1", "a2"]);
    }

    #[test]
    fn a_deleted_pods_containers_all_go() {
        let policy = ContainerGcPolicy::default();
        let gone = |uid: &str| uid == "gone";
        let out = containers_to_remove(
            vec![dead("g1", "gone", "app", 5), dead("l1", "live", "app", 1)],
            &policy,
            &gone,
        );
        assert_eq!(out, ["g1"]);
    }

    #[test]
    fn the_node_wide_limit_cuts_each_container_then_the_oldest() {
        let policy = ContainerGcPolicy {
            max_per_pod_container: -1,
            max_containers: 3,
            ..Default::default()
        };
        let live = |_: &str| false;
        let out = containers_to_remove(
            vec![
                dead("a1", "p", "a", 1),
                dead("a2", "p", "a", 2),
                dead("b1", "p", "b", 3),
                dead("b2", "p", "b", 4),
                dead("c1", "q", "c", 5),
                dead("c2", "q", "c", 6),
            ],
            &policy,
            &live,
        );
        // 3 / 3 units = 1 each (a2, b2, c2 kept): within the limit.
        assert_eq!(sorted(out), ["a1", "b1", "c1"]);
        let two = ContainerGcPolicy {
            max_containers: 2,
            ..policy
        };
        let out = containers_to_remove(
            vec![
                dead("a1", "p", "a", 1),
                dead("b1", "p", "b", 3),
                dead("c1", "q", "c", 5),
            ],
            &two,
            &live,
        );
        // One each is still 3 > 2: the oldest goes.
        assert_eq!(out, ["a1"]);
    }

    #[test]
    fn a_live_pod_keeps_its_newest_dead_sandbox() {
        let sb = |id: &str, uid: &str, at: i64, active: bool| SandboxInfo {
            id: id.into(),
            pod_uid: uid.into(),
            created_at: at,
            active,
        };
        let gone = |uid: &str| uid == "gone";
        let out = sandboxes_to_remove(
            vec![
                sb("l1", "live", 1, false),
                sb("l2", "live", 2, false),
                sb("l3", "live", 3, false),
                sb("r1", "running", 1, false),
                sb("r2", "running", 2, true),
                sb("g1", "gone", 1, false),
                sb("g2", "gone", 2, true),
            ],
            &gone,
        );
        assert_eq!(sorted(out), ["g1", "l1", "l2", "r1"]);
    }
}
