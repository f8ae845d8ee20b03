//! `rkube agent`: the node agent — the kubelet and the containerd it supervises — joining a
//! cluster; and the same agent inside `rkube server`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use kubelet::{Kubelet, KubeletConfig, Runtime, RuntimeEndpoint};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How long the container runtime may take to answer CRI at start.
const RUNTIME_WAIT: Duration = Duration::from_secs(30);

/// The ingress controller's kubeconfig (`system:rkube-ingress`), under the data dir: a server
/// writes its own agent's; a joined agent asks for it as the node.
pub const INGRESS_KUBECONFIG: &str = "agent/ingress.kubeconfig";

/// The agent's own flags, shared by `rkube agent` and `rkube server`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NodeArgs {
    /// The Node's name (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The node's InternalIP (default: the address of the default route's interface).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// Use this CRI runtime (unix:///path.sock) instead of starting containerd.
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
    /// Extra Node labels, key=value (repeatable).
    #[arg(long = "node-label", value_parser = parse_label)]
    pub node_labels: Vec<(String, String)>,
    /// The kubelet's HTTPS port (logs); 0 picks a free one, advertised in the Node's status.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Let image pulls reach registries off this machine. Without it the node pulls only from
    /// loopback registries (e.g. 127.0.0.1:5000) and runs images imported from
    /// <data-dir>/agent/images.
    #[arg(long)]
    pub allow_remote_image_pulls: bool,
    /// Resolver(s) cluster DNS forwards names outside the cluster to (ip:port, repeatable).
    /// Without one, such names are refused: nothing leaves the machine unless asked.
    #[arg(long = "cluster-dns-upstream")]
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// Do not run kube-proxy on this node.
    #[arg(long)]
    pub disable_kube_proxy: bool,
    /// Do not run the ingress controller on this node.
    #[arg(long)]
    pub disable_ingress: bool,
    /// The ingress controller's plain HTTP port, on every address of the node; 0: none.
    #[arg(long, default_value_t = 80)]
    pub ingress_http_port: u16,
    /// The ingress controller's HTTPS port, on every address of the node; 0: none.
    #[arg(long, default_value_t = 443)]
    pub ingress_https_port: u16,
    /// Static pod manifests (a directory of one-pod YAML/JSON files, or one file) the kubelet
    /// runs without the API server (default: <data-dir>/agent/pod-manifests).
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// Hard eviction thresholds, SIGNAL<QUANTITY|PERCENT% comma-separated (signals
    /// memory.available, nodefs.available, nodefs.inodesFree, imagefs.available,
    /// pid.available). Default, as k3s: imagefs.available<5%,nodefs.available<5%.
    #[arg(long)]
    pub eviction_hard: Option<String>,
    /// Soft eviction thresholds (same form); each needs --eviction-soft-grace-period.
    #[arg(long)]
    pub eviction_soft: Option<String>,
    /// How long each soft threshold must hold before pods are evicted: SIGNAL=DURATION,...
    #[arg(long)]
    pub eviction_soft_grace_period: Option<String>,
    /// How long a pressure condition stays True after its threshold was last met (Go
    /// duration; default 5m0s).
    #[arg(long)]
    pub eviction_pressure_transition_period: Option<String>,
    /// The longest grace period (seconds) a pod evicted for a soft threshold gets; 0: its own.
    #[arg(long)]
    pub eviction_max_pod_grace_period: Option<i64>,
    /// Once a threshold is met, how much more than it must be available before it is clear:
    /// SIGNAL=QUANTITY|PERCENT%,... (default: none).
    #[arg(long)]
    pub eviction_minimum_reclaim: Option<String>,
    /// How often the static pod manifests are read again (Go duration; default 20s).
    #[arg(long)]
    pub file_check_frequency: Option<String>,
    /// The image filesystem usage (percent) from which unused images are garbage collected,
    /// looked at every 5 minutes; 100 turns image garbage collection off (default 85).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_high_threshold: Option<u8>,
    /// The usage (percent) image garbage collection frees down to; not above
    /// --image-gc-high-threshold (default 80).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low_threshold: Option<u8>,
    /// Unused images not used for this long are garbage collected whatever the disk usage
    /// (Go duration; default 0s: never).
    #[arg(long)]
    pub image_maximum_gc_age: Option<String>,
    /// How old an exited container must be before it is garbage collected (Go duration;
    /// default 0s).
    #[arg(long)]
    pub minimum_container_ttl_duration: Option<String>,
    /// Exited instances kept of each container of a pod; negative: all (default 1).
    #[arg(long, allow_hyphen_values = true)]
    pub maximum_dead_containers_per_container: Option<i32>,
    /// Exited containers kept on the node in all; negative: no limit (default -1).
    #[arg(long, allow_hyphen_values = true)]
    pub maximum_dead_containers: Option<i32>,
}

/// The container garbage collection flags over the kubelet's policy.
fn container_gc_flags(
    p: &mut kubelet::container_gc::ContainerGcPolicy,
    node: &NodeArgs,
) -> anyhow::Result<()> {
    if let Some(d) = &node.minimum_container_ttl_duration {
        p.min_age = common::duration::parse_go(d)
            .with_context(|| format!("--minimum-container-ttl-duration {d:?}"))?;
    }
    if let Some(n) = node.maximum_dead_containers_per_container {
        p.max_per_pod_container = n;
    }
    if let Some(n) = node.maximum_dead_containers {
        p.max_containers = n;
    }
    Ok(())
}

/// The `--image-gc-*` flags over the kubelet's image GC policy.
fn image_gc_flags(p: &mut kubelet::image_gc::ImageGcPolicy, node: &NodeArgs) -> anyhow::Result<()> {
    if let Some(high) = node.image_gc_high_threshold {
        p.high_threshold_percent = high;
    }
    if let Some(low) = node.image_gc_low_threshold {
        p.low_threshold_percent = low;
    }
    if let Some(a) = &node.image_maximum_gc_age {
        p.max_age = common::duration::parse_go(a)
            .with_context(|| format!("--image-maximum-gc-age {a:?}"))?;
    }
    p.validate()
        .context("--image-gc-high-threshold / --image-gc-low-threshold")
}

/// The `--eviction-*` flags over the kubelet's eviction defaults.
fn eviction_flags(
    e: &mut kubelet::eviction::EvictionConfig,
    node: &NodeArgs,
) -> anyhow::Result<()> {
    use kubelet::eviction::thresholds::{
        apply_grace_periods, apply_minimum_reclaim, parse_thresholds,
    };
    if let Some(hard) = &node.eviction_hard {
        e.hard = parse_thresholds(hard).context("--eviction-hard")?;
    }
    if let Some(soft) = &node.eviction_soft {
        e.soft = parse_thresholds(soft).context("--eviction-soft")?;
    }
    let grace = node
        .eviction_soft_grace_period
        .as_deref()
        .unwrap_or_default();
    apply_grace_periods(&mut e.soft, grace).context("--eviction-soft-grace-period")?;
    if let Some(r) = &node.eviction_minimum_reclaim {
        apply_minimum_reclaim(&mut e.hard, r).context("--eviction-minimum-reclaim")?;
        apply_minimum_reclaim(&mut e.soft, r).context("--eviction-minimum-reclaim")?;
    }
    if let Some(p) = &node.eviction_pressure_transition_period {
        e.pressure_transition_period = common::duration::parse_go(p)
            .with_context(|| format!("--eviction-pressure-transition-period {p:?}"))?;
    }
    if let Some(g) = node.eviction_max_pod_grace_period {
        e.max_pod_grace_period = g;
    }
    Ok(())
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The API server's URL (default: the kubeconfig's). Given, the node's components reach
    /// it through a load balancer on 127.0.0.1:--lb-server-port that also knows every other
    /// server of the `kubernetes` endpoints and fails over between them.
    #[arg(long, env = "RKUBE_URL")]
    server: Option<String>,
    /// The port of the agent's API server load balancer on 127.0.0.1 (with --server).
    #[arg(long, env = "RKUBE_LB_SERVER_PORT", default_value_t = crate::loadbalancer::DEFAULT_PORT)]
    lb_server_port: u16,
    /// Kubeconfig to reach the API server with (instead of --token).
    #[arg(long, env = "KUBECONFIG", required_unless_present = "token")]
    kubeconfig: Option<PathBuf>,
    /// A join token from `rkube token create` (with --server): the node gets its own client
    /// certificate, kept in <data-dir>/agent/kubelet.kubeconfig.
    #[arg(long, env = "RKUBE_TOKEN", requires = "server")]
    token: Option<String>,
    /// Directory for the agent's state (containerd, CNI, pod logs under <data-dir>/agent).
    #[arg(long, env = "RKUBE_DATA_DIR", default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
    // Boxed: the node's flags are most of `rkube`'s command enum's largest variant.
    #[command(flatten)]
    node: Box<NodeArgs>,
}

/// A running agent: its runtime, the kubelet task, kube-proxy, the ingress controller, the
/// node's cluster DNS and its routes to the other nodes' pods.
pub struct Agent {
    runtime: Runtime,
    kubelet: JoinHandle<anyhow::Result<()>>,
    services: Vec<JoinHandle<()>>,
}

/// Runs a node service, logging why it stopped (it only does on an error).
fn spawn_service(
    name: &'static str,
    f: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = f.await {
            error!(service = name, error = %format!("{e:#}"), "node service stopped");
        }
    })
}

/// The ingress controller's settings from the agent's flags, or `None` when it is off.
fn ingress_config(node: &NodeArgs, node_name: &str) -> Option<ingress::IngressConfig> {
    let (http, https) = (node.ingress_http_port, node.ingress_https_port);
    if node.disable_ingress || (http == 0 && https == 0) {
        return None;
    }
    let node_ip = node.node_ip.unwrap_or_else(kubelet::machine::node_ip);
    // Every address of the node's family, as k3s' Traefik is reached on any node address.
    let any = if node_ip.is_ipv6() {
        IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED)
    };
    let mut cfg = ingress::IngressConfig::new(node_name, vec![node_ip]);
    cfg.http_addr = (http != 0).then_some(SocketAddr::new(any, http));
    cfg.https_addr = (https != 0).then_some(SocketAddr::new(any, https));
    // The IngressClass is the server's packaged `ingress` manifest: this identity may not
    // create classes, and `--disable ingress` on the server removes it.
    cfg.manage_class = false;
    Some(cfg)
}

/// The ingress controller as `system:rkube-ingress` (the kubeconfig at `path`), talking to
/// the server the node's `node_config` names. A missing kubeconfig is asked for as the node
/// when `request` (a joined agent), else the node runs without an ingress controller.
async fn run_ingress(
    node_config: kube::Config,
    path: PathBuf,
    request: bool,
    cfg: ingress::IngressConfig,
) -> anyhow::Result<()> {
    if !path.exists() {
        if !request {
            warn!(
                path = %path.display(),
                "no ingress controller on this node: its kubeconfig is missing (`rkube server` \
                 writes it for its own agent, `rkube agent --token` asks for it)"
            );
            return Ok(());
        }
        crate::join::ingress_kubeconfig(node_config.clone(), &path)
            .await
            .context("asking for the ingress controller's certificate")?;
    }
    let mut config = crate::client::config(&path).await?;
    // The kubelet's server (`rkube agent --server` overrides the kubeconfigs' URL).
    config.cluster_url = node_config.cluster_url;
    let client = client_go::client_as(config, "rkube-ingress")?;
    ingress::run(client, cfg).await
}

impl Agent {
    /// Starts the container runtime (our own containerd unless an endpoint is given), then the
    /// kubelet against the cluster `config` points at. `request_ingress_cert`: ask for the
    /// ingress controller's certificate as the node when the data dir has none.
    pub async fn start(
        config: kube::Config,
        data_dir: &Path,
        node: &NodeArgs,
        request_ingress_cert: bool,
    ) -> anyhow::Result<Agent> {
        let endpoint =
            RuntimeEndpoint::from_flags(node.container_runtime_endpoint.as_deref(), data_dir)?;
        let runtime = Runtime::start(endpoint, RUNTIME_WAIT)
            .await
            .context("starting the container runtime")?;
        let mut cfg = KubeletConfig::new(node.node_name.as_deref(), data_dir);
        cfg.node_ip = node.node_ip;
        cfg.kubelet_port = i32::from(node.kubelet_port);
        cfg.node_labels = node.node_labels.clone();
        cfg.remote_image_pulls = node.allow_remote_image_pulls;
        if let Some(p) = &node.pod_manifest_path {
            cfg.pod_manifest_path = p.clone();
        }
        if let Some(f) = &node.file_check_frequency {
            cfg.file_check_frequency = common::duration::parse_go(f)
                .with_context(|| format!("--file-check-frequency {f:?}"))?;
        }
        eviction_flags(&mut cfg.eviction, node)?;
        image_gc_flags(&mut cfg.image_gc, node)?;
        container_gc_flags(&mut cfg.container_gc, node)?;
        // The kubelet server accepts callers signed by the cluster CA (the API server's
        // kubelet-client certificate), the CA the kubeconfig trusts.
        cfg.client_ca = config.root_cert.clone().unwrap_or_default();
        // Its serving certificate comes from the cluster CA (a kubelet-serving CSR the
        // controllers approve), so API servers can verify the kubelet they talk to.
        cfg.server_tls_bootstrap = true;
        let node_config = config.clone();
        let client = kubelet::kubelet::client(config)?;
        let mut services = Vec::new();
        if let Some(ingress_cfg) = ingress_config(node, &cfg.node_name) {
            services.push(spawn_service(
                "ingress",
                run_ingress(
                    node_config,
                    data_dir.join(INGRESS_KUBECONFIG),
                    request_ingress_cert,
                    ingress_cfg,
                ),
            ));
        }
        if !node.disable_kube_proxy {
            let mut proxy_cfg = proxy::ProxyConfig::new(&cfg.node_name);
            proxy_cfg.netns = cfg.pod_netns.clone();
            proxy_cfg.service_cidr = cfg.service_cidr.clone();
            services.push(spawn_service(
                "kube-proxy",
                proxy::run(client.clone(), proxy_cfg),
            ));
        }
        let mut dns_cfg = dns::DnsConfig::new();
        dns_cfg.cluster_domain = cfg.cluster_domain.clone();
        dns_cfg.upstream = node.dns_upstream.clone();
        let cluster_dns = crate::cluster_dns::ClusterDns {
            node_name: cfg.node_name.clone(),
            netns: cfg.pod_netns.clone(),
            dns: dns_cfg,
        };
        services.push(spawn_service(
            "cluster-dns",
            cluster_dns.run(client.clone()),
        ));
        let host_gw = net::hostgw::HostGw {
            node_name: cfg.node_name.clone(),
            netns: cfg.pod_netns.clone(),
        };
        services.push(spawn_service("host-gw routes", host_gw.run(client.clone())));
        let kubelet = tokio::spawn(Kubelet::new(cfg, client, runtime.client().clone()).run());
        Ok(Agent {
            runtime,
            kubelet,
            services,
        })
    }

    /// Resolves when the kubelet stops (it only does on an error).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        match (&mut self.kubelet).await {
            Ok(r) => r,
            Err(e) => bail!("the kubelet task failed: {e}"),
        }
    }

    /// Stops the kubelet and the supervised containerd. Pods keep running.
    pub async fn shutdown(self) {
        self.kubelet.abort();
        for s in &self.services {
            s.abort();
        }
        self.runtime.shutdown().await;
    }
}

/// Why this machine cannot run an agent with its own containerd, if it cannot: `rkube server`
/// then runs without a node instead of failing.
pub fn preflight(node: &NodeArgs) -> Result<(), String> {
    if node.container_runtime_endpoint.is_some() {
        return Ok(());
    }
    if !kubelet::machine::is_root() {
        return Err("not running as root (containerd, cgroups and pod networks need it)".into());
    }
    let defaults = kubelet::ContainerdConfig::new("/");
    for (what, path) in [
        ("containerd", &defaults.containerd_bin),
        ("runc", &defaults.runc_bin),
        (
            "the CNI bridge plugin",
            &defaults.cni_bin_dir.join("bridge"),
        ),
    ] {
        if !path.exists() {
            return Err(format!(
                "{what} is not installed ({} is missing)",
                path.display()
            ));
        }
    }
    Ok(())
}

/// The agent inside `rkube server`, until `stop`. A machine that cannot run one (not root, no
/// containerd) gets a control plane without a node and a warning, not an error.
pub async fn in_process(
    kubeconfig: PathBuf,
    data_dir: PathBuf,
    node: NodeArgs,
    mut stop: oneshot::Receiver<()>,
) {
    const HINT: &str = "pass --disable-agent to run without one on purpose";
    if let Err(why) = preflight(&node) {
        warn!("running without a node agent: {why} ({HINT})");
        return;
    }
    let start = async {
        let config = crate::client::config(&kubeconfig).await?;
        // The server wrote the ingress controller's kubeconfig next to the node's.
        Agent::start(config, &data_dir, &node, false).await
    };
    let mut agent = tokio::select! {
        a = start => match a {
            Ok(a) => a,
            Err(e) => {
                warn!("running without a node agent: {e:#} ({HINT})");
                return;
            }
        },
        _ = &mut stop => return,
    };
    info!("node agent running");
    tokio::select! {
        r = agent.wait() => {
            if let Err(e) = r {
                error!(error = %format!("{e:#}"), "the node agent stopped");
            }
        }
        _ = &mut stop => {}
    }
    agent.shutdown().await;
}

pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        // A node that joined with a token asks for the ingress controller's identity itself;
        // with a given kubeconfig (maybe not a node's) it uses one left in the data dir.
        let request_ingress_cert = args.token.is_some();
        let kubeconfig = match (&args.token, &args.kubeconfig) {
            (Some(token), _) => {
                let token = crate::join::JoinToken::parse(token)?;
                let node = kubelet::config::KubeletConfig::new(
                    args.node.node_name.as_deref(),
                    &args.data_dir,
                )
                .node_name;
                let server = args.server.clone().unwrap_or_default();
                crate::join::node_kubeconfig(&server, &token, &node, &args.data_dir).await?
            }
            (None, Some(k)) => k.clone(),
            (None, None) => anyhow::bail!("--kubeconfig or --token is needed"),
        };
        let mut config = crate::client::config(&kubeconfig).await?;
        // Kept until the agent stops: its components talk to the cluster through it.
        let mut balancer = None;
        if let Some(server) = &args.server {
            let mut lb = crate::loadbalancer::LoadBalancer::start(
                server,
                &args.data_dir,
                args.lb_server_port,
            )
            .await
            .context("starting the API server load balancer")?;
            config.cluster_url = lb.url().parse().context("the load balancer's URL")?;
            lb.watch_servers(client_go::client_as(
                config.clone(),
                "rkube-agent-load-balancer",
            )?);
            balancer = Some(lb);
        }
        let mut agent =
            Agent::start(config, &args.data_dir, &args.node, request_ingress_cert).await?;
        info!("agent running");
        let result = tokio::select! {
            r = agent.wait() => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        };
        if let Err(e) = &result {
            error!(error = %format!("{e:#}"), "kubelet stopped");
        }
        agent.shutdown().await;
        drop(balancer);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        assert_eq!(
            parse_label("a=b").ok(),
            Some(("a".to_owned(), "b".to_owned()))
        );
        assert_eq!(
            parse_label("a=").ok(),
            Some(("a".to_owned(), String::new()))
        );
        assert!(parse_label("=b").is_err());
        assert!(parse_label("ab").is_err());
    }

    /// `rkube ARGS` read as the node's flags.
    fn node_args(args: &[&str]) -> Result<NodeArgs, String> {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            node: NodeArgs,
        }
        let all = std::iter::once("rkube").chain(args.iter().copied());
        <Flags as clap::Parser>::try_parse_from(all)
            .map(|f| f.node)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ingress_ports_and_switch() {
        let cfg = |args: &[&str]| {
            let mut all = vec!["--node-ip", "10.0.0.5"];
            all.extend(args);
            ingress_config(&node_args(&all).unwrap(), "n1")
        };
        let default = cfg(&[]).unwrap();
        assert_eq!(default.http_addr, Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!(default.https_addr, Some("0.0.0.0:443".parse().unwrap()));
        assert_eq!(default.addresses, vec![IpAddr::from([10, 0, 0, 5])]);
        assert_eq!(default.node_name, "n1");
        assert!(!default.manage_class);
        let plain = cfg(&["--ingress-http-port", "8080", "--ingress-https-port", "0"]).unwrap();
        assert_eq!(plain.http_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(plain.https_addr, None);
        assert!(cfg(&["--disable-ingress"]).is_none());
        assert!(cfg(&["--ingress-http-port", "0", "--ingress-https-port", "0"]).is_none());
    }

    #[test]
    fn eviction_flags_parse() {
        let mut e = kubelet::eviction::EvictionConfig::default();
        let node = NodeArgs {
            eviction_hard: Some("memory.available<200Mi".into()),
            eviction_soft: Some("nodefs.available<20%".into()),
            eviction_soft_grace_period: Some("nodefs.available=1m30s".into()),
            eviction_pressure_transition_period: Some("30s".into()),
            eviction_max_pod_grace_period: Some(5),
            eviction_minimum_reclaim: Some("memory.available=50Mi".into()),
            ..Default::default()
        };
        eviction_flags(&mut e, &node).unwrap();
        assert_eq!(e.hard.len(), 1);
        assert_eq!(e.soft[0].grace_period, Duration::from_secs(90));
        assert_eq!(e.pressure_transition_period, Duration::from_secs(30));
        assert_eq!(e.max_pod_grace_period, 5);
        assert_eq!(
            e.hard[0].min_reclaim,
            Some(kubelet::eviction::thresholds::Amount::Quantity(50 << 20))
        );
        let missing_grace = NodeArgs {
            eviction_soft: Some("nodefs.available<20%".into()),
            ..Default::default()
        };
        assert!(eviction_flags(&mut e, &missing_grace).is_err());
    }

    #[test]
    fn image_gc_flags_parse() {
        let policy = |args: &[&str]| {
            let mut p = kubelet::image_gc::ImageGcPolicy::default();
            image_gc_flags(&mut p, &node_args(args)?).map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>(p)
        };
        let p = policy(&[]).unwrap();
        assert_eq!(
            (p.high_threshold_percent, p.low_threshold_percent),
            (85, 80)
        );
        let p = policy(&[
            "--image-gc-high-threshold=95",
            "--image-gc-low-threshold=90",
        ])
        .unwrap();
        assert_eq!(
            (p.high_threshold_percent, p.low_threshold_percent),
            (95, 90)
        );
        assert!(policy(&["--image-gc-high-threshold=101"]).is_err());
        let p = policy(&["--image-maximum-gc-age=1h30m"]).unwrap();
        assert_eq!(p.max_age, Duration::from_secs(5400));
        assert!(policy(&["--image-maximum-gc-age=soon"]).is_err());
        assert_eq!(
            policy(&["--image-gc-high-threshold=70"]).unwrap_err(),
            "--image-gc-high-threshold / --image-gc-low-threshold: LowThresholdPercent 80 can \
             not be higher than HighThresholdPercent 70"
        );
    }

    #[test]
    fn container_gc_flags_parse() {
        let policy = |args: &[&str]| {
            let mut p = kubelet::container_gc::ContainerGcPolicy::default();
            container_gc_flags(&mut p, &node_args(args)?).map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>(p)
        };
        let p = policy(&[]).unwrap();
        assert_eq!(
            (p.min_age, p.max_per_pod_container, p.max_containers),
            (Duration::ZERO, 1, -1)
        );
        let p = policy(&[
            "--minimum-container-ttl-duration=1m",
            "--maximum-dead-containers-per-container=2",
            "--maximum-dead-containers=100",
        ])
        .unwrap();
        assert_eq!(
            (p.min_age, p.max_per_pod_container, p.max_containers),
            (Duration::from_secs(60), 2, 100)
        );
        assert_eq!(
            policy(&["--maximum-dead-containers-per-container=-1"])
                .unwrap()
                .max_per_pod_container,
            -1
        );
        assert!(policy(&["--minimum-container-ttl-duration=later"]).is_err());
    }
}
