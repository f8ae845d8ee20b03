//! `dns::serve` against the project's API server: Services and EndpointSlices written by hand
//! through the kube client (as the EndpointSlice controller would), questions over real UDP
//! and TCP on loopback, and every change visible in the answers within a second.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use apiserver::testing::Cluster;
use common::{Via, ask, data, service, slice};
use dns::{DnsConfig, Server};
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::RecordType;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

/// Polls `check` until it holds, failing after one second (an informer event plus an index
/// rebuild take milliseconds); returns how long it took.
async fn within_a_second<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => {
                let took = start.elapsed();
                eprintln!("{what}: visible after {took:?}");
                return took;
            }
            Err(last) if start.elapsed() > Duration::from_secs(1) => {
                panic!("{what}: not visible within a second; last answer: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn expect(r: &Message, want: &[&str]) -> Result<(), String> {
    if data(r) == want && r.metadata.response_code == ResponseCode::NoError {
        Ok(())
    } else {
        Err(format!("{:?} {:?}", r.metadata.response_code, data(r)))
    }
}

fn expect_nxdomain(r: &Message) -> Result<(), String> {
    if r.metadata.response_code == ResponseCode::NXDomain {
        Ok(())
    } else {
        Err(format!("{:?} {:?}", r.metadata.response_code, data(r)))
    }
}

async fn a(addr: SocketAddr, name: &str) -> Message {
    ask(addr, name, RecordType::A, Via::Udp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_follow_services_and_endpoint_slices() {
    let c = Cluster::start(false).await;
    let client = c.client().await;
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let addr = server.local_addr();
    let task = tokio::spawn(server.serve(client.clone(), DnsConfig::new()));
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // A ClusterIP Service: A over UDP and TCP, SRV for its named port.
    let web = svcs
        .create(&pp, &service("default", "web", None, ("http", 80)))
        .await
        .unwrap();
    let ip = web.spec.unwrap().cluster_ip.unwrap();
    within_a_second("new Service", || async {
        expect(&a(addr, "web.default.svc.cluster.local.").await, &[&ip])
    })
    .await;
    let tcp = ask(
        addr,
        "web.default.svc.cluster.local",
        RecordType::A,
        Via::Tcp,
    )
    .await;
    assert_eq!(data(&tcp), std::slice::from_ref(&ip));
    let srv = ask(
        addr,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
        Via::Udp,
    )
    .await;
    assert_eq!(data(&srv), ["0 100 80 web.default.svc.cluster.local."]);

    // A headless Service whose slice has two ready endpoints and one not ready.
    svcs.create(&pp, &service("default", "nginx", Some("None"), ("web", 80)))
        .await
        .unwrap();
    let eps = |n: usize| -> Vec<(String, Option<String>, bool)> {
        (0..n)
            .map(|i| {
                (
                    format!("10.42.0.{}", i + 5),
                    Some(format!("web-{i}")),
                    i != 2,
                )
            })
            .collect()
    };
    slices
        .create(
            &pp,
            &slice("default", "nginx", "nginx-abc", &eps(3), ("web", 8080)),
        )
        .await
        .unwrap();
    within_a_second("headless endpoints", || async {
        expect(
            &a(addr, "nginx.default.svc.cluster.local.").await,
            &["10.42.0.5", "10.42.0.6"],
        )
    })
    .await;
    assert_eq!(
        data(&a(addr, "WEB-0.nginx.default.svc.cluster.local").await),
        ["10.42.0.5"]
    );
    expect_nxdomain(&a(addr, "web-2.nginx.default.svc.cluster.local.").await).unwrap();
    let srv = ask(
        addr,
        "_web._tcp.nginx.default.svc.cluster.local.",
        RecordType::SRV,
        Via::Tcp,
    )
    .await;
    assert_eq!(
        data(&srv),
        [
            "0 50 8080 web-0.nginx.default.svc.cluster.local.",
            "0 50 8080 web-1.nginx.default.svc.cluster.local.",
        ]
    );
    assert_eq!(srv.additionals.len(), 2, "the targets' A records as glue");

    // An endpoint goes away.
    let mut s = slices.get("nginx-abc").await.unwrap();
    s.endpoints.truncate(1);
    slices.replace("nginx-abc", &pp, &s).await.unwrap();
    within_a_second("endpoint removed", || async {
        expect(
            &a(addr, "nginx.default.svc.cluster.local.").await,
            &["10.42.0.5"],
        )
    })
    .await;
    within_a_second("endpoint name removed", || async {
        expect_nxdomain(&a(addr, "web-1.nginx.default.svc.cluster.local.").await)
    })
    .await;

    // The Service goes away.
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    within_a_second("Service deleted", || async {
        expect_nxdomain(&a(addr, "web.default.svc.cluster.local.").await)
    })
    .await;

    // Unknown names, and names outside the zone without an upstream.
    expect_nxdomain(&a(addr, "nope.default.svc.cluster.local.").await).unwrap();
    let out = a(addr, "example.com.").await;
    assert_eq!(out.metadata.response_code, ResponseCode::Refused);

    task.abort();
}
