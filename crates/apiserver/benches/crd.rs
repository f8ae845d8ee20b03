//! Custom resources benchmark: a real server in a child process, driven over HTTPS by the
//! `kube` client (and kubectl for the time to usable).
//!
//!     cargo bench -p rkube-apiserver --bench crd
//!
//! Prints, side by side in one run: creates/s of a custom object whose CRD has a 30-field
//! schema and two CEL rules, and of a ConfigMap of the same size (64 concurrent clients,
//! `RKUBE_BENCH_OBJECTS` each, default 5000; five rounds, alternating); and the time from
//! creating a CRD to its `Established` condition and to `kubectl get` of the new kind
//! succeeding (median of ten CRDs).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

/// The allocator the `rkube` binary runs its servers with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Map, Value, json};

const CHILD: &str = "RKUBE_BENCH_SERVER_DIR";
const CREATORS: usize = 64;
const GROUP: &str = "bench.example.com";

/// The child: runs a server on a loopback port and prints its kubeconfig path.
fn serve(dir: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = std::path::PathBuf::from(dir);
        let server = apiserver::Server::start(apiserver::testing::config(
            &dir,
            store::DatastoreConfig::parse(None, &dir).unwrap(),
        ))
        .await
        .unwrap();
        println!("KUBECONFIG {}", server.kubeconfig.display());
        server.wait().await.unwrap();
    });
}

/// The 30 fields: strings (some with patterns, lengths and enums), integers with bounds,
/// booleans, a list and a nested object — what a typical operator's spec holds.
fn schema_and_spec() -> (Value, Map<String, Value>) {
    let mut props = Map::new();
    let mut spec = Map::new();
    for i in 0..30 {
        let name = format!("field{i:02}");
        let (schema, value) = match i % 6 {
            0 => (
                json!({"type": "string", "maxLength": 64, "pattern": "^[a-z0-9-]+$"}),
                json!(format!("value-{i}-abcdefgh")),
            ),
            1 => (
                json!({"type": "integer", "minimum": 0, "maximum": 100000}),
                json!(i * 1000),
            ),
            2 => (json!({"type": "boolean"}), json!(i % 4 == 0)),
            3 => (
                json!({"type": "string", "enum": ["Always", "IfNotPresent", "Never"]}),
                json!("IfNotPresent"),
            ),
            4 => (
                json!({"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 32}}),
                json!(["alpha", "beta", "gamma"]),
            ),
            _ => (
                json!({"type": "object", "properties": {"host": {"type": "string", "maxLength": 253}, "port": {"type": "integer", "minimum": 1, "maximum": 65535}}}),
                json!({"host": "svc.example.internal", "port": 8080}),
            ),
        };
        props.insert(name.clone(), schema);
        spec.insert(name, value);
    }
    props.insert("minReplicas".into(), json!({"type": "integer"}));
    props.insert("maxReplicas".into(), json!({"type": "integer"}));
    spec.insert("minReplicas".into(), json!(1));
    spec.insert("maxReplicas".into(), json!(5));
    let schema = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": props,
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"},
                {"rule": "self.field00.startsWith('value-')", "message": "field00 must start with value-"},
            ],
        }},
    });
    (schema, spec)
}

fn crd(plural: &str, kind: &str, schema: &Value) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{plural}.{GROUP}")},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": schema}}],
        },
    }))
    .unwrap()
}

/// Creates `n` objects from `make(i)` with [`CREATORS`] clients; returns creates/s.
async fn creates<F>(n: usize, make: F) -> f64
where
    F: Fn(usize) -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CREATORS)
        .map(|_| {
            let (make, next) = (make.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    make(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD) {
        return serve(&dir);
    }
    let n: usize = std::env::var("RKUBE_BENCH_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let kubeconfig = line.trim().strip_prefix("KUBECONFIG ").unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let (schema, spec) = schema_and_spec();

        // Time to Established, and to `kubectl get` working, for ten new CRDs.
        let (mut established, mut usable) = (Vec::new(), Vec::new());
        for i in 0..10 {
            let plural = format!("probes{i}");
            let t = Instant::now();
            crds.create(&PostParams::default(), &crd(&plural, &format!("Probe{i}"), &schema))
                .await
                .unwrap();
            loop {
                let c = crds.get_status(&format!("{plural}.{GROUP}")).await.unwrap();
                let ok = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
                    cs.iter().any(|c| c.type_ == "Established" && c.status == "True")
                });
                if ok {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            established.push(t.elapsed().as_secs_f64() * 1000.0);
            let kubeconfig = kubeconfig.clone();
            let cache = dir.path().join(format!("cache{i}"));
            let resource = format!("{plural}.{GROUP}");
            let took = tokio::task::spawn_blocking(move || loop {
                let ok = Command::new("kubectl")
                    .args(["--kubeconfig", &kubeconfig, "--cache-dir"])
                    .arg(&cache)
                    .args(["get", &resource])
                    .output()
                    .unwrap()
                    .status
                    .success();
                if ok {
                    break t.elapsed();
                }
            })
            .await
            .unwrap();
            usable.push(took.as_secs_f64() * 1000.0);
        }

        // Creates/s: the custom object against a ConfigMap of the same size.
        crds.create(&PostParams::default(), &crd("widgets", "Widget", &schema))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let resource = ApiResource {
            group: GROUP.into(),
            version: "v1".into(),
            api_version: format!("{GROUP}/v1"),
            kind: "Widget".into(),
            plural: "widgets".into(),
        };
        let widgets: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "default", &resource);
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let widget = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
            "metadata": {"name": "w"}, "spec": spec});
        let data: Map<String, Value> = spec
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                (k.clone(), json!(s))
            })
            .collect();
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": data});
        let (widget_bytes, cm_bytes) = (widget.to_string().len(), config_map.to_string().len());
        // What is measured really is validated: a widget breaking a rule is refused.
        let mut bad = widget.clone();
        bad["metadata"]["name"] = json!("bad");
        bad["spec"]["minReplicas"] = json!(9);
        let err = widgets
            .create(&PostParams::default(), &serde_json::from_value(bad).unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("minReplicas must not exceed maxReplicas"), "{err}");
        let (mut custom, mut plain) = (Vec::new(), Vec::new());
        for round in 0..5 {
            let (w, api) = (widget.clone(), widgets.clone());
            custom.push(
                creates(n, move |i| {
                    let (mut w, api) = (w.clone(), api.clone());
                    Box::pin(async move {
                        w["metadata"]["name"] = json!(format!("w-{round}-{i:05}"));
                        let obj: DynamicObject = serde_json::from_value(w).unwrap();
                        api.create(&PostParams::default(), &obj).await.unwrap();
                    })
                })
                .await,
            );
            let (c, api) = (config_map.clone(), config_maps.clone());
            plain.push(
                creates(n, move |i| {
                    let (mut c, api) = (c.clone(), api.clone());
                    Box::pin(async move {
                        c["metadata"]["name"] = json!(format!("c-{round}-{i:05}"));
                        let obj: ConfigMap = serde_json::from_value(c).unwrap();
                        api.create(&PostParams::default(), &obj).await.unwrap();
                    })
                })
                .await,
            );
        }
        println!();
        println!("Custom resources benchmark (SQLite, {CREATORS} clients, {n} objects per round, 2 cores)");
        for (round, (c, p)) in custom.iter().zip(&plain).enumerate() {
            println!(
                "round {}: custom object {c:.0} creates/s, ConfigMap {p:.0} creates/s: {:.0}%",
                round + 1,
                100.0 * c / p
            );
        }
        let ratios: Vec<f64> = custom.iter().zip(&plain).map(|(c, p)| 100.0 * c / p).collect();
        println!(
            "median: custom object {:.0} creates/s ({widget_bytes} B, 32 fields, 2 CEL rules), ConfigMap {:.0} creates/s ({cm_bytes} B); median of the rounds' ratios {:.0}%",
            median(custom.clone()),
            median(plain.clone()),
            median(ratios)
        );
        println!(
            "CRD create to Established: median {:.1} ms, max {:.1} ms; to `kubectl get` succeeding: median {:.0} ms, max {:.0} ms (10 CRDs)",
            median(established.clone()),
            established.iter().cloned().fold(0.0, f64::max),
            median(usable.clone()),
            usable.iter().cloned().fold(0.0, f64::max),
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}
