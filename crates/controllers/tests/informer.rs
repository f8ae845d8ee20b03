//! The shared informer against a real API server: it follows changes, and once stopped (a
//! controller manager that lost its lease) neither its cache nor its subscribers move.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apiserver::testing::{Cluster, eventually};
use controllers::informer::Informer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_informer_no_longer_watches() {
    let c = Cluster::start(false).await;
    let client = controllers::client(c.config().await).unwrap();
    let cms = Informer::<ConfigMap>::start(Api::all(client));
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    cms.on_change(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    cms.wait_synced().await;
    c.ok(&["create", "configmap", "a", "--from-literal=k=v"])
        .await;
    eventually("a in the cache", || async {
        cms.get(Some("default"), "a").map(|_| ())
    })
    .await;
    let before = seen.load(Ordering::SeqCst);
    assert!(before >= 1);

    cms.stop();
    c.ok(&["create", "configmap", "b", "--from-literal=k=v"])
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        cms.get(Some("default"), "b").is_none(),
        "b reached a stopped informer"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        before,
        "a stopped subscriber was called"
    );
    assert!(
        cms.get(Some("default"), "a").is_some(),
        "the cache stays readable"
    );
}
