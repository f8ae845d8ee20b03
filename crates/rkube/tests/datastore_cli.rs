//! `rkube datastore` as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::process::Command;

fn rkube(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run rkube");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn status_of_a_new_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (ok, out, err) = rkube(&["datastore", "status", "--data-dir", data]);
    assert!(ok, "{err}");
    assert!(out.contains("backend:  sqlite"), "{out}");
    assert!(out.contains("revision: 0"), "{out}");
    assert!(dir.path().join("db/state.db").exists());
}

#[test]
fn a_bad_database_is_a_clear_error_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    std::fs::write(&db, "not a database").unwrap();
    let endpoint = format!("sqlite://{}", db.display());
    let (ok, _, err) = rkube(&["datastore", "status", "--datastore-endpoint", &endpoint]);
    assert!(!ok);
    assert!(err.contains("not a SQLite database"), "{err}");
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(&db).unwrap(), "not a database");
}

#[test]
fn an_unknown_endpoint_is_refused() {
    let (ok, _, err) = rkube(&["datastore", "status", "--datastore-endpoint", "mysql://db"]);
    assert!(!ok);
    assert!(err.contains("neither sqlite:// nor an etcd"), "{err}");
}

/// A snapshot, more writes, a restore: the store is back as it was at the snapshot, its
/// revision above both histories; the replaced database is kept.
#[test]
fn snapshot_list_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let db = dir.path().join("db/state.db");
    let write = |key: &str| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = store::SqliteStore::open(&db, Default::default()).unwrap();
            store::Store::create(&s, key, bytes::Bytes::from_static(b"v"), None)
                .await
                .unwrap();
        });
    };
    write("/registry/configmaps/default/a");
    let (ok, out, err) = rkube(&[
        "datastore",
        "snapshot",
        "--data-dir",
        data,
        "--name",
        "before",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("revision=1 keys=1"), "{out}");
    let snapshot = out.split('\t').next().unwrap().to_string();
    assert!(snapshot.contains("/db/snapshots/before-"), "{snapshot}");
    write("/registry/configmaps/default/b");
    let (ok, out, _) = rkube(&["datastore", "snapshots", "--data-dir", data]);
    assert!(ok && out.contains(&snapshot), "{out}");

    let (ok, out, err) = rkube(&["datastore", "restore", "--data-dir", data, &snapshot]);
    assert!(ok, "{err}");
    assert!(out.contains("at revision 3"), "{out}");
    assert!(out.contains("state.db.replaced-"), "{out}");
    let (ok, out, _) = rkube(&["datastore", "keys", "--data-dir", data, "/registry/"]);
    assert!(ok);
    assert!(out.contains("/registry/configmaps/default/a"), "{out}");
    assert!(!out.contains("/registry/configmaps/default/b"), "{out}");
    let (_, out, _) = rkube(&["datastore", "status", "--data-dir", data]);
    assert!(out.contains("revision: 3"), "{out}");

    // Not a snapshot: refused, the store untouched.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "junk").unwrap();
    let (ok, _, err) = rkube(&[
        "datastore",
        "restore",
        "--data-dir",
        data,
        junk.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("not a SQLite database"), "{err}");
    let (_, out, _) = rkube(&["datastore", "status", "--data-dir", data]);
    assert!(out.contains("revision: 3"), "{out}");
}
