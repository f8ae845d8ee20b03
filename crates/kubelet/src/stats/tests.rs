//! The provider end to end on a cgroup v1 tree written in a temp dir, a pod as CRI lists it,
//! and its log files: what `/stats/summary` and the metrics endpoints would answer.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::collect::RuntimeView;
use super::summary::PvcReference;
use super::volumes::CLAIM_PLUGIN;
use super::{Cgroups, StatsConfig, StatsProvider, cadvisor_metrics, resource_metrics};
use crate::cri::{RuntimeClient, api};
use crate::kuberuntime::{
    ANNOTATION_CGROUP_PARENT, LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE,
};
use crate::paths::AgentDirs;

const POD_CG: &str = "kubepods/besteffort/podu1";

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_default();
    }
    std::fs::write(path, text).unwrap_or_default();
}

/// cpuacct, memory and pids files of one v1 cgroup.
fn cgroup(root: &Path, rel: &str, cpu_ns: u64, mem: u64, procs: &str) {
    let at = |c: &str, f: &str| {
        if rel.is_empty() {
            format!("{c}/{f}")
        } else {
            format!("{c}/{rel}/{f}")
        }
    };
    write(
        root,
        &at("cpuacct", "cpuacct.usage"),
        &format!("{cpu_ns}\n"),
    );
    write(root, &at("cpuacct", "cpuacct.stat"), "user 10\nsystem 5\n");
    write(root, &at("cpu", "cpu.shares"), "2\n");
    write(root, &at("cpu", "cgroup.procs"), procs);
    write(
        root,
        &at("memory", "memory.usage_in_bytes"),
        &format!("{mem}\n"),
    );
    write(root, &at("memory", "memory.use_hierarchy"), "1\n");
    write(
        root,
        &at("memory", "memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    write(
        root,
        &at("memory", "memory.stat"),
        "pgfault 9\npgmajfault 1\ntotal_rss 300\ntotal_cache 700\ntotal_inactive_file 100\n",
    );
    write(root, &at("pids", "pids.current"), "1\n");
}

struct Fixture {
    _tmp: tempfile::TempDir,
    cg: std::path::PathBuf,
    provider: Arc<StatsProvider>,
    view: RuntimeView,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cg = tmp.path().join("cg");
    let me = format!("{}\n", std::process::id());
    cgroup(&cg, "", 50_000_000_000, 1 << 30, "1\n");
    cgroup(&cg, "kubepods", 3_000_000_000, 40_000, "");
    cgroup(&cg, "kubepods/besteffort", 3_000_000_000, 40_000, "");
    cgroup(&cg, POD_CG, 3_000_000_000, 40_000, "");
    cgroup(&cg, &format!("{POD_CG}/sb1"), 1_000_000, 4_000, &me);
    cgroup(&cg, &format!("{POD_CG}/c1"), 2_000_000_000, 30_000, &me);
    let dirs = AgentDirs::new(&tmp.path().join("data"));
    let log = dirs.pod_log_dir("default", "web", "u1");
    write(&log, "app/0.log", &"x".repeat(5000));
    write(&dirs.pod_dir("u1"), "etc-hosts", "127.0.0.1 localhost\n");
    write(
        &dirs.pod_volume_dir("u1", "kubernetes.io~empty-dir", "cache"),
        "blob",
        &"y".repeat(9000),
    );
    let root_dir = dirs.agent.join("kubelet");
    std::fs::create_dir_all(&root_dir).unwrap_or_default();
    let cfg = StatsConfig {
        node_name: "n1".into(),
        cgroup_root: "/kubepods".into(),
        dirs,
        root_dir,
        housekeeping_interval: Duration::from_secs(10),
    };
    let cri = RuntimeClient::lazy(tmp.path().join("no-runtime.sock"));
    let provider = StatsProvider::with_cgroups(cfg, cri, Cgroups::at(&cg));
    let mount = tmp.path().to_string_lossy().into_owned();
    let sandbox = api::PodSandbox {
        id: "sb1".into(),
        metadata: Some(api::PodSandboxMetadata {
            name: "web".into(),
            uid: "u1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        state: api::PodSandboxState::SandboxReady as i32,
        created_at: 1_700_000_000_000_000_000,
        labels: HashMap::from([
            (LABEL_POD_NAME.to_owned(), "web".to_owned()),
            (LABEL_POD_NAMESPACE.to_owned(), "default".to_owned()),
        ]),
        annotations: HashMap::from([(ANNOTATION_CGROUP_PARENT.to_owned(), format!("/{POD_CG}"))]),
        ..Default::default()
    };
    let container = api::Container {
        id: "c1".into(),
        pod_sandbox_id: "sb1".into(),
        metadata: Some(api::ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: "rkube.local/busybox:test".into(),
            ..Default::default()
        }),
        state: api::ContainerState::ContainerRunning as i32,
        created_at: 1_700_000_001_000_000_000,
        labels: HashMap::from([
            (LABEL_POD_NAME.to_owned(), "web".to_owned()),
            (LABEL_POD_NAMESPACE.to_owned(), "default".to_owned()),
            (LABEL_CONTAINER_NAME.to_owned(), "app".to_owned()),
        ]),
        ..Default::default()
    };
    let layer = api::FilesystemUsage {
        timestamp: 1_700_000_002_000_000_000,
        fs_id: Some(api::FilesystemIdentifier {
            mountpoint: mount.clone(),
        }),
        used_bytes: Some(api::UInt64Value { value: 4096 }),
        inodes_used: Some(api::UInt64Value { value: 3 }),
    };
    let stats = api::ContainerStats {
        attributes: Some(api::ContainerAttributes {
            id: "c1".into(),
            ..Default::default()
        }),
        writable_layer: Some(layer.clone()),
        ..Default::default()
    };
    let view = RuntimeView {
        sandboxes: vec![sandbox],
        containers: vec![container],
        container_states: BTreeMap::from([(api::ContainerState::ContainerRunning as i32, 1)]),
        stats: Some(HashMap::from([("c1".to_owned(), stats)])),
        image_fs: Some(layer),
    };
    Fixture {
        _tmp: tmp,
        cg,
        provider,
        view,
    }
}

#[tokio::test]
async fn the_summary_has_what_a_user_looks_for() {
    let mut f = fixture();
    assert_eq!(f.provider.housekeep(), 6, "the node and five cgroups");
    // One core busy in the container for the next round.
    std::thread::sleep(Duration::from_millis(100));
    write(
        &f.cg,
        &format!("cpuacct/{POD_CG}/c1/cpuacct.usage"),
        "2100000000\n",
    );
    f.provider.housekeep();
    let s = f
        .provider
        .build_summary(&f.view, true)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let v = serde_json::to_value(&s).unwrap_or_default();
    let node = &v["node"];
    assert_eq!(node["nodeName"], "n1");
    assert_eq!(node["cpu"]["usageCoreNanoSeconds"], 50_000_000_000u64);
    assert_eq!(node["memory"]["workingSetBytes"], (1u64 << 30) - 100);
    assert_eq!(node["systemContainers"][0]["name"], "pods");
    assert_eq!(
        node["systemContainers"][0]["cpu"]["usageCoreNanoSeconds"],
        3_000_000_000u64
    );
    assert!(node["fs"]["capacityBytes"].as_u64().is_some_and(|c| c > 0));
    assert_eq!(node["runtime"]["imageFs"]["usedBytes"], 4096);
    assert!(node["rlimit"]["maxpid"].as_i64().is_some_and(|m| m > 0));
    let pod = &v["pods"][0];
    assert_eq!(pod["podRef"]["name"], "web");
    assert_eq!(pod["startTime"], "2023-11-14T22:13:20Z");
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "app");
    assert_eq!(c["startTime"], "2023-11-14T22:13:21Z");
    assert_eq!(c["cpu"]["usageCoreNanoSeconds"], 2_100_000_000u64);
    assert!(
        c["cpu"]["usageNanoCores"].as_u64().is_some_and(|n| n > 0),
        "{c}"
    );
    assert_eq!(c["memory"]["workingSetBytes"], 30_000 - 100);
    assert_eq!(c["memory"]["rssBytes"], 300);
    assert_eq!(c["memory"]["pageFaults"], 9);
    // No limit: no availableBytes.
    assert!(c["memory"].get("availableBytes").is_none());
    assert_eq!(c["rootfs"]["usedBytes"], 4096);
    assert_eq!(c["rootfs"]["inodesUsed"], 3);
    assert!(c["logs"]["usedBytes"].as_u64().is_some_and(|b| b >= 5000));
    assert_eq!(c["swap"]["swapUsageBytes"], 0);
    assert_eq!(pod["cpu"]["usageCoreNanoSeconds"], 3_000_000_000u64);
    assert_eq!(
        pod["cpu"]["usageNanoCores"], 0,
        "the pod cgroup did not move"
    );
    assert_eq!(pod["memory"]["workingSetBytes"], 40_000 - 100);
    assert_eq!(pod["process_stats"]["process_count"], 1);
    assert_eq!(pod["volume"][0]["name"], "cache");
    assert!(
        pod["volume"][0]["usedBytes"]
            .as_u64()
            .is_some_and(|b| b >= 9000)
    );
    // Writable layer + logs + the emptyDir + /etc/hosts.
    let eph = pod["ephemeral-storage"]["usedBytes"].as_u64().unwrap_or(0);
    assert!(eph >= 4096 + 5000 + 9000 + 20, "{eph}");

    let cm = f
        .provider
        .build_summary(&f.view, false)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let v = serde_json::to_value(&cm).unwrap_or_default();
    for absent in ["network", "fs", "runtime", "rlimit"] {
        assert!(v["node"].get(absent).is_none(), "{absent}");
    }
    let pod = &v["pods"][0];
    for absent in ["network", "volume", "ephemeral-storage", "process_stats"] {
        assert!(pod.get(absent).is_none(), "{absent}");
    }
    assert!(pod["containers"][0].get("rootfs").is_none());
    assert_eq!(
        pod["containers"][0]["cpu"]["usageCoreNanoSeconds"],
        2_100_000_000u64
    );

    // CPU and memory need no CRI stats while every cgroup can be read.
    assert!(!f.provider.missing_cgroups(&f.view));
    f.view.stats = None;
    let without = f
        .provider
        .build_summary(&f.view, false)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(without.pods.len(), 1);
    let cpu = without.pods[0].containers[0].cpu.as_ref();
    assert_eq!(
        cpu.and_then(|c| c.usage_core_nano_seconds),
        Some(2_100_000_000)
    );
    f.view.containers[0].id = "gone".into();
    assert!(f.provider.missing_cgroups(&f.view));

    let text = resource_metrics::render(Some(&cm));
    assert!(text.contains(
        "# TYPE container_cpu_usage_seconds_total counter\n\
         container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"web\"} 2.1 "
    ));
    assert!(text.contains("node_cpu_usage_seconds_total 50 "), "{text}");
    assert!(text.contains(
        "container_start_time_seconds{container=\"app\",namespace=\"default\",pod=\"web\"} 1.700000001e+09\n"
    ));
    assert!(
        text.contains("pod_memory_working_set_bytes{namespace=\"default\",pod=\"web\"} 39900 ")
    );
    assert!(text.ends_with("resource_scrape_error 0\n"));
}

#[tokio::test]
async fn cadvisor_metrics_label_every_cgroup_as_the_kubelet_does() {
    let f = fixture();
    let text = cadvisor_metrics::render(&f.provider, Some(&f.view));
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(text.contains(
        "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.\n\
         # TYPE container_cpu_usage_seconds_total counter\n"
    ));
    // The container, by ID, with its image and names.
    let c = line(&format!(
        "container_cpu_usage_seconds_total{{container=\"app\",cpu=\"total\",id=\"/{POD_CG}/c1\",image=\"rkube.local/busybox:test\",name=\"c1\",namespace=\"default\",pod=\"web\"}} 2 "
    ));
    assert!(!c.is_empty(), "{text}");
    // The pod's cgroup: a raw cgroup named after the pod.
    assert!(!line(&format!(
        "container_memory_working_set_bytes{{container=\"\",id=\"/{POD_CG}\",image=\"\",name=\"\",namespace=\"default\",pod=\"web\"}} 39900 "
    ))
    .is_empty());
    // The root, with empty labels.
    assert!(!line(
        "container_cpu_usage_seconds_total{container=\"\",cpu=\"total\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"} 50 "
    )
    .is_empty());
    assert!(
        !line(&format!(
            "container_processes{{container=\"app\",id=\"/{POD_CG}/c1\""
        ))
        .is_empty()
    );
    assert!(!line("container_fs_usage_bytes{container=\"\",device=").is_empty());
    assert!(text.contains("\ncontainer_scrape_error 0\n"));
    assert!(text.contains("# TYPE machine_cpu_cores gauge\nmachine_cpu_cores{boot_id="));
}

#[tokio::test]
async fn a_runtime_that_does_not_answer_is_an_error() {
    let f = fixture();
    let err = f
        .provider
        .summary(false)
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        err.starts_with("failed to list pod stats: failed to list all "),
        "{err}"
    );
    let text = f.provider.resource_metrics().await;
    assert!(text.ends_with("resource_scrape_error 1\n"), "{text}");
    assert!(
        f.provider
            .cadvisor_metrics()
            .await
            .contains("\ncontainer_scrape_error 1\n")
    );
}

#[tokio::test]
async fn metrics_report_the_claims_mounted_here() -> anyhow::Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        common::ci::skip("mounting a claim's filesystem needs root");
        return Ok(());
    }
    let f = fixture();
    let dirs = &f.provider.config().dirs;
    let data = dirs.pod_volume_dir("u1", CLAIM_PLUGIN, "data");
    // A claim whose volume is not mounted (yet): nothing to report, not the node's disk.
    let idle = dirs.pod_volume_dir("u1", CLAIM_PLUGIN, "idle");
    std::fs::create_dir_all(&idle)?;
    f.provider.set_claims_of(|uid: &str| {
        let claim = |name: &str| PvcReference {
            name: name.into(),
            namespace: "shop".into(),
        };
        match uid {
            "u1" => HashMap::from([
                ("data".to_owned(), claim("www-web-0")),
                ("idle".to_owned(), claim("idle-web-0")),
            ]),
            _ => HashMap::new(),
        }
    });
    crate::volumes::mount_tmpfs(&data, Some(8 << 20))?;
    f.provider.housekeep();
    crate::volumes::umount(&data)?;
    // Unmounted since housekeeping measured it: the scrape serves the cached figures (the
    // 8 MiB tmpfs), it does not measure again.
    let text = f.provider.kubelet_metrics_of(Some(&f.view));
    let labels = "{namespace=\"shop\",persistentvolumeclaim=\"www-web-0\"}";
    for want in [
        format!(
            "# HELP kubelet_volume_stats_capacity_bytes [ALPHA] Capacity in bytes of the volume\n\
             # TYPE kubelet_volume_stats_capacity_bytes gauge\n\
             kubelet_volume_stats_capacity_bytes{labels} 8.388608e+06\n"
        ),
        format!("\nkubelet_volume_stats_health_status_abnormal{labels} 0\n"),
        "\nkubelet_node_name{node=\"n1\"} 1\n".to_owned(),
        "\nkubelet_running_pods 1\n".to_owned(),
        "\nkubelet_running_containers{container_state=\"running\"} 1\n".to_owned(),
    ] {
        assert!(text.contains(&want), "no {want:?} in:\n{text}");
    }
    for family in [
        "available_bytes",
        "used_bytes",
        "inodes",
        "inodes_free",
        "inodes_used",
    ] {
        let line = format!("\nkubelet_volume_stats_{family}{labels} ");
        assert!(text.contains(&line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains("idle-web-0"), "{text}");
    // A pod the runtime no longer runs: its claims are not reported.
    let mut gone = f.view;
    gone.containers.clear();
    let text = f.provider.kubelet_metrics_of(Some(&gone));
    assert!(!text.contains("kubelet_volume_stats_"), "{text}");
    Ok(())
}

#[tokio::test]
async fn metrics_without_a_runtime_still_name_the_node() {
    let f = fixture();
    let text = f.provider.kubelet_metrics().await;
    assert_eq!(
        text,
        "# HELP kubelet_node_name [ALPHA] The node's name. The count is always 1.\n\
         # TYPE kubelet_node_name gauge\n\
         kubelet_node_name{node=\"n1\"} 1\n"
    );
}

#[tokio::test]
async fn summaries_take_housekeepings_container_stats_while_fresh() {
    let f = fixture();
    assert!(
        f.provider.cached_container_stats().is_none(),
        "none kept yet"
    );
    let stats = api::ContainerStats {
        attributes: Some(api::ContainerAttributes {
            id: "c1".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    f.provider
        .keep_container_stats(HashMap::from([("c1".to_string(), stats)]));
    let kept = f.provider.cached_container_stats();
    assert!(kept.is_some_and(|k| k.contains_key("c1")));
}

#[test]
fn claims_are_found_for_claim_and_ephemeral_volumes() {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
        "spec": {"containers": [], "volumes": [
            {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-0"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "cache", "emptyDir": {}},
        ]},
    }))
    .unwrap_or_default();
    let pods = [Arc::new(pod)];
    let claims = super::claims_of(&pods, "u1");
    let names: std::collections::BTreeMap<_, _> = claims
        .iter()
        .map(|(v, c)| (v.as_str(), (c.namespace.as_str(), c.name.as_str())))
        .collect();
    assert_eq!(
        names,
        [
            ("scratch", ("shop", "web-0-scratch")),
            ("www", ("shop", "www-web-0")),
        ]
        .into()
    );
    assert!(super::claims_of(&pods, "u2").is_empty());
}
