//! CustomResourceDefinitions driven by the real kubectl, on SQLite and on a real etcd: a CRD
//! with a schema, defaults, printer columns and the status and scale subresources (the
//! CronTab of Kubernetes' documentation), its objects validated, defaulted and pruned as
//! upstream does, two versions converted by `apiVersion`, and deletion of the CRD deleting
//! its objects.
//!
//! Kinds are registered per process (as upstream's scheme), so each test defines its CRDs
//! in a group of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::{Cluster, eventually};

/// The short name of the CronTabs of `group`: one per group, as the tests' CRDs share
/// this process (kubectl warns when a short name matches two resources).
fn short(group: &str) -> String {
    let label = group.split('.').take(2).collect::<Vec<_>>().join("");
    format!("ct{}", label.replace('-', ""))
}

fn crontab_crd(group: &str) -> String {
    let short = short(group);
    format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.{group}
spec:
  group: {group}
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [{short}]
    categories: [{short}-all]
  versions:
  - name: v1
    served: true
    storage: true
    selectableFields:
    - jsonPath: .spec.image
    subresources:
      status: {{}}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.labelSelector
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: What the cron job runs, and when.
            x-kubernetes-validations:
            - rule: "!has(self.image) || self.image != 'forbidden'"
              message: image may not be forbidden
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){{4}}$'
                x-kubernetes-validations:
                - rule: self == oldSelf
                  message: cronSpec is immutable
              image:
                type: string
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
          status:
            type: object
            properties:
              replicas:
                type: integer
              labelSelector:
                type: string
"#
    )
}

fn crontab(group: &str, name: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: {group}/v1
kind: CronTab
metadata:
  name: {name}
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
{extra}"#
    )
}

async fn established(c: &Cluster, name: &str) {
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=10s",
        &format!("crd/{name}"),
    ])
    .await;
}

async fn crd_lifecycle(c: &Cluster, group: &str) {
    let ct = &short(group);
    let crd = c.write("crd.yaml", &crontab_crd(group));
    c.ok(&["apply", "-f", &crd]).await;
    established(c, &format!("crontabs.{group}")).await;
    let conditions = c
        .ok(&[
            "get",
            "crd",
            &format!("crontabs.{group}"),
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"NamesAccepted\")].status} {.status.acceptedNames.kind} {.status.storedVersions}",
        ])
        .await;
    assert_eq!(conditions, "True CronTab [\"v1\"]");

    // A valid object: defaults filled, printer columns shown, found by its short name.
    let obj = c.write("ct.yaml", &crontab(group, "my-cron", ""));
    c.ok(&["apply", "-f", &obj]).await;
    let replicas = c
        .ok(&[
            "get",
            ct,
            "my-cron",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}",
        ])
        .await;
    assert_eq!(replicas, "1 1", "the schema's default");
    let table = c.ok(&["get", &format!("crontabs.{group}")]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    assert!(
        table.contains("my-cron") && table.contains("* * * * */5"),
        "{table}"
    );

    // Unknown fields are refused (kubectl asks for strict validation), and pruned otherwise.
    let unknown = c.write(
        "unknown.yaml",
        &crontab(group, "unknown", "  colour: blue\n"),
    );
    let err = c.fails(&["apply", "-f", &unknown]).await;
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");
    c.ok(&["apply", "--validate=false", "-f", &unknown]).await;
    let spec = c
        .ok(&["get", ct, "unknown", "-o", "jsonpath={.spec}"])
        .await;
    assert!(!spec.contains("colour"), "pruned: {spec}");

    // Invalid objects are refused with upstream's field paths and messages.
    let invalid = c.write(
        "invalid.yaml",
        &crontab(group, "invalid", "  replicas: 20\n"),
    );
    let err = c.fails(&["apply", "-f", &invalid]).await;
    assert!(
        err.contains("The CronTab \"invalid\" is invalid")
            && err.contains("spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10"),
        "{err}"
    );
    let wrong_type = c.write(
        "wrong.yaml",
        &crontab(group, "wrong", "  replicas: three\n"),
    );
    let err = c.fails(&["apply", "-f", &wrong_type]).await;
    assert!(
        err.contains("spec.replicas in body must be of type integer: \"string\""),
        "{err}"
    );
    let bad_spec = c.write(
        "badspec.yaml",
        &crontab(group, "bad-spec", "").replace("* * * * */5", "every minute"),
    );
    let err = c.fails(&["apply", "-f", &bad_spec]).await;
    assert!(err.contains("spec.cronSpec in body should match"), "{err}");

    // CEL rules: one on the object, one transition rule.
    let forbidden = c.write(
        "forbidden.yaml",
        &crontab(group, "forbidden", "").replace("my-awesome-cron-image", "forbidden"),
    );
    let err = c.fails(&["apply", "-f", &forbidden]).await;
    assert!(
        err.contains("spec: Invalid value: \"object\": image may not be forbidden"),
        "{err}"
    );
    let err = c
        .fails(&[
            "patch",
            ct,
            "my-cron",
            "--type=merge",
            "-p",
            r#"{"spec":{"cronSpec":"*/5 * * * *"}}"#,
        ])
        .await;
    assert!(
        err.contains("spec.cronSpec: Invalid value: \"string\": cronSpec is immutable"),
        "{err}"
    );

    // kubectl explain reads the schema from /openapi/v3.
    let explain = c
        .ok(&[
            "explain",
            "crontabs.spec",
            &format!("--api-version={group}/v1"),
        ])
        .await;
    assert!(
        explain.contains("cronSpec") && explain.contains("What the cron job runs"),
        "{explain}"
    );

    // selectableFields: field selectors on the fields the CRD names, and only those.
    let selected = c
        .ok(&[
            "get",
            ct,
            "--field-selector",
            "spec.image=my-awesome-cron-image",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(selected.lines().count(), 2, "{selected}");
    let none = c
        .ok(&[
            "get",
            ct,
            "--field-selector",
            "spec.image=other",
            "-o",
            "name",
        ])
        .await;
    assert!(none.trim().is_empty(), "{none}");
    let err = c
        .fails(&["get", ct, "--field-selector", "spec.cronSpec=x"])
        .await;
    assert!(
        err.contains("field label not supported: spec.cronSpec"),
        "{err}"
    );

    // describe and a server-side dry-run diff work on custom objects as on built-in ones.
    let describe = c.ok(&["describe", ct, "my-cron"]).await;
    assert!(
        describe.contains("Cron Spec:") && describe.contains("my-awesome-cron-image"),
        "{describe}"
    );
    let changed = c.write(
        "changed.yaml",
        &crontab(group, "my-cron", "").replace("my-awesome-cron-image", "other-image"),
    );
    let diff = c.kubectl(&["diff", "-f", &changed]).await;
    let diff_out = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "kubectl diff exits 1 on a difference: {diff_out}"
    );
    assert!(diff_out.contains("+  image: other-image"), "{diff_out}");

    // The scale subresource: kubectl scale, and the Scale's selector from the object.
    c.ok(&["scale", &format!("{ct}/my-cron"), "--replicas=3"])
        .await;
    let replicas = c
        .ok(&[
            "get",
            ct,
            "my-cron",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}",
        ])
        .await;
    assert_eq!(replicas, "3 2");

    // The status subresource: status written only through it.
    c.ok(&[
        "patch",
        ct,
        "my-cron",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3,"labelSelector":"app=cron"}}"#,
    ])
    .await;
    c.ok(&[
        "patch",
        ct,
        "my-cron",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":7}}"#,
    ])
    .await;
    let status = c
        .ok(&["get", ct, "my-cron", "-o", "jsonpath={.status.replicas}"])
        .await;
    assert_eq!(status, "3", "a write of the object leaves status alone");
    let scale = c
        .ok(&[
            "get",
            "--raw",
            &format!("/apis/{group}/v1/namespaces/default/crontabs/my-cron/scale"),
        ])
        .await;
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["status"]["selector"], "app=cron", "{scale}");
    assert_eq!(scale["status"]["replicas"], 3, "{scale}");

    // A category names the kind (as `all` names the built-in workloads; the tests' CRDs
    // share this process, so each has a category of its own).
    let all = c.ok(&["get", &format!("{ct}-all")]).await;
    assert!(all.contains("my-cron") && all.contains("unknown"), "{all}");

    // Deleting the CRD deletes its objects, then the CRD; an object's own finalizer holds
    // it, and meanwhile no object may be created; then the kind is no longer served.
    let held = c.write(
        "held.yaml",
        &crontab(group, "held", "").replace(
            "  name: held\n",
            "  name: held\n  finalizers: [example.com/hold]\n",
        ),
    );
    c.ok(&["apply", "-f", &held]).await;
    c.ok(&[
        "delete",
        "crd",
        &format!("crontabs.{group}"),
        "--wait=false",
    ])
    .await;
    let late = c.write("late.yaml", &crontab(group, "late", ""));
    eventually("creates to be refused while the CRD terminates", || async {
        let out = c.kubectl(&["create", "-f", &late]).await;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        err.contains("create not allowed while custom resource definition is terminating")
            .then_some(())
    })
    .await;
    c.ok(&[
        "patch",
        ct,
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await;
    c.ok(&[
        "wait",
        "--for=delete",
        &format!("crd/crontabs.{group}"),
        "--timeout=30s",
    ])
    .await;
    let err = c.fails(&["get", &format!("crontabs.{group}")]).await;
    assert!(
        err.contains("the server doesn't have a resource type"),
        "{err}"
    );
    let stored = c
        .server
        .store()
        .list(&format!("/registry/{group}/"), Default::default())
        .await
        .unwrap();
    assert!(
        stored.kvs.is_empty(),
        "the CRD's objects are deleted with it"
    );
}

async fn two_versions(c: &Cluster, group: &str) {
    let crd = crontab_crd(group).replace(
        "  versions:\n  - name: v1\n    served: true\n    storage: true\n",
        "  versions:\n  - name: v2\n    served: true\n    storage: false\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n  - name: v1\n    served: true\n    storage: true\n    deprecated: true\n",
    );
    let file = c.write("crd2.yaml", &crd);
    c.ok(&["apply", "-f", &file]).await;
    established(c, &format!("crontabs.{group}")).await;
    let obj = c.write("ct2.yaml", &crontab(group, "both", ""));
    c.ok(&["apply", "-f", &obj]).await;
    let v2 = c
        .ok(&[
            "get",
            "--raw",
            &format!("/apis/{group}/v2/namespaces/default/crontabs/both"),
        ])
        .await;
    let v2: serde_json::Value = serde_json::from_str(&v2).unwrap();
    assert_eq!(v2["apiVersion"], format!("{group}/v2"));
    assert_eq!(v2["spec"]["image"], "my-awesome-cron-image");
    let v1 = c
        .ok(&[
            "get",
            "--raw",
            &format!("/apis/{group}/v1/namespaces/default/crontabs"),
        ])
        .await;
    let v1: serde_json::Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(v1["items"][0]["apiVersion"], format!("{group}/v1"), "{v1}");
    // Discovery lists both versions, the highest (kube-aware) preferred, as upstream.
    let discovery = c.ok(&["get", "--raw", &format!("/apis/{group}")]).await;
    let discovery: serde_json::Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(
        discovery["versions"].as_array().unwrap().len(),
        2,
        "{discovery}"
    );
    assert_eq!(
        discovery["preferredVersion"]["version"], "v2",
        "{discovery}"
    );
    // Requests to the deprecated version are warned about.
    let out = c
        .kubectl(&["get", &format!("crontabs.v1.{group}"), "both"])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && stderr.contains(&format!(
                "Warning: {group}/v1 CronTab is deprecated; use {group}/v2 CronTab"
            )),
        "{stderr}"
    );
    c.ok(&["delete", "crd", &format!("crontabs.{group}")]).await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let c = super::Cluster::start(false).await;
                    super::$name(&c, &concat!(stringify!($name), ".sqlite.example.com").replace("_", "-")).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let c = super::Cluster::start(true).await;
                    super::$name(&c, &concat!(stringify!($name), ".etcd.example.com").replace("_", "-")).await;
                }
            )*
        }
    };
}

on_both_backends!(crd_lifecycle, two_versions);

/// CRDs stored before a restart are served from the first request after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_after_restart() {
    let group = "restart.example.com";
    let c = Cluster::start(false).await;
    let crd = c.write("crd.yaml", &crontab_crd(group));
    c.ok(&["apply", "-f", &crd]).await;
    established(&c, &format!("crontabs.{group}")).await;
    let obj = c.write("ct.yaml", &crontab(group, "kept", ""));
    c.ok(&["apply", "-f", &obj]).await;
    // Another server in this process would not know the kind: forget it, as a new
    // process would.
    apiserver::kinds::unregister(group, "v1", "crontabs");
    let c = c.restart(|_| {}).await;
    let got = c
        .ok(&["get", &format!("crontabs.{group}"), "kept", "-o", "name"])
        .await;
    assert_eq!(got.trim(), format!("crontab.{group}/kept"));
    eventually("the CRD to stay established", || async {
        let s = c
            .ok(&[
                "get",
                "crd",
                &format!("crontabs.{group}"),
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ])
            .await;
        (s == "True").then_some(())
    })
    .await;
}

mod kube_rs {
    //! A custom kind as kube-rs users define one (`#[derive(CustomResource)]`): its CRD
    //! generated by kube, applied, its objects created, listed, watched, status-patched and
    //! deleted through the typed API.
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::{WatchStreamExt, conditions, wait::await_condition, watcher};
    use kube::{Api, CustomResource, CustomResourceExt, ResourceExt, api::Patch, api::PatchParams};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema, PartialEq)]
    #[kube(
        group = "kube-rs.example.com",
        version = "v1",
        kind = "Widget",
        namespaced,
        status = "WidgetStatus",
        shortname = "wd"
    )]
    pub struct WidgetSpec {
        size: i32,
        colour: Option<String>,
        parts: Vec<String>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, JsonSchema, PartialEq, Default)]
    pub struct WidgetStatus {
        built: bool,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn derived_custom_resources_round_trip() {
        let c = super::Cluster::start(false).await;
        let client = c.client().await;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let crd = Widget::crd();
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            await_condition(crds, &crd.name_any(), conditions::is_crd_established()),
        )
        .await
        .expect("established within 10 s")
        .unwrap();

        let widgets: Api<Widget> = Api::namespaced(client, "default");
        let events = watcher(widgets.clone(), Default::default())
            .applied_objects()
            .boxed();
        let spec = WidgetSpec {
            size: 3,
            colour: Some("blue".into()),
            parts: vec!["a".into(), "b".into()],
        };
        let created = widgets
            .create(&Default::default(), &Widget::new("w1", spec.clone()))
            .await
            .unwrap();
        assert_eq!(created.spec, spec);
        assert!(
            created.status.is_none(),
            "status is the status subresource's"
        );
        let mut events = events;
        let seen = tokio::time::timeout(std::time::Duration::from_secs(10), events.try_next())
            .await
            .expect("a watch event within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(seen.name_any(), "w1");

        let patched = widgets
            .patch_status(
                "w1",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"built": true}})),
            )
            .await
            .unwrap();
        assert_eq!(patched.status, Some(WidgetStatus { built: true }));
        let list = widgets.list(&Default::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        assert_eq!(list.items[0].spec, spec);

        // Server-side apply by two managers of one custom object.
        let applied = widgets
            .patch(
                "w1",
                &PatchParams::apply("sizer"),
                &Patch::Apply(serde_json::json!({
                    "apiVersion": "kube-rs.example.com/v1", "kind": "Widget",
                    "metadata": {"name": "w1"}, "spec": {"size": 5, "parts": ["a", "b"]},
                })),
            )
            .await
            .unwrap();
        assert_eq!(applied.spec.size, 5);
        assert!(
            applied
                .managed_fields()
                .iter()
                .any(|m| m.manager.as_deref() == Some("sizer")),
            "{:?}",
            applied.managed_fields()
        );

        // A strategic merge patch is refused, as upstream refuses it for custom resources.
        match widgets
            .patch(
                "w1",
                &PatchParams::default(),
                &Patch::Strategic(serde_json::json!({"spec": {"size": 6}})),
            )
            .await
        {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 415);
                assert!(
                    e.message.contains("accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
                    "{}",
                    e.message
                );
            }
            other => panic!("a strategic merge patch was not refused: {other:?}"),
        }

        widgets.delete("w1", &Default::default()).await.unwrap();
        assert!(widgets.get_opt("w1").await.unwrap().is_none());
    }
}

/// A real project's CRDs: the Gateway API v1.6.1 standard channel (`tests/testdata`,
/// Apache-2.0), installed as its documentation says and every standard example applied;
/// its ValidatingAdmissionPolicy guards the CRDs from a channel downgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_bundle_installs_and_its_examples_validate() {
    let c = Cluster::start(false).await;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/gateway-api-v1.6.1");
    let mut crds: Vec<_> = std::fs::read_dir(dir.join("config/crd/standard"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    crds.sort();
    assert_eq!(crds.len(), 11, "10 CRDs and the policy");
    for crd in &crds {
        c.ok(&["apply", "--server-side", "-f", &crd.display().to_string()])
            .await;
    }
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=20s",
    ])
    .await;
    let out = c
        .ok(&[
            "apply",
            "-R",
            "-f",
            &dir.join("examples/standard").display().to_string(),
        ])
        .await;
    assert!(
        out.contains("httproute.gateway.networking.k8s.io/"),
        "{out}"
    );
    let gateways = c.ok(&["get", "gateways", "-A"]).await;
    let header: Vec<&str> = gateways
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"],
        "{gateways}"
    );
    let routes = c.ok(&["get", "httproutes", "-A", "-o", "name"]).await;
    assert!(routes.lines().count() >= 10, "{routes}");
    // The schema's own rules refuse what Kubernetes refuses.
    let bad_port = c.write(
        "bad-port.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad}\nspec:\n  rules:\n  - backendRefs:\n    - {name: svc, port: 70000}\n",
    );
    let err = c.fails(&["apply", "-f", &bad_port]).await;
    assert!(
        err.contains("spec.rules[0].backendRefs[0].port: Invalid value: 70000: spec.rules[0].backendRefs[0].port in body should be less than or equal to 65535"),
        "{err}"
    );
    // And its CEL rules.
    let bad_path = c.write(
        "bad-path.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad}\nspec:\n  rules:\n  - matches:\n    - path: {type: PathPrefix, value: foo}\n",
    );
    let err = c.fails(&["apply", "-f", &bad_path]).await;
    assert!(
        err.contains("value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"),
        "{err}"
    );
    // Server-side apply merges by the schema's list types: a Gateway's listeners are a map
    // list keyed by name, so two managers own a listener each (an atomic list would conflict).
    let gateway = |listener: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: shared}}\nspec:\n  gatewayClassName: example\n  listeners:\n  - {listener}\n"
        )
    };
    let web = c.write(
        "web.yaml",
        &gateway("{name: web, protocol: HTTP, port: 80}"),
    );
    let admin = c.write(
        "admin.yaml",
        &gateway("{name: admin, protocol: HTTP, port: 8080}"),
    );
    c.ok(&[
        "apply",
        "--server-side",
        "--field-manager=web-team",
        "-f",
        &web,
    ])
    .await;
    c.ok(&[
        "apply",
        "--server-side",
        "--field-manager=ops",
        "-f",
        &admin,
    ])
    .await;
    let names = c
        .ok(&[
            "get",
            "gateway",
            "shared",
            "-o",
            "jsonpath={.spec.listeners[*].name}",
        ])
        .await;
    assert_eq!(names.trim(), "web admin");
    let fields = c
        .ok(&[
            "get",
            "gateway",
            "shared",
            "--show-managed-fields",
            "-o",
            "json",
        ])
        .await;
    let fields: serde_json::Value = serde_json::from_str(&fields).unwrap();
    let ops = fields["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "ops")
        .expect("the ops manager's entry");
    assert!(
        ops["fieldsV1"]["f:spec"]["f:listeners"]["k:{\"name\":\"admin\"}"]["f:port"].is_object(),
        "{ops}"
    );
    // A field of another manager's item conflicts on its own path.
    let moved = c.write(
        "moved.yaml",
        &gateway("{name: web, protocol: HTTP, port: 81}"),
    );
    let err = c
        .fails(&[
            "apply",
            "--server-side",
            "--field-manager=ops",
            "-f",
            &moved,
        ])
        .await;
    assert!(
        err.contains("conflict with \"web-team\": .spec.listeners[name=\"web\"].port"),
        "{err}"
    );
    // The web team changes its listener: the other stays.
    c.ok(&[
        "apply",
        "--server-side",
        "--field-manager=web-team",
        "-f",
        &moved,
    ])
    .await;
    let ports = c
        .ok(&[
            "get",
            "gateway",
            "shared",
            "-o",
            "jsonpath={.spec.listeners[*].port}",
        ])
        .await;
    assert_eq!(ports.trim(), "81 8080");
    // The bundle's policy: standard CRDs may not be overwritten by experimental ones.
    let err = c
        .fails(&[
            "annotate",
            "crd",
            "gateways.gateway.networking.k8s.io",
            "gateway.networking.k8s.io/channel=experimental",
            "--overwrite",
        ])
        .await;
    assert!(
        err.contains("ValidatingAdmissionPolicy 'safe-upgrades.gateway.networking.k8s.io' with binding 'safe-upgrades.gateway.networking.k8s.io' denied request: Installing experimental CRDs on top of standard channel CRDs is prohibited by default."),
        "{err}"
    );
}

mod conversion_webhook {
    //! A two-version CRD whose versions differ in a field's name, converted by a conversion
    //! webhook served over HTTPS in the test (its own CA in the caBundle).
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use serde_json::{Value, json};

    /// The webhook's answer: `spec.cronSpec` (v1) and `spec.schedule` (v2) renamed.
    fn convert(review: &Value) -> Value {
        let req = &review["request"];
        let desired = req["desiredAPIVersion"].as_str().unwrap();
        let objects: Vec<Value> = req["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let mut o = o.clone();
                let spec = o["spec"].as_object_mut().unwrap();
                let (from, to) = if desired.ends_with("/v2") {
                    ("cronSpec", "schedule")
                } else {
                    ("schedule", "cronSpec")
                };
                if let Some(v) = spec.remove(from) {
                    spec.insert(to.into(), v);
                }
                o["apiVersion"] = json!(desired);
                o
            })
            .collect();
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": req["uid"], "convertedObjects": objects, "result": {"status": "Success"}}})
    }

    async fn serve(calls: Arc<AtomicUsize>) -> (u16, String, tokio::task::JoinHandle<()>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, calls) = (acceptor.clone(), calls.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                        let calls = calls.clone();
                        async move {
                            let body: hyper::body::Incoming = req.into_body();
                            let review: Value =
                                serde_json::from_slice(&body.collect().await?.to_bytes())
                                    .unwrap_or_default();
                            calls.fetch_add(1, Ordering::Relaxed);
                            let out = convert(&review).to_string();
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(out))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        let ca = base64::engine::general_purpose::STANDARD.encode(ca_cert.pem());
        (port, ca, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn versions_are_converted_by_the_webhook() {
        let group = "conversion.example.com";
        let c = super::Cluster::start(false).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let (port, ca, server) = serve(calls.clone()).await;
        let schema = |field: &str| {
            format!(
                "      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              {field}: {{type: string}}\n"
            )
        };
        let crd = format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: jobs.{group}}}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: jobs, singular: job, kind: Job}}\n  conversion:\n    strategy: Webhook\n    webhook:\n      conversionReviewVersions: [v1]\n      clientConfig:\n        url: https://127.0.0.1:{port}/convert\n        caBundle: {ca}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n{}  - name: v2\n    served: true\n    storage: false\n    schema:\n{}",
            schema("cronSpec"),
            schema("schedule"),
        );
        c.ok(&["apply", "-f", &c.write("crd.yaml", &crd)]).await;
        super::established(&c, &format!("jobs.{group}")).await;
        // Created at v2, stored as v1 (the storage version), read back at both.
        let job = format!(
            "apiVersion: {group}/v2\nkind: Job\nmetadata: {{name: nightly}}\nspec: {{schedule: '0 3 * * *'}}\n"
        );
        c.ok(&["create", "-f", &c.write("job.yaml", &job)]).await;
        let stored = c
            .server
            .store()
            .get(&format!("/registry/{group}/jobs/default/nightly"))
            .await
            .unwrap()
            .unwrap();
        let stored: Value = serde_json::from_slice(&stored.value).unwrap();
        assert_eq!(stored["apiVersion"], format!("{group}/v1"), "{stored}");
        assert_eq!(stored["spec"]["cronSpec"], "0 3 * * *", "{stored}");
        let get = |version: &'static str| {
            let c = &c;
            async move {
                let raw = c
                    .ok(&[
                        "get",
                        "--raw",
                        &format!("/apis/{group}/{version}/namespaces/default/jobs/nightly"),
                    ])
                    .await;
                serde_json::from_str::<Value>(&raw).unwrap()
            }
        };
        assert_eq!(get("v1").await["spec"]["cronSpec"], "0 3 * * *");
        let v2 = get("v2").await;
        assert_eq!(v2["apiVersion"], format!("{group}/v2"));
        assert_eq!(v2["spec"]["schedule"], "0 3 * * *", "{v2}");
        let list = c
            .ok(&["get", "--raw", &format!("/apis/{group}/v2/jobs")])
            .await;
        let list: Value = serde_json::from_str(&list).unwrap();
        assert_eq!(list["items"][0]["spec"]["schedule"], "0 3 * * *", "{list}");
        // A watch at v2 converts its events too.
        let watch = c
            .ok(&[
                "get",
                "--raw",
                &format!("/apis/{group}/v2/jobs?watch=true&timeoutSeconds=2"),
            ])
            .await;
        assert!(
            watch.contains("\"type\":\"ADDED\"") && watch.contains("\"schedule\":\"0 3 * * *\""),
            "{watch}"
        );
        assert!(calls.load(Ordering::Relaxed) >= 4);
        // Without its webhook, the other version cannot be served: a 500 naming it.
        server.abort();
        let _ = server.await;
        let err = c
            .fails(&[
                "get",
                "--raw",
                &format!("/apis/{group}/v2/namespaces/default/jobs/nightly"),
            ])
            .await;
        assert!(
            err.contains(&format!(
                "conversion webhook for {group}/v1, Kind=Job failed"
            )),
            "{err}"
        );
    }
}
