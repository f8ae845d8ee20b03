//! Authentication and authorization as users see them, through the real kubectl with
//! different identities: anonymous requests, RBAC bindings and `kubectl auth can-i`,
//! impersonation, escalation prevention and the Node authorizer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::path::Path;

use apiserver::testing::{Cluster, eventually};

async fn stdout_of(c: &Cluster, kc: &Path, args: &[&str]) -> (bool, String, String) {
    let out = c.kubectl_with(kc, args).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// `kubectl auth can-i` as the admin impersonating `user`: "yes" or "no".
async fn can_i(c: &Cluster, user: &str, args: &[&str]) -> String {
    let mut a = vec!["auth", "can-i"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--as", user]);
    let out = c.kubectl(&a).await;
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `curl` without credentials (kubectl prompts for a password when it has none): the HTTP
/// code and the body.
async fn anonymous(c: &Cluster, method: &str, path: &str) -> (String, String) {
    let url = format!("https://{}{path}", c.server.addr);
    let ca = apiserver::pki::Pki::new(c.dir.path()).ca_cert();
    let method = method.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            // Retried only when no answer came (a loaded machine), never on an HTTP code.
            // HTTP/1.1: over h2 a 401 sent before the body is read resets the stream, and curl
            // (unlike Go's client) may report the reset (exit 92) instead of the 401.
            .args([
                "-s",
                "--http1.1",
                "--retry",
                "3",
                "--retry-connrefused",
                "--max-time",
                "20",
                "--cacert",
            ])
            .arg(&ca)
            .args(["-X", &method, "-H", "Content-Type: application/json"])
            .args(
                ["-d", r#"{"metadata":{"name":"x"}}"#][..if method == "POST" { 2 } else { 0 }]
                    .iter(),
            )
            .args(["-w", "\n%{http_code}", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    // What curl itself said, for a failure's message (a loaded machine once gave no code).
    let curl = format!("{} {}", out.status, String::from_utf8_lossy(&out.stderr));
    (code.to_string(), format!("{body} [curl: {curl}]"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_reach_only_health_and_version() {
    let c = Cluster::start(false).await;
    let (code, body) = anonymous(&c, "GET", "/healthz").await;
    assert_eq!(code, "200", "{body}");
    assert!(body.starts_with("ok ["), "{body}");
    let (code, body) = anonymous(&c, "GET", "/version").await;
    assert_eq!(code, "200");
    assert!(body.contains("gitVersion"), "{body}");
    for (method, path) in [
        ("GET", "/api/v1/namespaces/default/pods"),
        ("POST", "/api/v1/namespaces"),
        ("GET", "/apis"),
        ("GET", "/metrics"),
    ] {
        let (code, body) = anonymous(&c, method, path).await;
        assert_eq!(code, "401", "{method} {path}: {body}");
        let json = body
            .rsplit_once(" [curl: ")
            .map_or(body.as_str(), |(j, _)| j);
        let status: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Unauthorized");
    }
    // Nothing was created.
    let out = c.ok(&["get", "namespaces", "-o", "name"]).await;
    assert!(!out.contains("namespace/x"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_but_cannot_write() {
    let c = Cluster::start(false).await;
    let alice = c.kubeconfig_as("alice", &["dev"]);
    // No binding yet: authenticated, but allowed nothing beyond discovery.
    let (ok, _, err) = stdout_of(&c, &alice, &["get", "pods", "-n", "default"]).await;
    assert!(!ok);
    assert!(
        err.contains(
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
        ),
        "{err}"
    );
    c.ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
        "-n",
        "default",
    ])
    .await;
    c.ok(&["create", "configmap", "cm", "--from-literal=a=b"])
        .await;
    eventually("alice may list configmaps", || async {
        let (ok, out, _) = stdout_of(&c, &alice, &["get", "configmaps", "-n", "default"]).await;
        (ok && out.contains("cm")).then_some(())
    })
    .await;
    let (ok, _, err) = stdout_of(
        &c,
        &alice,
        &[
            "create",
            "configmap",
            "x",
            "-n",
            "default",
            "--from-literal=a=b",
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains(r#"configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group "" in the namespace "default""#),
        "{err}"
    );
    let (ok, _, err) = stdout_of(&c, &alice, &["delete", "configmap", "cm", "-n", "default"]).await;
    assert!(!ok);
    assert!(
        err.contains(
            r#"configmaps "cm" is forbidden: User "alice" cannot delete resource "configmaps""#
        ),
        "{err}"
    );
    // The binding is in one namespace only; view holds no secrets.
    let (ok, _, _) = stdout_of(&c, &alice, &["get", "pods", "-n", "kube-system"]).await;
    assert!(!ok);
    let (ok, _, _) = stdout_of(&c, &alice, &["get", "secrets", "-n", "default"]).await;
    assert!(!ok);
    // Who am I, as the server sees it.
    let (ok, out, err) = stdout_of(&c, &alice, &["auth", "whoami", "-o", "json"]).await;
    assert!(ok, "{err}");
    let who: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "alice");
    let groups = who["status"]["userInfo"]["groups"].as_array().unwrap();
    assert!(groups.contains(&"dev".into()) && groups.contains(&"system:authenticated".into()));
    // Deleting the binding takes the access away again.
    c.ok(&["delete", "rolebinding", "alice-view", "-n", "default"])
        .await;
    eventually("alice loses access", || async {
        let (ok, _, _) = stdout_of(&c, &alice, &["get", "configmaps", "-n", "default"]).await;
        (!ok).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_i_matrix_roles_cluster_roles_and_resource_names() {
    let c = Cluster::start(false).await;
    c.ok(&["create", "namespace", "team"]).await;
    c.ok(&[
        "create",
        "role",
        "secret-reader",
        "-n",
        "team",
        "--verb=get",
        "--resource=secrets",
        "--resource-name=s1",
    ])
    .await;
    c.ok(&[
        "create",
        "rolebinding",
        "bob-s1",
        "-n",
        "team",
        "--role=secret-reader",
        "--user=bob",
    ])
    .await;
    c.ok(&[
        "create",
        "clusterrole",
        "pod-lister",
        "--verb=list,watch",
        "--resource=pods",
    ])
    .await;
    // The ClusterRole bound in one namespace by a RoleBinding, cluster-wide for a group.
    c.ok(&[
        "create",
        "rolebinding",
        "bob-pods",
        "-n",
        "team",
        "--clusterrole=pod-lister",
        "--user=bob",
    ])
    .await;
    c.ok(&[
        "create",
        "clusterrolebinding",
        "ops-pods",
        "--clusterrole=pod-lister",
        "--group=ops",
    ])
    .await;
    eventually("bindings in effect", || async {
        (can_i(&c, "bob", &["list", "pods", "-n", "team"]).await == "yes").then_some(())
    })
    .await;
    let cases: &[(&str, &[&str], &str)] = &[
        ("bob", &["get", "secrets/s1", "-n", "team"], "yes"),
        ("bob", &["get", "secrets/s2", "-n", "team"], "no"),
        ("bob", &["list", "secrets", "-n", "team"], "no"),
        ("bob", &["get", "secrets/s1", "-n", "default"], "no"),
        ("bob", &["list", "pods", "-n", "team"], "yes"),
        ("bob", &["list", "pods", "-n", "default"], "no"),
        ("bob", &["delete", "pods", "-n", "team"], "no"),
        ("bob", &["list", "pods", "--all-namespaces"], "no"),
        ("carol", &["list", "pods", "-n", "team"], "no"),
    ];
    for (user, args, want) in cases {
        assert_eq!(can_i(&c, user, args).await, *want, "{user} {args:?}");
    }
    // A group binding, through --as-group.
    let out = c
        .kubectl(&[
            "auth",
            "can-i",
            "list",
            "pods",
            "--all-namespaces",
            "--as",
            "dave",
            "--as-group",
            "ops",
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");
    // What bob may do in team, as `--list` prints it.
    let list = c
        .ok(&["auth", "can-i", "--list", "-n", "team", "--as", "bob"])
        .await;
    assert!(
        list.lines()
            .any(|l| l.starts_with("secrets ") && l.contains("[s1]") && l.contains("[get]")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[list watch]")),
        "{list}"
    );
    // A user may not impersonate without the verb.
    let bob = c.kubeconfig_as("bob", &[]);
    let (ok, _, err) = stdout_of(&c, &bob, &["get", "pods", "-n", "team", "--as", "admin"]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"users "admin" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{err}"
    );
}

/// Upstream's `system:volume-scheduler` role, bound to the scheduler: it reads classes and
/// updates volumes and claims (volume binding), which its own role does not let it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_binds_volumes_through_system_volume_scheduler() {
    let c = Cluster::start(false).await;
    let rules = c
        .ok(&[
            "get",
            "clusterrole",
            "system:volume-scheduler",
            "-o",
            "jsonpath={range .rules[*]}{.apiGroups} {.resources} {.verbs}{\"\\n\"}{end}",
        ])
        .await;
    assert_eq!(
        rules.trim(),
        [
            r#"[""] ["persistentvolumes"] ["get","list","watch","update","patch"]"#,
            r#"["storage.k8s.io"] ["storageclasses"] ["get","list","watch"]"#,
            r#"[""] ["persistentvolumeclaims"] ["get","list","watch","update","patch"]"#,
        ]
        .join("\n")
    );
    let binding = c
        .ok(&[
            "get",
            "clusterrolebinding",
            "system:volume-scheduler",
            "-o",
            "jsonpath={.roleRef.name} {.subjects[*].kind}:{.subjects[*].name}",
        ])
        .await;
    assert_eq!(
        binding,
        "system:volume-scheduler User:system:kube-scheduler"
    );
    let scheduler = "system:kube-scheduler";
    let cases: &[(&[&str], &str)] = &[
        (&["update", "persistentvolumes"], "yes"),
        (&["patch", "persistentvolumeclaims", "-n", "default"], "yes"),
        (&["watch", "storageclasses.storage.k8s.io"], "yes"),
        (&["create", "persistentvolumes"], "no"),
        (&["delete", "persistentvolumeclaims", "-n", "default"], "no"),
        (&["update", "storageclasses.storage.k8s.io"], "no"),
    ];
    for (args, want) in cases {
        assert_eq!(can_i(&c, scheduler, args).await, *want, "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_grants_what_they_do_not_hold() {
    let c = Cluster::start(false).await;
    c.ok(&["create", "namespace", "team"]).await;
    // erin may manage roles and bindings in team, and read pods there; nothing else.
    c.ok(&[
        "create",
        "role",
        "rbac-manager",
        "-n",
        "team",
        "--verb=create,get,list,update,patch,delete",
        "--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io",
    ])
    .await;
    c.ok(&[
        "create",
        "role",
        "pod-reader",
        "-n",
        "team",
        "--verb=get,list",
        "--resource=pods",
    ])
    .await;
    for role in ["rbac-manager", "pod-reader"] {
        c.ok(&[
            "create",
            "rolebinding",
            &format!("erin-{role}"),
            "-n",
            "team",
            &format!("--role={role}"),
            "--user=erin",
        ])
        .await;
    }
    let erin = c.kubeconfig_as("erin", &[]);
    eventually("erin's bindings in effect", || async {
        let (ok, _, _) = stdout_of(&c, &erin, &["get", "roles", "-n", "team"]).await;
        ok.then_some(())
    })
    .await;
    // A role within what she holds: allowed.
    let (ok, _, err) = stdout_of(
        &c,
        &erin,
        &[
            "create",
            "role",
            "r1",
            "-n",
            "team",
            "--verb=get",
            "--resource=pods",
        ],
    )
    .await;
    assert!(ok, "{err}");
    // More than she holds: refused, naming what she lacks.
    let (ok, _, err) = stdout_of(
        &c,
        &erin,
        &[
            "create",
            "role",
            "r2",
            "-n",
            "team",
            "--verb=get,delete",
            "--resource=pods",
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "r2" is forbidden: user "erin""#)
            && err.contains("is attempting to grant RBAC permissions not currently held")
            && err.contains(r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#),
        "{err}"
    );
    // Binding cluster-admin to herself: refused; binding a role she holds: allowed.
    let (ok, _, err) = stdout_of(
        &c,
        &erin,
        &[
            "create",
            "rolebinding",
            "pwn",
            "-n",
            "team",
            "--clusterrole=cluster-admin",
            "--user=erin",
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    let (ok, _, err) = stdout_of(
        &c,
        &erin,
        &[
            "create",
            "rolebinding",
            "frank-reads",
            "-n",
            "team",
            "--role=pod-reader",
            "--user=frank",
        ],
    )
    .await;
    assert!(ok, "{err}");
    // Escalating by editing a role she may update: refused too.
    let (ok, _, err) = stdout_of(
        &c,
        &erin,
        &[
            "patch",
            "role",
            "r1",
            "-n",
            "team",
            "--type=json",
            r#"-p=[{"op":"add","path":"/rules/0/verbs/-","value":"delete"}]"#,
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_only_what_its_pods_use() {
    let c = Cluster::start(false).await;
    for (name, node) in [("s1", "n1"), ("s2", "n2")] {
        c.ok(&["create", "secret", "generic", name, "--from-literal=k=v"])
            .await;
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p-{node}}}\nspec:\n  nodeName: {node}\n  containers:\n  - {{name: c, image: busybox}}\n  volumes:\n  - {{name: s, secret: {{secretName: {name}}}}}\n"
        );
        let f = c.write(&format!("{node}.yaml"), &pod);
        c.ok(&["create", "-f", &f]).await;
    }
    let n1 = c.kubeconfig_as("system:node:n1", &["system:nodes"]);
    eventually("n1 reads the secret its pod uses", || async {
        let (ok, _, _) = stdout_of(&c, &n1, &["get", "secret", "s1"]).await;
        ok.then_some(())
    })
    .await;
    let (ok, _, err) = stdout_of(&c, &n1, &["get", "secret", "s2"]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"secrets "s2" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n1' and this object"#),
        "{err}"
    );
    let (ok, _, _) = stdout_of(&c, &n1, &["get", "secrets"]).await;
    assert!(!ok, "a node may not list secrets");
    // What the node role allows everyone of its kind: reading pods and nodes.
    let (ok, _, err) = stdout_of(&c, &n1, &["get", "pods", "-A"]).await;
    assert!(ok, "{err}");
    // NodeRestriction: its own Node only, mirror pods only, status of its own pods only.
    for n in ["n1", "n2"] {
        let f = c.write(
            &format!("node-{n}.yaml"),
            &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\n"),
        );
        c.ok(&["create", "-f", &f]).await;
    }
    let (ok, _, err) = stdout_of(&c, &n1, &["label", "node", "n1", "x=y"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = stdout_of(&c, &n1, &["label", "node", "n2", "x=y"]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"node "n1" is not allowed to modify node "n2""#),
        "{err}"
    );
    let plain = c.write(
        "plain.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: sneaky}\nspec:\n  nodeName: n1\n  containers: [{name: c, image: busybox}]\n",
    );
    let (ok, _, err) = stdout_of(&c, &n1, &["create", "-f", &plain]).await;
    assert!(!ok);
    assert!(err.contains("can only create mirror pods"), "{err}");
    // A mirror pod may reference no other object: a static pod cannot use ConfigMaps.
    let with_config = c.write(
        "mirror-cm.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: static-n1, annotations: {kubernetes.io/config.mirror: abc}}\nspec:\n  nodeName: n1\n  containers: [{name: c, image: busybox, envFrom: [{configMapRef: {name: cm}}]}]\n",
    );
    let (ok, _, err) = stdout_of(&c, &n1, &["create", "-f", &with_config]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"node "n1" can not create pods that reference configmaps"#),
        "{err}"
    );
    // Pod status through the client a kubelet uses (kubectl would GET pods/status first,
    // which the node role does not hold, upstream neither).
    let kc = kube::config::Kubeconfig::read_from(&n1).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    let patch = kube::api::Patch::Merge(serde_json::json!({"status": {"message": "hi"}}));
    let pp = kube::api::PatchParams::default();
    match pods.patch_status("p-n2", &pp, &patch).await {
        Err(kube::Error::Api(e)) => assert!(
            e.code == 403
                && e.message.contains(
                    "can only update pod status for pods with spec.nodeName set to itself"
                ),
            "{e:?}"
        ),
        other => panic!("n1 wrote n2's pod status: {other:?}"),
    }
    let mine = pods.patch_status("p-n1", &pp, &patch).await.unwrap();
    assert_eq!(mine.status.unwrap().message.as_deref(), Some("hi"));
    // Once the pod is gone, so is the access.
    c.ok(&["delete", "pod", "p-n1", "--grace-period=0", "--force"])
        .await;
    eventually("n1 loses the secret", || async {
        let (ok, _, _) = stdout_of(&c, &n1, &["get", "secret", "s1"]).await;
        (!ok).then_some(())
    })
    .await;
}
