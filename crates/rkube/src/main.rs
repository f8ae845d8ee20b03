//! `rkube`: Kubernetes in one binary. Each subcommand wires the component crates together.

mod agent;
mod client;
mod cluster_dns;
mod config_file;
mod controller_manager;
mod crictl;
mod datastore;
mod deploy;
mod etcd;
mod image;
mod join;
mod killall;
mod loadbalancer;
mod nfs_mount;
mod node_lifecycle;
mod scheduler;
mod server;
mod snapshots;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `0.1.0 (commit 1a2b3c4d5e6f, Kubernetes v1.33.0)`: what `--version` and `version` print.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RKUBE_GIT_COMMIT"),
    ", Kubernetes v1.33.0)"
);

#[derive(Parser)]
#[command(
    name = "rkube",
    version = VERSION,
    about = "Kubernetes in one binary",
    // A flag given again (the config file's, then the command line's) takes the last value.
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server, controllers, scheduler) and, unless
    /// --disable-agent, a node agent: a one-node cluster.
    // Boxed: the server's flags are most of the enum's size.
    Server(Box<server::ServerArgs>),
    /// Run the controllers (kube-controller-manager) against a cluster.
    ControllerManager(controller_manager::Args),
    /// Run the scheduler (kube-scheduler) against a cluster.
    Scheduler(scheduler::Args),
    /// Run a node agent (kubelet + containerd) that joins a cluster.
    Agent(agent::AgentArgs),
    /// Build container images from host files (for air-gapped nodes and local registries).
    Image {
        #[command(subcommand)]
        command: image::Command,
    },
    /// Inspect the cluster's state store.
    Datastore {
        #[command(subcommand)]
        command: datastore::Command,
    },
    /// Snapshots of this server's managed etcd (`--cluster-init`), as `k3s etcd-snapshot`:
    /// save, ls, delete, prune. Restore with `rkube server --cluster-reset
    /// --cluster-reset-restore-path FILE`.
    EtcdSnapshot {
        #[command(subcommand)]
        command: etcd::snapshot::Command,
    },
    /// Stop every pod of this node's agent and remove what the agent set up on the node
    /// (nftables table, devices, routes), as k3s-killall.sh does. The agent must be stopped.
    Killall(killall::Args),
    /// The node's containers, pods and images as its runtime (CRI) sees them, printed as
    /// crictl prints them: ps, pods, images, logs, inspect, exec, rmi.
    Crictl(crictl::Args),
    /// containerd's `ctr` on the node agent's containerd, in the CRI's k8s.io namespace.
    Ctr(crictl::CtrArgs),
    /// Mount an NFS export through rkube's userspace NFSv3 client (FUSE): the kubelet's
    /// mount helper where the kernel has no NFS. Serves the mount until it is unmounted.
    NfsMount(nfs_mount::Args),
    /// Manage join tokens (bootstrap tokens with the CA's hash) for `rkube agent --token`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a join token and print it.
    Create {
        /// Kubeconfig of a user allowed to create Secrets in kube-system.
        #[arg(
            long,
            env = "KUBECONFIG",
            default_value = "/var/lib/rkube/server/kubeconfig.yaml"
        )]
        kubeconfig: PathBuf,
        /// How long the token may be used to join (hours).
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
}

/// Where a server keeps its state, and which store holds the cluster's objects.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// Directory for the server's state.
    #[arg(long, env = "RKUBE_DATA_DIR", default_value = "/var/lib/rkube/server")]
    pub data_dir: PathBuf,
    /// `sqlite` (default: <data-dir>/db/state.db), `sqlite:///path.db`, or etcd client URLs
    /// `http://host:2379[,http://...][?prefix=/name]`.
    #[arg(long, env = "RKUBE_DATASTORE_ENDPOINT")]
    pub datastore_endpoint: Option<String>,
    /// The CA of an etcd reached over `https://` (k3s' flag; kube-apiserver's `--etcd-cafile`).
    #[arg(long, env = "RKUBE_DATASTORE_CAFILE")]
    pub datastore_cafile: Option<PathBuf>,
    /// This server's client certificate to etcd (`--etcd-certfile`).
    #[arg(long, env = "RKUBE_DATASTORE_CERTFILE", requires = "datastore_keyfile")]
    pub datastore_certfile: Option<PathBuf>,
    /// The key of `--datastore-certfile` (`--etcd-keyfile`).
    #[arg(long, env = "RKUBE_DATASTORE_KEYFILE", requires = "datastore_certfile")]
    pub datastore_keyfile: Option<PathBuf>,
}

impl StoreArgs {
    /// The datastore `endpoint` names, with the etcd TLS files these arguments give.
    pub fn datastore(&self, endpoint: Option<&str>) -> anyhow::Result<store::DatastoreConfig> {
        let mut config = store::DatastoreConfig::parse(endpoint, &self.data_dir)?;
        let files = [
            &self.datastore_cafile,
            &self.datastore_certfile,
            &self.datastore_keyfile,
        ];
        if let store::DatastoreConfig::Etcd(etcd) = &mut config
            && files.iter().any(|f| f.is_some())
        {
            etcd.tls = Some(store::EtcdTls {
                ca_file: self.datastore_cafile.clone(),
                cert_file: self.datastore_certfile.clone(),
                key_file: self.datastore_keyfile.clone(),
            });
        }
        Ok(config)
    }
}

/// mimalloc, not glibc's malloc: the API server allocates per request from many threads,
/// where glibc's arenas cost half its create throughput (`cargo bench -p rkube-apiserver`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let default_config = std::env::var_os("RKUBE_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(config_file::DEFAULT_PATH));
    let args = match config_file::expand(std::env::args_os().collect(), Some(&default_config)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        Command::Server(args) => server::run(*args),
        Command::ControllerManager(args) => controller_manager::run(args),
        Command::Scheduler(args) => scheduler::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Image { command } => image::run(command),
        Command::Datastore { command } => datastore::run(command),
        Command::EtcdSnapshot { command } => etcd::snapshot::run(command),
        Command::Killall(args) => killall::run(args),
        Command::Crictl(args) => crictl::run(args),
        Command::Ctr(args) => crictl::run_ctr(args),
        Command::NfsMount(args) => nfs_mount::run(args),
        Command::Token {
            command:
                TokenCommand::Create {
                    kubeconfig,
                    ttl_hours,
                },
        } => token_create(&kubeconfig, ttl_hours),
        Command::Version => {
            println!("rkube {VERSION}");
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rkube: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn token_create(kubeconfig: &std::path::Path, ttl_hours: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let rt = tokio::runtime::Runtime::new()?;
    let token = rt.block_on(async {
        let config = client::config(kubeconfig).await?;
        join::create_token(config, std::time::Duration::from_secs(ttl_hours * 3600)).await
    })?;
    let _ = writeln!(std::io::stdout(), "{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_the_kubernetes_version_served() {
        let served = apiserver::discovery::GIT_VERSION.trim_end_matches("+rkube");
        assert!(
            VERSION.ends_with(&format!("Kubernetes {served})")),
            "{VERSION}"
        );
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
    }

    #[test]
    fn the_command_line_overrides_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.yaml");
        std::fs::write(
            &f,
            "data-dir: /srv/rkube\nhttps-listen-port: 7443\ndisable-agent: true\n",
        )
        .unwrap();
        let parse = |extra: &[&str]| {
            let mut args: Vec<std::ffi::OsString> =
                ["rkube", "server"].iter().map(Into::into).collect();
            args.extend(extra.iter().map(Into::into));
            let args = config_file::expand(args, Some(&f)).unwrap();
            match Cli::try_parse_from(args).unwrap().command {
                Command::Server(a) => (a.store.data_dir, a.https_listen_port, a.disable_agent),
                _ => unreachable!(),
            }
        };
        assert_eq!(parse(&[]), (PathBuf::from("/srv/rkube"), 7443, true));
        assert_eq!(
            parse(&["--https-listen-port", "8443", "--data-dir=/other"]),
            (PathBuf::from("/other"), 8443, true)
        );
        // An unknown key is an unknown flag.
        std::fs::write(&f, "no-such-flag: 1\n").unwrap();
        let args = config_file::expand(
            ["rkube", "server"].iter().map(Into::into).collect(),
            Some(&f),
        )
        .unwrap();
        assert!(Cli::try_parse_from(args).is_err());
    }
}
