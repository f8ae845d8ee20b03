//! Bearer tokens as users meet them: ServiceAccount tokens from `kubectl create token`
//! (and their binding to a pod), TokenReview, bootstrap tokens and the static token file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::path::Path;

use apiserver::testing::{Cluster, eventually};

async fn run(c: &Cluster, kc: &Path, args: &[&str]) -> (bool, String, String) {
    let out = c.kubectl_with(kc, args).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

async fn whoami(c: &Cluster, kc: &Path) -> serde_json::Value {
    let (ok, out, err) = run(c, kc, &["auth", "whoami", "-o", "json"]).await;
    assert!(ok, "{err}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["status"]["userInfo"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_authenticate_until_their_objects_go() {
    let c = Cluster::start(false).await;
    c.ok(&["create", "serviceaccount", "robot"]).await;
    let token = c.ok(&["create", "token", "robot"]).await;
    let kc = c.kubeconfig_with_token("robot.yaml", token.trim());
    let me = whoami(&c, &kc).await;
    assert_eq!(me["username"], "system:serviceaccount:default:robot");
    let groups = me["groups"].as_array().unwrap();
    for g in [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ] {
        assert!(groups.contains(&g.into()), "{groups:?}");
    }
    // RBAC applies to it like any user: view lists pods, not secrets.
    c.ok(&[
        "create",
        "rolebinding",
        "robot-view",
        "--clusterrole=view",
        "--serviceaccount=default:robot",
    ])
    .await;
    eventually("robot may list pods", || async {
        run(&c, &kc, &["get", "pods"]).await.0.then_some(())
    })
    .await;
    let (ok, _, err) = run(&c, &kc, &["get", "secrets"]).await;
    assert!(!ok);
    assert!(
        err.contains(
            r#"User "system:serviceaccount:default:robot" cannot list resource "secrets""#
        ),
        "{err}"
    );
    // The API server says who a token is (TokenReview).
    let review = c.write(
        "review.yaml",
        &format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {}\n",
            token.trim()
        ),
    );
    let out = c.ok(&["create", "-f", &review, "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"]["authenticated"], true);
    assert_eq!(
        v["status"]["user"]["username"],
        "system:serviceaccount:default:robot"
    );
    let bad = c.write(
        "bad.yaml",
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: not-a-token\n",
    );
    let out = c.ok(&["create", "-f", &bad, "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"]["authenticated"], false);
    // Too short a lifetime is refused as upstream refuses it.
    let err = c
        .fails(&["create", "token", "robot", "--duration=1m"])
        .await;
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    // A token bound to a pod dies with the pod.
    let pod = c.write(
        "p.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  serviceAccountName: robot\n  containers: [{name: c, image: busybox}]\n",
    );
    c.ok(&["create", "-f", &pod]).await;
    let bound = c
        .ok(&[
            "create",
            "token",
            "robot",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
        ])
        .await;
    let bound_kc = c.kubeconfig_with_token("bound.yaml", bound.trim());
    assert_eq!(
        whoami(&c, &bound_kc).await["extra"]["authentication.kubernetes.io/pod-name"][0],
        "p"
    );
    c.ok(&["delete", "pod", "p", "--grace-period=0", "--force"])
        .await;
    let (ok, _, err) = run(&c, &bound_kc, &["get", "pods"]).await;
    assert!(!ok);
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "{err}"
    );
    // Deleting the ServiceAccount ends its tokens; a new one of the same name does not
    // revive them.
    c.ok(&["delete", "serviceaccount", "robot"]).await;
    c.ok(&["create", "serviceaccount", "robot"]).await;
    let (ok, _, err) = run(&c, &kc, &["get", "pods"]).await;
    assert!(!ok);
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_and_static_tokens() {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        tokens.path(),
        "# token,user,uid,groups\ns3cr3t-t0ken,jane,1001,\"ops,dev\"\n",
    )
    .unwrap();
    let path = tokens.path().to_path_buf();
    let c = Cluster::start_configured(false, |cfg| cfg.token_auth_file = Some(path)).await;
    let jane = c.kubeconfig_with_token("jane.yaml", "s3cr3t-t0ken");
    let me = whoami(&c, &jane).await;
    assert_eq!(me["username"], "jane");
    assert_eq!(me["uid"], "1001");
    assert_eq!(
        me["groups"],
        serde_json::json!(["ops", "dev", "system:authenticated"])
    );
    let wrong = c.kubeconfig_with_token("wrong.yaml", "s3cr3t-t0kem");
    let (ok, _, _) = run(&c, &wrong, &["auth", "whoami"]).await;
    assert!(!ok);
    // A bootstrap token: valid while its Secret says so.
    let secret = c.write(
        "bt.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bootstrap-token-abcdef, namespace: kube-system}\ntype: bootstrap.kubernetes.io/token\nstringData:\n  token-id: abcdef\n  token-secret: 0123456789abcdef\n  usage-bootstrap-authentication: \"true\"\n  auth-extra-groups: system:bootstrappers:worker\n",
    );
    c.ok(&["create", "-f", &secret]).await;
    let node = c.kubeconfig_with_token("bt.kubeconfig", "abcdef.0123456789abcdef");
    let me = whoami(&c, &node).await;
    assert_eq!(me["username"], "system:bootstrap:abcdef");
    assert_eq!(
        me["groups"],
        serde_json::json!([
            "system:bootstrappers",
            "system:bootstrappers:worker",
            "system:authenticated"
        ])
    );
    let forged = c.kubeconfig_with_token("forged.kubeconfig", "abcdef.0123456789abcdee");
    assert!(!run(&c, &forged, &["auth", "whoami"]).await.0);
    c.ok(&[
        "patch",
        "secret",
        "bootstrap-token-abcdef",
        "-n",
        "kube-system",
        "--type=merge",
        r#"-p={"stringData":{"expiration":"2020-01-01T00:00:00Z"}}"#,
    ])
    .await;
    assert!(
        !run(&c, &node, &["auth", "whoami"]).await.0,
        "an expired token"
    );
}
