//! Choosing a backend from the server's `--datastore-endpoint`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, EtcdConfig, EtcdStore, Result, SqliteOptions, SqliteStore, Store};

/// Where cluster state lives.
#[derive(Clone, Debug)]
pub enum DatastoreConfig {
    /// The embedded SQLite file.
    Sqlite { path: PathBuf },
    /// A real etcd cluster.
    Etcd(EtcdConfig),
}

impl DatastoreConfig {
    /// Parses a datastore endpoint:
    /// - none, `""` or `sqlite` — `<data_dir>/db/state.db`;
    /// - `sqlite:///abs/path.db` — that file;
    /// - `http://host:2379[,http://host2:2379...][?prefix=/name]` (or `https://`) — etcd, with
    ///   every key under the optional prefix.
    pub fn parse(endpoint: Option<&str>, data_dir: &Path) -> Result<Self> {
        let endpoint = endpoint.map(str::trim).unwrap_or("");
        if endpoint.is_empty() || endpoint == "sqlite" {
            return Ok(DatastoreConfig::Sqlite {
                path: data_dir.join("db").join("state.db"),
            });
        }
        if let Some(path) = endpoint.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(Error::InvalidArgument(
                    "sqlite:// endpoint needs a file path, e.g. sqlite:///var/lib/rkube/state.db"
                        .into(),
                ));
            }
            return Ok(DatastoreConfig::Sqlite {
                path: PathBuf::from(path),
            });
        }
        let (urls, prefix) = match endpoint.split_once('?') {
            Some((urls, query)) => {
                let prefix = query.strip_prefix("prefix=").ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unknown option {query:?} in datastore endpoint (only prefix=... is known)"
                    ))
                })?;
                (urls, prefix.to_string())
            }
            None => (endpoint, String::new()),
        };
        let endpoints: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(bad) = endpoints
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(Error::InvalidArgument(format!(
                "datastore endpoint {bad:?} is neither sqlite:// nor an etcd http(s):// URL"
            )));
        }
        let mut etcd = EtcdConfig::new(endpoints);
        etcd.prefix = prefix;
        Ok(DatastoreConfig::Etcd(etcd))
    }
}

/// Opens the configured backend.
pub async fn open(config: &DatastoreConfig) -> Result<Arc<dyn Store>> {
    match config {
        DatastoreConfig::Sqlite { path } => {
            let path = path.clone();
            // Opening validates the file, which may read all of it: keep it off the runtime.
            let store = tokio::task::spawn_blocking(move || {
                SqliteStore::open(path, SqliteOptions::default())
            })
            .await
            .map_err(|e| Error::backend("opening the database", e))??;
            Ok(Arc::new(store))
        }
        DatastoreConfig::Etcd(cfg) => Ok(Arc::new(EtcdStore::connect(cfg.clone()).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let dir = Path::new("/var/lib/rkube");
        match DatastoreConfig::parse(None, dir) {
            Ok(DatastoreConfig::Sqlite { path }) => {
                assert_eq!(path, Path::new("/var/lib/rkube/db/state.db"))
            }
            other => panic!("unexpected {other:?}"),
        }
        match DatastoreConfig::parse(Some("sqlite:///tmp/x.db"), dir) {
            Ok(DatastoreConfig::Sqlite { path }) => assert_eq!(path, Path::new("/tmp/x.db")),
            other => panic!("unexpected {other:?}"),
        }
        match DatastoreConfig::parse(
            Some("http://127.0.0.1:2379,http://127.0.0.1:2381?prefix=/a"),
            dir,
        ) {
            Ok(DatastoreConfig::Etcd(c)) => {
                assert_eq!(
                    c.endpoints,
                    ["http://127.0.0.1:2379", "http://127.0.0.1:2381"]
                );
                assert_eq!(c.prefix, "/a");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(DatastoreConfig::parse(Some("mysql://x"), dir).is_err());
        assert!(DatastoreConfig::parse(Some("http://x:1?foo=1"), dir).is_err());
    }
}
