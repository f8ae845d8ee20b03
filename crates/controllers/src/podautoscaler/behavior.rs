//! From the metrics' recommendation to the replicas set (upstream's normalization in
//! `horizontal.go`): with no `behavior`, the highest recommendation of the downscale
//! stabilization window, at most double (and at least 4) replicas at once, within min/max;
//! with an autoscaling/v2 `behavior`, each direction's stabilization window (scale-up 0 s,
//! scale-down 300 s by default) and its Pods / Percent policies over their periods, chosen
//! by selectPolicy Max / Min or Disabled.

use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

/// Scale-up without behavior: at most this factor of the current replicas...
const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
/// ...or this many, whichever is more.
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

#[derive(Clone, Copy, Debug)]
struct Recommendation {
    replicas: i32,
    at: Instant,
}

/// A rescale the policies count.
#[derive(Clone, Copy, Debug)]
pub struct ScaleEvent {
    /// Replicas added (or removed), never negative.
    pub change: i32,
    pub at: Instant,
    /// Older than every policy's period: free to be reused.
    outdated: bool,
}

impl ScaleEvent {
    pub fn new(change: i32, at: Instant) -> Self {
        ScaleEvent {
            change,
            at,
            outdated: false,
        }
    }
}

/// What one HPA did and was told recently; kept by the controller between syncs.
#[derive(Debug, Default)]
pub struct History {
    recommendations: Vec<Recommendation>,
    scale_up_events: Vec<ScaleEvent>,
    scale_down_events: Vec<ScaleEvent>,
}

/// A condition's status, reason and message.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub status: bool,
    pub reason: &'static str,
    pub message: &'static str,
}

/// The replicas to set, and why (the AbleToScale and ScalingLimited conditions).
#[derive(Clone, Debug, PartialEq)]
pub struct Normalized {
    pub replicas: i32,
    pub able_to_scale: Verdict,
    pub scaling_limited: Verdict,
}

/// How a policy limits change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period: Duration,
}

/// Which policy wins: the biggest change, the smallest, or no change at all.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

/// One direction's rules, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub window: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

fn seconds(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

fn rules(
    given: Option<&HPAScalingRules>,
    window: Duration,
    default_policies: Vec<Policy>,
) -> Rules {
    let select = match given.and_then(|r| r.select_policy.as_deref()) {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        _ => Select::Max,
    };
    let policies = match given.and_then(|r| r.policies.as_ref()) {
        Some(p) => p
            .iter()
            .map(|p| Policy {
                kind: if p.type_ == "Percent" {
                    PolicyKind::Percent
                } else {
                    PolicyKind::Pods
                },
                value: p.value,
                period: seconds(p.period_seconds),
            })
            .collect(),
        None => default_policies,
    };
    Rules {
        window: given
            .and_then(|r| r.stabilization_window_seconds)
            .map_or(window, seconds),
        select,
        policies,
    }
}

/// Scale-up rules: no stabilization; 4 pods or 100% per 15 s, whichever is more.
pub fn scale_up_rules(given: Option<&HPAScalingRules>) -> Rules {
    let period = Duration::from_secs(15);
    rules(
        given,
        Duration::ZERO,
        vec![
            Policy {
                kind: PolicyKind::Pods,
                value: 4,
                period,
            },
            Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period,
            },
        ],
    )
}

/// Scale-down rules: the controller's downscale stabilization window; 100% per 15 s.
pub fn scale_down_rules(given: Option<&HPAScalingRules>, downscale_window: Duration) -> Rules {
    rules(
        given,
        downscale_window,
        vec![Policy {
            kind: PolicyKind::Percent,
            value: 100,
            period: Duration::from_secs(15),
        }],
    )
}

fn age(at: Instant, now: Instant) -> Duration {
    now.saturating_duration_since(at)
}

/// Replicas changed within the last `period`.
fn changed_within(period: Duration, events: &[ScaleEvent], now: Instant) -> i32 {
    events
        .iter()
        .filter(|e| age(e.at, now) < period)
        .map(|e| e.change)
        .sum()
}

/// The most replicas the scale-up rules allow now.
pub fn scale_up_limit(
    current: i32,
    ups: &[ScaleEvent],
    downs: &[ScaleEvent],
    r: &Rules,
    now: Instant,
) -> i32 {
    let (pick, start): (fn(i32, i32) -> i32, i32) = match r.select {
        Select::Disabled => return current,
        // The smallest change up is the smallest count.
        Select::Min => (std::cmp::min, i32::MAX),
        Select::Max => (std::cmp::max, i32::MIN),
    };
    r.policies.iter().fold(start, |acc, p| {
        let period_start =
            current - changed_within(p.period, ups, now) + changed_within(p.period, downs, now);
        let proposed = match p.kind {
            PolicyKind::Pods => period_start + p.value,
            // Rounded up, or a small target could never grow.
            PolicyKind::Percent => {
                (f64::from(period_start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
            }
        };
        pick(acc, proposed)
    })
}

/// The fewest replicas the scale-down rules allow now.
pub fn scale_down_limit(
    current: i32,
    ups: &[ScaleEvent],
    downs: &[ScaleEvent],
    r: &Rules,
    now: Instant,
) -> i32 {
    let (pick, start): (fn(i32, i32) -> i32, i32) = match r.select {
        Select::Disabled => return current,
        // The smallest change down is the largest count.
        Select::Min => (std::cmp::max, i32::MIN),
        Select::Max => (std::cmp::min, i32::MAX),
    };
    r.policies.iter().fold(start, |acc, p| {
        let period_start =
            current - changed_within(p.period, ups, now) + changed_within(p.period, downs, now);
        let proposed = match p.kind {
            PolicyKind::Pods => period_start - p.value,
            PolicyKind::Percent => {
                (f64::from(period_start) * (1.0 - f64::from(p.value) / 100.0)) as i32
            }
        };
        pick(acc, proposed)
    })
}

/// Without behavior: clamps to min and to max or the scale-up limit.
pub fn convert_with_rules(current: i32, desired: i32, min: i32, max: i32) -> (i32, Verdict) {
    let limit = f64::from(current) * SCALE_UP_LIMIT_FACTOR;
    let scale_up_limit = limit.max(SCALE_UP_LIMIT_MINIMUM) as i32;
    let (maximum, over) = if max > scale_up_limit {
        (
            scale_up_limit,
            limited(
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            ),
        )
    } else {
        (
            max,
            limited(
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            ),
        )
    };
    if desired < min {
        return (
            min,
            limited(
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            ),
        );
    }
    if desired > maximum {
        return (maximum, over);
    }
    (desired, within_range())
}

fn limited(reason: &'static str, message: &'static str) -> Verdict {
    Verdict {
        status: true,
        reason,
        message,
    }
}

fn within_range() -> Verdict {
    Verdict {
        status: false,
        reason: "DesiredWithinRange",
        message: "the desired count is within the acceptable range",
    }
}

fn ready_for_new_scale() -> Verdict {
    Verdict {
        status: true,
        reason: "ReadyForNewScale",
        message: "recommended size matches current size",
    }
}

/// The ScalingLimited verdict: True only when the limit changed the replicas.
fn scaling_limited(replicas: i32, stabilized: i32, mut v: Verdict) -> Verdict {
    v.status = replicas != stabilized;
    v
}

impl History {
    /// The first recommendation is the current scale.
    pub fn record_initial(&mut self, current: i32, now: Instant) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                replicas: current,
                at: now,
            });
        }
    }

    /// Keeps `replicas` as the newest recommendation, in the place of `old` (one out of
    /// every window) when there is one.
    fn record(&mut self, replicas: i32, now: Instant, old: Option<usize>) {
        let rec = Recommendation { replicas, at: now };
        match old {
            Some(i) => self.recommendations[i] = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// Without behavior: the highest recommendation within the window.
    fn stabilize(&mut self, desired: i32, window: Duration, now: Instant) -> i32 {
        let mut highest = desired;
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if age(r.at, now) > window {
                old = Some(i);
            } else if r.replicas > highest {
                highest = r.replicas;
            }
        }
        self.record(desired, now, old);
        highest
    }

    /// Upstream's `normalizeDesiredReplicas` (no behavior).
    pub fn normalize(
        &mut self,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        downscale_window: Duration,
        now: Instant,
    ) -> Normalized {
        let stabilized = self.stabilize(desired, downscale_window, now);
        let able_to_scale = if stabilized != desired {
            Verdict {
                status: true,
                reason: "ScaleDownStabilized",
                message: "recent recommendations were higher than current one, applying the highest recent recommendation",
            }
        } else {
            ready_for_new_scale()
        };
        let (replicas, v) = convert_with_rules(current, stabilized, min, max);
        Normalized {
            replicas,
            able_to_scale,
            scaling_limited: scaling_limited(replicas, stabilized, v),
        }
    }

    /// With behavior: between the lowest recommendation of the scale-up window and the
    /// highest of the scale-down window, as close to the current scale as they allow.
    fn stabilize_with_behaviors(
        &mut self,
        current: i32,
        desired: i32,
        up: &Rules,
        down: &Rules,
        now: Instant,
    ) -> (i32, Verdict) {
        let (mut up_rec, mut down_rec) = (desired, desired);
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            let a = age(r.at, now);
            if a < up.window {
                up_rec = up_rec.min(r.replicas);
            }
            if a < down.window {
                down_rec = down_rec.max(r.replicas);
            }
            if a > up.window && a > down.window {
                old = Some(i);
            }
        }
        let stabilized = current.max(up_rec).min(down_rec);
        self.record(desired, now, old);
        let v = if desired >= current {
            Verdict {
                status: true,
                reason: "ScaleUpStabilized",
                message: "recent recommendations were lower than current one, applying the lowest recent recommendation",
            }
        } else {
            Verdict {
                status: true,
                reason: "ScaleDownStabilized",
                message: "recent recommendations were higher than current one, applying the highest recent recommendation",
            }
        };
        (stabilized, v)
    }

    /// Upstream's `normalizeDesiredReplicasWithBehaviors`.
    #[allow(clippy::too_many_arguments)]
    pub fn normalize_with_behavior(
        &mut self,
        behavior: &HorizontalPodAutoscalerBehavior,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        downscale_window: Duration,
        now: Instant,
    ) -> Normalized {
        let up = scale_up_rules(behavior.scale_up.as_ref());
        let down = scale_down_rules(behavior.scale_down.as_ref(), downscale_window);
        let (stabilized, stabilized_verdict) =
            self.stabilize_with_behaviors(current, desired, &up, &down, now);
        let able_to_scale = if stabilized != desired {
            stabilized_verdict
        } else {
            ready_for_new_scale()
        };
        let (ups, downs) = (&self.scale_up_events, &self.scale_down_events);
        let (replicas, v) = if stabilized > current {
            // Never below the current scale while recent scale-ups are counted.
            let limit = scale_up_limit(current, ups, downs, &up, now).max(current);
            if max > limit {
                (
                    stabilized.min(limit),
                    limited(
                        "ScaleUpLimit",
                        "the desired replica count is increasing faster than the maximum scale rate",
                    ),
                )
            } else {
                (
                    stabilized.min(max),
                    limited(
                        "TooManyReplicas",
                        "the desired replica count is more than the maximum replica count",
                    ),
                )
            }
        } else if stabilized < current {
            let limit = scale_down_limit(current, ups, downs, &down, now).min(current);
            if min < limit {
                (
                    stabilized.max(limit),
                    limited(
                        "ScaleDownLimit",
                        "the desired replica count is decreasing faster than the maximum scale rate",
                    ),
                )
            } else {
                (
                    stabilized.max(min),
                    limited(
                        "TooFewReplicas",
                        "the desired replica count is less than the minimum replica count",
                    ),
                )
            }
        } else {
            (stabilized, within_range())
        };
        // Not limited after all: the desired count was within range.
        let v = if replicas == stabilized {
            within_range()
        } else {
            v
        };
        Normalized {
            replicas,
            able_to_scale,
            scaling_limited: scaling_limited(replicas, stabilized, v),
        }
    }

    /// Remembers a rescale for the policies' periods (only with behavior: nothing else
    /// reads them), reusing the place of an event older than every period.
    pub fn store_scale_event(
        &mut self,
        behavior: Option<&HorizontalPodAutoscalerBehavior>,
        downscale_window: Duration,
        previous: i32,
        new: i32,
        now: Instant,
    ) {
        let Some(behavior) = behavior else { return };
        let (events, rules, change) = if new > previous {
            (
                &mut self.scale_up_events,
                scale_up_rules(behavior.scale_up.as_ref()),
                new - previous,
            )
        } else {
            (
                &mut self.scale_down_events,
                scale_down_rules(behavior.scale_down.as_ref(), downscale_window),
                previous - new,
            )
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or_default();
        let mut reuse = None;
        for (i, e) in events.iter_mut().enumerate() {
            if age(e.at, now) > longest {
                e.outdated = true;
            }
            if e.outdated {
                reuse = Some(i);
            }
        }
        let event = ScaleEvent::new(change, now);
        match reuse {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

#[cfg(test)]
mod tests;
