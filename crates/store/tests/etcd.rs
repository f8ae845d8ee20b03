//! What only the etcd backend has: several clusters sharing one etcd under prefixes, and an
//! etcd that cannot be reached.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::next_events;
use store::testing::EtcdProcess;
use store::{Error, EtcdConfig, EtcdStore, ListOptions, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_sharing_one_etcd_do_not_see_each_other() {
    let etcd = EtcdProcess::start().await.unwrap();
    let a = etcd.store("/cluster-a").await.unwrap();
    let b = etcd.store("/cluster-b").await.unwrap();
    let mut wa = a.watch("/registry/", 0).await.unwrap();
    a.create("/registry/pods/x", Bytes::from_static(b"a"), None)
        .await
        .unwrap();
    b.create("/registry/pods/x", Bytes::from_static(b"b"), None)
        .await
        .unwrap();
    b.create("/registry/pods/y", Bytes::from_static(b"b"), None)
        .await
        .unwrap();
    assert_eq!(a.get("/registry/pods/x").await.unwrap().unwrap().value, "a");
    assert_eq!(b.get("/registry/pods/x").await.unwrap().unwrap().value, "b");
    assert_eq!(a.count("/registry/").await.unwrap(), 1);
    let listed = b.list("/registry/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = listed.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/registry/pods/x", "/registry/pods/y"]);
    let evs = next_events(&mut wa, 1).await;
    assert_eq!(evs[0].kv.key, "/registry/pods/x");
    common::expect_quiet(&mut wa).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_etcd_is_a_clear_error_after_retries() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = EtcdConfig::new(vec![format!("http://127.0.0.1:{port}")]);
    cfg.connect_deadline = Duration::from_secs(2);
    let started = Instant::now();
    match EtcdStore::connect(cfg).await {
        Err(Error::Unavailable(msg)) => {
            assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
            assert!(msg.contains("attempts"), "{msg}");
        }
        Ok(_) => panic!("connected to nothing"),
        Err(e) => panic!("unexpected error {e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_going_away_gives_errors_then_recovers() {
    let mut etcd = EtcdProcess::start().await.unwrap();
    let s = etcd.store("").await.unwrap();
    let rev = s
        .create("/k", Bytes::from_static(b"1"), None)
        .await
        .unwrap();
    let mut w = s.watch("/", rev + 1).await.unwrap();
    etcd.kill();
    match s.get("/k").await {
        Err(Error::Unavailable(msg)) => assert!(msg.contains(&etcd.client_url), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        s.create("/k2", Bytes::from_static(b"x"), None).await,
        Err(Error::Unavailable(_))
    ));
    // The watch ends with an error rather than hanging silently.
    match tokio::time::timeout(Duration::from_secs(20), futures::StreamExt::next(&mut w)).await {
        Ok(Some(Err(Error::Unavailable(_)))) | Ok(None) => {}
        other => panic!("expected the watch to fail, got {other:?}"),
    }
    etcd.restart().await.unwrap();
    // The same client works again once etcd is back; nothing acknowledged was lost.
    let deadline = Instant::now() + Duration::from_secs(20);
    let kv = loop {
        match s.get("/k").await {
            Ok(kv) => break kv,
            Err(e) if Instant::now() < deadline => {
                tracing::info!("waiting for etcd: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("etcd did not come back: {e}"),
        }
    };
    assert_eq!(kv.unwrap().mod_revision, rev);
    assert!(
        s.create("/k2", Bytes::from_static(b"x"), None)
            .await
            .unwrap()
            > rev
    );
}
