//! `rkube server`: the control plane in one process.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use store::{CompactionPolicy, Compactor, DatastoreConfig};

use crate::StoreArgs;

#[derive(clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Port of the HTTPS API.
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,
    /// Address the API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Address in-cluster clients reach the API at (the `kubernetes` Service's endpoint);
    /// default: --node-ip, else the bind address, else this machine's primary address.
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Where to write the admin kubeconfig (default: <data-dir>/kubeconfig.yaml).
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// How long Events are kept, in seconds.
    #[arg(long, default_value_t = 3600)]
    event_ttl_seconds: u64,
    /// Encrypt resources at rest as this `EncryptionConfiguration` says (kube-apiserver's
    /// flag).
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Encrypt Secrets at rest with an aescbc key generated under the data dir (k3s's flag);
    /// --encryption-provider-config wins when both are given.
    #[arg(long)]
    secrets_encryption: bool,
    /// Audit requests as this audit `Policy` says.
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// Where audit events are written, one JSON object a line (`-`: stdout).
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// Do not run the controllers in this process.
    #[arg(long)]
    disable_controller_manager: bool,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run a node agent (kubelet + containerd) in this process.
    #[arg(long)]
    disable_agent: bool,
    #[command(flatten)]
    node: crate::agent::NodeArgs,
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let datastore = DatastoreConfig::parse(
            args.store.datastore_endpoint.as_deref(),
            &args.store.data_dir,
        )?;
        let kubeconfig = args
            .write_kubeconfig
            .unwrap_or_else(|| args.store.data_dir.join("kubeconfig.yaml"));
        let encryption_config = match (args.encryption_provider_config, args.secrets_encryption) {
            (Some(path), _) => Some(path),
            (None, true) => Some(apiserver::encryption::ensure_generated(&args.store.data_dir)?),
            (None, false) => None,
        };
        let server = apiserver::Server::start(apiserver::Config {
            data_dir: args.store.data_dir.clone(),
            bind: SocketAddr::new(args.bind_address, args.https_listen_port),
            datastore: datastore.clone(),
            kubeconfig,
            event_ttl: std::time::Duration::from_secs(args.event_ttl_seconds),
            advertise_address: Some(
                args.advertise_address
                    .or(args.node.node_ip)
                    .or_else(|| (!args.bind_address.is_unspecified()).then_some(args.bind_address))
                    .unwrap_or_else(kubelet::machine::node_ip),
            ),
            encryption_config,
            audit_policy: args.audit_policy_file,
            audit_log: args.audit_log_path,
        })
        .await?;
        // Old history is compacted for every backend (Kubernetes' API server does the same
        // for etcd); a second store client shares the backend.
        let compaction_store: Arc<dyn store::Store> = match &datastore {
            DatastoreConfig::Etcd(_) => store::open(&datastore).await?,
            DatastoreConfig::Sqlite { .. } => server.store(),
        };
        let _compactor = Compactor::new(compaction_store, CompactionPolicy::default()).spawn();
        // The controllers talk to this server through the API, as they would from elsewhere.
        if !args.disable_controller_manager {
            let config = crate::client::config(&server.kubeconfig).await?;
            let options = controllers::Options::from_config(&config);
            let client = controllers::client(config)?;
            tokio::spawn(controllers::run_with(client, crate::client::identity(), options));
        }
        if !args.disable_scheduler {
            let client = ::scheduler::client(crate::client::config(&server.kubeconfig).await?)?;
            tokio::spawn(::scheduler::run(client, crate::client::identity()));
        }
        // A server must outlive whoever reads its banner: a closed stdout is not an error.
        let _ = writeln!(
            std::io::stdout(),
            "rkube API server listening on https://{}\nadmin kubeconfig: {}\n  export KUBECONFIG={}",
            server.addr,
            server.kubeconfig.display(),
            server.kubeconfig.display()
        );
        // The node agent, unless disabled, in the background: containerd may take a while.
        let (stop_agent, stopped) = tokio::sync::oneshot::channel();
        let agent = (!args.disable_agent).then(|| {
            tokio::spawn(crate::agent::in_process(
                server.kubeconfig.clone(),
                args.store.data_dir.clone(),
                args.node.clone(),
                stopped,
            ))
        });
        let result = tokio::select! {
            r = server.wait() => r,
            _ = tokio::signal::ctrl_c() => {
                let _ = writeln!(std::io::stdout(), "shutting down");
                Ok(())
            }
        };
        let _ = stop_agent.send(());
        if let Some(a) = agent {
            let _ = a.await;
        }
        result
    })
}
