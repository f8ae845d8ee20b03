//! `rkube datastore`: look at the state store the way the server opens it.

use anyhow::Context;
use clap::Subcommand;
use store::{DatastoreConfig, ListOptions};

use crate::StoreArgs;

#[derive(Subcommand)]
pub enum Command {
    /// Open the store (creating an empty one if there is none) and print its backend,
    /// revision and number of keys.
    Status {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys under a prefix, with their revisions.
    Keys {
        #[command(flatten)]
        store: StoreArgs,
        /// Key prefix, e.g. /registry/pods/
        #[arg(default_value = "/")]
        prefix: String,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        match cmd {
            Command::Status { store } => {
                let (config, s) = open(&store).await?;
                let revision = s.current_revision().await?;
                let keys = s.count("").await?;
                match config {
                    DatastoreConfig::Sqlite { path } => {
                        println!("backend:  sqlite {}", path.display())
                    }
                    DatastoreConfig::Etcd(c) => println!(
                        "backend:  etcd {} (prefix {:?})",
                        c.endpoints.join(","),
                        c.prefix
                    ),
                }
                println!("revision: {revision}");
                println!("keys:     {keys}");
            }
            Command::Keys { store, prefix } => {
                let (_, s) = open(&store).await?;
                let res = s.list(&prefix, ListOptions::default()).await?;
                for kv in res.kvs {
                    println!(
                        "{}\tcreated={} modified={} version={} bytes={}",
                        kv.key,
                        kv.create_revision,
                        kv.mod_revision,
                        kv.version,
                        kv.value.len()
                    );
                }
            }
        }
        Ok(())
    })
}

async fn open(
    args: &StoreArgs,
) -> anyhow::Result<(DatastoreConfig, std::sync::Arc<dyn store::Store>)> {
    let config = DatastoreConfig::parse(args.datastore_endpoint.as_deref(), &args.data_dir)?;
    let s = store::open(&config)
        .await
        .context("opening the datastore")?;
    Ok((config, s))
}
