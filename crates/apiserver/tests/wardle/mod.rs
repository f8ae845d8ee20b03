//! The extension API server of `tests/aggregation.rs` (the `wardle.example.com` group of
//! upstream's sample-apiserver, reduced): HTTPS on loopback, its certificate from a test
//! CA, accepting only client certificates of the front-proxy CA with an allowed name; it
//! echoes back the identity the aggregator sent.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};

/// What the extension server saw: the identity headers of each request.
pub type Seen = Arc<Mutex<Vec<(String, Vec<String>, bool)>>>;

pub const GV: &str = "wardle.example.com/v1alpha1";

/// A CA (PEM) and a serving certificate and key for `api.wardle.svc` signed by it.
pub fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["api.wardle.svc".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

pub fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The extension's answer to `path`, given who the aggregator said asked.
pub fn answer(path: &str, user: &str, groups: &[String]) -> (u16, Value) {
    match path {
        "/apis/wardle.example.com/v1alpha1" => (
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GV,
                "resources": [{"name": "flunders", "singularName": "flunder", "namespaced": true,
                    "kind": "Flunder", "verbs": ["get", "list"], "shortNames": ["fl"]}]}),
        ),
        "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders" => (
            200,
            json!({"kind": "FlunderList", "apiVersion": GV, "metadata": {"resourceVersion": "1"},
                "items": [{"kind": "Flunder", "apiVersion": GV,
                    "metadata": {"name": "echo", "namespace": "default",
                        "creationTimestamp": "2026-01-01T00:00:00Z"},
                    "spec": {"user": user, "groups": groups}}]}),
        ),
        "/openapi/v3" => (
            200,
            json!({"paths": {"apis/wardle.example.com/v1alpha1":
                {"serverRelativeURL": "/openapi/v3/apis/wardle.example.com/v1alpha1?hash=1"}}}),
        ),
        "/openapi/v3/apis/wardle.example.com/v1alpha1" => (200, openapi()),
        _ => (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}),
        ),
    }
}

/// The extension's OpenAPI v3 document of its group-version.
fn openapi() -> Value {
    let gvk = json!([{"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"}]);
    let get = json!({"get": {"operationId": "readFlunder", "x-kubernetes-action": "get",
        "x-kubernetes-group-version-kind": gvk[0], "responses": {"200": {"description": "OK"}}}});
    let item = "/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders/{name}";
    json!({"openapi": "3.0.0", "info": {"title": "wardle", "version": "v1alpha1"},
        "paths": {item: get},
        "components": {"schemas": {"com.example.wardle.v1alpha1.Flunder": {
            "type": "object", "description": "A flunder echoes who asked for it.",
            "x-kubernetes-group-version-kind": gvk,
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object", "description": "Who asked.",
                    "properties": {"user": {"type": "string"}}}}}}}})
}

/// The extension's aggregated discovery: its resource in a category only this lists, so
/// that kubectl finding it by the category shows this document was used.
pub fn aggregated_discovery() -> http::Response<BoxBody<Bytes, Infallible>> {
    let doc = json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {}, "items": [{"metadata": {"name": "wardle.example.com"}, "versions": [{
            "version": "v1alpha1", "freshness": "Current", "resources": [{
                "resource": "flunders", "scope": "Namespaced", "singularResource": "flunder",
                "responseKind": {"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"},
                "verbs": ["get", "list"], "shortNames": ["fl"], "categories": ["wardle"]}]}]}]});
    let mut resp = http::Response::new(Full::new(Bytes::from(doc.to_string())).boxed());
    resp.headers_mut().insert(
        "content-type",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            .parse()
            .unwrap(),
    );
    resp
}

/// An upgrade (as exec's): switched, then every byte echoed back.
fn echo(req: http::Request<hyper::body::Incoming>) -> http::Response<BoxBody<Bytes, Infallible>> {
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let mut resp = http::Response::new(Full::new(Bytes::new()).boxed());
    *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert("connection", "Upgrade".parse().unwrap());
    resp.headers_mut()
        .insert("upgrade", "echo".parse().unwrap());
    resp
}

/// A watch: one event at once, the next when the test releases it.
pub fn watch(release: Arc<tokio::sync::Notify>) -> http::Response<BoxBody<Bytes, Infallible>> {
    let event = |t: &str| {
        let e = json!({"type": t, "object": {"kind": "Flunder", "apiVersion": GV,
            "metadata": {"name": "echo", "namespace": "default"}}});
        Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{e}\n"))))
    };
    let first = futures::stream::once(futures::future::ready(event("ADDED")));
    let second = futures::stream::once(async move {
        release.notified().await;
        event("MODIFIED")
    });
    let mut resp = http::Response::new(BodyExt::boxed(StreamBody::new(first.chain(second))));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

/// Serves the extension over HTTPS on 127.0.0.1, requiring a client certificate signed by
/// `client_ca` with a CN in `allowed`; the port.
pub async fn serve(
    cert: &str,
    key: &str,
    client_ca: &str,
    allowed: Vec<String>,
    seen: Seen,
    release: Arc<tokio::sync::Notify>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let key = rustls_pemfile::private_key(&mut key.as_bytes())
        .unwrap()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(client_ca) {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem_certs(cert), key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, seen, allowed) = (acceptor.clone(), seen.clone(), allowed.clone());
            let release = release.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The requestheader-allowed-names check of an extension API server.
                let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
                let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
                let cn = parsed.subject().iter_common_name().next().unwrap();
                if !allowed.contains(&cn.as_str().unwrap().to_string()) {
                    return;
                }
                let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                    let (seen, release) = (seen.clone(), release.clone());
                    async move {
                        let h = req.headers();
                        let user = h
                            .get("x-remote-user")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        let groups: Vec<String> = h
                            .get_all("x-remote-group")
                            .iter()
                            .map(|v| v.to_str().unwrap().to_string())
                            .collect();
                        let credentials = h.contains_key("authorization");
                        seen.lock()
                            .unwrap()
                            .push((user.clone(), groups.clone(), credentials));
                        if req.headers().contains_key("upgrade") {
                            return Ok(echo(req));
                        }
                        if req.uri().query() == Some("watch=true") {
                            return Ok(watch(release));
                        }
                        let accept = h.get("accept").map(|v| v.to_str().unwrap().to_string());
                        if req.uri().path() == "/apis"
                            && accept.is_some_and(|a| a.contains("as=APIGroupDiscoveryList"))
                        {
                            return Ok(aggregated_discovery());
                        }
                        let (code, body) = answer(req.uri().path(), &user, &groups);
                        let mut resp =
                            http::Response::new(Full::new(Bytes::from(body.to_string())).boxed());
                        *resp.status_mut() = http::StatusCode::from_u16(code).unwrap();
                        resp.headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, hyper::Error>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (port, task)
}

pub fn manifests(port: u16, ca: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: wardle}}
---
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: wardle}}
spec:
  ports: [{{name: https, port: 443, targetPort: 8443}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: api-1, namespace: wardle, labels: {{kubernetes.io/service-name: api}}}}
addressType: IPv4
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]
ports: [{{name: https, port: {port}, protocol: TCP}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1alpha1.wardle.example.com}}
spec:
  group: wardle.example.com
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {{name: api, namespace: wardle}}
  caBundle: "{ca}"
"#
    )
}
