use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::backend::HealthRegistry;
use crate::gateway::table::{Pick, Request};

fn obj<T: DeserializeOwned>(v: Value) -> Arc<T> {
    match serde_json::from_value(v) {
        Ok(o) => Arc::new(o),
        Err(e) => panic!("bad test object: {e}"),
    }
}

fn route(ns: &str, name: &str, created: &str, spec: Value) -> Arc<HTTPRoute> {
    obj(
        json!({"metadata": {"namespace": ns, "name": name, "creationTimestamp": created,
                            "generation": 1}, "spec": spec}),
    )
}

struct World {
    services: Vec<Arc<Service>>,
    slices: Vec<Arc<EndpointSlice>>,
    classes: Vec<Arc<GatewayClass>>,
    gateways: Vec<Arc<Gateway>>,
    routes: Vec<Arc<HTTPRoute>>,
    grpc_routes: Vec<Arc<GRPCRoute>>,
    grants: Vec<Arc<ReferenceGrant>>,
    health: HealthRegistry,
}

impl World {
    fn new() -> World {
        let svc = |ns: &str, n: &str| -> Arc<Service> {
            obj(json!({"metadata": {"namespace": ns, "name": n},
                       "spec": {"ports": [{"name": "http", "port": 80}]}}))
        };
        let slice = |ns: &str, n: &str, ip: &str| -> Arc<EndpointSlice> {
            obj(json!({"metadata": {"namespace": ns, "name": n,
                                    "labels": {"kubernetes.io/service-name": n}},
                       "addressType": "IPv4",
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                       "endpoints": [{"addresses": [ip]}]}))
        };
        World {
            services: vec![svc("default", "a"), svc("default", "b"), svc("other", "c")],
            slices: vec![
                slice("default", "a", "10.0.0.1"),
                slice("default", "b", "10.0.0.2"),
                slice("other", "c", "10.0.0.3"),
            ],
            classes: vec![
                obj(json!({"metadata": {"name": "rkube", "generation": 1},
                           "spec": {"controllerName": "rkube.io/gateway-controller"}})),
                obj(json!({"metadata": {"name": "theirs"},
                           "spec": {"controllerName": "example.com/gw"}})),
            ],
            gateways: vec![obj(json!({
            "metadata": {"namespace": "default", "name": "gw", "generation": 2},
            "spec": {"gatewayClassName": "rkube", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"},
                {"name": "wild", "port": 80, "protocol": "HTTP", "hostname": "*.example.com",
                 "allowedRoutes": {"namespaces": {"from": "All"}}},
                {"name": "elsewhere", "port": 8080, "protocol": "HTTP"},
                {"name": "tcp", "port": 80, "protocol": "TCP"},
            ]}}))],
            routes: Vec::new(),
            grpc_routes: Vec::new(),
            grants: Vec::new(),
            health: HealthRegistry::new(3, Duration::from_secs(10)),
        }
    }

    fn build(&self) -> Built {
        let mut r = Resolver::new(&self.services, &self.slices, &[], &self.health);
        let mut certs = CertTable::new(None);
        let mut cache = CertCache::default();
        let routes = RouteLists {
            http: self.routes.clone(),
            grpc: self.grpc_routes.clone(),
        };
        build(
            Inputs {
                classes: &self.classes,
                gateways: &self.gateways,
                routes: &routes,
                grants: &self.grants,
                namespaces: &[],
                controller: "rkube.io/gateway-controller",
                http_port: Some(80),
                https_port: Some(443),
                has_addresses: true,
            },
            &mut r,
            &mut certs,
            &mut cache,
        )
    }
}

fn grpc_route(ns: &str, name: &str, created: &str, spec: Value) -> Arc<GRPCRoute> {
    obj(
        json!({"metadata": {"namespace": ns, "name": name, "creationTimestamp": created,
                            "generation": 1}, "spec": spec}),
    )
}

fn conds(c: &[Cond]) -> Vec<String> {
    c.iter()
        .map(|c| format!("{}={} {}", c.type_, c.status, c.reason))
        .collect()
}

fn route_conds(b: &Built, key: &str) -> Vec<Vec<String>> {
    let (_, parents) = b
        .status
        .routes
        .iter()
        .chain(&b.status.grpc_routes)
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no status for {key}"));
    parents.iter().map(|(_, c)| conds(c)).collect()
}

fn backend_of(
    b: &Built,
    host: &str,
    method: Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<String> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let found = b.table.lookup(
        false,
        &Request {
            host,
            method: &method,
            path,
            query,
            headers,
        },
    )?;
    Some(match found.action.pick() {
        Pick::Backend(b) => b.name.clone(),
        Pick::Invalid => "500".into(),
    })
}

#[test]
fn classes_gateways_and_listeners() {
    let w = World::new();
    let b = w.build();
    assert_eq!(b.status.classes.len(), 1, "only our class");
    assert_eq!(conds(&b.status.classes[0].1), ["Accepted=true Accepted"]);
    let (key, gw, listeners) = &b.status.gateways[0];
    assert_eq!(key, "default/gw");
    assert_eq!(
        conds(gw),
        [
            "Accepted=true ListenersNotValid",
            "Programmed=true Programmed"
        ]
    );
    let l = |name: &str| {
        listeners
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(
        conds(&l("http").conditions),
        [
            "Accepted=true Accepted",
            "Programmed=true Programmed",
            "ResolvedRefs=true ResolvedRefs",
            "Conflicted=false NoConflicts"
        ]
    );
    let kinds: Vec<&str> = l("http")
        .supported_kinds
        .iter()
        .map(|k| k.kind.as_str())
        .collect();
    assert_eq!(kinds, ["HTTPRoute", "GRPCRoute"], "both by default");
    assert_eq!(
        conds(&l("elsewhere").conditions)[..2],
        ["Accepted=false PortUnavailable", "Programmed=false Invalid"]
    );
    assert_eq!(
        conds(&l("tcp").conditions)[0],
        "Accepted=false UnsupportedProtocol"
    );
    assert!(l("tcp").supported_kinds.is_empty());
}

#[test]
fn routes_attach_match_in_order_and_report_their_references() {
    let mut w = World::new();
    let backend = |svc: &str| json!({"name": svc, "port": 80});
    w.routes = vec![
        // Attaches to "http" and "wild"; its hostnames narrow "wild".
        route(
            "default",
            "older",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw"}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/x"}}],
                       "backendRefs": [backend("a")]}]}),
        ),
        // Same match, younger: loses the tie.
        route(
            "default",
            "younger",
            "2026-02-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw", "sectionName": "http"}],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/x"}}],
                 "backendRefs": [backend("b")]},
                {"matches": [{"path": {"type": "Exact", "value": "/x/exact"}}],
                 "backendRefs": [backend("b")]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/gone"}}],
                 "backendRefs": [backend("missing")]},
            ]}),
        ),
        // Another namespace: "http" allows Same only, "wild" All.
        route(
            "other",
            "cross",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw", "namespace": "default", "sectionName": "http"},
                           {"name": "gw", "namespace": "default", "sectionName": "wild"},
                           {"name": "gw", "namespace": "default", "sectionName": "nope"}],
            "hostnames": ["c.example.com"],
            "rules": [{"backendRefs": [backend("c"), {"name": "a", "namespace": "default", "port": 80}]}]}),
        ),
        route(
            "default",
            "wrong-host",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw", "sectionName": "wild"}],
            "hostnames": ["example.org"],
            "rules": [{"backendRefs": [backend("a")]}]}),
        ),
        route(
            "default",
            "bad-kind",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw", "sectionName": "http"}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/kind"}}],
                       "backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "b"}]}]}),
        ),
    ];
    let b = w.build();
    let none = HeaderMap::new();
    let at = |host: &str, path: &str| backend_of(&b, host, Method::GET, path, &none);
    assert_eq!(
        at("h", "/x/1").as_deref(),
        Some("default/a:80"),
        "the older route wins"
    );
    assert_eq!(
        at("h", "/x/exact").as_deref(),
        Some("default/b:80"),
        "Exact first"
    );
    assert_eq!(
        at("h", "/gone").as_deref(),
        Some("500"),
        "an invalid backendRef"
    );
    assert_eq!(at("h", "/kind").as_deref(), Some("500"));
    assert_eq!(
        at("h", "/other"),
        None,
        "no Gateway rule: the Ingress table's turn"
    );
    // c.example.com: the "wild" listener (most specific), where "cross" attached.
    assert_eq!(at("c.example.com", "/").as_deref(), Some("other/c:80"));
    assert_eq!(
        at("c.example.com", "/").as_deref(),
        Some("500"),
        "the ungranted half"
    );
    assert_eq!(
        at("d.example.com", "/x"),
        Some("default/a:80".into()),
        "older's hostname is the listener's"
    );

    assert_eq!(
        route_conds(&b, "default/older"),
        [["Accepted=true Accepted", "ResolvedRefs=true ResolvedRefs"]]
    );
    assert_eq!(
        route_conds(&b, "default/younger")[0],
        [
            "Accepted=true Accepted",
            "ResolvedRefs=false BackendNotFound"
        ]
    );
    assert_eq!(
        route_conds(&b, "other/cross"),
        [
            [
                "Accepted=false NotAllowedByListeners",
                "ResolvedRefs=false RefNotPermitted"
            ],
            [
                "Accepted=true Accepted",
                "ResolvedRefs=false RefNotPermitted"
            ],
            [
                "Accepted=false NoMatchingParent",
                "ResolvedRefs=false RefNotPermitted"
            ],
        ]
    );
    assert_eq!(
        route_conds(&b, "default/wrong-host")[0][0],
        "Accepted=false NoMatchingListenerHostname"
    );
    assert_eq!(
        route_conds(&b, "default/bad-kind")[0][1],
        "ResolvedRefs=false InvalidKind"
    );
    let attached: Vec<(String, i32)> = b.status.gateways[0]
        .2
        .iter()
        .map(|l| (l.name.clone(), l.attached))
        .collect();
    assert_eq!(
        attached,
        [
            ("http".into(), 3),
            ("wild".into(), 2),
            ("elsewhere".into(), 0),
            ("tcp".into(), 0)
        ]
    );

    // A ReferenceGrant makes the cross-namespace backendRef valid.
    w.grants = vec![obj(
        json!({"metadata": {"namespace": "default", "name": "g"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "other"}],
                 "to": [{"group": "", "kind": "Service"}]}}),
    )];
    let b = w.build();
    assert_eq!(
        route_conds(&b, "other/cross")[1][1],
        "ResolvedRefs=true ResolvedRefs"
    );
}

#[test]
fn unsupported_filters_and_values_are_not_accepted() {
    let mut w = World::new();
    w.routes = vec![
        route(
            "default",
            "mirror",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw", "sectionName": "http"}],
            "rules": [{"filters": [{"type": "RequestMirror", "requestMirror": {}}],
                       "backendRefs": [{"name": "a", "port": 80}]}]}),
        ),
        route(
            "default",
            "both",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw", "sectionName": "http"}],
            "rules": [{"filters": [
                {"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}},
                {"type": "URLRewrite", "urlRewrite": {"hostname": "x"}}]}]}),
        ),
    ];
    let b = w.build();
    assert_eq!(
        route_conds(&b, "default/mirror")[0][0],
        "Accepted=false UnsupportedValue"
    );
    assert_eq!(
        route_conds(&b, "default/both")[0][0],
        "Accepted=false IncompatibleFilters"
    );
    assert!(b.table.is_empty());
}

/// Upstream's `PartiallyInvalid` ("Drop Rule(s)"): the valid rules are served, the route
/// stays accepted and the condition names what was dropped; a bad backendRef is not a bad
/// rule (its share gets 500, `ResolvedRefs=False`).
#[test]
fn invalid_rules_are_dropped_and_the_rest_served() {
    let mut w = World::new();
    w.routes = vec![
        route(
            "default",
            "partial",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw", "sectionName": "http"}],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/ok"}}],
                 "backendRefs": [{"name": "a", "port": 80}]},
                // Dropped; its missing Service does not make ResolvedRefs false.
                {"matches": [{"path": {"type": "PathPrefix", "value": "/mirror"}}],
                 "filters": [{"type": "RequestMirror", "requestMirror": {}}],
                 "backendRefs": [{"name": "missing", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/both"}}],
                 "filters": [
                    {"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}},
                    {"type": "URLRewrite", "urlRewrite": {"hostname": "x"}}]},
            ]}),
        ),
        route(
            "default",
            "bad-kind",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw", "sectionName": "http"}],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/kind"}}],
                 "backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "b"}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/fine"}}],
                 "backendRefs": [{"name": "b", "port": 80}]},
            ]}),
        ),
    ];
    let b = w.build();
    let none = HeaderMap::new();
    let at = |path: &str| backend_of(&b, "h", Method::GET, path, &none);
    assert_eq!(at("/ok/1").as_deref(), Some("default/a:80"));
    assert_eq!(at("/mirror"), None, "a dropped rule is not served");
    assert_eq!(at("/both"), None, "a dropped rule is not served");
    assert_eq!(at("/fine").as_deref(), Some("default/b:80"));
    assert_eq!(at("/kind").as_deref(), Some("500"));
    assert_eq!(
        route_conds(&b, "default/partial"),
        [[
            "Accepted=true Accepted",
            "ResolvedRefs=true ResolvedRefs",
            "PartiallyInvalid=true UnsupportedValue"
        ]]
    );
    let (_, parents) = b
        .status
        .routes
        .iter()
        .find(|(k, _)| k == "default/partial")
        .unwrap_or_else(|| panic!("no status"));
    let msg = &parents[0].1[2].message;
    assert!(msg.starts_with("Dropped Rule 1: "), "{msg}");
    assert!(msg.contains("RequestMirror"), "{msg}");
    assert!(msg.contains("; Dropped Rule 2: "), "{msg}");
    assert_eq!(
        route_conds(&b, "default/bad-kind"),
        [["Accepted=true Accepted", "ResolvedRefs=false InvalidKind"]],
        "no PartiallyInvalid for an invalid backendRef"
    );
    let http = &b.status.gateways[0].2[0];
    assert_eq!((http.name.as_str(), http.attached), ("http", 2));
}

/// A gRPC call as the table sees it: POST `/<service>/<method>` on `host`; the backend's
/// name and whether it is spoken to over HTTP/2 cleartext.
fn grpc_call(b: &Built, host: &str, path: &str) -> Option<(String, bool)> {
    post(b, host, path, Some("application/grpc"))
}

/// A POST with `content-type` (`None`: without), as the table sees it.
fn post(b: &Built, host: &str, path: &str, content_type: Option<&str>) -> Option<(String, bool)> {
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert(
            http::header::CONTENT_TYPE,
            ct.parse().unwrap_or_else(|e| panic!("{e:?}")),
        );
    }
    let found = b.table.lookup(
        false,
        &Request {
            host,
            method: &Method::POST,
            path,
            query: None,
            headers: &headers,
        },
    )?;
    Some(match found.action.pick() {
        Pick::Backend(b) => (b.name.clone(), b.protocol == crate::backend::Protocol::H2c),
        Pick::Invalid => ("500".into(), false),
    })
}

#[test]
fn grpc_routes_match_services_and_methods_over_h2c() {
    let mut w = World::new();
    w.gateways.push(obj(json!({
    "metadata": {"namespace": "default", "name": "grpc-gw", "generation": 1},
    "spec": {"gatewayClassName": "rkube", "listeners": [
        {"name": "grpc-only", "port": 80, "protocol": "HTTP", "hostname": "grpc.example.org",
         "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}]}},
    ]}})));
    w.grpc_routes = vec![
        grpc_route(
            "default",
            "echo",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "gw", "sectionName": "http"}],
            "hostnames": ["grpc.example.com"],
            "rules": [
                {"matches": [{"method": {"service": "foo.Echo", "method": "Say"}}],
                 "backendRefs": [{"name": "a", "port": 80}]},
                {"matches": [{"method": {"type": "Exact", "service": "foo.Echo"}}],
                 "backendRefs": [{"name": "b", "port": 80}]},
                {"matches": [{"method": {"type": "RegularExpression", "service": "bar\\..*",
                                         "method": "Get.*"}}],
                 "backendRefs": [{"name": "c", "namespace": "other", "port": 80}]},
                {"matches": [{"method": {"service": "foo.Mirror"}}],
                 "filters": [{"type": "RequestMirror",
                              "requestMirror": {"backendRef": {"name": "a", "port": 80}}}],
                 "backendRefs": [{"name": "a", "port": 80}]},
                {"matches": [{"method": {"service": "foo.Missing"}}],
                 "backendRefs": [{"name": "missing", "port": 80}]},
            ]}),
        ),
        grpc_route(
            "default",
            "only",
            "2026-01-01T00:00:00Z",
            json!({
            "parentRefs": [{"name": "grpc-gw"}],
            "rules": [{"backendRefs": [{"name": "a", "port": 80}]}]}),
        ),
    ];
    w.routes = vec![route(
        "default",
        "http-on-grpc-only",
        "2026-01-01T00:00:00Z",
        json!({
        "parentRefs": [{"name": "grpc-gw"}],
        "rules": [{"backendRefs": [{"name": "a", "port": 80}]}]}),
    )];
    let b = w.build();
    let call = |host: &str, path: &str| grpc_call(&b, host, path);
    let h2c = |svc: &str| Some((svc.to_string(), true));
    assert_eq!(
        call("grpc.example.com", "/foo.Echo/Say"),
        h2c("default/a:80")
    );
    assert_eq!(
        call("grpc.example.com", "/foo.Echo/Shout"),
        h2c("default/b:80"),
        "service only"
    );
    assert_eq!(
        call("grpc.example.com", "/bar.Store/GetAll"),
        Some(("500".into(), false)),
        "regex; another namespace's Service without a ReferenceGrant"
    );
    assert_eq!(
        call("grpc.example.com", "/foo.Missing/Get"),
        Some(("500".into(), false)),
        "a missing Service: the proxy answers UNAVAILABLE"
    );
    assert_eq!(call("grpc.example.com", "/bar.Store/Put"), None);
    // GRPCRoute rules match gRPC requests only.
    let grpc_ct = |ct: Option<&str>| post(&b, "grpc.example.com", "/foo.Echo/Say", ct);
    assert_eq!(grpc_ct(Some("application/grpc+proto")), h2c("default/a:80"));
    assert_eq!(grpc_ct(None), None, "no content-type: not gRPC");
    assert_eq!(grpc_ct(Some("application/json")), None);
    assert_eq!(
        post(&b, "grpc.example.org", "/any.Svc/Any", Some("text/plain")),
        None,
        "a listener with GRPCRoutes only: nothing for other requests"
    );
    assert_eq!(call("grpc.example.com", "/foo.Mirror/Say"), None, "dropped");
    assert_eq!(
        call("other.example.com", "/foo.Echo/Say"),
        None,
        "hostnames"
    );
    assert_eq!(
        route_conds(&b, "default/echo"),
        [[
            "Accepted=true Accepted",
            "ResolvedRefs=false RefNotPermitted",
            "PartiallyInvalid=true UnsupportedValue"
        ]]
    );
    // A listener allowing GRPCRoutes only.
    assert_eq!(
        call("grpc.example.org", "/any.Svc/Any"),
        h2c("default/a:80")
    );
    assert_eq!(
        route_conds(&b, "default/only"),
        [["Accepted=true Accepted", "ResolvedRefs=true ResolvedRefs"]]
    );
    assert_eq!(
        route_conds(&b, "default/http-on-grpc-only")[0][0],
        "Accepted=false NotAllowedByListeners"
    );
    let (_, _, listeners) = b
        .status
        .gateways
        .iter()
        .find(|(k, _, _)| k == "default/grpc-gw")
        .unwrap_or_else(|| panic!("no grpc-gw"));
    let kinds: Vec<&str> = listeners[0]
        .supported_kinds
        .iter()
        .map(|k| k.kind.as_str())
        .collect();
    assert_eq!(kinds, ["GRPCRoute"]);
    assert_eq!(listeners[0].attached, 1);
}

/// An HTTPRoute and a GRPCRoute sharing a hostname on one listener: only the older one is
/// accepted there (GRPCRouteSpec.hostnames).
#[test]
fn the_older_of_an_http_and_a_grpc_route_sharing_a_hostname_wins() {
    let mut w = World::new();
    let spec = |host: &str| {
        json!({"parentRefs": [{"name": "gw", "sectionName": "http"}], "hostnames": [host],
               "rules": [{"backendRefs": [{"name": "a", "port": 80}]}]})
    };
    w.routes = vec![
        route(
            "default",
            "web",
            "2026-01-01T00:00:00Z",
            spec("shared.example.com"),
        ),
        route(
            "default",
            "web-late",
            "2026-03-01T00:00:00Z",
            spec("*.late.example.com"),
        ),
    ];
    w.grpc_routes = vec![
        grpc_route(
            "default",
            "rpc",
            "2026-02-01T00:00:00Z",
            spec("*.example.com"),
        ),
        grpc_route(
            "default",
            "rpc-own",
            "2026-02-01T00:00:00Z",
            spec("rpc.example.net"),
        ),
    ];
    let b = w.build();
    assert_eq!(
        route_conds(&b, "default/rpc")[0][0],
        "Accepted=false HostnameConflict",
        "web is older and *.example.com covers shared.example.com"
    );
    assert_eq!(
        route_conds(&b, "default/rpc-own")[0][0],
        "Accepted=true Accepted"
    );
    assert_eq!(
        route_conds(&b, "default/web-late")[0][0],
        "Accepted=true Accepted",
        "rpc was not accepted: nothing to conflict with"
    );
    assert_eq!(
        grpc_call(&b, "x.example.com", "/a.B/C"),
        None,
        "the rejected route is not served"
    );
    assert_eq!(
        grpc_call(&b, "rpc.example.net", "/a.B/C"),
        Some(("default/a:80".into(), true))
    );
}
