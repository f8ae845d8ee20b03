//! `rkube datastore`: look at the state store the way the server opens it; snapshots of
//! the SQLite store (taken while the server runs) and their restore (server stopped).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use store::{DatastoreConfig, ListOptions, SnapshotInfo, sqlite_backup};

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
    /// Save a consistent snapshot of the SQLite store, while the server runs:
    /// `<snapshot-dir>/<name>-<unix seconds>.db`.
    Snapshot {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        dir: SnapshotDir,
        /// The snapshot's name (before its timestamp).
        #[arg(long, default_value = "on-demand")]
        name: String,
    },
    /// List the snapshots in the snapshot directory: revision, keys, size.
    Snapshots {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        dir: SnapshotDir,
    },
    /// Replace the SQLite store with a snapshot (the server must be stopped). The replaced
    /// database is kept beside it (`state.db.replaced-<unix seconds>`); revisions go on above
    /// both histories, so clients watching from before relist.
    Restore {
        #[command(flatten)]
        store: StoreArgs,
        /// The snapshot file.
        snapshot: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct SnapshotDir {
    /// Where snapshots are (default: <data-dir>/db/snapshots).
    #[arg(long)]
    snapshot_dir: Option<PathBuf>,
}

impl SnapshotDir {
    fn resolve(&self, store: &StoreArgs) -> PathBuf {
        self.snapshot_dir
            .clone()
            .unwrap_or_else(|| store.data_dir.join("db").join("snapshots"))
    }
}

/// The SQLite database the arguments name; etcd is refused (its own tools snapshot it).
fn sqlite_path(args: &StoreArgs) -> anyhow::Result<PathBuf> {
    match args.datastore(args.datastore_endpoint.as_deref())? {
        DatastoreConfig::Sqlite { path } => Ok(path),
        DatastoreConfig::Etcd(_) => bail!(
            "snapshots here are of the SQLite store; for an external etcd use etcd's own `etcdctl snapshot save` and `etcdutl snapshot restore`"
        ),
    }
}

fn describe(s: &SnapshotInfo) -> String {
    format!(
        "{}\trevision={} keys={} bytes={}",
        s.path.display(),
        s.revision,
        s.keys,
        s.bytes
    )
}

/// The snapshot files in `dir` (`*.db`), oldest first.
fn snapshots_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    Ok(files)
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Status { store } => block_on(status(store)),
        Command::Keys { store, prefix } => block_on(keys(store, prefix)),
        Command::Snapshot { store, dir, name } => {
            let db = sqlite_path(&store)?;
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let dest = dir.resolve(&store).join(format!("{name}-{secs}.db"));
            let info = sqlite_backup::snapshot(&db, &dest)
                .with_context(|| format!("snapshotting {}", db.display()))?;
            println!("{}", describe(&info));
            Ok(())
        }
        Command::Snapshots { store, dir } => {
            for path in snapshots_in(&dir.resolve(&store))? {
                match sqlite_backup::snapshot_info(&path) {
                    Ok(info) => println!("{}", describe(&info)),
                    Err(e) => println!("{}\tunreadable: {e}", path.display()),
                }
            }
            Ok(())
        }
        Command::Restore { store, snapshot } => {
            let db = sqlite_path(&store)?;
            let (revision, kept) = sqlite_backup::restore(&snapshot, &db)
                .with_context(|| format!("restoring {} to {}", snapshot.display(), db.display()))?;
            println!(
                "restored {} to {} at revision {revision}",
                snapshot.display(),
                db.display()
            );
            if let Some(kept) = kept {
                println!("the replaced database is kept as {}", kept.display());
            }
            Ok(())
        }
    }
}

fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()
        .context("starting the runtime")?
        .block_on(f)
}

async fn status(store: StoreArgs) -> anyhow::Result<()> {
    let (config, s) = open(&store).await?;
    let revision = s.current_revision().await?;
    let keys = s.count("").await?;
    match config {
        DatastoreConfig::Sqlite { path } => println!("backend:  sqlite {}", path.display()),
        DatastoreConfig::Etcd(c) => println!(
            "backend:  etcd {} (prefix {:?})",
            c.endpoints.join(","),
            c.prefix
        ),
    }
    println!("revision: {revision}");
    println!("keys:     {keys}");
    Ok(())
}

async fn keys(store: StoreArgs, prefix: String) -> anyhow::Result<()> {
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
    Ok(())
}

async fn open(
    args: &StoreArgs,
) -> anyhow::Result<(DatastoreConfig, std::sync::Arc<dyn store::Store>)> {
    let config = args.datastore(args.datastore_endpoint.as_deref())?;
    let s = store::open(&config)
        .await
        .context("opening the datastore")?;
    Ok((config, s))
}
