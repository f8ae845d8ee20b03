//! API aggregation seen from the real kubectl: an extension API server in the test (HTTPS
//! on loopback, its certificate from a test CA given as the APIService's caBundle) that
//! accepts only the front-proxy client certificate published in
//! `kube-system/extension-apiserver-authentication`, and answers the `wardle.example.com`
//! group with the identity the aggregator sent. Its Service and EndpointSlice point at
//! loopback (test only).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::sync::Arc;

use apiserver::testing::{Cluster, eventually};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod wardle;

use wardle::{GV, Seen, certificates, manifests, pem_certs, serve};

/// The `Available` condition of an APIService: (status, reason, message).
async fn available(c: &Cluster, name: &str) -> (String, String, String) {
    let out = c
        .ok(&[
            "get",
            "apiservice",
            name,
            "-o",
            r#"jsonpath={range .status.conditions[?(@.type=="Available")]}{.status}|{.reason}|{.message}{end}"#,
        ])
        .await;
    let mut parts = out.splitn(3, '|').map(str::to_string);
    let mut next = || parts.next().unwrap_or_default();
    (next(), next(), next())
}

/// A GET to the API server over TLS with `cert`/`key` and extra `headers`: status and body.
async fn raw_get(
    c: &Cluster,
    cert: &str,
    key: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let resp = raw_request(c, cert, key, path, headers).await;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The response to a GET as [`raw_get`] sends it, its body still streaming.
async fn raw_request(
    c: &Cluster,
    cert: &str,
    key: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Response<hyper::body::Incoming> {
    let tls_dir = c.dir.path().join("tls");
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certs(&std::fs::read_to_string(tls_dir.join("server-ca.crt")).unwrap()) {
        roots.add(ca).unwrap();
    }
    let key = rustls_pemfile::private_key(&mut key.as_bytes())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(pem_certs(cert), key)
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(c.server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut req = http::Request::get(path).header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiservice_is_proxied_as_the_authenticated_user() {
    let c = Cluster::start(false).await;

    // The requestheader configuration extension servers read, as upstream publishes it.
    let cm: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "configmap",
            "-n",
            "kube-system",
            "extension-apiserver-authentication",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    let data = &cm["data"];
    let list =
        |k: &str| -> Vec<String> { serde_json::from_str(data[k].as_str().unwrap()).unwrap() };
    assert_eq!(list("requestheader-allowed-names"), ["front-proxy-client"]);
    assert_eq!(list("requestheader-username-headers"), ["X-Remote-User"]);
    assert_eq!(list("requestheader-group-headers"), ["X-Remote-Group"]);
    assert_eq!(
        list("requestheader-extra-headers-prefix"),
        ["X-Remote-Extra-"]
    );
    assert!(
        data["client-ca-file"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    let front_proxy_ca = data["requestheader-client-ca-file"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(front_proxy_ca, data["client-ca-file"].as_str().unwrap());

    // Every group-version served here has a Local APIService.
    let (status, reason, _) = eventually("the local APIServices", || async {
        let out = c.kubectl(&["get", "apiservice", "v1.apps"]).await;
        out.status.success().then_some(())?;
        Some(available(&c, "v1.apps").await).filter(|a| a.0 == "True")
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Local"));
    let core = c
        .ok(&[
            "get",
            "apiservice",
            "v1.",
            "-o",
            "jsonpath={.spec.groupPriorityMinimum}",
        ])
        .await;
    assert_eq!(core, "18000");

    // The extension server, and the APIService pointing at it.
    let seen: Seen = Arc::default();
    let release = Arc::new(tokio::sync::Notify::new());
    let (ca, cert, key) = certificates();
    let (port, server) = serve(
        &cert,
        &key,
        &front_proxy_ca,
        list("requestheader-allowed-names"),
        seen.clone(),
        release.clone(),
    )
    .await;
    let m = c.write("wardle.yaml", &manifests(port, &ca));
    c.ok(&["apply", "-f", &m]).await;
    let name = "v1alpha1.wardle.example.com";
    eventually("the APIService to be available", || async {
        let a = available(&c, name).await;
        (a.0 == "True").then_some(a)
    })
    .await;
    assert_eq!(available(&c, name).await.1, "Passed");

    // kubectl finds the group through discovery and reads through the proxy; the extension
    // got the admin's identity in headers, not the admin's credentials.
    let user = c
        .ok(&[
            "get",
            "flunders",
            "-n",
            "default",
            "-o",
            "jsonpath={.items[0].spec.user}",
        ])
        .await;
    assert_eq!(user, "system:admin");
    let groups = c
        .ok(&[
            "get",
            "fl",
            "-n",
            "default",
            "-o",
            "jsonpath={.items[0].spec.groups}",
        ])
        .await;
    assert!(
        groups.contains("system:masters") && groups.contains("system:authenticated"),
        "{groups}"
    );
    let table = c.ok(&["get", "flunders", "-n", "default"]).await;
    assert!(table.contains("echo"), "{table}");
    let tls = c.dir.path().join("tls");
    let admin_cert = std::fs::read_to_string(tls.join("client-admin.crt")).unwrap();
    let admin_key = std::fs::read_to_string(tls.join("client-admin.key")).unwrap();
    // An upgrade (as exec's) is switched through to the extension.
    let exec = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders/echo/exec";
    let upgrade = [("connection", "Upgrade"), ("upgrade", "echo")];
    let resp = raw_request(&c, &admin_cert, &admin_key, exec, &upgrade).await;
    assert_eq!(resp.status(), 101);
    let mut io = TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    assert_eq!(seen.lock().unwrap().last().unwrap().0, "system:admin");

    // Its OpenAPI document is served here too.
    let explained = c.ok(&["explain", "flunders"]).await;
    assert!(
        explained.contains("A flunder echoes who asked for it."),
        "{explained}"
    );
    // The extension's own aggregated discovery is what kubectl was given.
    let by_category = c
        .ok(&["get", "wardle", "-n", "default", "-o", "name"])
        .await;
    assert!(by_category.contains("echo"), "{by_category}");
    assert!(seen.lock().unwrap().iter().all(|(_, _, creds)| !creds));

    // A watch streams through: the first event arrives before the extension sends the next.
    let watch_path = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders?watch=true";
    let resp = raw_request(&c, &admin_cert, &admin_key, watch_path, &[]).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = String::new();
    while !got.contains("ADDED") {
        let frame = body.frame().await.unwrap().unwrap();
        got.push_str(&String::from_utf8_lossy(
            &frame.into_data().unwrap_or_default(),
        ));
    }
    assert!(!got.contains("MODIFIED"), "{got}");
    release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("MODIFIED"));

    // Impersonation is resolved before the proxy: the extension sees the impersonated user.
    let as_user = c
        .ok(&[
            "get",
            "flunders",
            "-n",
            "default",
            "--as",
            "alice",
            "--as-group",
            "system:masters",
            "-o",
            "jsonpath={.items[0].spec.user}",
        ])
        .await;
    assert_eq!(as_user, "alice");

    // A user RBAC does not allow is refused here, before the proxy.
    let bob = c.kubeconfig_as("bob", &[]);
    let out = c
        .kubectl_with(&bob, &["get", "flunders", "-n", "default"])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "User \"bob\" cannot list resource \"flunders\" in API group \"wardle.example.com\""
        ),
        "{err}"
    );
    assert!(seen.lock().unwrap().iter().all(|(u, _, _)| u != "bob"));

    // Listed with the built-in ones.
    let list_out = c.ok(&["get", "apiservices"]).await;
    let row = |n: &str| {
        list_out
            .lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("v1.apps").contains("Local") && row("v1.apps").contains("True"),
        "{list_out}"
    );
    assert!(
        row(name).contains("wardle/api") && row(name).contains("True"),
        "{list_out}"
    );
    let groups = c.ok(&["api-versions"]).await;
    assert!(groups.lines().any(|l| l == GV), "{groups}");

    // Deleted: gone from discovery, and its paths with it.
    c.ok(&["delete", "apiservice", name]).await;
    eventually("the group to leave discovery", || async {
        let out = c.ok(&["api-versions"]).await;
        (!out.lines().any(|l| l == GV)).then_some(())
    })
    .await;
    let err = c.fails(&["get", "flunders", "-n", "default"]).await;
    assert!(
        err.contains("the server doesn't have a resource type \"flunders\""),
        "{err}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_apiservices_say_why_and_answer_503() {
    let c = Cluster::start(false).await;
    let m = c.write(
        "missing.yaml",
        r#"apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.missing.example.com}
spec:
  group: missing.example.com
  version: v1
  groupPriorityMinimum: 100
  versionPriority: 10
  insecureSkipTLSVerify: true
  service: {name: nothing, namespace: default}
"#,
    );
    c.ok(&["apply", "-f", &m]).await;
    let (_, reason, message) = eventually("the APIService to be checked", || async {
        let a = available(&c, "v1.missing.example.com").await;
        (a.0 == "False").then_some(a)
    })
    .await;
    assert_eq!(reason, "ServiceNotFound");
    assert_eq!(message, "service/nothing in \"default\" is not present");
    let out = c.ok(&["get", "apiservice", "v1.missing.example.com"]).await;
    assert!(out.contains("False (ServiceNotFound)"), "{out}");
    // Legacy discovery lists it still, as upstream's (a client learns of it from the 503).
    let groups = c.ok(&["get", "--raw", "/apis"]).await;
    assert!(groups.contains("\"missing.example.com/v1\""), "{groups}");
    let raw = c
        .kubectl(&["get", "--raw", "/apis/missing.example.com/v1/things"])
        .await;
    assert!(!raw.status.success());
    let err = String::from_utf8_lossy(&raw.stderr);
    assert!(
        err.contains("service unavailable") || err.contains("unable to handle"),
        "{err}"
    );

    // A CRD's group-version is a local APIService while the CRD is there.
    let crd = c.write(
        "crd.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object}}
"#,
    );
    c.ok(&["apply", "-f", &crd]).await;
    let label = eventually("the CRD's APIService", || async {
        let out = c
            .kubectl(&["get", "apiservice", "v1.stable.example.com", "-o",
                r#"jsonpath={.metadata.labels.kube-aggregator\.kubernetes\.io/automanaged} {.spec.groupPriorityMinimum}"#])
            .await;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    assert_eq!(label, "true 1000");
    c.ok(&["delete", "-f", &crd]).await;
    eventually("the CRD's APIService to go", || async {
        let out = c
            .kubectl(&["get", "apiservice", "v1.stable.example.com"])
            .await;
        (!out.status.success()).then_some(())
    })
    .await;

    // Invalid specs are refused as upstream refuses them.
    let bad = c.write(
        "bad.yaml",
        r#"apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: wrong-name}
spec: {group: x.example.com, version: v1, groupPriorityMinimum: 100, versionPriority: 0}
"#,
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains("must be `spec.version+\".\"+spec.group`"),
        "{err}"
    );
    assert!(err.contains("spec.versionPriority"), "{err}");

    // The front proxy's certificate authenticates by headers, and only with a user named.
    let tls = c.dir.path().join("tls");
    let cert = std::fs::read_to_string(tls.join("front-proxy-client.crt")).unwrap();
    let key = std::fs::read_to_string(tls.join("front-proxy-client.key")).unwrap();
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, body) = raw_get(&c, &cert, &key, path, &[("X-Remote-User", "carol")]).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("User \\\"carol\\\""), "{body}");
    let (code, _) = raw_get(
        &c,
        &cert,
        &key,
        path,
        &[
            ("X-Remote-User", "carol"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = raw_get(&c, &cert, &key, path, &[]).await;
    assert_eq!(code, 401);
    // A cluster client certificate's user is its own: the headers are not believed.
    let pki = apiserver::pki::Pki::new(c.dir.path());
    let (dave_cert, dave_key) = pki.issue_client_cert("dave", &[]).unwrap();
    let (code, body) = raw_get(
        &c,
        &dave_cert,
        &dave_key,
        path,
        &[
            ("X-Remote-User", "carol"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("User \\\"dave\\\""), "{body}");
}
