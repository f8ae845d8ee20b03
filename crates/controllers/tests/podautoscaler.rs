//! The HorizontalPodAutoscaler controller against a real API server, driven with the real
//! kubectl, with canned pod metrics (no metrics server runs here). Pods are made Running and
//! Ready through the status subresource, as a kubelet would; no Deployment controller runs,
//! so the Deployment's `spec.replicas` is exactly what the HPA wrote through `/scale`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apiserver::testing::{Cluster, eventually};
use client_go::informer::Informer;
use controllers::podautoscaler::mapper::RestMapper;
use controllers::podautoscaler::{
    HorizontalController, MetricsClient, Options, PodMetric, PodMetricsInfo,
};
use futures::future::BoxFuture;
use k8s_openapi::api::autoscaling::v2::{CrossVersionObjectReference, HorizontalPodAutoscaler};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

/// CPU usage (millicores) by pod, for the pods of the selectors it knows; any other
/// selector gets the error a cluster without a metrics server gives.
struct FakeMetrics(HashMap<&'static str, Vec<(&'static str, i64)>>);

impl MetricsClient for FakeMetrics {
    fn resource_metric<'a>(
        &'a self,
        resource: &'a str,
        _namespace: &'a str,
        selector: &'a str,
        _container: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<(PodMetricsInfo, Timestamp)>> {
        Box::pin(async move {
            let pods = self.0.get(selector).filter(|_| resource == "cpu").ok_or_else(|| {
                anyhow::anyhow!(
                    "unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)"
                )
            })?;
            let now = Timestamp::now();
            let info = pods
                .iter()
                .map(|(name, milli)| {
                    let m = PodMetric {
                        timestamp: now,
                        window: Duration::from_secs(15),
                        value: *milli,
                    };
                    (name.to_string(), m)
                })
                .collect();
            Ok((info, now))
        })
    }

    fn raw_metric<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: Option<&'a LabelSelector>,
    ) -> BoxFuture<'a, anyhow::Result<(PodMetricsInfo, Timestamp)>> {
        Box::pin(async { Err(anyhow::anyhow!("no custom metrics here")) })
    }

    fn object_metric<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a CrossVersionObjectReference,
        _: Option<&'a LabelSelector>,
    ) -> BoxFuture<'a, anyhow::Result<(i64, Timestamp)>> {
        Box::pin(async { Err(anyhow::anyhow!("no custom metrics here")) })
    }
}

/// A cluster with the HPA controller alone, syncing every second (events kept long enough
/// to be looked at).
async fn cluster(metrics: FakeMetrics) -> Cluster {
    let c = Cluster::start_with(false, Duration::from_secs(600)).await;
    c.default_service_account("default").await;
    let client = controllers::client(c.config().await).unwrap();
    let hpas = Informer::<HorizontalPodAutoscaler>::start(Api::all(client.clone()));
    let pods = Informer::<Pod>::start(Api::all(client.clone()));
    let options = Options {
        sync_period: Duration::from_secs(1),
        ..Options::default()
    };
    let controller = HorizontalController::with_metrics(
        client.clone(),
        hpas,
        pods,
        Arc::new(metrics),
        Arc::new(RestMapper::new(client)),
        options,
    );
    tokio::spawn(controller.run(2));
    c
}

/// A Deployment `name` of `replicas` whose pods (app=`name`) request 100m CPU, and `pods`
/// such pods, Running and Ready for ten minutes.
async fn workload(c: &Cluster, name: &str, replicas: i32, pods: &[&str]) {
    let file = c.write(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: app:1, resources: {{requests: {{cpu: 100m}}}}}}]
"
        ),
    );
    c.ok(&["apply", "-f", &file]).await;
    ready_pods(c, name, pods).await;
}

/// `pods` labelled app=`app`, requesting 100m CPU, Running and Ready for ten minutes (as a
/// kubelet would report them).
async fn ready_pods(c: &Cluster, app: &str, pods: &[&str]) {
    let api: Api<Pod> = Api::namespaced(c.client().await, "default");
    let ago = |secs| {
        Timestamp::now()
            .checked_sub(SignedDuration::from_secs(secs))
            .unwrap()
            .to_string()
    };
    for p in pods {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": p, "labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": "app:1",
                "resources": {"requests": {"cpu": "100m"}}}]},
        }))
        .unwrap();
        api.create(&PostParams::default(), &pod).await.unwrap();
        let status = json!({"status": {"phase": "Running", "startTime": ago(600),
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ago(590)}]}});
        api.patch_status(p, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }
}

async fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    c.ok(&a).await
}

/// `type=status/reason` of each condition.
const CONDITIONS: &str = r#"{range .status.conditions[*]}{.type}={.status}/{.reason}{" "}{end}"#;

/// The TARGETS column of `kubectl get hpa NAME`.
async fn targets(c: &Cluster, name: &str) -> String {
    let out = c.ok(&["get", "hpa", name]).await;
    let header = out.lines().next().unwrap();
    let row = out.lines().nth(1).unwrap();
    let start = header.find("TARGETS").unwrap();
    let end = header.find("MINPODS").unwrap();
    row.get(start..end).unwrap_or_default().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_above_target_scales_the_deployment_up() {
    let c = cluster(FakeMetrics(
        [("app=web", vec![("web-a", 100), ("web-b", 100)])].into(),
    ))
    .await;
    workload(&c, "web", 2, &["web-a", "web-b"]).await;
    // Made as `autoscaling/v1` with a CPU percentage: stored (and read by the controller)
    // as v2 through conversion.
    let hpa = c.write(
        "hpa.yaml",
        "apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  targetCPUUtilizationPercentage: 50
",
    );
    c.ok(&["apply", "-f", &hpa]).await;

    // 100% of the request against 50%: twice the pods.
    eventually("the deployment scaled to 4 through /scale", || async {
        let r = jsonpath(&c, &["get", "deployment", "web"], "{.spec.replicas}").await;
        (r == "4").then_some(())
    })
    .await;
    eventually("the HPA's status", || async {
        let status = jsonpath(
            &c,
            &["get", "hpa.v2.autoscaling", "web"],
            "{.status.desiredReplicas} {.status.currentMetrics[0].resource.current.averageUtilization} {.status.lastScaleTime}",
        )
        .await;
        let conditions = jsonpath(&c, &["get", "hpa.v2.autoscaling", "web"], CONDITIONS).await;
        (status.starts_with("4 100 20")
            && conditions.contains("AbleToScale=True/")
            && conditions.contains("ScalingActive=True/ValidMetricFound")
            && conditions.contains("ScalingLimited=False/DesiredWithinRange"))
        .then_some(())
    })
    .await;
    // The next syncs see 4 replicas asked for and keep them.
    eventually("the current replicas caught up", || async {
        let r = jsonpath(
            &c,
            &["get", "hpa.v2.autoscaling", "web"],
            "{.status.currentReplicas}",
        )
        .await;
        (r == "4").then_some(())
    })
    .await;
    let events = jsonpath(
        &c,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web,reason=SuccessfulRescale",
        ],
        "{.items[*].message}",
    )
    .await;
    assert_eq!(
        events,
        "New size: 4; reason: cpu resource utilization (percentage of request) above target"
    );
    assert_eq!(targets(&c, "web").await, "cpu: 100%/50%");
    // Read as v1, the CPU utilization is the status' own field.
    let v1: Api<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler> =
        Api::namespaced(c.client().await, "default");
    let v1 = v1.get("web").await.unwrap().status.unwrap();
    assert_eq!(v1.current_cpu_utilization_percentage, Some(100));
    let replicas = jsonpath(&c, &["get", "deployment", "web"], "{.spec.replicas}").await;
    assert_eq!(replicas, "4", "no further scaling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metrics_sets_scaling_active_false() {
    let c = cluster(FakeMetrics(HashMap::new())).await;
    workload(&c, "idle", 1, &["idle-a"]).await;
    let hpa = c.write(
        "hpa.yaml",
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: idle}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: idle}
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
",
    );
    c.ok(&["apply", "-f", &hpa]).await;
    eventually("ScalingActive=False", || async {
        let conditions = jsonpath(&c, &["get", "hpa", "idle"], CONDITIONS).await;
        (conditions.contains("AbleToScale=True/SucceededGetScale")
            && conditions.contains("ScalingActive=False/FailedGetResourceMetric"))
        .then_some(())
    })
    .await;
    let message = jsonpath(
        &c,
        &["get", "hpa", "idle"],
        r#"{.status.conditions[?(@.type=="ScalingActive")].message}"#,
    )
    .await;
    assert_eq!(
        message,
        "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)"
    );
    eventually("the warning events", || async {
        let reasons = jsonpath(
            &c,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=idle,type=Warning",
            ],
            "{.items[*].reason}",
        )
        .await;
        (reasons.contains("FailedGetResourceMetric")
            && reasons.contains("FailedComputeMetricsReplicas"))
        .then_some(())
    })
    .await;
    assert_eq!(targets(&c, "idle").await, "cpu: <unknown>/50%");
    let replicas = jsonpath(&c, &["get", "deployment", "idle"], "{.spec.replicas}").await;
    assert_eq!(replicas, "1");
}

/// An HPA scales a custom kind through its CRD's `scale` subresource: the pods come from the
/// Scale's selector (the CRD's `labelSelectorPath`), the new count goes to
/// `specReplicasPath`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_kind_is_scaled_through_its_crd_scale_subresource() {
    let c = cluster(FakeMetrics(
        [("app=crw", vec![("crw-a", 100), ("crw-b", 100)])].into(),
    ))
    .await;
    let crd = c.write(
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: workers.hpa.example.com}
spec:
  group: hpa.example.com
  scope: Namespaced
  names: {plural: workers, singular: worker, kind: Worker}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {replicas: {type: integer}}}
          status: {type: object, properties: {replicas: {type: integer}, selector: {type: string}}}
",
    );
    c.ok(&["apply", "-f", &crd]).await;
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/workers.hpa.example.com",
    ])
    .await;
    let worker = c.write(
        "worker.yaml",
        "apiVersion: hpa.example.com/v1\nkind: Worker\nmetadata: {name: crw}\nspec: {replicas: 2}\n",
    );
    c.ok(&["apply", "-f", &worker]).await;
    c.ok(&[
        "patch",
        "workers.hpa.example.com",
        "crw",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2,"selector":"app=crw"}}"#,
    ])
    .await;
    // Two pods of the worker (no Deployment: a pod template is not needed to be scaled).
    ready_pods(&c, "crw", &["crw-a", "crw-b"]).await;
    let hpa = c.write(
        "hpa.yaml",
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: crw}
spec:
  scaleTargetRef: {apiVersion: hpa.example.com/v1, kind: Worker, name: crw}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
",
    );
    c.ok(&["apply", "-f", &hpa]).await;
    eventually("the worker scaled to 4 through its /scale", || async {
        let r = jsonpath(
            &c,
            &["get", "workers.hpa.example.com", "crw"],
            "{.spec.replicas}",
        )
        .await;
        (r == "4").then_some(())
    })
    .await;
}
