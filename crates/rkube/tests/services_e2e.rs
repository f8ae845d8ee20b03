//! Services end to end, as a user runs them: the real `rkube server` (API server, controllers,
//! scheduler, kubelet on its own containerd, kube-proxy on nftables, cluster DNS) inside a
//! network namespace of the test's own, with a node address 10.99.0.1 on a veth there, driven
//! by the real kubectl. Pods are real busybox containers; what they see of Services they print
//! to their logs. Nothing here leaves the namespace. Needs root, containerd and nft.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{Agent, NODE_IP, Node};

const IMAGE: &str = "rkube.local/busybox:e2e";
const CURL_IMAGE: &str = "rkube.local/curl:e2e";

/// The busybox image in a data dir's air-gap directory.
fn image_dir(data: &Path) {
    harness::air_gap_image(data, IMAGE, "busybox.tar", &[]);
    // The host's curl with the libraries it links (as ldd lists them): a real HTTPS client
    // for a pod to call the API server with its ServiceAccount token.
    let root = data.join("curl-root");
    let ldd = Command::new("ldd").arg("/usr/bin/curl").output().unwrap();
    let mut files = vec![std::path::PathBuf::from("/usr/bin/curl")];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(p.into());
        }
    }
    for f in &files {
        let to = root.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(f, &to).unwrap();
    }
    let dir = format!("{}:/", root.display());
    harness::air_gap_image(data, CURL_IMAGE, "curl.tar", &["--dir", &dir]);
}

/// The node `e2e`, with the images in its air-gap directory and an empty gate directory.
fn start_node() -> Node {
    let mut node = Node::new("rkube-e2e", "e2e", "warn,proxy=info,dns=info");
    image_dir(node.dir.path());
    std::fs::create_dir_all(node.gate()).unwrap();
    node.start_server();
    node
}

/// What these tests do with a node.
trait E2e {
    /// Where the test makes a pod unready (`WEB`'s readiness probe looks there).
    fn gate(&self) -> PathBuf;
    /// Adds a second node, `e2e-2` at 10.99.0.2: its namespace gets the other end of the
    /// first node's veth, and `rkube agent` joins the server at 10.99.0.1.
    fn add_agent(&mut self);
    /// Runs `script` in a fresh busybox pod and returns its log once it has succeeded.
    fn run_pod(&self, name: &str, script: &str) -> String;
    /// Applies a pod manifest and returns the pod's log once it has succeeded.
    fn run_manifest(&self, name: &str, manifest: &str) -> String;
    fn ruleset(&self) -> String;
}

impl E2e for Node {
    fn gate(&self) -> PathBuf {
        self.dir.path().join("gate")
    }

    fn add_agent(&mut self) {
        let dir = tempfile::Builder::new()
            .prefix("rkube-e2e2")
            .tempdir_in("/tmp")
            .unwrap();
        image_dir(dir.path());
        let holder = harness::holder("ip link set lo up && echo ready && exec sleep 1000000");
        let out = self
            .cmd("ip")
            .args([
                "link",
                "set",
                "eth0-peer",
                "netns",
                &holder.id().to_string(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let ns = format!("--net=/proc/{}/ns/net", holder.id());
        let out = Command::new("nsenter")
            .args([
                &ns,
                "--",
                "sh",
                "-c",
                "ip addr add 10.99.0.2/24 dev eth0-peer && ip link set eth0-peer up",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        // It joins with a token, as a new machine would: no copy of the admin's kubeconfig.
        let out = self
            .cmd(env!("CARGO_BIN_EXE_rkube"))
            .args(["token", "create", "--kubeconfig"])
            .arg(self.dir.path().join("kubeconfig.yaml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(token.starts_with("K10"), "{token}");
        let process = Command::new("nsenter")
            .args([
                &ns,
                "--",
                env!("CARGO_BIN_EXE_rkube"),
                "agent",
                "--server",
                &format!("https://{NODE_IP}:6443"),
                "--node-name",
                "e2e-2",
                "--node-ip",
                "10.99.0.2",
                "--token",
                &token,
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.agent = Some(Agent {
            dir,
            holder,
            process,
        });
        self.wait_node_ready("e2e-2");
    }

    fn run_pod(&self, name: &str, script: &str) -> String {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script]}]},
        });
        self.run_manifest(name, &pod.to_string())
    }

    fn run_manifest(&self, name: &str, manifest: &str) -> String {
        self.apply(manifest);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let phase = self.ok(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]);
            match phase.as_str() {
                "Succeeded" => break,
                "Failed" => panic!("pod {name} failed: {}", self.ok(&["logs", name])),
                _ if Instant::now() > deadline => panic!(
                    "pod {name} did not finish; its log so far:\n{}\nrules:\n{}",
                    String::from_utf8_lossy(&self.kubectl(&["logs", name]).stdout),
                    self.ruleset()
                ),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        let log = self.ok(&["logs", name]);
        self.ok(&["delete", "pod", name, "--wait=false"]);
        log
    }

    fn ruleset(&self) -> String {
        let out = self.cmd("nft").args(["list", "ruleset"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: rkube.local/busybox:e2e
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        # The test makes a pod unready by creating /gate/<pod name> on the host.
        readinessProbe:
          exec: {command: ["sh", "-c", "test ! -e /gate/$(hostname)"]}
          periodSeconds: 1
        volumeMounts: [{name: gate, mountPath: /gate}]
      volumes: [{name: gate, hostPath: {path: GATE}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

/// A pod script: resolves `name` through cluster DNS, then fetches `/` from it `n` times
/// (with nc: the static busybox's wget crashes in these images).
fn fetch_script(name: &str, n: u32) -> String {
    format!(
        "ip=$(nslookup -type=a {name} | awk '/^Address/ {{a=$NF}} END {{print a}}'); echo VIP=$ip; \
         for i in $(seq {n}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 $ip 80 | tail -n 1 | grep . || echo FAIL; done"
    )
}

/// The distinct answers in a fetch log, and its VIP line.
fn answers(log: &str) -> (String, BTreeSet<String>) {
    let vip = log
        .lines()
        .find_map(|l| l.strip_prefix("VIP="))
        .unwrap_or_default()
        .to_string();
    let hosts = log
        .lines()
        .filter(|l| !l.starts_with("VIP="))
        .map(str::to_string)
        .collect();
    (vip, hosts)
}

fn ready_endpoints(node: &Node) -> usize {
    node.ok(&[
        "get",
        "endpoints",
        "web",
        "-o",
        "jsonpath={.subsets[*].addresses[*].ip}",
    ])
    .split_whitespace()
    .count()
}

#[test]
fn pods_reach_services_by_name_and_vip() {
    if !harness::can_run_node(&[]) {
        common::ci::skip("needs root, containerd and nft");
        return;
    }
    let mut node = start_node();
    node.apply(&WEB.replace("GATE", node.gate().to_str().unwrap()));
    node.eventually(90, "3 ready endpoints", || {
        (ready_endpoints(&node) == 3).then_some(())
    });
    let vip = node.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let pods: BTreeSet<String> = node
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect();

    // By name through cluster DNS, then the VIP: requests spread over every replica.
    let (seen_vip, hosts) =
        answers(&node.run_pod("spread", &fetch_script("web.default.svc.cluster.local", 40)));
    assert_eq!(seen_vip, vip);
    assert_eq!(hosts, pods, "40 requests should reach all 3 replicas");

    // The short name works through the pod's search list; kubernetes.default reaches the API.
    let log = node.run_pod(
        "names",
        "nslookup -type=a web; nslookup -type=a kubernetes.default.svc.cluster.local; \
         nc -w 3 10.43.0.1 443 </dev/null && echo API-OPEN",
    );
    assert!(log.contains(&format!("Address: {vip}")), "{log}");
    assert!(log.contains("Address: 10.43.0.1"), "{log}");
    assert!(log.contains("API-OPEN"), "{log}");

    // A program in a pod calls the API with the token its ServiceAccount volume holds, as
    // InClusterConfig does (kubernetes.default.svc, the mounted ca.crt and token): RBAC
    // lets it list pods and not read secrets.
    node.ok(&["create", "serviceaccount", "reader"]);
    node.ok(&[
        "create",
        "rolebinding",
        "reader-view",
        "--clusterrole=view",
        "--serviceaccount=default:reader",
    ]);
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    let script = format!(
        "for r in pods secrets; do \
           curl -s -o /dev/null -w \"$r=%{{http_code}}\\n\" --cacert {sa}/ca.crt \
             -H \"Authorization: Bearer $(cat {sa}/token)\" \
             https://kubernetes.default.svc/api/v1/namespaces/$(cat {sa}/namespace)/$r; \
         done"
    );
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "incluster"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "serviceAccountName": "reader",
            "containers": [{"name": "c", "image": CURL_IMAGE, "imagePullPolicy": "Never",
                "env": [{"name": "LD_LIBRARY_PATH",
                    "value": "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu"}],
                "command": ["sh", "-c", script]}]},
    });
    let log = node.run_manifest("incluster", &pod.to_string());
    assert_eq!(log.trim(), "pods=200\nsecrets=403", "{log}");

    // ClientIP affinity pins a client to one replica.
    node.ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP"}}"#,
    ]);
    std::thread::sleep(Duration::from_secs(1));
    let (_, hosts) =
        answers(&node.run_pod("pinned", &fetch_script("web.default.svc.cluster.local", 20)));
    assert_eq!(hosts.len(), 1, "affinity: {hosts:?}");
    node.ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"None"}}"#,
    ]);

    // A pod failing readiness leaves the endpoints and gets no more traffic.
    let unready = pods.iter().next().unwrap().clone();
    std::fs::write(node.gate().join(&unready), "").unwrap();
    node.eventually(30, "2 ready endpoints", || {
        (ready_endpoints(&node) == 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let (_, hosts) = answers(&node.run_pod(
        "unready",
        &fetch_script("web.default.svc.cluster.local", 30),
    ));
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert!(
        !hosts.contains(&unready),
        "{unready} is unready but served: {hosts:?}"
    );
    std::fs::remove_file(node.gate().join(&unready)).unwrap();

    // NodePort and LoadBalancer answer at the node's address.
    node.ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ]);
    let node_port = node.eventually(30, "LoadBalancer ingress", || {
        let out = node.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip} {.spec.ports[0].nodePort}",
        ]);
        let (ip, port) = out.split_once(' ')?;
        (ip == NODE_IP).then(|| port.to_string())
    });
    for url in [
        format!("http://{NODE_IP}:{node_port}/"),
        format!("http://{NODE_IP}:80/"),
    ] {
        let body = node.eventually(10, &url, || {
            let out = node
                .cmd("curl")
                .args(["-s", "-m", "3", &url])
                .output()
                .unwrap();
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        });
        assert!(pods.contains(&body), "{url} answered {body:?}");
    }

    // A selector-less Service with hand-written Endpoints (the seed's external database).
    let target = node.ok(&["get", "pod", &unready, "-o", "jsonpath={.status.podIP}"]);
    node.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: ext}}\nspec:\n  ports: [{{name: http, port: 80}}]\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata: {{name: ext}}\nsubsets:\n- addresses: [{{ip: {target}}}]\n  ports: [{{name: http, port: 8080}}]\n"
    ));
    std::thread::sleep(Duration::from_secs(1));
    let (_, hosts) = answers(&node.run_pod(
        "external",
        &fetch_script("ext.default.svc.cluster.local", 5),
    ));
    assert_eq!(hosts, BTreeSet::from([unready.clone()]));

    // A StatefulSet's pods resolve by name under their headless Service, which answers
    // with the pod IPs themselves.
    node.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - {name: c, image: rkube.local/busybox:e2e, imagePullPolicy: Never, command: ["sleep", "3600"]}
"#,
    );
    let ips = node.eventually(60, "two StatefulSet pods with IPs", || {
        let out = node.ok(&[
            "get",
            "pods",
            "-l",
            "app=db",
            "--sort-by=.metadata.name",
            "-o",
            "jsonpath={.items[*].status.podIP}",
        ]);
        let ips: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        (ips.len() == 2).then_some(ips)
    });
    node.eventually(30, "both ready in the headless endpoints", || {
        let out = node.ok(&[
            "get",
            "endpoints",
            "nginx",
            "-o",
            "jsonpath={.subsets[*].addresses[*].hostname}",
        ]);
        (out.split_whitespace().count() == 2).then_some(())
    });
    let log = node.run_pod(
        "stateful",
        "nslookup -type=a db-0.nginx.default.svc.cluster.local; echo ---; nslookup -type=a nginx.default.svc.cluster.local",
    );
    let (one, all) = log.split_once("---").unwrap();
    assert!(one.contains(&format!("Address: {}", ips[0])), "{log}");
    assert!(!one.contains(&format!("Address: {}", ips[1])), "{log}");
    assert!(all.contains(&format!("Address: {}", ips[0])), "{log}");
    assert!(all.contains(&format!("Address: {}", ips[1])), "{log}");
    node.ok(&["delete", "sts", "db", "--wait=false"]);

    // A restarted server (and so proxy) keeps traffic flowing and leaves no stale rules.
    node.ok(&["delete", "svc", "ext"]);
    node.eventually(10, "ext rules gone", || {
        (!node.ruleset().contains("default/ext")).then_some(())
    });
    node.stop_server();
    node.start_server();
    let (seen_vip, hosts) = answers(&node.run_pod(
        "after-restart",
        &fetch_script("web.default.svc.cluster.local", 30),
    ));
    assert_eq!(seen_vip, vip);
    assert_eq!(hosts.len(), 3, "{hosts:?}");

    // Deleting the Service removes every rule that names it.
    node.ok(&["delete", "svc", "web"]);
    node.eventually(10, "web rules gone", || {
        let rules = node.ruleset();
        (!rules.contains(&format!("{vip} ")) && !rules.contains("default/web")).then_some(())
    });
    // `rkube killall` stops the pods the stopped server left running and removes what the
    // agent put on the node.
    node.stop_server();
    let out = node
        .cmd(env!("CARGO_BIN_EXE_rkube"))
        .args(["killall", "--data-dir"])
        .arg(node.dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("pod default/web-"), "{said}");
    // The pods' volumes (their token tmpfs) are unmounted: the data dir can be removed.
    let mounts = String::from_utf8_lossy(
        &node
            .cmd("cat")
            .arg("/proc/self/mountinfo")
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let data_dir = node.dir.path().to_string_lossy().into_owned();
    assert!(
        !mounts.lines().any(|l| l.contains(&data_dir)),
        "left mounted after killall: {mounts}"
    );
    let tables = String::from_utf8_lossy(
        &node
            .cmd("nft")
            .args(["list", "tables"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!tables.contains("rkube-proxy"), "{tables}");
    let links = String::from_utf8_lossy(&node.cmd("ip").args(["link"]).output().unwrap().stdout)
        .into_owned();
    assert!(
        !links.contains("cni0") && !links.contains("rkube-svc") && !links.contains("veth"),
        "{links}"
    );
    let needle = node.dir.path().to_string_lossy().into_owned();
    let running: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(&needle).then_some(cmd)
        })
        .collect();
    assert!(running.is_empty(), "still running: {running:?}");
}

#[test]
fn pods_on_two_nodes_reach_each_other_through_services() {
    if !harness::can_run_node(&[]) {
        common::ci::skip("needs root, containerd and nft");
        return;
    }
    let mut node = start_node();
    node.add_agent();
    // One echo pod per node.
    node.apply(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: echo}
spec:
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: rkube.local/busybox:e2e
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
"#,
    );
    node.eventually(90, "an echo endpoint on each node", || {
        // The Endpoints object may not exist yet: the controller makes it after the Service.
        let out = node.kubectl(&[
            "get",
            "endpoints",
            "echo",
            "-o",
            "jsonpath={.subsets[*].addresses[*].nodeName}",
        ]);
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut nodes: Vec<&str> = out.split_whitespace().collect();
        nodes.sort();
        (nodes == ["e2e", "e2e-2"]).then_some(())
    });
    let pods: BTreeSet<String> = node
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=echo",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect();
    // The joined node authenticates as itself: its own certificate, approved and signed.
    let csrs = node.ok(&[
        "get",
        "csr",
        "-o",
        r#"jsonpath={range .items[*]}{.spec.username} {.status.conditions[0].reason}{"\n"}{end}"#,
    ]);
    assert!(
        csrs.lines()
            .any(|l| l.starts_with("system:bootstrap:") && l.ends_with("AutoApproved")),
        "{csrs}"
    );
    let agent_dir = node.agent.as_ref().unwrap().dir.path().to_path_buf();
    let kc = std::fs::read_to_string(agent_dir.join("agent/kubelet.kubeconfig")).unwrap();
    assert!(kc.contains("system:node:e2e-2"), "{kc}");
    // Each node routes the other's pod CIDR to it.
    let routes = String::from_utf8_lossy(&node.cmd("ip").args(["route"]).output().unwrap().stdout)
        .into_owned();
    let cidr2 = node.ok(&["get", "node", "e2e-2", "-o", "jsonpath={.spec.podCIDR}"]);
    assert!(
        routes.contains(&format!("{cidr2} via 10.99.0.2")),
        "{routes}"
    );
    // From a pod on each node, by name (its own node's DNS) and VIP: both pods answer, one
    // of them across the link.
    for on in ["e2e", "e2e-2"] {
        let name = format!("client-{on}");
        let script = fetch_script("echo.default.svc.cluster.local", 30);
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": on, "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script]}]},
        });
        let (_, hosts) = answers(&node.run_manifest(&name, &pod.to_string()));
        eprintln!("from {on}: {hosts:?}");
        assert_eq!(hosts, pods, "from {on}");
    }
}
