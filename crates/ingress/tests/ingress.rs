//! The ingress controller end to end: a real API server, `ingress::start()` listening on
//! 127.0.0.1 ports, and backend servers on 127.0.0.1 ports as the Services' endpoints.
//! Everything goes over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod lab;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use apiserver::testing::eventually;
use http::{StatusCode, Version};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use lab::{Backend, Lab, TestCa};
use serde_json::json;

fn path(p: &str, kind: &str, svc: &str) -> serde_json::Value {
    json!({"path": p, "pathType": kind,
           "backend": {"service": {"name": svc, "port": {"number": 80}}}})
}

/// Waits until `host` + `path` answers `status` with a body starting with `prefix`.
async fn until(lab: &Lab, host: &str, p: &str, status: StatusCode, prefix: &str) {
    eventually(&format!("{host}{p} -> {status} {prefix}"), || async {
        let r = lab.try_get(host, p).await.ok()?;
        (r.0 == status && r.1.starts_with(prefix)).then_some(())
    })
    .await;
}

/// The reasons of the Warning events about Ingress `name`.
async fn warnings(lab: &Lab, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(lab.client.clone(), "default");
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_hosts_and_paths_as_upstream_defines() {
    let lab = Lab::start().await;
    let (api, web, docs, other) = (
        Backend::start("api").await,
        Backend::start("web").await,
        Backend::start("docs").await,
        Backend::start("other").await,
    );
    lab.service_for("api", &[&api]).await;
    lab.service_for("web", &[&web]).await;
    lab.service_for("docs", &[&docs]).await;
    lab.service_for("other", &[&other]).await;
    lab.service("empty", None).await;
    // The seed's example, a second host, Exact vs Prefix, a Service without endpoints.
    lab.ingress(
        "site",
        json!({"ingressClassName": "rkube", "rules": [
            {"host": "example.com", "http": {"paths": [
                path("/api", "Prefix", "api"),
                path("/web", "Prefix", "web"),
                path("/docs", "ImplementationSpecific", "docs"),
                path("/docs/exact", "Exact", "other"),
                path("/empty", "Prefix", "empty"),
            ]}},
            {"host": "second.example.com", "http": {"paths": [path("/", "Prefix", "other")]}},
        ]}),
    )
    .await;
    until(&lab, "example.com", "/api", StatusCode::OK, "api /api").await;
    let get = |h: &'static str, p: &'static str| lab.get(h, p);
    assert!(
        get("example.com", "/api/v1/pods")
            .await
            .1
            .starts_with("api /api/v1/pods")
    );
    assert!(
        get("example.com", "/web/index.html")
            .await
            .1
            .starts_with("web ")
    );
    assert!(get("Example.COM:80", "/docs/").await.1.starts_with("docs "));
    assert!(
        get("example.com", "/docs/exact")
            .await
            .1
            .starts_with("other "),
        "Exact wins"
    );
    assert!(
        get("example.com", "/docs/exact/more")
            .await
            .1
            .starts_with("docs "),
        "Prefix"
    );
    assert!(
        get("second.example.com", "/api")
            .await
            .1
            .starts_with("other "),
        "second host"
    );
    let (status, body) = get("example.com", "/apix").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "element-wise prefix: {body}");
    assert_eq!(
        get("nowhere.example.com", "/api").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("example.com", "/empty").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // What the backend was told.
    let body = get("example.com", "/api").await.1;
    for want in [
        "host=example.com",
        "xff=127.0.0.1",
        "realip=127.0.0.1",
        "proto=http",
        "fhost=example.com",
        "version=HTTP/1.1",
    ] {
        assert!(body.contains(want), "{want} missing from {body}");
    }

    // Endpoints added are picked up.
    let late = Backend::start("late").await;
    lab.endpoint("empty", "0", late.addr.port(), true).await;
    until(&lab, "example.com", "/empty", StatusCode::OK, "late ").await;
    // ... and one turning not-ready is dropped: back to 503.
    lab.endpoint("empty", "0", late.addr.port(), false).await;
    until(
        &lab,
        "example.com",
        "/empty",
        StatusCode::SERVICE_UNAVAILABLE,
        "",
    )
    .await;

    // A default backend, in an Ingress of its own without class: served as rkube is the
    // default class (created by the controller).
    lab.ingress(
        "fallback",
        json!({"defaultBackend": {"service": {"name": "other", "port": {"name": "http"}}}}),
    )
    .await;
    until(
        &lab,
        "nowhere.example.com",
        "/x",
        StatusCode::OK,
        "other /x",
    )
    .await;
    let class = lab
        .cluster
        .ok(&[
            "get",
            "ingressclass",
            "rkube",
            "-o",
            "jsonpath={.spec.controller} {.metadata.annotations}",
        ])
        .await;
    assert!(class.starts_with("rkube.io/ingress "), "{class}");
    assert!(class.contains("is-default-class"), "{class}");

    // Another class's Ingress is not served.
    lab.ingress(
        "theirs",
        json!({"ingressClassName": "nginx", "rules": [{"host": "theirs.example.com",
               "http": {"paths": [path("/", "Prefix", "api")]}}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        get("theirs.example.com", "/").await.1.starts_with("other "),
        "default backend, not api"
    );

    // status.loadBalancer: this node's address on served Ingresses only; kubectl shows it.
    eventually("status.loadBalancer", || async {
        let out = lab.cluster.ok(&["get", "ingress", "site"]).await;
        out.contains("127.0.0.1").then_some(out)
    })
    .await;
    let table = lab.cluster.ok(&["get", "ingress"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    );
    let site = table.lines().find(|l| l.starts_with("site ")).unwrap();
    let cols: Vec<&str> = site.split_whitespace().collect();
    assert_eq!(
        &cols[..5],
        [
            "site",
            "rkube",
            "example.com,second.example.com",
            "127.0.0.1",
            "80"
        ],
        "{table}"
    );
    let ings: Api<Ingress> = Api::namespaced(lab.client.clone(), "default");
    let theirs = ings.get("theirs").await.unwrap();
    assert!(
        theirs
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .is_none()
    );

    // Events: a missing Service, a resource backend.
    lab.ingress(
        "broken",
        json!({"ingressClassName": "rkube", "rules": [{"host": "broken.example.com", "http": {"paths": [
            path("/gone", "Prefix", "gone"),
            {"path": "/bucket", "pathType": "Prefix", "backend": {"resource":
                {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b"}}},
        ]}}]}),
    )
    .await;
    until(
        &lab,
        "broken.example.com",
        "/gone",
        StatusCode::SERVICE_UNAVAILABLE,
        "",
    )
    .await;
    // The resource backend's path is skipped: the default backend answers it.
    assert!(
        get("broken.example.com", "/bucket")
            .await
            .1
            .starts_with("other /bucket")
    );
    eventually("warning events", || async {
        let w = warnings(&lab, "broken").await;
        (w.contains(&"MissingService".to_string())
            && w.contains(&"ResourceBackendUnsupported".to_string()))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_by_sni_from_secrets() {
    let lab = Lab::start().await;
    let web = Backend::start("web").await;
    lab.service_for("web", &[&web]).await;
    let ca = TestCa::new();
    let (crt, key) = ca.leaf(&["secure.example.com"]);
    lab.tls_secret("secure-tls", &crt, &key).await;
    let (wcrt, wkey) = ca.leaf(&["*.wild.example.com"]);
    lab.tls_secret("wild-tls", &wcrt, &wkey).await;
    lab.ingress(
        "secure",
        json!({"ingressClassName": "rkube",
        "tls": [{"hosts": ["secure.example.com"], "secretName": "secure-tls"},
                {"hosts": ["*.wild.example.com"], "secretName": "wild-tls"},
                {"hosts": ["nosecret.example.com"], "secretName": "missing-tls"}],
        "rules": [
            {"host": "secure.example.com", "http": {"paths": [path("/", "Prefix", "web")]}},
            {"host": "*.wild.example.com", "http": {"paths": [path("/", "Prefix", "web")]}},
            {"host": "nosecret.example.com", "http": {"paths": [path("/", "Prefix", "web")]}},
        ]}),
    )
    .await;
    let r = eventually("HTTPS with the Secret's certificate", || async {
        ca.get(lab.https, "secure.example.com", "/x", false)
            .await
            .ok()
    })
    .await;
    assert_eq!(r.0, StatusCode::OK);
    assert!(
        r.1.starts_with("web /x") && r.1.contains("proto=https"),
        "{}",
        r.1
    );
    assert_eq!(r.2, Version::HTTP_11);
    // HTTP/2 by ALPN.
    let r = ca
        .get(lab.https, "secure.example.com", "/h2", true)
        .await
        .unwrap();
    assert_eq!((r.0, r.2), (StatusCode::OK, Version::HTTP_2));
    assert!(r.1.contains("host=secure.example.com"), "{}", r.1);
    // The wildcard certificate for one label below it.
    let r = ca
        .get(lab.https, "a.wild.example.com", "/", true)
        .await
        .unwrap();
    assert!(r.1.starts_with("web /"), "{}", r.1);
    // Other names get the self-signed default certificate, which this CA did not sign.
    let e = ca
        .get(lab.https, "nosecret.example.com", "/", false)
        .await
        .unwrap_err();
    assert!(e.contains("certificate") || e.contains("Unknown"), "{e}");
    let e = ca
        .get(lab.https, "a.b.wild.example.com", "/", false)
        .await
        .unwrap_err();
    assert!(!e.is_empty());
    eventually("MissingSecret event", || async {
        warnings(&lab, "secure")
            .await
            .contains(&"MissingSecret".to_string())
            .then_some(())
    })
    .await;
    // Plain HTTP still serves the TLS hosts.
    assert_eq!(lab.get("secure.example.com", "/").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_update_under_load_fails_no_request() {
    let lab = Arc::new(Lab::start().await);
    let (v1, v2) = (Backend::start("v1").await, Backend::start("v2").await);
    lab.service_for("v1", &[&v1]).await;
    lab.service_for("v2", &[&v2]).await;
    let spec = |svc: &str, extra: &str| {
        json!({"ingressClassName": "rkube", "rules": [{"host": "load.example.com", "http": {"paths": [
            path("/", "Prefix", svc), path(extra, "Prefix", "v1"),
        ]}}]})
    };
    lab.ingress("load", spec("v1", "/a")).await;
    until(&lab, "load.example.com", "/", StatusCode::OK, "v1 ").await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (lab, stop, ok, failed) = (lab.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut first_error = None;
            while !stop.load(Ordering::Relaxed) {
                match lab.try_get("load.example.com", "/").await {
                    Ok((StatusCode::OK, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        first_error.get_or_insert(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            first_error
        }));
    }
    // Ten updates: the backend flips between v1 and v2, paths come and go.
    for i in 0..10 {
        let (svc, extra) = if i % 2 == 0 {
            ("v2", "/b")
        } else {
            ("v1", "/c")
        };
        lab.ingress("load", spec(svc, &format!("{extra}{i}"))).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    until(&lab, "load.example.com", "/", StatusCode::OK, "v1 ").await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for c in clients {
        errors.extend(c.await.unwrap());
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("{ok} requests across 10 updates, {failed} failed");
    assert_eq!(failed, 0, "{failed} failed of {}: {errors:?}", ok + failed);
    assert!(ok > 100, "{ok} requests");
    assert!(
        v2.hits.load(Ordering::Relaxed) > 0,
        "the updates took effect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_passed_through() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let lab = Lab::start().await;
    let ws = Backend::websocket_echo("ws").await;
    lab.service_for("ws", &[&ws]).await;
    lab.ingress(
        "ws",
        json!({"ingressClassName": "rkube", "rules": [{"host": "ws.example.com",
               "http": {"paths": [path("/echo", "Exact", "ws")]}}]}),
    )
    .await;
    // Routed (not 404) once the table has it: a plain GET reaches the WebSocket server,
    // which refuses it.
    eventually("ws route", || async {
        let r = lab.try_get("ws.example.com", "/echo").await.ok()?;
        (r.0 != StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(lab.http).await.unwrap();
    let req = "ws://ws.example.com/echo".into_client_request().unwrap();
    let (mut socket, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..3 {
        socket
            .send(Message::text(format!("hello {i}")))
            .await
            .unwrap();
        let echo = socket.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echo = socket.next().await.unwrap().unwrap();
    assert_eq!(echo.into_data().as_ref(), [0u8, 1, 2, 255]);
    socket.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_on_another_endpoint() {
    // Never ejected: every other request meets the dead endpoint first and must be retried.
    let lab = Lab::start_with(|cfg| cfg.eject_after = u32::MAX).await;
    let live = Backend::start("live").await;
    lab.service("flaky", None).await;
    lab.endpoint("flaky", "dead", lab::dead_port().await, true)
        .await;
    lab.endpoint("flaky", "live", live.addr.port(), true).await;
    lab.ingress(
        "flaky",
        json!({"ingressClassName": "rkube", "rules": [{"host": "flaky.example.com",
               "http": {"paths": [path("/", "Prefix", "flaky")]}}]}),
    )
    .await;
    until(&lab, "flaky.example.com", "/", StatusCode::OK, "live ").await;
    // Every request succeeds, a body included: the dead endpoint is retried past.
    for i in 0..20 {
        let (status, body) = if i % 2 == 0 {
            lab.get("flaky.example.com", "/").await
        } else {
            lab.post("flaky.example.com", "/post", "payload").await
        };
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
    }
    // Only the dead endpoint left: 502.
    lab.endpoint("flaky", "live", live.addr.port(), false).await;
    until(&lab, "flaky.example.com", "/", StatusCode::BAD_GATEWAY, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_backends_get_http2_and_trailers_come_back() {
    let lab = Lab::start().await;
    let grpc = Backend::start("grpc").await;
    lab.service("grpc", Some("kubernetes.io/h2c")).await;
    lab.endpoint("grpc", "0", grpc.addr.port(), true).await;
    lab.ingress(
        "grpc",
        json!({"ingressClassName": "rkube", "rules": [{"host": "grpc.example.com",
               "http": {"paths": [path("/", "Prefix", "grpc")]}}]}),
    )
    .await;
    until(&lab, "grpc.example.com", "/", StatusCode::OK, "grpc ").await;
    // An HTTP/1.1 client: the backend still speaks HTTP/2.
    let (_, body) = lab.get("grpc.example.com", "/svc.Echo/Ping").await;
    assert!(body.contains("version=HTTP/2.0"), "{body}");
    assert!(body.contains("fhost=grpc.example.com"), "{body}");
    // An HTTP/2 client (as gRPC is): the backend's trailers come through.
    let (status, body, trailers) =
        lab::h2c_get(lab.http, "grpc.example.com", "/svc.Echo/Ping").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("version=HTTP/2.0"), "{body}");
    let t = trailers.expect("trailers");
    assert_eq!(t.get("grpc-status").unwrap(), "0");
}
