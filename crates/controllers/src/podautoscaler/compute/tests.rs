//! One HPA's metrics together: which proposal wins, what a failing metric sets and says.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::json;

use super::*;
use crate::podautoscaler::fake::{Fake, State, metrics, now, pod};
use crate::podautoscaler::status::HpaEvent;

const CPU_50: &str = r#"{"type": "Resource", "resource": {"name": "cpu",
    "target": {"type": "Utilization", "averageUtilization": 50}}}"#;
const HITS: &str = r#"{"type": "Object", "object": {"metric": {"name": "hits"},
    "describedObject": {"apiVersion": "v1", "kind": "Service", "name": "web"},
    "target": {"type": "Value", "value": "10"}}}"#;
const RPS: &str = r#"{"type": "Pods", "pods": {"metric": {"name": "rps"},
    "target": {"type": "AverageValue", "averageValue": "10"}}}"#;

fn working(metric_specs: &[&str]) -> Working {
    let specs: Vec<serde_json::Value> = metric_specs
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 10, "metrics": specs},
    }))
    .unwrap();
    Working::new(hpa, now())
}

fn calc(fake: Fake) -> ReplicaCalculator {
    ReplicaCalculator {
        metrics: Arc::new(fake),
        tolerance: 0.1,
        cpu_initialization_period: Duration::from_secs(300),
        delay_of_initial_readiness_status: Duration::from_secs(30),
    }
}

fn scaling_active(w: &Working) -> (String, String, String) {
    let c = w
        .status()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == SCALING_ACTIVE)
        .unwrap();
    (c.status, c.reason.unwrap(), c.message.unwrap())
}

async fn compute(w: &mut Working, fake: Fake, current: i32) -> Proposal {
    let pods: Vec<_> = (0..current)
        .map(|i| pod(&format!("p{i}"), State::Ready, Some(1000)))
        .collect();
    let selected = Selected {
        namespace: "default",
        selector: "app=web",
        pods: &pods,
    };
    replicas_for_metrics(w, &calc(fake), current, current, &selected, now()).await
}

#[tokio::test]
async fn a_metric_that_fails_alone_stops_scaling() {
    let mut w = working(&[CPU_50]);
    let p = compute(&mut w, Fake::default(), 2).await;
    assert_eq!(p.replicas, None);
    let cause = "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API";
    assert_eq!(
        format!("{:#}", p.error.unwrap()),
        format!(
            "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {cause}"
        )
    );
    assert_eq!(
        scaling_active(&w),
        (
            "False".into(),
            "FailedGetResourceMetric".into(),
            format!("the HPA was unable to compute the replica count: {cause}")
        )
    );
    assert_eq!(
        w.events,
        vec![HpaEvent {
            warning: true,
            reason: "FailedGetResourceMetric".into(),
            message: cause.into(),
        }]
    );
    // The failed metric's place in the status is empty, as upstream leaves it.
    assert_eq!(p.statuses.unwrap(), vec![MetricStatus::default()]);
}

#[tokio::test]
async fn the_highest_working_proposal_wins() {
    // CPU at 100% of 50% wants 4; hits fails; scaling goes on with a reported error.
    let mut w = working(&[CPU_50, HITS]);
    let fake = Fake {
        pods: Some(metrics(&[("p0", 1000), ("p1", 1000)])),
        object: None,
    };
    let p = compute(&mut w, fake, 2).await;
    assert_eq!(p.replicas, Some(4));
    assert_eq!(p.metric, "cpu resource utilization (percentage of request)");
    assert!(p.error.unwrap().to_string().starts_with(
        "invalid metrics (1 invalid out of 2), first error is: failed to get object metric value: unable to get metric hits: Service default/web:"
    ));
    assert_eq!(scaling_active(&w).1, "ValidMetricFound");
    let statuses = p.statuses.unwrap();
    let cpu = statuses[0].resource.as_ref().unwrap();
    assert_eq!(cpu.current.average_utilization, Some(100));
    assert_eq!(cpu.current.average_value, Some(Quantity("1".into())));
    assert_eq!(statuses[1], MetricStatus::default());
    assert_eq!(w.events[0].reason, "FailedGetObjectMetric");
}

#[tokio::test]
async fn a_failure_blocks_a_scale_down() {
    // CPU at 10% of 50% would go down to 1, but hits failed: nothing changes.
    let mut w = working(&[CPU_50, HITS]);
    let fake = Fake {
        pods: Some(metrics(&[("p0", 100), ("p1", 100)])),
        object: None,
    };
    let p = compute(&mut w, fake, 2).await;
    assert_eq!(p.replicas, None);
    assert_eq!(scaling_active(&w).1, "FailedGetObjectMetric");
}

#[tokio::test]
async fn object_and_pods_metrics_report_their_values() {
    let mut w = working(&[HITS, RPS]);
    let fake = Fake {
        pods: Some(metrics(&[("p0", 20000), ("p1", 20000)])),
        object: Some(35000),
    };
    let p = compute(&mut w, fake, 2).await;
    // hits: 35 against 10 with 2 ready pods wants 7; rps: 20 against 10 wants 4.
    assert_eq!(p.replicas, Some(7));
    assert_eq!(p.metric, "Service metric hits");
    let statuses = p.statuses.unwrap();
    let hits = statuses[0].object.as_ref().unwrap();
    assert_eq!(hits.current.value, Some(Quantity("35".into())));
    assert_eq!(hits.described_object.name, "web");
    let rps = statuses[1].pods.as_ref().unwrap();
    assert_eq!(rps.current.average_value, Some(Quantity("20".into())));
    assert_eq!(rps.metric.name, "rps");
    assert!(p.error.is_none());
    assert!(w.events.is_empty());
}

#[test]
fn milli_quantities_print_canonically() {
    assert_eq!(milli_quantity(250).0, "250m");
    assert_eq!(milli_quantity(2000).0, "2");
    assert_eq!(milli_quantity(1_500).0, "1500m");
    assert_eq!(milli_quantity(104_857_600_000).0, "104857600");
}
