//! What only the embedded backend has: its file, its lock, its in-process watch buffer, and
//! how it behaves when the file is bad or the disk is full.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use common::next_events;
use store::{Error, ListOptions, SqliteOptions, SqliteStore, Store};

fn open(path: &Path) -> store::Result<SqliteStore> {
    SqliteStore::open(path, SqliteOptions::default())
}

fn value(n: usize) -> Bytes {
    Bytes::from(vec![b'v'; n])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_revisions_and_compaction_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (r_b, last) = {
        let s = open(&path).unwrap();
        let r1 = s.create("/a", value(10), None).await.unwrap();
        s.update("/a", value(20), r1, None).await.unwrap();
        let r_b = s.create("/b", value(5), None).await.unwrap();
        s.compact(r_b).await.unwrap();
        let (last, _) = s.delete("/b", None).await.unwrap();
        (r_b, last)
    };
    let s = open(&path).unwrap();
    assert_eq!(s.current_revision().await.unwrap(), last);
    assert_eq!(s.compacted_revision(), r_b);
    let a = s.get("/a").await.unwrap().unwrap();
    assert_eq!((a.value.len(), a.version), (20, 2));
    assert_eq!(s.get("/b").await.unwrap(), None);
    // The next write continues the revision sequence.
    assert!(s.create("/c", value(1), None).await.unwrap() > last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_per_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let _first = open(&path).unwrap();
    match open(&path) {
        Err(Error::InvalidDatabase { reason, .. }) => {
            assert!(reason.contains("in use"), "{reason}")
        }
        Ok(_) => panic!("a second store opened the same database"),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_that_falls_behind_reads_history_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(
        dir.path().join("state.db"),
        SqliteOptions {
            watch_buffer: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut w = s.watch("/k/", 0).await.unwrap();
    let mut revs = Vec::new();
    for i in 0..300 {
        revs.push(
            s.create(&format!("/k/{i:03}"), value(8), None)
                .await
                .unwrap(),
        );
    }
    let got: Vec<_> = next_events(&mut w, 300)
        .await
        .iter()
        .map(|e| e.revision())
        .collect();
    assert_eq!(got, revs);
}

/// Every kind of bad file: refused with a clear error, and left byte for byte as it was.
fn assert_refused(path: &Path, want: &str) {
    let before = std::fs::read(path).unwrap();
    match open(path) {
        Err(e @ Error::InvalidDatabase { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(want), "error {msg:?} should mention {want:?}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
        }
        Ok(_) => panic!("opened a bad database"),
        Err(e) => panic!("unexpected error {e}"),
    }
    assert_eq!(std::fs::read(path).unwrap(), before, "file was modified");
}

#[test]
fn garbage_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(
        &path,
        b"this is not a database, it is someone's notes\n".repeat(200),
    )
    .unwrap();
    assert_refused(&path, "not a SQLite database");
}

#[test]
fn foreign_sqlite_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT); INSERT INTO accounts VALUES (1, 'x');",
    )
    .unwrap();
    drop(conn);
    assert_refused(&path, "not an rkube database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = open(&path).unwrap();
        for i in 0..400 {
            s.create(&format!("/k/{i:04}"), value(1024), None)
                .await
                .unwrap();
        }
    }
    // Overwrite part of a b-tree page in the middle of the file.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.len() > 100 * 4096,
        "database is {} bytes",
        bytes.len()
    );
    let page = 50 * 4096;
    for b in &mut bytes[page..page + 200] {
        *b = 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert_refused(&path, "corrupt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(open(&path).unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    // user_version lives at offset 60 of the header.
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert_refused(&path, "newer rkube");
}

/// A small tmpfs: the disk fills up for real. Needs root (as CI runs).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "rkube-test"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_fails_writes_keeps_reads_and_acknowledged_data() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let disk = SmallDisk::mount("3m").expect("mount a 3 MiB tmpfs");
    let path = disk.dir.path().join("state.db");
    let s = Arc::new(open(&path).unwrap());
    let mut acked = Vec::new();
    let mut full_error = None;
    // Fill the disk with 64 KiB values until writes fail.
    for i in 0..1000 {
        let key = format!("/k/{i:04}");
        match s.create(&key, value(64 * 1024), None).await {
            Ok(rev) => acked.push((key, rev)),
            Err(e) => {
                full_error = Some(e);
                break;
            }
        }
    }
    match full_error {
        Some(Error::DiskFull(msg)) => assert!(msg.contains("full"), "{msg}"),
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert!(acked.len() > 5, "only {} writes fit", acked.len());
    // Writes keep failing cleanly, reads keep working, nothing acknowledged is lost.
    assert!(matches!(
        s.create("/k/more", value(64 * 1024), None).await,
        Err(Error::DiskFull(_))
    ));
    let list = s.list("/k/", ListOptions::default()).await.unwrap();
    assert_eq!(list.kvs.len(), acked.len());
    for (key, rev) in &acked {
        let kv = s.get(key).await.unwrap().expect("acknowledged key present");
        assert_eq!(kv.mod_revision, *rev);
    }
    let last = acked.last().unwrap().1;
    assert_eq!(s.current_revision().await.unwrap(), last);
    // Free space (delete some keys' data by deleting a key and compacting is not enough on
    // a full disk, so drop the store and grow the disk instead), then write again.
    drop(s);
    let grown = Command::new("mount")
        .args(["-o", "remount,size=16m"])
        .arg(disk.dir.path())
        .status()
        .is_ok_and(|st| st.success());
    assert!(grown, "remount tmpfs larger");
    let s = open(&path).unwrap();
    for (key, rev) in &acked {
        assert_eq!(s.get(key).await.unwrap().unwrap().mod_revision, *rev);
    }
    let rev = s.create("/k/after", value(1024), None).await.unwrap();
    assert!(rev > last);
}
