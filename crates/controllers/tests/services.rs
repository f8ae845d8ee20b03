//! The Endpoints, EndpointSlice, mirroring and service load balancer controllers against a
//! real API server, driven with kubectl. No kubelet runs: the test gives pods their IPs and
//! readiness through the status subresource, as a kubelet would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::{Cluster, eventually};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

async fn start() -> Cluster {
    let c = Cluster::start(false).await;
    let client = controllers::client(c.config().await).unwrap();
    tokio::spawn(controllers::run(client, "cm".into()));
    c
}

/// A pod `name` labelled app=web with a container port named `http` on `port`, given `ip`.
async fn pod(c: &Cluster, name: &str, ip: &str, port: i32, ready: bool, extra: serde_json::Value) {
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    let mut spec = json!({"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
        "ports": [{"name": "http", "containerPort": port}]}]});
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            spec[k] = v.clone();
        }
    }
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    set_ready(c, name, Some(ip), ready).await;
}

async fn set_ready(c: &Cluster, name: &str, ip: Option<&str>, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    let mut status = json!({"phase": "Running", "conditions": [{"type": "Ready",
        "status": if ready { "True" } else { "False" }}]});
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap();
}

const WEB: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, labels: {tier: front}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
";

/// `ready|notready` IPs of the Endpoints object.
async fn endpoints(c: &Cluster, name: &str) -> String {
    c.ok(&["get", "endpoints", name, "-o",
        "jsonpath={range .subsets[*]}{.addresses[*].ip}|{.notReadyAddresses[*].ip}|{.ports[*].port};{end}"])
        .await
}

/// `ip:ready:port` of every endpoint in the Service's slices, sorted.
async fn slices(c: &Cluster, svc: &str) -> Vec<String> {
    let out = c
        .ok(&["get", "endpointslices", "-l", &format!("kubernetes.io/service-name={svc}"), "-o",
            r#"jsonpath={range .items[*]}{range .endpoints[*]}{.addresses[0]}:{.conditions.ready}:{.hostname}{"\n"}{end}{end}"#])
        .await;
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_pods_become_endpoints_and_slices() {
    let c = start().await;
    let f = c.write("web.yaml", WEB);
    c.ok(&["apply", "-f", &f]).await;
    // No pods yet: the Endpoints object exists without subsets, and one empty placeholder slice.
    eventually("placeholder slice", || async {
        let out = c.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o",
            "jsonpath={.items[*].metadata.labels.endpointslice\\.kubernetes\\.io/managed-by}/{.items[0].metadata.ownerReferences[0].kind}"]).await;
        (out == "endpointslice-controller.k8s.io/Service").then_some(())
    })
    .await;
    pod(&c, "a", "10.42.0.2", 8080, true, json!({})).await;
    pod(&c, "b", "10.42.0.3", 8080, false, json!({})).await;
    // A named targetPort resolves per pod: this one serves on 9090.
    pod(&c, "d", "10.42.0.5", 9090, true, json!({})).await;
    eventually("endpoints", || async {
        let e = endpoints(&c, "web").await;
        (e == "10.42.0.2|10.42.0.3|8080;10.42.0.5||9090;").then_some(())
    })
    .await;
    let labels = c
        .ok(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.metadata.labels.tier}",
        ])
        .await;
    assert_eq!(labels, "front");
    eventually("slices", || async {
        (slices(&c, "web").await == ["10.42.0.2:true:", "10.42.0.3:false:", "10.42.0.5:true:"])
            .then_some(())
    })
    .await;
    // The not-ready pod turns ready; the ready one is deleted.
    set_ready(&c, "b", None, true).await;
    c.ok(&["delete", "pod", "a", "--grace-period=0", "--force"])
        .await;
    eventually("endpoints after changes", || async {
        let e = endpoints(&c, "web").await;
        (e == "10.42.0.3||8080;10.42.0.5||9090;").then_some(())
    })
    .await;
    eventually("slices after changes", || async {
        (slices(&c, "web").await == ["10.42.0.3:true:", "10.42.0.5:true:"]).then_some(())
    })
    .await;
    // kubectl shows the endpoints as users read them.
    let out = c.ok(&["get", "endpoints", "web"]).await;
    assert!(out.contains("10.42.0.3:8080,10.42.0.5:9090"), "{out}");
    // Deleting the Service removes its Endpoints and (through the garbage collector) slices.
    c.ok(&["delete", "svc", "web"]).await;
    eventually("endpoints gone", || async {
        let e = c
            .ok(&["get", "endpoints,endpointslices", "-o", "name"])
            .await;
        (!e.contains("web")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_hostnames_and_publish_not_ready() {
    let c = start().await;
    let svc = "
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: 8080}]
";
    let f = c.write("svc.yaml", svc);
    c.ok(&["apply", "-f", &f]).await;
    pod(
        &c,
        "web-0",
        "10.42.0.7",
        8080,
        false,
        json!({"hostname": "web-0", "subdomain": "nginx"}),
    )
    .await;
    eventually("hostname and not-ready published", || async {
        (slices(&c, "nginx").await == ["10.42.0.7:true:web-0"]).then_some(())
    })
    .await;
    let out = c
        .ok(&[
            "get",
            "endpoints",
            "nginx",
            "-o",
            "jsonpath={.subsets[0].addresses[0].hostname}/{.metadata.labels}",
        ])
        .await;
    assert!(
        out.starts_with("web-0/") && out.contains("service.kubernetes.io/headless"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectorless_service_keeps_manual_endpoints_mirrored_into_slices() {
    let c = start().await;
    // The seed's external database: a Service without a selector and Endpoints by hand.
    let db = "
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  ports: [{name: mysql, port: 3306}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: db}
subsets:
- addresses: [{ip: 10.42.9.9}]
  ports: [{name: mysql, port: 3306}]
";
    let f = c.write("db.yaml", db);
    c.ok(&["apply", "-f", &f]).await;
    eventually("mirrored slice", || async {
        let out = c.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=db", "-o",
            "jsonpath={.items[*].endpoints[*].addresses[0]}/{.items[*].ports[0].port}/{.items[*].metadata.labels.endpointslice\\.kubernetes\\.io/managed-by}"]).await;
        (out == "10.42.9.9/3306/endpointslicemirroring-controller.k8s.io").then_some(())
    })
    .await;
    // The controllers leave the hand-written Endpoints alone.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(endpoints(&c, "db").await, "10.42.9.9||3306;");
    // A changed address is mirrored.
    c.ok(&[
        "patch",
        "endpoints",
        "db",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/subsets/0/addresses/0/ip","value":"10.42.9.10"}]"#,
    ])
    .await;
    eventually("mirrored change", || async {
        (slices(&c, "db").await == ["10.42.9.10:true:"]).then_some(())
    })
    .await;
    // Deleting the Service deletes its Endpoints, and the mirrored slices go with them.
    c.ok(&["delete", "svc", "db"]).await;
    eventually("all gone", || async {
        let e = c
            .ok(&["get", "endpoints,endpointslices", "-o", "name"])
            .await;
        (!e.contains("db")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_gets_the_node_addresses() {
    let c = start().await;
    let nodes: Api<Node> = Api::all(c.client().await);
    for (name, ip) in [("n1", "10.0.0.11"), ("n2", "10.0.0.12")] {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        nodes.create(&PostParams::default(), &n).await.unwrap();
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}],
            "conditions": [{"type": "Ready", "status": "True"}]}});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }
    let f = c.write(
        "lb.yaml",
        &WEB.replace("spec:\n", "spec:\n  type: LoadBalancer\n"),
    );
    c.ok(&["apply", "-f", &f]).await;
    eventually("EXTERNAL-IP", || async {
        let out = c.ok(&["get", "svc", "web"]).await;
        out.contains("10.0.0.11,10.0.0.12").then_some(())
    })
    .await;
    // A node excluded from load balancers drops out.
    c.ok(&[
        "label",
        "node",
        "n2",
        "node.kubernetes.io/exclude-from-external-load-balancers=",
    ])
    .await;
    eventually("one address", || async {
        let out = c
            .ok(&[
                "get",
                "svc",
                "web",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[*].ip}",
            ])
            .await;
        (out == "10.0.0.11").then_some(())
    })
    .await;
    // No longer a LoadBalancer: no addresses.
    c.ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ])
    .await;
    eventually("cleared", || async {
        let out = c
            .ok(&[
                "get",
                "svc",
                "web",
                "-o",
                "jsonpath={.status.loadBalancer.ingress}",
            ])
            .await;
        out.is_empty().then_some(())
    })
    .await;
}
