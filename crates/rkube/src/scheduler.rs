//! `rkube scheduler`: the scheduler on its own, against any cluster.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Kubeconfig of the cluster to schedule for.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// A KubeSchedulerConfiguration file (profiles, plugins, weights).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let cfg = match &args.config {
            Some(path) => ::scheduler::config::Configuration::parse(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )?,
            None => Default::default(),
        };
        let client = ::scheduler::client(crate::client::config(&args.kubeconfig).await?)?;
        tokio::select! {
            r = ::scheduler::run_with_config(client, crate::client::identity(), cfg) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
