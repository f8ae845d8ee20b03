//! Table tests of the normalization: each case is a sequence of syncs (seconds since the
//! start, current replicas, what the metrics asked for) and what each one sets.
#![allow(clippy::unwrap_used)]

use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

use super::*;

const MIN: i32 = 1;
const MAX: i32 = 100;
const DOWNSCALE: Duration = Duration::from_secs(300);

/// One sync: (second, current, desired by the metrics) → (replicas, AbleToScale reason,
/// ScalingLimited reason). A rescale is remembered as the controller does.
type Step = ((u64, i32, i32), (i32, &'static str, &'static str));

fn run(behavior: Option<&HorizontalPodAutoscalerBehavior>, steps: &[Step], name: &str) {
    let t0 = Instant::now();
    let mut h = History::default();
    for (i, &((second, current, desired), want)) in steps.iter().enumerate() {
        let now = t0 + Duration::from_secs(second);
        h.record_initial(current, now);
        let n = match behavior {
            None => h.normalize(current, desired, MIN, MAX, DOWNSCALE, now),
            Some(b) => h.normalize_with_behavior(b, current, desired, MIN, MAX, DOWNSCALE, now),
        };
        assert_eq!(
            (n.replicas, n.able_to_scale.reason, n.scaling_limited.reason),
            want,
            "{name}, step {i}"
        );
        assert_eq!(
            n.scaling_limited.status,
            n.scaling_limited.reason != "DesiredWithinRange",
            "{name}, step {i}"
        );
        if n.replicas != current {
            h.store_scale_event(behavior, DOWNSCALE, current, n.replicas, now);
        }
    }
}

fn policy(kind: &str, value: i32, period: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: kind.into(),
        value,
        period_seconds: period,
    }
}

fn rules(
    window: Option<i32>,
    select: Option<&str>,
    policies: Option<Vec<HPAScalingPolicy>>,
) -> Option<HPAScalingRules> {
    Some(HPAScalingRules {
        stabilization_window_seconds: window,
        select_policy: select.map(str::to_string),
        policies,
        tolerance: None,
    })
}

fn behavior(
    up: Option<HPAScalingRules>,
    down: Option<HPAScalingRules>,
) -> HorizontalPodAutoscalerBehavior {
    HorizontalPodAutoscalerBehavior {
        scale_up: up,
        scale_down: down,
    }
}

#[test]
fn without_behavior() {
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "at most double, or 4, at once",
            vec![
                ((0, 2, 10), (4, "ReadyForNewScale", "ScaleUpLimit")),
                ((15, 4, 10), (8, "ReadyForNewScale", "ScaleUpLimit")),
            ],
        ),
        (
            "within range",
            vec![((0, 3, 5), (5, "ReadyForNewScale", "DesiredWithinRange"))],
        ),
        (
            "the scale-down waits out the window's highest recommendation",
            vec![
                ((0, 5, 5), (5, "ReadyForNewScale", "DesiredWithinRange")),
                ((60, 5, 2), (5, "ScaleDownStabilized", "DesiredWithinRange")),
                (
                    (200, 5, 3),
                    (5, "ScaleDownStabilized", "DesiredWithinRange"),
                ),
                // The first 5 is out of the window; 3 (at 200 s) is the highest left.
                (
                    (301, 5, 2),
                    (3, "ScaleDownStabilized", "DesiredWithinRange"),
                ),
                ((501, 3, 2), (2, "ReadyForNewScale", "DesiredWithinRange")),
            ],
        ),
        (
            "below the minimum",
            vec![
                ((0, 1, 0), (1, "ScaleDownStabilized", "DesiredWithinRange")),
                ((301, 1, 0), (1, "ReadyForNewScale", "TooFewReplicas")),
            ],
        ),
    ];
    for (name, steps) in &cases {
        run(None, steps, name);
    }
}

#[test]
fn min_max_clamping_without_behavior() {
    assert_eq!(convert_with_rules(50, 120, 1, 100).0, 100);
    assert_eq!(
        convert_with_rules(50, 120, 1, 100).1.reason,
        "TooManyReplicas"
    );
    assert_eq!(convert_with_rules(10, 30, 1, 100).0, 20);
    assert_eq!(convert_with_rules(10, 30, 1, 100).1.reason, "ScaleUpLimit");
    assert_eq!(
        convert_with_rules(10, 2, 5, 100),
        (
            5,
            limited(
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count"
            )
        )
    );
    assert_eq!(convert_with_rules(10, 7, 5, 100), (7, within_range()));
}

#[test]
fn with_behavior() {
    let defaults = behavior(None, None);
    let up_window = behavior(rules(Some(60), None, None), rules(Some(0), None, None));
    let pods_or_percent = |select: &str| {
        behavior(
            rules(
                None,
                Some(select),
                Some(vec![policy("Pods", 4, 60), policy("Percent", 100, 60)]),
            ),
            rules(
                Some(0),
                Some(select),
                Some(vec![policy("Pods", 3, 60), policy("Percent", 50, 60)]),
            ),
        )
    };
    let disabled = behavior(
        rules(None, Some("Disabled"), None),
        rules(Some(0), Some("Disabled"), None),
    );
    let cases: Vec<(&str, HorizontalPodAutoscalerBehavior, Vec<Step>)> = vec![
        (
            "defaults: 4 pods or double per 15 s up; down after 300 s",
            defaults,
            vec![
                ((0, 3, 20), (7, "ReadyForNewScale", "ScaleUpLimit")),
                // The 4 added in the last 15 s count against this period.
                ((10, 7, 20), (7, "ReadyForNewScale", "ScaleUpLimit")),
                ((16, 7, 20), (14, "ReadyForNewScale", "ScaleUpLimit")),
                // Down only after 300 s of lower recommendations.
                (
                    (31, 14, 2),
                    (14, "ScaleDownStabilized", "DesiredWithinRange"),
                ),
            ],
        ),
        (
            "a scale-up window takes its lowest recommendation",
            up_window,
            vec![
                ((0, 2, 2), (2, "ReadyForNewScale", "DesiredWithinRange")),
                ((10, 2, 6), (2, "ScaleUpStabilized", "DesiredWithinRange")),
                ((40, 2, 8), (2, "ScaleUpStabilized", "DesiredWithinRange")),
                // The first 2 left the window: the lowest since is 6.
                ((65, 2, 8), (6, "ScaleUpStabilized", "DesiredWithinRange")),
                ((110, 6, 8), (8, "ReadyForNewScale", "DesiredWithinRange")),
                // No scale-down window: straight down.
                ((120, 8, 3), (3, "ReadyForNewScale", "DesiredWithinRange")),
            ],
        ),
        (
            "selectPolicy Max: the biggest change",
            pods_or_percent("Max"),
            vec![
                ((0, 10, 50), (20, "ReadyForNewScale", "ScaleUpLimit")),
                ((30, 20, 50), (20, "ReadyForNewScale", "ScaleUpLimit")),
                ((61, 20, 50), (40, "ReadyForNewScale", "ScaleUpLimit")),
                ((200, 40, 1), (20, "ReadyForNewScale", "ScaleDownLimit")),
            ],
        ),
        (
            "selectPolicy Min: the smallest change",
            pods_or_percent("Min"),
            vec![
                ((0, 10, 50), (14, "ReadyForNewScale", "ScaleUpLimit")),
                ((61, 14, 50), (18, "ReadyForNewScale", "ScaleUpLimit")),
                ((200, 18, 1), (15, "ReadyForNewScale", "ScaleDownLimit")),
                ((220, 15, 1), (15, "ReadyForNewScale", "ScaleDownLimit")),
            ],
        ),
        (
            "Disabled: no change that way",
            disabled,
            vec![
                ((0, 5, 9), (5, "ReadyForNewScale", "ScaleUpLimit")),
                ((20, 5, 1), (5, "ReadyForNewScale", "ScaleDownLimit")),
            ],
        ),
        (
            "max and min still bound a policy that would allow more",
            behavior(None, rules(Some(0), None, None)),
            vec![
                ((0, 90, 200), (MAX, "ReadyForNewScale", "TooManyReplicas")),
                ((100, MAX, 0), (MIN, "ReadyForNewScale", "TooFewReplicas")),
            ],
        ),
    ];
    for (name, b, steps) in &cases {
        run(Some(b), steps, name);
    }
}

#[test]
fn limits_count_changes_within_each_policy_period() {
    let t0 = Instant::now();
    let now = t0 + Duration::from_secs(100);
    let r = Rules {
        window: Duration::ZERO,
        select: Select::Max,
        policies: vec![
            Policy {
                kind: PolicyKind::Pods,
                value: 4,
                period: Duration::from_secs(60),
            },
            Policy {
                kind: PolicyKind::Percent,
                value: 10,
                period: Duration::from_secs(10),
            },
        ],
    };
    // +6 at 50 s, -2 at 95 s: the Pods period (60 s) starts from 10 - 6 + 2 = 6, the
    // Percent period (10 s) from 10 + 2 = 12.
    let ups = [ScaleEvent::new(6, t0 + Duration::from_secs(50))];
    let downs = [ScaleEvent::new(2, t0 + Duration::from_secs(95))];
    assert_eq!(scale_up_limit(10, &ups, &downs, &r, now), 14);
    assert_eq!(scale_down_limit(10, &ups, &downs, &r, now), 2);
    let min = Rules {
        select: Select::Min,
        ..r.clone()
    };
    assert_eq!(scale_up_limit(10, &ups, &downs, &min, now), 10);
    assert_eq!(scale_down_limit(10, &ups, &downs, &min, now), 10);
}

#[test]
fn default_rules_as_upstream() {
    let up = scale_up_rules(None);
    assert_eq!(up.window, Duration::ZERO);
    assert_eq!(up.select, Select::Max);
    assert_eq!(up.policies.len(), 2);
    let down = scale_down_rules(rules(None, Some("Min"), None).as_ref(), DOWNSCALE);
    assert_eq!(down.window, DOWNSCALE);
    assert_eq!(down.select, Select::Min);
    assert_eq!(
        down.policies,
        vec![Policy {
            kind: PolicyKind::Percent,
            value: 100,
            period: Duration::from_secs(15)
        }]
    );
}
