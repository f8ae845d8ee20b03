//! The store benchmark: the same workload on the SQLite backend and on a real local etcd, in
//! one run, printed side by side with the SQLite/etcd ratio.
//!
//!     cargo bench -p rkube-store --bench store
//!
//! `RKUBE_BENCH_SECS` sets the seconds per write workload (default 3). Both backends keep
//! their data in the system temp directory, on the same disk, and acknowledge a write only
//! after fsync (SQLite `synchronous=FULL`; etcd always).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

/// The allocator the `rkube` binary runs its servers with (figures mean what users get).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use store::testing::{EtcdProcess, rss_kib};
use store::{Error, ListOptions, SqliteOptions, SqliteStore, Store};

const VALUE_SIZE: usize = 1024;
const RANGE_KEYS: usize = 10_000;
const RANGE_READS: usize = 20;
const WATCHERS: usize = 1000;
const WATCH_EVENTS: usize = 100;

#[derive(Clone, Copy)]
struct Figures {
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn figures(mut lat: Vec<Duration>, elapsed: Duration) -> Figures {
    lat.sort();
    let pct = |p: f64| {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    Figures {
        ops_per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

fn value() -> Bytes {
    Bytes::from(vec![b'x'; VALUE_SIZE])
}

/// `writers` tasks creating fresh keys for `secs`.
async fn creates(s: Arc<dyn Store>, writers: usize, secs: Duration, tag: &str) -> Figures {
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let s = s.clone();
            let tag = tag.to_string();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while start.elapsed() < secs {
                    let t = Instant::now();
                    s.create(&format!("/bench/{tag}/{w}/{i}"), value(), None)
                        .await
                        .expect("create");
                    lat.push(t.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("writer task"));
    }
    figures(lat, start.elapsed())
}

/// `writers` tasks each updating their own key, guarded by its last `mod_revision`.
async fn updates(s: Arc<dyn Store>, writers: usize, secs: Duration, tag: &str) -> Figures {
    let mut revs = Vec::new();
    for w in 0..writers {
        revs.push(
            s.create(&format!("/bench/{tag}/{w}"), value(), None)
                .await
                .expect("create"),
        );
    }
    let start = Instant::now();
    let tasks: Vec<_> = revs
        .into_iter()
        .enumerate()
        .map(|(w, mut rev)| {
            let s = s.clone();
            let key = format!("/bench/{tag}/{w}");
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while start.elapsed() < secs {
                    let t = Instant::now();
                    rev = s.update(&key, value(), rev, None).await.expect("update");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("writer task"));
    }
    figures(lat, start.elapsed())
}

async fn load_range_keys(s: &Arc<dyn Store>) {
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in (w..RANGE_KEYS).step_by(64) {
                    s.create(&format!("/bench/range/{i:05}"), value(), None)
                        .await
                        .expect("create");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("loader");
    }
}

async fn range_reads(s: &Arc<dyn Store>) -> Figures {
    let mut lat = Vec::new();
    let start = Instant::now();
    for _ in 0..RANGE_READS {
        let t = Instant::now();
        let res = s
            .list("/bench/range/", ListOptions::default())
            .await
            .expect("list");
        lat.push(t.elapsed());
        assert_eq!(res.kvs.len(), RANGE_KEYS);
    }
    figures(lat, start.elapsed())
}

/// 1,000 watchers on one prefix; each write's event timed from the write's start to its
/// arrival at every watcher.
async fn watch_fanout(s: &Arc<dyn Store>) -> Figures {
    let epoch = Instant::now();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        watchers.push(s.watch("/bench/watch/", 0).await.expect("watch"));
    }
    let tasks: Vec<_> = watchers
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(WATCH_EVENTS);
                while lat.len() < WATCH_EVENTS {
                    let ev = match w.next().await {
                        Some(Ok(ev)) => ev,
                        other => panic!("watch failed: {:?}", other.map(|r| r.err())),
                    };
                    let sent = u64::from_le_bytes(ev.kv.value[..8].try_into().expect("stamp"));
                    lat.push(epoch.elapsed() - Duration::from_nanos(sent));
                }
                lat
            })
        })
        .collect();
    let start = Instant::now();
    for i in 0..WATCH_EVENTS {
        let mut v = (epoch.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
        v.resize(VALUE_SIZE, b'x');
        s.create(&format!("/bench/watch/{i}"), Bytes::from(v), None)
            .await
            .expect("create");
        // Spaced writes: this measures delivery latency, not queueing behind a burst.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("watcher"));
    }
    let mut f = figures(lat, start.elapsed());
    f.ops_per_sec = (WATCH_EVENTS * WATCHERS) as f64 / start.elapsed().as_secs_f64();
    f
}

struct Row {
    name: String,
    sqlite: Figures,
    etcd: Figures,
}

async fn run_suite(s: Arc<dyn Store>, secs: Duration, which: &str) -> Vec<(String, Figures)> {
    let mut out = Vec::new();
    for writers in [1, 16, 64] {
        eprintln!("[{which}] creates, {writers} writers");
        let f = creates(s.clone(), writers, secs, &format!("c{writers}")).await;
        out.push((format!("create 1KiB, {writers} writers"), f));
        eprintln!("[{which}] guarded updates, {writers} writers");
        let f = updates(s.clone(), writers, secs, &format!("u{writers}")).await;
        out.push((format!("guarded update 1KiB, {writers} writers"), f));
    }
    eprintln!("[{which}] loading {RANGE_KEYS} keys");
    load_range_keys(&s).await;
    eprintln!("[{which}] range reads");
    out.push((
        format!("range read of {RANGE_KEYS} keys"),
        range_reads(&s).await,
    ));
    eprintln!("[{which}] watch fan-out");
    out.push((
        format!("watch: event to {WATCHERS} watchers"),
        watch_fanout(&s).await,
    ));
    out
}

fn main() -> Result<(), Error> {
    let secs = Duration::from_secs(
        std::env::var("RKUBE_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    rt.block_on(async move {
        let me = std::process::id();
        let dir = tempfile::tempdir().map_err(|e| Error::Unavailable(e.to_string()))?;

        // Memory: what the SQLite store adds to this process at 10,000 keys of 1 KiB.
        let rss_before = rss_kib(me);
        let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(
            dir.path().join("state.db"),
            SqliteOptions::default(),
        )?);
        load_range_keys(&sqlite).await;
        let rss_loaded = rss_kib(me).saturating_sub(rss_before);
        let _ = range_reads_once(&sqlite).await;
        let rss_read = rss_kib(me).saturating_sub(rss_before);
        drop(sqlite);
        std::fs::remove_dir_all(dir.path()).ok();

        let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(
            dir.path().join("bench.db"),
            SqliteOptions::default(),
        )?);
        let sqlite_rows = run_suite(sqlite.clone(), secs, "sqlite").await;
        drop(sqlite);

        let etcd = EtcdProcess::start().await?;
        let etcd_pid = etcd.pid().unwrap_or(0);
        let etcd_rss_idle = rss_kib(etcd_pid);
        let client: Arc<dyn Store> = Arc::new(etcd.store("").await?);
        let etcd_rows = run_suite(client, secs, "etcd").await;
        let etcd_rss = rss_kib(etcd_pid);

        let rows: Vec<Row> = sqlite_rows
            .into_iter()
            .zip(etcd_rows)
            .map(|((name, sqlite), (_, etcd))| Row { name, sqlite, etcd })
            .collect();
        println!();
        println!(
            "{:<38} {:>11} {:>8} {:>8}   {:>11} {:>8} {:>8}   {:>7}",
            "workload", "sqlite op/s", "p50 ms", "p99 ms", "etcd op/s", "p50 ms", "p99 ms", "ratio"
        );
        for r in &rows {
            println!(
                "{:<38} {:>11.0} {:>8.2} {:>8.2}   {:>11.0} {:>8.2} {:>8.2}   {:>6.2}x",
                r.name,
                r.sqlite.ops_per_sec,
                r.sqlite.p50_ms,
                r.sqlite.p99_ms,
                r.etcd.ops_per_sec,
                r.etcd.p50_ms,
                r.etcd.p99_ms,
                r.sqlite.ops_per_sec / r.etcd.ops_per_sec.max(f64::MIN_POSITIVE),
            );
        }
        println!(
            "(ratio = sqlite op/s / etcd op/s; for range reads, reads/s; for watch, deliveries/s)"
        );
        println!();
        println!(
            "memory: SQLite store adds {:.1} MiB to this process at {RANGE_KEYS} keys of 1 KiB \
             ({:.1} MiB after also reading them all in one list)",
            rss_loaded as f64 / 1024.0,
            rss_read as f64 / 1024.0
        );
        println!(
            "memory: etcd process RSS {:.1} MiB idle, {:.1} MiB after the suite",
            etcd_rss_idle as f64 / 1024.0,
            etcd_rss as f64 / 1024.0
        );
        Ok(())
    })
}

async fn range_reads_once(s: &Arc<dyn Store>) -> usize {
    s.list("/bench/range/", ListOptions::default())
        .await
        .map(|r| r.kvs.len())
        .unwrap_or(0)
}
