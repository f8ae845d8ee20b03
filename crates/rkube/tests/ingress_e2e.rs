//! The agent's ingress controller on a real node (tests/harness: `rkube server` with its
//! agent and containerd in a network namespace of the test's own), driven by the real
//! kubectl and curl inside that namespace: the seed's example (`/api`, `/web`, `/docs` on one
//! host to three busybox httpd Deployments) on the node's port 80, a second host through the
//! packaged default class, HTTPS by SNI from a `kubernetes.io/tls` Secret made with the test's
//! own CA, `kubectl get ingress` (CLASS, ADDRESS, PORTS); the controller's own identity
//! (`system:rkube-ingress`: what it may and may not read; a node asking for it by a CSR is
//! approved and signed, other subjects are not); an HTTPRoute splitting 3:1 through a Gateway
//! once upstream's Gateway API CRDs are installed; `--disable ingress` removing the class and
//! the listener. Needs root, containerd, runc, nft, the CNI plugins and curl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use harness::{NODE_IP, Node};

/// The joined node's name and address (the other end of the first node's veth).
const NODE2: &str = "ingress-2";
const NODE2_IP: &str = "10.99.0.2";

const IMAGE: &str = "rkube.local/busybox:ingress";
const SHOP: &str = "shop.example.test";
const BLOG: &str = "blog.example.test";

/// A busybox httpd Deployment answering `<name> backend` at `/` and `/<name>/`, and its
/// Service (port 80 to the container port named `http`).
fn backend(node: &Node, name: &str) {
    node.apply(&format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {{"name": "{name}", "namespace": "default"}},
  "spec": {{"replicas": 1, "selector": {{"matchLabels": {{"app": "{name}"}}}},
    "template": {{"metadata": {{"labels": {{"app": "{name}"}}}},
      "spec": {{"terminationGracePeriodSeconds": 0, "containers": [{{
        "name": "web", "image": "{IMAGE}", "imagePullPolicy": "Never",
        "ports": [{{"name": "http", "containerPort": 8080}}],
        "command": ["sh", "-c", "mkdir -p /www/{name} && echo {name} backend > /www/index.html && cp /www/index.html /www/{name}/ && exec httpd -f -p 8080 -h /www"]}}]}}}}}}}}"#
    ));
    node.apply(&format!(
        r#"{{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "{name}", "namespace": "default"}},
  "spec": {{"selector": {{"app": "{name}"}}, "ports": [{{"name": "http", "port": 80, "targetPort": "http"}}]}}}}"#
    ));
}

/// The seed's example, with the class named and TLS for its host.
const SHOP_INGRESS: &str = r#"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
  "metadata": {"name": "shop", "namespace": "default"},
  "spec": {"ingressClassName": "rkube",
    "tls": [{"hosts": ["shop.example.test"], "secretName": "shop-tls"}],
    "rules": [{"host": "shop.example.test", "http": {"paths": [
      {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}},
      {"path": "/web", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
      {"path": "/docs", "pathType": "Prefix", "backend": {"service": {"name": "docs", "port": {"number": 80}}}}]}}]}}"#;

/// No class: served because the packaged class `rkube` is the default.
const BLOG_INGRESS: &str = r#"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
  "metadata": {"name": "blog", "namespace": "default"},
  "spec": {"rules": [{"host": "blog.example.test", "http": {"paths": [
    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}"#;

/// curl inside the node's namespace to the node's address (`--resolve`: no DNS, no proxy);
/// (exit code, stdout).
fn curl(node: &Node, host: &str, url: &str, extra: &[&str]) -> (i32, String) {
    curl_at(node.cmd("curl"), NODE_IP, host, url, extra)
}

/// curl (`cmd`, in some node's namespace) to `host` at `ip`.
fn curl_at(mut cmd: Command, ip: &str, host: &str, url: &str, extra: &[&str]) -> (i32, String) {
    let port = if url.starts_with("https") { 443 } else { 80 };
    let out = cmd
        .args(["-sS", "--noproxy", "*", "--max-time", "5", "--resolve"])
        .arg(format!("{host}:{port}:{ip}"))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Waits until `url` on `host` answers `want`.
fn expect_body(node: &Node, host: &str, url: &str, extra: &[&str], want: &str) {
    node.eventually(90, &format!("{url} on {host} answering {want:?}"), || {
        let (code, body) = curl(node, host, url, extra);
        (code == 0 && body == want).then_some(())
    });
}

/// The test's CA (PEM written to `dir/ca.pem`) and a certificate for `host` it signed
/// (`dir/tls.crt`, `dir/tls.key`).
fn test_ca_and_cert(dir: &Path, host: &str) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "ingress e2e CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
}

/// A CSR for `cn` (optionally in `org`) from the client signer, made as the node with its own
/// kubeconfig; returns the key PEM.
fn csr_as_node(node: &Node, name: &str, cn: &str, org: Option<&str>) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    if let Some(o) = org {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, o);
    }
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    let csr = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(request),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["digital signature", "client auth"]},
    });
    let f = node.dir.path().join(format!("{name}.json"));
    std::fs::write(&f, csr.to_string()).unwrap();
    let out = node
        .cmd("kubectl")
        .arg("--kubeconfig")
        .arg(node.dir.path().join("agent/kubelet.kubeconfig"))
        .arg("create")
        .arg("-f")
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    key.serialize_pem()
}

/// kubectl as the identity of `kubeconfig` (relative to the data dir).
fn kubectl_as(node: &Node, kubeconfig: &str, args: &[&str]) -> std::process::Output {
    node.cmd("kubectl")
        .arg("--kubeconfig")
        .arg(node.dir.path().join(kubeconfig))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ingress_routes_hosts_paths_and_tls_on_the_node() {
    if !harness::can_run_node(&["/usr/bin/curl"]) {
        common::ci::skip("needs root, containerd, runc, nft, the CNI plugins and curl");
        return;
    }
    let mut node = Node::new("rkube-ingress", "ingress", "warn");
    harness::air_gap_image(node.dir.path(), IMAGE, "busybox.tar", &[]);
    node.start_server();
    let dir = node.dir.path().to_path_buf();

    // The packaged class, the default one.
    let class = node.ok(&["get", "ingressclass", "rkube", "-o", "jsonpath={.spec.controller} {.metadata.annotations.ingressclass\\.kubernetes\\.io/is-default-class}"]);
    assert_eq!(class, "rkube.io/ingress true");

    for name in ["api", "web", "docs"] {
        backend(&node, name);
    }
    test_ca_and_cert(&dir, SHOP);
    node.ok(&[
        "create",
        "secret",
        "tls",
        "shop-tls",
        "--cert",
        dir.join("tls.crt").to_str().unwrap(),
        "--key",
        dir.join("tls.key").to_str().unwrap(),
    ]);
    node.apply(SHOP_INGRESS);
    node.apply(BLOG_INGRESS);

    // Each path of the seed's example reaches its own Service, on the node's port 80.
    for name in ["api", "web", "docs"] {
        let url = format!("http://{SHOP}/{name}/");
        expect_body(&node, SHOP, &url, &[], &format!("{name} backend\n"));
    }
    // A path no rule has: the default backend's 404.
    let (_, code) = curl(
        &node,
        SHOP,
        &format!("http://{SHOP}/other"),
        &["-o", "/dev/null", "-w", "%{http_code}"],
    );
    assert_eq!(code, "404");
    // The second host, on the same port.
    expect_body(
        &node,
        BLOG,
        &format!("http://{BLOG}/"),
        &[],
        "web backend\n",
    );

    // HTTPS: the Secret's certificate for its host (SNI), trusted through the test's CA.
    let ca = dir.join("ca.pem");
    let cacert = ["--cacert", ca.to_str().unwrap()];
    expect_body(
        &node,
        SHOP,
        &format!("https://{SHOP}/docs/"),
        &cacert,
        "docs backend\n",
    );
    expect_body(
        &node,
        SHOP,
        &format!("https://{SHOP}/api/"),
        &["--http1.1", "--cacert", ca.to_str().unwrap()],
        "api backend\n",
    );
    // Another name gets the default (self-signed) certificate: not trusted, but served.
    let (code, _) = curl(&node, BLOG, &format!("https://{BLOG}/"), &cacert);
    assert_eq!(code, 60, "curl's exit code for an untrusted certificate");
    expect_body(
        &node,
        BLOG,
        &format!("https://{BLOG}/"),
        &["-k"],
        "web backend\n",
    );

    // kubectl get ingress: CLASS, HOSTS, ADDRESS (the node's), PORTS.
    let row = node.eventually(60, "the shop Ingress's address", || {
        let out = node.ok(&["get", "ingress", "shop", "--no-headers"]);
        out.contains(NODE_IP).then_some(out)
    });
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..4], ["shop", "rkube", SHOP, NODE_IP], "{row}");
    assert!(row.contains("80, 443"), "{row}");
    node.eventually(60, "the blog Ingress's address", || {
        let out = node.ok(&[
            "get",
            "ingress",
            "blog",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ]);
        (out == NODE_IP).then_some(())
    });

    // The controller's own identity reads what it serves, and nothing else; the node's
    // identity may not list Ingresses (why the controller has its own).
    let ingress_kc = "agent/ingress.kubeconfig";
    for args in [
        &["get", "ingress", "-A"][..],
        &["get", "ingressclass"],
        &["get", "services,endpointslices", "-A"],
        &[
            "get",
            "secrets",
            "-A",
            "--field-selector",
            "type=kubernetes.io/tls",
        ],
    ] {
        let out = kubectl_as(&node, ingress_kc, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    for args in [["get", "pods", "-A"], ["get", "configmaps", "-A"]] {
        let out = kubectl_as(&node, ingress_kc, &args);
        assert!(!out.status.success(), "{args:?} allowed: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Forbidden"),
            "{out:?}"
        );
    }
    let out = kubectl_as(&node, "agent/kubelet.kubeconfig", &["get", "ingress", "-A"]);
    assert!(!out.status.success(), "a node listed Ingresses: {out:?}");

    // A node asking for the ingress identity (as a joined agent does) gets it; a node asking
    // for another user, or the identity in a group, is left pending.
    let key = csr_as_node(&node, "ingress-by-node", "system:rkube-ingress", None);
    csr_as_node(&node, "proxy-by-node", "system:kube-proxy", None);
    csr_as_node(
        &node,
        "masters-by-node",
        "system:rkube-ingress",
        Some("system:masters"),
    );
    let cert = node.eventually(60, "the node's ingress certificate", || {
        let out = node.ok(&[
            "get",
            "csr",
            "ingress-by-node",
            "-o",
            "jsonpath={.status.certificate}",
        ]);
        (!out.is_empty()).then_some(out)
    });
    let cert = base64::engine::general_purpose::STANDARD
        .decode(cert.trim())
        .unwrap();
    std::fs::write(dir.join("issued.crt"), cert).unwrap();
    std::fs::write(dir.join("issued.key"), key).unwrap();
    // Only these flags: no kubeconfig (a user's KUBECONFIG or ~/.kube/config would merge
    // its own credentials with them, and kubectl refuses the mix).
    let out = node
        .cmd("kubectl")
        .args(["--kubeconfig", "/dev/null"])
        .args(["--server", &format!("https://{NODE_IP}:6443")])
        .arg("--certificate-authority")
        .arg(dir.join("tls/server-ca.crt"))
        .arg("--client-certificate")
        .arg(dir.join("issued.crt"))
        .arg("--client-key")
        .arg(dir.join("issued.key"))
        .args(["get", "ingress", "-A", "-o", "name"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ingress.networking.k8s.io/blog\ningress.networking.k8s.io/shop\n"
    );
    for csr in ["proxy-by-node", "masters-by-node"] {
        let conditions = node.ok(&["get", "csr", csr, "-o", "jsonpath={.status}"]);
        assert!(!conditions.contains("Approved"), "{csr}: {conditions}");
    }

    gateway_api_split(&node);

    // `--disable ingress`: the class is deleted and nothing listens on port 80 any more.
    node.stop_server();
    node.start_server_with(&["--disable", "ingress"]);
    node.eventually(60, "the IngressClass deleted", || {
        let out = node.ok(&["get", "ingressclass", "-o", "name"]);
        out.is_empty().then_some(())
    });
    node.eventually(30, "port 80 refusing connections", || {
        let (code, _) = curl(&node, SHOP, &format!("http://{SHOP}/api/"), &[]);
        (code == 7).then_some(())
    });
}

/// The Gateway API on the same node: upstream's standard CRDs installed after the agent
/// started (its controller picks them up), a GatewayClass of `rkube.io/gateway-controller`, a
/// Gateway listening on the node's port 80 and an HTTPRoute splitting 3:1 between two of the
/// Services; the statuses the controller (as `system:rkube-ingress`) writes.
fn gateway_api_split(node: &Node) {
    let crds = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../apiserver/tests/testdata/gateway-api-v1.6.1/config/crd/standard");
    for kind in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "referencegrants",
    ] {
        let f = crds.join(format!("gateway.networking.k8s.io_{kind}.yaml"));
        node.ok(&["apply", "--server-side", "-f", f.to_str().unwrap()]);
    }
    node.eventually(60, "the Gateway API served", || {
        let out = node.kubectl(&["get", "gatewayclasses,gateways,httproutes", "-A"]);
        out.status.success().then_some(())
    });
    node.apply(
        r#"{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
  "metadata": {"name": "rkube"}, "spec": {"controllerName": "rkube.io/gateway-controller"}}"#,
    );
    node.apply(
        r#"{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
  "metadata": {"name": "gw", "namespace": "default"},
  "spec": {"gatewayClassName": "rkube", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}"#,
    );
    node.apply(
        r#"{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
  "metadata": {"name": "split", "namespace": "default"},
  "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["split.example.test"],
    "rules": [{"backendRefs": [{"name": "api", "port": 80, "weight": 3},
                               {"name": "web", "port": 80, "weight": 1}]}]}}"#,
    );
    let host = "split.example.test";
    let url = format!("http://{host}/");
    node.eventually(90, "the HTTPRoute served", || {
        let (code, body) = curl(node, host, &url, &[]);
        (code == 0 && body.ends_with("backend\n")).then_some(())
    });
    let (mut api, mut web) = (0, 0);
    for _ in 0..80 {
        let (code, body) = curl(node, host, &url, &[]);
        assert_eq!(code, 0, "{body}");
        match body.as_str() {
            "api backend\n" => api += 1,
            "web backend\n" => web += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!((50..=70).contains(&api), "api {api}, web {web}: not 3:1");
    // The route names its host: the Ingresses' hosts stay theirs.
    expect_body(
        node,
        SHOP,
        &format!("http://{SHOP}/api/"),
        &[],
        "api backend\n",
    );
    let status = node.eventually(60, "the route accepted", || {
        let out = node.ok(&[
            "get",
            "httproute",
            "split",
            "-o",
            "jsonpath={.status.parents[0].conditions[*].reason}",
        ]);
        (out == "Accepted ResolvedRefs").then_some(out)
    });
    assert_eq!(status, "Accepted ResolvedRefs");
    let row = node.eventually(60, "the Gateway programmed", || {
        let out = node.ok(&["get", "gateway", "gw", "--no-headers"]);
        out.contains(NODE_IP).then_some(out)
    });
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..4], ["gw", "rkube", NODE_IP, "True"], "{row}");
}

/// Adds a second node at [`NODE2_IP`] that joins with a token, as a new machine would (the
/// harness' [`harness::Agent`], set up as services_e2e.rs does).
fn join_agent(node: &mut Node) {
    let dir = tempfile::Builder::new()
        .prefix("rkube-ingress2")
        .tempdir_in("/tmp")
        .unwrap();
    harness::air_gap_image(dir.path(), IMAGE, "busybox.tar", &[]);
    let holder = harness::holder("ip link set lo up && echo ready && exec sleep 1000000");
    let out = node
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
        .args([&ns, "--", "sh", "-c"])
        .arg(format!(
            "ip addr add {NODE2_IP}/24 dev eth0-peer && ip link set eth0-peer up"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = node
        .cmd(env!("CARGO_BIN_EXE_rkube"))
        .args(["token", "create", "--kubeconfig"])
        .arg(node.dir.path().join("kubeconfig.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let process = Command::new("nsenter")
        .args([&ns, "--", env!("CARGO_BIN_EXE_rkube"), "agent", "--server"])
        .arg(format!("https://{NODE_IP}:6443"))
        .args([
            "--node-name",
            NODE2,
            "--node-ip",
            NODE2_IP,
            "--token",
            &token,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    node.agent = Some(harness::Agent {
        dir,
        holder,
        process,
    });
    node.wait_node_ready(NODE2);
}

#[test]
fn a_joined_agent_serves_ingresses_with_the_certificate_it_asked_for() {
    if !harness::can_run_node(&["/usr/bin/curl"]) {
        common::ci::skip("needs root, containerd, runc, nft, the CNI plugins and curl");
        return;
    }
    let mut node = Node::new("rkube-ingress-join", "ingress", "warn");
    harness::air_gap_image(node.dir.path(), IMAGE, "busybox.tar", &[]);
    node.start_server();
    join_agent(&mut node);
    let agent_dir = node.agent.as_ref().unwrap().dir.path().to_path_buf();
    node.eventually(60, "the joined agent's ingress kubeconfig", || {
        agent_dir
            .join("agent/ingress.kubeconfig")
            .exists()
            .then_some(())
    });
    // Its CSR: requested by the node, approved for that one identity, signed.
    let csr = node.ok(&[
        "get",
        "csr",
        "-o",
        "jsonpath={range .items[?(@.spec.signerName==\"kubernetes.io/kube-apiserver-client\")]}{.spec.username} {.status.conditions[0].type}{\"\\n\"}{end}",
    ]);
    assert_eq!(csr, format!("system:node:{NODE2} Approved\n"));

    backend(&node, "api");
    node.apply(SHOP_INGRESS);
    // The joined node routes too, whichever node the pod runs on.
    let holder = node.agent.as_ref().unwrap().holder.id();
    node.eventually(90, "the joined node routing /api/", || {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{holder}/ns/net"))
            .args(["--", "curl"]);
        let (code, body) = curl_at(cmd, NODE2_IP, SHOP, &format!("http://{SHOP}/api/"), &[]);
        (code == 0 && body == "api backend\n").then_some(())
    });
    // Both nodes publish their address.
    node.eventually(60, "both addresses in the Ingress's status", || {
        let out = node.ok(&[
            "get",
            "ingress",
            "shop",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ]);
        let mut ips: Vec<&str> = out.split_whitespace().collect();
        ips.sort();
        (ips == [NODE_IP, NODE2_IP]).then_some(())
    });
}
