//! The informer loop: watch Services and EndpointSlices, coalesce changes, sync, retry with
//! back-off, and rebuild the whole table now and then.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use client_go::informer::{Informer, StopOnDrop};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use tokio::sync::{Notify, watch};

use crate::config::ProxyConfig;
use crate::model;
use crate::proxier::{Proxier, SyncStats};
use crate::ruleset::Ruleset;
use crate::sysctl;

/// Published after every successful sync (for callers that wait for rules, e.g. benches).
#[derive(Clone, Debug)]
pub struct SyncStatus {
    /// Successful syncs so far.
    pub syncs: u64,
    /// When the transaction was committed.
    pub at: Instant,
    pub stats: SyncStats,
    /// What the table now holds.
    pub ruleset: Arc<Ruleset>,
}

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs the proxy until the future is dropped (the rules stay, as kube-proxy's do).
pub async fn run(client: kube::Client, cfg: ProxyConfig) -> Result<()> {
    run_with_status(client, cfg, None).await
}

/// [`run`], publishing every successful sync to `status`.
pub async fn run_with_status(
    client: kube::Client,
    cfg: ProxyConfig,
    status: Option<watch::Sender<Option<SyncStatus>>>,
) -> Result<()> {
    cfg.validate()?;
    if cfg.set_sysctls {
        sysctl::ensure(cfg.netns.clone()).await;
    }
    let services = Informer::<Service>::start(Api::all(client.clone()));
    let slices = Informer::<EndpointSlice>::start(Api::all(client));
    let _stop = StopOnDrop(vec![services.stopper(), slices.stopper()]);
    let changed = Arc::new(Notify::new());
    for_each_change(&services, &changed);
    for_each_change(&slices, &changed);
    services.wait_synced().await;
    slices.wait_synced().await;
    tracing::info!(node = %cfg.node_name, table = %cfg.table, "proxy: informers synced");

    let mut proxier = Proxier::new(&cfg);
    let mut syncs = 0u64;
    let mut next_full = Instant::now() + cfg.full_sync_interval;
    let mut retry = RETRY_MIN;
    let mut last_start: Option<Instant> = None;
    loop {
        // Rate limit: changes arriving during the wait are picked up by this sync.
        if let Some(t) = last_start {
            tokio::time::sleep_until((t + cfg.min_sync_interval).into()).await;
        }
        let start = Instant::now();
        last_start = Some(start);
        let full = start >= next_full;
        let states = model::build(&services.list(), &slices.list(), &cfg.node_name);
        match proxier.sync(states, full).await {
            Ok(stats) => {
                retry = RETRY_MIN;
                if stats.full {
                    next_full = start + cfg.full_sync_interval;
                }
                syncs += 1;
                // Most wake-ups change nothing (status updates, other fields): keep them quiet.
                if stats.script_bytes > 0 {
                    tracing::info!(
                        service_ports = stats.service_ports,
                        endpoints = stats.endpoints,
                        full = stats.full,
                        bytes = stats.script_bytes,
                        generate_ms = ms(stats.generate),
                        apply_ms = ms(stats.apply),
                        total_ms = ms(start.elapsed()),
                        "proxy rules synced"
                    );
                } else {
                    tracing::debug!(total_ms = ms(start.elapsed()), "proxy rules unchanged");
                }
                if let (Some(tx), Some(ruleset)) = (&status, proxier.applied()) {
                    tx.send_replace(Some(SyncStatus {
                        syncs,
                        at: Instant::now(),
                        stats,
                        ruleset,
                    }));
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = ms(retry), "proxy sync failed");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        }
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep_until(next_full.into()) => {}
        }
    }
}

/// Removes the proxy's table (kube-proxy's `--cleanup`): for a node leaving the cluster.
pub async fn cleanup(cfg: &ProxyConfig) -> Result<()> {
    cfg.validate()?;
    crate::nft::Nft::new(cfg.netns.clone(), &cfg.table)
        .delete_table()
        .await
}

fn for_each_change<K>(informer: &Informer<K>, changed: &Arc<Notify>)
where
    K: kube::Resource + Send + Sync + 'static,
{
    let changed = changed.clone();
    // notify_one keeps a permit when the loop is busy, so no change is ever missed.
    informer.on_change(move |_| changed.notify_one());
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
