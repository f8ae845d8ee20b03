//! `kubectl exec`, `attach`, `cp`, `debug` and `port-forward` end to end (root + containerd;
//! skips otherwise, fails under CI): the real kubectl (and the official Python client's
//! `stream()`) through the API server and this kubelet to containerd's stream server, on a
//! node in the lab's network namespace.
//!
//! Every protocol kubectl speaks is exercised: exec and attach over WebSocket v5 (kubectl
//! 1.30+'s default, terminated in the API server) and over SPDY
//! (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, passed through to containerd); port-forward
//! tunnelled in WebSocket (1.31+) and over SPDY (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`).
//! kubectl's `-v=4` log shows which path it took. kube-rs's `AttachedProcess` (v5)
//! checks exit codes and terminal resizes; the Python client speaks WebSocket v4.

mod lab;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lab::node::{TestNode, run_in_lab, wait_pod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: rkube.local/busybox:test
    ports: [{containerPort: 8080}]
    command:
    - sh
    - -c
    - |
      mkdir -p /www/cgi-bin && echo hello-from-pod > /www/index.html
      echo '<a href="/index.html">home</a> <a href="next.html">next</a>' > /www/links.html
      printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho method=$REQUEST_METHOD\ncat\n' > /www/cgi-bin/echo
      chmod +x /www/cgi-bin/echo
      exec httpd -f -p 8080 -h /www
  - name: side
    image: rkube.local/busybox:test
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: half}
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: main
    image: rkube.local/busybox:test
    command: ["sleep", "3600"]
  - name: done
    image: rkube.local/busybox:test
    command: ["true"]
---
apiVersion: v1
kind: Pod
metadata: {name: talk}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: talk
    image: rkube.local/busybox:test
    stdin: true
    command: ["sh", "-c", "while read l; do echo got-$l; done"]
"#;

/// Runs kubectl with `stdin`, an environment and a deadline; (exit code, stdout, stderr).
async fn kubectl(
    node: &TestNode,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
) -> Result<(i32, String, String)> {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(node.cluster.kubeconfig())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().context("kubectl runs")?;
    let mut input = child.stdin.take().context("stdin")?;
    let stdin = stdin.to_vec();
    tokio::spawn(async move {
        let _ = input.write_all(&stdin).await;
        drop(input);
    });
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .with_context(|| format!("kubectl {args:?} did not finish"))??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_attach_cp_and_port_forward_through_the_api_server() -> Result<()> {
    run_in_lab(async |lab| {
        let node = TestNode::start(lab).await?;
        let result = scenario(&node).await;
        node.cluster
            .ok(&["delete", "pod", "--all", "--grace-period=1"])
            .await;
        node.shutdown(lab).await?;
        result
    })
    .await
}

async fn scenario(node: &TestNode) -> Result<()> {
    let f = node.cluster.write("pods.yaml", PODS);
    node.cluster.ok(&["apply", "-f", &f]).await;
    let pods = node.pods();
    for name in ["web", "talk"] {
        wait_pod(&pods, name, Duration::from_secs(60), "Running", |p| {
            lab::node::phase(p) == "Running"
                && p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| cs.iter().all(|c| c.ready))
        })
        .await?;
    }
    let spdy = [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")];
    for env in [&[][..], &spdy[..]] {
        // stdout and stderr apart, exit 0.
        let (code, out, err) = kubectl(
            node,
            &[
                "exec",
                "web",
                "-c",
                "app",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2",
            ],
            env,
            b"",
        )
        .await?;
        ensure!(
            (code, out.as_str(), err.as_str()) == (0, "out\n", "err\n"),
            "{env:?}: {code} {out:?} {err:?}"
        );
        // stdin to the end of its input.
        let (code, out, err) = kubectl(
            node,
            &[
                "exec",
                "-i",
                "web",
                "-c",
                "side",
                "--",
                "sh",
                "-c",
                "cat; echo done",
            ],
            env,
            b"a\nb\n",
        )
        .await?;
        ensure!(
            (code, out.as_str()) == (0, "a\nb\ndone\n"),
            "{env:?}: {code} {out:?} {err:?}"
        );
        // The command's exit code is kubectl's.
        let (code, _, err) = kubectl(
            node,
            &["exec", "web", "-c", "app", "--", "sh", "-c", "exit 3"],
            env,
            b"",
        )
        .await?;
        ensure!(
            code == 3 && err.contains("command terminated with exit code 3"),
            "{env:?}: {code} {err:?}"
        );
    }
    // The WebSocket paths were taken, not kubectl's fallback to SPDY.
    let (code, _, err) = kubectl(
        node,
        &[
            "-v=4", "exec", "web", "-c", "app", "--", "sh", "-c", "exit 5",
        ],
        &[],
        b"",
    )
    .await?;
    ensure!(
        code == 5 && !err.contains("RemoteCommand fallback"),
        "{code} {err}"
    );
    kube_rs_exec(node).await?;

    // A command that does not exist, and a container that has finished, over both protocols.
    let half = pods.clone();
    wait_pod(
        &half,
        "half",
        Duration::from_secs(60),
        "done finished",
        |p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.name == "done" && c.state.as_ref().is_some_and(|s| s.terminated.is_some())
                    })
                })
        },
    )
    .await?;
    for env in [&[][..], &spdy[..]] {
        let (code, out, err) = kubectl(
            node,
            &["exec", "web", "-c", "app", "--", "no-such-command"],
            env,
            b"",
        )
        .await?;
        ensure!(
            code != 0 && err.contains("no-such-command"),
            "{env:?}: {code} {out:?} {err:?}"
        );
        let (code, out, err) = kubectl(
            node,
            &["exec", "half", "-c", "done", "--", "true"],
            env,
            b"",
        )
        .await?;
        ensure!(
            code != 0 && err.contains(r#"container not found ("done")"#),
            "{env:?}: {code} {out:?} {err:?}"
        );
    }

    // Unknown container, as upstream words it.
    let (code, _, err) =
        kubectl(node, &["exec", "web", "-c", "nope", "--", "true"], &[], b"").await?;
    ensure!(
        code != 0 && err.contains("container nope is not valid for pod web"),
        "{err}"
    );

    // cp both ways (tar in the container over exec with stdin).
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub"))?;
    std::fs::write(src.join("a.txt"), "alpha\n")?;
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.join("sub/blob.bin"), &blob)?;
    let (code, out, err) = kubectl(
        node,
        &[
            "cp",
            src.to_str().unwrap_or_default(),
            "web:/tmp/copied",
            "-c",
            "side",
        ],
        &[],
        b"",
    )
    .await?;
    ensure!(code == 0, "cp to the pod: {out} {err}");
    let back = dir.path().join("back");
    let (code, out, err) = kubectl(
        node,
        &[
            "cp",
            "web:/tmp/copied",
            back.to_str().unwrap_or_default(),
            "-c",
            "side",
        ],
        &[],
        b"",
    )
    .await?;
    ensure!(code == 0, "cp from the pod: {out} {err}");
    ensure!(std::fs::read_to_string(back.join("a.txt"))? == "alpha\n");
    ensure!(
        std::fs::read(back.join("sub/blob.bin"))? == blob,
        "the binary file came back changed"
    );

    // attach: input to the running container's stdin, its output back (the session lasts
    // until kubectl is stopped: the container's stdin is not closed with kubectl's).
    interactive(node, &["attach", "-i", "talk"], &["one", "two"]).await?;

    // run -i --rm: a pod made, attached to, and deleted when its command ends.
    let (code, out, err) = kubectl(
        node,
        &[
            "run",
            "once",
            "-i",
            "--rm",
            "--restart=Never",
            "--image=rkube.local/busybox:test",
            "--",
            "sh",
            "-c",
            "read l; echo got-$l",
        ],
        &[],
        b"hello\n",
    )
    .await?;
    ensure!(
        code == 0 && out.contains("got-hello") && out.contains(r#"pod "once" deleted"#),
        "run -i --rm: {code} {out:?} {err:?}"
    );

    // debug: an ephemeral container in the pod, in the app container's PID namespace.
    let seen = interactive(
        node,
        &[
            "debug",
            "-i",
            "web",
            "--image=rkube.local/busybox:test",
            "--target=app",
            "--container=dbg",
            "--",
            "sh",
            "-c",
            r#"while read l; do [ "$l" = ps ] && ps; echo got-$l; done"#,
        ],
        &["one", "ps"],
    )
    .await?;
    ensure!(
        seen.contains("httpd -f -p 8080"),
        "the target's processes: {seen}"
    );
    let pod = pods.get("web").await?;
    let statuses = pod
        .status
        .and_then(|s| s.ephemeral_container_statuses)
        .unwrap_or_default();
    ensure!(statuses.iter().any(|s| s.name == "dbg"), "{statuses:?}");

    // The proxy subresources: pod, service and node, GET and POST (a body through).
    let raw = |path: &'static str| async move { node.cluster.ok(&["get", "--raw", path]).await };
    ensure!(raw("/api/v1/namespaces/default/pods/web:8080/proxy/").await == "hello-from-pod\n");
    ensure!(
        raw("/api/v1/namespaces/default/pods/web/proxy/index.html").await == "hello-from-pod\n"
    );
    let t = Instant::now();
    loop {
        let out = node
            .cluster
            .kubectl(&[
                "get",
                "--raw",
                "/api/v1/namespaces/default/services/web:http/proxy/",
            ])
            .await;
        if String::from_utf8_lossy(&out.stdout) == "hello-from-pod\n" {
            break;
        }
        ensure!(
            t.elapsed() < Duration::from_secs(20),
            "service proxy: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Links in proxied HTML point back through the proxy (relative ones need nothing).
    let page = raw("/api/v1/namespaces/default/pods/web:8080/proxy/links.html").await;
    ensure!(
        page.contains(r#"<a href="/api/v1/namespaces/default/pods/web:8080/proxy/index.html">"#)
            && page.contains(r#"<a href="next.html">"#),
        "{page:?}"
    );
    https_pod_proxy(node).await?;
    let node_path = format!("/api/v1/nodes/{}/proxy/healthz", node.cfg.node_name);
    ensure!(node.cluster.ok(&["get", "--raw", &node_path]).await == "ok");
    let body = node.cluster.write("body.txt", "posted-body");
    let posted = node
        .cluster
        .ok(&[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods/web:8080/proxy/cgi-bin/echo",
            "-f",
            &body,
        ])
        .await;
    ensure!(posted == "method=POST\nposted-body", "{posted:?}");

    // The official Python client's `stream()` exec and port-forward (WebSocket v4).
    let python = tokio::task::spawn_blocking(apiserver::testing::python_client).await?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/stream.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("KUBECONFIG", node.cluster.kubeconfig())
        .output()
        .await?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("PASS"),
        "stream.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // port-forward: a local port to the pod's 8080.
    for env in [&[][..], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]] {
        let (mut child, port) =
            lab::node::port_forward(&node.cluster.kubeconfig(), "web", 8080, env, &["-v=4"])
                .await?;
        for _ in 0..3 {
            let out = tokio::process::Command::new("curl")
                .args([
                    "-s",
                    "--max-time",
                    "10",
                    &format!("http://127.0.0.1:{port}/"),
                ])
                .output()
                .await?;
            if String::from_utf8_lossy(&out.stdout) != "hello-from-pod\n" {
                fail(
                    &mut child,
                    format!("{env:?}: curl through port-forward: {out:?}"),
                )
                .await?;
            }
        }
        child.kill().await?;
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), e.read_to_string(&mut err)).await;
        }
        // client-go logs the tunnel's negotiation (and nothing when it falls back); the
        // wording changed in 1.34.
        let tunnelled = err.contains("negotiated protocol: portforward.k8s.io")
            || err.contains("Negotiation complete");
        ensure!(
            !env.is_empty() || tunnelled,
            "port-forward did not use the WebSocket tunnel: {err}"
        );
    }
    Ok(())
}

/// Stops a port-forward and fails with `what` and kubectl's log.
async fn fail(child: &mut tokio::process::Child, what: String) -> Result<()> {
    child.kill().await?;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = tokio::time::timeout(Duration::from_secs(5), e.read_to_string(&mut err)).await;
    }
    anyhow::bail!("{what}; kubectl: {err}")
}

/// `pods/https:{name}:{port}/proxy/`: TLS to the pod, its certificate not verified and no
/// client certificate shown (upstream's proxy transport). The "pod" is a TLS server the test
/// runs on the pods' bridge address in the lab's namespace, published as a pod IP.
async fn https_pod_proxy(node: &TestNode) -> Result<()> {
    let pods = node.pods();
    let web_ip = pods
        .get("web")
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .context("web has no IP")?;
    let prefix = web_ip
        .rsplit_once('.')
        .context("an IPv4 pod IP")?
        .0
        .to_owned();
    let netns = node
        .cfg
        .pod_netns
        .clone()
        .context("the lab's pod namespace")?;
    let addrs = tokio::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "-4", "-o", "addr", "show"])
        .output()
        .await?;
    let gateway: std::net::IpAddr = String::from_utf8_lossy(&addrs.stdout)
        .split_whitespace()
        .filter_map(|w| w.split('/').next())
        .find(|a| a.starts_with(&format!("{prefix}.")) && *a != web_ip)
        .context("the pods' bridge address")?
        .parse()?;
    let socket = ::streaming::NetnsDialer::new(&netns)?.socket(false).await?;
    socket.bind(std::net::SocketAddr::new(gateway, 0))?;
    let listener = socket.listen(4)?;
    let port = listener.local_addr()?.port();
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["pod.invalid".to_owned()])?.self_signed(&key)?;
    let tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(anyhow::Error::msg)?,
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut s = acceptor.accept(tcp).await?;
        let client_cert = s.get_ref().1.peer_certificates().is_some();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await?;
            head.push(b[0]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nover-tls\n")
            .await?;
        s.shutdown().await?;
        anyhow::Ok((client_cert, String::from_utf8_lossy(&head).into_owned()))
    });
    let f = node.cluster.write(
        "tlsfake.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: tlsfake}\nspec:\n  nodeName: elsewhere\n  containers: [{name: c, image: rkube.local/busybox:test}]\n",
    );
    node.cluster.ok(&["apply", "-f", &f]).await;
    let status = serde_json::json!({"status": {"podIP": gateway.to_string(), "podIPs": [{"ip": gateway.to_string()}]}});
    pods.patch_status(
        "tlsfake",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&status),
    )
    .await?;
    let got = node
        .cluster
        .ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/https:tlsfake:{port}/proxy/hello"),
        ])
        .await;
    let (client_cert, head) = server.await??;
    node.cluster
        .ok(&["delete", "pod", "tlsfake", "--grace-period=0", "--force"])
        .await;
    ensure!(got == "over-tls\n", "{got:?}");
    ensure!(head.starts_with("GET /hello HTTP/1.1"), "{head:?}");
    ensure!(!client_cert, "the pod was shown a client certificate");
    Ok(())
}

/// kube-rs's `AttachedProcess` (WebSocket v5): output and exit code, then a terminal whose
/// size is set through the resize channel; and its `Portforwarder`.
async fn kube_rs_exec(node: &TestNode) -> Result<()> {
    use futures::SinkExt;
    use kube::api::{AttachParams, TerminalSize};
    let pods = node.pods();
    let params = AttachParams::default().container("app").stderr(true);
    let mut p = pods
        .exec("web", ["sh", "-c", "echo from-kube-rs; exit 4"], &params)
        .await?;
    let mut out = String::new();
    p.stdout()
        .context("stdout")?
        .read_to_string(&mut out)
        .await?;
    let status = p
        .take_status()
        .context("status")?
        .await
        .context("a status")?;
    ensure!(out == "from-kube-rs\n", "{out:?}");
    let code = status
        .details
        .and_then(|d| d.causes)
        .and_then(|c| {
            c.into_iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message);
    ensure!(
        status.reason.as_deref() == Some("NonZeroExitCode") && code.as_deref() == Some("4"),
        "{:?} {code:?}",
        status.reason
    );

    let mut p = pods
        .exec(
            "web",
            ["sh"],
            &AttachParams::interactive_tty().container("side"),
        )
        .await?;
    let mut size = p.terminal_size().context("a resize channel")?;
    // Taken before the end: kube-rs's join() drops the status receiver and then fails.
    let status = p.take_status().context("status")?;
    let mut stdin = p.stdin().context("stdin")?;
    let mut stdout = p.stdout().context("stdout")?;
    let mut seen = String::new();
    let t = Instant::now();
    while !seen.contains("45 123") {
        ensure!(t.elapsed() < Duration::from_secs(20), "no resize: {seen:?}");
        size.send(TerminalSize {
            width: 123,
            height: 45,
        })
        .await?;
        stdin.write_all(b"stty size\n").await?;
        let mut buf = [0u8; 1024];
        if let Ok(n) = tokio::time::timeout(Duration::from_secs(1), stdout.read(&mut buf)).await {
            seen.push_str(&String::from_utf8_lossy(&buf[..n?]));
        }
    }
    stdin.write_all(b"exit 0\n").await?;
    let status = status.await.context("a status")?;
    ensure!(status.status.as_deref() == Some("Success"), "{status:?}");

    // kube-rs's Portforwarder: WebSocket port-forward with a channel pair per port.
    let mut pf = pods.portforward("web", &[8080]).await?;
    let mut stream = pf.take_stream(8080).context("a stream for 8080")?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut page = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut page)).await??;
    let page = String::from_utf8_lossy(&page);
    ensure!(
        page.starts_with("HTTP/1.") && page.ends_with("hello-from-pod\n"),
        "{page:?}"
    );
    drop(stream);
    pf.abort();
    Ok(())
}

/// Runs kubectl with stdin open, sends `lines` one at a time and waits for each to come back
/// as `got-<line>`; returns all output. Stops kubectl at the end.
async fn interactive(node: &TestNode, args: &[&str], lines: &[&str]) -> Result<String> {
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(node.cluster.kubeconfig())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut input = child.stdin.take().context("stdin")?;
    let mut output = child.stdout.take().context("stdout")?;
    let mut seen = String::new();
    let t = Instant::now();
    for line in lines {
        // Until the session is attached, input may go unanswered: send again.
        let want = format!("got-{line}\n");
        let mut sent = Instant::now() - Duration::from_secs(10);
        while !seen.contains(&want) {
            ensure!(
                t.elapsed() < Duration::from_secs(40),
                "{args:?}: no {want:?} in {seen:?}"
            );
            if sent.elapsed() > Duration::from_secs(3) {
                input.write_all(format!("{line}\n").as_bytes()).await?;
                input.flush().await?;
                sent = Instant::now();
            }
            let mut buf = [0u8; 4096];
            match tokio::time::timeout(Duration::from_millis(500), output.read(&mut buf)).await {
                Ok(n) => {
                    let n = n?;
                    ensure!(n > 0, "{args:?} ended early: {seen:?}");
                    seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                Err(_) => continue,
            }
        }
    }
    child.kill().await?;
    Ok(seen)
}
