#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::budget::*;
use super::messages;
use super::stale;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn pod(name: &str, ready: bool) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("ns".into());
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
    let mut p = PodDisruptionBudget::default();
    p.metadata.name = Some("web".into());
    p.metadata.namespace = Some("ns".into());
    p.metadata.generation = Some(1);
    p.spec = Some(PodDisruptionBudgetSpec {
        min_available: min,
        max_unavailable: max,
        selector: Some(LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    p
}

#[test]
fn percentages_round_up() {
    let pct = |s: &str| IntOrString::String(s.into());
    assert_eq!(scaled_value(&pct("50%"), 3).unwrap(), 2);
    assert_eq!(scaled_value(&pct("50%"), 4).unwrap(), 2);
    assert_eq!(scaled_value(&pct("10%"), 1).unwrap(), 1);
    assert_eq!(scaled_value(&pct("0%"), 7).unwrap(), 0);
    assert_eq!(scaled_value(&IntOrString::Int(3), 10).unwrap(), 3);
    assert_eq!(
        scaled_value(&pct("50"), 4).unwrap_err().to_string(),
        "invalid type: string is not a percentage"
    );
    assert!(scaled_value(&pct("x%"), 4).is_err());
}

#[test]
fn expected_and_desired_pods_as_upstream_counts_them() {
    let min = pdb(Some(IntOrString::Int(2)), None);
    assert!(!needs_scale(&min));
    assert_eq!(expected_and_desired(&min, 3, 0).unwrap(), (3, 2));
    let max = pdb(None, Some(IntOrString::String("50%".into())));
    assert!(needs_scale(&max));
    // 50% of 3 is 2 (rounded up): 1 must stay healthy.
    assert_eq!(expected_and_desired(&max, 3, 3).unwrap(), (3, 1));
    let max = pdb(None, Some(IntOrString::Int(5)));
    assert_eq!(expected_and_desired(&max, 3, 3).unwrap(), (3, 0));
    let pct = pdb(Some(IntOrString::String("60%".into())), None);
    assert!(needs_scale(&pct));
    assert_eq!(expected_and_desired(&pct, 2, 4).unwrap(), (4, 3));
    assert_eq!(
        expected_and_desired(&pdb(None, None), 2, 0).unwrap(),
        (0, 0)
    );
}

#[test]
fn healthy_pods_are_ready_and_neither_going_nor_evicted() {
    let now = at("2025-01-01T00:10:00Z");
    let mut going = pod("going", true);
    going.metadata.deletion_timestamp = Some(Time(now));
    let pods = [pod("a", true), pod("b", false), going, pod("evicted", true)];
    let refs: Vec<&Pod> = pods.iter().collect();
    let disrupted: BTreeMap<String, Time> =
        [("evicted".to_string(), Time(at("2025-01-01T00:09:00Z")))].into();
    assert_eq!(count_healthy(&refs, &disrupted, now), 1);
    // An eviction older than the deletion timeout no longer keeps the pod out.
    let old: BTreeMap<String, Time> =
        [("evicted".to_string(), Time(at("2025-01-01T00:07:00Z")))].into();
    assert_eq!(count_healthy(&refs, &old, now), 2);
}

#[test]
fn disrupted_pods_drop_the_deleted_the_gone_and_the_expired() {
    let now = at("2025-01-01T00:10:00Z");
    let mut p = pdb(Some(IntOrString::Int(1)), None);
    p.status = Some(Default::default());
    p.status.as_mut().unwrap().disrupted_pods = Some(
        [
            ("pending", "2025-01-01T00:09:30Z"),
            ("later", "2025-01-01T00:09:50Z"),
            ("expired", "2025-01-01T00:07:00Z"),
            ("gone", "2025-01-01T00:09:00Z"),
            ("going", "2025-01-01T00:09:00Z"),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), Time(at(t))))
        .collect(),
    );
    let mut going = pod("going", true);
    going.metadata.deletion_timestamp = Some(Time(now));
    let pods = [
        pod("pending", true),
        pod("later", true),
        pod("expired", true),
        going,
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let d = build_disrupted_pods(&refs, &p, now);
    assert_eq!(
        d.pending.keys().collect::<Vec<_>>(),
        vec!["later", "pending"]
    );
    assert_eq!(d.expired, vec!["expired".to_string()]);
    assert_eq!(d.recheck, Some(at("2025-01-01T00:11:30Z")));
}

#[test]
fn status_updates_allow_what_is_healthy_beyond_desired() {
    let now = at("2025-01-01T00:00:00Z");
    let p = pdb(Some(IntOrString::Int(2)), None);
    let computed = |healthy| Computed {
        current_healthy: healthy,
        desired_healthy: 2,
        expected_pods: 3,
        disrupted_pods: BTreeMap::new(),
    };
    let new = updated(&p, computed(3), now).unwrap();
    let s = new.status.clone().unwrap();
    assert_eq!(
        (
            s.disruptions_allowed,
            s.current_healthy,
            s.desired_healthy,
            s.expected_pods
        ),
        (1, 3, 2, 3)
    );
    assert_eq!(s.observed_generation, Some(1));
    let c = &s.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_str(),
            c.observed_generation
        ),
        ("DisruptionAllowed", "True", "SufficientPods", Some(1))
    );
    // The same numbers again: no write.
    assert!(updated(&new, computed(3), now).is_none());
    // Fewer healthy pods: nothing allowed, the condition turns over at a new time.
    let later = at("2025-01-01T00:01:00Z");
    let s = updated(&new, computed(2), later).unwrap().status.unwrap();
    assert_eq!(s.disruptions_allowed, 0);
    let c = &s.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "InsufficientPods")
    );
    assert_eq!(c.last_transition_time, Time(later));
    // No pods expected: nothing allowed, however many are healthy.
    let none = Computed {
        expected_pods: 0,
        ..computed(5)
    };
    assert_eq!(
        updated(&p, none, now)
            .unwrap()
            .status
            .unwrap()
            .disruptions_allowed,
        0
    );
}

#[test]
fn the_fail_safe_allows_nothing_and_says_why() {
    let now = at("2025-01-01T00:00:00Z");
    let mut p = pdb(None, Some(IntOrString::Int(1)));
    p.status = Some(Default::default());
    p.status.as_mut().unwrap().disruptions_allowed = 2;
    p.status.as_mut().unwrap().observed_generation = Some(1);
    let s = fail_safe(&p, "found no controllers for pod \"x\"", now)
        .status
        .unwrap();
    assert_eq!(s.disruptions_allowed, 0);
    let c = &s.conditions.unwrap()[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        ("False", "SyncFailed", "found no controllers for pod \"x\"")
    );
}

#[test]
fn event_texts_print_as_go_does() {
    let sel = LabelSelector {
        match_labels: Some([("app".to_string(), "web".to_string())].into()),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec!["a".into(), "b".into()]),
        }]),
    };
    assert_eq!(
        messages::go_selector(Some(&sel)),
        "&LabelSelector{MatchLabels:map[string]string{app: web,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:tier,Operator:In,Values:[a b],},},}"
    );
    assert_eq!(
        messages::multiple_budgets("ns", "p", "a"),
        "Pod \"ns\"/\"p\" matches multiple PodDisruptionBudgets.  Chose \"a\" arbitrarily."
    );
    let bad = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "k".into(),
            operator: "Near".into(),
            values: None,
        }]),
        ..Default::default()
    };
    assert_eq!(
        messages::selector_error(&bad).unwrap(),
        "\"Near\" is not a valid label selector operator"
    );
    assert!(messages::selector_error(&sel).is_none());
}

#[test]
fn disruption_target_conditions_go_stale_after_two_minutes() {
    let now = at("2025-01-01T00:10:00Z");
    let mut p = pod("p", true);
    assert_eq!(stale::stale_after(&p, now), None);
    let target = |reason: &str, since: &str| PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some("Eviction API: evicting".into()),
        last_transition_time: Some(Time(at(since))),
        ..Default::default()
    };
    let conditions = p.status.as_mut().unwrap().conditions.as_mut().unwrap();
    conditions.push(target("EvictionByEvictionAPI", "2025-01-01T00:09:00Z"));
    assert_eq!(
        stale::stale_after(&p, now),
        Some(std::time::Duration::from_secs(60))
    );
    let reset = stale::reset(&p, now);
    let c = &reset.status.unwrap().conditions.unwrap()[1];
    assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", None));
    // The kubelet's own, and pods that are finished, are never stale.
    p.status.as_mut().unwrap().conditions.as_mut().unwrap()[1] =
        target("TerminationByKubelet", "2025-01-01T00:00:00Z");
    assert_eq!(stale::stale_after(&p, now), None);
    p.status.as_mut().unwrap().conditions.as_mut().unwrap()[1] =
        target("EvictionByEvictionAPI", "2025-01-01T00:00:00Z");
    assert_eq!(stale::stale_after(&p, now), Some(std::time::Duration::ZERO));
    p.status.as_mut().unwrap().phase = Some("Failed".into());
    assert_eq!(stale::stale_after(&p, now), None);
}
