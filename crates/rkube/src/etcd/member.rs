//! Membership changes through the cluster's etcd (etcdctl's `member add --learner`,
//! `member promote`, `member list`), over the members' TLS client port with this server's
//! member certificate.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, MemberAddOptions, TlsOptions};

use super::supervise::MemberConfig;

/// A client of the cluster's etcd at `endpoints` (`https://ip:2379`).
pub async fn connect(endpoints: &[String], pki: &apiserver::pki::Pki) -> anyhow::Result<Client> {
    let read = |p: std::path::PathBuf| {
        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
    };
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(pki.etcd_ca_cert())?))
        .identity(Identity::from_pem(
            read(pki.etcd_member_cert())?,
            read(pki.etcd_member_key())?,
        ));
    let options = ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10));
    Client::connect(endpoints, Some(options))
        .await
        .with_context(|| {
            format!(
                "connecting to the cluster's etcd at {}",
                endpoints.join(",")
            )
        })
}

/// What joining needs from the cluster: this member's id and the `--initial-cluster` list.
pub struct Added {
    pub id: u64,
    pub initial_cluster: Vec<String>,
}

/// Adds this server as a learner (a non-voting member that catches up first, so that a slow
/// join never costs the cluster its quorum), or finds the learner an earlier, interrupted
/// join added.
pub async fn add_learner(client: &mut Client, name: &str, peer_url: &str) -> anyhow::Result<Added> {
    let list = client.member_list().await.context("listing etcd members")?;
    let id = match list
        .members()
        .iter()
        .find(|m| m.peer_urls().iter().any(|u| u == peer_url))
    {
        // Added before but never started (the last join stopped in between): reuse it.
        Some(m) if m.name().is_empty() => m.id(),
        Some(m) => bail!(
            "{peer_url} is already etcd member {:x} ({:?}) of this cluster: remove it first",
            m.id(),
            m.name()
        ),
        None => {
            // etcd refuses a change while a member joined in the last seconds is not yet
            // fully connected ("unhealthy cluster") or another learner catches up: wait.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            let added = loop {
                let options = Some(MemberAddOptions::new().with_is_learner());
                match client.member_add([peer_url], options).await {
                    Ok(added) => break added,
                    Err(e)
                        if tokio::time::Instant::now() < deadline
                            && ["unhealthy cluster", "too many learner"]
                                .iter()
                                .any(|m| e.to_string().contains(m)) =>
                    {
                        tracing::info!(error = %e, "etcd not ready to add a member yet; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => {
                        return Err(e).context("adding this server as an etcd learner");
                    }
                }
            };
            added
                .member()
                .map(|m| m.id())
                .ok_or_else(|| anyhow!("etcd did not say which member it added"))?
        }
    };
    let list = client.member_list().await.context("listing etcd members")?;
    let mut initial_cluster = Vec::new();
    for m in list.members() {
        let member_name = if m.id() == id { name } else { m.name() };
        if member_name.is_empty() {
            // Another join in progress: etcd refuses a cluster list naming it without a name.
            continue;
        }
        for url in m.peer_urls() {
            initial_cluster.push(format!("{member_name}={url}"));
        }
    }
    tracing::info!(
        id = format!("{id:x}"),
        ?initial_cluster,
        "added as an etcd learner"
    );
    Ok(Added {
        id,
        initial_cluster,
    })
}

/// Promotes learner `id` to a voting member once it has caught up with the leader (etcd
/// refuses before that), trying for up to `within`.
pub async fn promote(client: &mut Client, id: u64, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match client.member_promote(id).await {
            Ok(_) => {
                tracing::info!(id = format!("{id:x}"), "promoted to a voting etcd member");
                return Ok(());
            }
            // An earlier attempt did it and its answer was lost.
            Err(e) if e.to_string().contains("not a learner") => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "etcd learner not ready to promote yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("promoting etcd learner {id:x}: not caught up after {within:?}")
                });
            }
        }
    }
}

/// `name=https://ip:2380`: this member's entry in `--initial-cluster`.
pub fn self_entry(name: &str, ip: std::net::IpAddr) -> String {
    format!("{name}={}", MemberConfig::peer_url(ip))
}

/// Whether the member serving peers at `peer_url` is still a learner: a join that stopped
/// between starting its member and promoting it. `None`: the cluster has no such member.
pub async fn is_learner(
    client: &mut Client,
    peer_url: &str,
) -> anyhow::Result<Option<(u64, bool)>> {
    let list = client.member_list().await.context("listing etcd members")?;
    Ok(list
        .members()
        .iter()
        .find(|m| m.peer_urls().iter().any(|u| u == peer_url))
        .map(|m| (m.id(), m.is_learner())))
}

/// What [`remove`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Removed(u64),
    /// No member serves peers at that URL (or has that name): removed before, or never one.
    NotMember,
    /// It is the cluster's only voting member: removing it would end the cluster.
    LastVoter,
}

/// Removes the member serving peers at `peer_url` (or, failing that, named `name`).
pub async fn remove(client: &mut Client, peer_url: &str, name: &str) -> anyhow::Result<Removal> {
    let list = client.member_list().await.context("listing etcd members")?;
    let members = list.members();
    let voting = members.iter().filter(|m| !m.is_learner()).count();
    let target = members
        .iter()
        .find(|m| m.peer_urls().iter().any(|u| u == peer_url))
        .or_else(|| {
            members
                .iter()
                .find(|m| !name.is_empty() && m.name() == name)
        });
    let Some(m) = target else {
        return Ok(Removal::NotMember);
    };
    if !m.is_learner() && voting <= 1 {
        return Ok(Removal::LastVoter);
    }
    let id = m.id();
    match client.member_remove(id).await {
        Ok(_) => {
            tracing::info!(
                id = format!("{id:x}"),
                name = m.name(),
                peer_url,
                "etcd member removed"
            );
            Ok(Removal::Removed(id))
        }
        // Another server removed it first.
        Err(e) if e.to_string().contains("member not found") => Ok(Removal::NotMember),
        Err(e) => Err(e).with_context(|| format!("removing etcd member {id:x} ({peer_url})")),
    }
}
