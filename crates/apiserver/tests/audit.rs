//! The audit log (`--audit-policy-file`, `--audit-log-path`) through the real kubectl: what
//! each level records, and the `Audit-Id` header.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::{Cluster, eventually};
use serde_json::Value;

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  # Secrets: who and what, never their data.
  - level: Metadata
    resources: [{group: "", resources: ["secrets"]}]
  - level: Request
    resources: [{group: "", resources: ["pods"]}]
  - level: None
"#;

const POD: &str = "
apiVersion: v1
kind: Pod
metadata: {name: p1}
spec:
  containers: [{name: c, image: busybox}]
";

fn events(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The events of one stage matching verb and resource (and name, if given).
fn find<'a>(
    evs: &'a [Value],
    stage: &str,
    verb: &str,
    resource: &str,
    name: Option<&str>,
) -> Vec<&'a Value> {
    evs.iter()
        .filter(|e| {
            e["stage"] == stage
                && e["verb"] == verb
                && e["objectRef"]["resource"] == resource
                && name.is_none_or(|n| e["objectRef"]["name"] == n)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_levels_and_audit_ids() {
    let c = Cluster::start_configured(false, |cfg| {
        let policy = cfg.data_dir.join("audit-policy.yaml");
        std::fs::write(&policy, POLICY).unwrap();
        cfg.audit_policy = Some(policy);
        cfg.audit_log = Some(cfg.data_dir.join("logs").join("audit.log"));
    })
    .await;
    let log = c.dir.path().join("logs").join("audit.log");
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=password=hunter2-value",
    ])
    .await;
    c.ok(&["get", "secret", "s1"]).await;
    c.fails(&["get", "secret", "missing"]).await;
    let pod = c.write("pod.yaml", POD);
    c.ok(&["create", "-f", &pod]).await;
    c.ok(&["get", "pod", "p1"]).await;
    c.ok(&["create", "configmap", "cm", "--from-literal=a=b"])
        .await;
    c.ok(&["get", "configmaps"]).await;
    c.ok(&["delete", "pod", "p1", "--wait=false"]).await;
    c.ok(&["delete", "secret", "s1"]).await;

    let evs = eventually("the audit events", || {
        let evs = events(&log);
        let done = !find(&evs, "ResponseComplete", "delete", "secrets", Some("s1")).is_empty();
        std::future::ready(done.then_some(evs))
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("hunter2-value") && !text.contains("aHVudGVyMi12YWx1ZQ"),
        "secret data in the audit log"
    );
    for e in &evs {
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(e["user"]["username"], "system:admin", "{e}");
        let groups = e["user"]["groups"].as_array().unwrap();
        assert!(groups.contains(&"system:masters".into()), "{e}");
        assert_eq!(e["sourceIPs"][0], "127.0.0.1");
        assert!(
            e["userAgent"].as_str().unwrap().starts_with("kubectl"),
            "{e}"
        );
        assert!(
            e["requestReceivedTimestamp"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        // Only the audited kinds.
        let r = e["objectRef"]["resource"].as_str().unwrap_or("");
        assert!(r == "secrets" || r == "pods", "{e}");
    }

    // Secrets at Metadata: no objects; a create names its object from the body.
    let created = find(&evs, "ResponseComplete", "create", "secrets", Some("s1"));
    assert_eq!(created.len(), 1, "{evs:#?}");
    let e = created[0];
    assert_eq!(e["level"], "Metadata");
    let uri = e["requestURI"].as_str().unwrap();
    assert!(
        uri.starts_with("/api/v1/namespaces/default/secrets?"),
        "{uri}"
    );
    assert_eq!(e["objectRef"]["namespace"], "default");
    assert_eq!(e["objectRef"]["apiVersion"], "v1");
    assert_eq!(e["responseStatus"]["code"], 201);
    assert!(e.get("requestObject").is_none() && e.get("responseObject").is_none());
    // Both stages, one audit ID.
    let received: Vec<_> = evs
        .iter()
        .filter(|r| r["auditID"] == e["auditID"])
        .map(|r| r["stage"].as_str().unwrap())
        .collect();
    assert_eq!(received, ["RequestReceived", "ResponseComplete"]);
    let get = find(&evs, "ResponseComplete", "get", "secrets", Some("s1"));
    assert_eq!(get[0]["responseStatus"]["code"], 200);
    let missing = find(&evs, "ResponseComplete", "get", "secrets", Some("missing"));
    assert_eq!(missing[0]["responseStatus"]["code"], 404);
    assert_eq!(missing[0]["responseStatus"]["reason"], "NotFound");

    // Pods at Request: the request object, never the response.
    let e = find(&evs, "ResponseComplete", "create", "pods", Some("p1"))[0];
    assert_eq!(e["level"], "Request");
    assert_eq!(e["requestObject"]["kind"], "Pod");
    assert_eq!(e["requestObject"]["metadata"]["name"], "p1");
    assert!(e.get("responseObject").is_none());
    let e = find(&evs, "ResponseComplete", "get", "pods", Some("p1"))[0];
    assert_eq!(e["responseStatus"]["code"], 200);
    assert!(e.get("requestObject").is_none());
    let e = find(&evs, "ResponseComplete", "delete", "pods", Some("p1"))[0];
    assert_eq!(e["level"], "Request");
    assert_eq!(e["responseStatus"]["code"], 200);

    // The Audit-Id header, the same ID as the event's.
    let client = c.client().await;
    let resp = client
        .send(
            http::Request::get("/api/v1/namespaces/default/pods")
                .body(Vec::new().into())
                .unwrap(),
        )
        .await
        .unwrap();
    let id = resp.headers()["audit-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "{id}");
    let evs = eventually("the list's event", || {
        let evs = events(&log);
        std::future::ready(
            evs.iter()
                .find(|e| e["auditID"] == id.as_str() && e["stage"] == "ResponseComplete")
                .cloned(),
        )
    })
    .await;
    assert_eq!(evs["verb"], "list");
    // Not audited (level None): the header still comes.
    let resp = client
        .send(
            http::Request::get("/api/v1/namespaces/default/configmaps")
                .body(Vec::new().into())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(resp.headers().contains_key("audit-id"));
}

/// Watches: ResponseStarted when the stream starts, ResponseComplete when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_have_a_started_and_a_complete_stage() {
    let c = Cluster::start_configured(false, |cfg| {
        let policy = cfg.data_dir.join("audit-policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n    verbs: [watch]\n",
        )
        .unwrap();
        cfg.audit_policy = Some(policy);
        cfg.audit_log = Some(cfg.data_dir.join("audit.log"));
    })
    .await;
    let log = c.dir.path().join("audit.log");
    // kubectl get -w ends at its --request-timeout.
    let _ = c
        .kubectl(&["get", "configmaps", "-w", "--request-timeout=2s"])
        .await;
    let evs = eventually("the watch's events", || {
        let evs = events(&log);
        std::future::ready((evs.len() >= 2).then_some(evs))
    })
    .await;
    let stages: Vec<_> = evs.iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["ResponseStarted", "ResponseComplete"], "{evs:#?}");
    assert_eq!(evs[0]["auditID"], evs[1]["auditID"]);
    assert_eq!(evs[0]["verb"], "watch");
    assert_eq!(evs[1]["responseStatus"]["code"], 200);
}

/// Without a policy nothing is logged, and every response still has an `Audit-Id`; a
/// client's own Audit-ID is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_id_without_a_policy() {
    let c = Cluster::start(false).await;
    let client = c.client().await;
    let resp = client
        .send(
            http::Request::get("/api/v1/namespaces")
                .header("Audit-ID", "my-request-1")
                .body(Vec::new().into())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.headers()["audit-id"], "my-request-1");
    let resp = client
        .send(
            http::Request::get("/api/v1/nothing-here")
                .body(Vec::new().into())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("audit-id"));
}

/// RequestResponse: the response object too (managed fields left out when the policy says
/// so); a rule's omitStages adds to the policy's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_level() {
    let c = Cluster::start_configured(false, |cfg| {
        let policy = cfg.data_dir.join("audit-policy.json");
        std::fs::write(
            &policy,
            r#"{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitManagedFields": true,
                "rules": [{"level": "RequestResponse", "resources": [{"group": "", "resources": ["configmaps"]}],
                           "omitStages": ["RequestReceived"]}]}"#,
        )
        .unwrap();
        cfg.audit_policy = Some(policy);
        cfg.audit_log = Some(cfg.data_dir.join("audit.log"));
    })
    .await;
    let log = c.dir.path().join("audit.log");
    c.ok(&["create", "configmap", "cm", "--from-literal=a=b"])
        .await;
    // Only the test's own configmap (the harness makes kube-root-ca.crt ones at start).
    let evs = eventually("the create's event", || {
        let evs: Vec<_> = events(&log)
            .into_iter()
            .filter(|e| e["objectRef"]["name"] == "cm")
            .collect();
        std::future::ready((!evs.is_empty()).then_some(evs))
    })
    .await;
    assert_eq!(evs.len(), 1, "{evs:#?}");
    let e = &evs[0];
    assert_eq!(e["stage"], "ResponseComplete");
    assert_eq!(e["level"], "RequestResponse");
    assert_eq!(e["objectRef"]["name"], "cm");
    assert_eq!(e["requestObject"]["data"]["a"], "b");
    assert_eq!(e["responseObject"]["kind"], "ConfigMap");
    assert!(e["responseObject"]["metadata"]["uid"].is_string());
    assert!(
        e["responseObject"]["metadata"]
            .get("managedFields")
            .is_none()
    );
}
