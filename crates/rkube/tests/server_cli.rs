//! `rkube server` as a user starts it: it prints where its kubeconfig is, and kubectl works
//! with that kubeconfig; a second server on the same data directory is refused clearly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data_dir: &std::path::Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args([
            "server",
            "--bind-address",
            "127.0.0.1",
            "--https-listen-port",
            "0",
            // The server alone: the agent has tests of its own (agent_cli.rs).
            "--disable-agent",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line.unwrap();
        if let Some(path) = line.strip_prefix("admin kubeconfig: ") {
            // Keep reading so the server never writes into a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (server, path.to_string());
        }
    }
    panic!("rkube server exited without printing its kubeconfig");
}

#[test]
fn server_prints_a_kubeconfig_kubectl_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, kubeconfig) = start(dir.path());
    let out = Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig, "get", "ns"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("default") && stdout.contains("kube-system"),
        "{stdout}"
    );

    // The same data directory cannot serve twice.
    let second = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args([
            "server",
            "--bind-address",
            "127.0.0.1",
            "--https-listen-port",
            "0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(stderr.contains("in use by another process"), "{stderr}");
}
