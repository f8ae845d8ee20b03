//! `rkube killall`: what k3s' `k3s-killall.sh` does for a node. Stopping an agent leaves its
//! pods running on purpose (a restarted agent adopts them); this stops them for good and
//! removes what the agent put on the node: every pod sandbox (containers stopped, CNI
//! network torn down) through the agent's own containerd, then kube-proxy's nftables table,
//! the Service CIDR's sink device, the pod bridge and the routes to other nodes.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use kubelet::{Runtime, RuntimeEndpoint};
use tracing::warn;

#[derive(clap::Args)]
pub struct Args {
    /// The agent's data directory (as given to `rkube server` or `rkube agent`).
    #[arg(long, env = "RKUBE_DATA_DIR", default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
}

/// Deletes a network device if it exists.
fn delete_link(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "del", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let endpoint = RuntimeEndpoint::from_flags(None, &args.data_dir)?;
        let runtime = Runtime::start(endpoint, std::time::Duration::from_secs(30))
            .await
            .context("starting the agent's containerd")?;
        let cri = runtime.client().clone();
        let sandboxes = cri.list_pod_sandbox(None).await?;
        for s in &sandboxes {
            let name = s
                .metadata
                .as_ref()
                .map(|m| format!("{}/{}", m.namespace, m.name))
                .unwrap_or_default();
            // Stop first: it stops the containers and releases the pod's network.
            if let Err(e) = cri.stop_pod_sandbox(&s.id).await {
                warn!(pod = %name, error = %e, "stopping a pod sandbox");
            }
            if let Err(e) = cri.remove_pod_sandbox(&s.id).await {
                warn!(pod = %name, error = %e, "removing a pod sandbox");
            }
            println!("pod {name} stopped and removed");
        }
        runtime.shutdown().await;
        // The pods' volumes (tmpfs token and secret volumes, subPath binds), as
        // k3s-killall.sh unmounts the kubelet's pods directory.
        let mounts = kubelet::volumes::unmount_all(&kubelet::AgentDirs::new(&args.data_dir))
            .context("unmounting the pods' volumes")?;
        if mounts > 0 {
            println!("{mounts} volume mount(s) removed");
        }
        proxy::cleanup(&proxy::ProxyConfig::new(""))
            .await
            .context("removing kube-proxy's table")?;
        println!("kube-proxy's nftables table removed");
        let routes = net::hostgw::HostGw {
            node_name: String::new(),
            netns: None,
        };
        routes
            .apply(&net::hostgw::Routes::new())
            .context("removing the routes to other nodes")?;
        for link in [net::service_route::SINK, "cni0"] {
            if delete_link(link) {
                println!("device {link} removed");
            }
        }
        println!("{} pod(s) stopped; the node is clean", sandboxes.len());
        Ok(())
    })
}
