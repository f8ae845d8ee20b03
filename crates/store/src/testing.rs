//! Test and benchmark helpers: a real etcd (Debian's `etcd-server`) on loopback ports, in a
//! temporary directory, killed when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, EtcdConfig, EtcdStore, Result};

pub struct EtcdProcess {
    child: Option<Child>,
    pub client_url: String,
    peer_url: String,
    dir: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    let l =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::backend("finding a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::backend("finding a free port", e))
}

impl EtcdProcess {
    /// Starts etcd listening only on 127.0.0.1 and waits until it answers.
    pub async fn start() -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| Error::backend("creating etcd dir", e))?;
        let (client, peer) = (free_port()?, free_port()?);
        let mut etcd = EtcdProcess {
            child: None,
            client_url: format!("http://127.0.0.1:{client}"),
            peer_url: format!("http://127.0.0.1:{peer}"),
            dir,
        };
        etcd.restart().await?;
        Ok(etcd)
    }

    /// Kills etcd (SIGKILL): clients now see an unreachable etcd.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data, and waits until it answers.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        let bin = std::env::var("RKUBE_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
        let (client_url, peer_url) = (&self.client_url, &self.peer_url);
        let child = Command::new(&bin)
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .arg("--log-level=error")
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                Error::Unavailable(format!(
                    "cannot start {bin} (install Debian's etcd-server): {e}"
                ))
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.client_url.trim_start_matches("http://")).is_err() {
            if Instant::now() > deadline {
                return Err(Error::Unavailable("etcd did not start within 20s".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A store client for this etcd with keys under `prefix`.
    pub async fn store(&self, prefix: &str) -> Result<EtcdStore> {
        let mut cfg = EtcdConfig::new(vec![self.client_url.clone()]);
        cfg.prefix = prefix.to_string();
        EtcdStore::connect(cfg).await
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A process's resident memory in KiB (from `/proc`), 0 if it cannot be read: what the
/// benchmarks report.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
