//! The shared informer against a real API server: it follows changes, and once stopped (a
//! controller manager that lost its lease) neither its cache nor its subscribers move.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apiserver::testing::{Cluster, eventually};
use client_go::informer::Informer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_informer_no_longer_watches() {
    let c = Cluster::start(false).await;
    let client = client_go::client_as(c.config().await, "informer-test").unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informer_with_a_selector_caches_only_what_it_selects() {
    let c = Cluster::start(false).await;
    let client = client_go::client_as(c.config().await, "informer-test").unwrap();
    let config = kube::runtime::watcher::Config::default().labels("app=a");
    let cms = Informer::<ConfigMap>::start_with(Api::all(client), config);
    cms.wait_synced().await;
    c.ok(&["create", "configmap", "other", "--from-literal=k=v"])
        .await;
    c.ok(&["label", "configmap", "other", "app=b"]).await;
    c.ok(&["create", "configmap", "mine", "--from-literal=k=v"])
        .await;
    c.ok(&["label", "configmap", "mine", "app=a"]).await;
    eventually("mine in the cache", || async {
        cms.get(Some("default"), "mine").map(|_| ())
    })
    .await;
    assert!(cms.get(Some("default"), "other").is_none());
    assert_eq!(cms.list().len(), 1, "only the selected one");
    // Relabelled out of the selector: gone from the cache, as a deletion.
    c.ok(&["label", "configmap", "mine", "app=c", "--overwrite"])
        .await;
    eventually("mine gone", || async {
        cms.get(Some("default"), "mine").is_none().then_some(())
    })
    .await;
}
