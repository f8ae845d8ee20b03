//! What authorization and admission cost: pod creates per second by a non-admin user
//! (client certificate; RBAC grants it `edit` in its namespace) with 1,000 Roles and 1,000
//! RoleBindings in the cluster, on a server with `--authorization-mode Node,RBAC` and every
//! admission plugin ("on"), and on one with `AlwaysAllow` and every admission plugin
//! disabled ("off"), alternated in one run. (Both authenticate the certificate: TLS needs it
//! either way.)
//!
//! Admission more than doubles each pod (the ServiceAccount's token volume and mounts,
//! priority, default tolerations), and everything after it (encoding, the store, the reply,
//! the client's decoding) costs by size. So both servers get two workloads: the pod as the
//! user writes it, and the pod already as admission leaves it (admission then adds
//! nothing). In the second, both get the same requests and store the same pods, and the
//! difference is what authentication, authorization and admission themselves cost; in the
//! first, it is also what storing bigger pods costs. Each round also reports the process's
//! CPU time per create (servers and clients together).
//!
//!     cargo bench -p rkube-apiserver --bench authz
//!
//! `RKUBE_BENCH_PODS` (default 3000) pods per round, `RKUBE_BENCH_ROUNDS` (default 5)
//! rounds per arm, alternated (which server goes first alternates too). For profiling, `RKUBE_BENCH_ONLY=on|off|on-admitted|off-admitted`
//! runs one arm alone; `RKUBE_BENCH_ON_DISABLE=Plugin,...` turns plugins off in "on" too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

/// The allocator the `rkube` binary runs its servers with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apiserver::testing::Cluster;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};

const CREATORS: usize = 64;
const ROLES: usize = 1000;
const NAMESPACES: usize = 10;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

async fn client_for(path: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// 1,000 Roles and 1,000 RoleBindings over ten namespaces (a tenth of the bindings name the
/// bench user's group, with roles that do not grant pods), then `edit` for the user in
/// `bench`.
async fn populate(c: &Cluster) {
    let admin = c.client().await;
    let pp = PostParams::default();
    let mut namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("team-{i}")).collect();
    namespaces.push("bench".into());
    for ns in &namespaces {
        Api::<Namespace>::all(admin.clone())
            .create(&pp, &obj(serde_json::json!({"metadata": {"name": ns}})))
            .await
            .unwrap();
    }
    Api::<ServiceAccount>::namespaced(admin.clone(), "bench")
        .create(
            &pp,
            &obj(serde_json::json!({"metadata": {"name": "default"}})),
        )
        .await
        .ok();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (admin, next) = (admin.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ROLES {
                        break;
                    }
                    let ns = if i % 10 == 0 {
                        "bench".to_string()
                    } else {
                        format!("team-{}", i % NAMESPACES)
                    };
                    let roles: Api<Role> = Api::namespaced(admin.clone(), &ns);
                    roles
                        .create(&PostParams::default(), &obj(serde_json::json!({
                            "metadata": {"name": format!("role-{i}")},
                            "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"],
                                "verbs": ["get", "list"], "resourceNames": [format!("cm-{i}")]}],
                        })))
                        .await
                        .unwrap();
                    let subject = if i % 10 == 0 {
                        serde_json::json!({"kind": "Group", "name": "bench-group", "apiGroup": "rbac.authorization.k8s.io"})
                    } else {
                        serde_json::json!({"kind": "User", "name": format!("user-{i}"), "apiGroup": "rbac.authorization.k8s.io"})
                    };
                    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &ns);
                    bindings
                        .create(&PostParams::default(), &obj(serde_json::json!({
                            "metadata": {"name": format!("binding-{i}")},
                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("role-{i}")},
                            "subjects": [subject],
                        })))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    Api::<RoleBinding>::namespaced(admin, "bench")
        .create(&pp, &obj(serde_json::json!({
            "metadata": {"name": "bench-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": "bench", "apiGroup": "rbac.authorization.k8s.io"}],
        })))
        .await
        .unwrap();
}

/// Waits until `client` may create pods in `bench` (the authorizer's index follows the
/// store); returns how long that took.
async fn wait_allowed(client: &kube::Client) -> Duration {
    use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review: SelfSubjectAccessReview = obj(serde_json::json!({"spec": {"resourceAttributes":
        {"namespace": "bench", "verb": "create", "resource": "pods"}}}));
    let start = Instant::now();
    loop {
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .unwrap();
        if answer.status.is_some_and(|s| s.allowed) {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never allowed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The process's CPU time so far (user + system; servers and clients share the process).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10) // USER_HZ is 100 on Linux
}

/// A round's figures: creates per second, and CPU microseconds per create.
struct Round {
    rate: f64,
    cpu_us: f64,
}

/// The pod the bench creates: as a user writes it, or (`admitted`) already carrying what
/// the admission chain adds (the ServiceAccount's token volume and mounts, priority,
/// default tolerations), which more than doubles its size.
fn bench_pod(name: String, admitted: bool) -> Pod {
    let mut pod = serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1.0",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    });
    if admitted {
        let volume = "kube-api-access-bench0";
        let spec = &mut pod["spec"];
        spec["containers"][0]["volumeMounts"] = serde_json::json!([{"name": volume,
            "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
        spec["serviceAccountName"] = "default".into();
        spec["serviceAccount"] = "default".into();
        spec["priority"] = 0.into();
        spec["preemptionPolicy"] = "PreemptLowerPriority".into();
        spec["tolerations"] =
            serde_json::json!(["not-ready", "unreachable"].map(|t| serde_json::json!({
            "key": format!("node.kubernetes.io/{t}"), "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 300})));
        spec["volumes"] = serde_json::json!([{"name": volume, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}}]);
    }
    obj(pod)
}

/// Creates `n` pods with 64 clients.
async fn creates(client: &kube::Client, round: usize, n: usize, admitted: bool) -> Round {
    let api: Api<Pod> = Api::namespaced(client.clone(), "bench");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let cpu = cpu_time();
    let tasks: Vec<_> = (0..CREATORS)
        .map(|_| {
            let (api, next) = (api.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let pod =
                        bench_pod(format!("p-{round}-{i:05}-{}", u8::from(admitted)), admitted);
                    api.create(&PostParams::default(), &pod).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    Round {
        rate: n as f64 / start.elapsed().as_secs_f64(),
        cpu_us: (cpu_time() - cpu).as_secs_f64() * 1e6 / n as f64,
    }
}

fn main() {
    let pods: usize = std::env::var("RKUBE_BENCH_PODS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        // RKUBE_BENCH_ON_DISABLE (comma-separated plugin names) turns plugins off in the
        // "on" arm too, to find what costs.
        let on_disabled: Vec<String> = std::env::var("RKUBE_BENCH_ON_DISABLE")
            .map(|v| v.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let on_disabled_names = on_disabled.join(",");
        let on = Cluster::start_configured(false, |c| c.disable_admission_plugins = on_disabled)
            .await;
        let off = Cluster::start_configured(false, |c| {
            c.authorization_mode = apiserver::AuthorizationMode::AlwaysAllow;
            c.disable_admission_plugins = apiserver::admission::PLUGINS
                .iter()
                .map(|p| p.to_string())
                .collect();
        })
        .await;
        let t = Instant::now();
        populate(&off).await;
        populate(&on).await;
        println!(
            "populated both servers with {ROLES} Roles and {ROLES} RoleBindings each in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let user = |c: &Cluster| c.kubeconfig_as("bench", &["bench-group"]);
        let (on_client, off_client) = (
            client_for(&user(&on)).await,
            client_for(&user(&off)).await,
        );
        let waited = wait_allowed(&on_client).await;
        println!(
            "the bench user's binding was in effect {:.0} ms after the last of 2,001 RBAC writes was acknowledged",
            waited.as_secs_f64() * 1000.0
        );
        // Warm both (connections, caches), then alternate rounds.
        creates(&on_client, 0, 200, false).await;
        creates(&off_client, 0, 200, false).await;
        let rounds: usize = std::env::var("RKUBE_BENCH_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5);
        if let Ok(arm) = std::env::var("RKUBE_BENCH_ONLY") {
            for round in 1..=rounds {
                let r = match arm.as_str() {
                    "on" => creates(&on_client, round, pods, false).await,
                    "off" => creates(&off_client, round, pods, false).await,
                    "on-admitted" => creates(&on_client, round, pods, true).await,
                    "off-admitted" => creates(&off_client, round, pods, true).await,
                    _ => panic!("RKUBE_BENCH_ONLY is on, off, on-admitted or off-admitted"),
                };
                println!(
                    "{arm} round {round}: {:.0} creates/s, {:.0} µs CPU per create",
                    r.rate, r.cpu_us
                );
            }
            return;
        }
        // [off, on] for the pod as the user writes it, then as admission leaves it. Which
        // server goes first alternates by round, so neither gains from going first.
        let mut arms: [[Vec<Round>; 2]; 2] = Default::default();
        for round in 1..=rounds {
            for (admitted, pair) in arms.iter_mut().enumerate() {
                let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
                for on in order {
                    let client = if on == 1 { &on_client } else { &off_client };
                    pair[on].push(creates(client, round, pods, admitted == 1).await);
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let rates = |r: &[Round]| r.iter().map(|r| r.rate).collect::<Vec<_>>();
        let show = |label: &str, r: &[Round]| {
            let cpu = mean(&r.iter().map(|r| r.cpu_us).collect::<Vec<_>>());
            println!(
                "    {label}: {:.0?}  mean {:.0}  ({cpu:.0} µs CPU per create, clients included)",
                rates(r),
                mean(&rates(r))
            );
            mean(&rates(r))
        };
        let on_label = if on_disabled_names.is_empty() {
            "on:  Node,RBAC and the whole admission chain".to_string()
        } else {
            format!("on:  Node,RBAC, admission without {on_disabled_names}")
        };
        println!("pod creates/s by a non-admin user, {CREATORS} clients, {pods} pods per round:");
        for (admitted, [off, on]) in arms.iter().enumerate() {
            println!(
                "  {}",
                if admitted == 1 {
                    "the pod as admission leaves it (token volume, priority, tolerations): both servers get the same requests and store the same pods"
                } else {
                    "the pod as the user writes it: \"on\" stores it more than twice as big"
                }
            );
            let off_mean = show("off: AlwaysAllow, every admission plugin disabled", off);
            let on_mean = show(&on_label, on);
            println!(
                "    overhead of \"on\": {:+.1}% (throughput ratio {:.3})",
                (off_mean / on_mean - 1.0) * 100.0,
                on_mean / off_mean
            );
        }
    });
}
