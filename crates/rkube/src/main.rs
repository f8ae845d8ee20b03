//! `rkube`: Kubernetes in one binary. Each subcommand wires the component crates together.

mod agent;
mod client;
mod cluster_dns;
mod controller_manager;
mod datastore;
mod image;
mod join;
mod killall;
mod scheduler;
mod server;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rkube", version, about = "Kubernetes in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server, controllers, scheduler) and, unless
    /// --disable-agent, a node agent: a one-node cluster.
    Server(server::ServerArgs),
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
    /// Stop every pod of this node's agent and remove what the agent set up on the node
    /// (nftables table, devices, routes), as k3s-killall.sh does. The agent must be stopped.
    Killall(killall::Args),
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::ControllerManager(args) => controller_manager::run(args),
        Command::Scheduler(args) => scheduler::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Image { command } => image::run(command),
        Command::Datastore { command } => datastore::run(command),
        Command::Killall(args) => killall::run(args),
        Command::Token {
            command:
                TokenCommand::Create {
                    kubeconfig,
                    ttl_hours,
                },
        } => token_create(&kubeconfig, ttl_hours),
        Command::Version => {
            println!("rkube {}", env!("CARGO_PKG_VERSION"));
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
