//! The ServiceAccounts controller and the root CA publisher against a real API server,
//! driven with kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::{Cluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_a_default_account_and_the_root_ca() {
    let c = Cluster::start(false).await;
    let config = c.config().await;
    let options = controllers::Options::from_config(&config);
    let ca = options.root_ca_pem.clone().unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----\n"), "{ca}");
    let client = controllers::client(config).unwrap();
    tokio::spawn(controllers::run_with(client, "cm".into(), options));
    c.ok(&["create", "namespace", "team"]).await;
    let ca_in = |ns: &'static str| {
        let c = &c;
        async move {
            c.kubectl(&[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                ns,
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ])
            .await
        }
    };
    for ns in ["default", "kube-system", "team"] {
        eventually("default service account", || async {
            let out = c
                .kubectl(&["get", "serviceaccount", "default", "-n", ns])
                .await;
            out.status.success().then_some(())
        })
        .await;
        eventually("kube-root-ca.crt", || async {
            let out = ca_in(ns).await;
            (String::from_utf8_lossy(&out.stdout) == ca.trim_end()
                || String::from_utf8_lossy(&out.stdout) == ca)
                .then_some(())
        })
        .await;
    }
    // Deleted or edited, both come back.
    c.ok(&["delete", "serviceaccount", "default", "-n", "team"])
        .await;
    c.ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team",
        "-p",
        r#"{"data":{"ca.crt":"x"}}"#,
    ])
    .await;
    eventually("the account is back", || async {
        let out = c
            .kubectl(&["get", "serviceaccount", "default", "-n", "team"])
            .await;
        out.status.success().then_some(())
    })
    .await;
    eventually("the CA is back", || async {
        let out = ca_in("team").await;
        String::from_utf8_lossy(&out.stdout)
            .starts_with("-----BEGIN")
            .then_some(())
    })
    .await;
}
