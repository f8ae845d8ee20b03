//! Pod spec → CRI: the sandbox config of a pod and the container config of each container, with
//! the labels and annotations by which the kubelet recognises its sandboxes and containers again
//! (after its own restart too). Pure functions; the pod workers call the runtime.

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use crate::config::KubeletConfig;
use crate::cri::api;

pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Hash of the container's spec: a container whose spec changed is restarted.
pub const ANNOTATION_CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const ANNOTATION_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const ANNOTATION_TERMINATION_GRACE: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Where the container writes its termination message and whether its log is the fallback:
/// read back from the container's status once it exited.
pub const ANNOTATION_TERMINATION_MESSAGE_PATH: &str =
    "io.kubernetes.container.terminationMessagePath";
pub const ANNOTATION_TERMINATION_MESSAGE_POLICY: &str =
    "io.kubernetes.container.terminationMessagePolicy";
/// The cgroup parent the sandbox was made with, so cleanup can remove it after the pod object
/// is gone.
pub const ANNOTATION_CGROUP_PARENT: &str = "rkube.io/cgroup-parent";

/// Paths masked / made read-only in unprivileged containers (the container runtime defaults
/// Kubernetes passes for the Default procMount).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn spec(pod: &Pod) -> PodSpec {
    pod.spec.clone().unwrap_or_default()
}

/// The labels that tie a sandbox (and its containers) to its pod.
pub fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let m = &pod.metadata;
    HashMap::from([
        (
            LABEL_POD_NAME.to_owned(),
            m.name.clone().unwrap_or_default(),
        ),
        (
            LABEL_POD_NAMESPACE.to_owned(),
            m.namespace.clone().unwrap_or_default(),
        ),
        (LABEL_POD_UID.to_owned(), m.uid.clone().unwrap_or_default()),
    ])
}

/// A hash of the container's spec (16 hex digits).
pub fn container_hash(c: &Container) -> String {
    let json = serde_json::to_vec(c).unwrap_or_default();
    let d = ring::digest::digest(&ring::digest::SHA256, &json);
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The pod's hostname: `spec.hostname` or its name, as a DNS label (63 characters at most).
pub(crate) fn pod_hostname(pod: &Pod, spec: &PodSpec) -> String {
    let name = spec
        .hostname
        .clone()
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with(['-', '.']) {
        h.pop();
    }
    h
}

/// The pod's domain for its FQDN: `<subdomain>.<namespace>.svc.<cluster domain>` when it has a
/// `subdomain`, else empty (upstream's `GeneratePodHostNameAndDomain`).
pub fn pod_domain(pod: &Pod, cluster_domain: &str) -> String {
    match pod.spec.as_ref().and_then(|s| s.subdomain.as_deref()) {
        Some(sub) if !sub.is_empty() => format!(
            "{sub}.{}.svc.{cluster_domain}",
            pod.metadata.namespace.as_deref().unwrap_or("default")
        ),
        _ => String::new(),
    }
}

/// The pod's hostname as containers see it.
pub fn hostname(pod: &Pod) -> String {
    pod_hostname(pod, &spec(pod))
}

/// Supplemental groups of the pod's processes: `fsGroup` first, then `supplementalGroups`
/// (upstream's order), so the pod can use volumes given to its fsGroup.
fn supplemental_groups(psc: &k8s_openapi::api::core::v1::PodSecurityContext) -> Vec<i64> {
    psc.fs_group
        .into_iter()
        .chain(psc.supplemental_groups.iter().flatten().copied())
        .collect()
}

fn namespace_options(spec: &PodSpec) -> api::NamespaceOption {
    let mode = |node: bool, otherwise: api::NamespaceMode| {
        if node {
            api::NamespaceMode::Node as i32
        } else {
            otherwise as i32
        }
    };
    let pid_shared = if spec.share_process_namespace.unwrap_or(false) {
        api::NamespaceMode::Pod
    } else {
        api::NamespaceMode::Container
    };
    api::NamespaceOption {
        network: mode(spec.host_network.unwrap_or(false), api::NamespaceMode::Pod),
        pid: mode(spec.host_pid.unwrap_or(false), pid_shared),
        ipc: mode(spec.host_ipc.unwrap_or(false), api::NamespaceMode::Pod),
        ..Default::default()
    }
}

/// resolv.conf for the pod: cluster DNS for `ClusterFirst` (the host's for host-network pods,
/// unless `ClusterFirstWithHostNet`), the host's for `Default` (`None` = containerd copies the
/// host's), only `dnsConfig` for `None`; `dnsConfig` is merged in every case.
pub fn dns_config(pod: &Pod, cfg: &KubeletConfig) -> Option<api::DnsConfig> {
    let spec = spec(pod);
    let host_net = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let d = &cfg.cluster_domain;
    let mut out = match policy {
        "ClusterFirst" if !host_net => Some(cluster_dns(cfg, ns, d)),
        "ClusterFirstWithHostNet" => Some(cluster_dns(cfg, ns, d)),
        "None" => Some(api::DnsConfig::default()),
        _ => None,
    };
    if let Some(extra) = &spec.dns_config {
        let o = out.get_or_insert_with(api::DnsConfig::default);
        o.servers
            .extend(extra.nameservers.iter().flatten().cloned());
        o.searches.extend(extra.searches.iter().flatten().cloned());
        for opt in extra.options.iter().flatten() {
            let Some(name) = &opt.name else { continue };
            o.options
                .retain(|x| x.split(':').next() != Some(name.as_str()));
            o.options.push(match &opt.value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            });
        }
    }
    out
}

fn cluster_dns(cfg: &KubeletConfig, ns: &str, domain: &str) -> api::DnsConfig {
    api::DnsConfig {
        servers: cfg.cluster_dns.clone(),
        searches: vec![
            format!("{ns}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_owned(),
        ],
        options: vec!["ndots:5".into()],
    }
}

/// hostPort mappings of every container port that asks for one.
fn port_mappings(spec: &PodSpec) -> Vec<api::PortMapping> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| api::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp as i32,
                Some("SCTP") => api::Protocol::Sctp as i32,
                _ => api::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

/// The sandbox config of `pod` (the same config must be passed to every CreateContainer).
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    cfg: &KubeletConfig,
    log_dir: &Path,
    cgroup_parent: &str,
) -> api::PodSandboxConfig {
    let spec = spec(pod);
    let m = &pod.metadata;
    let host_net = spec.host_network.unwrap_or(false);
    let mut labels: HashMap<String, String> =
        m.labels.clone().unwrap_or_default().into_iter().collect();
    labels.extend(pod_labels(pod));
    let mut annotations: HashMap<String, String> = m
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    annotations.insert(ANNOTATION_CGROUP_PARENT.into(), cgroup_parent.into());
    let psc = spec.security_context.clone().unwrap_or_default();
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        // As upstream, none for host-network pods: they share the node's UTS namespace, and
        // runc refuses to set a hostname without a private one.
        hostname: if host_net {
            String::new()
        } else {
            pod_hostname(pod, &spec)
        },
        log_directory: log_dir.to_string_lossy().into_owned(),
        dns_config: dns_config(pod, cfg),
        port_mappings: port_mappings(&spec),
        labels,
        annotations,
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_owned(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(&spec)),
                run_as_user: psc.run_as_user.map(|value| api::Int64Value { value }),
                run_as_group: psc.run_as_group.map(|value| api::Int64Value { value }),
                supplemental_groups: supplemental_groups(&psc),
                privileged,
                ..Default::default()
            }),
            sysctls: psc
                .sysctls
                .iter()
                .flatten()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container's log file, relative to the sandbox's log directory.
pub fn log_path(name: &str, attempt: u32) -> String {
    format!("{name}/{attempt}.log")
}

/// Everything about a container start that is not in the pod spec.
pub struct ContainerParams<'a> {
    pub attempt: u32,
    pub image: &'a str,
    pub env: Vec<(String, String)>,
    pub resources: api::LinuxContainerResources,
    /// Volume mounts, `/etc/hosts`, the termination-message file
    /// ([`crate::volumes::container_mounts`]).
    pub mounts: Vec<api::Mount>,
}

/// An ephemeral container (`kubectl debug`) as the container it is run as: the same fields,
/// less `targetContainerName`, which [`target_pid_namespace`] turns into a namespace option.
pub fn ephemeral_as_container(ec: &k8s_openapi::api::core::v1::EphemeralContainer) -> Container {
    serde_json::to_value(ec)
        .and_then(serde_json::from_value)
        .unwrap_or_else(|_| Container {
            name: ec.name.clone(),
            image: ec.image.clone(),
            ..Default::default()
        })
}

/// Puts a container in the PID namespace of container `target_id` (upstream's
/// `NamespaceMode_TARGET`, `kubectl debug --target`).
pub fn target_pid_namespace(config: &mut api::ContainerConfig, target_id: &str) {
    if let Some(ns) = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
    {
        ns.pid = api::NamespaceMode::Target as i32;
        ns.target_id = target_id.to_owned();
    }
}

/// The CRI config of container `c` of `pod`.
pub fn container_config(pod: &Pod, c: &Container, p: ContainerParams<'_>) -> api::ContainerConfig {
    let spec = spec(pod);
    let vars: HashMap<&str, &str> = p
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let expand_all = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|s| crate::env::expand(s, &vars))
            .collect()
    };
    let command = expand_all(&c.command);
    let args = expand_all(&c.args);
    let mut labels = pod_labels(pod);
    labels.insert(LABEL_CONTAINER_NAME.into(), c.name.clone());
    let annotations = HashMap::from([
        (
            ANNOTATION_TERMINATION_MESSAGE_PATH.to_owned(),
            c.termination_message_path.clone().unwrap_or_default(),
        ),
        (
            ANNOTATION_TERMINATION_MESSAGE_POLICY.to_owned(),
            c.termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
        (ANNOTATION_CONTAINER_HASH.to_owned(), container_hash(c)),
        (ANNOTATION_RESTART_COUNT.to_owned(), p.attempt.to_string()),
        (
            ANNOTATION_TERMINATION_GRACE.to_owned(),
            spec.termination_grace_period_seconds
                .unwrap_or(30)
                .to_string(),
        ),
    ]);
    let psc = spec.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged.unwrap_or(false);
    let unmasked = sc.proc_mount.as_deref() == Some("Unmasked");
    let paths = |list: &[&str]| -> Vec<String> {
        if privileged || unmasked {
            Vec::new()
        } else {
            list.iter().map(|s| (*s).to_owned()).collect()
        }
    };
    let caps = sc.capabilities.as_ref().map(|caps| api::Capability {
        add_capabilities: caps.add.clone().unwrap_or_default(),
        drop_capabilities: caps.drop.clone().unwrap_or_default(),
        ..Default::default()
    });
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: p.attempt,
        }),
        image: Some(api::ImageSpec {
            image: p.image.to_owned(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: p
            .env
            .iter()
            .map(|(key, value)| api::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        labels,
        annotations,
        log_path: log_path(&c.name, p.attempt),
        mounts: p.mounts,
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(p.resources),
            security_context: Some(api::LinuxContainerSecurityContext {
                capabilities: caps,
                privileged,
                namespace_options: Some(namespace_options(&spec)),
                run_as_user: sc
                    .run_as_user
                    .or(psc.run_as_user)
                    .map(|value| api::Int64Value { value }),
                run_as_group: sc
                    .run_as_group
                    .or(psc.run_as_group)
                    .map(|value| api::Int64Value { value }),
                readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
                supplemental_groups: supplemental_groups(&psc),
                no_new_privs: sc.allow_privilege_escalation == Some(false),
                masked_paths: paths(MASKED_PATHS),
                readonly_paths: paths(READONLY_PATHS),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn cfg() -> KubeletConfig {
        KubeletConfig::new(Some("n1"), "/tmp/x")
    }

    #[test]
    fn sandbox_has_labels_dns_ports_and_cgroup() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "w"}},
            "spec": {"containers": [{"name": "c", "ports": [
                {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
                {"containerPort": 53, "protocol": "UDP"}]}],
                "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}}
        }));
        let s = sandbox_config(
            &p,
            1,
            &cfg(),
            Path::new("/logs/ns_web_u1"),
            "/kubepods/podu1",
        );
        assert_eq!(s.hostname, "web");
        assert_eq!(s.labels.get(LABEL_POD_UID).map(String::as_str), Some("u1"));
        assert_eq!(s.labels.get("app").map(String::as_str), Some("w"));
        assert_eq!(s.metadata.as_ref().map(|m| m.attempt), Some(1));
        assert_eq!(s.port_mappings.len(), 1);
        assert_eq!(s.port_mappings[0].host_port, 8080);
        let dns = s.dns_config.unwrap_or_default();
        assert_eq!(dns.servers, vec!["10.43.0.10"]);
        assert_eq!(dns.searches[0], "ns.svc.cluster.local");
        assert_eq!(dns.options, vec!["ndots:2"]);
        let linux = s.linux.unwrap_or_default();
        assert_eq!(linux.cgroup_parent, "/kubepods/podu1");
        let ns = linux
            .security_context
            .and_then(|s| s.namespace_options)
            .unwrap_or_default();
        assert_eq!(ns.network, api::NamespaceMode::Pod as i32);
        assert_eq!(ns.pid, api::NamespaceMode::Container as i32);
    }

    #[test]
    fn host_network_pods_use_the_hosts_resolver() {
        let p = pod(
            json!({"metadata": {"name": "h"}, "spec": {"hostNetwork": true, "containers": []}}),
        );
        assert!(dns_config(&p, &cfg()).is_none());
        let s = sandbox_config(&p, 0, &cfg(), Path::new("/l"), "/kubepods/besteffort/podx");
        assert_eq!(s.hostname, "");
        let ns = s
            .linux
            .and_then(|l| l.security_context)
            .and_then(|s| s.namespace_options)
            .unwrap_or_default();
        assert_eq!(ns.network, api::NamespaceMode::Node as i32);
    }

    #[test]
    fn container_config_expands_and_labels() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "img",
                "command": ["sh", "-c"], "args": ["echo $(GREETING) $$(X)"],
                "workingDir": "/w",
                "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": false,
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}]}
        }));
        let c = p
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default();
        let cc = container_config(
            &p,
            &c,
            ContainerParams {
                attempt: 2,
                image: "img",
                env: vec![("GREETING".into(), "hi".into())],
                resources: Default::default(),
                mounts: Vec::new(),
            },
        );
        assert_eq!(cc.command, vec!["sh", "-c"]);
        assert_eq!(cc.args, vec!["echo hi $(X)"]);
        assert_eq!(cc.working_dir, "/w");
        assert_eq!(cc.log_path, "c/2.log");
        assert_eq!(
            cc.labels.get(LABEL_CONTAINER_NAME).map(String::as_str),
            Some("c")
        );
        assert_eq!(
            cc.annotations.get(ANNOTATION_CONTAINER_HASH),
            Some(&container_hash(&c))
        );
        let sc = cc
            .linux
            .and_then(|l| l.security_context)
            .unwrap_or_default();
        assert_eq!(sc.run_as_user.map(|u| u.value), Some(1000));
        assert!(sc.no_new_privs);
        assert!(!sc.masked_paths.is_empty());
        assert_eq!(
            sc.capabilities.map(|c| c.drop_capabilities),
            Some(vec!["ALL".to_owned()])
        );
    }
}
