//! The eviction manager loop, as upstream's `eviction_manager.go`: every monitoring interval
//! (10 s) it observes the signals in a stats summary, sets the node's pressure conditions
//! (kept for the pressure transition period after the last threshold was met), reclaims disk
//! (dead containers, unused images) under disk pressure, and otherwise evicts one pod — ranked
//! by [`super::ranking`] — leaving it `Failed` with reason `Evicted`. Before the thresholds,
//! pods past their own local storage limits ([`super::local_storage`]) are evicted at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tracing::{info, warn};

use super::ranking;
use super::thresholds::{Observation, Signal, Threshold, default_hard, observe};
use super::{local_storage, reclaim};
use crate::cri::RuntimeClient;
use crate::events::EventTarget;
use crate::pod_workers::PodWorkers;
use crate::resources::is_critical_pod;
use crate::runtime_state::PodRuntime;
use crate::stats::StatsProvider;
use crate::stats::summary::PodStats;
use crate::status::{self, Notes, StatusContext, StatusManager};

/// The eviction manager's settings (upstream's `--eviction-*` flags).
#[derive(Clone, Debug, PartialEq)]
pub struct EvictionConfig {
    pub hard: Vec<Threshold>,
    pub soft: Vec<Threshold>,
    /// How long a pressure condition stays True after its thresholds stopped being met
    /// (`--eviction-pressure-transition-period`, 5 min).
    pub pressure_transition_period: Duration,
    /// How often signals are observed (upstream's 10 s monitoring interval).
    pub monitoring_interval: Duration,
    /// The longest grace a pod evicted for a soft threshold gets (0: its own).
    pub max_pod_grace_period: i64,
}

impl Default for EvictionConfig {
    fn default() -> Self {
        EvictionConfig {
            hard: default_hard(),
            soft: Vec::new(),
            pressure_transition_period: Duration::from_secs(300),
            monitoring_interval: Duration::from_secs(10),
            max_pod_grace_period: 0,
        }
    }
}

/// The pressure conditions currently True, shared with the node status.
#[derive(Clone, Debug, Default)]
pub struct Pressure(Arc<Mutex<BTreeSet<&'static str>>>);

impl Pressure {
    /// Whether the node condition `condition` (`MemoryPressure`, …) is True.
    pub fn is(&self, condition: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(condition)
    }

    /// The conditions True now (what the admit handler refuses pods for).
    pub fn conditions(&self) -> BTreeSet<&'static str> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, conditions: BTreeSet<&'static str>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = conditions;
    }

    /// Sets the conditions by hand (tests of the node status).
    #[doc(hidden)]
    pub fn set_for_test(&self, conditions: &[&'static str]) {
        self.set(conditions.iter().copied().collect());
    }
}

/// What the manager needs from the kubelet.
pub struct EvictionManager {
    pub cfg: EvictionConfig,
    pub stats: Arc<StatsProvider>,
    pub cri: RuntimeClient,
    pub workers: Arc<PodWorkers>,
    pub status: StatusManager,
    pub events: client_go::events::Recorder,
    pub pressure: Pressure,
    pub host_ip: String,
    pub runtime_name: String,
}

/// The loop's memory: when each soft threshold was first met, when each condition was last,
/// and which thresholds were met past their grace period last round (held until their
/// minimum reclaim).
#[derive(Default)]
struct Memory {
    first_met: HashMap<usize, Instant>,
    met_before: BTreeSet<usize>,
    condition_seen: HashMap<&'static str, Instant>,
}

fn format_amount(signal: Signal, v: i64) -> String {
    match signal {
        Signal::NodeFsInodesFree | Signal::PidAvailable => common::quantity::format_decimal(v, 0),
        _ => common::quantity::format_binary(v),
    }
}

/// Upstream's eviction message: the resource, the threshold and what was available, and each
/// container using more than it requested.
pub fn eviction_message(
    pod: &Pod,
    threshold: &Threshold,
    obs: &Observation,
    stats: Option<&PodStats>,
) -> String {
    let signal = threshold.signal;
    let mut message = format!(
        "The node was low on resource: {}. Threshold quantity: {}, available: {}. ",
        signal.resource(),
        format_amount(signal, threshold.quantity(obs.capacity)),
        format_amount(signal, obs.available),
    );
    let Some(stats) = stats else { return message };
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let Some(cs) = stats.containers.iter().find(|s| s.name == c.name) else {
            continue;
        };
        let usage = match signal {
            Signal::MemoryAvailable => cs.memory.as_ref().and_then(|m| m.working_set_bytes),
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => {
                match (cs.rootfs.as_ref(), cs.logs.as_ref()) {
                    (Some(r), Some(l)) => {
                        Some(r.used_bytes.unwrap_or(0) + l.used_bytes.unwrap_or(0))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let one = Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                containers: vec![c.clone()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = ranking::request(signal, &one);
        if let Some(u) = usage.map(|u| i64::try_from(u).unwrap_or(i64::MAX))
            && u > request
        {
            message.push_str(&format!(
                "Container {} was using {}, request is {}, has larger consumption of {}. ",
                c.name,
                common::quantity::format_binary(u),
                common::quantity::format_binary(request),
                signal.resource()
            ));
        }
    }
    message
}

impl EvictionManager {
    /// The conditions this manager sets, for the node status.
    pub fn pressure(&self) -> Pressure {
        self.pressure.clone()
    }

    /// Observes and acts every monitoring interval until aborted.
    pub async fn run(self) {
        let mut memory = Memory::default();
        loop {
            if let Err(e) = self.synchronize(&mut memory).await {
                warn!(error = %format!("{e:#}"), "eviction manager");
            }
            tokio::time::sleep(self.cfg.monitoring_interval).await;
        }
    }

    /// One round; returns the pod evicted, if any.
    async fn synchronize(&self, memory: &mut Memory) -> anyhow::Result<Option<String>> {
        let summary = self.stats.summary(false).await?;
        let obs = observe(&summary);
        let now = Instant::now();
        let all: Vec<&Threshold> = self.cfg.hard.iter().chain(&self.cfg.soft).collect();
        // Met now, or met before and not yet back above the minimum reclaim.
        let met: Vec<(usize, &Threshold)> = all
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                obs.get(&t.signal).is_some_and(|o| {
                    t.met(o) || (memory.met_before.contains(i) && t.met_until_reclaimed(o))
                })
            })
            .map(|(i, t)| (i, *t))
            .collect();
        memory
            .first_met
            .retain(|i, _| met.iter().any(|(j, _)| j == i));
        for (i, t) in &met {
            memory.first_met.entry(*i).or_insert(now);
            memory.condition_seen.insert(t.signal.condition(), now);
        }
        let active: BTreeSet<&'static str> = memory
            .condition_seen
            .iter()
            .filter(|(_, at)| now.duration_since(**at) < self.cfg.pressure_transition_period)
            .map(|(c, _)| *c)
            .chain(met.iter().map(|(_, t)| t.signal.condition()))
            .collect();
        self.pressure.set(active);
        let past_grace = |i: &usize, t: &Threshold| {
            memory
                .first_met
                .get(i)
                .is_some_and(|first| now.duration_since(*first) >= t.grace_period)
        };
        memory.met_before = met
            .iter()
            .filter(|(i, t)| past_grace(i, t))
            .map(|(i, _)| *i)
            .collect();
        // Pods past their own local storage limits go first, whatever the thresholds.
        if let Some(evicted) = self.local_storage_eviction(&summary.pods).await {
            return Ok(Some(evicted));
        }
        let due = met.iter().find(|(i, t)| past_grace(i, t));
        let Some((_, threshold)) = due else {
            return Ok(None);
        };
        let signal = threshold.signal;
        let mut observation = obs[&signal];
        info!(
            signal = signal.name(),
            available = observation.available,
            "eviction threshold met"
        );
        if signal.is_disk() {
            reclaim::delete_dead_containers(&self.cri).await?;
            if signal == Signal::ImageFsAvailable || signal == Signal::NodeFsAvailable {
                reclaim::delete_unused_images(&self.cri).await?;
            }
            // Enough only when every threshold is clear by its minimum reclaim too.
            let after = observe(&self.stats.summary(false).await?);
            let still = all.iter().any(|t| {
                after
                    .get(&t.signal)
                    .is_some_and(|o| t.met_until_reclaimed(o))
            });
            match after.get(&signal) {
                Some(o) if still => observation = *o,
                _ => {
                    info!(
                        signal = signal.name(),
                        "reclaimed enough without evicting pods"
                    );
                    return Ok(None);
                }
            }
        }
        let stats: HashMap<String, PodStats> = summary
            .pods
            .into_iter()
            .map(|p| (p.pod_ref.uid.clone(), p))
            .collect();
        let mut candidates: Vec<Arc<Pod>> = self
            .workers
            .pods()
            .into_iter()
            .filter(|p| !status::is_terminal(p) && p.metadata.deletion_timestamp.is_none())
            .filter(|p| !is_critical_pod(p))
            .collect();
        ranking::rank(signal, &mut candidates, &stats);
        let Some(victim) = candidates.first() else {
            warn!(
                signal = signal.name(),
                "eviction threshold met but no pod can be evicted"
            );
            return Ok(None);
        };
        let uid = victim.metadata.uid.clone().unwrap_or_default();
        let message = eviction_message(victim, threshold, &observation, stats.get(&uid));
        let grace = if threshold.grace_period.is_zero() {
            Duration::ZERO
        } else {
            let own = victim
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30);
            let max = self.cfg.max_pod_grace_period;
            let secs = if max > 0 { own.min(max) } else { own };
            Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        };
        self.evict(victim, &message, grace, true).await?;
        Ok(victim.metadata.name.clone())
    }

    /// Evicts, at once, the pods that outgrew their local storage limits (upstream's
    /// `localStorageEviction`); returns the last one's name.
    async fn local_storage_eviction(&self, stats: &[PodStats]) -> Option<String> {
        let mut last = None;
        for pod in self.workers.pods() {
            if status::is_terminal(&pod) || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let uid = pod.metadata.uid.as_deref().unwrap_or_default();
            let Some(s) = stats.iter().find(|s| s.pod_ref.uid == uid) else {
                continue;
            };
            let Some(message) = local_storage::violation(&pod, s) else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if is_critical_pod(&pod) {
                warn!(pod = %name, %message, "cannot evict a critical pod");
                continue;
            }
            // Upstream passes no DisruptionTarget condition for these.
            match self.evict(&pod, &message, Duration::ZERO, false).await {
                Ok(()) => last = Some(name),
                Err(e) => {
                    warn!(pod = %name, error = %format!("{e:#}"), "evicting a pod over its local storage limit")
                }
            }
        }
        last
    }

    /// Kills the pod and leaves it Failed/Evicted (upstream's `evictPod`), with a
    /// DisruptionTarget condition when `condition`.
    async fn evict(
        &self,
        pod: &Pod,
        message: &str,
        grace: Duration,
        condition: bool,
    ) -> anyhow::Result<()> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        info!(pod = %format!("{ns}/{name}"), %message, "evicting pod");
        EventTarget::pod(&self.events, pod).warning("Evicted", message.to_owned());
        // The terminal status first, so the pod's worker restarts nothing that is killed.
        let base = self
            .status
            .get(&uid)
            .or_else(|| pod.status.clone())
            .unwrap_or_default();
        self.status
            .write_now(pod, &evicted(base, message, condition))
            .await
            .context("writing the evicted pod's status")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self
            .workers
            .pod(&ns, &name)
            .is_some_and(|p| status::is_terminal(&p))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rt = PodRuntime::inspect(&self.cri, &uid).await?;
        for c in rt.running() {
            if let Err(e) = self.cri.stop_container(&c.id, grace).await
                && !e.is_not_found()
            {
                warn!(container = %c.id, error = %e, "cannot stop a container of an evicted pod");
            }
        }
        // The containers' final states, as the pod's worker would have reported them.
        let rt = PodRuntime::inspect(&self.cri, &uid).await?;
        let latest = self
            .workers
            .pod(&ns, &name)
            .unwrap_or_else(|| Arc::new(pod.clone()));
        let generated = status::generate(
            &latest,
            &rt,
            &Notes {
                terminating: true,
                ..Default::default()
            },
            &StatusContext {
                host_ip: &self.host_ip,
                runtime_name: &self.runtime_name,
                now: Timestamp::now(),
            },
        );
        self.status
            .write_now(pod, &evicted(generated, message, condition))
            .await
            .context("writing the evicted pod's final status")?;
        self.workers.wake(&uid);
        Ok(())
    }
}

/// `status` as upstream leaves an evicted pod: Failed, reason Evicted, the message, and (for
/// node pressure) a DisruptionTarget condition (TerminationByKubelet).
fn evicted(mut status: PodStatus, message: &str, condition: bool) -> PodStatus {
    status.phase = Some("Failed".into());
    status.reason = Some("Evicted".into());
    status.message = Some(message.to_owned());
    if !condition {
        return status;
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "DisruptionTarget");
    conditions.push(PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some("TerminationByKubelet".into()),
        message: Some(message.to_owned()),
        last_transition_time: Some(Time(
            Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::now()),
        )),
        ..Default::default()
    });
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eviction::thresholds::parse_thresholds;
    use crate::stats::summary::{ContainerStats, MemoryStats};
    use serde_json::json;

    #[test]
    fn messages_and_statuses_as_upstream() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "hog", "resources": {"requests": {"memory": "1Mi"}}},
                {"name": "calm"}]}}))
        .unwrap();
        let t = &parse_thresholds("memory.available<100Mi").unwrap()[0];
        let obs = Observation {
            available: 50 << 20,
            capacity: 1 << 30,
        };
        let stats = PodStats {
            containers: ["hog", "calm"]
                .iter()
                .zip([8u64 << 20, 0])
                .map(|(n, ws)| ContainerStats {
                    name: (*n).into(),
                    memory: Some(MemoryStats {
                        working_set_bytes: Some(ws),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            eviction_message(&pod, t, &obs, Some(&stats)),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. \
             Container hog was using 8Mi, request is 1Mi, has larger consumption of memory. "
        );
        let st = evicted(PodStatus::default(), "m", true);
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        assert_eq!(st.reason.as_deref(), Some("Evicted"));
        let c = &st.conditions.unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.reason.as_deref()),
            ("DisruptionTarget", Some("TerminationByKubelet"))
        );
        // Local storage evictions carry no condition, as upstream's.
        let st = evicted(PodStatus::default(), "m", false);
        assert_eq!(st.reason.as_deref(), Some("Evicted"));
        assert!(st.conditions.is_none());
        let mut static_pod = pod.clone();
        static_pod.metadata.annotations =
            Some([("kubernetes.io/config.source".to_owned(), "file".to_owned())].into());
        assert!(is_critical_pod(&static_pod));
        assert!(!is_critical_pod(&pod));
    }
}
