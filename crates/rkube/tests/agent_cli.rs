//! The node agent as a user starts it: inside `rkube server` (or, on a machine that cannot run
//! one, a warning and a server without a node), and as `rkube agent` joining a server.
//! No pod runs here (the kubelet's own tests do that in a network namespace of their own).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process stopped on drop: SIGINT first (the agent stops containerd), then SIGKILL.
struct Proc(Child);

impl Proc {
    fn interrupt(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        // Never signal a PID that may have been reused.
        if let Ok(Some(status)) = self.0.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.interrupt(Duration::from_secs(15)).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn can_run_agent() -> bool {
    harness::root_with(&[
        "/usr/bin/containerd",
        "/usr/sbin/runc",
        "/usr/lib/cni/bridge",
    ])
}

/// Starts `rkube server` with `extra` flags; returns it, its kubeconfig and its stderr so far.
fn server(data_dir: &Path, extra: &[&str]) -> (Proc, String, Arc<Mutex<String>>) {
    let mut child = harness::loopback_server(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let err = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("server: {line}");
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    (proc, harness::admin_kubeconfig(stdout), stderr)
}

/// Waits until `kubectl get node <name>` reports it Ready.
fn wait_node_ready(kubeconfig: &str, name: &str, timeout: Duration) {
    let mut last = String::new();
    let ready = harness::wait_until(timeout, || {
        let out = Command::new("kubectl")
            .args(["--kubeconfig", kubeconfig, "get", "node", name, "-o"])
            .arg(r#"jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.podCIDR}"#)
            .output()
            .unwrap();
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success() && last.starts_with("True 10.42.")).then_some(())
    });
    assert!(ready.is_some(), "node {name} did not become Ready: {last}");
}

#[test]
fn server_runs_a_node_agent_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("kt-server-node-{}", std::process::id());
    // On loopback and a free port: the tests run side by side. No ingress: it would listen
    // on the host's ports 80 and 443 (ingress_e2e.rs runs it in a namespace of its own).
    let (mut srv, kubeconfig, stderr) = server(
        dir.path(),
        &[
            "--node-name",
            &name,
            "--node-ip",
            "127.0.0.1",
            "--kubelet-port",
            "0",
            "--disable",
            "ingress",
        ],
    );
    if can_run_agent() {
        wait_node_ready(&kubeconfig, &name, Duration::from_secs(60));
        kubelet_serves_a_ca_signed_certificate(&kubeconfig, &name, &format!("system:node:{name}"));
        // Ctrl-C stops the agent's containerd too.
        let status = srv.interrupt(Duration::from_secs(20));
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        let socket = dir.path().join("agent/containerd/containerd.sock");
        assert!(!socket.exists(), "containerd still running after shutdown");
    } else {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stderr
            .lock()
            .unwrap()
            .contains("running without a node agent")
        {
            assert!(Instant::now() < deadline, "no warning about the agent");
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = Command::new("kubectl")
            .args(["--kubeconfig", &kubeconfig, "get", "ns", "default"])
            .output()
            .unwrap();
        assert!(out.status.success(), "the server stopped serving");
    }
}

/// The kubelet asked for its serving certificate (a `kubelet-serving` CSR made by
/// `requester` that the controllers approved and signed), and the API server, which verifies
/// kubelets against the cluster CA, reaches it.
fn kubelet_serves_a_ca_signed_certificate(kubeconfig: &str, node: &str, requester: &str) {
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .args(["--kubeconfig", kubeconfig])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, csrs, _) = kubectl(&[
            "get",
            "csr",
            "-o",
            "jsonpath={range .items[*]}{.spec.signerName} {.spec.username} {.status.conditions[*].type} {.status.certificate}{\"\\n\"}{end}",
        ]);
        let issued = csrs.lines().any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.len() >= 4
                && f[0] == "kubernetes.io/kubelet-serving"
                && f[1] == requester
                && f[2] == "Approved"
                && !f[3].is_empty()
        });
        let (ok, out, err) = kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/healthz"),
        ]);
        if issued && ok && out == "ok" {
            return;
        }
        let last = format!("{csrs}\n{out}{err}");
        assert!(
            Instant::now() < deadline,
            "no CA-signed kubelet certificate: {last}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn an_agent_joins_a_server() {
    if !can_run_agent() {
        common::ci::skip("needs root, containerd, runc and the CNI plugins");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let (_srv, kubeconfig, stderr) = server(dir.path(), &["--disable-agent"]);
    assert!(
        !stderr.lock().unwrap().contains("node agent"),
        "--disable-agent still tried an agent"
    );
    let name = format!("kt-agent-node-{}", std::process::id());
    let mut agent = Proc(
        Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["agent", "--kubeconfig", &kubeconfig, "--node-name", &name])
            .args([
                "--node-ip",
                "127.0.0.1",
                "--kubelet-port",
                "0",
                "--disable-ingress",
            ])
            .args(["--node-label", "rkube.test/agent=yes", "--data-dir"])
            .arg(agent_dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_node_ready(&kubeconfig, &name, Duration::from_secs(60));
    let out = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig,
            "get",
            "nodes",
            "-l",
            "rkube.test/agent=yes",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&name));
    // This agent runs with the admin's credentials: its request is approved because the
    // admin could approve it anyway.
    kubelet_serves_a_ca_signed_certificate(&kubeconfig, &name, "system:admin");
    let status = agent.interrupt(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
