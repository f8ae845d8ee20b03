//! The official Python client (`kubernetes` from PyPI, pinned) drives the API server as a
//! user's script would: `tests/python/client.py` creates, reads, lists, watches
//! (`watch.Watch().stream`), patches (merge, strategic, JSON, apply) and deletes objects of
//! every built-in kind through the typed API, whose models refuse responses missing a
//! required field, compares error bodies byte for byte, and uses the dynamic client.
//!
//! The client is installed into a virtual environment under `/var/tmp` (kept between runs);
//! if PyPI cannot be reached the test fails: it never passes without having run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::path::{Path, PathBuf};
use std::process::Command;

use apiserver::testing::Cluster;

/// The client release under test (Kubernetes 1.32's generated client).
const CLIENT: &str = "kubernetes==32.0.1";

/// A virtual environment with [`CLIENT`] installed; made once per machine.
fn venv() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("RKUBE_PYTHON_VENV")
            .unwrap_or_else(|_| "/var/tmp/rkube-python-client-32.0.1".into()),
    );
    let python = dir.join("bin/python");
    let has_client = |p: &Path| {
        Command::new(p)
            .args([
                "-c",
                "import kubernetes, sys; sys.exit(kubernetes.__version__ != '32.0.1')",
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_client(&python) {
        return python;
    }
    let out = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 -m venv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", CLIENT])
        .output()
        .expect("pip runs");
    assert!(
        out.status.success(),
        "pip install {CLIENT} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        has_client(&python),
        "{CLIENT} is not importable after install"
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_works_as_against_kubernetes() {
    let python = tokio::task::spawn_blocking(venv).await.unwrap();
    let c = Cluster::start(false).await;
    // What the namespace and ServiceAccount controllers would make (not run here).
    c.namespace("py").await;
    c.default_service_account("py").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py");
    let kubeconfig = c.kubeconfig();
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "client.py failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}
