//! ValidatingAdmissionPolicy driven by the real kubectl: a policy with a param (a
//! ConfigMap) refuses a Deployment with too many replicas, with upstream's message; a Warn
//! binding warns instead, an Audit binding records the failure and the policy's audit
//! annotations in the audit log; match conditions, variables and messageExpression; a policy
//! whose expression does not compile is refused when written.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::Cluster;

const POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-limit.example.com
spec:
  failurePolicy: Fail
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  matchConditions:
  - name: not-exempt
    expression: "!has(object.metadata.labels) || !('exempt' in object.metadata.labels)"
  variables:
  - name: limit
    expression: "int(params.data.maxReplicas)"
  validations:
  - expression: "object.spec.replicas <= variables.limit"
    messageExpression: "'replicas must be no greater than ' + string(variables.limit)"
    reason: Invalid
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: replica-limit
  namespace: default
data:
  maxReplicas: "3"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-binding
spec:
  policyName: replica-limit.example.com
  validationActions: [Deny]
  paramRef:
    name: replica-limit
    namespace: default
    parameterNotFoundAction: Deny
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: test
"#;

fn deployment(name: &str, replicas: u32, labels: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}{labels}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: nginx}}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_with_params_limits_replicas() {
    let c = Cluster::start(false).await;
    c.ok(&["label", "namespace", "default", "environment=test"])
        .await;
    let policy = c.write("policy.yaml", POLICY);
    c.ok(&["apply", "-f", &policy]).await;
    let table = c.ok(&["get", "validatingadmissionpolicies"]).await;
    assert!(
        table.contains("replica-limit.example.com") && table.contains("v1/ConfigMap"),
        "{table}"
    );
    let bindings = c.ok(&["get", "validatingadmissionpolicybindings"]).await;
    assert!(bindings.contains("default/replica-limit"), "{bindings}");

    let ok = c.write("ok.yaml", &deployment("small", 2, ""));
    c.ok(&["apply", "-f", &ok]).await;
    let big = c.write("big.yaml", &deployment("big", 5, ""));
    let err = c.fails(&["apply", "-f", &big]).await;
    assert!(
        err.contains("ValidatingAdmissionPolicy 'replica-limit.example.com' with binding 'replica-limit-binding' denied request: replicas must be no greater than 3"),
        "{err}"
    );
    // An update is judged too. (`kubectl scale` writes the `scale` subresource, which the
    // rule's `deployments` does not cover, upstream as here.)
    let err = c
        .fails(&[
            "patch",
            "deployment",
            "small",
            "-p",
            r#"{"spec":{"replicas":4}}"#,
        ])
        .await;
    assert!(err.contains("denied request"), "{err}");
    c.ok(&["scale", "deployment/small", "--replicas=4"]).await;
    // The match condition exempts labelled objects.
    let exempt = c.write("exempt.yaml", &deployment("exempt", 5, ", exempt: 'yes'"));
    c.ok(&["apply", "-f", &exempt]).await;
    // The param is read as it is now.
    c.ok(&[
        "patch",
        "configmap",
        "replica-limit",
        "--type=merge",
        "-p",
        r#"{"data":{"maxReplicas":"10"}}"#,
    ])
    .await;
    c.ok(&["apply", "-f", &big]).await;
    // Outside the binding's namespaces nothing is judged.
    c.ok(&["create", "namespace", "other"]).await;
    c.default_service_account("other").await;
    let elsewhere = c.write("elsewhere.yaml", &deployment("elsewhere", 50, ""));
    c.ok(&["apply", "-n", "other", "-f", &elsewhere]).await;
    // Without its param, a Deny binding refuses.
    c.ok(&["delete", "configmap", "replica-limit"]).await;
    let err = c
        .fails(&["apply", "-f", &c.write("x.yaml", &deployment("x", 1, ""))])
        .await;
    assert!(
        err.contains("no params found for policy binding with `Deny` parameterNotFoundAction"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_bindings_warn_and_bad_expressions_are_refused() {
    let c = Cluster::start(false).await;
    let policy = c.write(
        "warn.yaml",
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-latest}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "!object.data.exists(k, object.data[k] == 'latest')"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-latest}
spec:
  policyName: no-latest
  validationActions: [Warn]
"#,
    );
    c.ok(&["apply", "-f", &policy]).await;
    let out = c
        .kubectl(&["create", "configmap", "tag", "--from-literal=v=latest"])
        .await;
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: Validation failed for ValidatingAdmissionPolicy 'no-latest' with binding 'no-latest': failed expression: !object.data.exists(k, object.data[k] == 'latest')"),
        "{stderr}"
    );
    let bad = c.write(
        "bad.yaml",
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: bad}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "object.spec.replicas <="
"#,
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains("spec.validations[0].expression: Invalid value: \"object.spec.replicas <=\": compilation failed: ERROR: <input>:1"),
        "{err}"
    );
}

/// The Audit action and `auditAnnotations`: the write goes through, and the request's audit
/// event carries the failure (upstream's `validation_failure` list) and the policy's
/// annotations as `<policy>/<key>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_bindings_record_failures_and_annotations_in_the_audit_log() {
    let c = Cluster::start_configured(false, |cfg| {
        let policy = cfg.data_dir.join("audit-policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: apps, resources: [deployments]}]\n- level: None\n",
        )
        .unwrap();
        cfg.audit_policy = Some(policy);
        cfg.audit_log = Some(cfg.data_dir.join("audit.log"));
    })
    .await;
    let policy = c.write(
        "audit.yaml",
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: small.example.com}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
  validations:
  - expression: "object.metadata.name != ''"
  - expression: "object.spec.replicas <= 2"
    message: at most 2 replicas
  auditAnnotations:
  - key: replicas
    valueExpression: "'asked for ' + string(object.spec.replicas)"
  - key: never
    valueExpression: "null"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: small-audit}
spec:
  policyName: small.example.com
  validationActions: [Warn, Audit]
"#,
    );
    c.ok(&["apply", "-f", &policy]).await;
    let big = c.write("big.yaml", &deployment("big", 5, ""));
    let out = c.kubectl(&["create", "-f", &big]).await;
    assert!(out.status.success(), "an Audit binding does not refuse");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at most 2 replicas"), "{stderr}");
    let log = c.dir.path().join("audit.log");
    let event = apiserver::testing::eventually("the create's audit event", || {
        let found = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| {
                e["stage"] == "ResponseComplete"
                    && e["verb"] == "create"
                    && e["objectRef"]["name"] == "big"
            });
        std::future::ready(found)
    })
    .await;
    let annotations = &event["annotations"];
    assert_eq!(
        annotations["small.example.com/replicas"], "asked for 5",
        "{event}"
    );
    assert!(
        annotations.get("small.example.com/never").is_none(),
        "{event}"
    );
    let failure: serde_json::Value = serde_json::from_str(
        annotations["validation.policy.admission.k8s.io/validation_failure"]
            .as_str()
            .expect("the validation_failure annotation"),
    )
    .unwrap();
    assert_eq!(
        failure,
        serde_json::json!([{"message": "at most 2 replicas", "policy": "small.example.com",
            "binding": "small-audit", "expressionIndex": 1,
            "validationActions": ["Warn", "Audit"]}])
    );
}
