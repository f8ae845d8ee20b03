//! The official Python client (`kubernetes` from PyPI, pinned) drives the API server as a
//! user's script would: `tests/python/client.py` creates, reads, lists, watches
//! (`watch.Watch().stream`), patches (merge, strategic, JSON, apply) and deletes objects of
//! every built-in kind through the typed API, whose models refuse responses missing a
//! required field, compares error bodies byte for byte, and uses the dynamic client;
//! `tests/python/custom_objects.py` does the same for a CRD's objects.
//!
//! The client is installed into a virtual environment under `/var/tmp` (kept between runs);
//! if PyPI cannot be reached the test fails: it never passes without having run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::path::Path;

use apiserver::testing::{Cluster, python_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_works_as_against_kubernetes() {
    let c = Cluster::start(false).await;
    // What the namespace and ServiceAccount controllers would make (not run here).
    c.namespace("py").await;
    c.default_service_account("py").await;
    run(&c, "client.py").await;
}

/// `tests/python/custom_objects.py`: a CRD and its objects through CustomObjectsApi and
/// the dynamic client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_works_with_custom_objects() {
    let c = Cluster::start(false).await;
    run(&c, "custom_objects.py").await;
}

async fn run(c: &Cluster, script: &str) {
    let python = tokio::task::spawn_blocking(python_client).await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
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
        "{} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        script.display()
    );
}
