//! A server's etcd member over its life, with the server's node (agent) on, as k3s runs
//! servers: the first `rkube server --cluster-init` in a network namespace that is also the
//! lab's switch, a second `rkube server --server ... --token ...` in a namespace of its own
//! on it. The second's join is interrupted between starting its member and promoting it
//! (its etcd stopped with SIGSTOP once it has written its log, then the server killed, as a crash):
//! the cluster holds it as a learner. Started again with the same flags, the server promotes
//! its member and its node turns Ready. Both Nodes name their member and hold the removal
//! finalizer; `kubectl delete node` of the second removes its member from the cluster, and
//! then the Node goes. Needs root, etcd (Debian's etcd-server), etcdctl, kubectl, and what a
//! node needs (containerd, runc, nft, the CNI bridge plugin).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use harness::{Agent, NODE_IP, Node, kill_leftovers, wait_until};

const SECOND: &str = "second";
const SECOND_IP: &str = "10.99.0.2";
/// The packaged parts this test has no use for.
const DISABLE: &str = "metrics-server,servicelb,local-storage,ingress";

/// etcdctl's `member list` through the first server's member, one line per member:
/// `id, status, name, peer URLs, client URLs, is learner`.
fn members(first: &Node) -> Vec<String> {
    let tls = first.dir.path().join("tls/etcd");
    let out = first
        .cmd("etcdctl")
        .args(["--endpoints", "https://127.0.0.1:2379", "--cacert"])
        .arg(tls.join("server-ca.crt"))
        .arg("--cert")
        .arg(tls.join("member.crt"))
        .arg("--key")
        .arg(tls.join("member.key"))
        .args(["member", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "etcdctl member list: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The second server's member line, if the cluster has it.
fn second_member(first: &Node) -> Option<String> {
    members(first)
        .into_iter()
        .find(|m| m.contains(&format!("https://{SECOND_IP}:2380")))
}

/// `rkube server` joining the first, with its node, in the namespace of `holder`.
fn spawn_second(holder: &Child, dir: &Path, token: &str) -> Child {
    let first = format!("https://{NODE_IP}:6443");
    harness::spawn_rkube_in(
        holder,
        dir,
        &[
            "server",
            "--server",
            &first,
            "--token",
            token,
            "--node-name",
            SECOND,
            "--node-ip",
            SECOND_IP,
            "--disable",
            DISABLE,
        ],
        "warn,rkube::etcd=info",
        "server.err",
    )
}

/// The pid of the etcd running from `dir`'s member directory.
fn etcd_pid(dir: &Path) -> Option<u32> {
    let needle = format!("--data-dir={}", dir.join("db/etcd").display());
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmd)
            .contains(&needle)
            .then_some(pid)
    })
}

/// The last lines of the second server's log.
fn second_log(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("server.err")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn a_server_member_is_promoted_after_a_crash_and_removed_with_its_node() {
    if !(harness::ns_server::can_run_etcd() && harness::can_run_node(&[])) {
        common::ci::skip(
            "needs root, etcd, etcdctl, kubectl, containerd, runc, nft and the CNI bridge plugin",
        );
        return;
    }
    let mut first = Node::new_switched("rkube-members", "first", "warn,rkube::etcd=info");
    first.start_server_with(&["--cluster-init", "--disable", DISABLE]);
    let token = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(first.dir.path().join("token")).ok()
    })
    .expect("no server token")
    .trim()
    .to_string();

    // The second server's join, stopped between its member's start and its promotion.
    let dir = tempfile::Builder::new()
        .prefix("rkube-members2")
        .tempdir_in("/tmp")
        .unwrap();
    let holder = harness::holder("ip link set lo up && echo ready && exec sleep 1000000");
    first.add_port(1, holder.id(), SECOND_IP);
    let mut process = spawn_second(&holder, dir.path(), &token);
    // Stopped once it has written its log (so the restart restarts it, not the join),
    // before it catches up; polled tightly (wait_until's 200 ms would let it be promoted).
    let deadline = Instant::now() + Duration::from_secs(60);
    let wal = dir.path().join("db/etcd/member/wal");
    let has_wal = || {
        std::fs::read_dir(&wal).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "wal"))
        })
    };
    let pid = loop {
        if let Some(pid) = etcd_pid(dir.path()).filter(|_| has_wal()) {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the second server never started etcd:\n{}",
            second_log(dir.path())
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let status = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let learner = first.eventually(30, "the second member listed", || second_member(&first));
    assert!(
        learner.ends_with("true"),
        "the stopped member was promoted already: {learner}"
    );
    process.kill().unwrap();
    process.wait().unwrap();
    kill_leftovers(dir.path());
    assert_eq!(
        second_member(&first),
        Some(learner.clone()),
        "still a learner"
    );

    // Started again, it promotes itself, and its API server, controllers and node come up.
    let process = spawn_second(&holder, dir.path(), &token);
    let second = Agent {
        dir,
        holder,
        process,
    };
    wait_until(Duration::from_secs(120), || {
        second_member(&first).filter(|m| m.ends_with("false"))
    })
    .unwrap_or_else(|| {
        panic!(
            "the second member was not promoted: {:?}\n{}",
            members(&first),
            second_log(second.dir.path())
        )
    });
    first.wait_node_ready(SECOND);
    let log = second_log(second.dir.path());
    assert!(
        log.contains("this member is still a learner; promoting it"),
        "{log}"
    );

    // Each server's Node names its member and holds the removal finalizer.
    for node in ["first", SECOND] {
        first.eventually(30, &format!("{node} marked with its member"), || {
            let out = first.get(&[
                "get",
                "node",
                node,
                "-o",
                "jsonpath={.metadata.annotations.etcd\\.rkube\\.io/peer-url} {.metadata.finalizers}",
            ]);
            out.contains("etcd.rkube.io/member-removal").then_some(out)
        });
    }
    let members_before = members(&first).len();
    assert_eq!(members_before, 2, "{:?}", members(&first));

    // Deleting the second server's Node removes its member, then the Node.
    first.ok(&["delete", "node", SECOND, "--wait=false"]);
    first.eventually(60, "the second member removed", || {
        second_member(&first).is_none().then_some(())
    });
    first.eventually(60, "the second Node gone", || {
        let out = first.kubectl(&["get", "node", SECOND]);
        String::from_utf8_lossy(&out.stderr)
            .contains("NotFound")
            .then_some(())
    });
    assert_eq!(members(&first).len(), 1, "{:?}", members(&first));
    // The first server serves on, on the one member left.
    first.ok(&["create", "configmap", "after-removal"]);
    drop(second);
}
