//! How many replicas a metric asks for (upstream's `replica_calculator.go` and
//! `metrics/utilization.go`): the ratio of the measured value to the target, times the pods
//! measured, left alone within the tolerance. Pods being deleted or failed are ignored;
//! pending and not-yet-ready pods (CPU only: within the initialization period) count as
//! using nothing when scaling up and are left out otherwise; pods without metrics count as
//! using 0 on a scale-up and their request (or the target) on a scale-down, and a change of
//! direction those assumptions cause cancels the change.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::metrics_client::{MetricsClient, PodMetric, PodMetricsInfo, milli_value};

/// The pods an HPA's target selects.
pub struct Selected<'a> {
    pub namespace: &'a str,
    /// The Scale's `status.selector`, in query syntax.
    pub selector: &'a str,
    pub pods: &'a [Arc<Pod>],
}

/// What a utilization target yields.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Utilization {
    pub replicas: i32,
    /// Percent of the pods' requests in use.
    pub utilization: i32,
    /// Average use per pod (milli-units).
    pub raw: i64,
    pub timestamp: Timestamp,
}

pub struct ReplicaCalculator {
    pub metrics: Arc<dyn MetricsClient>,
    /// Ratios within 1 ± tolerance change nothing.
    pub tolerance: f64,
    /// How long after starting a pod's CPU samples may still be start-up noise.
    pub cpu_initialization_period: Duration,
    /// How long after starting a pod may turn unready before it has ever been ready.
    pub delay_of_initial_readiness_status: Duration,
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Pods sorted by how their metrics may be used.
#[derive(Debug, Default, PartialEq)]
struct Groups {
    ready: usize,
    unready: HashSet<String>,
    missing: HashSet<String>,
    ignored: HashSet<String>,
}

impl ReplicaCalculator {
    fn within_tolerance(&self, ratio: f64) -> bool {
        1.0 - self.tolerance <= ratio && ratio <= 1.0 + self.tolerance
    }

    /// Upstream's `groupPods`.
    fn group(
        &self,
        pods: &[Arc<Pod>],
        metrics: &PodMetricsInfo,
        resource: &str,
        now: Timestamp,
    ) -> Groups {
        let mut g = Groups::default();
        for pod in pods {
            let n = name(pod);
            if pod.metadata.deletion_timestamp.is_some() || phase(pod) == "Failed" {
                g.ignored.insert(n);
                continue;
            }
            if phase(pod) == "Pending" {
                g.unready.insert(n);
                continue;
            }
            let Some(metric) = metrics.get(&n) else {
                g.missing.insert(n);
                continue;
            };
            if resource == "cpu" && self.cpu_sample_unready(pod, metric, now) {
                g.unready.insert(n);
                continue;
            }
            g.ready += 1;
        }
        g
    }

    /// Whether a pod's CPU sample may be start-up noise: it is not ready, or within the
    /// initialization period no full window was sampled since it became ready, or it never
    /// was ready since starting.
    fn cpu_sample_unready(&self, pod: &Pod, metric: &PodMetric, now: Timestamp) -> bool {
        let start = pod.status.as_ref().and_then(|s| s.start_time.as_ref());
        let (Some(condition), Some(start)) = (ready_condition(pod), start) else {
            return true;
        };
        let transition = condition
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
        if after(start.0, self.cpu_initialization_period) > now {
            condition.status == "False" || metric.timestamp < after(transition, metric.window)
        } else {
            condition.status == "False"
                && after(start.0, self.delay_of_initial_readiness_status) > transition
        }
    }

    /// Replicas for a utilization target (percent of request) of a resource.
    pub async fn resource_replicas(
        &self,
        current_replicas: i32,
        target_utilization: i32,
        resource: &str,
        container: Option<&str>,
        selected: &Selected<'_>,
        now: Timestamp,
    ) -> anyhow::Result<Utilization> {
        let (mut metrics, timestamp) = self
            .metrics
            .resource_metric(resource, selected.namespace, selected.selector, container)
            .await
            .map_err(|e| anyhow!("unable to get metrics for resource {resource}: {e:#}"))?;
        if selected.pods.is_empty() {
            return Err(no_pods());
        }
        let g = self.group(selected.pods, &metrics, resource, now);
        metrics.retain(|n, _| !g.ignored.contains(n) && !g.unready.contains(n));
        if metrics.is_empty() {
            return Err(no_metrics());
        }
        let requests = requests(selected.pods, container, resource)?;
        let (ratio, utilization, raw) = utilization_ratio(&metrics, &requests, target_utilization)?;
        let done = |replicas| {
            Ok(Utilization {
                replicas,
                utilization,
                raw,
                timestamp,
            })
        };
        let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && g.missing.is_empty() {
            if self.within_tolerance(ratio) {
                return done(current_replicas);
            }
            return done(ceil(ratio * g.ready as f64));
        }
        if !g.missing.is_empty() {
            // Missing pods use their whole request (or the target when above 100%) on a
            // scale-down, nothing on a scale-up.
            let fallback = i64::from(target_utilization.max(100));
            for n in &g.missing {
                let value = if ratio < 1.0 {
                    requests.get(n).copied().unwrap_or(0) * fallback / 100
                } else if ratio > 1.0 {
                    0
                } else {
                    continue;
                };
                metrics.insert(n.clone(), assumed(value));
            }
        }
        if scale_up_with_unready {
            for n in &g.unready {
                metrics.insert(n.clone(), assumed(0));
            }
        }
        let (new_ratio, _, _) = utilization_ratio(&metrics, &requests, target_utilization)?;
        if self.direction_unclear(ratio, new_ratio) {
            return done(current_replicas);
        }
        let replicas = ceil(new_ratio * metrics.len() as f64);
        if (new_ratio < 1.0 && replicas > current_replicas)
            || (new_ratio > 1.0 && replicas < current_replicas)
        {
            return done(current_replicas);
        }
        done(replicas)
    }

    /// The new ratio is within tolerance, or says the opposite of the measured one.
    fn direction_unclear(&self, ratio: f64, new_ratio: f64) -> bool {
        self.within_tolerance(new_ratio)
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
    }

    /// Replicas for an average value target of a resource: (replicas, average use).
    pub async fn raw_resource_replicas(
        &self,
        current_replicas: i32,
        target_usage: i64,
        resource: &str,
        container: Option<&str>,
        selected: &Selected<'_>,
        now: Timestamp,
    ) -> anyhow::Result<(i32, i64, Timestamp)> {
        let (metrics, timestamp) = self
            .metrics
            .resource_metric(resource, selected.namespace, selected.selector, container)
            .await
            .map_err(|e| anyhow!("unable to get metrics for resource {resource}: {e:#}"))?;
        let (replicas, usage) = self.plain_metric_replicas(
            metrics,
            current_replicas,
            target_usage,
            resource,
            selected.pods,
            now,
        )?;
        Ok((replicas, usage, timestamp))
    }

    /// Replicas for a Pods metric's average value target.
    pub async fn metric_replicas(
        &self,
        current_replicas: i32,
        target_usage: i64,
        metric: &str,
        metric_selector: Option<&LabelSelector>,
        selected: &Selected<'_>,
        now: Timestamp,
    ) -> anyhow::Result<(i32, i64, Timestamp)> {
        let (metrics, timestamp) = self
            .metrics
            .raw_metric(
                metric,
                selected.namespace,
                selected.selector,
                metric_selector,
            )
            .await
            .map_err(|e| anyhow!("unable to get metric {metric}: {e:#}"))?;
        let (replicas, usage) = self.plain_metric_replicas(
            metrics,
            current_replicas,
            target_usage,
            "",
            selected.pods,
            now,
        )?;
        Ok((replicas, usage, timestamp))
    }

    /// Upstream's `calcPlainMetricReplicas`: (replicas, average use).
    fn plain_metric_replicas(
        &self,
        mut metrics: PodMetricsInfo,
        current_replicas: i32,
        target_usage: i64,
        resource: &str,
        pods: &[Arc<Pod>],
        now: Timestamp,
    ) -> anyhow::Result<(i32, i64)> {
        if pods.is_empty() {
            return Err(no_pods());
        }
        let g = self.group(pods, &metrics, resource, now);
        metrics.retain(|n, _| !g.ignored.contains(n) && !g.unready.contains(n));
        if metrics.is_empty() {
            return Err(no_metrics());
        }
        let (ratio, usage) = usage_ratio(&metrics, target_usage);
        let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && g.missing.is_empty() {
            if self.within_tolerance(ratio) {
                return Ok((current_replicas, usage));
            }
            return Ok((ceil(ratio * g.ready as f64), usage));
        }
        if !g.missing.is_empty() {
            // Missing pods use exactly the target on a scale-down, nothing on a scale-up.
            for n in &g.missing {
                let value = if ratio < 1.0 {
                    target_usage
                } else if ratio > 1.0 {
                    0
                } else {
                    continue;
                };
                metrics.insert(n.clone(), assumed(value));
            }
        }
        if scale_up_with_unready {
            for n in &g.unready {
                metrics.insert(n.clone(), assumed(0));
            }
        }
        let (new_ratio, _) = usage_ratio(&metrics, target_usage);
        if self.direction_unclear(ratio, new_ratio) {
            return Ok((current_replicas, usage));
        }
        let replicas = ceil(new_ratio * metrics.len() as f64);
        if (new_ratio < 1.0 && replicas > current_replicas)
            || (new_ratio > 1.0 && replicas < current_replicas)
        {
            return Ok((current_replicas, usage));
        }
        Ok((replicas, usage))
    }

    /// Replicas for an Object metric's value target: the ratio times the ready pods (or the
    /// ratio alone from zero replicas, so a target scaled to zero can come back).
    pub async fn object_metric_replicas(
        &self,
        current_replicas: i32,
        target_usage: i64,
        metric: &str,
        object: &CrossVersionObjectReference,
        metric_selector: Option<&LabelSelector>,
        selected: &Selected<'_>,
    ) -> anyhow::Result<(i32, i64, Timestamp)> {
        let (usage, timestamp) = self
            .metrics
            .object_metric(metric, selected.namespace, object, metric_selector)
            .await
            .map_err(|e| object_error(metric, object, selected.namespace, &e))?;
        let ratio = usage as f64 / target_usage as f64;
        if current_replicas == 0 {
            return Ok((ceil(ratio), usage, timestamp));
        }
        if self.within_tolerance(ratio) {
            return Ok((current_replicas, usage, timestamp));
        }
        if selected.pods.is_empty() {
            return Err(anyhow!("unable to calculate ready pods: {}", no_pods()));
        }
        let ready = selected
            .pods
            .iter()
            .filter(|p| {
                phase(p) == "Running" && ready_condition(p).is_some_and(|c| c.status == "True")
            })
            .count();
        Ok((ceil(ratio * ready as f64), usage, timestamp))
    }

    /// Replicas for an Object metric's average value target: the value over the target per
    /// pod; the average is the value over the target's current replicas.
    pub async fn object_per_pod_metric_replicas(
        &self,
        status_replicas: i32,
        target_average: i64,
        metric: &str,
        object: &CrossVersionObjectReference,
        metric_selector: Option<&LabelSelector>,
        namespace: &str,
    ) -> anyhow::Result<(i32, i64, Timestamp)> {
        let (usage, timestamp) = self
            .metrics
            .object_metric(metric, namespace, object, metric_selector)
            .await
            .map_err(|e| object_error(metric, object, namespace, &e))?;
        let mut replicas = status_replicas;
        let ratio = usage as f64 / (target_average as f64 * f64::from(status_replicas));
        if !self.within_tolerance(ratio) {
            replicas = ceil(usage as f64 / target_average as f64);
        }
        // No replicas yet: the whole value is one pod's (upstream would divide by zero).
        let average = (usage as f64 / f64::from(status_replicas.max(1))).ceil() as i64;
        Ok((replicas, average, timestamp))
    }
}

/// A value assumed for a pod (its timestamp and window are never read).
fn assumed(value: i64) -> PodMetric {
    PodMetric {
        timestamp: Timestamp::UNIX_EPOCH,
        window: Duration::ZERO,
        value,
    }
}

/// Rounds up to replicas, saturating at the bounds of i32 (as upstream caps overflows).
fn ceil(v: f64) -> i32 {
    v.ceil() as i32
}

fn no_pods() -> anyhow::Error {
    anyhow!("no pods returned by selector while calculating replica count")
}

fn no_metrics() -> anyhow::Error {
    anyhow!("did not receive metrics for targeted pods (pods might be unready)")
}

fn object_error(
    metric: &str,
    object: &CrossVersionObjectReference,
    namespace: &str,
    e: &anyhow::Error,
) -> anyhow::Error {
    anyhow!(
        "unable to get metric {metric}: {} {namespace}/{}: {e:#}",
        object.kind,
        object.name
    )
}

/// Each pod's request of `resource` (milli-units): its containers' (and restartable init
/// containers') summed, or `container`'s; an error when one has none.
pub fn requests(
    pods: &[Arc<Pod>],
    container: Option<&str>,
    resource: &str,
) -> anyhow::Result<std::collections::HashMap<String, i64>> {
    let mut out = std::collections::HashMap::new();
    for pod in pods {
        let n = name(pod);
        let spec = pod.spec.as_ref();
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let containers = spec
            .map(|s| s.containers.iter())
            .into_iter()
            .flatten()
            .chain(sidecars);
        let mut request = 0i64;
        let mut found = false;
        for c in containers {
            if container.is_some_and(|want| want != c.name) {
                continue;
            }
            let q = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .ok_or_else(|| {
                    anyhow!(
                        "missing request for {resource} in container {} of Pod {n}",
                        c.name
                    )
                })?;
            request += milli_value(q);
            found = true;
            if container.is_some() {
                break;
            }
        }
        if let (Some(want), false) = (container, found) {
            return Err(anyhow!("container {want} not found in Pod {n}"));
        }
        out.insert(n, request);
    }
    Ok(out)
}

/// Upstream's `GetResourceUtilizationRatio`: (ratio to the target, percent of requests in
/// use, average use per pod), over the pods that have both a metric and a request.
pub fn utilization_ratio(
    metrics: &PodMetricsInfo,
    requests: &std::collections::HashMap<String, i64>,
    target_utilization: i32,
) -> anyhow::Result<(f64, i32, i64)> {
    let (mut used, mut requested, mut entries) = (0i64, 0i64, 0i64);
    for (pod, m) in metrics {
        // Metrics of pods not listed are extraneous.
        let Some(r) = requests.get(pod) else { continue };
        used += m.value;
        requested += r;
        entries += 1;
    }
    if requested == 0 {
        return Err(anyhow!("no metrics returned matched known pods"));
    }
    let utilization = (used * 100 / requested) as i32;
    Ok((
        f64::from(utilization) / f64::from(target_utilization),
        utilization,
        used / entries,
    ))
}

/// Upstream's `GetMetricUsageRatio`: (ratio to the target, average use).
pub fn usage_ratio(metrics: &PodMetricsInfo, target_usage: i64) -> (f64, i64) {
    let total: i64 = metrics.values().map(|m| m.value).sum();
    let average = total / (metrics.len().max(1) as i64);
    (average as f64 / target_usage as f64, average)
}

#[cfg(test)]
mod tests;
