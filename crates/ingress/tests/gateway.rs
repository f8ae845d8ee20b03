//! Gateway API end to end: a real API server without the Gateway CRDs at first (the
//! controller serves Ingresses meanwhile), then upstream's v1.6.1 standard-channel CRDs
//! applied, a GatewayClass, Gateways and HTTPRoutes, and what a client and `kubectl` see:
//! weighted splits, matches and their precedence, filters, HTTPS by SNI, statuses; and
//! GRPCRoutes over HTTP/2 cleartext.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod lab;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use apiserver::testing::eventually;
use http::StatusCode;
use ingress::gateway::types::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use lab::{Backend, Lab, TestCa, h2c_call};
use serde_json::{Value, json};

/// Upstream's CRDs for the kinds served, applied as its docs say (server-side).
async fn install_crds(lab: &Lab) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../apiserver/tests/testdata/gateway-api-v1.6.1/config/crd/standard");
    for kind in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "grpcroutes",
        "referencegrants",
    ] {
        let f = dir.join(format!("gateway.networking.k8s.io_{kind}.yaml"));
        lab.cluster
            .ok(&["apply", "--server-side", "-f", &f.display().to_string()])
            .await;
    }
    // Served once listable (polled: `kubectl wait` missed the Established event here under
    // load).
    eventually("the Gateway API served", || async {
        let lp = kube::api::ListParams::default();
        let c = lab.client.clone();
        Api::<GatewayClass>::all(c.clone()).list(&lp).await.ok()?;
        Api::<Gateway>::all(c.clone()).list(&lp).await.ok()?;
        Api::<HTTPRoute>::all(c.clone()).list(&lp).await.ok()?;
        Api::<GRPCRoute>::all(c.clone()).list(&lp).await.ok()?;
        Api::<ReferenceGrant>::all(c).list(&lp).await.ok()?;
        Some(())
    })
    .await;
}

async fn apply(lab: &Lab, name: &str, v: Value) {
    let f = lab.cluster.write(&format!("{name}.json"), &v.to_string());
    lab.cluster.ok(&["apply", "-f", &f]).await;
}

async fn class_and_gateway(lab: &Lab, listeners: Value) {
    apply(
        lab,
        "class",
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "rkube"},
               "spec": {"controllerName": "rkube.io/gateway-controller"}}),
    )
    .await;
    apply(
        lab,
        "gw",
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "gw", "namespace": "default"},
               "spec": {"gatewayClassName": "rkube", "listeners": listeners}}),
    )
    .await;
}

async fn route(lab: &Lab, ns: &str, name: &str, spec: Value) {
    apply(
        lab,
        &format!("route-{ns}-{name}"),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
    .await;
}

fn to(svc: &str) -> Value {
    json!([{"name": svc, "port": 80}])
}

fn prefix(p: &str) -> Value {
    json!({"path": {"type": "PathPrefix", "value": p}})
}

/// `type=status reason` of each condition.
fn summary(c: &[Condition]) -> Vec<String> {
    c.iter()
        .map(|c| format!("{}={} {}", c.type_, c.status, c.reason))
        .collect()
}

/// The conditions this controller set on route `ns/name` for its first parent.
async fn route_conditions(lab: &Lab, ns: &str, name: &str) -> Option<Vec<String>> {
    let r = Api::<HTTPRoute>::namespaced(lab.client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    let p = r
        .status?
        .parents
        .into_iter()
        .find(|p| p.controller_name == "rkube.io/gateway-controller")?;
    Some(summary(&p.conditions))
}

/// [`route_conditions`] of a GRPCRoute.
async fn grpc_route_conditions(lab: &Lab, ns: &str, name: &str) -> Option<Vec<String>> {
    let r = Api::<GRPCRoute>::namespaced(lab.client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    let p = r
        .status?
        .parents
        .into_iter()
        .find(|p| p.controller_name == "rkube.io/gateway-controller")?;
    Some(summary(&p.conditions))
}

async fn until_body(lab: &Lab, host: &str, path: &str, prefix: &str) {
    eventually(&format!("{host}{path} -> {prefix}"), || async {
        let r = lab.try_get(host, path).await.ok()?;
        r.1.starts_with(prefix).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_http_routes_once_the_crds_exist() {
    let lab = Lab::start().await;
    let names = [
        "v1", "v2", "exact", "prefix", "header", "query", "method", "regex", "ing", "gwb",
    ];
    let mut backends = Vec::new();
    for n in names {
        let b = Backend::start(n).await;
        lab.service_for(n, &[&b]).await;
        backends.push(b);
    }
    let hits = |n: &str| {
        backends
            .iter()
            .find(|b| b.name == n)
            .unwrap()
            .hits
            .load(Ordering::Relaxed)
    };
    // Before the CRDs: Ingresses are served; the Gateway watches retry quietly.
    lab.ingress(
        "shared",
        json!({"ingressClassName": "rkube", "rules": [{"host": "shared.example.com",
               "http": {"paths": [{"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "ing", "port": {"number": 80}}}}]}}]}),
    )
    .await;
    until_body(&lab, "shared.example.com", "/gw", "ing /gw").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        lab.get("shared.example.com", "/gw")
            .await
            .1
            .starts_with("ing ")
    );

    install_crds(&lab).await;
    lab.cluster.namespace("other").await;
    let port = lab.http.port();
    class_and_gateway(
        &lab,
        json!([{"name": "http", "port": port, "protocol": "HTTP"},
               {"name": "elsewhere", "port": 1, "protocol": "HTTP"}]),
    )
    .await;
    route(
        &lab,
        "default",
        "split",
        json!({"parentRefs": [{"name": "gw", "sectionName": "http"}],
               "hostnames": ["split.example.com"],
               "rules": [{"backendRefs": [{"name": "v1", "port": 80, "weight": 3},
                                          {"name": "v2", "port": 80, "weight": 1}]}]}),
    )
    .await;
    route(
        &lab,
        "default",
        "match",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["match.example.com"], "rules": [
            {"matches": [{"path": {"type": "Exact", "value": "/exact"}}], "backendRefs": to("exact")},
            {"matches": [prefix("/api")], "backendRefs": to("prefix")},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                          "headers": [{"name": "X-Version", "value": "2"}]}], "backendRefs": to("header")},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                          "queryParams": [{"name": "v", "value": "3"}]}], "backendRefs": to("query")},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "method": "POST"}],
             "backendRefs": to("method")},
            {"matches": [{"path": {"type": "RegularExpression", "value": "/re/[0-9]+"}}],
             "backendRefs": to("regex")},
        ]}),
    )
    .await;
    route(
        &lab,
        "default",
        "filters",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["filters.example.com"], "rules": [
            {"matches": [prefix("/headers")], "backendRefs": to("exact"), "filters": [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                    "set": [{"name": "X-Gw-Set", "value": "one"}],
                    "add": [{"name": "X-Gw-Add", "value": "two"}],
                    "remove": ["X-Gw-Remove"]}},
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                    "add": [{"name": "X-Gw-Resp", "value": "yes"}]}}]},
            {"matches": [prefix("/old")], "filters": [
                {"type": "RequestRedirect", "requestRedirect": {"hostname": "new.example.com",
                  "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"},
                  "statusCode": 301}}]},
            {"matches": [prefix("/rewrite")], "backendRefs": to("exact"), "filters": [
                {"type": "URLRewrite", "urlRewrite": {"hostname": "internal.example.com",
                  "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}]},
        ]}),
    )
    .await;
    route(
        &lab,
        "default",
        "missing",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["missing.example.com"],
               "rules": [{"backendRefs": to("nope")}]}),
    )
    .await;
    route(
        &lab,
        "default",
        "shared",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["shared.example.com"],
               "rules": [{"matches": [prefix("/gw")], "backendRefs": to("gwb")}]}),
    )
    .await;
    // One rule of two is invalid (RequestMirror is not supported): the other is served.
    route(
        &lab,
        "default",
        "partial",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["partial.example.com"], "rules": [
            {"matches": [prefix("/kept")], "backendRefs": to("v1")},
            {"matches": [prefix("/mirrored")], "backendRefs": to("v2"), "filters": [
                {"type": "RequestMirror",
                 "requestMirror": {"backendRef": {"name": "v1", "port": 80}}}]},
        ]}),
    )
    .await;
    // The listener allows routes of its own namespace only (From Same, the default).
    route(
        &lab,
        "other",
        "foreign",
        json!({"parentRefs": [{"name": "gw", "namespace": "default"}],
               "hostnames": ["foreign.example.com"], "rules": [{"backendRefs": to("v1")}]}),
    )
    .await;

    // Served once the CRDs appeared.
    until_body(&lab, "split.example.com", "/", "v").await;

    // A 3:1 split over 400 requests.
    let (v1_before, v2_before) = (hits("v1"), hits("v2"));
    for _ in 0..400 {
        let (status, _) = lab.get("split.example.com", "/s").await;
        assert_eq!(status, StatusCode::OK);
    }
    let (v1, v2) = (hits("v1") - v1_before, hits("v2") - v2_before);
    assert_eq!(v1 + v2, 400);
    assert!((270..=330).contains(&v1), "v1 {v1}, v2 {v2}: not 3:1");

    // Matches and their precedence.
    until_body(&lab, "match.example.com", "/exact", "exact /exact").await;
    let req = |m: &'static str, p: &'static str, h: &'static [(&'static str, &'static str)]| {
        lab.request(m, "match.example.com", p, h)
    };
    let who = |r: (StatusCode, http::HeaderMap, String)| {
        r.2.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(who(req("GET", "/exact", &[]).await), "exact");
    assert_eq!(
        who(req("GET", "/exact/x", &[]).await),
        "default",
        "Exact only: 404"
    );
    assert_eq!(who(req("GET", "/api/x", &[]).await), "prefix");
    assert_eq!(
        who(req("GET", "/apix", &[]).await),
        "default",
        "element-wise prefix: 404"
    );
    assert_eq!(
        who(req("GET", "/api/x", &[("x-version", "2")]).await),
        "header"
    );
    assert_eq!(who(req("GET", "/api/x?v=3", &[]).await), "query");
    assert_eq!(
        who(req("GET", "/api/x?v=3", &[("x-version", "2")]).await),
        "header",
        "headers before query"
    );
    assert_eq!(
        who(req("POST", "/api/x", &[("x-version", "2")]).await),
        "method",
        "method before headers"
    );
    assert_eq!(who(req("GET", "/re/42", &[]).await), "regex");
    assert_eq!(req("GET", "/re/x", &[]).await.0, StatusCode::NOT_FOUND);

    // Filters.
    let (status, headers, body) = lab
        .request(
            "GET",
            "filters.example.com",
            "/headers",
            &[
                ("x-gw-add", "orig"),
                ("x-gw-remove", "gone"),
                ("x-gw-set", "old"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("x-gw-add=orig,two"), "{body}");
    assert!(body.contains("x-gw-set=one"), "{body}");
    assert!(!body.contains("x-gw-remove"), "{body}");
    assert_eq!(headers.get("x-gw-resp").unwrap(), "yes");
    let (status, headers, _) = lab
        .request("GET", "filters.example.com", "/old/page?q=1", &[])
        .await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        headers.get("location").unwrap().to_str().unwrap(),
        format!("http://new.example.com:{port}/new/page?q=1")
    );
    let body = lab.get("filters.example.com", "/rewrite/thing").await.1;
    assert!(body.starts_with("exact /v2/thing "), "{body}");
    assert!(body.contains("host=internal.example.com"), "{body}");

    // A missing Service: 500 and BackendNotFound.
    assert_eq!(
        lab.get("missing.example.com", "/").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // Gateway routes first for a host both name; the rest of the host is the Ingress's.
    assert!(
        lab.get("shared.example.com", "/gw/a")
            .await
            .1
            .starts_with("gwb ")
    );
    assert!(
        lab.get("shared.example.com", "/else")
            .await
            .1
            .starts_with("ing ")
    );
    // PartiallyInvalid: the valid rule served, the dropped one not.
    until_body(&lab, "partial.example.com", "/kept", "v1 /kept").await;
    assert_eq!(
        lab.get("partial.example.com", "/mirrored").await.0,
        StatusCode::NOT_FOUND
    );
    // Not attached: served by nothing.
    assert_eq!(
        lab.get("foreign.example.com", "/").await.0,
        StatusCode::NOT_FOUND
    );

    // Statuses.
    let accepted = ["Accepted=True Accepted", "ResolvedRefs=True ResolvedRefs"];
    for name in ["split", "match", "filters", "shared"] {
        eventually(&format!("route {name} accepted"), || async {
            (route_conditions(&lab, "default", name).await? == accepted).then_some(())
        })
        .await;
    }
    eventually("BackendNotFound", || async {
        let c = route_conditions(&lab, "default", "missing").await?;
        (c == [
            "Accepted=True Accepted",
            "ResolvedRefs=False BackendNotFound",
        ])
        .then_some(())
    })
    .await;
    eventually("PartiallyInvalid", || async {
        let c = route_conditions(&lab, "default", "partial").await?;
        (c == [
            "Accepted=True Accepted",
            "ResolvedRefs=True ResolvedRefs",
            "PartiallyInvalid=True UnsupportedValue",
        ])
        .then_some(())
    })
    .await;
    eventually("NotAllowedByListeners", || async {
        let c = route_conditions(&lab, "other", "foreign").await?;
        (c[0] == "Accepted=False NotAllowedByListeners").then_some(())
    })
    .await;
    let class = eventually("GatewayClass accepted", || async {
        let c = Api::<GatewayClass>::all(lab.client.clone())
            .get("rkube")
            .await
            .ok()?;
        let s = summary(&c.status?.conditions);
        s.contains(&"Accepted=True Accepted".to_string())
            .then_some(s)
    })
    .await;
    assert_eq!(class, ["Accepted=True Accepted"]);
    let gw = eventually("Gateway programmed", || async {
        let g = Api::<Gateway>::namespaced(lab.client.clone(), "default")
            .get("gw")
            .await
            .ok()?;
        let s = g.status?;
        let http = s.listeners.iter().find(|l| l.name == "http")?;
        (http.attached_routes == 6
            && summary(&s.conditions).contains(&"Programmed=True Programmed".to_string()))
        .then_some(s)
    })
    .await;
    assert_eq!(
        summary(&gw.conditions),
        [
            "Accepted=True ListenersNotValid",
            "Programmed=True Programmed"
        ]
    );
    assert_eq!(gw.addresses.len(), 1);
    assert_eq!(gw.addresses[0].value, "127.0.0.1");
    assert_eq!(gw.addresses[0].type_.as_deref(), Some("IPAddress"));
    let http = &gw.listeners[0];
    assert_eq!(
        summary(&http.conditions),
        [
            "Accepted=True Accepted",
            "Programmed=True Programmed",
            "ResolvedRefs=True ResolvedRefs",
            "Conflicted=False NoConflicts"
        ]
    );
    assert_eq!(http.supported_kinds[0].kind, "HTTPRoute");
    let elsewhere = &gw.listeners[1];
    assert_eq!(
        summary(&elsewhere.conditions)[0],
        "Accepted=False PortUnavailable"
    );
    assert!(
        gw.conditions
            .iter()
            .all(|c| c.observed_generation == Some(1))
    );
    // kubectl's columns.
    let table = lab.cluster.ok(&["get", "gateways"]).await;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["gw", "rkube", "127.0.0.1", "True"], "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listeners_terminate_tls_with_their_secret_by_sni() {
    let lab = Lab::start().await;
    let web = Backend::start("web").await;
    lab.service_for("web", &[&web]).await;
    install_crds(&lab).await;
    let ca = TestCa::new();
    let (crt, key) = ca.leaf(&["secure.gw.example.com"]);
    lab.tls_secret("gw-tls", &crt, &key).await;
    class_and_gateway(
        &lab,
        json!([
            {"name": "https", "port": lab.https.port(), "protocol": "HTTPS",
             "hostname": "secure.gw.example.com",
             "tls": {"mode": "Terminate", "certificateRefs": [{"name": "gw-tls"}]}},
            {"name": "broken", "port": lab.https.port(), "protocol": "HTTPS",
             "hostname": "broken.gw.example.com",
             "tls": {"certificateRefs": [{"name": "no-such-secret"}]}},
        ]),
    )
    .await;
    route(
        &lab,
        "default",
        "web",
        json!({"parentRefs": [{"name": "gw", "sectionName": "https"}],
               "rules": [{"backendRefs": to("web")}]}),
    )
    .await;
    // The certificate may be served before the route is (the Gateway came first): 404.
    let r = eventually("HTTPS with the listener's certificate", || async {
        let r = ca
            .get(lab.https, "secure.gw.example.com", "/x", true)
            .await
            .ok()?;
        (r.0 == StatusCode::OK).then_some(r)
    })
    .await;
    assert!(
        r.1.starts_with("web /x") && r.1.contains("proto=https"),
        "{}",
        r.1
    );
    // Only on the HTTPS port: the plain one has no route for it.
    assert_eq!(
        lab.get("secure.gw.example.com", "/x").await.0,
        StatusCode::NOT_FOUND
    );
    let gw = eventually("listener statuses", || async {
        let g = Api::<Gateway>::namespaced(lab.client.clone(), "default")
            .get("gw")
            .await
            .ok()?;
        let s = g.status?;
        (s.listeners.len() == 2 && s.listeners[0].attached_routes == 1).then_some(s)
    })
    .await;
    assert_eq!(
        summary(&gw.listeners[1].conditions)[1..3],
        [
            "Programmed=False Invalid",
            "ResolvedRefs=False InvalidCertificateRef"
        ]
    );
}

/// Two nodes (controllers on 127.0.0.1 and 127.0.0.2, same ports) publish both addresses
/// and settle on one status: no write loop between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_agree_on_the_statuses() {
    let lab = Lab::start().await;
    let web = Backend::start("web").await;
    lab.service_for("web", &[&web]).await;
    let mut cfg = ingress::IngressConfig::new("node-2", vec!["127.0.0.2".parse().unwrap()]);
    cfg.http_addr = Some(format!("127.0.0.2:{}", lab.http.port()).parse().unwrap());
    cfg.https_addr = Some(format!("127.0.0.2:{}", lab.https.port()).parse().unwrap());
    cfg.manage_class = false;
    let second = ingress::start(lab.client.clone(), cfg).await.unwrap();
    install_crds(&lab).await;
    class_and_gateway(
        &lab,
        json!([{"name": "http", "port": lab.http.port(), "protocol": "HTTP"}]),
    )
    .await;
    route(
        &lab,
        "default",
        "web",
        json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": to("web")}]}),
    )
    .await;
    until_body(&lab, "any.example.com", "/", "web /").await;
    // The second node serves it too.
    let (status, body) = eventually("the second node serving", || async {
        let tcp = tokio::net::TcpStream::connect(second.http_addr?)
            .await
            .ok()?;
        let (mut s, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .ok()?;
        tokio::spawn(conn);
        let req = http::Request::get("/two")
            .header("host", "any.example.com")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = s.send_request(req).await.ok()?;
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .ok()?;
        let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
        (status == StatusCode::OK).then_some((status, body))
    })
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("web /two"), "{body}");
    let gateways = Api::<Gateway>::namespaced(lab.client.clone(), "default");
    let routes = Api::<HTTPRoute>::namespaced(lab.client.clone(), "default");
    eventually("both nodes' addresses", || async {
        let s = gateways.get("gw").await.ok()?.status?;
        let values: Vec<String> = s.addresses.iter().map(|a| a.value.clone()).collect();
        (values == ["127.0.0.1", "127.0.0.2"]
            && s.listeners.first().is_some_and(|l| l.attached_routes == 1))
        .then_some(())
    })
    .await;
    eventually("the route accepted", || async {
        let c = route_conditions(&lab, "default", "web").await?;
        (c == ["Accepted=True Accepted", "ResolvedRefs=True ResolvedRefs"]).then_some(())
    })
    .await;
    // Settled: no more writes from either node.
    let versions = || async {
        (
            gateways.get("gw").await.unwrap().metadata.resource_version,
            routes.get("web").await.unwrap().metadata.resource_version,
        )
    };
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        versions().await,
        before,
        "the statuses keep being rewritten"
    );
    let r = routes.get("web").await.unwrap();
    assert_eq!(
        r.status.unwrap().parents.len(),
        1,
        "one entry for both nodes"
    );
}

/// GRPCRoutes: method matches (service and method, service only), header modifiers and a
/// weighted split, over HTTP/2 with prior knowledge to backends whose Services say nothing
/// of their protocol (the route kind implies HTTP/2). The backends are the lab's HTTP/2
/// servers, not gRPC servers: they answer any path with its name and a `grpc-status: 0`
/// trailer, which is what the routing needs to show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_grpc_routes_over_h2c() {
    let lab = Lab::start().await;
    let mut backends = Vec::new();
    for n in ["rpc-a", "rpc-b", "rpc-c"] {
        let b = Backend::start(n).await;
        lab.service_for(n, &[&b]).await;
        backends.push(b);
    }
    install_crds(&lab).await;
    let port = lab.http.port();
    class_and_gateway(
        &lab,
        json!([{"name": "http", "port": port, "protocol": "HTTP"}]),
    )
    .await;
    apply(
        &lab,
        "grpcroute",
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"name": "echo", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.example.com"],
          "rules": [
            {"matches": [{"method": {"service": "demo.Echo", "method": "Say"}}],
             "backendRefs": to("rpc-a"),
             "filters": [
               {"type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "X-Gw-Rpc", "value": "set"}]}},
               {"type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"add": [{"name": "X-Gw-Resp", "value": "rpc"}]}}]},
            {"matches": [{"method": {"service": "demo.Echo"}}], "backendRefs": to("rpc-b")},
            {"matches": [{"method": {"service": "demo.Split"},
                          "headers": [{"name": "X-Tenant", "value": "t1"}]}],
             "backendRefs": [{"name": "rpc-a", "port": 80, "weight": 1},
                             {"name": "rpc-c", "port": 80, "weight": 1}]},
          ]}}),
    )
    .await;
    let call = |path: &'static str, headers: &'static [(&'static str, &'static str)]| {
        h2c_call(lab.http, "grpc.example.com", path, headers)
    };
    let (status, headers, body, trailers) = eventually("the GRPCRoute served", || async {
        let r = call("/demo.Echo/Say", &[("x-gw-rpc", "client")]).await;
        r.2.starts_with("rpc-a ").then_some(r)
    })
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("rpc-a /demo.Echo/Say "), "{body}");
    assert!(body.contains("version=HTTP/2.0"), "{body}");
    assert!(body.contains("x-gw-rpc=set"), "{body}");
    assert_eq!(headers.get("x-gw-resp").unwrap(), "rpc");
    assert_eq!(
        trailers.unwrap().get("grpc-status").unwrap(),
        "0",
        "the trailer passes through"
    );
    let who = |b: &str| b.split_whitespace().next().unwrap_or_default().to_string();
    assert_eq!(who(&call("/demo.Echo/Shout", &[]).await.2), "rpc-b");
    assert_eq!(
        grpc_status(call("/other.Svc/Say", &[]).await).as_deref(),
        Some("12"),
        "no rule matches: UNIMPLEMENTED"
    );
    assert_eq!(
        grpc_status(call("/demo.Split/Go", &[]).await).as_deref(),
        Some("12"),
        "the header match is missing"
    );
    assert_eq!(
        grpc_status(h2c_call(lab.http, "no.route.example", "/demo.Echo/Say", &[]).await).as_deref(),
        Some("12"),
        "no route for the host at all"
    );
    // GRPCRoutes match gRPC requests only: plain HTTP gets the default backend's 404.
    assert_eq!(
        lab.get("grpc.example.com", "/demo.Echo/Say").await,
        (StatusCode::NOT_FOUND, "default backend - 404\n".to_string())
    );

    let conds = eventually("the GRPCRoute accepted", || async {
        grpc_route_conditions(&lab, "default", "echo").await
    })
    .await;
    assert_eq!(
        conds,
        ["Accepted=True Accepted", "ResolvedRefs=True ResolvedRefs"]
    );
    let gw = eventually("the listener's kinds and routes", || async {
        let g = Api::<Gateway>::namespaced(lab.client.clone(), "default")
            .get("gw")
            .await
            .ok()?;
        let s = g.status?;
        (s.listeners.first()?.attached_routes == 1).then_some(s)
    })
    .await;
    let kinds: Vec<&str> = gw.listeners[0]
        .supported_kinds
        .iter()
        .map(|k| k.kind.as_str())
        .collect();
    assert_eq!(kinds, ["HTTPRoute", "GRPCRoute"]);
    // Once the statuses are written (no more rebuilds resetting the rule's counter).
    let (mut a, mut c) = (0, 0);
    for _ in 0..20 {
        match who(&call("/demo.Split/Go", &[("x-tenant", "t1")]).await.2).as_str() {
            "rpc-a" => a += 1,
            "rpc-c" => c += 1,
            other => panic!("{other}"),
        }
    }
    assert!(
        (9..=11).contains(&a) && a + c == 20,
        "1:1 weights: {a} and {c}"
    );

    // A backendRef to a missing Service, and a Service without endpoints: UNAVAILABLE.
    lab.service("rpc-empty", None).await;
    apply(
        &lab,
        "grpcroute-broken",
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"name": "broken", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["broken.example.com"],
          "rules": [
            {"matches": [{"method": {"service": "demo.Missing"}}],
             "backendRefs": to("rpc-missing")},
            {"matches": [{"method": {"service": "demo.Empty"}}],
             "backendRefs": to("rpc-empty")},
          ]}}),
    )
    .await;
    let broken = |path: &'static str| h2c_call(lab.http, "broken.example.com", path, &[]);
    let missing = eventually("the broken GRPCRoute served", || async {
        let r = broken("/demo.Missing/Get").await;
        (grpc_status(r.clone()).as_deref() == Some("14")).then_some(r)
    })
    .await;
    let (status, headers, body, trailers) = missing;
    assert_eq!(status, StatusCode::OK, "trailers-only");
    assert_eq!(headers.get("content-type").unwrap(), "application/grpc");
    assert_eq!(headers.get("grpc-message").unwrap(), "no valid backend");
    assert!(
        body.is_empty() && trailers.is_none(),
        "{body:?} {trailers:?}"
    );
    let empty = broken("/demo.Empty/Get").await;
    assert_eq!(grpc_status(empty.clone()).as_deref(), Some("14"));
    assert_eq!(empty.1.get("grpc-message").unwrap(), "no ready endpoints");
    let conds = eventually("the broken GRPCRoute's status", || async {
        grpc_route_conditions(&lab, "default", "broken").await
    })
    .await;
    assert_eq!(
        conds,
        [
            "Accepted=True Accepted",
            "ResolvedRefs=False BackendNotFound"
        ]
    );
}

/// The `grpc-status` of a trailers-only response (200, no body, the status in the headers).
fn grpc_status(
    (status, headers, body, trailers): (
        StatusCode,
        http::HeaderMap,
        String,
        Option<http::HeaderMap>,
    ),
) -> Option<String> {
    (status == StatusCode::OK && body.is_empty() && trailers.is_none()).then_some(())?;
    Some(headers.get("grpc-status")?.to_str().ok()?.to_string())
}
