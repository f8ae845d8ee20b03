//! Snapshots and restore of the managed etcd, as a user runs them: `rkube server
//! --cluster-init` (control plane only) in a network namespace of the test's own, with
//! scheduled snapshots every 2 s keeping 2; a ConfigMap, `rkube etcd-snapshot save`, `ls`;
//! the ConfigMap deleted, the server stopped; restores from a missing and from a corrupt
//! file fail and leave the member's data in place; `rkube server --cluster-reset
//! --cluster-reset-restore-path` restores the snapshot and exits; restarted without the flag,
//! the server has the ConfigMap back and takes writes; `--cluster-reset` without a snapshot
//! keeps the data; `delete` removes the snapshot. Needs root, etcd (Debian's etcd-server),
//! etcdctl (etcd-client) and kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use harness::ns_server::{NsServer as Server, can_run_etcd, run_to_exit};
use harness::{server_binary, wait_until};

/// What this test does with its server besides starting, stopping and kubectl.
impl Server {
    /// A one-shot `rkube server ... --cluster-reset extra`, which must exit by itself.
    fn reset(&self, extra: &[&str]) -> Output {
        let (out, exited) = run_to_exit(
            self.rkube_server(&[&["--cluster-reset"], extra].concat())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            Duration::from_secs(180),
        );
        assert!(exited, "--cluster-reset did not exit: {out:?}");
        out
    }

    /// `rkube etcd-snapshot ARGS --data-dir D` in the namespace (its member is there).
    fn etcd_snapshot(&self, args: &[&str]) -> Output {
        self.cmd(&server_binary())
            .arg("etcd-snapshot")
            .args(args)
            .arg("--data-dir")
            .arg(self.data())
            .args(["--node-name", "first"])
            .output()
            .unwrap()
    }

    /// `ls`'s rows after its header: (name, location, size).
    fn ls(&self, extra: &[&str]) -> Vec<(String, String, u64)> {
        let out = self.etcd_snapshot(&[&["ls"], extra].concat());
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["Name", "Location", "Size", "Created"], "{text}");
        lines
            .map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                assert_eq!(cols.len(), 4, "{text}");
                assert!(cols[3].ends_with('Z'), "Created is not RFC 3339: {text}");
                (cols[0].into(), cols[1].into(), cols[2].parse().unwrap())
            })
            .collect()
    }

    fn member_data(&self) -> PathBuf {
        self.data().join("db/etcd/member")
    }

    /// The directories `db/etcd-old-*` the restores moved aside.
    fn old_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.data().join("db"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|n| n.starts_with("etcd-old-"))
            .collect()
    }
}

#[test]
fn a_snapshot_restores_the_cluster() {
    if !can_run_etcd() {
        common::ci::skip("needs root, etcd (etcd-server), etcdctl (etcd-client) and kubectl");
        return;
    }
    // `rkube server --cluster-init`, control plane only, node "first".
    let mut server = Server::alone(
        "rkube-etcd-snapshot",
        &["--cluster-init", "--node-name", "first"],
    );
    let scheduled = server.data().join("scheduled");
    server.start(&[
        "--etcd-snapshot-interval",
        "2s",
        "--etcd-snapshot-retention",
        "2",
        "--etcd-snapshot-dir",
        scheduled.to_str().unwrap(),
    ]);
    server.ok(&["create", "configmap", "keep", "--from-literal=a=b"]);

    // On demand: `on-demand-<node>-<unix seconds>` in <data-dir>/db/snapshots.
    let out = server.etcd_snapshot(&["save"]);
    assert!(out.status.success(), "{out:?}");
    let listed = server.ls(&[]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (name, location, size) = listed[0].clone();
    let file = server.data().join("db/snapshots").join(&name);
    assert!(name.starts_with("on-demand-first-"), "{name}");
    assert_eq!(location, format!("file://{}", file.display()));
    assert!(size > 0);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);

    // Scheduled: every 2 s, the newest 2 kept, the older ones pruned as the schedule goes on.
    let scheduled_names = || -> Vec<String> {
        server
            .ls(&["--dir", scheduled.to_str().unwrap()])
            .into_iter()
            .map(|(n, _, size)| {
                assert!(n.starts_with("etcd-snapshot-first-"), "{n}");
                assert!(size > 0, "{n} is empty");
                n
            })
            .collect()
    };
    let first = wait_until(Duration::from_secs(30), || {
        let names = scheduled_names();
        (names.len() == 2).then_some(names)
    })
    .expect("no two scheduled snapshots");
    let newer = wait_until(Duration::from_secs(30), || {
        let names = scheduled_names();
        (names.len() == 2 && names.iter().all(|n| !first.contains(n))).then_some(())
    });
    assert!(
        newer.is_some(),
        "not two newer scheduled snapshots after {first:?}: {:?}",
        scheduled_names()
    );

    // The ConfigMap goes after the snapshot; a reset while the member runs is refused.
    server.ok(&["delete", "configmap", "keep"]);
    let out = server.reset(&["--cluster-reset-restore-path", file.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop the server"),
        "{out:?}"
    );
    server.stop();

    // A missing snapshot and a corrupt one: refused, the member's data left in place.
    let missing = server.data().join("no-such-snapshot");
    let out = server.reset(&["--cluster-reset-restore-path", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{out:?}");
    assert!(err.contains("no-such-snapshot"), "{err}");
    let corrupt = server.data().join("corrupt");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    std::fs::write(&corrupt, &bytes).unwrap();
    let out = server.reset(&["--cluster-reset-restore-path", corrupt.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("restoring") && err.contains("unchanged"),
        "{err}"
    );
    assert!(server.member_data().exists());
    assert!(server.old_dirs().is_empty(), "{:?}", server.old_dirs());

    // The restore: exits 0 asking for a restart without the flag; the old data kept aside.
    let out = server.reset(&["--cluster-reset-restore-path", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("restart without --cluster-reset flag now"),
        "{stdout}"
    );
    assert_eq!(server.old_dirs().len(), 1);

    // Restarted normally: the ConfigMap is back, and writes work.
    server.start(&["--etcd-snapshot-interval", "0"]);
    assert_eq!(
        server.ok(&["get", "configmap", "keep", "-o", "jsonpath={.data.a}"]),
        "b"
    );
    server.ok(&["create", "configmap", "after", "--from-literal=c=d"]);
    server.stop();

    // A reset without a snapshot keeps the member's data.
    let out = server.reset(&[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("restart without --cluster-reset flag now")
    );
    server.start(&["--etcd-snapshot-interval", "0"]);
    server.ok(&["get", "configmap", "keep", "after"]);

    // delete: the file goes, and ls no longer lists it; an unknown name is an error.
    let out = server.etcd_snapshot(&["delete", &name]);
    assert!(out.status.success(), "{out:?}");
    assert!(!file.exists());
    assert!(server.ls(&[]).iter().all(|(n, _, _)| *n != name));
    let out = server.etcd_snapshot(&["delete", &name]);
    assert!(!out.status.success(), "{out:?}");
}
