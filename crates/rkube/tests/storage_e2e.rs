//! Storage end to end on a real node (tests/harness: `rkube server` with its agent and
//! containerd in a network namespace of the test's own), driven by the real kubectl: a claim
//! without a class given the packaged default `local-path` class, the scheduler's
//! VolumeBinding choosing the node of WaitForFirstConsumer claims, claims provisioned as
//! `local` volumes under the node's
//! `<data-dir>/storage`, mounted by the kubelet into busybox pods; data kept across pods,
//! StatefulSet ordinals keeping their own volume across pod deletion, a generic ephemeral
//! volume living and dying with its pod, read-only and subPath mounts, a claim that is not
//! bound keeping its pod in ContainerCreating with upstream's FailedMount event, a claim in
//! use expanded (CAPACITY follows the request, no condition left; refused for a class not
//! allowing it), and the directories of deleted volumes removed by the kubelet's sweep.
//! Needs root, containerd, runc, nft and the CNI plugins.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::path::{Path, PathBuf};
use std::time::Instant;

use harness::Node;

const IMAGE: &str = "rkube.local/busybox:storage";
const NODE: &str = "storage";

const CLAIM: &str = r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
  "metadata": {"name": "data", "namespace": "default"},
  "spec": {"accessModes": ["ReadWriteOnce"],
    "resources": {"requests": {"storage": "64Mi"}}}}"#;

/// A pod running `script` with claim `claim` at /data (`extra_mount`: more volumeMounts).
fn pod(name: &str, claim: &str, read_only: bool, extra_mount: &str, script: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "namespace": "default"}},
  "spec": {{"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
    "securityContext": {{"fsGroup": 3000}},
    "containers": [{{"name": "c", "image": "{IMAGE}", "imagePullPolicy": "Never",
      "command": ["sh", "-c", {script:?}],
      "volumeMounts": [{{"name": "data", "mountPath": "/data"}}{extra_mount}]}}],
    "volumes": [{{"name": "data", "persistentVolumeClaim": {{"claimName": "{claim}", "readOnly": {read_only}}}}}]}}}}"#
    )
}

const STATEFUL_SET: &str = r#"{"apiVersion": "apps/v1", "kind": "StatefulSet",
  "metadata": {"name": "db", "namespace": "default"},
  "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
    "template": {"metadata": {"labels": {"app": "db"}},
      "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
        "name": "db", "image": "rkube.local/busybox:storage", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "[ -f /data/id ] || { hostname > /data/id; cat /proc/sys/kernel/random/uuid > /data/token; }; exec sleep 3600"],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
    "volumeClaimTemplates": [{"metadata": {"name": "data"},
      "spec": {"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "16Mi"}}}}]}}"#;

const EPHEMERAL: &str = r#"{"apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "eph", "namespace": "default"},
  "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
      "name": "c", "image": "rkube.local/busybox:storage", "imagePullPolicy": "Never",
      "command": ["sh", "-c", "echo scratch > /scratch/f; exec sleep 3600"],
      "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
    "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
      "spec": {"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "8Mi"}}}}}}]}}"#;

/// A local-path class allowing expansion, and a claim of it. (YAML streams of JSON documents
/// start with `---`: kubectl before 1.33 reads a file that starts with `{` as one JSON object.)
const EXPANDABLE: &str = r#"---
{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
  "metadata": {"name": "expandable"}, "provisioner": "rancher.io/local-path",
  "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete",
  "allowVolumeExpansion": true}
---
{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
  "metadata": {"name": "grow", "namespace": "default"},
  "spec": {"storageClassName": "expandable", "accessModes": ["ReadWriteOnce"],
    "resources": {"requests": {"storage": "16Mi"}}}}"#;

/// A pod bound to the node directly whose claim no volume will ever satisfy.
const UNBOUND: &str = r#"---
{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
  "metadata": {"name": "nothing", "namespace": "default"},
  "spec": {"storageClassName": "manual", "accessModes": ["ReadWriteOnce"],
    "resources": {"requests": {"storage": "1Gi"}}}}
---
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "waits", "namespace": "default"},
  "spec": {"nodeName": "storage", "terminationGracePeriodSeconds": 0, "containers": [{
    "name": "c", "image": "rkube.local/busybox:storage", "imagePullPolicy": "Never",
    "command": ["sleep", "3600"], "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
    "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "nothing"}}]}}"#;

fn get(node: &Node, args: &[&str]) -> String {
    node.get(args)
}

fn phase(node: &Node, pod: &str) -> String {
    get(node, &["get", "pod", pod, "-o", "jsonpath={.status.phase}"])
}

fn wait_phase(node: &Node, pod: &str, want: &str, secs: u64) {
    node.eventually(secs, &format!("pod {pod} {want}"), || {
        (phase(node, pod) == want).then_some(())
    });
}

fn wait_gone(node: &Node, kind: &str, name: &str, secs: u64) {
    node.eventually(secs, &format!("{kind} {name} gone"), || {
        let out = node.kubectl(&["get", kind, name, "-o", "name"]);
        (!out.status.success()).then_some(())
    });
}

/// The claim's volume and its directory on the node.
fn volume_dir(node: &Node, claim: &str) -> (String, PathBuf) {
    let pv = node.eventually(90, &format!("claim {claim} Bound"), || {
        let out = get(
            node,
            &[
                "get",
                "pvc",
                claim,
                "-o",
                "jsonpath={.status.phase} {.spec.volumeName}",
            ],
        );
        out.strip_prefix("Bound ").map(str::to_string)
    });
    let path = get(
        node,
        &["get", "pv", &pv, "-o", "jsonpath={.spec.local.path}"],
    );
    (pv, PathBuf::from(path))
}

/// Mounts on this machine whose mountinfo line has every one of `what`.
fn mounts_of(what: &[&str]) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| what.iter().all(|w| l.contains(w)))
        .map(String::from)
        .collect()
}

fn exec(node: &Node, pod: &str, cmd: &str) -> String {
    node.ok(&["exec", pod, "--", "sh", "-c", cmd])
}

#[test]
fn claims_statefulsets_and_ephemeral_volumes_on_local_path() {
    if !harness::can_run_node(&[]) {
        common::ci::skip("needs root, containerd, runc, nft and the CNI plugins");
        return;
    }
    let mut node = Node::new("rkube-storage", NODE, "warn,kubelet=info");
    harness::air_gap_image(node.dir.path(), IMAGE, "busybox.tar", &[]);
    node.start_server();
    let storage = node.dir.path().join("storage");
    let data_dir = node.dir.path().to_string_lossy().into_owned();

    // The node says where its local-path volumes go.
    let annotation = get(
        &node,
        &[
            "get",
            "node",
            NODE,
            "-o",
            r"jsonpath={.metadata.annotations.rkube\.io/local-storage-path}",
        ],
    );
    assert_eq!(Path::new(&annotation), storage);
    // The server ships k3s' `local-path` as the default class.
    assert_eq!(
        get(
            &node,
            &[
                "get",
                "storageclass",
                "local-path",
                "-o",
                r"jsonpath={.provisioner} {.volumeBindingMode} {.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}",
            ],
        ),
        "rancher.io/local-path WaitForFirstConsumer true"
    );

    // A claim that is not bound: its pod waits in ContainerCreating, with upstream's event.
    node.apply(UNBOUND);
    let event = node.event_messages(60, "waits", "FailedMount");
    assert!(
        event.contains("Unable to attach or mount volumes: unmounted volumes=[v]")
            && event.contains("error processing PVC default/nothing: PVC is not bound"),
        "{event}"
    );
    assert_eq!(phase(&node, "waits"), "Pending");
    let waiting = get(
        &node,
        &[
            "get",
            "pod",
            "waits",
            "-o",
            "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
        ],
    );
    assert_eq!(waiting, "ContainerCreating");
    node.ok(&["delete", "pod", "waits", "--grace-period=0", "--wait=false"]);

    // A claim provisioned for its first pod, which writes; a second pod reads it back.
    node.apply(CLAIM);
    let started = Instant::now();
    node.apply(&pod(
        "writer",
        "data",
        false,
        "",
        "mkdir -p /data/sub && echo hello > /data/f && echo nested > /data/sub/x && ls -ln /data/f",
    ));
    wait_phase(&node, "writer", "Succeeded", 90);
    println!(
        "claim + pod -> pod finished writing: {:?}",
        started.elapsed()
    );
    let (pv, dir) = volume_dir(&node, "data");
    assert_eq!(
        get(
            &node,
            &[
                "get",
                "pv",
                &pv,
                "-o",
                "jsonpath={.spec.storageClassName} {.spec.claimRef.name} {.spec.persistentVolumeReclaimPolicy}"
            ]
        ),
        "local-path data Delete"
    );
    assert!(dir.starts_with(&storage), "{dir:?} not in {storage:?}");
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{pv}_default_data")),
        "{dir:?}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "hello\n");
    // fsGroup applies to local volumes: the file the pod made has the group.
    let listing = node.ok(&["logs", "writer"]);
    assert!(listing.contains(" 3000 "), "{listing}");
    node.ok(&["delete", "pod", "writer"]);
    wait_gone(&node, "pod", "writer", 60);
    let dir_name = dir.file_name().unwrap().to_string_lossy().into_owned();
    node.eventually(30, "the writer's bind mount gone", || {
        mounts_of(&[&dir_name]).is_empty().then_some(())
    });

    // Read back, read-only, and through a subPath.
    node.apply(&pod(
        "reader",
        "data",
        true,
        r#", {"name": "data", "mountPath": "/sub", "subPath": "sub"}"#,
        "cat /data/f /sub/x; touch /data/g 2>/dev/null && echo writable || echo read-only",
    ));
    wait_phase(&node, "reader", "Succeeded", 60);
    assert_eq!(node.ok(&["logs", "reader"]), "hello\nnested\nread-only\n");
    node.ok(&["delete", "pod", "reader"]);
    wait_gone(&node, "pod", "reader", 60);

    // Expansion: a claim of a class allowing it, in use by a running pod, asks for more; the
    // controller grows the volume and asks the node (FileSystemResizePending), the kubelet
    // finishes (nothing to grow in a directory): CAPACITY follows, no condition is left.
    node.apply(EXPANDABLE);
    node.apply(&pod(
        "grower",
        "grow",
        false,
        "",
        "echo before > /data/f; exec sleep 3600",
    ));
    wait_phase(&node, "grower", "Running", 90);
    let (grow_pv, _) = volume_dir(&node, "grow");
    let claim_state = |node: &Node| {
        get(
            node,
            &[
                "get",
                "pvc",
                "grow",
                "-o",
                "jsonpath={.spec.resources.requests.storage} {.status.capacity.storage} \
                 [{.status.conditions}] [{.status.allocatedResourceStatuses}]",
            ],
        )
    };
    assert_eq!(claim_state(&node), "16Mi 16Mi [] []");
    node.ok(&[
        "patch",
        "pvc",
        "grow",
        "-p",
        r#"{"spec": {"resources": {"requests": {"storage": "32Mi"}}}}"#,
    ]);
    let grown = Instant::now();
    node.eventually(60, "claim grow expanded to 32Mi", || {
        (claim_state(&node) == "32Mi 32Mi [] []").then_some(())
    });
    println!(
        "claim request raised -> capacity raised: {:?}",
        grown.elapsed()
    );
    let table = get(&node, &["get", "pvc", "grow", "--no-headers"]);
    let columns: Vec<&str> = table.split_whitespace().collect();
    // NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS …
    assert_eq!(columns.get(3), Some(&"32Mi"), "{table}");
    assert_eq!(
        get(
            &node,
            &[
                "get",
                "pv",
                &grow_pv,
                "-o",
                "jsonpath={.spec.capacity.storage}"
            ]
        ),
        "32Mi"
    );
    let event = node.event_messages(30, "grower", "FileSystemResizeSuccessful");
    assert!(
        event.contains(&format!(
            "MountVolume.NodeExpandVolume succeeded for volume \"{grow_pv}\""
        )),
        "{event}"
    );
    assert_eq!(exec(&node, "grower", "cat /data/f"), "before\n");
    // A class without allowVolumeExpansion (the packaged local-path): the API server refuses
    // the edit (PersistentVolumeClaimResize admission) and the claim stays as it was.
    let refused = node.kubectl(&[
        "patch",
        "pvc",
        "data",
        "-p",
        r#"{"spec": {"resources": {"requests": {"storage": "128Mi"}}}}"#,
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && stderr.contains("Forbidden")
            && stderr.contains("the storageclass that provisions the pvc must support resize"),
        "{stderr}"
    );
    assert_eq!(
        get(
            &node,
            &[
                "get",
                "pvc",
                "data",
                "-o",
                "jsonpath={.status.capacity.storage} [{.status.conditions}]"
            ]
        ),
        "64Mi []"
    );
    node.ok(&["delete", "pod", "grower", "--grace-period=0"]);
    node.ok(&["delete", "pvc", "grow"]);
    wait_gone(&node, "pv", &grow_pv, 90);

    // A StatefulSet: each ordinal its own claim, kept across the pod's deletion.
    node.apply(STATEFUL_SET);
    for i in 0..3 {
        wait_phase(&node, &format!("db-{i}"), "Running", 90);
    }
    let token = exec(&node, "db-1", "cat /data/id /data/token");
    assert!(token.starts_with("db-1\n"), "{token}");
    let old_uid = get(
        &node,
        &["get", "pod", "db-1", "-o", "jsonpath={.metadata.uid}"],
    );
    node.ok(&["delete", "pod", "db-1"]);
    node.eventually(90, "db-1 back", || {
        let uid = get(
            &node,
            &["get", "pod", "db-1", "-o", "jsonpath={.metadata.uid}"],
        );
        (uid != old_uid && !uid.is_empty() && phase(&node, "db-1") == "Running").then_some(())
    });
    assert_eq!(exec(&node, "db-1", "cat /data/id /data/token"), token);
    assert_eq!(exec(&node, "db-2", "cat /data/id"), "db-2\n");
    let claims = get(
        &node,
        &[
            "get",
            "pvc",
            "data-db-0",
            "data-db-1",
            "data-db-2",
            "-o",
            "jsonpath={range .items[*]}{.status.phase}/{.spec.storageClassName} {end}",
        ],
    );
    assert_eq!(
        claims.trim(),
        "Bound/local-path Bound/local-path Bound/local-path"
    );

    // A generic ephemeral volume: its claim is the pod's, and goes with it.
    node.apply(EPHEMERAL);
    wait_phase(&node, "eph", "Running", 90);
    let owner = get(
        &node,
        &[
            "get",
            "pvc",
            "eph-scratch",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
        ],
    );
    assert_eq!(owner, "Pod/eph");
    assert_eq!(exec(&node, "eph", "cat /scratch/f"), "scratch\n");
    let (eph_pv, eph_dir) = volume_dir(&node, "eph-scratch");
    assert!(eph_dir.join("f").exists());
    node.ok(&["delete", "pod", "eph"]);
    wait_gone(&node, "pvc", "eph-scratch", 90);
    wait_gone(&node, "pv", &eph_pv, 90);

    // Deleting the claim deletes its volume (reclaim Delete), and a sweep its directory;
    // directories of volumes that still exist stay.
    node.ok(&["delete", "pvc", "data"]);
    wait_gone(&node, "pv", &pv, 90);
    let swept = Instant::now();
    node.eventually(120, "the deleted volumes' directories removed", || {
        (!dir.exists() && !eph_dir.exists()).then_some(())
    });
    println!("volume deleted -> directory removed: {:?}", swept.elapsed());
    let (_, db0) = volume_dir(&node, "data-db-0");
    assert!(
        db0.join("id").exists(),
        "a live volume's directory must stay"
    );

    // Everything deleted: no bind mount of a claim's volume is left on the machine.
    node.ok(&["delete", "sts", "db"]);
    node.eventually(90, "db pods gone", || {
        get(&node, &["get", "pods", "-l", "app=db", "-o", "name"])
            .is_empty()
            .then_some(())
    });
    node.eventually(30, "no volume mounts left", || {
        mounts_of(&[&data_dir, "kubernetes.io~local-volume"])
            .is_empty()
            .then_some(())
    });
}

/// `n` pods labelled `bench=<kind>`, each with an emptyDir or its own local-path claim.
fn bench_objects(kind: &str, n: usize) -> String {
    let mut items = Vec::new();
    for i in 0..n {
        let volume = if kind == "pvc" {
            items.push(format!(
                r#"{{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
  "metadata": {{"name": "bench-{i}", "namespace": "default", "labels": {{"bench": "pvc"}}}},
  "spec": {{"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
    "resources": {{"requests": {{"storage": "1Mi"}}}}}}}}"#
            ));
            format!(r#"{{"name": "v", "persistentVolumeClaim": {{"claimName": "bench-{i}"}}}}"#)
        } else {
            r#"{"name": "v", "emptyDir": {}}"#.to_string()
        };
        items.push(format!(
            r#"{{"apiVersion": "v1", "kind": "Pod",
  "metadata": {{"name": "{kind}-{i}", "namespace": "default", "labels": {{"bench": "{kind}"}}}},
  "spec": {{"terminationGracePeriodSeconds": 0, "containers": [{{"name": "c", "image": "{IMAGE}",
    "imagePullPolicy": "Never", "command": ["sleep", "3600"],
    "volumeMounts": [{{"name": "v", "mountPath": "/v"}}]}}],
    "volumes": [{volume}]}}}}"#
        ));
    }
    items.join("\n---\n")
}

/// Creates the pods (and claims) at once; the time until every pod is Running.
fn time_to_running(node: &Node, kind: &str, n: usize) -> std::time::Duration {
    let f = node.dir.path().join(format!("bench-{kind}.yaml"));
    std::fs::write(&f, bench_objects(kind, n)).unwrap();
    let started = Instant::now();
    node.ok(&["create", "-f", f.to_str().unwrap()]);
    let selector = format!("bench={kind}");
    node.eventually(600, &format!("{n} {kind} pods Running"), || {
        let phases = get(
            node,
            &[
                "get",
                "pods",
                "-l",
                &selector,
                "-o",
                "jsonpath={.items[*].status.phase}",
            ],
        );
        (phases
            .split_whitespace()
            .filter(|p| *p == "Running")
            .count()
            == n)
            .then_some(())
    });
    let took = started.elapsed();
    node.ok(&[
        "delete",
        "pods,pvc",
        "-l",
        &selector,
        "--grace-period=0",
        "--wait=false",
    ]);
    node.eventually(300, &format!("{kind} pods gone"), || {
        get(node, &["get", "pods", "-l", &selector, "-o", "name"])
            .is_empty()
            .then_some(())
    });
    took
}

/// The issue's figure: `RKUBE_BENCH_PODS` (100) pods each with its own local-path claim,
/// created at once, until all are Running with their volume mounted — next to the same pods
/// with an emptyDir, in the same run. Prints, asserts nothing about time. Run with
/// `flock /tmp/rkube-node.lock cargo test -p rkube --test storage_e2e -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: minutes of pod churn"]
fn bench_pods_with_claims_vs_empty_dir() {
    if !harness::can_run_node(&[]) {
        common::ci::skip("needs root, containerd, runc, nft and the CNI plugins");
        return;
    }
    let n: usize = std::env::var("RKUBE_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut node = Node::new("rkube-storage-bench", NODE, "warn");
    harness::air_gap_image(node.dir.path(), IMAGE, "busybox.tar", &[]);
    node.start_server();
    let empty_dir = time_to_running(&node, "emptydir", n);
    let claims = time_to_running(&node, "pvc", n);
    println!(
        "{n} pods at once -> all Running: emptyDir {:.1} s, local-path claims {:.1} s (ratio {:.2})",
        empty_dir.as_secs_f64(),
        claims.as_secs_f64(),
        claims.as_secs_f64() / empty_dir.as_secs_f64()
    );
}
