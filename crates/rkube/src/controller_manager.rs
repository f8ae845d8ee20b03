//! `rkube controller-manager`: the controllers on their own, against any cluster.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Kubeconfig of the cluster to manage.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    #[command(flatten)]
    node_lifecycle: crate::node_lifecycle::NodeLifecycleArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let config = crate::client::config(&args.kubeconfig).await?;
        let mut options = controllers::Options::from_config(&config);
        options.node_lifecycle = args.node_lifecycle.options();
        let client = controllers::client(config)?;
        tokio::select! {
            _ = controllers::run_with(client, crate::client::identity(), options) => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
