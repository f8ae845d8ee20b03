//! The managed etcd of an HA control plane, as k3s runs it: `rkube server --cluster-init`
//! makes this server the first member of a new etcd cluster; `rkube server --server URL
//! --token K10...` joins one (the cluster's CAs fetched with the server token, then added as
//! a learner, started, promoted once caught up). Either way the member lives under
//! `<data-dir>/db/etcd`, is supervised by this process, and this server's API server uses
//! it as its datastore.

pub mod bundle;
pub mod member;
pub mod migrate;
pub mod node_members;
pub mod reset;
pub mod snapshot;
pub mod supervise;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::join::JoinToken;
use supervise::{MemberConfig, Supervisor};

/// How this server takes part in the managed etcd.
pub enum Role {
    /// `--cluster-init`: the first member (or a restart of any member).
    Init,
    /// `--server URL --token K10...`: join the cluster of the server at `server`.
    Join { server: String, token: JoinToken },
}

/// A running member.
pub struct Managed {
    supervisor: Supervisor,
    /// The member's name and the URL it serves peers on (what identifies it to the others).
    pub name: String,
    pub peer_url: String,
    /// What this server's API server uses: the member's loopback client URL (TLS)...
    pub endpoint: String,
    /// ...with the etcd CA and this member's certificate as its client certificate.
    pub tls: store::EtcdTls,
}

impl Managed {
    pub async fn stop(self) {
        self.supervisor.stop().await;
    }
}

/// How long a learner may take to catch up before the join gives up.
const PROMOTE_WITHIN: Duration = Duration::from_secs(300);

pub fn etcd_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("db").join("etcd")
}

/// Starts (joining first if needed) this server's member and waits until it is a voting
/// member; `ip` is the address it serves peers and other servers on.
pub async fn start(data_dir: &Path, ip: IpAddr, role: Role) -> anyhow::Result<Managed> {
    let dir = etcd_dir(data_dir);
    // A SQLite server's data becomes the new cluster's (k3s' conversion); a joining server
    // would drop it for the other cluster's, so that is refused.
    let convert = migrate::pending(data_dir, &dir);
    if let (Role::Join { .. }, true) = (&role, convert) {
        return Err(supervise::sqlite_refused(
            data_dir,
            "a server joining another cluster cannot bring it along: start without --server to \
             keep it (with --cluster-init to convert it into a managed etcd), or move it aside \
             (and its -wal/-shm files) to join",
        ));
    }
    // A member exists once etcd has written its log (etcd's own test): a member directory
    // without one is what a start cut short left, and etcd would make a new cluster of it.
    let existing = has_wal(&dir);
    if !existing && let Role::Join { .. } = &role {
        remove_partial_member(&dir)?;
    }
    if let (Role::Join { server, token }, false) = (&role, existing) {
        bundle::fetch(server, token, data_dir)
            .await
            .with_context(|| format!("joining the cluster of {server}"))?;
    }
    let (pki, mut config) = prepare(data_dir, ip)?;
    if convert {
        migrate::begin(data_dir, &dir)?;
    }
    let name = config.name.clone();
    let supervisor = match (&role, existing) {
        (Role::Join { server, .. }, false) => {
            let host = server_host(server)?;
            let endpoints = [MemberConfig::client_url(host)];
            let mut client = member::connect(&endpoints, &pki).await?;
            let added =
                member::add_learner(&mut client, &name, &MemberConfig::peer_url(ip)).await?;
            config.initial_cluster = added.initial_cluster;
            config.initial_cluster_state = "existing";
            let supervisor = Supervisor::start(config)?;
            if let Err(e) = member::promote(&mut client, added.id, PROMOTE_WITHIN).await {
                supervisor.stop().await;
                return Err(e);
            }
            supervisor
        }
        // A joined member restarts from its data; one whose join stopped before the
        // promotion is promoted now (a learner serves no client, so not this API server).
        (Role::Join { server, .. }, true) => {
            let supervisor = Supervisor::start(config)?;
            if let Err(e) = promote_if_learner(server, &pki, ip).await {
                supervisor.stop().await;
                return Err(e);
            }
            supervisor
        }
        // A member with data restarts from it (etcd ignores the initial-cluster flags).
        _ => Supervisor::start(config)?,
    };
    tracing::info!(member = %name, dir = %dir.display(), "etcd member running");
    let managed = Managed {
        supervisor,
        name,
        peer_url: MemberConfig::peer_url(ip),
        endpoint: MemberConfig::client_url(IpAddr::from([127, 0, 0, 1])),
        tls: store::EtcdTls {
            ca_file: Some(pki.etcd_ca_cert()),
            cert_file: Some(pki.etcd_member_cert()),
            key_file: Some(pki.etcd_member_key()),
        },
    };
    // Before the API server starts: it must find the cluster's keys in etcd.
    if convert && let Err(e) = migrate::run(data_dir, &dir, &managed.endpoint, &managed.tls).await {
        managed.stop().await;
        migrate::abandon(&dir);
        return Err(e.context(format!(
            "converting {} into a managed etcd failed; it is unchanged and the next start with \
             --cluster-init converts it again",
            migrate::sqlite_path(data_dir).display()
        )));
    }
    Ok(managed)
}

/// Whether the member in `dir` has a write-ahead log (`member/wal/*.wal`).
fn has_wal(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("member").join("wal")).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "wal"))
    })
}

/// Removes a member directory without a log (a join stopped before etcd wrote it), so the
/// join starts it afresh from its peers.
fn remove_partial_member(dir: &Path) -> anyhow::Result<()> {
    let member = dir.join("member");
    if member.exists() {
        tracing::info!(dir = %member.display(), "removing a member directory an interrupted join left without a log");
        std::fs::remove_dir_all(&member)
            .with_context(|| format!("removing {}", member.display()))?;
    }
    Ok(())
}

/// How long the restart of a joined member waits for the cluster to say whether it is
/// still a learner; a cluster out of reach is no reason not to start.
const LEARNER_CHECK_WITHIN: Duration = Duration::from_secs(10);

/// Promotes this server's member if the cluster at `server` still has it as a learner.
async fn promote_if_learner(
    server: &str,
    pki: &apiserver::pki::Pki,
    ip: IpAddr,
) -> anyhow::Result<()> {
    let endpoints = [MemberConfig::client_url(server_host(server)?)];
    let peer_url = MemberConfig::peer_url(ip);
    let check = async {
        let mut client = member::connect(&endpoints, pki).await?;
        let found = member::is_learner(&mut client, &peer_url).await?;
        anyhow::Ok((client, found))
    };
    match tokio::time::timeout(LEARNER_CHECK_WITHIN, check).await {
        Ok(Ok((mut client, Some((id, true))))) => {
            tracing::info!(
                id = format!("{id:x}"),
                "this member is still a learner; promoting it"
            );
            member::promote(&mut client, id, PROMOTE_WITHIN).await
        }
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot ask the cluster whether this member is a learner");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(
                server,
                "the cluster did not say whether this member is a learner"
            );
            Ok(())
        }
    }
}

/// The etcd certificates, the member's directory and name, and its flags for a start as
/// the only member (a join replaces the initial cluster).
fn prepare(data_dir: &Path, ip: IpAddr) -> anyhow::Result<(apiserver::pki::Pki, MemberConfig)> {
    let dir = etcd_dir(data_dir);
    let pki = apiserver::pki::Pki::new(data_dir);
    pki.ensure_etcd(&[ip, IpAddr::from([127, 0, 0, 1])])
        .context("the etcd certificates")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode_0700(&dir)?;
    let name = member_name(&dir)?;
    let config = MemberConfig {
        name: name.clone(),
        data_dir: dir,
        ip,
        initial_cluster: vec![member::self_entry(&name, ip)],
        initial_cluster_state: "new",
        ca: pki.etcd_ca_cert(),
        cert: pki.etcd_member_cert(),
        key: pki.etcd_member_key(),
        log: data_dir.join("db").join("etcd.log"),
        force_new_cluster: false,
    };
    Ok((pki, config))
}

/// This member's name: kept in `<etcd dir>/name` (k3s' place for it), made once as
/// `<hostname>-<8 random characters>` so that servers sharing a hostname still differ.
fn member_name(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("name");
    match std::fs::read_to_string(&path) {
        Ok(n) if !n.trim().is_empty() => return Ok(n.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let name = new_member_name();
    std::fs::write(&path, &name).with_context(|| format!("writing {}", path.display()))?;
    Ok(name)
}

fn new_member_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rkube".into());
    format!("{host}-{}", crate::join::random(8))
}

/// Makes the renames and creations in `dir` survive a crash (the directory's own entries
/// are written only when it is synced).
pub(crate) fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// etcd refuses a data directory others may read.
fn set_mode_0700(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))
}

/// The IP address in `--server`'s URL: the other servers' etcd is on that host.
fn server_host(server: &str) -> anyhow::Result<IpAddr> {
    let uri: http::Uri = server.parse().context("the --server URL")?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("--server {server:?} names no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse().map_err(|_| {
        anyhow!("--server {server:?}: give the server's IP address (its etcd is reached there)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_url_names_the_etcd_host() {
        assert_eq!(
            server_host("https://10.99.0.1:6443").unwrap(),
            IpAddr::from([10, 99, 0, 1])
        );
        assert!(server_host("https://first.example:6443").is_err());
    }
}
