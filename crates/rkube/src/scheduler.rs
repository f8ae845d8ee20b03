//! `rkube scheduler`: the scheduler on its own, against any cluster.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Kubeconfig of the cluster to schedule for.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let client = ::scheduler::client(crate::client::config(&args.kubeconfig).await?)?;
        tokio::select! {
            _ = ::scheduler::run(client, crate::client::identity()) => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
