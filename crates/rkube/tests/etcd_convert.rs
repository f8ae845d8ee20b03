//! A SQLite server converted to a managed etcd, as a user does it: `rkube server` on SQLite
//! (control plane only) in a network namespace of the test's own, Events kept 600 s; a
//! ConfigMap, a Secret and an Event; the server stopped; a join (`--server`) and a
//! `--cluster-reset` on that data dir are refused, naming `db/state.db`; a conversion that
//! fails (the store's lock held) leaves `state.db` and no etcd member; `rkube server
//! --cluster-init` on the same data dir has the ConfigMap (same uid), the Secret and the
//! Event back, its store is etcd (`db/etcd/member`, `db/state.db.migrated`, no
//! `db/state.db`), the Event's key has a lease for what was left of its 600 s (the
//! ConfigMap's none), and writes work; restarted, it does not convert again and still has
//! everything. Needs root, etcd (Debian's etcd-server), etcdctl (etcd-client) and kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::process::{Output, Stdio};
use std::time::Duration;

use harness::ns_server::{NsServer as Server, can_run_etcd, run_to_exit};

const CONVERTED: &str = "SQLite store converted into the managed etcd";

/// What this test does with its server besides starting, stopping and kubectl.
impl Server {
    /// A start that must fail by itself: its output.
    fn refused(&self, extra: &[&str]) -> Output {
        let (out, exited) = run_to_exit(
            self.rkube_server(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            Duration::from_secs(30),
        );
        assert!(exited, "the server did not exit: {out:?}");
        assert!(!out.status.success(), "{out:?}");
        out
    }

    /// etcdctl against the server's member, with its certificate.
    fn etcdctl(&self, args: &[&str]) -> String {
        let tls = self.data().join("tls/etcd");
        let out = self
            .cmd("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints=https://127.0.0.1:2379")
            .arg(format!("--cacert={}", tls.join("server-ca.crt").display()))
            .arg(format!("--cert={}", tls.join("member.crt").display()))
            .arg(format!("--key={}", tls.join("member.key").display()))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The lease of `key` in etcd (0: none).
    fn lease_of(&self, key: &str) -> i64 {
        let json: serde_json::Value =
            serde_json::from_str(&self.etcdctl(&["get", key, "-w", "json"])).unwrap();
        let kvs = json["kvs"]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {json}"));
        assert_eq!(kvs.len(), 1, "{json}");
        kvs[0]["lease"].as_i64().unwrap_or(0)
    }

    /// What a server of the cluster sees of the objects made on SQLite.
    fn assert_objects(&self, uid: &str) {
        assert_eq!(
            self.ok(&["get", "configmap", "keep", "-o", "jsonpath={.data.a}"]),
            "b"
        );
        assert_eq!(
            self.ok(&["get", "configmap", "keep", "-o", "jsonpath={.metadata.uid}"]),
            uid
        );
        // base64 of "s3cret".
        assert_eq!(
            self.ok(&["get", "secret", "pw", "-o", "jsonpath={.data.p}"]),
            "czNjcmV0"
        );
        assert_eq!(
            self.ok(&["get", "event", "ev", "-o", "jsonpath={.message}"]),
            "made on SQLite"
        );
    }
}

const EVENT: &str = "apiVersion: v1
kind: Event
metadata:
  name: ev
  namespace: default
involvedObject:
  kind: ConfigMap
  name: keep
  namespace: default
reason: Tested
message: made on SQLite
type: Normal
";

#[test]
fn a_sqlite_server_converts_to_a_managed_etcd() {
    if !can_run_etcd() {
        common::ci::skip("needs root, etcd (etcd-server), etcdctl (etcd-client) and kubectl");
        return;
    }
    // `rkube server`, control plane only, node "first", no scheduled snapshots.
    let mut server = Server::alone(
        "rkube-etcd-convert",
        &["--node-name", "first", "--etcd-snapshot-interval", "0"],
    );
    let db = server.data().join("db");

    // On SQLite: a ConfigMap, a Secret and an Event (kept 600 s).
    server.start(&["--event-ttl-seconds", "600"]);
    server.ok(&["create", "configmap", "keep", "--from-literal=a=b"]);
    server.ok(&[
        "create",
        "secret",
        "generic",
        "pw",
        "--from-literal=p=s3cret",
    ]);
    let event = server.data().join("event.yaml");
    std::fs::write(&event, EVENT).unwrap();
    server.ok(&["create", "-f", event.to_str().unwrap()]);
    let uid = server.ok(&["get", "configmap", "keep", "-o", "jsonpath={.metadata.uid}"]);
    assert!(!uid.is_empty());
    server.stop();
    assert!(db.join("state.db").exists());
    assert!(!db.join("etcd/member").exists());

    // A join would leave the SQLite data behind, and a reset has no member: both refused.
    let token = format!("K10{}::abcdef.0123456789abcdef", "0".repeat(64));
    for extra in [
        &["--server", "https://10.99.0.2:6443", "--token", &token][..],
        &["--cluster-init", "--cluster-reset"][..],
    ] {
        let out = server.refused(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("state.db holds this server's cluster in SQLite"),
            "{extra:?}: {err}"
        );
        assert!(db.join("state.db").exists());
        assert!(!db.join("etcd/member").exists(), "{extra:?}");
    }

    // A conversion that fails (the store held by another process, as a SQLite server still
    // running holds it) leaves state.db as it was and no member behind.
    let lock = std::fs::File::options()
        .write(true)
        .open(db.join("state.db.lock"))
        .unwrap();
    lock.lock().unwrap();
    let out = server.refused(&["--cluster-init"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another process") && err.contains("converts it again"),
        "{err}"
    );
    assert!(db.join("state.db").exists());
    assert!(!db.join("etcd/member").exists());
    assert!(!db.join("state.db.migrated").exists());
    drop(lock);

    // --cluster-init converts: everything is back, from etcd.
    server.start(&["--cluster-init"]);
    let log = server.log();
    let converted = log.lines().find(|l| l.contains(CONVERTED));
    assert!(converted.is_some(), "no conversion logged:\n{log}");
    eprintln!("{}", converted.unwrap_or_default());
    assert!(db.join("etcd/member").is_dir());
    assert!(db.join("state.db.migrated").is_file());
    assert!(!db.join("state.db").exists());
    assert!(!db.join("etcd/converting-sqlite").exists());
    server.assert_objects(&uid);
    let keys = server.etcdctl(&["get", "--prefix", "/registry/", "--keys-only"]);
    let event_key = keys
        .lines()
        .find(|k| k.contains("/events/") && k.ends_with("/default/ev"))
        .unwrap_or_else(|| panic!("no Event key in etcd:\n{keys}"))
        .to_string();
    let configmap_key = keys
        .lines()
        .find(|k| k.ends_with("/configmaps/default/keep"))
        .unwrap_or_else(|| panic!("no ConfigMap key in etcd:\n{keys}"))
        .to_string();
    // The Event keeps what it had left of its 600 s (a lease grants up to 5 % more), not a
    // fresh hour or forever; the ConfigMap has no lease.
    let lease = server.lease_of(&event_key);
    assert_ne!(lease, 0, "the Event has no lease");
    let ttl = server.etcdctl(&["lease", "timetolive", &format!("{lease:x}")]);
    let granted: u64 = ttl
        .split("TTL(")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no TTL in {ttl:?}"));
    assert!(granted > 0 && granted <= 630, "{ttl}");
    eprintln!("the Event's lease: {}", ttl.trim());
    assert_eq!(server.lease_of(&configmap_key), 0);
    server.ok(&["create", "configmap", "after", "--from-literal=c=d"]);
    server.stop();

    // Restarted: the member's data, no second conversion.
    server.start(&["--cluster-init"]);
    assert!(!server.log().contains(CONVERTED), "{}", server.log_tail());
    assert!(!db.join("state.db").exists());
    server.assert_objects(&uid);
    assert_eq!(
        server.ok(&["get", "configmap", "after", "-o", "jsonpath={.data.c}"]),
        "d"
    );
}
