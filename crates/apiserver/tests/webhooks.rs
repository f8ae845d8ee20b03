//! Admission webhooks seen from the real kubectl: an HTTPS webhook server in the test (on
//! loopback, with its own CA in the caBundle) refuses some ConfigMaps and labels pods; the
//! selectors, failure policies and the AdmissionReview sent are checked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::sync::{Arc, Mutex};

use apiserver::testing::{Cluster, eventually};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

type Reviews = Arc<Mutex<Vec<Value>>>;

/// A CA (PEM) and a serving certificate and key for 127.0.0.1 and localhost signed by it.
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// The webhook's answer to one AdmissionReview at `path`.
fn answer(path: &str, review: &Value) -> Value {
    let req = &review["request"];
    let uid = req["uid"].clone();
    let labels = &req["object"]["metadata"]["labels"];
    let response = match path {
        "/validate" if req["oldObject"]["metadata"]["labels"]["protect"] == "true" => json!({
            "uid": uid, "allowed": false,
            "status": {"message": "protected"},
        }),
        "/validate" if labels["deny"] == "true" => json!({
            "uid": uid, "allowed": false,
            "status": {"code": 403, "message": "configmaps labelled deny=true are not welcome"},
        }),
        "/mutate" => {
            let patch = if labels.is_object() {
                json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
            };
            json!({
                "uid": uid, "allowed": true, "patchType": "JSONPatch",
                "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string()),
                "warnings": ["pod labelled by mutate.example.com"],
            })
        }
        _ => json!({"uid": uid, "allowed": true}),
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Serves the webhook over HTTPS on 127.0.0.1 until the task is aborted; the port.
async fn serve(cert: &str, key: &str, reviews: Reviews) -> (u16, tokio::task::JoinHandle<()>) {
    let certs = rustls_pemfile::certs(&mut cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut key.as_bytes())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, reviews) = (acceptor.clone(), reviews.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                    let reviews = reviews.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body: hyper::body::Incoming = req.into_body();
                        let bytes = body.collect().await?.to_bytes();
                        let review: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                        reviews.lock().unwrap().push(review.clone());
                        if path == "/slow" {
                            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                        }
                        let out = answer(&path, &review).to_string();
                        Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(out))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, task)
}

fn configurations(port: u16, ca: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: deny-config}}
webhooks:
- name: deny.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/validate", caBundle: "{ca}"}}
  rules:
  - {{operations: [CREATE, UPDATE, DELETE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}
  namespaceSelector:
    matchExpressions: [{{key: webhooks, operator: NotIn, values: [skip]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: slow}}
webhooks:
- name: slow.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/slow", caBundle: "{ca}"}}
  rules:
  - {{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [secrets]}}
  timeoutSeconds: 1
  sideEffects: None
  admissionReviewVersions: [v1]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: label-pods}}
webhooks:
- name: mutate.example.com
  clientConfig: {{url: "https://127.0.0.1:{port}/mutate", caBundle: "{ca}"}}
  rules:
  - {{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods], scope: Namespaced}}
  objectSelector:
    matchExpressions: [{{key: skip-mutation, operator: DoesNotExist}}]
  sideEffects: None
  admissionReviewVersions: [v1]
"#
    )
}

fn configmap(name: &str, ns: &str, deny: bool) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}, labels: {{deny: '{deny}'}}}}\ndata: {{a: b}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_refuse_mutate_and_fail_as_upstream() {
    let c = Cluster::start(false).await;
    let reviews: Reviews = Arc::default();
    let (ca, cert, key) = certificates();
    let (port, server) = serve(&cert, &key, reviews.clone()).await;
    let hooks = c.write("hooks.yaml", &configurations(port, &ca));
    c.ok(&["apply", "-f", &hooks]).await;

    // The configurations are stored with upstream's defaults.
    let v: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "validatingwebhookconfiguration",
            "deny-config",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    let h = &v["webhooks"][0];
    assert_eq!(h["failurePolicy"], "Fail", "{h}");
    assert_eq!(h["matchPolicy"], "Equivalent", "{h}");
    assert_eq!(h["timeoutSeconds"], 10, "{h}");
    assert_eq!(h["objectSelector"], json!({}), "{h}");
    assert_eq!(h["rules"][0]["scope"], "*", "{h}");
    let m = c
        .ok(&[
            "get",
            "mutatingwebhookconfiguration",
            "label-pods",
            "-o",
            "jsonpath={.webhooks[0].reinvocationPolicy}",
        ])
        .await;
    assert_eq!(m, "Never");
    let table = c.ok(&["get", "validatingwebhookconfigurations"]).await;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("WEBHOOKS"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("deny-config") && l.split_whitespace().nth(1) == Some("1")),
        "{table}"
    );

    // A denied ConfigMap: the webhook's message, as upstream words it (once the watch
    // cache has the configuration).
    let denied = c.write("denied.yaml", &configmap("denied", "default", true));
    let err = eventually("the validating webhook is called", || async {
        let out = c.kubectl(&["create", "-f", &denied]).await;
        (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await;
    assert!(
        err.contains(r#"admission webhook "deny.example.com" denied the request: configmaps labelled deny=true are not welcome"#),
        "{err}"
    );
    // Allowed ones pass.
    let allowed = c.write("allowed.yaml", &configmap("allowed", "default", false));
    c.ok(&["create", "-f", &allowed]).await;
    // The review: who asked, and what.
    {
        let got = reviews.lock().unwrap();
        let r = got
            .iter()
            .find(|r| r["request"]["name"] == "denied")
            .expect("a review of the denied configmap");
        let req = &r["request"];
        assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(req["operation"], "CREATE");
        assert_eq!(req["userInfo"]["username"], "system:admin");
        assert_eq!(
            req["kind"],
            json!({"group": "", "version": "v1", "kind": "ConfigMap"})
        );
        assert_eq!(
            req["resource"],
            json!({"group": "", "version": "v1", "resource": "configmaps"})
        );
        assert_eq!(req["namespace"], "default");
        assert_eq!(req["object"]["metadata"]["labels"]["deny"], "true");
    }
    // Updates are sent.
    let err = c
        .fails(&["label", "configmap", "allowed", "deny=true", "--overwrite"])
        .await;
    assert!(err.contains("deny=true are not welcome"), "{err}");
    // A webhook slower than its timeoutSeconds fails the call.
    let err = c
        .fails(&["create", "secret", "generic", "s", "--from-literal=a=b"])
        .await;
    assert!(
        err.contains(&format!(r#"Internal error occurred: failed calling webhook "slow.example.com": failed to call webhook: Post "https://127.0.0.1:{port}/slow?timeout=1s": context deadline exceeded"#)),
        "{err}"
    );
    // Deletes are sent too, with the object deleted as oldObject.
    c.ok(&["create", "configmap", "keep", "--from-literal=a=b"])
        .await;
    c.ok(&["label", "configmap", "keep", "protect=true"]).await;
    let err = c.fails(&["delete", "configmap", "keep"]).await;
    assert!(
        err.contains(// No reason in the webhook's status: kubectl names none, as with upstream.
        r#"Error from server: admission webhook "deny.example.com" denied the request: protected"#),
        "{err}"
    );
    {
        let got = reviews.lock().unwrap();
        let r = got
            .iter()
            .find(|r| r["request"]["operation"] == "DELETE")
            .expect("a review of the delete");
        assert_eq!(r["request"]["object"], Value::Null);
        assert_eq!(r["request"]["oldObject"]["metadata"]["name"], "keep");
        assert_eq!(r["request"]["options"]["kind"], "DeleteOptions");
    }
    // Server-side dry runs are sent (the webhook has no side effects).
    let err = c
        .fails(&["create", "-f", &denied, "--dry-run=server"])
        .await;
    assert!(err.contains("denied the request"), "{err}");
    // A namespace the selector leaves out is not sent to the webhook.
    c.namespace("quiet").await;
    c.ok(&["label", "namespace", "quiet", "webhooks=skip"])
        .await;
    let quiet = c.write("quiet.yaml", &configmap("denied", "quiet", true));
    eventually("the namespace selector skips the webhook", || async {
        c.kubectl(&["create", "-f", &quiet])
            .await
            .status
            .success()
            .then_some(())
    })
    .await;

    // The mutating webhook labels the pod and warns.
    let pod = c.write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: web}}\nspec:\n  containers: [{name: c, image: nginx}]\n",
    );
    let out = c.kubectl(&["create", "-f", &pod]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: pod labelled by mutate.example.com"),
        "{stderr}"
    );
    let label = c
        .ok(&["get", "pod", "p", "-o", "jsonpath={.metadata.labels}"])
        .await;
    let labels: Value = serde_json::from_str(&label).unwrap();
    assert_eq!(labels, json!({"app": "web", "mutated": "yes"}));
    // The object selector leaves this one alone.
    let skipped = c.write(
        "skipped.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: s, labels: {skip-mutation: 'true'}}\nspec:\n  containers: [{name: c, image: nginx}]\n",
    );
    c.ok(&["create", "-f", &skipped]).await;
    let label = c
        .ok(&["get", "pod", "s", "-o", "jsonpath={.metadata.labels}"])
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&label).unwrap(),
        json!({"skip-mutation": "true"})
    );

    // The webhook server gone: failurePolicy Fail refuses the write ...
    server.abort();
    let _ = server.await;
    let err = c
        .fails(&["create", "configmap", "down", "--from-literal=a=b"])
        .await;
    assert!(
        err.contains(r#"Internal error occurred: failed calling webhook "deny.example.com": failed to call webhook: Post "https://127.0.0.1:"#),
        "{err}"
    );
    assert!(err.contains("connection refused"), "{err}");
    // ... Ignore lets it through.
    c.ok(&[
        "patch",
        "validatingwebhookconfiguration",
        "deny-config",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]"#,
    ])
    .await;
    eventually("failurePolicy Ignore lets writes through", || async {
        c.kubectl(&["create", "configmap", "down", "--from-literal=a=b"])
            .await
            .status
            .success()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_are_validated() {
    let c = Cluster::start(false).await;
    let bad = c.write(
        "bad.yaml",
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: bad}\nwebhooks:\n- name: bad.example.com\n  clientConfig: {url: 'https://127.0.0.1:1/'}\n  sideEffects: Some\n  admissionReviewVersions: [v1]\n",
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains(r#"webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun""#),
        "{err}"
    );
}
