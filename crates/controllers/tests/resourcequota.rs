//! ResourceQuota end to end: admission refuses and charges, the controller keeps status in
//! step, against a real API server with kubectl and the kube client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::collections::BTreeMap;

use apiserver::testing::{Cluster, eventually};
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::PostParams;
use kube::{Api, Client};

/// A cluster with the controllers running (the ServiceAccounts controller among them).
async fn cluster() -> (Cluster, Client) {
    let c = Cluster::start(false).await;
    let client = controllers::client(c.config().await).unwrap();
    tokio::spawn(controllers::run(client.clone(), "cm".into()));
    (c, client)
}

/// A namespace whose `default` ServiceAccount exists (ServiceAccount admission wants it
/// before pods are created).
async fn namespace(c: &Cluster, ns: &str) {
    c.ok(&["create", "namespace", ns]).await;
    eventually("the default service account", || async {
        let out = c
            .kubectl(&["get", "serviceaccount", "default", "-n", ns])
            .await;
        out.status.success().then_some(())
    })
    .await;
}

fn quantities(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> BTreeMap<String, String> {
    list.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// The quota's `status.used`, once `status.hard` is there.
async fn used(client: &Client, ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
    let q = Api::<ResourceQuota>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    let status = q.status?;
    status.hard.as_ref()?;
    Some(quantities(status.used.as_ref()))
}

/// Waits until the quota's used values include `want`.
async fn wait_used(client: &Client, ns: &str, name: &str, want: &[(&str, &str)]) {
    eventually(&format!("{ns}/{name} used {want:?}"), || async {
        let used = used(client, ns, name).await?;
        want.iter()
            .all(|(k, v)| used.get(*k).map(String::as_str) == Some(*v))
            .then_some(())
    })
    .await;
}

fn pod(name: &str, resources: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36", "resources": resources}]}
    }))
    .unwrap()
}

/// A pod manifest for kubectl.
fn pod_yaml(name: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: app\n    image: busybox:1.36\n    resources: {resources}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_quota_holds_under_concurrent_creates_and_frees_on_delete() {
    let (c, client) = cluster().await;
    namespace(&c, "team").await;
    c.ok(&["create", "quota", "pods", "--hard=pods=2", "-n", "team"])
        .await;
    wait_used(&client, "team", "pods", &[("pods", "0")]).await;

    // Ten at once: exactly two get in.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "team");
    let creates = (0..10).map(|i| {
        let pods = pods.clone();
        tokio::spawn(async move {
            pods.create(
                &PostParams::default(),
                &pod(&format!("p{i}"), serde_json::json!({})),
            )
            .await
        })
    });
    let results = futures::future::join_all(creates).await;
    let mut admitted = 0;
    for (i, r) in results.into_iter().enumerate() {
        match r.unwrap() {
            Ok(_) => admitted += 1,
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 403, "{e:?}");
                assert_eq!(
                    e.message,
                    format!(
                        "pods \"p{i}\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2"
                    )
                );
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(admitted, 2);
    assert_eq!(used(&client, "team", "pods").await.unwrap()["pods"], "2");
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 2);

    // kubectl shows used against hard.
    let get = c.ok(&["get", "quota", "-n", "team"]).await;
    assert!(get.contains("pods: 2/2"), "{get}");
    let describe = c.ok(&["describe", "quota", "pods", "-n", "team"]).await;
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "2", "2"]),
        "{describe}"
    );
    let file = c.write("p10.yaml", &pod_yaml("p10", "{}"));
    let err = c.fails(&["create", "-f", &file, "-n", "team"]).await;
    assert!(
        err.contains(
            "pods \"p10\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2"
        ),
        "{err}"
    );

    // Deleting a pod gives its share back; then a new one fits.
    let admitted_pod = pods.list(&Default::default()).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    c.ok(&["delete", "pod", &admitted_pod, "-n", "team"]).await;
    wait_used(&client, "team", "pods", &[("pods", "1")]).await;
    c.ok(&["create", "-f", &file, "-n", "team"]).await;
    assert_eq!(used(&client, "team", "pods").await.unwrap()["pods"], "2");
    // A dry run is checked but not charged.
    let dry = c.write("p11.yaml", &pod_yaml("p11", "{}"));
    let err = c
        .fails(&["create", "-f", &dry, "-n", "team", "--dry-run=server"])
        .await;
    assert!(err.contains("exceeded quota: pods"), "{err}");
    // A finished pod no longer counts (count/pods would still count it).
    c.ok(&[
        "patch",
        "pod",
        "p10",
        "-n",
        "team",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Succeeded"}}"#,
    ])
    .await;
    wait_used(&client, "team", "pods", &[("pods", "1")]).await;
    c.ok(&["create", "-f", &dry, "-n", "team"]).await;
    assert_eq!(used(&client, "team", "pods").await.unwrap()["pods"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_scoped_and_object_count_quotas() {
    let (c, client) = cluster().await;

    // Compute: every container must say, and requests add up.
    namespace(&c, "compute").await;
    c.ok(&[
        "create",
        "quota",
        "compute",
        "--hard=requests.cpu=1,limits.memory=1Gi",
        "-n",
        "compute",
    ])
    .await;
    wait_used(
        &client,
        "compute",
        "compute",
        &[("requests.cpu", "0"), ("limits.memory", "0")],
    )
    .await;
    let bare = c.write("bare.yaml", &pod_yaml("bare", "{}"));
    let err = c.fails(&["create", "-f", &bare, "-n", "compute"]).await;
    assert!(
        err.contains(
            "pods \"bare\" is forbidden: failed quota: compute: must specify limits.memory for: app; requests.cpu for: app"
        ),
        "{err}"
    );
    let sized = |name: &str| {
        c.write(
            &format!("{name}.yaml"),
            &pod_yaml(
                name,
                "{requests: {cpu: 600m}, limits: {cpu: 600m, memory: 512Mi}}",
            ),
        )
    };
    c.ok(&["create", "-f", &sized("a"), "-n", "compute"]).await;
    wait_used(
        &client,
        "compute",
        "compute",
        &[("requests.cpu", "600m"), ("limits.memory", "512Mi")],
    )
    .await;
    let err = c
        .fails(&["create", "-f", &sized("b"), "-n", "compute"])
        .await;
    assert!(
        err.contains(
            "pods \"b\" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"
        ),
        "{err}"
    );
    let describe = c
        .ok(&["describe", "quota", "compute", "-n", "compute"])
        .await;
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["requests.cpu", "600m", "1"]),
        "{describe}"
    );

    // BestEffort scope: only pods without requests or limits count.
    namespace(&c, "scoped").await;
    c.ok(&[
        "create",
        "quota",
        "besteffort",
        "--hard=pods=1",
        "--scopes=BestEffort",
        "-n",
        "scoped",
    ])
    .await;
    wait_used(&client, "scoped", "besteffort", &[("pods", "0")]).await;
    let burstable = |name: &str| {
        c.write(
            &format!("{name}.yaml"),
            &pod_yaml(name, "{requests: {cpu: 100m}}"),
        )
    };
    c.ok(&["create", "-f", &burstable("burst1"), "-n", "scoped"])
        .await;
    assert_eq!(
        used(&client, "scoped", "besteffort").await.unwrap()["pods"],
        "0"
    );
    let be = |name: &str| c.write(&format!("{name}.yaml"), &pod_yaml(name, "{}"));
    c.ok(&["create", "-f", &be("be1"), "-n", "scoped"]).await;
    let err = c.fails(&["create", "-f", &be("be2"), "-n", "scoped"]).await;
    assert!(
        err.contains(
            "exceeded quota: besteffort, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{err}"
    );
    c.ok(&["create", "-f", &burstable("burst2"), "-n", "scoped"])
        .await;
    assert_eq!(
        used(&client, "scoped", "besteffort").await.unwrap()["pods"],
        "1"
    );

    // Object counts and node ports.
    namespace(&c, "objects").await;
    c.ok(&[
        "create",
        "quota",
        "objects",
        "--hard=count/configmaps=2,services=5,services.nodeports=1,count/deployments.apps=1",
        "-n",
        "objects",
    ])
    .await;
    wait_used(
        &client,
        "objects",
        "objects",
        &[
            ("count/configmaps", "0"),
            ("services.nodeports", "0"),
            ("count/deployments.apps", "0"),
        ],
    )
    .await;
    c.ok(&["create", "configmap", "a", "-n", "objects"]).await;
    // Checked, not charged.
    c.ok(&[
        "create",
        "configmap",
        "dry",
        "-n",
        "objects",
        "--dry-run=server",
    ])
    .await;
    c.ok(&["create", "configmap", "b", "-n", "objects"]).await;
    let err = c
        .fails(&["create", "configmap", "c", "-n", "objects"])
        .await;
    assert!(
        err.contains(
            "configmaps \"c\" is forbidden: exceeded quota: objects, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2"
        ),
        "{err}"
    );
    c.ok(&["delete", "configmap", "a", "-n", "objects"]).await;
    wait_used(&client, "objects", "objects", &[("count/configmaps", "1")]).await;
    c.ok(&["create", "configmap", "c", "-n", "objects"]).await;

    c.ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:80",
        "-n",
        "objects",
    ])
    .await;
    wait_used(
        &client,
        "objects",
        "objects",
        &[("services", "1"), ("services.nodeports", "1")],
    )
    .await;
    let err = c
        .fails(&[
            "create",
            "service",
            "nodeport",
            "np2",
            "--tcp=81:81",
            "-n",
            "objects",
        ])
        .await;
    assert!(
        err.contains(
            "services \"np2\" is forbidden: exceeded quota: objects, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1"
        ),
        "{err}"
    );
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "cip",
        "--tcp=80:80",
        "-n",
        "objects",
    ])
    .await;
    c.ok(&["delete", "service", "np", "-n", "objects"]).await;
    wait_used(
        &client,
        "objects",
        "objects",
        &[("services", "1"), ("services.nodeports", "0")],
    )
    .await;
    // An update that adds node ports is charged too.
    c.ok(&[
        "patch",
        "service",
        "cip",
        "-n",
        "objects",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ])
    .await;
    assert_eq!(
        used(&client, "objects", "objects").await.unwrap()["services.nodeports"],
        "1"
    );
    let err = c
        .fails(&[
            "create",
            "service",
            "nodeport",
            "np3",
            "--tcp=82:82",
            "-n",
            "objects",
        ])
        .await;
    assert!(
        err.contains("exceeded quota: objects, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1"),
        "{err}"
    );
    let get = c.ok(&["get", "quota", "objects", "-n", "objects"]).await;
    assert!(get.contains("count/configmaps: 2/2"), "{get}");

    // Any kind can be counted, and its deletions are seen promptly.
    c.ok(&[
        "create",
        "deployment",
        "d1",
        "--image=busybox:1.36",
        "-n",
        "objects",
    ])
    .await;
    let err = c
        .fails(&[
            "create",
            "deployment",
            "d2",
            "--image=busybox:1.36",
            "-n",
            "objects",
        ])
        .await;
    assert!(
        err.contains(
            "deployments.apps \"d2\" is forbidden: exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"
        ),
        "{err}"
    );
    // Recalculation lists deployments from the API (and starts watching them).
    c.ok(&["delete", "configmap", "b", "-n", "objects"]).await;
    wait_used(
        &client,
        "objects",
        "objects",
        &[("count/configmaps", "1"), ("count/deployments.apps", "1")],
    )
    .await;
    c.ok(&["delete", "deployment", "d1", "-n", "objects"]).await;
    wait_used(
        &client,
        "objects",
        "objects",
        &[("count/deployments.apps", "0")],
    )
    .await;
    c.ok(&[
        "create",
        "deployment",
        "d2",
        "--image=busybox:1.36",
        "-n",
        "objects",
    ])
    .await;

    // Claims: storage in total and per StorageClass.
    namespace(&c, "storage").await;
    c.ok(&[
        "create",
        "quota",
        "storage",
        "--hard=requests.storage=1Gi,gold.storageclass.storage.k8s.io/persistentvolumeclaims=1",
        "-n",
        "storage",
    ])
    .await;
    wait_used(&client, "storage", "storage", &[("requests.storage", "0")]).await;
    let claim = |name: &str, class: &str| {
        c.write(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\nspec:\n  storageClassName: {class}\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 600Mi\n"
            ),
        )
    };
    c.ok(&["create", "-f", &claim("c1", "gold"), "-n", "storage"])
        .await;
    let err = c
        .fails(&["create", "-f", &claim("c2", "gold"), "-n", "storage"])
        .await;
    assert!(
        err.contains(
            "persistentvolumeclaims \"c2\" is forbidden: exceeded quota: storage, requested: gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,requests.storage=600Mi, used: gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,requests.storage=600Mi, limited: gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,requests.storage=1Gi"
        ),
        "{err}"
    );
    let err = c
        .fails(&["create", "-f", &claim("c3", "silver"), "-n", "storage"])
        .await;
    assert!(
        err.contains(
            "exceeded quota: storage, requested: requests.storage=600Mi, used: requests.storage=600Mi, limited: requests.storage=1Gi"
        ),
        "{err}"
    );
    wait_used(
        &client,
        "storage",
        "storage",
        &[
            ("requests.storage", "600Mi"),
            (
                "gold.storageclass.storage.k8s.io/persistentvolumeclaims",
                "1",
            ),
        ],
    )
    .await;
}

/// Two API servers over one etcd: each charges with a compare-and-swap on the stored quota,
/// so concurrent creates through both still stop exactly at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_servers_over_one_etcd_charge_exactly() {
    let etcd = store::testing::EtcdProcess::start().await.unwrap();
    let mut servers = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let datastore = store::DatastoreConfig::parse(
            Some(&format!("{}?prefix=/shared", etcd.client_url)),
            dir.path(),
        )
        .unwrap();
        let server = apiserver::Server::start(apiserver::Config {
            data_dir: dir.path().to_path_buf(),
            bind: "127.0.0.1:0".parse().unwrap(),
            datastore,
            kubeconfig: dir.path().join("kubeconfig.yaml"),
            event_ttl: std::time::Duration::from_secs(60),
            advertise_address: None,
            authorization_mode: Default::default(),
            token_auth_file: None,
            encryption_config: None,
            audit_policy: None,
            audit_log: None,
            disable_admission_plugins: Vec::new(),
            pod_netns: None,
            kubelet_certificate_authority: None,
            local_services: Default::default(),
        })
        .await
        .unwrap();
        servers.push(server);
        dirs.push(dir);
    }
    let mut clients = Vec::new();
    for s in &servers {
        let kc = kube::config::Kubeconfig::read_from(&s.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        clients.push(controllers::client(config).unwrap());
    }
    tokio::spawn(controllers::run(clients[0].clone(), "cm".into()));
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(clients[0].clone());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "shared"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let quota: ResourceQuota = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pods"},
        "spec": {"hard": {"pods": "3"}}
    }))
    .unwrap();
    Api::<ResourceQuota>::namespaced(clients[0].clone(), "shared")
        .create(&PostParams::default(), &quota)
        .await
        .unwrap();
    for client in &clients {
        wait_used(client, "shared", "pods", &[("pods", "0")]).await;
    }
    eventually("the default service account", || async {
        Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(clients[0].clone(), "shared")
            .get_opt("default")
            .await
            .ok()
            .flatten()
    })
    .await;

    let creates = (0..12).map(|i| {
        let pods: Api<Pod> = Api::namespaced(clients[i % 2].clone(), "shared");
        tokio::spawn(async move {
            pods.create(
                &PostParams::default(),
                &pod(&format!("p{i}"), serde_json::json!({})),
            )
            .await
        })
    });
    let results = futures::future::join_all(creates).await;
    let admitted = results
        .into_iter()
        .filter(|r| match r.as_ref().unwrap() {
            Ok(_) => true,
            Err(kube::Error::Api(e)) => {
                assert!(e.message.contains("exceeded quota: pods"), "{e:?}");
                false
            }
            Err(e) => panic!("unexpected error: {e}"),
        })
        .count();
    assert_eq!(admitted, 3);
    for client in &clients {
        wait_used(client, "shared", "pods", &[("pods", "3")]).await;
    }
    let pods: Api<Pod> = Api::namespaced(clients[1].clone(), "shared");
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 3);
}
