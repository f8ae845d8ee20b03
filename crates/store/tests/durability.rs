//! Crash durability of the SQLite backend: a child process writes under load and is killed
//! with SIGKILL at random moments, many times. After every kill, everything the child was
//! told is written must be there, revisions must not go backwards, and the file must open.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use store::{Error, SqliteOptions, SqliteStore, Store};

const CHILD_DB: &str = "RKUBE_DURABILITY_CHILD_DB";
const CHILD_ROUND: &str = "RKUBE_DURABILITY_CHILD_ROUND";
const ROUNDS: u32 = 25;
const WRITERS: usize = 16;

/// The child: writers create, update and delete keys as fast as they can, and print a line
/// for each write only once the store has acknowledged it.
#[test]
#[ignore = "the child process of sigkill_never_loses_acknowledged_writes"]
fn durability_child() {
    let (Ok(path), Ok(round)) = (std::env::var(CHILD_DB), std::env::var(CHILD_ROUND)) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let out = Arc::new(Mutex::new(std::io::stdout()));
        let ack = move |line: String| {
            let mut out = out.lock().unwrap();
            writeln!(out, "ACK {line}").unwrap();
            out.flush().unwrap();
        };
        let ack = Arc::new(ack);
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (store, ack, round) = (store.clone(), ack.clone(), round.clone());
                tokio::spawn(async move {
                    let counter = format!("/w{w}/counter");
                    let mut counter_rev =
                        store.get(&counter).await.unwrap().map(|kv| kv.mod_revision);
                    for n in 0u64.. {
                        let key = format!("/w{w}/r{round}/{n:06}");
                        let rev = store
                            .create(&key, Bytes::from(format!("{key}={n}")), None)
                            .await
                            .unwrap();
                        ack(format!("C {key} {rev}"));
                        let value = Bytes::from(format!("{round}:{n}"));
                        let rev = match counter_rev {
                            Some(prev) => store.update(&counter, value, prev, None).await.unwrap(),
                            None => store.create(&counter, value, None).await.unwrap(),
                        };
                        counter_rev = Some(rev);
                        ack(format!("U {counter} {rev} {round}:{n}"));
                        if n >= 3 && n % 2 == 1 {
                            let old = format!("/w{w}/r{round}/{:06}", n - 3);
                            let (rev, _) = store.delete(&old, None).await.unwrap();
                            ack(format!("D {old} {rev}"));
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// What the parent was told was written.
#[derive(Default)]
struct Acked {
    present: HashMap<String, i64>,
    deleted: HashSet<String>,
    counters: HashMap<String, (u32, u64)>,
    /// Per writer, its last acknowledged counter update (round, n): the delete that follows
    /// it may have been durable without being acknowledged.
    last_update: HashMap<String, (u32, u64)>,
    max_rev: i64,
    writes: usize,
}

impl Acked {
    fn record(&mut self, line: &str) {
        let parts: Vec<&str> = line.split(' ').collect();
        let rev: i64 = parts[2].parse().unwrap();
        self.max_rev = self.max_rev.max(rev);
        self.writes += 1;
        match parts[0] {
            "C" => {
                self.present.insert(parts[1].to_string(), rev);
            }
            "D" => {
                self.present.remove(parts[1]);
                self.deleted.insert(parts[1].to_string());
            }
            "U" => {
                let (round, n) = parse_counter(parts[3]);
                let e = self.counters.entry(parts[1].to_string()).or_default();
                *e = (*e).max((round, n));
                let writer = parts[1].trim_end_matches("/counter").to_string();
                self.last_update.insert(writer, (round, n));
            }
            other => panic!("unknown ack {other}"),
        }
    }

    /// Whether `key` is the one a writer was about to delete when it was killed.
    fn delete_was_in_flight(&self, key: &str) -> bool {
        let mut parts = key.trim_start_matches('/').split('/');
        let (Some(writer), Some(round), Some(n)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let round: u32 = round.trim_start_matches('r').parse().unwrap();
        let n: u64 = n.parse().unwrap();
        self.last_update
            .get(&format!("/{writer}"))
            .is_some_and(|&(r, last)| r == round && last >= 3 && last % 2 == 1 && n == last - 3)
    }
}

fn parse_counter(v: &str) -> (u32, u64) {
    let (r, n) = v.split_once(':').unwrap();
    (r.parse().unwrap(), n.parse().unwrap())
}

/// A small pseudo-random sequence, seeded from the clock (printed, to reproduce).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_loses_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let mut acked = Acked::default();
    let mut last_seen_rev = 0;
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.next() % 400);
        run_child_and_kill(&path, round, kill_after, &mut acked);
        last_seen_rev = verify(&path, &mut acked, last_seen_rev).await;
    }
    println!(
        "{} acknowledged writes over {ROUNDS} kills; last revision {last_seen_rev}",
        acked.writes
    );
    assert!(
        acked.writes > 1000,
        "too little load: {} writes",
        acked.writes
    );
}

fn run_child_and_kill(path: &Path, round: u32, kill_after: Duration, acked: &mut Acked) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["durability_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_DB, path)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ack) = line.strip_prefix("ACK ") {
                let _ = tx.send(ack.to_string());
            }
        }
    });
    // Kill only once writes are flowing, at a random moment after.
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("child never acknowledged a write");
    acked.record(&first);
    let until = Instant::now() + kill_after;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => acked.record(&line),
            Err(_) => break,
        }
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "child exited by itself: {status}");
    reader.join().unwrap();
    // Lines printed before the kill were acknowledged before it.
    for line in rx.try_iter() {
        acked.record(&line);
    }
}

/// Opens the database as a restarted server would and checks every acknowledged write.
async fn verify(path: &Path, acked: &mut Acked, last_seen_rev: i64) -> i64 {
    let store = match SqliteStore::open(path, SqliteOptions::default()) {
        Ok(s) => s,
        Err(e @ Error::InvalidDatabase { .. }) => panic!("database did not open cleanly: {e}"),
        Err(e) => panic!("open failed: {e}"),
    };
    let current = store.current_revision().await.unwrap();
    assert!(
        current >= acked.max_rev,
        "revision went back: {current} < acknowledged {}",
        acked.max_rev
    );
    assert!(
        current >= last_seen_rev,
        "revision went back: {current} < {last_seen_rev}"
    );
    let mut deleted_in_flight = Vec::new();
    for (key, rev) in &acked.present {
        match store.get(key).await.unwrap() {
            Some(kv) => {
                assert_eq!(kv.mod_revision, *rev, "{key}");
                assert!(kv.value.starts_with(key.as_bytes()));
            }
            None if acked.delete_was_in_flight(key) => deleted_in_flight.push(key.clone()),
            None => panic!("acknowledged create of {key} (revision {rev}) lost"),
        }
    }
    for key in deleted_in_flight {
        acked.present.remove(&key);
        acked.deleted.insert(key);
    }
    for key in &acked.deleted {
        assert_eq!(
            store.get(key).await.unwrap(),
            None,
            "acknowledged delete of {key} lost"
        );
    }
    for (key, (round, n)) in &acked.counters {
        let kv = store.get(key).await.unwrap().expect("counter present");
        let stored = parse_counter(std::str::from_utf8(&kv.value).unwrap());
        assert!(
            stored >= (*round, *n),
            "{key} holds {stored:?}, older than acknowledged {:?}",
            (round, n)
        );
    }
    current
}
