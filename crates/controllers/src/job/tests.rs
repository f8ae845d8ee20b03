//! Unit tests of the Job controller's rules.

#![allow(clippy::unwrap_used)]
use super::*;
use k8s_openapi::api::batch::v1::{JobSpec, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodSpec, PodStatus,
    PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn pod(name: &str, phase: &str, index: Option<usize>) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            annotations: index.map(|i| [(COMPLETION_INDEX.to_string(), i.to_string())].into()),
            finalizers: Some(vec![TRACKING_FINALIZER.into()]),
            creation_timestamp: Some(Time(ts("2024-01-01T00:00:00Z"))),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    })
}

fn job(indexed: bool, completions: Option<i32>) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("default".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions,
            completion_mode: Some(if indexed { "Indexed" } else { "NonIndexed" }.into()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("job-name".to_string(), "pi".to_string())].into()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Default::default()],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn intervals_round_trip_in_upstream_text_form() {
    let i = Intervals::default().with(&[0, 1, 2, 4, 6, 7]);
    assert_eq!(i.to_string(), "0-2,4,6,7");
    assert_eq!(i.total(), 6);
    assert!(i.has(7) && !i.has(5));
    assert_eq!(Intervals::parse("0-2,4,6,7", 10), i);
    // Limited to completions; corrupt parts ignored.
    assert_eq!(Intervals::parse("0-2,x,4-9", 6).to_string(), "0-2,4,5");
    assert_eq!(Intervals::parse("3-4", 3).to_string(), "");
    assert_eq!(Intervals::parse("1", 10).with(&[0, 2]).to_string(), "0-2");
}

#[test]
fn pending_indexes_skip_busy_and_succeeded_ones() {
    let busy = Intervals::default().with(&[0, 1, 3]);
    assert_eq!(first_pending_indexes(&busy, 2, 6), vec![2, 4]);
    assert_eq!(first_pending_indexes(&busy, 10, 6), vec![2, 4, 5]);
    assert_eq!(
        first_pending_indexes(&Intervals::default(), 3, 2),
        vec![0, 1]
    );
}

#[test]
fn backoff_doubles_from_ten_seconds_and_resets_on_success() {
    let now = ts("2024-01-01T00:00:00Z");
    let failed_at = |t: &str| {
        let mut p = (*pod("f", "Failed", None)).clone();
        p.metadata.creation_timestamp = Some(Time(ts(t)));
        Arc::new(p)
    };
    let b = Backoff::default().after(&[], &[failed_at("2024-01-01T00:00:00Z")]);
    assert_eq!(b.failures, 1);
    assert_eq!(b.remaining(now), Duration::from_secs(10));
    let b = b.after(&[], &[failed_at("2024-01-01T00:00:00Z")]);
    assert_eq!(b.remaining(now), Duration::from_secs(20));
    let mut many = b;
    many.failures = 12;
    assert_eq!(many.remaining(now), MAX_POD_FAILURE_BACKOFF);
    assert_eq!(
        b.remaining(ts("2024-01-01T00:00:15Z")),
        Duration::from_secs(5)
    );
    // A success after the failures resets the count to the failures after it.
    let mut ok = (*pod("s", "Succeeded", None)).clone();
    ok.metadata.creation_timestamp = Some(Time(ts("2024-01-01T00:00:05Z")));
    let b = b.after(&[Arc::new(ok)], &[failed_at("2024-01-01T00:00:09Z")]);
    assert_eq!(b.failures, 1);
    assert_eq!(b.last_failure, Some(ts("2024-01-01T00:00:09Z")));
}

#[test]
fn finish_time_prefers_containers_then_ready_false() {
    let mut p = (*pod("p", "Failed", None)).clone();
    assert_eq!(finished_time(&p), ts("2024-01-01T00:00:00Z"));
    p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
        type_: "Ready".into(),
        status: "False".into(),
        last_transition_time: Some(Time(ts("2024-01-01T00:01:00Z"))),
        ..Default::default()
    }]);
    assert_eq!(finished_time(&p), ts("2024-01-01T00:01:00Z"));
    p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                finished_at: Some(Time(ts("2024-01-01T00:02:00Z"))),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    assert_eq!(finished_time(&p), ts("2024-01-01T00:02:00Z"));
}

#[test]
fn deleted_pods_count_as_failed_unless_only_failed_ones_are_replaced() {
    let mut j = job(false, Some(1));
    let mut p = (*pod("p", "Running", None)).clone();
    p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    assert!(pod_failed(&p, only_replace_failed(&j)));
    j.spec.as_mut().unwrap().pod_replacement_policy = Some("Failed".into());
    assert!(!pod_failed(&p, only_replace_failed(&j)));
    assert!(is_terminating(&p));
}

#[test]
fn indexed_pods_carry_their_index() {
    let j = job(true, Some(3));
    let owner = pods::controller_ref("batch/v1", "Job", &j.metadata);
    let p = pod_for(&j, owner.clone(), Some(2));
    assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-2-"));
    assert_eq!(completion_index(&p), Some(2));
    assert_eq!(
        p.metadata
            .labels
            .as_ref()
            .unwrap()
            .get(COMPLETION_INDEX)
            .map(String::as_str),
        Some("2")
    );
    let ps = p.spec.as_ref().unwrap();
    assert_eq!(ps.hostname.as_deref(), Some("pi-2"));
    let env = ps.containers[0].env.as_ref().unwrap();
    assert_eq!(env[0].name, "JOB_COMPLETION_INDEX");
    assert!(
        p.metadata
            .finalizers
            .unwrap()
            .contains(&TRACKING_FINALIZER.to_string())
    );
    let plain = pod_for(&job(false, Some(1)), owner, None);
    assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
    assert!(plain.spec.unwrap().hostname.is_none());
    // Long names are cut so the index survives.
    let mut long = job(true, Some(3));
    long.metadata.name = Some("x".repeat(70));
    let owner = pods::controller_ref("batch/v1", "Job", &long.metadata);
    let p = pod_for(&long, owner, Some(12));
    let g = p.metadata.generate_name.unwrap();
    assert!(g.len() <= MAX_GENERATE_NAME && g.ends_with("-12-"), "{g}");
}

#[test]
fn repeated_and_invalid_indexes_go_first() {
    let j = job(true, Some(3));
    let pods = vec![
        pod("a", "Running", Some(0)),
        pod("b", "Running", Some(0)),
        pod("c", "Running", None),
        pod("d", "Running", Some(7)),
        pod("e", "Running", Some(1)),
    ];
    let mut rm: Vec<String> = active_pods_for_removal(&j, &pods, 0)
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    rm.sort();
    assert_eq!(rm.len(), 3, "{rm:?}");
    assert!(rm.contains(&"c".to_string()) && rm.contains(&"d".to_string()));
    assert_eq!(active_pods_for_removal(&j, &pods, 4).len(), 4);
    let plain = job(false, Some(3));
    assert_eq!(active_pods_for_removal(&plain, &pods, 2).len(), 2);
}

#[test]
fn uncounted_uids_move_to_counters_once_released() {
    let mut status = JobStatus {
        succeeded: Some(1),
        uncounted_terminated_pods: Some(UncountedTerminatedPods {
            succeeded: Some(vec!["a".into(), "b".into()]),
            failed: Some(vec!["c".into()]),
        }),
        ..Default::default()
    };
    let held: HashSet<String> = ["b".to_string()].into();
    assert!(clean_uncounted(&mut status, &held));
    assert_eq!(status.succeeded, Some(2));
    assert_eq!(status.failed, Some(1));
    let u = status.uncounted_terminated_pods.as_ref().unwrap();
    assert_eq!(u.succeeded.as_deref(), Some(&["b".to_string()][..]));
    assert!(u.failed.is_none());
    assert!(!clean_uncounted(&mut status, &held));
}

#[test]
fn conditions_are_added_true_and_updated_false() {
    let now = Timestamp::now();
    let mut list = Vec::new();
    assert!(!ensure_condition(
        &mut list,
        SUSPENDED,
        "False",
        "JobResumed",
        "Job resumed",
        now
    ));
    assert!(list.is_empty());
    assert!(ensure_condition(
        &mut list,
        SUSPENDED,
        "True",
        "JobSuspended",
        "Job suspended",
        now
    ));
    assert!(!ensure_condition(
        &mut list,
        SUSPENDED,
        "True",
        "JobSuspended",
        "Job suspended",
        now
    ));
    assert!(ensure_condition(
        &mut list,
        SUSPENDED,
        "False",
        "JobResumed",
        "Job resumed",
        now
    ));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].reason.as_deref(), Some("JobResumed"));
}

#[test]
fn on_failure_restarts_count_toward_the_backoff_limit() {
    let mut j = job(false, Some(1));
    let s = j.spec.as_mut().unwrap();
    s.backoff_limit = Some(2);
    s.template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
    let mut p = (*pod("p", "Running", None)).clone();
    p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
        restart_count: 2,
        ..Default::default()
    }]);
    assert!(past_backoff_limit_on_failure(&j, &[Arc::new(p.clone())]));
    p.status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()[0]
        .restart_count = 1;
    assert!(!past_backoff_limit_on_failure(&j, &[Arc::new(p)]));
}
