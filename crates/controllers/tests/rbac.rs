//! RBAC's controllers against a real API server: ClusterRole aggregation, as a user sees it
//! through `kubectl auth can-i`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::{Cluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_labelled_to_aggregate_extends_view_edit_and_admin() {
    let c = Cluster::start(false).await;
    let config = c.config().await;
    let options = controllers::Options::from_config(&config);
    let client = controllers::client(config).unwrap();
    tokio::spawn(controllers::run_with(client, "cm".into(), options));
    c.ok(&[
        "create",
        "rolebinding",
        "v",
        "--clusterrole=view",
        "--user=viewer",
        "-n",
        "default",
    ])
    .await;
    let can = |verb: &'static str, what: &'static str| {
        let c = &c;
        async move {
            let out = c
                .kubectl(&[
                    "auth", "can-i", verb, what, "-n", "default", "--as", "viewer",
                ])
                .await;
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    assert_eq!(can("list", "storageclasses.storage.k8s.io").await, "no");
    let role = c.write(
        "agg.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: storage-viewer\n  labels: {rbac.authorization.k8s.io/aggregate-to-view: \"true\"}\nrules:\n- {apiGroups: [storage.k8s.io], resources: [storageclasses], verbs: [get, list, watch]}\n",
    );
    c.ok(&["apply", "-f", &role]).await;
    eventually("view holds the new rule", || async {
        (can("list", "storageclasses.storage.k8s.io").await == "yes").then_some(())
    })
    .await;
    // view feeds edit, edit feeds admin.
    for role in ["edit", "admin"] {
        eventually("the rule reaches edit and admin", || async {
            let out = c.ok(&["get", "clusterrole", role, "-o", "json"]).await;
            out.contains("storageclasses").then_some(())
        })
        .await;
    }
    // Taking the label away takes the rule away again.
    c.ok(&[
        "label",
        "clusterrole",
        "storage-viewer",
        "rbac.authorization.k8s.io/aggregate-to-view-",
    ])
    .await;
    eventually("view loses the rule", || async {
        (can("list", "storageclasses.storage.k8s.io").await == "no").then_some(())
    })
    .await;
}
