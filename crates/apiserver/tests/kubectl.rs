//! The API server driven by the real kubectl (`/usr/bin/kubectl`, which picks kubectl 1.33
//! for a server that reports 1.33) and by the `kube` client, on SQLite and on a real etcd.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::process::Command;

use apiserver::testing::Cluster;

const APP: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
";

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let c = super::Cluster::start(false).await;
                    super::$name(&c).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let c = super::Cluster::start(true).await;
                    super::$name(&c).await;
                }
            )*
        }
    };
}

on_both_backends!(
    system_namespaces_exist,
    apply_create_then_change,
    label_annotate_patch_scale,
    errors_read_as_kubernetes_writes_them,
    delete_and_watch,
    kube_client_pagination_and_watch,
    services_get_addresses_and_node_ports,
    workload_defaults_and_selector_rules,
    server_side_apply_creates_and_updates,
    server_side_apply_list_items_and_removal,
    tables_look_as_kubernetes_prints_them,
    tables_of_less_common_kinds,
    volume_tables_as_upstream_prints_them,
    deleting_a_namespace_leaves_it_terminating,
    kubectl_create_sends_protobuf,
    events_expire,
);

async fn system_namespaces_exist(c: &Cluster) {
    let out = c.ok(&["get", "ns"]).await;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{ns} missing:\n{out}"
        );
    }
    assert!(out.starts_with("NAME"), "{out}");
    let version = c.ok(&["version", "-o", "json"]).await;
    assert!(version.contains("\"minor\": \"33\""), "{version}");
    let out = c.ok(&["api-resources"]).await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("deployments") && l.contains("deploy") && l.contains("apps/v1")),
        "{out}"
    );
    let out = c.ok(&["explain", "deploy.spec.replicas"]).await;
    assert!(
        out.contains("FIELD: replicas <integer>") && out.contains("Number of desired pods"),
        "{out}"
    );
    // The kubernetes Service points at this server (cluster DNS is `rkube server`'s
    // packaged manifest: crates/rkube/tests/manifests.rs).
    let ep = c.ok(&["get", "endpoints", "kubernetes"]).await;
    let port = c.server.addr.port().to_string();
    assert!(ep.contains(&format!("127.0.0.1:{port}")), "{ep}");
    let slice = c
        .ok(&[
            "get",
            "endpointslice",
            "kubernetes",
            "-o",
            "jsonpath={.endpoints[0].addresses[0]}:{.ports[0].port}",
        ])
        .await;
    assert_eq!(slice, format!("127.0.0.1:{port}"));
}

async fn apply_create_then_change(c: &Cluster) {
    let f = c.write("app.yaml", APP);
    let out = c.ok(&["apply", "-f", &f]).await;
    assert!(
        out.contains("deployment.apps/web created") && out.contains("service/web created"),
        "{out}"
    );
    let out = c.ok(&["get", "all"]).await;
    assert!(
        out.contains("deployment.apps/web") && out.contains("service/web"),
        "{out}"
    );
    assert!(out.contains("0/2"), "{out}");
    let out = c.ok(&["get", "deploy", "web", "-o", "wide"]).await;
    assert!(
        out.contains("CONTAINERS") && out.contains("nginx:1.27") && out.contains("app=web"),
        "{out}"
    );

    // Change the manifest and apply again: a 3-way strategic merge patch.
    let f = c.write(
        "app.yaml",
        &APP.replace("replicas: 2", "replicas: 4")
            .replace("nginx:1.27", "nginx:1.28"),
    );
    let out = c.ok(&["apply", "-f", &f]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    let got = c
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.generation} {.spec.template.spec.containers[0].image}"])
        .await;
    assert_eq!(got, "4 2 nginx:1.28");
    let yaml = c.ok(&["get", "deploy", "web", "-o", "yaml"]).await;
    assert!(
        yaml.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{yaml}"
    );
}

async fn label_annotate_patch_scale(c: &Cluster) {
    let f = c.write("app.yaml", APP);
    c.ok(&["apply", "-f", &f]).await;
    c.ok(&["label", "deploy", "web", "tier=front"]).await;
    c.ok(&["annotate", "deploy", "web", "note=hello"]).await;
    c.ok(&["scale", "deploy", "web", "--replicas=5"]).await;
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
    ])
    .await;
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:2"}]"#,
    ])
    .await;
    // Strategic (kubectl's default): containers merge by name.
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1"}]}}}}"#,
    ])
    .await;
    let got = c
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.labels.merged} {.metadata.annotations.note} {.spec.template.spec.containers[*].image}"])
        .await;
    assert_eq!(got, "5 front yes hello nginx:2 busybox:1");
    let out = c
        .ok(&["get", "deploy", "-l", "tier in (front,back)", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web");
    let out = c
        .ok(&["get", "deploy", "-l", "tier!=front", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "");
}

async fn errors_read_as_kubernetes_writes_them(c: &Cluster) {
    let err = c.fails(&["get", "deploy", "nope"]).await;
    assert!(
        err.contains(r#"Error from server (NotFound): deployments.apps "nope" not found"#),
        "{err}"
    );
    let bad = c.write(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains("Invalid") && err.contains("metadata.name"),
        "{err}"
    );
    let orphan = c.write(
        "orphan.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: missing\n",
    );
    let err = c.fails(&["apply", "-f", &orphan]).await;
    assert!(err.contains(r#"namespaces "missing" not found"#), "{err}");
    let broken = c.write(
        "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n",
    );
    let err = c.fails(&["apply", "-f", &broken]).await;
    assert!(err.contains("error"), "{err}");
    // An update carrying an old resourceVersion loses.
    let cm = c.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: '1'\n",
    );
    c.ok(&["apply", "-f", &cm]).await;
    let stale = c.ok(&["get", "cm", "cfg", "-o", "yaml"]).await;
    c.ok(&[
        "patch",
        "cm",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"a":"2"}}"#,
    ])
    .await;
    let stale = c.write("stale.yaml", &stale);
    let err = c.fails(&["replace", "-f", &stale]).await;
    assert!(
        err.contains("Conflict") && err.contains("the object has been modified"),
        "{err}"
    );
    // kubectl validates strictly on the server: a misspelt field is refused, and with
    // --validate=false it is dropped, as Kubernetes does.
    let typo = c.write("typo.yaml", &APP.replace("replicas: 2", "replica: 2"));
    let err = c.fails(&["apply", "-f", &typo]).await;
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.replica""#),
        "{err}"
    );
    let warned = c.kubectl(&["apply", "--validate=warn", "-f", &typo]).await;
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(
        warned.status.success() && stderr.contains(r#"Warning: unknown field "spec.replica""#),
        "{stderr}"
    );
    c.ok(&["apply", "--validate=false", "-f", &typo]).await;
    let yaml = c.ok(&["get", "deploy", "web", "-o", "yaml"]).await;
    assert!(!yaml.contains("replica: 2"), "{yaml}");
    // No credentials: 401.
    let anon = c.write(
        "anon.yaml",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    insecure-skip-tls-verify: true\nusers:\n- name: anon\n  user: {{token: not-a-valid-token}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: anon}}\ncurrent-context: c\n",
            c.server.addr
        ),
    );
    let out = Command::new("kubectl")
        .args(["--kubeconfig", &anon, "get", "ns"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        // kubectl words a 401 two ways, depending on whether discovery or the request itself
        // got it first; both come only from a 401 response.
        !out.status.success()
            && (err.contains("the server has asked for the client to provide credentials")
                || err.contains("You must be logged in to the server (Unauthorized)")),
        "{err}"
    );
}

async fn delete_and_watch(c: &Cluster) {
    let f = c.write("app.yaml", APP);
    c.ok(&["apply", "-f", &f]).await;
    // A watch started now sees what happens next.
    let kubeconfig = c.kubeconfig();
    let watcher = std::process::Command::new("kubectl")
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .args(["get", "deploy", "-w", "--output-watch-events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let out = c.ok(&["delete", "-f", &f]).await;
    assert!(out.contains(r#"deployment.apps "web" deleted"#), "{out}");
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let mut watcher = watcher;
    let _ = watcher.kill();
    let out = watcher.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        seen.contains("ADDED") && seen.contains("DELETED"),
        "watch saw:\n{seen}"
    );
    let out = c.ok(&["get", "deploy"]).await;
    assert!(out.is_empty(), "{out}");
}

async fn kube_client_pagination_and_watch(c: &Cluster) {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
    let client = c.client().await;
    // A namespace of its own: `default` also holds kube-root-ca.crt.
    c.ok(&["create", "namespace", "pages"]).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "pages");
    let start = cms.list(&ListParams::default()).await.unwrap();
    let rv = start.metadata.resource_version.clone().unwrap();
    for i in 0..25 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("cm-{i:02}"), "labels": {"n": i.to_string()}},
            "data": {"i": i.to_string()},
        }))
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    // Pages of 10, one snapshot: an object created between pages is not in it.
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(10);
    loop {
        let page = cms.list(&lp).await.unwrap();
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        if names.len() == 10 {
            let late: ConfigMap =
                serde_json::from_value(serde_json::json!({"metadata": {"name": "late"}})).unwrap();
            cms.create(&PostParams::default(), &late).await.unwrap();
        }
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => lp = ListParams::default().limit(10).continue_token(&t),
            _ => break,
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(names, want);
    // A list right after a write sees it (a consistent read, though served from memory).
    let all = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 26);
    let metrics = c.ok(&["get", "--raw", "/metrics"]).await;
    assert!(counter(&metrics, "apiserver_list_total{source=\"cache\"}") >= 3);
    // A watch from the list's resourceVersion replays the 25 creations in order.
    let mut w = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 25 {
        match tokio::time::timeout(std::time::Duration::from_secs(10), w.next())
            .await
            .unwrap()
        {
            Some(Ok(WatchEvent::Added(cm))) => seen.push(cm.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, want);
    let metrics = c.ok(&["get", "--raw", "/metrics"]).await;
    assert!(counter(&metrics, "apiserver_watch_total{source=\"cache\"}") >= 1);
}

/// A counter's value in Prometheus text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

async fn services_get_addresses_and_node_ports(c: &Cluster) {
    let out = c
        .ok(&[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .await;
    assert_eq!(out, "10.43.0.1");
    let mut manifest = String::new();
    for i in 0..10 {
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  type: NodePort\n  selector: {{app: a}}\n  ports: [{{port: 80}}]\n"
        ));
    }
    let f = c.write("svcs.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    let ips = c.ok(&["get", "svc", "-o", "jsonpath={range .items[*]}{.spec.clusterIP} {.spec.ports[0].nodePort} {.spec.ports[0].targetPort} {.spec.type}{\"\\n\"}{end}"]).await;
    let rows: Vec<Vec<&str>> = ips.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(rows.len(), 11, "{ips}");
    let mut seen_ips = std::collections::HashSet::new();
    let mut seen_ports = std::collections::HashSet::new();
    for r in &rows {
        let ip: std::net::Ipv4Addr = r[0].parse().unwrap();
        assert_eq!(&ip.octets()[..2], &[10, 43], "{ip}");
        assert!(seen_ips.insert(ip), "duplicate {ip}");
        if r[3] == "NodePort" {
            let port: u16 = r[1].parse().unwrap();
            assert!((30000..=32767).contains(&port), "{port}");
            assert!(seen_ports.insert(port), "duplicate {port}");
            assert_eq!(r[2], "80");
        }
    }
    // An address in use is refused; once its Service is gone it can be had.
    // Replacing a Service with a manifest that leaves defaults out defaults them again and
    // keeps its address.
    let before = c
        .ok(&[
            "get",
            "svc",
            "s0",
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}",
        ])
        .await;
    let s0 = c.write("s0.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s0}\nspec:\n  type: NodePort\n  selector: {app: b}\n  ports: [{port: 80}]\n");
    c.ok(&["replace", "-f", &s0]).await;
    let after = c.ok(&["get", "svc", "s0", "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort} {.spec.sessionAffinity} {.spec.selector.app}"]).await;
    assert_eq!(after, format!("{before} None b"));
    let taken = rows.iter().find(|r| r[3] == "NodePort").unwrap()[0].to_string();
    let owner = c
        .ok(&[
            "get",
            "svc",
            "-o",
            &format!("jsonpath={{.items[?(@.spec.clusterIP==\"{taken}\")].metadata.name}}"),
        ])
        .await;
    let want = c.write("want.yaml", &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: want}}\nspec:\n  clusterIP: {taken}\n  ports: [{{port: 1}}]\n"));
    let err = c.fails(&["apply", "-f", &want]).await;
    assert!(err.contains("provided IP is already allocated"), "{err}");
    c.ok(&["delete", "svc", owner.trim()]).await;
    c.ok(&["apply", "-f", &want]).await;
    let out = c
        .ok(&["get", "svc", "want", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    assert_eq!(out, taken);
    // A Service whose deletion waited on a finalizer gives its address back when the
    // finalizer goes, as a plain delete does.
    c.ok(&[
        "patch",
        "svc",
        "want",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await;
    c.ok(&["delete", "svc", "want", "--wait=false"]).await;
    c.ok(&[
        "patch",
        "svc",
        "want",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await;
    let again = c.write("again.yaml", &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: again}}\nspec:\n  clusterIP: {taken}\n  ports: [{{port: 1}}]\n"));
    c.ok(&["apply", "-f", &again]).await;
}

async fn workload_defaults_and_selector_rules(c: &Cluster) {
    let f = c.write("app.yaml", APP);
    c.ok(&["apply", "-f", &f]).await;
    let got = c
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.strategy.type} {.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.restartPolicy} {.spec.template.spec.dnsPolicy} {.spec.template.spec.terminationGracePeriodSeconds} {.spec.template.spec.containers[0].imagePullPolicy}"])
        .await;
    assert_eq!(
        got,
        "RollingUpdate 25% 10 600 Always ClusterFirst 30 IfNotPresent"
    );
    let err = c
        .fails(&["patch", "deploy", "web", "--type=merge", "-p", r#"{"spec":{"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}}}}}"#])
        .await;
    assert!(
        err.contains("spec.selector") && err.contains("field is immutable"),
        "{err}"
    );
    let bad = c.write(
        "bad.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: x}]}\n",
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains("`selector` does not match template `labels`"),
        "{err}"
    );
    let job = c.write(
        "job.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: pi, image: busybox}]\n",
    );
    c.ok(&["apply", "-f", &job]).await;
    let got = c
        .ok(&["get", "job", "pi", "-o", "jsonpath={.spec.completions} {.spec.parallelism} {.spec.backoffLimit} {.spec.template.metadata.labels.job-name}"])
        .await;
    assert_eq!(got, "1 1 6 pi");
    let always = c.write(
        "always.yaml",
        &std::fs::read_to_string(&job)
            .unwrap()
            .replace("pi}", "pi2}")
            .replace("Never", "Always"),
    );
    let err = c.fails(&["apply", "-f", &always]).await;
    assert!(err.contains("Unsupported value: \"Always\""), "{err}");
}

async fn server_side_apply_creates_and_updates(c: &Cluster) {
    let f = c.write("app.yaml", APP);
    let out = c.ok(&["apply", "--server-side", "-f", &f]).await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let f = c.write("app.yaml", &APP.replace("replicas: 2", "replicas: 3"));
    c.ok(&["apply", "--server-side", "-f", &f]).await;
    let got = c
        .ok(&["get", "deploy", "web", "--show-managed-fields", "-o", "jsonpath={.spec.replicas} {.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}"])
        .await;
    assert_eq!(got, "3 kubectl Apply");
    // Another manager changing a field kubectl owns conflicts; --force-conflicts takes it.
    let f5 = c.write("app5.yaml", &APP.replace("replicas: 2", "replicas: 5"));
    let err = c
        .fails(&["apply", "--server-side", "--field-manager=bob", "-f", &f5])
        .await;
    assert!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#),
        "{err}"
    );
    let same = c.write("app3.yaml", &APP.replace("replicas: 2", "replicas: 3"));
    c.ok(&["apply", "--server-side", "--field-manager=bob", "-f", &same])
        .await;
    c.ok(&[
        "apply",
        "--server-side",
        "--field-manager=bob",
        "--force-conflicts",
        "-f",
        &f5,
    ])
    .await;
    let got = c
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(got, "5");
    let err = c.fails(&["apply", "--server-side", "-f", &same]).await;
    assert!(
        err.contains(r#"conflict with "bob": .spec.replicas"#),
        "{err}"
    );
    // Other writes own what they change (an Update entry) and take it from the appliers.
    c.ok(&["patch", "deploy", "web", "-p", r#"{"spec":{"replicas":7}}"#])
        .await;
    let got = c
        .ok(&["get", "deploy", "web", "--show-managed-fields", "-o", r#"jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation}={.fieldsV1.f:spec.f:replicas} {end}"#])
        .await;
    assert!(got.contains("kubectl-patch/Update={}"), "{got}");
    assert!(got.contains("bob/Apply= "), "{got}");
    let err = c
        .fails(&["apply", "--server-side", "--field-manager=bob", "-f", &f5])
        .await;
    assert!(
        err.contains(r#"conflict with "kubectl-patch" using apps/v1: .spec.replicas"#),
        "{err}"
    );
}

const TWO_CONTAINERS: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: pair
spec:
  selector:
    matchLabels: {app: pair}
  template:
    metadata:
      labels: {app: pair}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env: [{name: A, value: a}, {name: B, value: b}]
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox
";

async fn server_side_apply_list_items_and_removal(c: &Cluster) {
    let f = c.write("pair.yaml", TWO_CONTAINERS);
    c.ok(&["apply", "--server-side", "-f", &f]).await;
    // List items are keyed as upstream keys them: ports by number and protocol.
    let fields = c
        .ok(&[
            "get",
            "deploy",
            "pair",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[0].fieldsV1}",
        ])
        .await;
    assert!(
        fields.contains(r#""k:{\"containerPort\":80,\"protocol\":\"TCP\"}""#)
            && fields.contains(r#""k:{\"name\":\"web\"}""#),
        "{fields}"
    );
    // Another applier changing a field inside an item kubectl owns conflicts, named by key.
    let bob = c.write(
        "pair-bob.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: pair}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: web, image: nginx:1.28}\n",
    );
    let err = c
        .fails(&["apply", "--server-side", "--field-manager=bob", "-f", &bob])
        .await;
    assert!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.template.spec.containers[name="web"].image"#),
        "{err}"
    );
    // ... and a field of its own inside the item does not.
    let bob_env = c.write(
        "pair-bob-env.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: pair}\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        env: [{name: C, value: c}]\n",
    );
    c.ok(&[
        "apply",
        "--server-side",
        "--field-manager=bob",
        "-f",
        &bob_env,
    ])
    .await;
    // kubectl stops applying env B and the sidecar: both are removed; bob's C stays.
    let fewer = c.write(
        "pair.yaml",
        &TWO_CONTAINERS
            .replace(", {name: B, value: b}", "")
            .replace("      - name: sidecar\n        image: busybox\n", ""),
    );
    c.ok(&["apply", "--server-side", "-f", &fewer]).await;
    let got = c
        .ok(&["get", "deploy", "pair", "-o", r#"jsonpath={range .spec.template.spec.containers[*]}{.name}:{range .env[*]}{.name}{end} {end}"#])
        .await;
    assert_eq!(got.trim(), "web:AC", "{got}");
}

async fn tables_of_less_common_kinds(c: &Cluster) {
    let f = c.write(
        "less.yaml",
        r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: example.com/fast
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: web}
spec:
  controller: example.com/ingress
  parameters: {apiGroup: k8s.example.com, kind: Params, name: p}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny}
spec:
  podSelector: {matchLabels: {app: db}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: db}}
---
apiVersion: v1
kind: PodTemplate
metadata: {name: tpl}
template:
  metadata: {labels: {app: db}}
  spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1}
addressType: IPv4
endpoints: [{addresses: [10.42.0.5]}, {addresses: [10.42.0.6]}]
ports: [{port: 5432}]
"#,
    );
    c.ok(&["apply", "-f", &f]).await;
    let lines = |out: String| -> Vec<Vec<String>> {
        out.lines()
            .map(|l| {
                l.split("   ")
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    };
    let t = lines(c.ok(&["get", "storageclass", "fast"]).await);
    assert_eq!(
        t[0],
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    assert_eq!(
        t[1][..5],
        [
            "fast (default)",
            "example.com/fast",
            "Delete",
            "Immediate",
            "false"
        ]
    );
    let t = lines(c.ok(&["get", "ingressclass", "web"]).await);
    assert_eq!(t[0], ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]);
    assert_eq!(
        t[1][..3],
        ["web", "example.com/ingress", "Params.k8s.example.com/p"]
    );
    let t = lines(c.ok(&["get", "networkpolicy", "deny"]).await);
    assert_eq!(t[0], ["NAME", "POD-SELECTOR", "AGE"]);
    assert_eq!(t[1][..2], ["deny", "app=db"]);
    let t = lines(c.ok(&["get", "pdb", "pdb"]).await);
    assert_eq!(
        t[0],
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(t[1][..4], ["pdb", "2", "N/A", "0"]);
    let t = lines(c.ok(&["get", "podtemplate", "tpl"]).await);
    assert_eq!(t[0], ["NAME", "CONTAINERS", "IMAGES", "POD LABELS"]);
    assert_eq!(t[1], ["tpl", "c", "busybox", "app=db"]);
    let t = lines(c.ok(&["get", "endpointslice", "db-1"]).await);
    assert_eq!(t[0], ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    assert_eq!(t[1][..4], ["db-1", "IPv4", "5432", "10.42.0.5,10.42.0.6"]);
}

async fn tables_look_as_kubernetes_prints_them(c: &Cluster) {
    let f = c.write(
        "misc.yaml",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: cj}\nspec:\n  schedule: \"*/5 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: c, image: busybox}]\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: ds}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: busybox}]}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n",
    );
    c.ok(&["apply", "-f", &f]).await;
    let out = c.ok(&["get", "cronjobs"]).await;
    assert!(
        out.starts_with("NAME   SCHEDULE      TIMEZONE   SUSPEND   ACTIVE   LAST SCHEDULE   AGE"),
        "{out}"
    );
    assert!(
        out.contains("cj     */5 * * * *   <none>     False     0        <none>"),
        "{out}"
    );
    let out = c.ok(&["get", "ds"]).await;
    assert!(
        out.starts_with(
            "NAME   DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR   AGE"
        ),
        "{out}"
    );
    let out = c.ok(&["get", "pvc"]).await;
    assert!(out.contains("data   Pending"), "{out}");
    let out = c.ok(&["get", "ns", "-o", "wide"]).await;
    assert!(out.starts_with("NAME"), "{out}");
}

/// kubectl's table output as rows of cells, the header first. Cells are cut at the header's
/// column starts, so empty cells stay (kubectl pads columns by at least three spaces; cells
/// such as `gold (default)` hold single ones).
fn table_cells(out: &str) -> Vec<Vec<String>> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    let mut starts = vec![0];
    let b = header.as_bytes();
    for i in 1..b.len() {
        if b[i] != b' ' && i >= 2 && b[i - 1] == b' ' && b[i - 2] == b' ' {
            starts.push(i);
        }
    }
    std::iter::once(header)
        .chain(lines)
        .map(|l| {
            (0..starts.len())
                .map(|k| {
                    let end = starts.get(k + 1).copied().unwrap_or(l.len()).min(l.len());
                    l.get(starts[k].min(end)..end)
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .collect()
        })
        .collect()
}

/// PersistentVolumes, claims and StorageClasses as upstream's printers show them: access
/// modes in a fixed order once each, the beta class annotation before the field,
/// Terminating once deleted, `<unset>` for unset attribute classes, the capacity of a claim
/// only once it names its volume, `(default)` for a class marked default by the beta
/// annotation.
async fn volume_tables_as_upstream_prints_them(c: &Cluster) {
    let f = c.write(
        "volumes.yaml",
        r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: gold
  annotations: {storageclass.beta.kubernetes.io/is-default-class: "true"}
provisioner: example.com/gold
allowVolumeExpansion: true
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-a
  annotations: {volume.beta.kubernetes.io/storage-class: beta-class}
spec:
  capacity: {storage: 1024Mi}
  accessModes: [ReadWriteMany, ReadWriteOnce, ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: field-class
  volumeAttributesClassName: fast-iops
  claimRef: {namespace: default, name: data}
  hostPath: {path: /tmp/pv-a}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-b}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadOnlyMany]
  hostPath: {path: /tmp/pv-b}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  storageClassName: gold
  volumeName: pv-a
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: old
  annotations: {volume.beta.kubernetes.io/storage-class: slow}
spec:
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
"#,
    );
    c.ok(&["apply", "-f", &f]).await;
    c.ok(&[
        "patch",
        "pvc",
        "data",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Bound","capacity":{"storage":"1024Mi"},"accessModes":["ReadWriteOnce","ReadWriteOnce"]}}"#,
    ])
    .await;
    // The protection finalizer keeps a deleted volume, Terminating, with no controller here.
    c.ok(&["delete", "pv", "pv-b", "--wait=false"]).await;

    let t = table_cells(&c.ok(&["get", "pv", "-o", "wide"]).await);
    assert_eq!(
        t[0],
        [
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE",
            "VOLUMEMODE"
        ]
    );
    let row = |t: &[Vec<String>], name: &str| -> Vec<String> {
        t.iter().find(|r| r[0] == name).cloned().unwrap_or_default()
    };
    let pv_a = row(&t, "pv-a");
    assert_eq!(
        pv_a[..9],
        [
            "pv-a",
            "1Gi",
            "RWO,RWX",
            "Delete",
            "Pending",
            "default/data",
            "beta-class",
            "fast-iops",
            ""
        ],
        "{t:?}"
    );
    assert_eq!(pv_a[10], "Filesystem", "{t:?}");
    let pv_b = row(&t, "pv-b");
    assert_eq!(
        pv_b[..9],
        [
            "pv-b",
            "2Gi",
            "ROX",
            "Retain",
            "Terminating",
            "",
            "",
            "<unset>",
            ""
        ],
        "{t:?}"
    );

    let t = table_cells(&c.ok(&["get", "pvc", "-o", "wide"]).await);
    assert_eq!(
        t[0],
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE",
            "VOLUMEMODE"
        ]
    );
    let data = row(&t, "data");
    assert_eq!(
        data[..7],
        ["data", "Bound", "pv-a", "1Gi", "RWO", "gold", "<unset>"],
        "{t:?}"
    );
    assert_eq!(data[8], "Filesystem", "{t:?}");
    // No volume yet: no capacity or access modes; the beta annotation is its class.
    let old = row(&t, "old");
    assert_eq!(
        old[..7],
        ["old", "Pending", "", "", "", "slow", "<unset>"],
        "{t:?}"
    );
    c.ok(&["delete", "pvc", "old", "--wait=false"]).await;
    let t = table_cells(&c.ok(&["get", "pvc", "old"]).await);
    assert_eq!(t[1][1], "Terminating", "{t:?}");

    let t = table_cells(&c.ok(&["get", "sc", "gold"]).await);
    assert_eq!(
        t[1][..5],
        [
            "gold (default)",
            "example.com/gold",
            "Delete",
            "Immediate",
            "true"
        ],
        "{t:?}"
    );
}

/// A bare API server (no namespace controller) only marks a deleted namespace Terminating,
/// as kube-apiserver does; it goes once its `finalize` subresource empties spec.finalizers.
async fn deleting_a_namespace_leaves_it_terminating(c: &Cluster) {
    let ns = c.write(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    );
    c.ok(&["apply", "-f", &ns]).await;
    let f = c.write("app.yaml", APP);
    c.ok(&["apply", "-n", "team", "-f", &f]).await;
    let out = c.ok(&["delete", "ns", "team", "--wait=false"]).await;
    assert!(out.contains(r#"namespace "team" deleted"#), "{out}");
    let out = c
        .ok(&[
            "get",
            "ns",
            "team",
            "-o",
            "jsonpath={.status.phase} {.spec.finalizers}",
        ])
        .await;
    assert_eq!(out, r#"Terminating ["kubernetes"]"#);
    // Nothing new goes into it.
    let err = c
        .fails(&["create", "configmap", "late", "-n", "team"])
        .await;
    assert!(
        err.contains(
            "unable to create new content in namespace team because it is being terminated"
        ),
        "{err}"
    );
    // spec.finalizers does not change through the namespace itself.
    c.ok(&[
        "patch",
        "ns",
        "team",
        "--type=merge",
        "-p",
        r#"{"spec":{"finalizers":[]}}"#,
    ])
    .await;
    let out = c
        .ok(&["get", "ns", "team", "-o", "jsonpath={.spec.finalizers}"])
        .await;
    assert_eq!(out, r#"["kubernetes"]"#);
    // `finalize` checks the names it is given...
    let bad = c.write(
        "bad.json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"},"spec":{"finalizers":["nope"]}}"#,
    );
    let err = c
        .fails(&[
            "replace",
            "--raw",
            "/api/v1/namespaces/team/finalize",
            "-f",
            &bad,
        ])
        .await;
    assert!(
        err.contains(r#"Unsupported value: \"nope\""#)
            || err.contains(r#"Unsupported value: "nope""#),
        "{err}"
    );
    // ...and once they are empty the terminating namespace goes.
    let done = c.write(
        "done.json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"},"spec":{"finalizers":[]}}"#,
    );
    c.ok(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/team/finalize",
        "-f",
        &done,
    ])
    .await;
    let out = c.ok(&["get", "ns", "-o", "name"]).await;
    assert!(!out.contains("namespace/team"), "{out}");
    let err = c.fails(&["delete", "ns", "kube-system"]).await;
    assert!(
        err.contains("Forbidden") && err.contains("may not be deleted"),
        "{err}"
    );
}

async fn kubectl_create_sends_protobuf(c: &Cluster) {
    // These kubectl commands encode their objects in protobuf.
    c.ok(&["create", "namespace", "team"]).await;
    c.ok(&[
        "create",
        "configmap",
        "c1",
        "-n",
        "team",
        "--from-literal=a=b",
        "--from-literal=x=y",
    ])
    .await;
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "team",
        "--from-literal=pw=hunter2",
    ])
    .await;
    c.ok(&[
        "create",
        "deployment",
        "d1",
        "-n",
        "team",
        "--image=nginx:1.27",
        "--replicas=3",
        "--port=80",
    ])
    .await;
    c.ok(&[
        "create",
        "service",
        "nodeport",
        "svc1",
        "-n",
        "team",
        "--tcp=80:8080",
    ])
    .await;
    c.ok(&[
        "create",
        "job",
        "j1",
        "-n",
        "team",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ])
    .await;
    c.ok(&["create", "serviceaccount", "bot", "-n", "team"])
        .await;
    let got = c
        .ok(&[
            "get",
            "cm",
            "c1",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.a}{.data.x}",
        ])
        .await;
    assert_eq!(got, "by");
    let got = c
        .ok(&[
            "get",
            "secret",
            "s1",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.pw}",
        ])
        .await;
    assert_eq!(got, "aHVudGVyMg==");
    let got = c
        .ok(&["get", "deploy", "d1", "-n", "team", "-o", "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.strategy.type}"])
        .await;
    assert_eq!(got, "3 d1 nginx:1.27 80 RollingUpdate");
    let got = c
        .ok(&[
            "get",
            "svc",
            "svc1",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.type} {.spec.ports[0].port} {.spec.ports[0].targetPort}",
        ])
        .await;
    assert_eq!(got, "NodePort 80 8080");
    let got = c
        .ok(&[
            "get",
            "job",
            "j1",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].command}",
        ])
        .await;
    assert_eq!(got, r#"["echo","hi"]"#);
    let err = c.fails(&["create", "namespace", "team"]).await;
    assert!(err.contains("AlreadyExists"), "{err}");
    // `kubectl autoscale` writes autoscaling/v1; it is stored as v2 and readable as both.
    c.ok(&[
        "autoscale",
        "deploy",
        "d1",
        "-n",
        "team",
        "--max=5",
        "--cpu-percent=70",
    ])
    .await;
    let v2 = c
        .ok(&[
            "get",
            "hpa",
            "d1",
            "-n",
            "team",
            "-o",
            "jsonpath={.apiVersion} {.spec.metrics[0].resource.target.averageUtilization}",
        ])
        .await;
    assert_eq!(v2, "autoscaling/v2 70");
    let v1 = c
        .ok(&[
            "get",
            "--raw",
            "/apis/autoscaling/v1/namespaces/team/horizontalpodautoscalers/d1",
        ])
        .await;
    let v1: serde_json::Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
    c.ok(&[
        "create",
        "role",
        "r",
        "-n",
        "team",
        "--verb=get,list",
        "--resource=pods",
    ])
    .await;
    let got = c
        .ok(&["get", "role", "r", "-n", "team", "-o", "jsonpath={.rules}"])
        .await;
    assert_eq!(
        got,
        r#"[{"apiGroups":[""],"resources":["pods"],"verbs":["get","list"]}]"#
    );
    c.ok(&[
        "create",
        "rolebinding",
        "rb",
        "-n",
        "team",
        "--role=r",
        "--user=alice",
    ])
    .await;
    c.ok(&["create", "quota", "q", "-n", "team", "--hard=pods=2,cpu=1"])
        .await;
    c.ok(&[
        "create",
        "ingress",
        "ing",
        "-n",
        "team",
        "--rule=foo.com/bar*=svc1:8080",
    ])
    .await;
    let got = c
        .ok(&["get", "ingress", "ing", "-n", "team", "-o", "jsonpath={.spec.rules[0].host} {.spec.rules[0].http.paths[0].backend.service.port.number}"])
        .await;
    assert_eq!(got, "foo.com 8080");
}

async fn events_expire(c: &Cluster) {
    // The test server keeps Events for 3 s (`--event-ttl`); other objects stay.
    let f = c.write(
        "ev.yaml",
        "apiVersion: v1\nkind: Event\nmetadata: {name: ev1}\ninvolvedObject: {kind: Pod, name: web-1, namespace: default}\nreason: Scheduled\nmessage: assigned\ntype: Normal\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: stays}\n",
    );
    c.ok(&["apply", "-f", &f]).await;
    let out = c.ok(&["get", "events"]).await;
    assert!(
        out.contains("Scheduled") && out.contains("pod/web-1"),
        "{out}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = c.ok(&["get", "events", "-o", "name"]).await;
        if out.trim().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "event never expired: {out}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    c.ok(&["get", "cm", "stays"]).await;
}

/// `kubectl apply -f` of a `List` (what `kubectl get -o yaml` writes for several objects):
/// kubectl validates its items itself, against `/openapi/v2`, which it reads in protobuf
/// only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_apply_with_client_side_validation() {
    let c = Cluster::start(false).await;
    c.ok(&["create", "configmap", "a", "--from-literal=x=1"])
        .await;
    c.ok(&["create", "deployment", "web", "--image=nginx"])
        .await;
    let list = c.ok(&["get", "configmaps,deployments", "-o", "yaml"]).await;
    assert!(list.contains("kind: List"), "{list}");
    let f = c.write("list.yaml", &list.replace("x: \"1\"", "x: \"2\""));
    let out = c.ok(&["apply", "-f", &f]).await;
    assert!(out.contains("configmap/a configured"), "{out}");
    let x = c
        .ok(&["get", "configmap", "a", "-o", "jsonpath={.data.x}"])
        .await;
    assert_eq!(x, "2");
    // An unknown field in an item is caught by kubectl's own validation.
    let bad = c.write(
        "bad.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n  dataa: {x: y}\n",
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(err.contains("unknown field \"dataa\""), "{err}");
    c.fails(&["get", "configmap", "b"]).await;
}

/// Client-side `kubectl apply` computes its patch with the merge keys `/openapi/v2` gives
/// (`x-kubernetes-patch-merge-key`): a re-apply changing one container leaves what another
/// client set on the other container alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_merges_lists_by_the_served_merge_keys() {
    let c = Cluster::start(false).await;
    let deployment = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: two}}\nspec:\n  selector: {{matchLabels: {{app: two}}}}\n  template:\n    metadata: {{labels: {{app: two}}}}\n    spec:\n      containers:\n      - {{name: a, image: {image}}}\n      - {{name: b, image: busybox}}\n"
        )
    };
    let f = c.write("two.yaml", &deployment("nginx:1"));
    c.ok(&["apply", "-f", &f]).await;
    c.ok(&["set", "env", "deployment/two", "-c", "b", "MODE=debug"])
        .await;
    let f = c.write("two.yaml", &deployment("nginx:2"));
    c.ok(&["apply", "-f", &f]).await;
    let got = c
        .ok(&[
            "get",
            "deployment",
            "two",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[1].env[0].value}",
        ])
        .await;
    assert_eq!(got, "nginx:2 debug");
}
