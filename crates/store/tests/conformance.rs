//! The store contract, run against both backends: SQLite and a real etcd.
//! Every test here runs twice, as `sqlite::<name>` and `etcd::<name>`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Backend, expect_quiet, next_events};
use store::{CompactionPolicy, Compactor, Error, EventType, ListOptions, Store};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::common::init_tracing();
                    let b = super::Backend::sqlite();
                    super::$name(b.store.clone()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::common::init_tracing();
                    let b = super::Backend::etcd().await;
                    super::$name(b.store.clone()).await;
                }
            )*
        }
    };
}

conformance!(
    create_and_get,
    revisions_only_grow,
    guarded_update,
    guarded_delete,
    recreate_after_delete,
    list_prefix_and_count,
    paginated_list_is_one_snapshot,
    list_at_past_and_future_revisions,
    list_rejects_foreign_start_key,
    concurrent_updates_one_winner,
    watch_replays_history_with_prev_values,
    watch_live_filters_prefix,
    watch_resumes_without_gaps_or_duplicates,
    watch_orders_concurrent_writes,
    compaction_drops_history_only,
    automatic_compaction_by_revision_count,
    automatic_compaction_by_age,
    ttl_keys_expire_with_delete_event,
    ttl_removed_by_update_without_ttl,
    large_and_empty_values,
);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn create_and_get(s: Arc<dyn Store>) {
    let rev = s.create("/r/pods/ns/a", b("v1"), None).await.unwrap();
    assert!(rev > 0);
    let kv = s.get("/r/pods/ns/a").await.unwrap().expect("key exists");
    assert_eq!(kv.key, "/r/pods/ns/a");
    assert_eq!(kv.value, b("v1"));
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (rev, rev, 1)
    );
    match s.create("/r/pods/ns/a", b("v2"), None).await {
        Err(Error::AlreadyExists { key }) => assert_eq!(key, "/r/pods/ns/a"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // The failed create changed nothing.
    assert_eq!(s.get("/r/pods/ns/a").await.unwrap().unwrap().value, b("v1"));
    assert_eq!(s.get("/r/pods/ns/missing").await.unwrap(), None);
    assert_eq!(s.current_revision().await.unwrap(), rev);
}

async fn revisions_only_grow(s: Arc<dyn Store>) {
    let mut last = s.current_revision().await.unwrap();
    for i in 0..20 {
        let key = format!("/r/k{}", i % 4);
        let rev = match s.get(&key).await.unwrap() {
            None => s.create(&key, b("x"), None).await.unwrap(),
            Some(kv) if i % 3 == 0 => s.delete(&key, Some(kv.mod_revision)).await.unwrap().0,
            Some(kv) => s.update(&key, b("y"), kv.mod_revision, None).await.unwrap(),
        };
        assert!(rev > last, "revision {rev} after {last}");
        last = rev;
        assert_eq!(s.current_revision().await.unwrap(), rev);
    }
}

async fn guarded_update(s: Arc<dyn Store>) {
    let r1 = s.create("/r/a", b("1"), None).await.unwrap();
    let r2 = s.update("/r/a", b("2"), r1, None).await.unwrap();
    assert!(r2 > r1);
    let kv = s.get("/r/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );
    assert_eq!(kv.value, b("2"));
    // A writer that read before r2 loses, and learns the current value.
    match s.update("/r/a", b("stale"), r1, None).await {
        Err(Error::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!((key.as_str(), expected), ("/r/a", r1));
            assert_eq!(*current, kv);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get("/r/a").await.unwrap().unwrap(), kv);
    match s.update("/r/nope", b("x"), r1, None).await {
        Err(Error::NotFound { key }) => assert_eq!(key, "/r/nope"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

async fn guarded_delete(s: Arc<dyn Store>) {
    let r1 = s.create("/r/d", b("1"), None).await.unwrap();
    let r2 = s.update("/r/d", b("2"), r1, None).await.unwrap();
    assert!(matches!(
        s.delete("/r/d", Some(r1)).await,
        Err(Error::Conflict { current, .. }) if current.mod_revision == r2
    ));
    let (rd, prev) = s.delete("/r/d", Some(r2)).await.unwrap();
    assert!(rd > r2);
    assert_eq!(
        (prev.value, prev.mod_revision, prev.version),
        (b("2"), r2, 2)
    );
    assert_eq!(s.get("/r/d").await.unwrap(), None);
    assert!(matches!(
        s.delete("/r/d", None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.delete("/r/d", Some(rd)).await,
        Err(Error::NotFound { .. })
    ));
    // Unconditional delete.
    s.create("/r/e", b("1"), None).await.unwrap();
    let (_, prev) = s.delete("/r/e", None).await.unwrap();
    assert_eq!(prev.value, b("1"));
    assert_eq!(s.get("/r/e").await.unwrap(), None);
}

async fn recreate_after_delete(s: Arc<dyn Store>) {
    let r1 = s.create("/r/x", b("1"), None).await.unwrap();
    s.update("/r/x", b("2"), r1, None).await.unwrap();
    s.delete("/r/x", None).await.unwrap();
    let r4 = s.create("/r/x", b("3"), None).await.unwrap();
    let kv = s.get("/r/x").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r4, r4, 1)
    );
}

async fn list_prefix_and_count(s: Arc<dyn Store>) {
    for k in ["/r/b/2", "/r/b/1", "/r/a/1", "/r/bb/1", "/r/b/3", "/r/c"] {
        s.create(k, b(k), None).await.unwrap();
    }
    s.delete("/r/b/3", None).await.unwrap();
    let res = s.list("/r/b/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = res.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/b/1", "/r/b/2"]);
    assert!(res.kvs.iter().all(|kv| kv.value == b(&kv.key)));
    assert!(!res.more);
    assert_eq!(res.revision, s.current_revision().await.unwrap());
    assert_eq!(s.count("/r/b/").await.unwrap(), 2);
    assert_eq!(s.count("/r/").await.unwrap(), 5);
    assert_eq!(s.count("/nothing/").await.unwrap(), 0);
    let all = s.list("/r/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/a/1", "/r/b/1", "/r/b/2", "/r/bb/1", "/r/c"]);
}

async fn paginated_list_is_one_snapshot(s: Arc<dyn Store>) {
    for i in 0..10 {
        s.create(&format!("/r/p/{i:02}"), b("old"), None)
            .await
            .unwrap();
    }
    let page = |start: Option<String>, rev: Option<i64>| ListOptions {
        revision: rev,
        limit: Some(3),
        start_key: start,
    };
    let first = s.list("/r/p/", page(None, None)).await.unwrap();
    assert_eq!(first.kvs.len(), 3);
    assert!(first.more);
    let snapshot = first.revision;
    // The world moves on between pages.
    for i in 0..10 {
        let key = format!("/r/p/{i:02}");
        let kv = s.get(&key).await.unwrap().unwrap();
        if i % 2 == 0 {
            s.update(&key, b("new"), kv.mod_revision, None)
                .await
                .unwrap();
        } else {
            s.delete(&key, None).await.unwrap();
        }
    }
    s.create("/r/p/05a", b("new"), None).await.unwrap();
    let mut seen = first.kvs.clone();
    let mut more = first.more;
    while more {
        let next = format!("{}\0", seen.last().unwrap().key);
        let res = s
            .list("/r/p/", page(Some(next), Some(snapshot)))
            .await
            .unwrap();
        assert_eq!(res.revision, snapshot);
        more = res.more;
        seen.extend(res.kvs);
    }
    let keys: Vec<_> = seen.iter().map(|kv| kv.key.clone()).collect();
    let want: Vec<_> = (0..10).map(|i| format!("/r/p/{i:02}")).collect();
    assert_eq!(keys, want);
    assert!(
        seen.iter()
            .all(|kv| kv.value == b("old") && kv.version == 1)
    );
    // And the latest read shows the new world.
    let now = s.list("/r/p/", ListOptions::default()).await.unwrap();
    assert_eq!(now.kvs.len(), 6);
    assert!(now.kvs.iter().all(|kv| kv.value == b("new")));
}

async fn list_at_past_and_future_revisions(s: Arc<dyn Store>) {
    let r1 = s.create("/r/h", b("1"), None).await.unwrap();
    let r2 = s.update("/r/h", b("2"), r1, None).await.unwrap();
    let (r3, _) = s.delete("/r/h", None).await.unwrap();
    let at = |rev| ListOptions {
        revision: Some(rev),
        ..Default::default()
    };
    let values =
        |res: store::ListResult| -> Vec<Bytes> { res.kvs.into_iter().map(|kv| kv.value).collect() };
    assert_eq!(values(s.list("/r/", at(r1)).await.unwrap()), [b("1")]);
    assert_eq!(values(s.list("/r/", at(r2)).await.unwrap()), [b("2")]);
    assert!(values(s.list("/r/", at(r3)).await.unwrap()).is_empty());
    assert!(matches!(
        s.list("/r/", at(r3 + 1000)).await,
        Err(Error::FutureRevision { requested, .. }) if requested == r3 + 1000
    ));
}

async fn list_rejects_foreign_start_key(s: Arc<dyn Store>) {
    let opts = ListOptions {
        start_key: Some("/other/x".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.list("/r/", opts).await,
        Err(Error::InvalidArgument(_))
    ));
}

async fn concurrent_updates_one_winner(s: Arc<dyn Store>) {
    let r = s.create("/r/counter", b("0"), None).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.update("/r/counter", b(&i.to_string()), r, None).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(s.get("/r/counter").await.unwrap().unwrap().version, 2);

    // Read-modify-write increments under contention lose nothing.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    let mut kv = s.get("/r/n").await.unwrap();
                    loop {
                        let res = match &kv {
                            None => s.create("/r/n", b("1"), None).await,
                            Some(cur) => {
                                let n: u64 =
                                    std::str::from_utf8(&cur.value).unwrap().parse().unwrap();
                                s.update("/r/n", b(&(n + 1).to_string()), cur.mod_revision, None)
                                    .await
                            }
                        };
                        match res {
                            Ok(_) => break,
                            Err(Error::Conflict { current, .. }) => kv = Some(*current),
                            Err(Error::AlreadyExists { .. }) => kv = s.get("/r/n").await.unwrap(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get("/r/n").await.unwrap().unwrap().value, b("80"));
}

async fn watch_replays_history_with_prev_values(s: Arc<dyn Store>) {
    let r1 = s.create("/r/w/a", b("a1"), None).await.unwrap();
    s.create("/r/other", b("x"), None).await.unwrap();
    let r2 = s.update("/r/w/a", b("a2"), r1, None).await.unwrap();
    let r3 = s.create("/r/w/b", b("b1"), None).await.unwrap();
    let (r4, _) = s.delete("/r/w/a", Some(r2)).await.unwrap();

    let mut w = s.watch("/r/w/", r1).await.unwrap();
    let evs = next_events(&mut w, 4).await;
    let summary: Vec<_> = evs
        .iter()
        .map(|e| (e.event_type, e.kv.key.as_str(), e.revision()))
        .collect();
    assert_eq!(
        summary,
        [
            (EventType::Put, "/r/w/a", r1),
            (EventType::Put, "/r/w/a", r2),
            (EventType::Put, "/r/w/b", r3),
            (EventType::Delete, "/r/w/a", r4),
        ]
    );
    assert_eq!(evs[0].prev_kv, None);
    assert_eq!(evs[0].kv.value, b("a1"));
    assert_eq!(evs[1].prev_kv.as_ref().unwrap().value, b("a1"));
    assert_eq!((evs[1].kv.version, evs[1].kv.create_revision), (2, r1));
    assert_eq!(evs[3].prev_kv.as_ref().unwrap().value, b("a2"));
    assert_eq!(evs[3].prev_kv.as_ref().unwrap().mod_revision, r2);
    assert!(evs[3].kv.value.is_empty());
    expect_quiet(&mut w).await;

    // Starting mid-history replays only what follows.
    let mut w = s.watch("/r/w/", r3).await.unwrap();
    let evs = next_events(&mut w, 2).await;
    assert_eq!(evs[0].revision(), r3);
    assert_eq!(evs[1].revision(), r4);
}

async fn watch_live_filters_prefix(s: Arc<dyn Store>) {
    let mut w = s.watch("/r/pods/", 0).await.unwrap();
    let mut w_all = s.watch("", 0).await.unwrap();
    expect_quiet(&mut w).await;
    s.create("/r/podsx/a", b("no"), None).await.unwrap();
    let r = s.create("/r/pods/a", b("yes"), None).await.unwrap();
    let evs = next_events(&mut w, 1).await;
    assert_eq!(evs[0].kv.key, "/r/pods/a");
    assert_eq!(evs[0].revision(), r);
    expect_quiet(&mut w).await;
    let all = next_events(&mut w_all, 2).await;
    assert_eq!(all[0].kv.key, "/r/podsx/a");
    assert_eq!(all[1].kv.key, "/r/pods/a");
}

async fn watch_resumes_without_gaps_or_duplicates(s: Arc<dyn Store>) {
    let mut w = s.watch("/r/", 0).await.unwrap();
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(s.create(&format!("/r/{i}"), b("v"), None).await.unwrap());
    }
    let first = next_events(&mut w, 4).await;
    drop(w);
    let last_seen = first.last().unwrap().revision();
    for i in 10..15 {
        revs.push(s.create(&format!("/r/{i}"), b("v"), None).await.unwrap());
    }
    // As a client reconnecting with its last resourceVersion: everything after it, once.
    let mut w = s.watch("/r/", last_seen + 1).await.unwrap();
    let rest = next_events(&mut w, 11).await;
    let mut got: Vec<_> = first.iter().chain(&rest).map(|e| e.revision()).collect();
    assert_eq!(got, revs);
    expect_quiet(&mut w).await;
    let r = s.create("/r/live", b("v"), None).await.unwrap();
    got = next_events(&mut w, 1)
        .await
        .iter()
        .map(|e| e.revision())
        .collect();
    assert_eq!(got, [r]);
}

async fn watch_orders_concurrent_writes(s: Arc<dyn Store>) {
    let mut w = s.watch("/r/c/", 0).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let key = format!("/r/c/{t}");
                let mut rev = s.create(&key, b("0"), None).await.unwrap();
                for i in 1..25 {
                    rev = s.update(&key, b(&i.to_string()), rev, None).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let evs = next_events(&mut w, 200).await;
    assert!(evs.windows(2).all(|p| p[0].revision() < p[1].revision()));
    for t in 0..8 {
        let key = format!("/r/c/{t}");
        let values: Vec<_> = evs
            .iter()
            .filter(|e| e.kv.key == key)
            .map(|e| e.kv.value.clone())
            .collect();
        let want: Vec<_> = (0..25).map(|i| b(&i.to_string())).collect();
        assert_eq!(values, want, "events of {key}");
    }
}

async fn compaction_drops_history_only(s: Arc<dyn Store>) {
    let r1 = s.create("/r/a", b("1"), None).await.unwrap();
    let r2 = s.update("/r/a", b("2"), r1, None).await.unwrap();
    s.create("/r/gone", b("x"), None).await.unwrap();
    s.delete("/r/gone", None).await.unwrap();
    let keep = s.create("/r/b", b("1"), None).await.unwrap();
    let r_after = s.update("/r/a", b("3"), r2, None).await.unwrap();
    s.compact(keep).await.unwrap();
    // Reading below the compacted revision is refused...
    let at = |rev| ListOptions {
        revision: Some(rev),
        ..Default::default()
    };
    assert!(matches!(
        s.list("/r/", at(r1)).await,
        Err(Error::Compacted { requested, .. }) if requested == r1
    ));
    assert!(matches!(
        s.watch("/r/", r1).await,
        Err(Error::Compacted { .. })
    ));
    // ...reading at it or later is unchanged.
    let res = s.list("/r/", at(keep)).await.unwrap();
    let kvs: Vec<_> = res
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    assert_eq!(kvs, [("/r/a", b("2")), ("/r/b", b("1"))]);
    let latest = s.list("/r/", ListOptions::default()).await.unwrap();
    assert_eq!(latest.kvs.len(), 2);
    assert_eq!(s.count("/r/").await.unwrap(), 2);
    assert_eq!(s.get("/r/gone").await.unwrap(), None);
    let a = s.get("/r/a").await.unwrap().unwrap();
    assert_eq!((a.create_revision, a.version), (r1, 3));
    // Events after the compacted revision still carry their previous values.
    let mut w = s.watch("/r/", keep + 1).await.unwrap();
    let evs = next_events(&mut w, 1).await;
    assert_eq!(evs[0].revision(), r_after);
    assert_eq!(evs[0].prev_kv.as_ref().unwrap().value, b("2"));
    // Compacting to the same or an older revision again is harmless.
    s.compact(keep).await.unwrap();
    s.compact(r1).await.unwrap();
    // Writes go on.
    let r = s.update("/r/a", b("4"), r_after, None).await.unwrap();
    assert!(r > r_after);
    let evs = next_events(&mut w, 1).await;
    assert_eq!(evs[0].revision(), r);
}

async fn automatic_compaction_by_revision_count(s: Arc<dyn Store>) {
    let first = s.create("/r/k", b("0"), None).await.unwrap();
    let mut rev = first;
    for i in 1..30 {
        rev = s
            .update("/r/k", b(&i.to_string()), rev, None)
            .await
            .unwrap();
    }
    let mut c = Compactor::new(
        s.clone(),
        CompactionPolicy {
            interval: Duration::from_millis(50),
            retain_age: None,
            retain_revisions: Some(10),
        },
    );
    c.run_once().await;
    assert!(matches!(
        s.watch("/r/", first).await,
        Err(Error::Compacted { .. })
    ));
    // The last ten revisions are still there to watch.
    let mut w = s.watch("/r/", rev - 9).await.unwrap();
    assert_eq!(
        next_events(&mut w, 10).await.last().unwrap().revision(),
        rev
    );
    assert_eq!(s.get("/r/k").await.unwrap().unwrap().value, b("29"));
}

async fn automatic_compaction_by_age(s: Arc<dyn Store>) {
    let first = s.create("/r/k", b("0"), None).await.unwrap();
    let handle = Compactor::new(
        s.clone(),
        CompactionPolicy {
            interval: Duration::from_millis(100),
            retain_age: Some(Duration::from_millis(400)),
            retain_revisions: None,
        },
    )
    .spawn();
    // Young history is kept.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = s.update("/r/k", b("1"), first, None).await.unwrap();
    assert!(s.watch("/r/", first).await.is_ok());
    // Once it is older than the retention, it goes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Err(Error::Compacted { .. }) = s.watch("/r/", first).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history was never compacted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.abort();
    assert_eq!(s.get("/r/k").await.unwrap().unwrap().mod_revision, second);
}

async fn ttl_keys_expire_with_delete_event(s: Arc<dyn Store>) {
    let mut w = s.watch("/r/events/", 0).await.unwrap();
    let r = s
        .create("/r/events/e1", b("ev"), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    s.create("/r/events/keep", b("k"), None).await.unwrap();
    assert!(s.get("/r/events/e1").await.unwrap().is_some());
    let evs = next_events(&mut w, 3).await;
    assert_eq!(evs[0].revision(), r);
    // etcd grants leases of at least ~2s; the deletion must come well within 10s.
    assert_eq!(evs[2].event_type, EventType::Delete);
    assert_eq!(evs[2].kv.key, "/r/events/e1");
    assert_eq!(evs[2].prev_kv.as_ref().unwrap().value, b("ev"));
    assert_eq!(s.get("/r/events/e1").await.unwrap(), None);
    assert!(s.get("/r/events/keep").await.unwrap().is_some());
}

async fn ttl_removed_by_update_without_ttl(s: Arc<dyn Store>) {
    let r = s
        .create("/r/t", b("1"), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    s.update("/r/t", b("2"), r, None).await.unwrap();
    let short = s
        .create("/r/short", b("x"), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    let mut w = s.watch("/r/", short + 1).await.unwrap();
    let evs = next_events(&mut w, 1).await;
    assert_eq!(
        (evs[0].event_type, evs[0].kv.key.as_str()),
        (EventType::Delete, "/r/short")
    );
    expect_quiet(&mut w).await;
    assert_eq!(s.get("/r/t").await.unwrap().unwrap().value, b("2"));
}

async fn large_and_empty_values(s: Arc<dyn Store>) {
    let big = Bytes::from(vec![7u8; 1024 * 1024]);
    s.create("/r/big", big.clone(), None).await.unwrap();
    s.create("/r/empty", Bytes::new(), None).await.unwrap();
    s.create("/r/ünïcode/名前", b("ok"), None).await.unwrap();
    assert_eq!(s.get("/r/big").await.unwrap().unwrap().value, big);
    let empty = s.get("/r/empty").await.unwrap().unwrap();
    assert!(empty.value.is_empty());
    assert_eq!(empty.version, 1);
    let res = s.list("/r/ünïcode/", ListOptions::default()).await.unwrap();
    assert_eq!(res.kvs[0].key, "/r/ünïcode/名前");
    let mut w = s.watch("/r/", 1).await.unwrap();
    let evs = next_events(&mut w, 3).await;
    assert_eq!(evs[0].kv.value.len(), big.len());
}
