//! The HorizontalPodAutoscaler controller (upstream's `pkg/controller/podautoscaler`): every
//! sync period (15 s) each HPA reads its target's scale, asks its metrics how many replicas
//! they want, normalizes that (stabilization, rate limits, min/max) and writes the scale
//! back, then its status. Split as upstream's: [`replica_calculator`] the arithmetic,
//! [`metrics_client`] the metrics APIs, [`behavior`] the normalization, `compute` the
//! metrics of one HPA, `status` its conditions and status, `scale` the target's scale.

pub mod behavior;
mod compute;
#[cfg(test)]
mod fake;
mod hpa_selectors;
pub mod mapper;
pub mod metrics_client;
pub mod replica_calculator;
mod scale;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, HorizontalPodAutoscalerStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

use client_go::events::Recorder;
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

pub use metrics_client::{MetricsClient, PodMetric, PodMetricsInfo, RestMetricsClient};

use behavior::History;
use compute::Proposal;
use hpa_selectors::HpaSelectors;
use mapper::RestMapper;
use replica_calculator::{ReplicaCalculator, Selected};
use status::{ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED, Working};

/// kube-controller-manager's `--horizontal-pod-autoscaler-*` settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--horizontal-pod-autoscaler-sync-period`.
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`.
    pub downscale_stabilization: Duration,
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization_period: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub initial_readiness_delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

pub struct HorizontalController {
    client: Client,
    hpas: Informer<HorizontalPodAutoscaler>,
    pods: Informer<Pod>,
    queue: Arc<WorkQueue>,
    mapper: Arc<RestMapper>,
    calc: ReplicaCalculator,
    recorder: Recorder,
    options: Options,
    /// Each HPA's recent recommendations and rescales.
    history: Mutex<HashMap<String, History>>,
    selectors: HpaSelectors,
    /// When each HPA's next sync is due (one pending sync per HPA, the earliest kept, as
    /// upstream's delaying queue).
    due: Arc<Mutex<HashMap<String, Instant>>>,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

fn labels(p: &Pod) -> &BTreeMap<String, String> {
    p.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

impl HorizontalController {
    /// The controller reading metrics through the API server's metrics APIs.
    pub fn new(
        client: Client,
        hpas: Informer<HorizontalPodAutoscaler>,
        pods: Informer<Pod>,
        options: Options,
    ) -> Arc<Self> {
        let mapper = Arc::new(RestMapper::new(client.clone()));
        let metrics = Arc::new(RestMetricsClient::new(client.clone(), mapper.clone()));
        Self::with_metrics(client, hpas, pods, metrics, mapper, options)
    }

    /// The controller reading metrics from `metrics` (a fake one in tests).
    pub fn with_metrics(
        client: Client,
        hpas: Informer<HorizontalPodAutoscaler>,
        pods: Informer<Pod>,
        metrics: Arc<dyn MetricsClient>,
        mapper: Arc<RestMapper>,
        options: Options,
    ) -> Arc<Self> {
        let c = Arc::new(HorizontalController {
            recorder: Recorder::new(client.clone(), "horizontal-pod-autoscaler"),
            client,
            hpas,
            pods,
            queue: WorkQueue::new(),
            mapper,
            calc: ReplicaCalculator {
                metrics,
                tolerance: options.tolerance,
                cpu_initialization_period: options.cpu_initialization_period,
                delay_of_initial_readiness_status: options.initial_readiness_delay,
            },
            options,
            history: Mutex::new(HashMap::new()),
            selectors: HpaSelectors::default(),
            due: Arc::new(Mutex::new(HashMap::new())),
        });
        let me = c.clone();
        c.hpas.on_change(
            move |ch: &Change<HorizontalPodAutoscaler>| match (&ch.new, &ch.old) {
                (Some(h), _) => {
                    let key = key_of(h.as_ref());
                    me.selectors.register(&key);
                    me.schedule(&key);
                }
                (None, Some(old)) => me.selectors.remove(&key_of(old.as_ref())),
                (None, None) => {}
            },
        );
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.hpas, &self.pods], workers).await;
    }

    /// Queues the HPA one sync period from now, unless it is due sooner already: every HPA
    /// is looked at once per period, whatever changes meanwhile.
    fn schedule(&self, key: &str) {
        let at = Instant::now() + self.options.sync_period;
        {
            let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
            if due.get(key).is_some_and(|t| *t <= at) {
                return;
            }
            due.insert(key.to_string(), at);
        }
        let (due, queue, key) = (self.due.clone(), self.queue.clone(), key.to_string());
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let mine = {
                let mut due = due.lock().unwrap_or_else(|e| e.into_inner());
                let mine = due.get(&key) == Some(&at);
                if mine {
                    due.remove(&key);
                }
                mine
            };
            if mine {
                queue.add(key);
            }
        });
    }
}

impl Reconciler for HorizontalController {
    const NAME: &'static str = "horizontal-pod-autoscaler";

    /// Errors are logged, not retried sooner: the HPA is looked at again next period.
    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(hpa) = self.hpas.get_key(key) else {
            tracing::info!(hpa = key, "horizontal pod autoscaler has been deleted");
            self.history_lock().remove(key);
            return Ok(Action::Done);
        };
        if let Err(e) = self.reconcile_autoscaler(&hpa, key).await {
            tracing::warn!(hpa = key, error = %format!("{e:#}"), "horizontal pod autoscaler sync failed");
        }
        self.schedule(key);
        Ok(Action::Done)
    }
}

impl HorizontalController {
    fn history_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, History>> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Upstream's `reconcileAutoscaler`.
    async fn reconcile_autoscaler(
        &self,
        hpa: &HorizontalPodAutoscaler,
        key: &str,
    ) -> anyhow::Result<()> {
        let (now, instant) = (Timestamp::now(), Instant::now());
        let mut w = Working::new(hpa.clone(), now);
        let original = hpa.status.clone();
        let ns = hpa.metadata.namespace.clone().unwrap_or_default();
        let spec = hpa.spec.clone().unwrap_or_default();
        let target = &spec.scale_target_ref;
        let reference = format!("{}/{ns}/{}", target.kind, target.name);

        let (resource, scale) = match scale::get(&self.client, &self.mapper, &ns, target).await {
            Ok(found) => found,
            Err(e) => {
                w.event(true, "FailedGetScale", e.cause().to_string());
                w.set_condition(
                    ABLE_TO_SCALE,
                    false,
                    "FailedGetScale",
                    format!(
                        "the HPA controller was unable to get the target's current scale: {}",
                        e.cause()
                    ),
                );
                self.finish_after_failure(&mut w, &original).await;
                return Err(e.into());
            }
        };
        w.set_condition(
            ABLE_TO_SCALE,
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        );
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let status_replicas = scale.status.as_ref().map_or(0, |s| s.replicas);
        self.history_lock()
            .entry(key.to_string())
            .or_default()
            .record_initial(current, instant);

        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let mut statuses = None;
        let mut desired = 0;
        let mut reason = String::new();
        let mut partial_failure = None;
        let mut rescale = true;
        if current == 0 && min != 0 {
            // A target scaled to zero by hand is left alone.
            rescale = false;
            w.set_condition(
                SCALING_ACTIVE,
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            );
        } else if current > max {
            reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max;
        } else if current < min {
            reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min;
        } else {
            let selector = scale
                .status
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default();
            let proposal = match self.validate_selector(&mut w, key, &ns, &selector) {
                Ok(pods) => {
                    let selected = Selected {
                        namespace: &ns,
                        selector: &selector,
                        pods: &pods,
                    };
                    compute::replicas_for_metrics(
                        &mut w,
                        &self.calc,
                        current,
                        status_replicas,
                        &selected,
                        now,
                    )
                    .await
                }
                Err(e) => Proposal {
                    replicas: None,
                    metric: String::new(),
                    statuses: None,
                    error: Some(e),
                },
            };
            let Some(proposed) = proposal.replicas else {
                let err = proposal
                    .error
                    .unwrap_or_else(|| anyhow!("no metric could be computed"));
                w.set_current(current, proposal.statuses);
                w.event(true, "FailedComputeMetricsReplicas", format!("{err:#}"));
                self.finish_after_failure(&mut w, &original).await;
                return Err(anyhow!(
                    "failed to compute desired number of replicas based on listed metrics for {reference}: {err:#}"
                ));
            };
            // Scaling goes on with the metrics that worked; the failure is reported after.
            partial_failure = proposal.error;
            statuses = proposal.statuses;
            let mut metric = String::new();
            if proposed > desired {
                desired = proposed;
                metric = proposal.metric;
            }
            if desired > current {
                reason = format!("{metric} above target");
            }
            if desired < current {
                reason = "All metrics below target".into();
            }
            let n = {
                let mut history = self.history_lock();
                let h = history.entry(key.to_string()).or_default();
                let window = self.options.downscale_stabilization;
                match &spec.behavior {
                    None => h.normalize(current, desired, min, max, window, instant),
                    Some(b) => {
                        h.normalize_with_behavior(b, current, desired, min, max, window, instant)
                    }
                }
            };
            let (a, l) = (&n.able_to_scale, &n.scaling_limited);
            w.set_condition(ABLE_TO_SCALE, a.status, a.reason, a.message.into());
            w.set_condition(SCALING_LIMITED, l.status, l.reason, l.message.into());
            desired = n.replicas;
            rescale = desired != current;
        }

        if rescale {
            if let Err(e) = scale::update(&self.client, &resource, &ns, scale, desired).await {
                w.event(
                    true,
                    "FailedRescale",
                    format!("New size: {desired}; reason: {reason}; error: {e:#}"),
                );
                w.set_condition(
                    ABLE_TO_SCALE,
                    false,
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e:#}"),
                );
                w.set_current(current, statuses);
                self.finish_after_failure(&mut w, &original).await;
                return Err(anyhow!("failed to rescale {reference}: {e:#}"));
            }
            w.set_condition(
                ABLE_TO_SCALE,
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
            w.event(
                false,
                "SuccessfulRescale",
                format!("New size: {desired}; reason: {reason}"),
            );
            self.history_lock()
                .entry(key.to_string())
                .or_default()
                .store_scale_event(
                    spec.behavior.as_ref(),
                    self.options.downscale_stabilization,
                    current,
                    desired,
                    instant,
                );
            tracing::info!(hpa = key, current, desired, reason = %reason, "successfully rescaled");
        } else {
            desired = current;
        }
        w.set_status(current, desired, statuses, rescale);
        self.finish(&mut w, &original).await?;
        match partial_failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Upstream's `validateAndParseSelector`: the target's pods, unless its selector is
    /// missing or bad, or another HPA scales some of them too.
    fn validate_selector(
        &self,
        w: &mut Working,
        key: &str,
        ns: &str,
        selector: &str,
    ) -> anyhow::Result<Vec<Arc<Pod>>> {
        if selector.is_empty() {
            w.event(true, "SelectorRequired", "selector is required".into());
            w.set_condition(
                SCALING_ACTIVE,
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector".into(),
            );
            return Err(anyhow!("selector is required"));
        }
        let parsed = common::selectors::parse(selector).map_err(|e| {
            let msg = format!(
                "couldn't convert selector into a corresponding internal selector object: {e}"
            );
            w.event(true, "InvalidSelector", msg.clone());
            w.set_condition(SCALING_ACTIVE, false, "InvalidSelector", msg.clone());
            anyhow!(msg)
        })?;
        self.selectors.update(key, &parsed);
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| common::selectors::selects(&parsed, labels(p)))
            .collect();
        let controlling = self
            .selectors
            .controlling(ns, pods.iter().map(|p| labels(p)));
        if controlling.len() > 1 {
            let msg = format!(
                "pods by selector {selector} are controlled by multiple HPAs: [{}]",
                controlling.join(" ")
            );
            w.event(true, "AmbiguousSelector", msg.clone());
            w.set_condition(SCALING_ACTIVE, false, "AmbiguousSelector", msg.clone());
            return Err(anyhow!(msg));
        }
        Ok(pods)
    }

    /// Writes the status when it changed and records the events; a failed write is the
    /// sync's error.
    async fn finish(
        &self,
        w: &mut Working,
        original: &Option<HorizontalPodAutoscalerStatus>,
    ) -> anyhow::Result<()> {
        let result = if w.hpa.status != *original {
            self.update_status(w).await
        } else {
            Ok(())
        };
        for e in std::mem::take(&mut w.events) {
            self.recorder
                .record(&w.hpa, e.warning, &e.reason, e.message);
        }
        result
    }

    /// [`Self::finish`] when the sync already failed: a failed write is only logged.
    async fn finish_after_failure(
        &self,
        w: &mut Working,
        original: &Option<HorizontalPodAutoscalerStatus>,
    ) {
        if let Err(e) = self.finish(w, original).await {
            tracing::warn!(error = %format!("{e:#}"), "updating the horizontal pod autoscaler status");
        }
    }

    async fn update_status(&self, w: &mut Working) -> anyhow::Result<()> {
        let ns = w.hpa.metadata.namespace.clone().unwrap_or_default();
        let name = w.hpa.metadata.name.clone().unwrap_or_default();
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), &ns);
        match api
            .replace_status(&name, &PostParams::default(), &w.hpa)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let msg = metrics_client::api_message(&e);
                w.event(true, "FailedUpdateStatus", msg.clone());
                Err(anyhow!("failed to update status for {name}: {msg}"))
            }
        }
    }
}
