//! An HPA being reconciled: its status (current and desired replicas, current metrics, last
//! scale time) and conditions (AbleToScale, ScalingActive, ScalingLimited) as upstream sets
//! them, and the events to record about it.

use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const ABLE_TO_SCALE: &str = "AbleToScale";
pub const SCALING_ACTIVE: &str = "ScalingActive";
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// An event to record about the HPA.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// A condition to set (kept aside while metrics are computed: only the first failure's is
/// set).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// The HPA as this sync leaves it, and what to tell about it.
pub struct Working {
    pub hpa: HorizontalPodAutoscaler,
    pub events: Vec<HpaEvent>,
    /// When conditions that change now say they changed (whole seconds, as the API keeps
    /// them, so an unchanged status compares equal).
    now: Timestamp,
}

impl Working {
    pub fn new(hpa: HorizontalPodAutoscaler, now: Timestamp) -> Self {
        Working {
            hpa,
            events: Vec::new(),
            now: Timestamp::from_second(now.as_second()).unwrap_or(now),
        }
    }

    pub fn status(&self) -> HorizontalPodAutoscalerStatus {
        self.hpa.status.clone().unwrap_or_default()
    }

    pub fn event(&mut self, warning: bool, reason: &str, message: String) {
        self.events.push(HpaEvent {
            warning,
            reason: reason.to_string(),
            message,
        });
    }

    /// Sets a condition; its transition time moves only when its status changes.
    pub fn set_condition(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        let status = if status { "True" } else { "False" };
        let now = self.now;
        let conditions = self
            .hpa
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new);
        let i = match conditions.iter().position(|c| c.type_ == type_) {
            Some(i) => i,
            None => {
                conditions.push(HorizontalPodAutoscalerCondition {
                    type_: type_.to_string(),
                    ..Default::default()
                });
                conditions.len() - 1
            }
        };
        let c = &mut conditions[i];
        if c.status != status {
            c.last_transition_time = Some(Time(now));
        }
        c.status = status.to_string();
        c.reason = Some(reason.to_string());
        c.message = Some(message);
    }

    pub fn apply(&mut self, c: &Condition) {
        self.set_condition(c.type_, c.status, &c.reason, c.message.clone());
    }

    /// A metric could not be computed: a warning event, and the ScalingActive=False
    /// condition to set if no metric works.
    pub fn unable_to_compute(&mut self, reason: &str, err: &anyhow::Error) -> Condition {
        self.event(true, reason, format!("{err:#}"));
        Condition {
            type_: SCALING_ACTIVE,
            status: false,
            reason: reason.to_string(),
            message: format!("the HPA was unable to compute the replica count: {err:#}"),
        }
    }

    /// Rewrites the status (upstream's `setStatus`): the replicas and metrics given, the
    /// conditions set so far, the last scale time moved on a rescale.
    pub fn set_status(
        &mut self,
        current: i32,
        desired: i32,
        metrics: Option<Vec<MetricStatus>>,
        rescale: bool,
    ) {
        let old = self.status();
        let last_scale_time = if rescale {
            Some(Time(self.now))
        } else {
            old.last_scale_time
        };
        self.hpa.status = Some(HorizontalPodAutoscalerStatus {
            current_replicas: Some(current),
            desired_replicas: desired,
            last_scale_time,
            current_metrics: metrics,
            conditions: old.conditions,
            observed_generation: None,
        });
    }

    /// The current replicas and metrics, the desired replicas left as they were (after a
    /// failure).
    pub fn set_current(&mut self, current: i32, metrics: Option<Vec<MetricStatus>>) {
        let desired = self.status().desired_replicas;
        self.set_status(current, desired, metrics, false);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn conditions_move_their_transition_time_only_on_a_change() {
        let t0: Timestamp = "2026-01-01T00:00:00.5Z".parse().unwrap();
        let mut w = Working::new(HorizontalPodAutoscaler::default(), t0);
        w.set_condition(ABLE_TO_SCALE, true, "SucceededGetScale", "got it".into());
        let first = w.status().conditions.unwrap()[0].clone();
        assert_eq!(
            first.last_transition_time,
            Some(Time("2026-01-01T00:00:00Z".parse().unwrap()))
        );
        let mut w = Working::new(w.hpa, "2026-01-01T00:01:00Z".parse().unwrap());
        w.set_condition(ABLE_TO_SCALE, true, "SucceededRescale", "again".into());
        let same = w.status().conditions.unwrap()[0].clone();
        assert_eq!(same.last_transition_time, first.last_transition_time);
        assert_eq!(same.reason.as_deref(), Some("SucceededRescale"));
        w.set_condition(ABLE_TO_SCALE, false, "FailedGetScale", "no".into());
        w.set_condition(SCALING_ACTIVE, false, "ScalingDisabled", "off".into());
        let cs = w.status().conditions.unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(
            cs[0].last_transition_time,
            Some(Time("2026-01-01T00:01:00Z".parse().unwrap()))
        );
        w.set_status(3, 5, None, true);
        let st = w.status();
        assert_eq!((st.current_replicas, st.desired_replicas), (Some(3), 5));
        assert!(st.last_scale_time.is_some());
        assert_eq!(st.conditions.unwrap().len(), 2);
    }
}
