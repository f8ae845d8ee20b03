//! Pod volumes end-to-end (root + containerd; skips otherwise): the real API server, the
//! scheduler and the kubelet on a supervised containerd in the lab's network namespace
//! (`lab::node::TestNode`). Objects are made with kubectl; what containers see is read back
//! through CRI ExecSync. The `Lab` guard unmounts and removes whatever is left if the test
//! fails; a clean run must leave nothing (no mount, no pod directory).

mod lab;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use lab::node::{TestNode, container_id, named_status, phase, wait_pod};
use lab::{Lab, ms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_volumes() -> Result<()> {
    lab::node::run_in_lab(scenario).await
}

fn manifest(host_dir: &Path) -> String {
    let host = host_dir.display();
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {{a: alpha, b: beta}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sec}}
data: {{user: YWRtaW4=, pass: czNjcjN0}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: robot}}
---
apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {{app: vols, tier: one}}
spec:
  serviceAccountName: robot
  terminationGracePeriodSeconds: 1
  hostname: vols
  subdomain: sub
  hostAliases:
  - {{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}}
  volumes:
  - {{name: shared, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 16Mi}}}}
  - {{name: host, hostPath: {{path: "{host}/created", type: DirectoryOrCreate}}}}
  - {{name: cfg, configMap: {{name: cfg}}}}
  - name: cfgitems
    configMap:
      name: cfg
      defaultMode: 384
      items: [{{key: b, path: sub/b.txt, mode: 256}}]
  - {{name: sec, secret: {{secretName: sec}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: mem_limit, resourceFieldRef: {{containerName: writer, resource: limits.memory, divisor: 1Mi}}}}
  - name: all
    projected:
      sources:
      - configMap: {{name: cfg, items: [{{key: a, path: cfg-a}}]}}
      - secret: {{name: sec, items: [{{key: user, path: sec-user}}]}}
      - downwardAPI: {{items: [{{path: pod-name, fieldRef: {{fieldPath: metadata.name}}}}]}}
      - serviceAccountToken: {{path: token, expirationSeconds: 3600}}
  containers:
  - name: writer
    image: rkube.local/busybox:test
    command: ["sh", "-c", "echo written-by-writer > /shared/msg; exec sleep 3600"]
    resources: {{limits: {{memory: 64Mi}}}}
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: mem, mountPath: /mem}}
    - {{name: host, mountPath: /host}}
    - {{name: cfg, mountPath: /cfg}}
    - {{name: cfg, mountPath: /sub/a, subPath: a}}
    - {{name: cfgitems, mountPath: /cfgitems}}
    - {{name: sec, mountPath: /sec}}
    - {{name: info, mountPath: /info}}
    - {{name: all, mountPath: /all}}
  - name: reader
    image: rkube.local/busybox:test
    command: ["sleep", "3600"]
    env:
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    volumeMounts:
    - {{name: shared, mountPath: /data, readOnly: true}}
    - {{name: shared, mountPath: /mine, subPathExpr: "$(POD_NAME)"}}
---
apiVersion: v1
kind: Pod
metadata: {{name: badhost}}
spec:
  volumes:
  - {{name: missing, hostPath: {{path: "{host}/missing", type: File}}}}
  containers:
  - name: c
    image: rkube.local/busybox:test
    command: ["sleep", "3600"]
    volumeMounts: [{{name: missing, mountPath: /m}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: fsg}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}}
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: sec, secret: {{secretName: sec, defaultMode: 256}}}}
  containers:
  - name: c
    image: rkube.local/busybox:test
    command: ["sleep", "3600"]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}, {{name: sec, mountPath: /sec}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  hostAliases:
  - {{ip: 10.9.9.9, hostnames: [alias.local]}}
  containers:
  - name: c
    image: rkube.local/busybox:test
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: term}}
spec:
  restartPolicy: Never
  volumes: [{{name: scratch, emptyDir: {{medium: Memory}}}}]
  containers:
  - name: msg
    image: rkube.local/busybox:test
    command: ["sh", "-c", "printf 'bye from rkube' > /dev/termination-log"]
    volumeMounts: [{{name: scratch, mountPath: /s, subPath: x}}]
  - name: fallback
    image: rkube.local/busybox:test
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo first; echo last words; exit 1"]
  - name: custom
    image: rkube.local/busybox:test
    terminationMessagePath: /tmp/why
    command: ["sh", "-c", "printf 'custom path' > /tmp/why"]
"#
    )
}

/// Waits for a `FailedMount` event of pod `pod` whose message contains `text`.
async fn failed_mount(events: &Api<Event>, pod: &str, text: &str) -> Result<Event> {
    let t = Instant::now();
    loop {
        let list = events.list(&Default::default()).await?;
        if let Some(e) = list.items.into_iter().find(|e| {
            e.involved_object.name.as_deref() == Some(pod)
                && e.reason.as_deref() == Some("FailedMount")
                && e.message.as_deref().is_some_and(|m| m.contains(text))
        }) {
            return Ok(e);
        }
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "no FailedMount event for {pod} with {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scenario(lab: &Lab) -> Result<()> {
    let mut node = TestNode::start(lab).await?;
    let pods = node.pods();
    let dirs = node.cfg.dirs();
    let host_dir = lab.data_dir().join("hostpath");
    let file = node.cluster.write("vols.yaml", &manifest(&host_dir));
    let t = Instant::now();
    node.cluster.ok(&["apply", "-f", &file]).await;
    let vols = wait_pod(&pods, "vols", Duration::from_secs(60), "Running", |p| {
        phase(p) == "Running"
            && ["writer", "reader"].iter().all(|c| {
                named_status(p, c).is_ok_and(|s| s.state.and_then(|s| s.running).is_some())
            })
    })
    .await?;
    println!(
        "timing: kubectl apply -> pod with 8 volumes Running {:.0} ms",
        ms(t.elapsed())
    );
    // hostPath type File on a missing path: FailedMount events (the test API server keeps
    // events 3 s; the kubelet posts it again while it recurs), the pod stays ContainerCreating.
    let events: Api<Event> = Api::namespaced(node.client.clone(), "default");
    let failed = failed_mount(&events, "badhost", "").await?;
    let message = failed.message.unwrap_or_default();
    ensure!(
        message
            == format!(
                "MountVolume.SetUp failed for volume \"missing\" : path \"{}/missing\" does not exist",
                host_dir.display()
            )
            && failed.type_.as_deref() == Some("Warning"),
        "{message}"
    );
    let bad = pods.get("badhost").await?;
    let state = named_status(&bad, "c")?.state.and_then(|s| s.waiting);
    ensure!(
        phase(&bad) == "Pending"
            && state.and_then(|w| w.reason).as_deref() == Some("ContainerCreating"),
        "{:?}",
        bad.status
    );
    let described = node.cluster.ok(&["describe", "pod", "badhost"]).await;
    ensure!(described.contains("FailedMount"), "{described}");

    let uid = vols.metadata.uid.clone().unwrap_or_default();
    let pod_ip = vols
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .ok_or_else(|| anyhow!("no pod IP"))?;
    let writer = container_id(&vols, "writer")?;
    let reader = container_id(&vols, "reader")?;
    macro_rules! w {
        ($script:expr) => {
            node.exec(&writer, $script).await
        };
    }

    // The layout on the node.
    let vol_dir = |plugin: &str, name: &str| dirs.pod_volume_dir(&uid, plugin, name);
    ensure!(vol_dir("kubernetes.io~empty-dir", "shared").is_dir());
    ensure!(
        vol_dir("kubernetes.io~configmap", "cfg")
            .join("..data")
            .exists()
    );

    // emptyDir shared by two containers: one writes, the other reads (read-only there); a
    // subPathExpr mount made the pod's own subdirectory.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match node.exec(&reader, "cat /data/msg").await {
            Ok(out) if out == "written-by-writer\n" => break,
            other => ensure!(Instant::now() < deadline, "reader sees {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        node.exec(&reader, "touch /data/x 2>&1 || echo refused")
            .await?
            .contains("refused"),
        "a readOnly mount is writable"
    );
    node.exec(&reader, "echo mine > /mine/f").await?;
    ensure!(w!("cat /shared/vols/f")? == "mine\n", "subPathExpr");

    // emptyDir medium Memory: a tmpfs of sizeLimit.
    let mounts = w!("cat /proc/mounts")?;
    let line = |path: &str| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(path))
            .unwrap_or_default()
            .to_owned()
    };
    let mem = line("/mem");
    ensure!(
        mem.starts_with("tmpfs ") && mem.contains("size=16384k"),
        "/mem: {mem:?}"
    );
    ensure!(
        line("/sec").starts_with("tmpfs "),
        "/sec: {:?}",
        line("/sec")
    );
    ensure!(line("/cfg").contains(" ro,"), "/cfg: {:?}", line("/cfg"));

    // hostPath DirectoryOrCreate: made on the node, shared with it.
    ensure!(host_dir.join("created").is_dir(), "hostPath not created");
    w!("echo from-pod > /host/f")?;
    ensure!(std::fs::read_to_string(host_dir.join("created/f"))? == "from-pod\n");

    // configMap: keys as files (0644), items with path and mode; read-only.
    ensure!(w!("cat /cfg/a /cfg/b")? == "alphabeta", "configMap");
    ensure!(w!("stat -L -c %a /cfg/a")? == "644\n");
    ensure!(w!("ls /cfgitems")? == "sub\n", "items");
    ensure!(w!("cat /cfgitems/sub/b.txt")? == "beta");
    ensure!(w!("stat -L -c %a /cfgitems/sub/b.txt")? == "400\n");
    ensure!(
        w!("touch /cfg/x 2>&1 || echo refused")?.contains("refused"),
        "configMap volume writable"
    );
    ensure!(w!("cat /sub/a")? == "alpha", "subPath");
    // secret: decoded, 0644.
    ensure!(w!("cat /sec/user; echo; cat /sec/pass")? == "admin\ns3cr3t");
    ensure!(w!("stat -L -c %a /sec/user")? == "644\n");
    // downwardAPI.
    ensure!(
        w!("cat /info/labels")? == "app=\"vols\"\ntier=\"one\"",
        "labels file"
    );
    ensure!(w!("cat /info/name; echo; cat /info/mem_limit")? == "vols\n64");
    // projected.
    ensure!(
        w!("cat /all/cfg-a; echo; cat /all/sec-user; echo; cat /all/pod-name")?
            == "alpha\nadmin\nvols"
    );
    // The projected ServiceAccount token: issued for the pod, it authenticates as its
    // ServiceAccount, bound to the pod.
    let token = w!("cat /all/token")?;
    let review = node.cluster.write(
        "review.yaml",
        &format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec: {{token: {token}}}\n"
        ),
    );
    let reviewed: serde_json::Value = serde_json::from_str(
        &node
            .cluster
            .ok(&["create", "-f", &review, "-o", "json"])
            .await,
    )?;
    ensure!(
        reviewed["status"]["user"]["username"] == "system:serviceaccount:default:robot"
            && reviewed["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"][0]
                == "vols",
        "{reviewed}"
    );
    // /etc/hosts: the pod's IP with its FQDN (subdomain) and the host aliases.
    let hosts = node.exec(&reader, "cat /etc/hosts").await?;
    ensure!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
            && hosts.contains(&format!(
                "{pod_ip}\tvols.sub.default.svc.cluster.local\tvols\n"
            ))
            && hosts.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"),
        "{hosts}"
    );

    // fsGroup: the pod's processes have the group, volumes belong to it (setgid dirs, group
    // read on secret files whose mode alone would not let the pod's user read them).
    let fsg = wait_pod(&pods, "fsg", Duration::from_secs(60), "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    let fsg_id = container_id(&fsg, "c")?;
    let out = node
        .exec(
            &fsg_id,
            "id -u; id -G; touch /scratch/f; stat -c %g /scratch/f; stat -L -c '%a %g' /sec/user; cat /sec/user",
        )
        .await?;
    ensure!(
        out == "1000\n3000 2000\n2000\n440 2000\nadmin",
        "fsGroup: {out:?}"
    );

    // A host-network pod gets the node's /etc/hosts (with upstream's header and its aliases).
    let hostnet = wait_pod(&pods, "hostnet", Duration::from_secs(60), "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    let hosts = node
        .exec(&container_id(&hostnet, "c")?, "cat /etc/hosts")
        .await?;
    let want = format!(
        "# Kubernetes-managed hosts file (host network).\n{}\n# Entries added by HostAliases.\n10.9.9.9\talias.local\n",
        std::fs::read_to_string("/etc/hosts")?
    );
    ensure!(hosts == want, "host-network /etc/hosts: {hosts:?}");

    // Updates reach the running container: ConfigMap and Secret content at the next pod
    // resync (10 s; as upstream, nothing wakes the pod for them), labels at once (a label
    // change wakes the pod's worker).
    let t = Instant::now();
    node.cluster
        .ok(&[
            "patch",
            "configmap",
            "cfg",
            "-p",
            r#"{"data":{"a":"alpha2"}}"#,
        ])
        .await;
    node.cluster
        .ok(&[
            "patch",
            "secret",
            "sec",
            "-p",
            r#"{"data":{"user":"cm9vdA=="}}"#,
        ])
        .await;
    let script = "cat /cfg/a; echo; cat /sec/user; echo; cat /all/cfg-a; echo; cat /all/sec-user";
    let want = "alpha2\nroot\nalpha2\nroot";
    let mut seen = String::new();
    while seen != want {
        ensure!(
            t.elapsed() < Duration::from_secs(25),
            "updates not seen after 25 s: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = w!(script)?;
    }
    println!(
        "timing: ConfigMap and Secret patched -> new content in the container {:.0} ms (resync 10 s)",
        ms(t.elapsed())
    );
    let t = Instant::now();
    node.cluster
        .ok(&["label", "pod", "vols", "tier=two", "--overwrite"])
        .await;
    while w!("cat /info/labels")? != "app=\"vols\"\ntier=\"two\"" {
        ensure!(
            t.elapsed() < Duration::from_secs(15),
            "labels not updated after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "timing: kubectl label -> downwardAPI labels file updated {:.0} ms",
        ms(t.elapsed())
    );
    ensure!(w!("cat /sub/a")? == "alpha", "a subPath mount was updated");

    // Termination messages: the file, the log fallback on failure, a custom path.
    let term = wait_pod(&pods, "term", Duration::from_secs(60), "Failed", |p| {
        phase(p) == "Failed"
    })
    .await?;
    let message = |name: &str| -> Result<String> {
        named_status(&term, name)?
            .state
            .and_then(|s| s.terminated)
            .map(|t| t.message.unwrap_or_default())
            .ok_or_else(|| anyhow!("{name} not terminated"))
    };
    ensure!(message("msg")? == "bye from rkube", "{:?}", message("msg"));
    ensure!(
        message("fallback")? == "first\nlast words\n",
        "{:?}",
        message("fallback")
    );
    ensure!(
        message("custom")? == "custom path",
        "{:?}",
        message("custom")
    );
    let term_uid = term.metadata.uid.clone().unwrap_or_default();
    // A finished pod's volumes and subPath binds go; its directory (termination messages)
    // stays until it is deleted.
    let term_dir = dirs.pod_dir(&term_uid);
    let t = Instant::now();
    while term_dir.join("volumes").exists() || term_dir.join("volume-subpaths").exists() {
        ensure!(
            t.elapsed() < Duration::from_secs(10),
            "a finished pod's volumes are left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(term_dir.join("containers/msg").is_dir());

    // Kubelet restart: a pod directory nobody owns (with a tmpfs in it) is unmounted and
    // removed; the running pod keeps its volumes.
    // The ConfigMap deleted first: the running pod keeps the content it had and is not held
    // back after the restart (its sandbox proves its volumes were set up), FailedMount says why.
    node.cluster.ok(&["delete", "configmap", "cfg"]).await;
    node.stop_kubelet();
    let orphan = dirs.pod_volume_dir("orphan-uid", "kubernetes.io~empty-dir", "x");
    std::fs::create_dir_all(&orphan)?;
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&orphan)
        .status()?;
    ensure!(status.success(), "mount tmpfs");
    let t = Instant::now();
    node.start_kubelet();
    while dirs.pod_dir("orphan-uid").exists() {
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "orphaned pod directory not removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "timing: kubelet restart -> orphaned pod directory unmounted and removed {:.0} ms",
        ms(t.elapsed())
    );
    ensure!(w!("cat /sec/user; cat /cfg/a")? == "rootalpha2");
    failed_mount(&events, "vols", "configmap \"cfg\" not found").await?;
    let p = pods.get("vols").await?;
    ensure!(
        phase(&p) == "Running"
            && ["writer", "reader"]
                .iter()
                .all(|c| named_status(&p, c).is_ok_and(|s| s.ready && s.restart_count == 0)),
        "{:?}",
        p.status
    );
    // ... and its containers still restart (with the subPath binds they had, not new ones
    // stacked on them).
    let binds = |lab: &Lab| {
        lab.leftovers()
            .iter()
            .filter(|l| l.contains("volume-subpaths"))
            .count()
    };
    let before = binds(lab);
    node.cri
        .stop_container(&reader, Duration::from_secs(1))
        .await?;
    let p = wait_pod(
        &pods,
        "vols",
        Duration::from_secs(30),
        "reader restarted",
        |p| {
            named_status(p, "reader")
                .is_ok_and(|s| s.restart_count == 1 && s.state.and_then(|s| s.running).is_some())
        },
    )
    .await?;
    ensure!(binds(lab) == before, "subPath binds stacked on restart");
    let reader = container_id(&p, "reader")?;
    ensure!(node.exec(&reader, "cat /mine/f; cat /data/msg").await? == "mine\nwritten-by-writer\n");

    // Deleting the pods removes their directories and mounts.
    node.cluster
        .ok(&["delete", "pod", "vols", "badhost", "term", "fsg", "hostnet"])
        .await;
    let t = Instant::now();
    loop {
        let left: Vec<String> = std::fs::read_dir(&dirs.kubelet_pods)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() {
            break;
        }
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "pod directories left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = lab.leftovers();
    ensure!(
        !left.iter().any(|l| l.contains("kubelet/pods")),
        "volume mounts left: {left:?}"
    );
    node.shutdown(lab).await.context("shutting the node down")
}

/// Claim volumes on the lab node, the kubelet talking as `system:node:<name>` (so the Node
/// authorizer decides what it may read): static `local` and `hostPath` PersistentVolumes
/// bound by the controller manager's PV controller to claims naming them, pods placed on the
/// node directly (`nodeName`, so only the kubelet judges the volumes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_volumes() -> Result<()> {
    lab::node::run_in_lab(claim_scenario).await
}

/// A PersistentVolume `name` of `source` (JSON) pinned to `node`, and a claim `name`
/// pre-bound to it.
fn volume_and_claim(name: &str, node: &str, source: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {{"name": "{name}"}},
  "spec": {{"capacity": {{"storage": "1Gi"}}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
    "persistentVolumeReclaimPolicy": "Retain", {source},
    "nodeAffinity": {{"required": {{"nodeSelectorTerms": [{{"matchExpressions": [
      {{"key": "kubernetes.io/hostname", "operator": "In", "values": ["{node}"]}}]}}]}}}}}}}}
---
{{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {{"name": "{name}", "namespace": "default"}},
  "spec": {{"storageClassName": "", "volumeName": "{name}", "accessModes": ["ReadWriteOnce"],
    "resources": {{"requests": {{"storage": "1Gi"}}}}}}}}
"#
    )
}

/// A pod on `node` mounting `volume` (JSON) at /data.
fn claim_pod(name: &str, node: &str, volume: &str, script: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "namespace": "default"}},
  "spec": {{"nodeName": "{node}", "terminationGracePeriodSeconds": 0,
    "securityContext": {{"fsGroup": 2000}},
    "containers": [{{"name": "c", "image": "rkube.local/busybox:test",
      "command": ["sh", "-c", {script:?}], "volumeMounts": [{{"name": "data", "mountPath": "/data"}}]}}],
    "volumes": [{volume}]}}}}
"#
    )
}

async fn claim_scenario(lab: &Lab) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    // No hard eviction thresholds: a shared CI disk below 10% free would evict these pods
    // (upstream's nodefs.available default), which is not what this test is about.
    let node = TestNode::start_with(lab, true, |cfg| cfg.eviction.hard.clear()).await?;
    let n = node.cfg.node_name.clone();
    let pods = node.pods();
    let events: Api<Event> = Api::namespaced(node.client.clone(), "default");
    let local_dir = lab.data_dir().join("disk");
    std::fs::create_dir_all(&local_dir)?;
    std::fs::write(local_dir.join("seed"), "from the node\n")?;
    let host_dir = lab.data_dir().join("hostdisk");
    let missing = lab.data_dir().join("nowhere");
    let mut docs = vec![
        volume_and_claim(
            "local",
            &n,
            &format!(r#""local": {{"path": "{}"}}"#, local_dir.display()),
        ),
        volume_and_claim(
            "host",
            &n,
            &format!(
                r#""hostPath": {{"path": "{}", "type": "DirectoryOrCreate"}}"#,
                host_dir.display()
            ),
        ),
        volume_and_claim(
            "missing",
            &n,
            &format!(r#""local": {{"path": "{}"}}"#, missing.display()),
        ),
        volume_and_claim(
            "elsewhere",
            "another-node",
            &format!(r#""local": {{"path": "{}"}}"#, local_dir.display()),
        ),
    ];
    let claim = |c: &str, ro: bool| {
        format!(
            r#"{{"name": "data", "persistentVolumeClaim": {{"claimName": "{c}", "readOnly": {ro}}}}}"#
        )
    };
    for (pod, claim_name, read_only, script) in [
        (
            "uses-local",
            "local",
            false,
            "cat /data/seed; echo from-pod > /data/out; exec sleep 3600",
        ),
        ("uses-host", "host", true, "sleep 3600"),
        ("uses-missing", "missing", false, "sleep 3600"),
        ("uses-elsewhere", "elsewhere", false, "sleep 3600"),
        ("unbound", "no-such-claim", false, "sleep 3600"),
    ] {
        docs.push(claim_pod(pod, &n, &claim(claim_name, read_only), script));
    }
    // An ephemeral volume's claim made by someone else than the pod's controller.
    docs.push(
        r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
  "metadata": {"name": "eph-data", "namespace": "default"},
  "spec": {"storageClassName": "", "volumeName": "squatted", "accessModes": ["ReadWriteOnce"],
    "resources": {"requests": {"storage": "1Gi"}}}}
"#
        .into(),
    );
    docs.push(
        volume_and_claim(
            "squatted",
            &n,
            &format!(r#""local": {{"path": "{}"}}"#, local_dir.display()),
        )
        .split("---")
        .next()
        .unwrap_or_default()
        .to_string(),
    );
    docs.push(claim_pod(
        "eph",
        &n,
        r#"{"name": "data", "ephemeral": {"volumeClaimTemplate": {"spec": {"storageClassName": "",
          "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}"#,
        "sleep 3600",
    ));
    let file = node.cluster.write("claims.yaml", &docs.join("\n---\n"));
    let t = Instant::now();
    node.cluster.ok(&["apply", "-f", &file]).await;

    let running = |p: &k8s_openapi::api::core::v1::Pod| phase(p) == "Running";
    let uses_local = wait_pod(
        &pods,
        "uses-local",
        Duration::from_secs(60),
        "Running",
        running,
    )
    .await?;
    println!(
        "timing: apply -> pod with a static local claim Running {:.0} ms",
        ms(t.elapsed())
    );
    let id = container_id(&uses_local, "c")?;
    ensure!(node.exec(&id, "cat /data/seed").await? == "from the node\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !local_dir.join("out").exists() {
        ensure!(
            Instant::now() < deadline,
            "the pod's write never reached the node's disk"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // fsGroup applies to a local volume: the directory took the group, setgid.
    let meta = std::fs::metadata(&local_dir)?;
    ensure!(
        meta.gid() == 2000 && meta.mode() & 0o2000 != 0,
        "{:o} gid {}",
        meta.mode(),
        meta.gid()
    );
    let uid = uses_local.metadata.uid.clone().unwrap_or_default();
    let mount_point = node
        .cfg
        .dirs()
        .pod_volume_dir(&uid, "kubernetes.io~local-volume", "data");
    ensure!(
        mounted(&mount_point),
        "no bind mount at {}",
        mount_point.display()
    );

    // hostPath PV, read-only through the claim: created (DirectoryOrCreate), not writable,
    // and no fsGroup (upstream's hostPath takes none).
    let uses_host = wait_pod(
        &pods,
        "uses-host",
        Duration::from_secs(60),
        "Running",
        running,
    )
    .await?;
    let id = container_id(&uses_host, "c")?;
    ensure!(host_dir.is_dir());
    ensure!(std::fs::metadata(&host_dir)?.gid() != 2000);
    let mounts = node.exec(&id, "grep ' /data ' /proc/mounts").await?;
    ensure!(mounts.contains(" ro,"), "/data not read-only: {mounts}");
    ensure!(
        node.exec(&id, "touch /data/y").await.is_err(),
        "a read-only claim must refuse writes"
    );

    // Failures, with upstream's words; the pods wait in ContainerCreating.
    let expected = [
        (
            "uses-missing",
            format!(
                "MountVolume.NewMounter initialization failed for volume \"missing\" : path \"{}\" does not exist",
                missing.display()
            ),
        ),
        (
            "uses-elsewhere",
            "MountVolume.NodeAffinity check failed for volume \"elsewhere\" : no matching NodeSelectorTerms".into(),
        ),
        (
            "unbound",
            "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[data]: error processing PVC default/no-such-claim: failed to fetch PVC from API server: ".into(),
        ),
        (
            "eph",
            "failed to process volumes=[data]: PVC default/eph-data was not created for pod default/eph (pod is not owner)".into(),
        ),
    ];
    for (pod, message) in &expected {
        failed_mount(&events, pod, message).await?;
    }
    ensure!(
        !missing.exists(),
        "a plain local volume's path must not be created"
    );
    for name in ["uses-missing", "uses-elsewhere", "unbound", "eph"] {
        let p = pods.get(name).await?;
        let waiting = named_status(&p, "c")?.state.and_then(|s| s.waiting);
        ensure!(
            phase(&p) == "Pending"
                && waiting.and_then(|w| w.reason).as_deref() == Some("ContainerCreating"),
            "{name}: {:?}",
            p.status
        );
    }

    // Deleted: the bind is undone and the node's data stays.
    node.cluster
        .ok(&["delete", "pods", "--all", "--grace-period=0"])
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while mounted(&mount_point) || mount_point.exists() {
        ensure!(
            Instant::now() < deadline,
            "{} still there",
            mount_point.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(std::fs::read_to_string(local_dir.join("out"))? == "from-pod\n");
    ensure!(std::fs::read_to_string(local_dir.join("seed"))? == "from the node\n");
    node.shutdown(lab).await
}

/// Whether something is mounted at `path` (mountinfo's fifth field).
fn mounted(path: &Path) -> bool {
    let Ok(p) = path.canonicalize() else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*p.to_string_lossy()))
}
