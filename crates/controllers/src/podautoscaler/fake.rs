//! Test doubles for the autoscaler's unit tests: canned metrics and pods in given states.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use futures::future::BoxFuture;
use k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference;
use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::metrics_client::{MetricsClient, PodMetric, PodMetricsInfo};

pub const NOW: &str = "2026-03-01T12:00:00Z";

pub fn now() -> Timestamp {
    NOW.parse().unwrap()
}

pub fn ago(secs: i64) -> Timestamp {
    now().checked_sub(SignedDuration::from_secs(secs)).unwrap()
}

/// Canned metrics: every pod's value, or an error.
#[derive(Default)]
pub struct Fake {
    pub pods: Option<PodMetricsInfo>,
    pub object: Option<i64>,
}

impl MetricsClient for Fake {
    fn resource_metric<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<(PodMetricsInfo, Timestamp)>> {
        let r = self
            .pods
            .clone()
            .map(|m| (m, now()))
            .ok_or_else(|| anyhow!("no metrics returned from resource metrics API"));
        Box::pin(async move { r })
    }

    fn raw_metric<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: Option<&'a LabelSelector>,
    ) -> BoxFuture<'a, anyhow::Result<(PodMetricsInfo, Timestamp)>> {
        let r = self
            .pods
            .clone()
            .map(|m| (m, now()))
            .ok_or_else(|| anyhow!("no metrics returned from custom metrics API"));
        Box::pin(async move { r })
    }

    fn object_metric<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a CrossVersionObjectReference,
        _: Option<&'a LabelSelector>,
    ) -> BoxFuture<'a, anyhow::Result<(i64, Timestamp)>> {
        let r = self
            .object
            .map(|v| (v, now()))
            .ok_or_else(|| anyhow!("unable to fetch metrics from custom metrics API: boom"));
        Box::pin(async move { r })
    }
}

/// How a test pod stands.
#[derive(Clone, Copy)]
pub enum State {
    /// Running and Ready since it started 10 minutes ago.
    Ready,
    /// Running, started `start` seconds ago, Ready=`ready` since `since` seconds ago.
    Running {
        start: i64,
        ready: bool,
        since: i64,
    },
    Pending,
    Failed,
    Deleting,
}

pub fn pod(name: &str, state: State, request_milli: Option<i64>) -> Arc<Pod> {
    let (phase, start, ready) = match state {
        State::Ready => ("Running", Some(600), Some((true, 590))),
        State::Running {
            start,
            ready,
            since,
        } => ("Running", Some(start), Some((ready, since))),
        State::Pending => ("Pending", None, None),
        State::Failed | State::Deleting => ("Running", Some(600), Some((true, 590))),
    };
    let phase = if matches!(state, State::Failed) {
        "Failed"
    } else {
        phase
    };
    let requests = request_milli.map(|m| {
        let q = Quantity(format!("{m}m"));
        [("cpu".to_string(), q.clone()), ("memory".to_string(), q)]
            .into_iter()
            .collect::<BTreeMap<_, _>>()
    });
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            deletion_timestamp: matches!(state, State::Deleting).then(|| Time(now())),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                resources: Some(ResourceRequirements {
                    requests,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            start_time: start.map(|s| Time(ago(s))),
            conditions: ready.map(|(r, since)| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: if r { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(ago(since))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

/// Samples taken now over a 30 s window.
pub fn metrics(values: &[(&str, i64)]) -> PodMetricsInfo {
    values
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                PodMetric {
                    timestamp: now(),
                    window: Duration::from_secs(30),
                    value: *v,
                },
            )
        })
        .collect()
}
