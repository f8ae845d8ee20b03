//! The storage admission plugins seen from the real kubectl: DefaultStorageClass gives a new
//! claim without a class the (newest) default class, StorageObjectInUseProtection puts the
//! protection finalizers on new claims and volumes; PersistentVolumeClaimResize lets only a
//! bound claim in a class with `allowVolumeExpansion: true` grow; all can be turned off.
//! Also the API's defaults for claims, volumes and StorageClasses.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::Cluster;

fn class(name: &str, default: bool) -> String {
    format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {name}\n  annotations: {{storageclass.kubernetes.io/is-default-class: \"{default}\"}}\nprovisioner: rancher.io/local-path\nvolumeBindingMode: WaitForFirstConsumer\n"
    )
}

fn claim(name: &str, class: Option<&str>) -> String {
    let class = class.map_or(String::new(), |c| format!("  storageClassName: \"{c}\"\n"));
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n"
    )
}

async fn apply(c: &Cluster, file: &str, manifest: &str) {
    let f = c.write(file, manifest);
    c.ok(&["apply", "-f", &f]).await;
}

async fn get(c: &Cluster, kind: &str, name: &str, path: &str) -> String {
    c.ok(&["get", kind, name, "-o", &format!("jsonpath={path}")])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_get_the_default_class_and_protection_finalizers() {
    let c = Cluster::start(false).await;
    // No default class yet: the claim stays without one.
    apply(&c, "c0.yaml", &claim("early", None)).await;
    assert_eq!(
        get(&c, "pvc", "early", "{.spec.storageClassName}").await,
        ""
    );
    assert_eq!(
        get(&c, "pvc", "early", "{.metadata.finalizers}").await,
        r#"["kubernetes.io/pvc-protection"]"#
    );
    apply(&c, "s1.yaml", &class("old-default", true)).await;
    apply(&c, "s2.yaml", &class("other", false)).await;
    apply(&c, "c1.yaml", &claim("plain", None)).await;
    assert_eq!(
        get(&c, "pvc", "plain", "{.spec.storageClassName}").await,
        "old-default"
    );
    // Creation timestamps have one-second resolution: make the second default newer.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    apply(&c, "s3.yaml", &class("new-default", true)).await;
    apply(&c, "c2.yaml", &claim("newest", None)).await;
    assert_eq!(
        get(&c, "pvc", "newest", "{.spec.storageClassName}").await,
        "new-default"
    );
    // An explicit class, even "", is kept.
    apply(&c, "c3.yaml", &claim("chosen", Some("other"))).await;
    assert_eq!(
        get(&c, "pvc", "chosen", "{.spec.storageClassName}").await,
        "other"
    );
    apply(&c, "c4.yaml", &claim("none", Some(""))).await;
    assert_eq!(get(&c, "pvc", "none", "{.spec.storageClassName}").await, "");
    // Volumes get their finalizer too.
    apply(
        &c,
        "pv.yaml",
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv1}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: /tmp/pv1}\n",
    )
    .await;
    assert_eq!(
        get(&c, "pv", "pv1", "{.metadata.finalizers}").await,
        r#"["kubernetes.io/pv-protection"]"#
    );
    // Upstream's API defaults.
    assert_eq!(
        get(
            &c,
            "pv",
            "pv1",
            "{.spec.persistentVolumeReclaimPolicy} {.spec.volumeMode}"
        )
        .await,
        "Retain Filesystem"
    );
    assert_eq!(
        get(&c, "pvc", "plain", "{.spec.volumeMode}").await,
        "Filesystem"
    );
    // A class's: reclaim policy Delete and binding mode Immediate unless given, also when an
    // update drops them.
    apply(
        &c,
        "bare.yaml",
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: bare}\nprovisioner: example.com/bare\n",
    )
    .await;
    let policies = "{.reclaimPolicy} {.volumeBindingMode}";
    assert_eq!(get(&c, "sc", "bare", policies).await, "Delete Immediate");
    assert_eq!(
        get(&c, "sc", "other", policies).await,
        "Delete WaitForFirstConsumer"
    );
    c.ok(&[
        "patch",
        "sc",
        "bare",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/reclaimPolicy"},{"op":"remove","path":"/volumeBindingMode"}]"#,
    ])
    .await;
    assert_eq!(get(&c, "sc", "bare", policies).await, "Delete Immediate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_plugins_can_be_disabled() {
    let c = Cluster::start_configured(false, |cfg| {
        cfg.disable_admission_plugins = vec![
            "DefaultStorageClass".into(),
            "StorageObjectInUseProtection".into(),
            "PersistentVolumeClaimResize".into(),
        ];
    })
    .await;
    apply(&c, "s1.yaml", &class("standard", true)).await;
    apply(&c, "c1.yaml", &claim("plain", None)).await;
    assert_eq!(
        get(&c, "pvc", "plain", "{.spec.storageClassName}").await,
        ""
    );
    assert_eq!(get(&c, "pvc", "plain", "{.metadata.finalizers}").await, "");
    // Without the resize plugin a bound claim grows though no class allows it.
    bind(&c, "plain").await;
    grow(&c, "plain", "2Gi").await;
    assert_eq!(
        get(&c, "pvc", "plain", "{.spec.resources.requests.storage}").await,
        "2Gi"
    );
}

/// A class that allows expansion (`Some(true)`), forbids it, or leaves it unset.
fn expandable_class(name: &str, allow: Option<bool>) -> String {
    let allow = allow.map_or(String::new(), |a| format!("allowVolumeExpansion: {a}\n"));
    format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: {name}}}\nprovisioner: rancher.io/local-path\n{allow}"
    )
}

/// kubectl's patch of the claim's storage request.
fn grow_args<'a>(name: &'a str, patch: &'a str) -> [&'a str; 7] {
    ["patch", "pvc", name, "--type=merge", "-p", patch, "-o=name"]
}

async fn grow(c: &Cluster, name: &str, size: &str) {
    let patch = format!(r#"{{"spec":{{"resources":{{"requests":{{"storage":"{size}"}}}}}}}}"#);
    c.ok(&grow_args(name, &patch)).await;
}

async fn grow_refused(c: &Cluster, name: &str, size: &str) -> String {
    let patch = format!(r#"{{"spec":{{"resources":{{"requests":{{"storage":"{size}"}}}}}}}}"#);
    c.fails(&grow_args(name, &patch)).await
}

/// The claim bound to a volume as the PersistentVolume controller leaves it: `volumeName`
/// in its spec, phase Bound and the capacity in its status (through the status subresource).
async fn bind(c: &Cluster, name: &str) {
    c.ok(&[
        "patch",
        "pvc",
        name,
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"volumeName":"pv-{name}"}}}}"#),
    ])
    .await;
    c.ok(&[
        "patch",
        "pvc",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Bound","capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"]}}"#,
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bound_claims_in_expandable_classes_grow() {
    let c = Cluster::start(false).await;
    apply(&c, "s1.yaml", &expandable_class("unset", None)).await;
    apply(&c, "s2.yaml", &expandable_class("disallowed", Some(false))).await;
    apply(&c, "s3.yaml", &expandable_class("expandable", Some(true))).await;
    for (name, class) in [
        ("unset", "unset"),
        ("disallowed", "disallowed"),
        ("expandable", "expandable"),
        ("pending", "expandable"),
    ] {
        apply(&c, &format!("c-{name}.yaml"), &claim(name, Some(class))).await;
    }
    for name in ["unset", "disallowed", "expandable"] {
        bind(&c, name).await;
    }
    let storage = "{.spec.resources.requests.storage}";

    // A bound claim whose class does not allow expansion (unset or false) keeps its size.
    for name in ["unset", "disallowed"] {
        let err = grow_refused(&c, name, "2Gi").await;
        assert!(
            err.contains(&format!(
                "Error from server (Forbidden): persistentvolumeclaims \"{name}\" is forbidden: \
                 only dynamically provisioned pvc can be resized and the storageclass that \
                 provisions the pvc must support resize"
            )),
            "{err}"
        );
        assert_eq!(get(&c, "pvc", name, storage).await, "1Gi");
    }

    // In a class allowing it, the bound claim grows.
    grow(&c, "expandable", "2Gi").await;
    assert_eq!(get(&c, "pvc", "expandable", storage).await, "2Gi");

    // An unbound claim does not, whatever its class: its spec is fixed (the claim's own
    // validation runs before the admission plugin, as upstream's store runs it).
    let err = grow_refused(&c, "pending", "2Gi").await;
    assert!(
        err.contains(
            "The PersistentVolumeClaim \"pending\" is invalid: spec: Forbidden: spec is \
             immutable after creation except resources.requests and volumeAttributesClassName \
             for bound claims"
        ),
        "{err}"
    );
    assert_eq!(get(&c, "pvc", "pending", storage).await, "1Gi");

    // Keeping the size (in other units) is no growth, whatever the class.
    grow(&c, "unset", "1024Mi").await;
    assert_eq!(get(&c, "pvc", "unset", storage).await, "1024Mi");
}
