//! The proxy end to end: a real API server, `proxy::run()` programming nftables in a node
//! network namespace of our own, and pods (namespaces on the node's bridge) running busybox
//! httpd. Everything a user would see: requests to the ClusterIP spread over the endpoints,
//! affinity pins, endpoint removal, connection refused without endpoints, NodePort at the
//! node address, hairpin, stale UDP flows, restart and deletion leaving no stale rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod netlab;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use apiserver::testing::{Cluster, eventually, eventually_within};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use netlab::{BRIDGE_IP, Lab};
use proxy::ProxyConfig;
use serde_json::json;

const TABLE: &str = "rkp-lab";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "proxy=info".into()),
        )
        .with_test_writer()
        .try_init();
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn service(name: &str, ip: &str, extra: serde_json::Value) -> Service {
    let mut spec = json!({
        "clusterIP": ip,
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

fn slice(service: &str, port: serde_json::Value, pods: &[(&str, bool)]) -> EndpointSlice {
    let endpoints: Vec<_> = pods
        .iter()
        .map(|(ip, ready)| {
            json!({"addresses": [ip], "conditions": {"ready": ready}, "nodeName": "node-1"})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-x1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [port],
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn http_port() -> serde_json::Value {
    json!({"name": "http", "port": 8080, "protocol": "TCP"})
}

/// Which pods answer `n` requests from `client` to `to` (errors count as "error: …").
fn spread(lab: &Lab, client: &str, to: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let who = match lab.pod(client).ns.http_get(to) {
            Ok(body) => body,
            Err(e) => format!("error: {e}"),
        };
        *seen.entry(who).or_insert(0) += 1;
    }
    seen
}

async fn table(lab: &Lab) -> String {
    let nft = proxy::nft::Nft::new(Some(lab.node.path()), TABLE);
    nft.list().await.unwrap().unwrap_or_default()
}

fn start_proxy(lab: &Lab, client: kube::Client) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let mut cfg = ProxyConfig::new("node-1");
    cfg.netns = Some(lab.node.path());
    cfg.table = TABLE.into();
    // Frequent in-place rebuilds, so the tests also run through them.
    cfg.full_sync_interval = Duration::from_secs(2);
    tokio::spawn(proxy::run(client, cfg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_through_nftables_in_a_netns_lab() {
    if !netlab::can_run() {
        return;
    }
    init_tracing();
    let mut lab = Lab::new().unwrap();
    for (name, n) in [("pod-a", 11), ("pod-b", 12), ("pod-c", 13)] {
        let p = lab.add_pod(name, n).unwrap();
        p.serve_http(8080).unwrap();
        p.serve_udp(5353).unwrap();
    }
    lab.add_pod("client", 50).unwrap();

    let cluster = Cluster::start(false).await;
    let client = cluster.client().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let web_spec = json!({"type": "NodePort", "ports": [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]});
    svcs.create(&pp, &service("web", "10.43.0.100", web_spec))
        .await
        .unwrap();
    let all = [
        ("10.42.0.11", true),
        ("10.42.0.12", true),
        ("10.42.0.13", true),
    ];
    slices
        .create(&pp, &slice("web", http_port(), &all))
        .await
        .unwrap();
    svcs.create(&pp, &service("empty", "10.43.0.101", json!({})))
        .await
        .unwrap();

    let mut proxy = start_proxy(&lab, client.clone());
    let vip = addr("10.43.0.100:80");

    // Requests to the ClusterIP spread over all endpoints.
    eventually("the ClusterIP answers", || async {
        lab.pod("client").ns.http_get(vip).ok()
    })
    .await;
    let seen = spread(&lab, "client", vip, 60);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["pod-a", "pod-b", "pod-c"],
        "{seen:?}"
    );

    // NodePort at the node's bridge address.
    let np = addr(&format!("{BRIDGE_IP}:30080"));
    let seen = spread(&lab, "client", np, 30);
    assert!(
        seen.keys().all(|k| k.starts_with("pod-")) && seen.len() >= 2,
        "{seen:?}"
    );

    // Hairpin: a pod reaching its own Service, possibly itself.
    let seen = spread(&lab, "pod-a", vip, 30);
    assert!(seen.keys().all(|k| k.starts_with("pod-")), "{seen:?}");
    assert!(
        seen.contains_key("pod-a"),
        "pod-a never reached itself: {seen:?}"
    );

    // No endpoints: refused at once, not a hang.
    let t = Instant::now();
    let err = lab
        .pod("client")
        .ns
        .http_get(addr("10.43.0.101:80"))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // A ClusterIP on a port the Service does not have: refused too.
    let err = lab
        .pod("client")
        .ns
        .http_get(addr("10.43.0.100:81"))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");

    // ClientIP affinity pins the client to one endpoint.
    let patch = json!({"spec": {"sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}});
    svcs.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("affinity in the rules", || async {
        table(&lab).await.contains("affinity-").then_some(())
    })
    .await;
    let seen = spread(&lab, "client", vip, 30);
    assert_eq!(seen.len(), 1, "affinity should pin one pod: {seen:?}");
    let patch = json!({"spec": {"sessionAffinity": "None", "sessionAffinityConfig": null}});
    svcs.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("affinity gone from the rules", || async {
        (!table(&lab).await.contains("affinity-")).then_some(())
    })
    .await;

    // Removing an endpoint stops traffic to it quickly.
    let t = Instant::now();
    let two = [("10.42.0.11", true), ("10.42.0.12", true)];
    slices
        .replace("web-x1", &pp, &slice_with_rv(&slices, "web", &two).await)
        .await
        .unwrap();
    eventually_within(5, "pod-c's rules gone", || async {
        (!table(&lab).await.contains("10.42.0.13")).then_some(())
    })
    .await;
    eprintln!("endpoint removal reached the rules in {:?}", t.elapsed());
    let seen = spread(&lab, "client", vip, 40);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["pod-a", "pod-b"],
        "{seen:?}"
    );
    // A not-ready endpoint gets no traffic either.
    let not_ready = [("10.42.0.11", true), ("10.42.0.12", false)];
    slices
        .replace(
            "web-x1",
            &pp,
            &slice_with_rv(&slices, "web", &not_ready).await,
        )
        .await
        .unwrap();
    eventually_within(5, "only pod-a answers", || async {
        let seen = spread(&lab, "client", vip, 10);
        (seen.keys().collect::<Vec<_>>() == ["pod-a"]).then_some(())
    })
    .await;

    // Restart: a stale chain left in our table (a crash, an older version) goes away,
    // and traffic keeps flowing.
    proxy.abort();
    let _ = proxy.await;
    let node_nft = proxy::nft::Nft::new(Some(lab.node.path()), TABLE);
    node_nft
        .apply(&format!(
            "add chain ip {TABLE} endpoint-STALE\nadd element ip {TABLE} service-ips {{ 10.43.9.9 . tcp . 80 : goto endpoint-STALE }}\n"
        ))
        .await
        .unwrap();
    svcs.delete("empty", &DeleteParams::default())
        .await
        .unwrap();
    proxy = start_proxy(&lab, client.clone());
    eventually("the restarted proxy replaced the table", || async {
        let t = table(&lab).await;
        (!t.contains("STALE") && !t.contains("10.43.9.9") && !t.contains("10.43.0.101"))
            .then_some(())
    })
    .await;
    assert_eq!(lab.pod("client").ns.http_get(vip).unwrap(), "pod-a");

    // Deleting the Service removes every rule of it.
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    slices
        .delete("web-x1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("web's rules gone", || async {
        let t = table(&lab).await;
        (!t.contains("default/web")
            && !t.contains("10.43.0.100")
            && !t.contains(":30080")
            && !t.contains(". 30080"))
        .then_some(())
    })
    .await;
    let t = table(&lab).await;
    assert!(t.contains("chain services"), "the base rules stay: {t}");
    // The VIP is unallocated now: dropped (never leaves the node), so the connect times out.
    let err = lab.pod("client").ns.http_get(vip).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ),
        "{err}"
    );
    proxy.abort();
    let _ = proxy.await;

    // cleanup() removes the whole table and nothing else.
    let mut cfg = ProxyConfig::new("node-1");
    cfg.netns = Some(lab.node.path());
    cfg.table = TABLE.into();
    proxy::cleanup(&cfg).await.unwrap();
    assert_eq!(table(&lab).await, "");
    assert!(lab.node.sh("ip link show rkp-br0").is_ok());
}

/// `slice()` carrying the stored object's resourceVersion, for a replace.
async fn slice_with_rv(
    api: &Api<EndpointSlice>,
    service: &str,
    pods: &[(&str, bool)],
) -> EndpointSlice {
    let cur = api.get(&format!("{service}-x1")).await.unwrap();
    let mut s = slice(service, http_port(), pods);
    s.metadata.resource_version = cur.metadata.resource_version;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_udp_flows_are_flushed_when_an_endpoint_goes() {
    if !netlab::can_run() {
        return;
    }
    if std::process::Command::new("conntrack")
        .arg("--version")
        .output()
        .is_err()
    {
        common::ci::skip("conntrack is missing");
        return;
    }
    init_tracing();
    let mut lab = Lab::new().unwrap();
    for (name, n) in [("pod-a", 21), ("pod-b", 22)] {
        lab.add_pod(name, n).unwrap().serve_udp(5353).unwrap();
    }
    lab.add_pod("client", 50).unwrap();
    let cluster = Cluster::start(false).await;
    let client = cluster.client().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let spec =
        json!({"ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]});
    svcs.create(&pp, &service("dns", "10.43.0.110", spec))
        .await
        .unwrap();
    let port = json!({"name": "dns", "port": 5353, "protocol": "UDP"});
    slices
        .create(
            &pp,
            &slice(
                "dns",
                port.clone(),
                &[("10.42.0.21", true), ("10.42.0.22", true)],
            ),
        )
        .await
        .unwrap();
    let proxy = start_proxy(&lab, client.clone());
    let vip = addr("10.43.0.110:53");
    // The same source port every time: one conntrack flow, pinned to one endpoint.
    let first = eventually("the UDP service answers", || async {
        lab.pod("client").ns.udp_ask(40000, vip).ok()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(lab.pod("client").ns.udp_ask(40000, vip).unwrap(), first);
    }
    // That endpoint goes away: the next datagram of the same flow reaches the other one.
    let remaining = if first == "pod-a" {
        "10.42.0.22"
    } else {
        "10.42.0.21"
    };
    let cur = slices.get("dns-x1").await.unwrap();
    let mut s = slice("dns", port, &[(remaining, true)]);
    s.metadata.resource_version = cur.metadata.resource_version;
    slices.replace("dns-x1", &pp, &s).await.unwrap();
    let other = eventually_within(5, "the flow moved to the other endpoint", || async {
        lab.pod("client")
            .ns
            .udp_ask(40000, vip)
            .ok()
            .filter(|w| *w != first)
    })
    .await;
    assert!(other.starts_with("pod-"), "{other}");
    proxy.abort();
}

/// httpd reports IPv4 clients as `[::ffff:a.b.c.d]`.
fn v4(remote: &str) -> String {
    remote
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_start_matches("::ffff:")
        .to_string()
}

/// `slice()` with each endpoint's node given.
fn slice_on_nodes(service: &str, pods: &[(&str, &str)]) -> EndpointSlice {
    let endpoints: Vec<_> = pods
        .iter()
        .map(|(ip, node)| json!({"addresses": [ip], "conditions": {"ready": true}, "nodeName": node}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-x1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [http_port()],
        "endpoints": endpoints,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_clients_traffic_policies_and_load_balancer_ips() {
    if !netlab::can_run() {
        return;
    }
    init_tracing();
    let mut lab = Lab::new().unwrap();
    lab.add_pod("pod-a", 31).unwrap().serve_http(8080).unwrap();
    lab.add_pod("client", 50).unwrap();
    lab.add_outside("outside", 2).unwrap();
    let cluster = Cluster::start(false).await;
    let client = cluster.client().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let spec = json!({"type": "LoadBalancer", "ports": [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30081}]});
    svcs.create(&pp, &service("ext", "10.43.0.120", spec))
        .await
        .unwrap();
    slices
        .create(&pp, &slice_on_nodes("ext", &[("10.42.0.31", "node-1")]))
        .await
        .unwrap();
    // servicelb's way: the node's address is the load balancer's ingress.
    let status =
        json!({"status": {"loadBalancer": {"ingress": [{"ip": netlab::OUTSIDE_NODE_IP}]}}});
    svcs.patch_status("ext", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let proxy = start_proxy(&lab, client.clone());
    let outside = &lab.pod("outside").ns;
    let nodeport = addr(&format!("{}:30081", netlab::OUTSIDE_NODE_IP));
    let lb = addr(&format!("{}:80", netlab::OUTSIDE_NODE_IP));
    let vip = addr("10.43.0.120:80");
    let seen_from = |to: SocketAddr| outside.http_get_path(to, "/cgi-bin/ip").map(|b| v4(&b));

    // Cluster policy: reachable from outside on the NodePort and the LB IP, masqueraded
    // (the pod sees the node's bridge address).
    let from = eventually("the NodePort answers the outside", || async {
        seen_from(nodeport).ok()
    })
    .await;
    assert_eq!(from, BRIDGE_IP);
    let from = eventually("the LB IP answers the outside", || async {
        seen_from(lb).ok()
    })
    .await;
    assert_eq!(from, BRIDGE_IP);
    // Off-cluster source to the ClusterIP: masqueraded too; a pod's own source is kept.
    assert_eq!(seen_from(vip).unwrap(), BRIDGE_IP);
    assert_eq!(
        v4(&lab
            .pod("client")
            .ns
            .http_get_path(vip, "/cgi-bin/ip")
            .unwrap()),
        "10.42.0.50"
    );

    // Local policy: the client's own address reaches the pod.
    let patch = json!({"spec": {"externalTrafficPolicy": "Local"}});
    svcs.patch("ext", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually_within(5, "the source is kept", || async {
        (seen_from(nodeport).ok()? == "192.0.2.2").then_some(())
    })
    .await;
    assert_eq!(seen_from(lb).unwrap(), "192.0.2.2");

    // Local policy, the only endpoint on another node: outside traffic is dropped, pods
    // still reach the NodePort (short-circuited to all endpoints).
    let cur = slices.get("ext-x1").await.unwrap();
    let mut s = slice_on_nodes("ext", &[("10.42.0.31", "node-2")]);
    s.metadata.resource_version = cur.metadata.resource_version;
    slices.replace("ext-x1", &pp, &s).await.unwrap();
    eventually_within(5, "outside traffic dropped", || async {
        seen_from(nodeport).err().map(|e| e.kind())
    })
    .await;
    let err = seen_from(lb).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ),
        "dropped, not refused: {err}"
    );
    let np_from_pod = addr(&format!("{BRIDGE_IP}:30081"));
    assert_eq!(lab.pod("client").ns.http_get(np_from_pod).unwrap(), "pod-a");

    // Something changed behind the proxy's back is repaired by the periodic full sync.
    let nft = proxy::nft::Nft::new(Some(lab.node.path()), TABLE);
    nft.apply(&format!(
        "add element ip {TABLE} service-ips {{ 10.43.9.8 . tcp . 80 : goto reject-chain }}\nflush chain ip {TABLE} services\n"
    ))
    .await
    .unwrap();
    eventually_within(10, "the table repaired", || async {
        let t = table(&lab).await;
        (!t.contains("10.43.9.8") && t.contains("vmap @service-ips")).then_some(())
    })
    .await;
    assert_eq!(lab.pod("client").ns.http_get(vip).unwrap(), "pod-a");
    proxy.abort();
}
