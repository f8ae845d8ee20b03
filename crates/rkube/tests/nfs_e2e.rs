//! NFS volumes on a real node (tests/harness: `rkube server` with its agent and containerd in
//! a network namespace of the test's own) against a real NFS server: nfs-ganesha (VFS
//! backend) in a second namespace linked to the node's by a veth pair (10.250.62.0/30).
//! This machine's kernel has no NFS, so every mount here goes through the kubelet's FUSE
//! path (`rkube nfs-mount`, NFSv3 over TCP); `kubelet::volumes::nfs::kernel_nfs` says which
//! path a node takes. A ReadWriteMany PV with `nfs:` bound to a claim, two pods seeing each
//! other's writes through their own mounts, the data in the server's export directory, an
//! inline read-only `nfs` volume, upstream's FailedMount event for an export the server
//! does not have, mounts serving on across an agent restart, a mount whose helper was killed
//! mounted again for the pod's restarted container (a `VolumeRemounted` event), and every
//! mount (and its helper) gone once the pods are. Needs root,
//! containerd, runc, nft, the CNI plugins, /dev/fuse and ganesha (`nfs-ganesha`,
//! `nfs-ganesha-vfs`, `rpcbind`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::time::Instant;

use harness::Node;
use nfs::testing::{self, Ganesha};

const IMAGE: &str = "rkube.local/busybox:nfs";
const NODE: &str = "nfs";

/// (A YAML stream of JSON documents: the leading `---` keeps kubectl before 1.33 from reading
/// a file that starts with `{` as one JSON object.)
fn volume(server: &str) -> String {
    format!(
        r#"---
{{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {{"name": "nfs-pv"}},
  "spec": {{"capacity": {{"storage": "1Gi"}}, "accessModes": ["ReadWriteMany"],
    "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
    "mountOptions": ["nfsvers=3", "hard"],
    "nfs": {{"server": "{server}", "path": "/export"}}}}}}
---
{{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
  "metadata": {{"name": "shared", "namespace": "default"}},
  "spec": {{"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": "nfs-pv",
    "resources": {{"requests": {{"storage": "100Mi"}}}}}}}}"#
    )
}

/// A long-running pod with `source` (a volume source's JSON) at `/data`.
fn pod(name: &str, source: &str, script: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "namespace": "default"}},
  "spec": {{"terminationGracePeriodSeconds": 0,
    "containers": [{{"name": "c", "image": "{IMAGE}", "imagePullPolicy": "Never",
      "command": ["sh", "-c", {script:?}],
      "volumeMounts": [{{"name": "data", "mountPath": "/data"}}]}}],
    "volumes": [{{"name": "data", {source}}}]}}}}"#
    )
}

fn get(node: &Node, args: &[&str]) -> String {
    node.get(args)
}

fn wait_running(node: &Node, pod: &str, secs: u64) {
    node.eventually(secs, &format!("pod {pod} Running"), || {
        let phase = get(node, &["get", "pod", pod, "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(())
    });
}

fn wait_log(node: &Node, pod: &str, want: &str, secs: u64) {
    node.eventually(secs, &format!("{want:?} in {pod}'s log"), || {
        get(node, &["logs", pod]).contains(want).then_some(())
    });
}

/// The FUSE NFS mounts under the node's data dir (type `fuse`, source `SERVER:/PATH`).
fn nfs_mounts(node: &Node) -> Vec<String> {
    let dir = node.dir.path().to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&dir) && l.contains(" - fuse") && l.contains(":/"))
        .map(String::from)
        .collect()
}

/// `rkube nfs-mount` helpers serving mounts under the node's data dir.
fn helpers(node: &Node) -> usize {
    let dir = node.dir.path().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    let cmd = String::from_utf8_lossy(&cmd);
                    cmd.contains("nfs-mount") && cmd.contains(&dir)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Pids of the `rkube nfs-mount` helpers serving mounts of pod `uid`.
fn helper_pids(node: &Node, uid: &str) -> Vec<u32> {
    let dir = node.dir.path().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd);
            (cmd.contains("nfs-mount") && cmd.contains(&dir) && cmd.contains(uid)).then_some(pid)
        })
        .collect()
}

#[test]
fn nfs_volumes_shared_between_pods_through_a_real_server() {
    let missing = testing::missing();
    if !harness::can_run_node(&[]) || !missing.is_empty() {
        common::ci::skip(&format!(
            "needs root, containerd, runc, nft, the CNI plugins and {}",
            if missing.is_empty() {
                "ganesha".to_string()
            } else {
                missing.join(", ")
            }
        ));
        return;
    }
    let mut node = Node::new("rkube-nfs", NODE, "warn,kubelet=info");
    harness::air_gap_image(node.dir.path(), IMAGE, "busybox.tar", &[]);
    let holder_pid: u32 = node
        .netns()
        .trim_start_matches("--net=/proc/")
        .trim_end_matches("/ns/net")
        .parse()
        .unwrap();
    let server = Ganesha::start_for("e2e", 62, Some(holder_pid)).unwrap();
    node.start_server();
    println!(
        "kernel NFS on this node: {} (false: the FUSE client mounts)",
        kubelet::volumes::nfs::kernel_nfs()
    );

    // A PV with `nfs:`, a claim bound to it, two pods: each sees the other's write.
    node.apply(&volume(&server.ip));
    node.eventually(60, "claim shared Bound", || {
        let phase = get(
            &node,
            &["get", "pvc", "shared", "-o", "jsonpath={.status.phase}"],
        );
        (phase == "Bound").then_some(())
    });
    let claim = r#""persistentVolumeClaim": {"claimName": "shared"}"#;
    let started = Instant::now();
    node.apply(&pod(
        "writer",
        claim,
        "echo from-writer > /data/shared.txt && until [ -f /data/reply.txt ]; do sleep 0.3; done; \
         cat /data/reply.txt; exec sleep 3600",
    ));
    node.apply(&pod(
        "reader",
        claim,
        "until grep -q from-writer /data/shared.txt 2>/dev/null; do sleep 0.3; done; \
         cat /data/shared.txt; echo from-reader > /data/reply.txt; exec sleep 3600",
    ));
    wait_running(&node, "writer", 90);
    wait_running(&node, "reader", 90);
    wait_log(&node, "reader", "from-writer", 60);
    wait_log(&node, "writer", "from-reader", 60);
    println!(
        "two pods on one NFS claim -> each read the other's file: {:?}",
        started.elapsed()
    );
    // The data is on the server, and each pod has its own mount.
    assert_eq!(
        std::fs::read_to_string(server.export.join("shared.txt")).unwrap(),
        "from-writer\n"
    );
    assert_eq!(
        std::fs::read_to_string(server.export.join("reply.txt")).unwrap(),
        "from-reader\n"
    );
    let mounts = nfs_mounts(&node);
    assert_eq!(mounts.len(), 2, "{mounts:#?}");
    assert!(
        mounts
            .iter()
            .all(|m| m.contains(&format!("{}:/export", server.ip))),
        "{mounts:#?}"
    );

    // An inline `nfs` volume, read-only.
    node.apply(&pod(
        "inline",
        &format!(
            r#""nfs": {{"server": "{}", "path": "/export", "readOnly": true}}"#,
            server.ip
        ),
        "cat /data/shared.txt; if echo x > /data/nope; then echo writable; else echo read-only; fi; \
         exec sleep 3600",
    ));
    wait_running(&node, "inline", 90);
    wait_log(&node, "inline", "from-writer", 30);
    wait_log(&node, "inline", "read-only", 30);
    assert!(!server.export.join("nope").exists());

    // An export the server does not have: upstream's FailedMount event, with the reason.
    node.apply(&pod(
        "missing",
        &format!(r#""nfs": {{"server": "{}", "path": "/nope"}}"#, server.ip),
        "exec sleep 3600",
    ));
    let event = node.event_messages(60, "missing", "FailedMount");
    assert!(
        event.contains("MountVolume.SetUp failed for volume \"data\" : mount failed")
            && event.contains("refused export \"/nope\""),
        "{event}"
    );

    // The mounts outlive an agent restart (their helpers run on their own), and serve on.
    node.stop_server();
    node.start_server();
    assert_eq!(nfs_mounts(&node).len(), 3, "{:#?}", nfs_mounts(&node));
    node.ok(&[
        "exec",
        "writer",
        "--",
        "sh",
        "-c",
        "echo after-restart > /data/later.txt",
    ]);
    node.eventually(
        30,
        "the reader sees the write made after the restart",
        || {
            let out = node.kubectl(&["exec", "reader", "--", "cat", "/data/later.txt"]);
            String::from_utf8_lossy(&out.stdout)
                .contains("after-restart")
                .then_some(())
        },
    );

    // A mount's helper killed (as the OOM killer would): the pod's container sees the mount
    // broken and exits; at its next sync the kubelet finds the helper gone, mounts again, and
    // the restarted container reads the export.
    node.apply(&pod(
        "healer",
        claim,
        "cat /data/shared.txt; while cat /data/shared.txt >/dev/null; do sleep 0.5; done; \
         echo mount-broken; exit 1",
    ));
    wait_running(&node, "healer", 90);
    wait_log(&node, "healer", "from-writer", 30);
    let uid = get(
        &node,
        &["get", "pod", "healer", "-o", "jsonpath={.metadata.uid}"],
    );
    let helper = helper_pids(&node, &uid);
    assert_eq!(helper.len(), 1, "the healer's helper: {helper:?}");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &helper[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    node.eventually(90, "healer restarted, reading the export again", || {
        let restarts = get(
            &node,
            &[
                "get",
                "pod",
                "healer",
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}",
            ],
        );
        let out = node.kubectl(&["exec", "healer", "--", "cat", "/data/shared.txt"]);
        (restarts != "0" && String::from_utf8_lossy(&out.stdout) == "from-writer\n").then_some(())
    });
    // The first container saw the dead mount; the kubelet said what it did.
    assert!(
        get(&node, &["logs", "healer", "--previous"]).contains("mount-broken"),
        "{}",
        get(&node, &["logs", "healer", "--previous"])
    );
    let event = node.event_messages(30, "healer", "VolumeRemounted");
    assert!(
        event.contains("remounted volume \"data\"") && event.contains("rkube nfs-mount"),
        "{event}"
    );
    let new_helper = helper_pids(&node, &uid);
    assert!(
        new_helper.len() == 1 && new_helper != helper,
        "{helper:?} -> {new_helper:?}"
    );
    assert_eq!(nfs_mounts(&node).len(), 4, "{:#?}", nfs_mounts(&node));

    // Pods gone: their mounts and the helpers serving them too.
    node.ok(&[
        "delete",
        "pod",
        "writer",
        "reader",
        "inline",
        "missing",
        "healer",
        "--grace-period=0",
    ]);
    node.eventually(60, "the NFS mounts gone", || {
        nfs_mounts(&node).is_empty().then_some(())
    });
    node.eventually(30, "the nfs-mount helpers exited", || {
        (helpers(&node) == 0).then_some(())
    });
    // The data stays on the server (Retain).
    assert!(server.export.join("shared.txt").exists());
    if std::thread::panicking() {
        eprintln!("ganesha's log:\n{}", server.log());
    }
}
