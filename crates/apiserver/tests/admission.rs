//! The admission plugins for pods, namespaces and Ingresses, seen from the real kubectl: what
//! they add to a pod or an Ingress and what they refuse, with Kubernetes' messages.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::Cluster;
use serde_json::Value;

async fn pod_json(c: &Cluster, ns: &str, name: &str) -> Value {
    serde_json::from_str(&c.ok(&["get", "pod", name, "-n", ns, "-o", "json"]).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_default_and_bound_containers() {
    let c = Cluster::start(false).await;
    let lr = c.write(
        "lr.yaml",
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: lr}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 128Mi}\n    defaultRequest: {cpu: 100m}\n    max: {cpu: '1'}\n",
    );
    c.ok(&["apply", "-f", &lr]).await;
    c.ok(&["run", "p", "--image=nginx"]).await;
    let pod = pod_json(&c, "default", "p").await;
    let res = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(res["limits"]["cpu"], "500m", "{res}");
    assert_eq!(res["limits"]["memory"], "128Mi", "{res}");
    assert_eq!(res["requests"]["cpu"], "100m", "{res}");
    // No defaultRequest for memory: it defaults to the default limit.
    assert_eq!(res["requests"]["memory"], "128Mi", "{res}");
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container p; cpu, memory limit for container p"
    );
    let err = c
        .fails(&["run", "big", "--image=nginx", "--overrides", r#"{"spec":{"containers":[{"name":"big","image":"nginx","resources":{"limits":{"cpu":"2"}}}]}}"#])
        .await;
    assert!(
        err.contains(r#"Error from server (Forbidden): pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2"#),
        "{err}"
    );
    let out = c.kubectl(&["get", "pod", "big"]).await;
    assert!(!out.status.success());
    // The range itself is stored with its API defaults (defaultRequest from default).
    let out = c
        .ok(&[
            "get",
            "limitrange",
            "lr",
            "-o",
            "jsonpath={.spec.limits[0].defaultRequest}",
        ])
        .await;
    assert_eq!(out, r#"{"cpu":"100m","memory":"128Mi"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pods_in_missing_or_terminating_namespaces() {
    let c = Cluster::start(false).await;
    let err = c
        .fails(&["run", "p", "--image=nginx", "-n", "nowhere"])
        .await;
    assert!(
        err.contains(r#"Error from server (NotFound): namespaces "nowhere" not found"#),
        "{err}"
    );
    c.namespace("team").await;
    // A bare API server leaves a deleted namespace Terminating (no namespace controller).
    c.ok(&["delete", "ns", "team", "--wait=false"]).await;
    let err = c.fails(&["run", "p", "--image=nginx", "-n", "team"]).await;
    assert!(
        err.contains(r#"Error from server (Forbidden): pods "p" is forbidden: unable to create new content in namespace team because it is being terminated"#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_their_service_account_and_its_token_volume() {
    let c = Cluster::start(false).await;
    c.ok(&["run", "p", "--image=nginx"]).await;
    let pod = pod_json(&c, "default", "p").await;
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    assert_eq!(pod["spec"]["serviceAccount"], "default");
    let vol = &pod["spec"]["volumes"][0];
    let name = vol["name"].as_str().unwrap();
    let suffix = name.strip_prefix("kube-api-access-").unwrap();
    assert!(
        suffix.len() == 5
            && suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{name}"
    );
    let sources = &vol["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
    assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(vol["projected"]["defaultMode"], 420);
    let mount = &pod["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(mount["name"], name);
    assert_eq!(
        mount["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(mount["readOnly"], true);
    // Turned off on the pod: no volume.
    c.ok(&[
        "run",
        "q",
        "--image=nginx",
        "--overrides",
        r#"{"spec":{"automountServiceAccountToken":false}}"#,
    ])
    .await;
    let pod = pod_json(&c, "default", "q").await;
    assert!(pod["spec"].get("volumes").is_none(), "{pod}");
    // An account that does not exist.
    let err = c
        .fails(&[
            "run",
            "r",
            "--image=nginx",
            "--overrides",
            r#"{"spec":{"serviceAccountName":"ghost"}}"#,
        ])
        .await;
    assert!(
        err.contains(r#"pods "r" is forbidden: error looking up service account default/ghost: serviceaccount "ghost" not found"#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_tolerate_unready_nodes_for_five_minutes() {
    let c = Cluster::start(false).await;
    c.ok(&["run", "p", "--image=nginx"]).await;
    let out = c
        .ok(&["get", "pod", "p", "-o", "jsonpath={range .spec.tolerations[*]}{.key}:{.operator}:{.effect}:{.tolerationSeconds} {end}"])
        .await;
    assert_eq!(
        out.trim(),
        "node.kubernetes.io/not-ready:Exists:NoExecute:300 node.kubernetes.io/unreachable:Exists:NoExecute:300"
    );
}

const COMPLIANT: &str = r#"{"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"ok","image":"nginx","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_enforces_and_warns_by_namespace_labels() {
    let c = Cluster::start(false).await;
    c.namespace("locked").await;
    c.ok(&[
        "label",
        "ns",
        "locked",
        "pod-security.kubernetes.io/enforce=restricted",
    ])
    .await;
    let err = c
        .fails(&["run", "p", "--image=nginx", "--privileged", "-n", "locked"])
        .await;
    assert!(
        err.contains(r#"Error from server (Forbidden): pods "p" is forbidden: violates PodSecurity "restricted:latest": privileged (container "p" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "p" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "p" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "p" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "p" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#),
        "{err}"
    );
    c.ok(&[
        "run",
        "ok",
        "--image=nginx",
        "-n",
        "locked",
        "--overrides",
        COMPLIANT,
    ])
    .await;

    // A workload's template is only warned about: its pods are refused when created.
    let out = c
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "-n",
            "locked",
        ])
        .await;
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation=false)"#),
        "{stderr}"
    );

    c.namespace("watched").await;
    c.ok(&[
        "label",
        "ns",
        "watched",
        "pod-security.kubernetes.io/warn=baseline",
    ])
    .await;
    let out = c
        .kubectl(&["run", "p", "--image=nginx", "--privileged", "-n", "watched"])
        .await;
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"Warning: would violate PodSecurity "baseline:latest": privileged (container "p" must not set securityContext.privileged=true)"#),
        "{stderr}"
    );
    // A compliant pod draws no warning.
    let out = c
        .kubectl(&["run", "fine", "--image=nginx", "-n", "watched"])
        .await;
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const PRESET: &str = "apiVersion: settings.k8s.io/v1alpha1
kind: PodPreset
metadata: {name: db}
spec:
  selector:
    matchLabels: {role: app}
  env:
  - {name: DB_HOST, value: db.local}
  volumes:
  - name: cache
    emptyDir: {}
  volumeMounts:
  - {name: cache, mountPath: /cache}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_presets_inject_into_matching_pods() {
    let c = Cluster::start(false).await;
    let f = c.write("preset.yaml", PRESET);
    c.ok(&["apply", "-f", &f]).await;
    let empty = c.write(
        "empty.yaml",
        "apiVersion: settings.k8s.io/v1alpha1\nkind: PodPreset\nmetadata: {name: empty}\nspec:\n  selector: {}\n",
    );
    let err = c.fails(&["apply", "-f", &empty]).await;
    assert!(
        err.contains(
            "spec.volumes.env.envFrom.volumeMounts: Required value: must specify at least one"
        ),
        "{err}"
    );
    let out = c.ok(&["get", "podpresets"]).await;
    assert!(out.starts_with("NAME") && out.contains("db"), "{out}");
    let out = c.ok(&["explain", "podpreset.spec"]).await;
    assert!(out.contains("volumeMounts"), "{out}");
    let rv = c
        .ok(&[
            "get",
            "podpreset",
            "db",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;

    c.ok(&["run", "app", "--image=nginx", "--labels=role=app"])
        .await;
    let pod = pod_json(&c, "default", "app").await;
    let ctr = &pod["spec"]["containers"][0];
    assert_eq!(ctr["env"][0]["name"], "DB_HOST", "{ctr}");
    assert_eq!(ctr["env"][0]["value"], "db.local");
    assert!(
        ctr["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/cache"),
        "{ctr}"
    );
    assert!(
        pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "cache")
    );
    assert_eq!(
        pod["metadata"]["annotations"]["podpreset.admission.kubernetes.io/podpreset-db"],
        rv.as_str()
    );

    c.ok(&["run", "other", "--image=nginx", "--labels=role=web"])
        .await;
    let pod = pod_json(&c, "default", "other").await;
    assert!(pod["spec"]["containers"][0].get("env").is_none(), "{pod}");

    // The pod's own DB_HOST differs from the preset's: nothing is injected, the pod is admitted.
    c.ok(&[
        "run",
        "mine",
        "--image=nginx",
        "--labels=role=app",
        "--env=DB_HOST=elsewhere",
    ])
    .await;
    let pod = pod_json(&c, "default", "mine").await;
    let ctr = &pod["spec"]["containers"][0];
    assert_eq!(
        ctr["env"],
        serde_json::json!([{"name": "DB_HOST", "value": "elsewhere"}])
    );
    assert!(
        pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["name"] != "cache"),
        "{pod}"
    );
    assert!(
        pod["metadata"].get("annotations").is_none_or(|a| a
            .get("podpreset.admission.kubernetes.io/podpreset-db")
            .is_none()),
        "{pod}"
    );
}

fn ingress_class(name: &str, default: bool) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: {name}\n  annotations: {{ingressclass.kubernetes.io/is-default-class: \"{default}\"}}\nspec: {{controller: example.com/{name}}}\n"
    )
}

/// An Ingress with `spec.ingressClassName` (`class`) and the legacy class annotation
/// (`annotation`) when given.
fn ingress(name: &str, class: Option<&str>, annotation: Option<&str>) -> String {
    let class = class.map_or(String::new(), |c| format!("  ingressClassName: {c}\n"));
    let annotation = annotation.map_or(String::new(), |a| {
        format!("  annotations: {{kubernetes.io/ingress.class: {a}}}\n")
    });
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n{annotation}spec:\n{class}  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}\n"
    )
}

async fn ingress_class_name(c: &Cluster, name: &str) -> String {
    c.ok(&[
        "get",
        "ingress",
        name,
        "-o",
        "jsonpath={.spec.ingressClassName}",
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_without_a_class_get_the_newest_default_class() {
    let c = Cluster::start(false).await;
    let apply = async |file: &str, manifest: String| {
        let f = c.write(file, &manifest);
        c.ok(&["apply", "-f", &f]).await;
    };
    // No default class yet: the Ingress stays without one, and an update does not add it.
    apply("i0.yaml", ingress("early", None, None)).await;
    assert_eq!(ingress_class_name(&c, "early").await, "");
    apply("c1.yaml", ingress_class("old-default", true)).await;
    apply("c2.yaml", ingress_class("plain", false)).await;
    c.ok(&["label", "ingress", "early", "touched=yes"]).await;
    assert_eq!(ingress_class_name(&c, "early").await, "");
    apply("i1.yaml", ingress("first", None, None)).await;
    assert_eq!(ingress_class_name(&c, "first").await, "old-default");
    // Creation timestamps have one-second resolution: make the second default newer.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    apply("c3.yaml", ingress_class("new-default", true)).await;
    apply("i2.yaml", ingress("second", None, None)).await;
    assert_eq!(ingress_class_name(&c, "second").await, "new-default");
    // A class named either way is kept.
    apply("i3.yaml", ingress("chosen", Some("plain"), None)).await;
    assert_eq!(ingress_class_name(&c, "chosen").await, "plain");
    apply("i4.yaml", ingress("legacy", None, Some("nginx"))).await;
    assert_eq!(ingress_class_name(&c, "legacy").await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_ingress_class_plugin_can_be_disabled() {
    let c = Cluster::start_configured(false, |cfg| {
        cfg.disable_admission_plugins = vec!["DefaultIngressClass".into()];
    })
    .await;
    let f = c.write("c.yaml", &ingress_class("standard", true));
    c.ok(&["apply", "-f", &f]).await;
    let f = c.write("i.yaml", &ingress("plain", None, None));
    c.ok(&["apply", "-f", &f]).await;
    assert_eq!(ingress_class_name(&c, "plain").await, "");
}
