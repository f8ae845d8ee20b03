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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use harness::{holder, kill_leftovers, server_binary, wait_until};

const IP: &str = "10.99.0.1";

/// The server: its network namespace (held by a sleeping process), data dir and process.
struct Server {
    dir: tempfile::TempDir,
    holder: Child,
    process: Option<Child>,
}

impl Server {
    fn new() -> Server {
        let holder = holder(&format!(
            "ip link set lo up && ip link add eth0 type veth peer name eth0-peer && \
             ip addr add {IP}/24 dev eth0 && ip link set eth0-peer up && \
             ip link set eth0 up && echo ready && exec sleep 1000000"
        ));
        let dir = tempfile::Builder::new()
            .prefix("rkube-etcd-snapshot")
            .tempdir_in("/tmp")
            .unwrap();
        Server {
            dir,
            holder,
            process: None,
        }
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/proc/{}/ns/net", self.holder.id()))
            .arg("--")
            .arg(program);
        c
    }

    /// `rkube server --cluster-init` in the namespace, control plane only, with `extra`.
    fn rkube_server(&self, extra: &[&str]) -> Command {
        let mut c = self.cmd(&server_binary());
        c.args([
            "server",
            "--cluster-init",
            "--disable-agent",
            "--disable",
            "metrics-server,servicelb,local-storage,ingress",
            "--node-ip",
            IP,
            "--node-name",
            "first",
            "--data-dir",
        ])
        .arg(self.data())
        .args(extra)
        .env("RUST_LOG", "warn,rkube=info")
        .env_remove("RKUBE_URL")
        .env_remove("RKUBE_TOKEN");
        c
    }

    fn start(&mut self, extra: &[&str]) {
        let out = std::fs::File::create(self.data().join("server.out")).unwrap();
        let err = std::fs::File::create(self.data().join("server.err")).unwrap();
        let child = self
            .rkube_server(extra)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.process = Some(child);
        let ok = wait_until(Duration::from_secs(180), || {
            if let Some(Ok(Some(status))) = self.process.as_mut().map(Child::try_wait) {
                panic!("the server exited ({status}):\n{}", self.log_tail());
            }
            self.kubectl(&["get", "ns", "default"])
                .status
                .success()
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "the server is not serving:\n{}",
            self.log_tail()
        );
    }

    /// SIGINT, as Ctrl-C: the server stops its etcd member and exits.
    fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-INT", &p.id().to_string()])
                .status();
            let stopped = wait_until(Duration::from_secs(30), || p.try_wait().ok().flatten());
            if stopped.is_none() {
                let _ = p.kill();
                let _ = p.wait();
            }
        }
    }

    /// A one-shot `rkube server ... --cluster-reset extra`, which must exit by itself.
    fn reset(&self, extra: &[&str]) -> Output {
        let mut child = self
            .rkube_server(&[&["--cluster-reset"], extra].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let exited = wait_until(Duration::from_secs(180), || child.try_wait().unwrap());
        if exited.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(exited.is_some(), "--cluster-reset did not exit: {out:?}");
        out
    }

    fn log_tail(&self) -> String {
        let err = std::fs::read_to_string(self.data().join("server.err")).unwrap_or_default();
        let lines: Vec<&str> = err.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.cmd("kubectl")
            .arg("--kubeconfig")
            .arg(self.data().join("kubeconfig.yaml"))
            .args(["--request-timeout", "10s"])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
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

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        kill_leftovers(self.dir.path());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[test]
fn a_snapshot_restores_the_cluster() {
    let tools = [
        "/usr/bin/etcd",
        "/usr/bin/etcdctl",
        "/usr/bin/unshare",
        "/usr/bin/nsenter",
    ];
    if !harness::root_with(&tools)
        || Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_err()
    {
        common::ci::skip("needs root, etcd (etcd-server), etcdctl (etcd-client) and kubectl");
        return;
    }
    let mut server = Server::new();
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
