//! The replicas an HPA's metrics ask for (upstream's `computeReplicasForMetrics`): each
//! metric's proposal and status, the highest proposal winning; a metric that fails sets
//! ScalingActive=False with its reason (FailedGetResourceMetric …) unless another works —
//! and does even then when the working ones would scale down.

use anyhow::anyhow;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, MetricIdentifier, MetricSpec, MetricStatus, MetricTarget,
    MetricValueStatus, ObjectMetricSource, ObjectMetricStatus, PodsMetricStatus,
    ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;

use super::metrics_client::milli_value;
use super::replica_calculator::{ReplicaCalculator, Selected};
use super::status::{Condition, SCALING_ACTIVE, Working};
use common::selectors as selector;

/// A milli-value as a quantity (`resource.NewMilliQuantity(v, DecimalSI)`).
pub fn milli_quantity(v: i64) -> Quantity {
    Quantity(
        common::quota::Quantity {
            milli: i128::from(v),
            format: common::quota::Format::DecimalSI,
        }
        .to_string(),
    )
}

/// What the metrics ask for.
pub struct Proposal {
    /// `None` when no metric could be used (nothing to scale on).
    pub replicas: Option<i32>,
    /// The metric that asked for the most, as the rescale reason names it.
    pub metric: String,
    pub statuses: Option<Vec<MetricStatus>>,
    /// The first metric's failure, when one failed.
    pub error: Option<anyhow::Error>,
}

/// One metric's proposal.
struct One {
    replicas: i32,
    metric: String,
    status: MetricStatus,
}

type Failure = (anyhow::Error, Condition);

/// Every metric of the HPA.
pub async fn replicas_for_metrics(
    w: &mut Working,
    calc: &ReplicaCalculator,
    spec_replicas: i32,
    status_replicas: i32,
    selected: &Selected<'_>,
    now: Timestamp,
) -> Proposal {
    let specs = w
        .hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.clone())
        .unwrap_or_default();
    let mut statuses = vec![MetricStatus::default(); specs.len()];
    let (mut replicas, mut metric) = (0, String::new());
    let mut invalid = 0;
    let mut first: Option<Failure> = None;
    for (i, spec) in specs.iter().enumerate() {
        match replicas_for_metric(w, calc, spec, spec_replicas, status_replicas, selected, now)
            .await
        {
            Ok(one) => {
                statuses[i] = one.status;
                if replicas == 0 || one.replicas > replicas {
                    replicas = one.replicas;
                    metric = one.metric;
                }
            }
            Err(failure) => {
                invalid += 1;
                first.get_or_insert(failure);
            }
        }
    }
    let (error, condition) = match first {
        Some((e, c)) => (
            Some(anyhow!(
                "invalid metrics ({invalid} invalid out of {}), first error is: {e:#}",
                specs.len()
            )),
            Some(c),
        ),
        None => (None, None),
    };
    if specs.is_empty() {
        // The API server always gives an HPA a metric; nothing to compute from otherwise.
        return Proposal {
            replicas: None,
            metric,
            statuses: Some(statuses),
            error: Some(anyhow!("no metrics to compute the replica count from")),
        };
    }
    if invalid >= specs.len() || (invalid > 0 && replicas < spec_replicas) {
        if let Some(c) = &condition {
            w.apply(c);
        }
        return Proposal {
            replicas: None,
            metric: String::new(),
            statuses: Some(statuses),
            error,
        };
    }
    w.set_condition(
        SCALING_ACTIVE,
        true,
        "ValidMetricFound",
        format!("the HPA was able to successfully calculate a replica count from {metric}"),
    );
    Proposal {
        replicas: Some(replicas),
        metric,
        statuses: Some(statuses),
        error,
    }
}

async fn replicas_for_metric(
    w: &mut Working,
    calc: &ReplicaCalculator,
    spec: &MetricSpec,
    spec_replicas: i32,
    status_replicas: i32,
    selected: &Selected<'_>,
    now: Timestamp,
) -> Result<One, Failure> {
    let wrap = |(e, c): Failure, what: String| (anyhow!("{what}: {e:#}"), c);
    match spec.type_.as_str() {
        "Object" => object(
            w,
            calc,
            spec.object.as_ref(),
            spec_replicas,
            status_replicas,
            selected,
        )
        .await
        .map_err(|f| wrap(f, "failed to get object metric value".into())),
        "Pods" => pods(w, calc, spec, spec_replicas, selected, now)
            .await
            .map_err(|f| wrap(f, "failed to get pods metric value".into())),
        "Resource" => {
            let Some(r) = spec.resource.as_ref() else {
                return Err(invalid_source(w, "FailedGetResourceMetric", "resource"));
            };
            let one = resource(calc, &r.target, &r.name, None, spec_replicas, selected, now)
                .await
                .map_err(|e| {
                    let c = w.unable_to_compute("FailedGetResourceMetric", &e);
                    wrap(
                        (e, c),
                        format!("failed to get {} resource metric value", r.name),
                    )
                })?;
            Ok(One {
                replicas: one.0,
                metric: one.1,
                status: MetricStatus {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricStatus {
                        name: r.name.clone(),
                        current: one.2,
                    }),
                    ..Default::default()
                },
            })
        }
        "ContainerResource" => {
            let Some(r) = spec.container_resource.as_ref() else {
                return Err(invalid_source(
                    w,
                    "FailedGetContainerResourceMetric",
                    "container resource",
                ));
            };
            let one = resource(
                calc,
                &r.target,
                &r.name,
                Some(&r.container),
                spec_replicas,
                selected,
                now,
            )
            .await
            .map_err(|e| {
                let c = w.unable_to_compute("FailedGetContainerResourceMetric", &e);
                wrap(
                    (e, c),
                    format!("failed to get {} container metric value", r.container),
                )
            })?;
            Ok(One {
                replicas: one.0,
                metric: one.1,
                status: MetricStatus {
                    type_: "ContainerResource".into(),
                    container_resource: Some(ContainerResourceMetricStatus {
                        name: r.name.clone(),
                        container: r.container.clone(),
                        current: one.2,
                    }),
                    ..Default::default()
                },
            })
        }
        "External" => {
            let name = spec
                .external
                .as_ref()
                .map(|e| e.metric.name.clone())
                .unwrap_or_default();
            let e = anyhow!(
                "unable to get external metric {}/{name}: unable to fetch metrics from external metrics API: rkube serves no external metrics API",
                selected.namespace
            );
            let c = w.unable_to_compute("FailedGetExternalMetric", &e);
            Err(wrap(
                (e, c),
                format!("failed to get {name} external metric value"),
            ))
        }
        other => {
            let e = anyhow!("unknown metric source type \"{other}\"");
            let c = w.unable_to_compute("InvalidMetricSourceType", &e);
            Err((e, c))
        }
    }
}

/// A metric of a type whose source is missing (the API server's validation prevents it).
fn invalid_source(w: &mut Working, reason: &str, what: &str) -> Failure {
    let e = anyhow!("invalid {what} metric source: the source is not set");
    let c = w.unable_to_compute(reason, &e);
    (e, c)
}

/// A Resource or ContainerResource metric: (replicas, metric name, current value).
async fn resource(
    calc: &ReplicaCalculator,
    target: &MetricTarget,
    name: &str,
    container: Option<&str>,
    current_replicas: i32,
    selected: &Selected<'_>,
    now: Timestamp,
) -> anyhow::Result<(i32, String, MetricValueStatus)> {
    if let Some(avg) = &target.average_value {
        let (replicas, usage, _) = calc
            .raw_resource_replicas(
                current_replicas,
                milli_value(avg),
                name,
                container,
                selected,
                now,
            )
            .await
            .map_err(|e| anyhow!("failed to get {name} usage: {e:#}"))?;
        return Ok((
            replicas,
            format!("{name} resource"),
            MetricValueStatus {
                average_value: Some(milli_quantity(usage)),
                ..Default::default()
            },
        ));
    }
    let Some(utilization) = target.average_utilization else {
        return Err(anyhow!(
            "invalid resource metric source: neither an average utilization target nor an average value (usage) target was set"
        ));
    };
    let u = calc
        .resource_replicas(
            current_replicas,
            utilization,
            name,
            container,
            selected,
            now,
        )
        .await
        .map_err(|e| anyhow!("failed to get {name} utilization: {e:#}"))?;
    let metric = if container.is_some() {
        format!("{name} container resource utilization (percentage of request)")
    } else {
        format!("{name} resource utilization (percentage of request)")
    };
    Ok((
        u.replicas,
        metric,
        MetricValueStatus {
            average_utilization: Some(u.utilization),
            average_value: Some(milli_quantity(u.raw)),
            value: None,
        },
    ))
}

/// A Pods metric: the pods' average against the target average value.
async fn pods(
    w: &mut Working,
    calc: &ReplicaCalculator,
    spec: &MetricSpec,
    current_replicas: i32,
    selected: &Selected<'_>,
    now: Timestamp,
) -> Result<One, Failure> {
    let Some(p) = spec.pods.as_ref() else {
        return Err(invalid_source(w, "FailedGetPodsMetric", "pods"));
    };
    let target = p.target.average_value.as_ref().map_or(0, milli_value);
    let (replicas, usage, _) = match calc
        .metric_replicas(
            current_replicas,
            target,
            &p.metric.name,
            p.metric.selector.as_ref(),
            selected,
            now,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let c = w.unable_to_compute("FailedGetPodsMetric", &e);
            return Err((e, c));
        }
    };
    Ok(One {
        replicas,
        metric: format!("pods metric {}", p.metric.name),
        status: MetricStatus {
            type_: "Pods".into(),
            pods: Some(PodsMetricStatus {
                metric: identifier(&p.metric),
                current: MetricValueStatus {
                    average_value: Some(milli_quantity(usage)),
                    ..Default::default()
                },
            }),
            ..Default::default()
        },
    })
}

fn identifier(m: &MetricIdentifier) -> MetricIdentifier {
    MetricIdentifier {
        name: m.name.clone(),
        selector: m.selector.clone(),
    }
}

/// An Object metric: its value against a value target (times the ready pods), or against
/// an average value target per replica.
async fn object(
    w: &mut Working,
    calc: &ReplicaCalculator,
    source: Option<&ObjectMetricSource>,
    spec_replicas: i32,
    status_replicas: i32,
    selected: &Selected<'_>,
) -> Result<One, Failure> {
    let fail = |w: &mut Working, e: anyhow::Error| {
        let c = w.unable_to_compute("FailedGetObjectMetric", &e);
        (e, c)
    };
    let Some(o) = source else {
        return Err(fail(w, neither_target()));
    };
    let metric_selector = o.metric.selector.as_ref();
    match (
        o.target.type_.as_str(),
        &o.target.value,
        &o.target.average_value,
    ) {
        ("Value", Some(value), _) => {
            let (replicas, usage, _) = calc
                .object_metric_replicas(
                    spec_replicas,
                    milli_value(value),
                    &o.metric.name,
                    &o.described_object,
                    metric_selector,
                    selected,
                )
                .await
                .map_err(|e| fail(w, e))?;
            Ok(One {
                replicas,
                metric: format!("{} metric {}", o.described_object.kind, o.metric.name),
                status: object_status(
                    o,
                    MetricValueStatus {
                        value: Some(milli_quantity(usage)),
                        ..Default::default()
                    },
                ),
            })
        }
        ("AverageValue", _, Some(avg)) => {
            let (replicas, usage, _) = calc
                .object_per_pod_metric_replicas(
                    status_replicas,
                    milli_value(avg),
                    &o.metric.name,
                    &o.described_object,
                    metric_selector,
                    selected.namespace,
                )
                .await
                .map_err(|e| {
                    let (e, c) = fail(w, e);
                    (
                        anyhow!("failed to get {} object metric: {e:#}", o.metric.name),
                        c,
                    )
                })?;
            // Upstream names this proposal "external metric" too.
            let shown = metric_selector.map_or("<nil>".to_string(), selector::to_query);
            Ok(One {
                replicas,
                metric: format!("external metric {}({shown})", o.metric.name),
                status: object_status(
                    o,
                    MetricValueStatus {
                        average_value: Some(milli_quantity(usage)),
                        ..Default::default()
                    },
                ),
            })
        }
        _ => Err(fail(w, neither_target())),
    }
}

fn neither_target() -> anyhow::Error {
    anyhow!(
        "invalid object metric source: neither a value target nor an average value target was set"
    )
}

fn object_status(o: &ObjectMetricSource, current: MetricValueStatus) -> MetricStatus {
    MetricStatus {
        type_: "Object".into(),
        object: Some(ObjectMetricStatus {
            described_object: o.described_object.clone(),
            metric: identifier(&o.metric),
            current,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
