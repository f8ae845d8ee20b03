//! Error bodies byte for byte as kube-apiserver writes them: `Status` fields in Go's order
//! (kind, apiVersion, metadata, status, message, reason, details, code), `omitempty` fields
//! left out, details present-but-empty where upstream's generic responses have them, and the
//! JSON encoder's trailing newline. Clients print, log and compare these bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::Cluster;
use http::{Method, Request};

async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    ct: &str,
    body: &str,
) -> (u16, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body.as_bytes().to_vec())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, String::from_utf8(bytes.to_vec()).unwrap())
}

fn status(message: &str, reason: &str, details: Option<&str>, code: u16) -> String {
    let message = serde_json::to_string(message).unwrap();
    let details = details
        .map(|d| format!(",\"details\":{d}"))
        .unwrap_or_default();
    format!(
        "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":{message},\"reason\":\"{reason}\"{details},\"code\":{code}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_are_upstreams_bytes() {
    let c = Cluster::start(false).await;
    let admin = c.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let json = "application/json";
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#;

    let (code, body) = send(&admin, Method::POST, cms, json, cm).await;
    assert_eq!(code, 201, "{body}");
    assert!(
        body.ends_with("}\n"),
        "a created object ends with the encoder's newline: {body:?}"
    );
    let rv =
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();

    let cases: Vec<(Method, String, &str, String, u16, String)> = vec![
        (Method::POST, cms.into(), json, cm.into(), 409,
         status("configmaps \"a\" already exists", "AlreadyExists", Some(r#"{"name":"a","kind":"configmaps"}"#), 409)),
        (Method::GET, format!("{cms}/nope"), json, String::new(), 404,
         status("configmaps \"nope\" not found", "NotFound", Some(r#"{"name":"nope","kind":"configmaps"}"#), 404)),
        (Method::GET, "/apis/apps/v1/namespaces/default/deployments/nope".into(), json, String::new(), 404,
         status("deployments.apps \"nope\" not found", "NotFound", Some(r#"{"name":"nope","group":"apps","kind":"deployments"}"#), 404)),
        (Method::PUT, format!("{cms}/a"), json,
         format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"a","resourceVersion":"{}"}},"data":{{"x":"1"}}}}"#, rv.parse::<i64>().unwrap() - 1),
         409,
         status("Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again", "Conflict", Some(r#"{"name":"a","kind":"configmaps"}"#), 409)),
        (Method::POST, cms.into(), json, r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#.into(), 422,
         status("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "Invalid",
                Some(r#"{"name":"Bad_Name","kind":"ConfigMap","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')","field":"metadata.name"}]}"#),
                422)),
        (Method::POST, "/apis/apps/v1/namespaces/default/deployments".into(), json,
         r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":-1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}"#.into(),
         422,
         status("Deployment.apps \"d\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0", "Invalid",
                Some(r#"{"name":"d","group":"apps","kind":"Deployment","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: -1: must be greater than or equal to 0","field":"spec.replicas"}]}"#), 422)),
        (Method::GET, "/api/v1/foos".into(), json, String::new(), 404,
         status("the server could not find the requested resource", "NotFound", Some("{}"), 404)),
        (Method::PUT, cms.into(), json, cm.into(), 405,
         status("the server does not allow this method on the requested resource", "MethodNotAllowed", Some("{}"), 405)),
    ];
    for (method, path, ct, body, want_code, want) in cases {
        let (code, got) = send(&admin, method.clone(), &path, ct, &body).await;
        assert_eq!(
            (code, got.as_str()),
            (want_code, want.as_str()),
            "{method} {path}"
        );
    }

    // Forbidden: a user RBAC grants nothing.
    let bob = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(c.kubeconfig_as("bob", &[])).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let (code, got) = send(
        &bob,
        Method::GET,
        "/api/v1/namespaces/default/pods",
        json,
        "",
    )
    .await;
    assert_eq!(
        (code, got.as_str()),
        (403, status("pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"", "Forbidden", Some(r#"{"kind":"pods"}"#), 403).as_str())
    );
    let (code, got) = send(
        &bob,
        Method::GET,
        "/api/v1/namespaces/default/pods/p",
        json,
        "",
    )
    .await;
    assert_eq!(
        (code, got.as_str()),
        (403, status("pods \"p\" is forbidden: User \"bob\" cannot get resource \"pods\" in API group \"\" in the namespace \"default\"", "Forbidden", Some(r#"{"name":"p","kind":"pods"}"#), 403).as_str())
    );

    // Unauthorized: a token nobody issued; upstream's 401 has no details.
    let stranger = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(
                c.kubeconfig_with_token("stranger.yaml", "not-a-token"),
            )
            .unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let (code, got) = send(&stranger, Method::GET, "/api/v1/namespaces", json, "").await;
    assert_eq!(
        (code, got.as_str()),
        (
            401,
            status("Unauthorized", "Unauthorized", None, 401).as_str()
        )
    );
}
