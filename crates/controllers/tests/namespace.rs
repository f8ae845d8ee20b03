//! The namespace controller against a real API server, driven with the real kubectl:
//! `kubectl delete namespace` empties the namespace, reports what holds it in its conditions,
//! and the namespace goes once its content has.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::{Cluster, eventually};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

async fn cluster() -> Cluster {
    let c = Cluster::start(false).await;
    let client = controllers::client(c.config().await).unwrap();
    tokio::spawn(controllers::run(client, "cm".to_string()));
    c
}

fn condition(ns: &Namespace, type_: &str) -> Option<(String, String, String)> {
    ns.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let c = cluster().await;
    c.ok(&["create", "namespace", "team"]).await;
    c.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "team",
        "--image=rkube.local/web:1",
        "--replicas=2",
    ])
    .await;
    c.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team",
        "--from-literal=a=b",
    ])
    .await;
    // A ConfigMap someone else's finalizer holds.
    let held = c.write(
        "held.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: team, finalizers: [example.com/hold]}\n",
    );
    c.ok(&["apply", "-f", &held]).await;
    // The ReplicaSet's pods exist before the delete, so there is something to remove.
    eventually("two pods", || async {
        let out = c.ok(&["get", "pods", "-n", "team", "-o", "name"]).await;
        (out.lines().count() == 2).then_some(())
    })
    .await;

    c.ok(&["delete", "namespace", "team", "--wait=false"]).await;
    let api: Api<Namespace> = Api::all(c.client().await);
    // Held by the finalizer: Terminating, saying what remains and why.
    let ns = eventually("conditions naming the remaining finalizer", || async {
        let ns = api.get("team").await.ok()?;
        let (status, _, _) = condition(&ns, "NamespaceFinalizersRemaining")?;
        (status == "True").then_some(ns)
    })
    .await;
    assert_eq!(
        ns.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );
    assert_eq!(
        condition(&ns, "NamespaceFinalizersRemaining").unwrap(),
        (
            "True".into(),
            "SomeFinalizersRemain".into(),
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances".into()
        )
    );
    assert_eq!(
        condition(&ns, "NamespaceContentRemaining").unwrap(),
        (
            "True".into(),
            "SomeResourcesRemain".into(),
            "Some resources are remaining: configmaps. has 1 resource instances".into()
        )
    );
    assert_eq!(
        condition(&ns, "NamespaceDeletionDiscoveryFailure")
            .unwrap()
            .1,
        "ResourcesDiscovered"
    );
    // Everything else is gone already.
    for kind in ["deployments", "replicasets", "pods"] {
        let out = c.ok(&["get", kind, "-n", "team", "-o", "name"]).await;
        assert_eq!(out.trim(), "", "{kind} left: {out}");
    }
    let out = c
        .ok(&["get", "configmaps", "-n", "team", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "configmap/held");
    let described = c.ok(&["describe", "namespace", "team"]).await;
    assert!(described.contains("Terminating"), "{described}");

    // The finalizer's owner lets go: the namespace goes.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(c.client().await, "team");
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("the namespace gone", || async {
        api.get_opt("team").await.unwrap().is_none().then_some(())
    })
    .await;

    // Recreated, it starts empty; `kubectl delete ns --wait` returns once it is gone.
    c.ok(&["create", "namespace", "team"]).await;
    let out = c.ok(&["get", "all,cm", "-n", "team", "-o", "name"]).await;
    assert!(
        !out.contains("deployment") && !out.contains("configmap/settings"),
        "{out}"
    );
    c.ok(&[
        "create",
        "configmap",
        "again",
        "-n",
        "team",
        "--from-literal=a=b",
    ])
    .await;
    let started = std::time::Instant::now();
    c.ok(&[
        "delete",
        "namespace",
        "team",
        "--wait=true",
        "--timeout=30s",
    ])
    .await;
    assert!(api.get_opt("team").await.unwrap().is_none());
    println!("kubectl delete ns --wait: {:?}", started.elapsed());
}
