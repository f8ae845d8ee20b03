//! Objects encoded by an independent encoder — kube-rs' `k8s-pb` prost types, generated from
//! upstream's `.proto` files — decode to the JSON upstream's Go encoding gives: pointers keep
//! their zero, value fields drop theirs where `omitempty` says, embedded structs inline, and
//! the wrapper types (quantities, int-or-string, times) read as Kubernetes writes them.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;

use super::decode;

/// The body a client sends: the magic, then a `runtime.Unknown` around the object.
fn body(api_version: &str, kind: &str, obj: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(obj.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn q(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

/// ObjectMeta as a Go client encodes it: every value field written, empty or not.
fn object_meta(name: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s("default"),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: [("app".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

#[test]
fn a_pod_decodes_as_go_would_encode_it_in_json() {
    let container = core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        ports: vec![core::ContainerPort {
            name: s(""),
            host_port: Some(0),
            container_port: Some(80),
            protocol: s("TCP"),
            host_ip: s(""),
        }],
        env: vec![core::EnvVar {
            name: s("EMPTY"),
            value: s(""),
            ..Default::default()
        }],
        resources: Some(core::ResourceRequirements {
            limits: [("cpu".to_string(), q("500m"))].into(),
            requests: [("memory".to_string(), q("64Mi"))].into(),
            ..Default::default()
        }),
        liveness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: s(""),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(0),
            period_seconds: Some(10),
            ..Default::default()
        }),
        security_context: Some(core::SecurityContext {
            run_as_user: Some(0),
            privileged: Some(false),
            ..Default::default()
        }),
        termination_message_path: s(""),
        stdin: Some(false),
        ..Default::default()
    };
    let pod = core::Pod {
        metadata: Some(object_meta("web")),
        spec: Some(core::PodSpec {
            containers: vec![container],
            volumes: vec![core::Volume {
                name: s("data"),
                volume_source: Some(core::VolumeSource {
                    empty_dir: Some(core::EmptyDirVolumeSource {
                        medium: s(""),
                        size_limit: Some(q("1Gi")),
                    }),
                    ..Default::default()
                }),
            }],
            restart_policy: s("Always"),
            termination_grace_period_seconds: Some(0),
            host_network: Some(false),
            priority: Some(0),
            tolerations: vec![core::Toleration {
                key: s("node.kubernetes.io/unreachable"),
                operator: s("Exists"),
                value: s(""),
                effect: s("NoExecute"),
                toleration_seconds: Some(5),
            }],
            ..Default::default()
        }),
        status: Some(core::PodStatus::default()),
    };
    assert_eq!(
        decode(&body("v1", "Pod", &pod)).unwrap(),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            // generation is a value field with omitempty; an unset time is left out.
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "containers": [{
                    "name": "web", "image": "nginx:1.27",
                    // containerPort has no omitempty: kept; hostPort's zero is dropped.
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "EMPTY"}],
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                    // ProbeHandler is embedded: httpGet sits in the probe itself.
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                        "periodSeconds": 10},
                    // Pointers: an explicit zero and false are kept.
                    "securityContext": {"runAsUser": 0, "privileged": false},
                }],
                "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 0,
                "priority": 0,
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 5}],
            },
            "status": {},
        })
    );
}

#[test]
fn kinds_kubectl_never_sends_as_protobuf_decode_too() {
    let set = apps::StatefulSet {
        metadata: Some(object_meta("db")),
        spec: Some(apps::StatefulSetSpec {
            // A pointer's zero: scale to nothing, not "unset" (which would mean 1).
            replicas: Some(0),
            service_name: s("db"),
            selector: Some(meta::LabelSelector {
                match_labels: [("app".to_string(), "db".to_string())].into(),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("In"),
                    values: vec!["a".into(), String::new()],
                }],
            }),
            update_strategy: Some(apps::StatefulSetUpdateStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateStatefulSetStrategy {
                    partition: Some(2),
                    max_unavailable: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("25%"),
                    }),
                }),
            }),
            volume_claim_templates: vec![core::PersistentVolumeClaim {
                metadata: Some(meta::ObjectMeta {
                    name: s("data"),
                    ..Default::default()
                }),
                spec: Some(core::PersistentVolumeClaimSpec {
                    access_modes: vec!["ReadWriteOnce".into()],
                    // A pointer to "": no class at all (not the default class).
                    storage_class_name: s(""),
                    resources: Some(core::VolumeResourceRequirements {
                        requests: [("storage".to_string(), q("1Gi"))].into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let created = meta::Time {
        seconds: Some(1_700_000_000),
        ..Default::default()
    };
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: Some(meta::ObjectMeta {
            name: s("holder"),
            creation_timestamp: Some(created),
            ..Default::default()
        }),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            holder_identity: s("node-1"),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(123_456_000),
            }),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode(&body("apps/v1", "StatefulSet", &set)).unwrap()["spec"],
        json!({
            "replicas": 0, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}, "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", ""]}]},
            "updateStrategy": {"type": "RollingUpdate",
                "rollingUpdate": {"partition": 2, "maxUnavailable": "25%"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                "resources": {"requests": {"storage": "1Gi"}}}}],
        })
    );
    let lease = decode(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(
        lease["metadata"]["creationTimestamp"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(
        lease["spec"],
        json!({"holderIdentity": "node-1", "renewTime": "2023-11-14T22:13:20.123456Z"})
    );
}
