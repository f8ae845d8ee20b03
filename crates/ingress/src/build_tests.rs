use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;

fn obj<T: DeserializeOwned>(v: Value) -> Arc<T> {
    match serde_json::from_value(v) {
        Ok(o) => Arc::new(o),
        Err(e) => panic!("bad test object: {e}"),
    }
}

fn service(name: &str, ports: Value) -> Arc<Service> {
    obj(json!({"metadata": {"namespace": "default", "name": name}, "spec": {"ports": ports}}))
}

/// A slice of `svc` with ready endpoints `ips` on slice port `port_name`:`port`.
fn slice(
    svc: &str,
    suffix: &str,
    port_name: &str,
    port: i32,
    ips: &[(&str, bool)],
) -> Arc<EndpointSlice> {
    obj(json!({
        "metadata": {"namespace": "default", "name": format!("{svc}-{suffix}"),
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": ips.iter().map(|(ip, ready)| json!({
            "addresses": [ip], "conditions": {"ready": ready}
        })).collect::<Vec<_>>(),
    }))
}

fn ingress(name: &str, created: &str, spec: Value) -> Arc<Ingress> {
    obj(json!({
        "metadata": {"namespace": "default", "name": name, "creationTimestamp": created},
        "spec": spec,
    }))
}

fn path(p: &str, kind: &str, svc: &str, port: Value) -> Value {
    json!({"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": port}}})
}

struct World {
    services: Vec<Arc<Service>>,
    slices: Vec<Arc<EndpointSlice>>,
    secrets: Vec<Arc<Secret>>,
    health: HealthRegistry,
    cache: CertCache,
}

impl World {
    fn new() -> World {
        let svc = |n: &str| service(n, json!([{"name": "http", "port": 80, "targetPort": 8080}]));
        World {
            services: vec![svc("api"), svc("web"), svc("docs"), svc("empty")],
            slices: vec![
                slice(
                    "api",
                    "a",
                    "http",
                    8081,
                    &[("10.42.0.1", true), ("10.42.0.2", false)],
                ),
                slice("web", "a", "http", 8082, &[("10.42.0.3", true)]),
                slice(
                    "web",
                    "b",
                    "http",
                    8082,
                    &[("10.42.0.4", true), ("10.42.0.3", true)],
                ),
                slice("docs", "a", "http", 8083, &[("10.42.0.5", true)]),
            ],
            secrets: Vec::new(),
            health: HealthRegistry::new(3, Duration::from_secs(10)),
            cache: CertCache::default(),
        }
    }

    fn build(&mut self, ingresses: Vec<Arc<Ingress>>) -> Built {
        build(
            Inputs {
                ingresses,
                services: &self.services,
                slices: &self.slices,
                secrets: &self.secrets,
                default_cert: None,
            },
            &self.health,
            &mut self.cache,
        )
    }
}

/// The backend's name and endpoints for a request.
fn route(b: &Built, host: &str, p: &str) -> Option<(String, Vec<String>)> {
    b.routes.lookup(host, p).map(|be| {
        (
            be.name.clone(),
            be.endpoints.iter().map(|e| e.addr.to_string()).collect(),
        )
    })
}

fn name(b: &Built, host: &str, p: &str) -> Option<String> {
    route(b, host, p).map(|r| r.0)
}

#[test]
fn the_seed_example_routes_by_path_to_ready_target_ports() {
    let mut w = World::new();
    let b = w.build(vec![ingress(
        "site",
        "2024-01-01T00:00:00Z",
        json!({"rules": [{"host": "example.com", "http": {"paths": [
            path("/api", "Prefix", "api", json!({"number": 80})),
            path("/web", "Prefix", "web", json!({"name": "http"})),
            path("/docs", "ImplementationSpecific", "docs", json!({"number": 80})),
        ]}}]}),
    )]);
    assert!(b.problems.is_empty(), "{:?}", b.problems);
    assert_eq!(
        route(&b, "example.com", "/api/v1"),
        Some(("default/api:80".into(), vec!["10.42.0.1:8081".into()])),
        "the not-ready endpoint is left out; the slice's port is the target"
    );
    assert_eq!(
        route(&b, "example.com", "/web"),
        Some((
            "default/web:http".into(),
            vec!["10.42.0.3:8082".into(), "10.42.0.4:8082".into()]
        )),
        "named port; an address in two slices counts once"
    );
    assert_eq!(
        name(&b, "example.com", "/docs/x").as_deref(),
        Some("default/docs:80")
    );
    assert_eq!(name(&b, "example.com", "/apix"), None);
    assert_eq!(name(&b, "other.com", "/api"), None);
}

#[test]
fn exact_beats_prefix_and_longest_wins_across_ingresses() {
    let mut w = World::new();
    let b = w.build(vec![
        ingress(
            "a",
            "2024-01-01T00:00:00Z",
            json!({"rules": [{"http": {"paths": [
                path("/", "Prefix", "web", json!({"number": 80})),
                path("/api", "Exact", "docs", json!({"number": 80})),
            ]}}]}),
        ),
        ingress(
            "b",
            "2024-01-02T00:00:00Z",
            json!({"rules": [{"http": {"paths": [
                path("/api", "Prefix", "api", json!({"number": 80})),
            ]}}]}),
        ),
    ]);
    assert_eq!(name(&b, "h", "/api").as_deref(), Some("default/docs:80"));
    assert_eq!(name(&b, "h", "/api/").as_deref(), Some("default/api:80"));
    assert_eq!(name(&b, "h", "/api/x").as_deref(), Some("default/api:80"));
    assert_eq!(name(&b, "h", "/x").as_deref(), Some("default/web:80"));
}

#[test]
fn the_oldest_ingress_wins_a_conflicting_path_and_the_default_backend() {
    let mut w = World::new();
    let newer = ingress(
        "newer",
        "2024-02-01T00:00:00Z",
        json!({"defaultBackend": {"service": {"name": "docs", "port": {"number": 80}}},
               "rules": [{"host": "h", "http": {"paths": [path("/", "Prefix", "api", json!({"number": 80}))]}}]}),
    );
    let older = ingress(
        "older",
        "2024-01-01T00:00:00Z",
        json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
               "rules": [{"host": "h", "http": {"paths": [path("/", "Prefix", "web", json!({"number": 80}))]}}]}),
    );
    let b = w.build(vec![newer, older]);
    assert_eq!(name(&b, "h", "/").as_deref(), Some("default/web:80"));
    assert_eq!(
        name(&b, "unknown", "/").as_deref(),
        Some("default/web:80"),
        "default backend"
    );
}

#[test]
fn wildcard_hosts_match_one_label() {
    let mut w = World::new();
    let b = w.build(vec![ingress(
        "w",
        "2024-01-01T00:00:00Z",
        json!({"rules": [
            {"host": "*.example.com", "http": {"paths": [path("/", "Prefix", "web", json!({"number": 80}))]}},
            {"host": "exact.example.com", "http": {"paths": [path("/", "Prefix", "api", json!({"number": 80}))]}},
        ]}),
    )]);
    assert_eq!(
        name(&b, "exact.example.com", "/").as_deref(),
        Some("default/api:80")
    );
    assert_eq!(
        name(&b, "foo.example.com", "/").as_deref(),
        Some("default/web:80")
    );
    assert_eq!(name(&b, "a.foo.example.com", "/"), None);
    assert_eq!(name(&b, "example.com", "/"), None);
}

#[test]
fn missing_services_and_ports_answer_503_resource_backends_are_skipped() {
    let mut w = World::new();
    let b = w.build(vec![ingress(
        "bad",
        "2024-01-01T00:00:00Z",
        json!({"rules": [{"http": {"paths": [
            path("/gone", "Prefix", "gone", json!({"number": 80})),
            path("/port", "Prefix", "api", json!({"name": "grpc"})),
            path("/empty", "Prefix", "empty", json!({"number": 80})),
            {"path": "/bucket", "pathType": "Prefix",
             "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b"}}},
        ]}}]}),
    )]);
    // A backend without endpoints: the proxy answers 503.
    assert_eq!(
        route(&b, "h", "/gone"),
        Some(("default/gone:80".into(), vec![]))
    );
    assert_eq!(
        route(&b, "h", "/port"),
        Some(("default/api:grpc".into(), vec![]))
    );
    assert_eq!(
        route(&b, "h", "/empty"),
        Some(("default/empty:80".into(), vec![]))
    );
    assert_eq!(
        name(&b, "h", "/bucket"),
        None,
        "resource backend skipped: 404"
    );
    let reasons: Vec<&str> = b.problems.iter().map(|p| p.reason).collect();
    assert_eq!(
        reasons,
        [
            "MissingService",
            "MissingServicePort",
            "ResourceBackendUnsupported"
        ]
    );
}

#[test]
fn h2c_and_grpc_app_protocols_speak_http2_to_the_endpoints() {
    let mut w = World::new();
    w.services.push(service(
        "grpc",
        json!([{"name": "g", "port": 50051, "appProtocol": "kubernetes.io/h2c"}]),
    ));
    let b = w.build(vec![ingress(
        "g",
        "2024-01-01T00:00:00Z",
        json!({"rules": [{"http": {"paths": [
            path("/", "Prefix", "grpc", json!({"number": 50051})),
            path("/web", "Prefix", "web", json!({"number": 80})),
        ]}}]}),
    )]);
    assert_eq!(
        b.routes.lookup("h", "/").map(|b| b.protocol),
        Some(Protocol::H2c)
    );
    assert_eq!(
        b.routes.lookup("h", "/web").map(|b| b.protocol),
        Some(Protocol::Http1)
    );
}

#[test]
fn tls_hosts_get_their_secrets_certificate_missing_ones_an_event() {
    let mut w = World::new();
    let c = match rcgen::generate_simple_self_signed(vec!["secure.example.com".to_string()]) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    w.secrets.push(obj(json!({
        "metadata": {"namespace": "default", "name": "secure-tls", "resourceVersion": "7"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": k8s_openapi::ByteString(c.cert.pem().into_bytes()),
            "tls.key": k8s_openapi::ByteString(c.signing_key.serialize_pem().into_bytes()),
        },
    })));
    let ing = ingress(
        "tls",
        "2024-01-01T00:00:00Z",
        json!({
            "tls": [{"hosts": ["secure.example.com"], "secretName": "secure-tls"},
                    {"hosts": ["other.example.com"], "secretName": "nope"}],
            "rules": [{"host": "secure.example.com", "http": {"paths": [
                path("/", "Prefix", "web", json!({"number": 80}))]}}],
        }),
    );
    let b = w.build(vec![ing.clone()]);
    assert!(b.certs.resolve(Some("secure.example.com")).is_some());
    assert!(
        b.certs.resolve(Some("other.example.com")).is_none(),
        "no default in this test"
    );
    let reasons: Vec<&str> = b.problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["MissingSecret"]);
    assert_eq!(w.cache.len(), 1);
    // Parsed once per resourceVersion; dropped when no Ingress uses it.
    let again = w.build(vec![ing]);
    assert!(again.certs.resolve(Some("secure.example.com")).is_some());
    w.build(vec![]);
    assert!(w.cache.is_empty());
}
