//! `rkube server` as a user starts it: it prints where its kubeconfig is, and kubectl works
//! with that kubeconfig; a second server on the same data directory is refused clearly; the
//! manifests directory is deployed as k3s deploys its own, packaged components included, and
//! `--disable` removes them. The `local-storage` part is checked with a hollow node (no
//! agent): a claim without a class gets `local-path` and is provisioned on its pod's node by
//! the scheduler, PV controller and local-path provisioner together.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data_dir: &std::path::Path, extra: &[&str]) -> (Server, String) {
    let mut child = harness::loopback_server(data_dir)
        // The server alone: the agent has tests of its own (agent_cli.rs).
        .arg("--disable-agent")
        .args(extra)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    (server, harness::admin_kubeconfig(stdout))
}

#[test]
fn server_prints_a_kubeconfig_kubectl_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, kubeconfig) = start(dir.path(), &[]);
    let out = Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig, "get", "ns"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("default") && stdout.contains("kube-system"),
        "{stdout}"
    );

    // The same data directory cannot serve twice.
    let second = harness::loopback_server(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(stderr.contains("in use by another process"), "{stderr}");
}

/// kubectl with the server's kubeconfig: (succeeded, stdout, stderr).
fn kubectl(kubeconfig: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Polls `check` (every 200 ms, up to 60 s) until it gives Some.
fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    harness::wait_until(std::time::Duration::from_secs(60), check)
        .unwrap_or_else(|| panic!("timed out: {what}"))
}

/// `kubectl get ... -o jsonpath=PATH` when it succeeds.
fn jsonpath(kubeconfig: &str, args: &[&str], path: &str) -> Option<String> {
    let jp = format!("jsonpath={path}");
    let mut all = args.to_vec();
    all.extend(["-o", &jp]);
    let (ok, out, _) = kubectl(kubeconfig, &all);
    ok.then_some(out)
}

fn not_found(kubeconfig: &str, args: &[&str]) -> bool {
    let (ok, _, err) = kubectl(kubeconfig, args);
    !ok && err.contains("NotFound")
}

const WEB_V1: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: web}\ndata: {x: \"1\"}\n---\n\
apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b, namespace: web}}\n";
const WEB_V2: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: web}\ndata: {x: \"2\"}\n";

#[test]
fn manifests_are_applied_updated_pruned_and_deleted_and_packaged_parts_can_be_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("server/manifests");
    let (server, kc) = start(dir.path(), &[]);
    let kc = kc.as_str();

    // The packaged parts are manifests like any other, recorded as in force.
    let dns = wait_for("the packaged kube-dns Service", || {
        jsonpath(
            kc,
            &["get", "svc", "-n", "kube-system", "kube-dns"],
            "{.spec.clusterIP} {.metadata.labels.rkube\\.io/addon}",
        )
    });
    assert_eq!(dns, "10.43.0.10 coredns");
    assert!(manifests.join("coredns.yaml").exists());
    let records = |kc: &str| {
        kubectl(
            kc,
            &[
                "get",
                "cm",
                "-n",
                "kube-system",
                "-l",
                "rkube.io/manifest",
                "-o",
                "name",
            ],
        )
        .1
    };
    let on = wait_for("both packaged parts recorded", || {
        let r = records(kc);
        r.contains("servicelb").then_some(r)
    });
    assert!(on.contains("configmap/rkube-manifest-coredns"), "{on}");

    // A dropped-in file is applied (a List flattened, every object labelled as its own).
    std::fs::write(manifests.join("web.yaml"), WEB_V1).unwrap();
    let b = wait_for("web/b applied", || {
        jsonpath(
            kc,
            &["get", "cm", "-n", "web", "b"],
            "{.metadata.labels.rkube\\.io/addon}",
        )
    });
    assert_eq!(b, "web");
    assert_eq!(
        jsonpath(kc, &["get", "cm", "-n", "web", "a"], "{.data.x}").unwrap(),
        "1"
    );
    // ... changed: updated, and what it no longer holds is deleted.
    std::fs::write(manifests.join("web.yaml"), WEB_V2).unwrap();
    wait_for("web/a updated and web/b pruned", || {
        (jsonpath(kc, &["get", "cm", "-n", "web", "a"], "{.data.x}").as_deref() == Some("2")
            && not_found(kc, &["get", "cm", "-n", "web", "b"]))
        .then_some(())
    });
    let events = kubectl(
        kc,
        &[
            "get",
            "events",
            "-n",
            "kube-system",
            "--field-selector",
            "involvedObject.name=rkube-manifest-web",
            "-o",
            "name",
        ],
    );
    assert!(events.0, "{}", events.2);

    // A .skip file leaves it alone: a change is not applied. (A later file applied proves a
    // pass ran after both were written.)
    std::fs::write(manifests.join("web.yaml.skip"), "").unwrap();
    std::fs::write(manifests.join("web.yaml"), WEB_V1).unwrap();
    std::fs::write(
        manifests.join("probe.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n",
    )
    .unwrap();
    wait_for("probe applied", || {
        jsonpath(kc, &["get", "cm", "probe"], "{.metadata.name}")
    });
    assert_eq!(
        jsonpath(kc, &["get", "cm", "-n", "web", "a"], "{.data.x}").unwrap(),
        "2"
    );

    // A file that cannot apply says why, as a warning event on its record.
    std::fs::write(
        manifests.join("bad.yaml"),
        "apiVersion: example.com/v1\nkind: Nope\nmetadata: {name: x}\n",
    )
    .unwrap();
    let failed = wait_for("the failure event", || {
        let (_, out, _) = kubectl(
            kc,
            &[
                "get",
                "events",
                "-n",
                "kube-system",
                "--field-selector",
                "involvedObject.name=rkube-manifest-bad,reason=ApplyManifestFailed",
                "-o",
                "jsonpath={.items[*].message}",
            ],
        );
        (!out.is_empty()).then_some(out)
    });
    assert!(failed.contains("does not serve kind Nope"), "{failed}");

    // A removed file's objects are deleted.
    std::fs::remove_file(manifests.join("web.yaml.skip")).unwrap();
    std::fs::remove_file(manifests.join("web.yaml")).unwrap();
    wait_for("web's objects deleted", || {
        let ns = jsonpath(kc, &["get", "ns", "web"], "{.status.phase}");
        (ns.is_none() || ns.as_deref() == Some("Terminating")).then_some(())
    });
    wait_for("web's record deleted", || {
        (!records(kc).contains("rkube-manifest-web")).then_some(())
    });

    // A hollow ready node: the service load balancer gives a LoadBalancer its address.
    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: hollow}\n";
    std::fs::write(dir.path().join("node.yaml"), node).unwrap();
    let node_file = dir.path().join("node.yaml");
    assert!(kubectl(kc, &["create", "-f", node_file.to_str().unwrap()]).0);
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True"}],"addresses":[{"type":"InternalIP","address":"127.0.0.9"}]}}"#;
    let patched = kubectl(
        kc,
        &[
            "patch",
            "node",
            "hollow",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
    );
    assert!(patched.0, "{}", patched.2);
    assert!(
        kubectl(
            kc,
            &["create", "service", "loadbalancer", "lb1", "--tcp=80:80"]
        )
        .0
    );
    let ingress = wait_for("lb1's address", || {
        jsonpath(
            kc,
            &["get", "svc", "lb1"],
            "{.status.loadBalancer.ingress[0].ip}",
        )
        .filter(|ip| !ip.is_empty())
    });
    assert_eq!(ingress, "127.0.0.9");

    // Restarted with both parts disabled: their manifests and objects go, and the load
    // balancer no longer acts (the EndpointSlice controller, which did, proves the
    // controllers saw the new Service).
    drop(server);
    let (_server, kc) = start(dir.path(), &["--disable", "coredns", "--disable=servicelb"]);
    let kc = kc.as_str();
    wait_for("kube-dns deleted", || {
        not_found(kc, &["get", "svc", "-n", "kube-system", "kube-dns"]).then_some(())
    });
    assert!(!manifests.join("coredns.yaml").exists());
    wait_for("the disabled parts' records deleted", || {
        let r = records(kc);
        (!r.contains("coredns") && !r.contains("servicelb")).then_some(())
    });
    assert!(
        kubectl(
            kc,
            &["create", "service", "loadbalancer", "lb2", "--tcp=80:80"]
        )
        .0
    );
    wait_for("lb2's EndpointSlice", || {
        jsonpath(
            kc,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=lb2",
            ],
            "{.items[0].metadata.name}",
        )
        .filter(|n| !n.is_empty())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let lb2 = jsonpath(kc, &["get", "svc", "lb2"], "{.status.loadBalancer}").unwrap();
    assert!(
        lb2.is_empty() || lb2 == "{}",
        "servicelb acted while disabled: {lb2}"
    );

    // An unknown part is refused before anything starts.
    let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["server", "--disable", "traefik", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("coredns, servicelb"),
        "{err}"
    );
}

/// `kubectl apply` of `yaml`, written to `dir/name`.
fn apply(kc: &str, dir: &std::path::Path, name: &str, yaml: &str) {
    let f = dir.join(name);
    std::fs::write(&f, yaml).unwrap();
    let (ok, _, err) = kubectl(kc, &["apply", "-f", f.to_str().unwrap()]);
    assert!(ok, "{err}");
}

/// A registered, Ready node no kubelet runs (nothing starts the pods; binding is all this
/// test looks at).
fn hollow_node(kc: &str, dir: &std::path::Path) {
    apply(
        kc,
        dir,
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: hollow, labels: {kubernetes.io/hostname: hollow}}\n",
    );
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True"}],"allocatable":{"cpu":"4","memory":"8Gi","pods":"110"},"capacity":{"cpu":"4","memory":"8Gi","pods":"110"}}}"#;
    let (ok, _, err) = kubectl(
        kc,
        &[
            "patch",
            "node",
            "hollow",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
    );
    assert!(ok, "{err}");
}

const CLAIM_AND_POD: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {name: db}\nspec:\n  containers: [{name: c, image: busybox}]\n  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]\n";

#[test]
fn the_default_class_provisions_on_the_pods_node_and_can_be_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let (server, kc) = start(dir.path(), &[]);
    let kc = kc.as_str();
    let default = wait_for("the packaged local-path class", || {
        jsonpath(
            kc,
            &["get", "storageclass", "local-path"],
            r#"{.provisioner} {.volumeBindingMode} {.reclaimPolicy} {.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}"#,
        )
    });
    assert_eq!(
        default,
        "rancher.io/local-path WaitForFirstConsumer Delete true"
    );
    let (_, sc, _) = kubectl(kc, &["get", "sc"]);
    assert!(sc.contains("local-path (default)"), "{sc}");
    hollow_node(kc, dir.path());
    apply(kc, dir.path(), "db.yaml", CLAIM_AND_POD);
    assert_eq!(
        jsonpath(kc, &["get", "pvc", "data"], "{.spec.storageClassName}").unwrap(),
        "local-path"
    );
    let node = wait_for("db scheduled", || {
        jsonpath(kc, &["get", "pod", "db"], "{.spec.nodeName}").filter(|n| !n.is_empty())
    });
    assert_eq!(node, "hollow");
    let bound = jsonpath(
        kc,
        &["get", "pvc", "data"],
        r#"{.status.phase} {.metadata.annotations.volume\.kubernetes\.io/selected-node}"#,
    )
    .unwrap();
    assert_eq!(bound, "Bound hollow");
    let volume = jsonpath(kc, &["get", "pvc", "data"], "{.spec.volumeName}").unwrap();
    let pv = jsonpath(
        kc,
        &["get", "pv", &volume],
        "{.spec.local.path} {.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}",
    )
    .unwrap();
    // No node names a directory: the server's <data-dir>/storage, as k3s.
    let storage = dir.path().join("storage");
    assert!(
        pv.starts_with(storage.to_str().unwrap()) && pv.ends_with(" hollow"),
        "{pv}"
    );

    // Disabled: the class goes, and claims of a class like it are no longer provisioned.
    drop(server);
    let (_server, kc) = start(dir.path(), &["--disable", "local-storage"]);
    let kc = kc.as_str();
    wait_for("the class deleted", || {
        let (ok, _, err) = kubectl(kc, &["get", "sc", "local-path"]);
        (!ok && err.contains("NotFound")).then_some(())
    });
    apply(
        kc,
        dir.path(),
        "sc.yaml",
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: mine}\nprovisioner: rancher.io/local-path\nvolumeBindingMode: WaitForFirstConsumer\n",
    );
    let claim2 = CLAIM_AND_POD
        .replace("name: data}", "name: data2}")
        .replace("claimName: data}", "claimName: data2}")
        .replace("name: db}", "name: db2}")
        .replace(
            "spec:\n  accessModes",
            "spec:\n  storageClassName: mine\n  accessModes",
        );
    apply(kc, dir.path(), "db2.yaml", &claim2);
    // The PV controller hands the claim to the provisioner; nobody answers.
    wait_for("the claim handed to local-path", || {
        jsonpath(
            kc,
            &["get", "pvc", "data2"],
            r#"{.metadata.annotations.volume\.kubernetes\.io/storage-provisioner}"#,
        )
        .filter(|p| p == "rancher.io/local-path")
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        jsonpath(kc, &["get", "pvc", "data2"], "{.status.phase}").unwrap(),
        "Pending"
    );
    assert_eq!(
        jsonpath(kc, &["get", "pod", "db2"], "{.spec.nodeName}").unwrap(),
        ""
    );
}

/// A figure, not a check (`cargo test -p rkube --test server_cli -- --ignored
/// --nocapture`): 100 pods each with its own `local-path` claim, created at once onto one
/// hollow node, until every pod is bound (claims provisioned and bound first), next to 100
/// pods with an emptyDir in the same server.
#[test]
#[ignore]
fn bind_time_of_100_claims_with_pods() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, kc) = start(dir.path(), &[]);
    let kc = kc.as_str();
    wait_for("the packaged local-path class", || {
        jsonpath(
            kc,
            &["get", "storageclass", "local-path"],
            "{.metadata.name}",
        )
    });
    hollow_node(kc, dir.path());
    let (ok, _, err) = kubectl(
        kc,
        &[
            "patch",
            "node",
            "hollow",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"allocatable":{"pods":"500"},"capacity":{"pods":"500"}}}"#,
        ],
    );
    assert!(ok, "{err}");
    let run = |prefix: &str, with_claims: bool| {
        let mut yaml = String::new();
        for i in 0..100 {
            let volume = if with_claims {
                yaml.push_str(&format!(
                    "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {prefix}{i}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\n"
                ));
                format!("{{name: data, persistentVolumeClaim: {{claimName: {prefix}{i}}}}}")
            } else {
                "{name: data, emptyDir: {}}".to_string()
            };
            yaml.push_str(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {prefix}{i}, labels: {{run: {prefix}}}}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n  volumes: [{volume}]\n---\n"
            ));
        }
        let start = std::time::Instant::now();
        apply(kc, dir.path(), &format!("{prefix}.yaml"), &yaml);
        harness::wait_until(std::time::Duration::from_secs(300), || {
            let names = jsonpath(
                kc,
                &["get", "pods", "-l", &format!("run={prefix}")],
                "{range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
            )?;
            (names.lines().filter(|l| !l.is_empty()).count() == 100).then_some(())
        })
        .unwrap_or_else(|| panic!("{prefix}: not all bound"));
        start.elapsed()
    };
    let claims = run("vol", true);
    let empty = run("emp", false);
    println!(
        "100 pods bound: with local-path claims {:.2} s, with emptyDir {:.2} s (apply included)",
        claims.as_secs_f64(),
        empty.as_secs_f64()
    );
}
