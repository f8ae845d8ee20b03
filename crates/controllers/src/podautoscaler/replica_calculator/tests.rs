//! Table tests of the replica calculation, after upstream's `replica_calculator_test.go`:
//! metrics come from a fake `MetricsClient`, pods are built per case.
#![allow(clippy::unwrap_used)]

use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::*;
use crate::podautoscaler::fake::{Fake, State, metrics, now, pod};

fn calc(fake: Fake) -> ReplicaCalculator {
    ReplicaCalculator {
        metrics: Arc::new(fake),
        tolerance: 0.1,
        cpu_initialization_period: Duration::from_secs(300),
        delay_of_initial_readiness_status: Duration::from_secs(30),
    }
}

fn selected(pods: &[Arc<Pod>]) -> Selected<'_> {
    Selected {
        namespace: "default",
        selector: "app=web",
        pods,
    }
}

struct Case {
    name: &'static str,
    current: i32,
    pods: Vec<Arc<Pod>>,
    metrics: Option<PodMetricsInfo>,
    target: i32,
    /// Expected (replicas, utilization), or the error's text.
    want: Result<(i32, i32), &'static str>,
}

fn ready_pods(n: usize) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| pod(&format!("p{i}"), State::Ready, Some(1000)))
        .collect()
}

#[tokio::test]
async fn cpu_utilization_as_upstream() {
    let unready_new = State::Running {
        start: 60,
        ready: false,
        since: 60,
    };
    let cases = vec![
        Case {
            name: "scale up",
            current: 3,
            pods: ready_pods(3),
            metrics: Some(metrics(&[("p0", 300), ("p1", 500), ("p2", 700)])),
            target: 30,
            want: Ok((5, 50)),
        },
        Case {
            name: "scale down",
            current: 5,
            pods: ready_pods(5),
            metrics: Some(metrics(&[
                ("p0", 100),
                ("p1", 300),
                ("p2", 500),
                ("p3", 250),
                ("p4", 250),
            ])),
            target: 50,
            want: Ok((3, 28)),
        },
        Case {
            name: "within the 10% tolerance nothing changes",
            current: 3,
            pods: ready_pods(3),
            metrics: Some(metrics(&[("p0", 1010), ("p1", 1030), ("p2", 1020)])),
            target: 100,
            want: Ok((3, 102)),
        },
        Case {
            name: "just outside the tolerance",
            current: 4,
            pods: ready_pods(4),
            metrics: Some(metrics(&[
                ("p0", 560),
                ("p1", 560),
                ("p2", 560),
                ("p3", 560),
            ])),
            target: 50,
            want: Ok((5, 56)),
        },
        Case {
            name: "an unready pod counts as using nothing on a scale-up",
            current: 3,
            pods: vec![
                pod("p0", unready_new, Some(1000)),
                pod("p1", State::Ready, Some(1000)),
                pod("p2", State::Ready, Some(1000)),
            ],
            metrics: Some(metrics(&[("p0", 300), ("p1", 500), ("p2", 700)])),
            target: 30,
            want: Ok((4, 60)),
        },
        Case {
            name: "an unready pod is left out of a scale-down",
            current: 3,
            pods: vec![
                pod("p0", unready_new, Some(1000)),
                pod("p1", State::Ready, Some(1000)),
                pod("p2", State::Ready, Some(1000)),
            ],
            metrics: Some(metrics(&[("p0", 900), ("p1", 100), ("p2", 100)])),
            target: 50,
            want: Ok((1, 10)),
        },
        Case {
            name: "a pending pod counts as using nothing on a scale-up",
            current: 3,
            pods: vec![
                pod("p0", State::Pending, Some(1000)),
                pod("p1", State::Ready, Some(1000)),
                pod("p2", State::Ready, Some(1000)),
            ],
            metrics: Some(metrics(&[("p1", 1000), ("p2", 1000)])),
            target: 50,
            want: Ok((4, 100)),
        },
        Case {
            name: "a sample within a window of becoming ready is ignored",
            current: 2,
            pods: vec![
                pod(
                    "p0",
                    State::Running {
                        start: 60,
                        ready: true,
                        since: 10,
                    },
                    Some(1000),
                ),
                pod("p1", State::Ready, Some(1000)),
            ],
            metrics: Some(metrics(&[("p0", 1000), ("p1", 1000)])),
            target: 30,
            // Counted, p0 would make it 7.
            want: Ok((4, 100)),
        },
        Case {
            name: "past initialization a pod unready after being ready counts",
            current: 2,
            pods: vec![
                pod(
                    "p0",
                    State::Running {
                        start: 600,
                        ready: false,
                        since: 60,
                    },
                    Some(1000),
                ),
                pod("p1", State::Ready, Some(1000)),
            ],
            metrics: Some(metrics(&[("p0", 1000), ("p1", 1000)])),
            target: 50,
            want: Ok((4, 100)),
        },
        Case {
            name: "past initialization a pod never ready is ignored",
            current: 2,
            pods: vec![
                pod(
                    "p0",
                    State::Running {
                        start: 600,
                        ready: false,
                        since: 590,
                    },
                    Some(1000),
                ),
                pod("p1", State::Ready, Some(1000)),
            ],
            metrics: Some(metrics(&[("p0", 1000), ("p1", 1000)])),
            target: 30,
            want: Ok((4, 100)),
        },
        Case {
            name: "missing metrics count as 0% on a scale-up",
            current: 4,
            pods: ready_pods(4),
            metrics: Some(metrics(&[("p0", 1000), ("p1", 1000), ("p2", 1000)])),
            target: 50,
            want: Ok((6, 100)),
        },
        Case {
            name: "missing metrics count as 100% on a scale-down",
            current: 4,
            pods: ready_pods(4),
            metrics: Some(metrics(&[("p0", 100), ("p1", 100), ("p2", 100)])),
            target: 50,
            want: Ok((3, 10)),
        },
        Case {
            name: "missing metrics that reverse the direction change nothing",
            current: 3,
            pods: ready_pods(3),
            metrics: Some(metrics(&[("p0", 400), ("p1", 400)])),
            target: 50,
            want: Ok((3, 40)),
        },
        Case {
            name: "deleted and failed pods are ignored, with their metrics",
            current: 4,
            pods: vec![
                pod("p0", State::Ready, Some(1000)),
                pod("p1", State::Ready, Some(1000)),
                pod("p2", State::Deleting, Some(1000)),
                pod("p3", State::Failed, Some(1000)),
            ],
            metrics: Some(metrics(&[("p0", 1000), ("p1", 1000), ("p2", 0), ("p3", 0)])),
            target: 50,
            want: Ok((4, 100)),
        },
        Case {
            name: "no metrics at all",
            current: 2,
            pods: ready_pods(2),
            metrics: None,
            target: 50,
            want: Err(
                "unable to get metrics for resource cpu: no metrics returned from resource metrics API",
            ),
        },
        Case {
            name: "no pods",
            current: 2,
            pods: vec![],
            metrics: Some(metrics(&[("p0", 1)])),
            target: 50,
            want: Err("no pods returned by selector while calculating replica count"),
        },
        Case {
            name: "only unready pods have metrics",
            current: 1,
            pods: vec![pod("p0", unready_new, Some(1000))],
            metrics: Some(metrics(&[("p0", 1000)])),
            target: 50,
            want: Err("did not receive metrics for targeted pods (pods might be unready)"),
        },
        Case {
            name: "a pod without a request",
            current: 2,
            pods: vec![
                pod("p0", State::Ready, Some(1000)),
                pod("p1", State::Ready, None),
            ],
            metrics: Some(metrics(&[("p0", 1000), ("p1", 1000)])),
            target: 50,
            want: Err("missing request for cpu in container app of Pod p1"),
        },
    ];
    for c in cases {
        let calc = calc(Fake {
            pods: c.metrics,
            object: None,
        });
        let got = calc
            .resource_replicas(c.current, c.target, "cpu", None, &selected(&c.pods), now())
            .await
            .map(|u| (u.replicas, u.utilization))
            .map_err(|e| format!("{e:#}"));
        assert_eq!(got, c.want.map_err(str::to_string), "{}", c.name);
    }
}

#[tokio::test]
async fn memory_ignores_cpu_readiness_and_averages_raw_usage() {
    // Readiness only discounts CPU samples.
    let pods = vec![
        pod(
            "p0",
            State::Running {
                start: 60,
                ready: false,
                since: 60,
            },
            Some(1000),
        ),
        pod("p1", State::Ready, Some(1000)),
    ];
    let calc = calc(Fake {
        pods: Some(metrics(&[("p0", 1000), ("p1", 1000)])),
        object: None,
    });
    let u = calc
        .resource_replicas(2, 50, "memory", None, &selected(&pods), now())
        .await
        .unwrap();
    assert_eq!((u.replicas, u.utilization, u.raw), (4, 100, 1000));
    // An average value target: 1000 per pod over a 500 target doubles.
    let (replicas, usage, _) = calc
        .raw_resource_replicas(2, 500, "memory", None, &selected(&pods), now())
        .await
        .unwrap();
    assert_eq!((replicas, usage), (4, 1000));
}

#[test]
fn container_requests_and_restartable_init_containers() {
    let mut p = (*pod("p0", State::Ready, Some(200))).clone();
    let spec = p.spec.as_mut().unwrap();
    spec.containers.push(Container {
        name: "side".into(),
        ..Default::default()
    });
    spec.init_containers = Some(vec![Container {
        name: "proxy".into(),
        restart_policy: Some("Always".into()),
        resources: Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), Quantity("300m".into()))].into()),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    let pods = vec![Arc::new(p)];
    let only_app = requests(&pods, Some("app"), "cpu").unwrap();
    assert_eq!(only_app["p0"], 200);
    assert_eq!(
        requests(&pods, None, "cpu").unwrap_err().to_string(),
        "missing request for cpu in container side of Pod p0"
    );
    assert_eq!(
        requests(&pods, Some("nope"), "cpu")
            .unwrap_err()
            .to_string(),
        "container nope not found in Pod p0"
    );
    let proxy = requests(&pods, Some("proxy"), "cpu").unwrap();
    assert_eq!(proxy["p0"], 300);
}

/// (name, current, metrics, target per pod, want replicas, want average).
type PodsCase = (&'static str, i32, Vec<(&'static str, i64)>, i64, i32, i64);

#[tokio::test]
async fn pods_metrics_average_value() {
    let table: Vec<PodsCase> = vec![
        (
            "scale up",
            3,
            vec![("p0", 20000), ("p1", 10000), ("p2", 30000)],
            10000,
            6,
            20000,
        ),
        (
            "within tolerance",
            3,
            vec![("p0", 10500), ("p1", 10000), ("p2", 9800)],
            10000,
            3,
            10100,
        ),
        (
            "scale down",
            4,
            vec![("p0", 1000), ("p1", 1000), ("p2", 1000), ("p3", 1000)],
            4000,
            1,
            1000,
        ),
        // A missing pod counts as using exactly the target on a scale-down: 3 of 4
        // measured at 1000 (ratio 0.25), the fourth at 4000, ratio 7000/4/4000.
        (
            "missing on a scale-down",
            4,
            vec![("p0", 1000), ("p1", 1000), ("p2", 1000)],
            4000,
            2,
            1000,
        ),
        // And nothing on a scale-up: 3 of 4 at 20000 (ratio 2), then 60000/4/10000.
        (
            "missing on a scale-up",
            4,
            vec![("p0", 20000), ("p1", 20000), ("p2", 20000)],
            10000,
            6,
            20000,
        ),
    ];
    for (name, current, values, target, replicas, average) in table {
        let pods = ready_pods(current as usize);
        let calc = calc(Fake {
            pods: Some(metrics(&values)),
            object: None,
        });
        let (r, a, _) = calc
            .metric_replicas(current, target, "rps", None, &selected(&pods), now())
            .await
            .unwrap();
        assert_eq!((r, a), (replicas, average), "{name}");
    }
    let calc = calc(Fake::default());
    let err = calc
        .metric_replicas(1, 1, "rps", None, &selected(&ready_pods(1)), now())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to get metric rps: no metrics returned from custom metrics API"
    );
}

#[tokio::test]
async fn object_metrics_value_and_average_value() {
    let object = CrossVersionObjectReference {
        api_version: Some("v1".into()),
        kind: "Service".into(),
        name: "web".into(),
    };
    let pods = vec![
        pod("p0", State::Ready, Some(1)),
        pod("p1", State::Ready, Some(1)),
        pod("p2", State::Pending, Some(1)),
    ];
    // (current, value, target, want): the ratio times the ready pods; from zero the ratio.
    for (current, value, target, want) in
        [(3, 5000, 1000, 10), (3, 1050, 1000, 3), (0, 2500, 1000, 3)]
    {
        let calc = calc(Fake {
            pods: None,
            object: Some(value),
        });
        let (r, usage, _) = calc
            .object_metric_replicas(current, target, "hits", &object, None, &selected(&pods))
            .await
            .unwrap();
        assert_eq!((r, usage), (want, value), "{current} {value}");
    }
    let calc = calc(Fake {
        pods: None,
        object: Some(6000),
    });
    let (r, average, _) = calc
        .object_per_pod_metric_replicas(3, 1000, "hits", &object, None, "default")
        .await
        .unwrap();
    assert_eq!((r, average), (6, 2000));
    let (r, _, _) = calc
        .object_per_pod_metric_replicas(6, 1050, "hits", &object, None, "default")
        .await
        .unwrap();
    assert_eq!(r, 6, "within tolerance");
    let err = super::ReplicaCalculator {
        metrics: Arc::new(Fake::default()),
        ..calc
    }
    .object_metric_replicas(1, 1, "hits", &object, None, &selected(&pods))
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to get metric hits: Service default/web: unable to fetch metrics from custom metrics API: boom"
    );
}
