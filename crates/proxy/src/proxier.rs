//! One sync: model → ruleset → nft transaction → conntrack cleanup, remembering what was
//! applied so the next sync only rewrites what changed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::config::ProxyConfig;
use crate::conntrack;
use crate::model::ServiceState;
use crate::nft::Nft;
use crate::ruleset::{Generator, RulesConfig, Ruleset};
use crate::script::{self, Previous};

/// Figures of one sync.
#[derive(Clone, Debug, Default)]
pub struct SyncStats {
    pub service_ports: usize,
    pub endpoints: usize,
    /// The table was rebuilt (from scratch or in place) rather than patched.
    pub full: bool,
    pub script_bytes: usize,
    pub generate: Duration,
    pub apply: Duration,
    pub conntrack_flushes: usize,
}

pub struct Proxier {
    nft: Nft,
    generator: Generator,
    /// What the last successful transaction wrote; None = unknown (start, or a failed sync).
    applied: Option<Arc<Ruleset>>,
    /// The table has been replaced from scratch once by this proxier.
    started: bool,
    last_states: Vec<ServiceState>,
}

impl Proxier {
    pub fn new(cfg: &ProxyConfig) -> Self {
        Proxier {
            nft: Nft::new(cfg.netns.clone(), &cfg.table),
            generator: Generator::new(RulesConfig {
                cluster_cidr: cfg.cluster_cidr.clone(),
                service_cidr: cfg.service_cidr.clone(),
            }),
            applied: None,
            started: false,
            last_states: Vec::new(),
        }
    }

    pub fn nft(&self) -> &Nft {
        &self.nft
    }

    /// The ruleset of the last successful sync.
    pub fn applied(&self) -> Option<Arc<Ruleset>> {
        self.applied.clone()
    }

    /// Brings the table to `states`. `full` rewrites every object (in place, keeping
    /// affinity entries); the first sync replaces the table from scratch.
    pub async fn sync(&mut self, states: Vec<ServiceState>, full: bool) -> Result<SyncStats> {
        let t0 = Instant::now();
        let next = self.generator.generate(&states);
        let generate = t0.elapsed();
        let (prev, full) = match (&self.applied, self.started) {
            (_, false) => (Previous::Fresh, true),
            (Some(applied), true) if !full => (Previous::Known(applied), false),
            _ => {
                let o = self.nft.objects().await?;
                let names = Previous::Names {
                    chains: o.chains,
                    sets: o.sets,
                };
                (names, true)
            }
        };
        let text = script::render(&self.nft.table, &prev, &next);
        let t1 = Instant::now();
        if !text.is_empty()
            && let Err(e) = self.nft.apply(&text).await
        {
            // We no longer know what the table holds: the next sync rebuilds it.
            self.applied = None;
            return Err(e);
        }
        let apply = t1.elapsed();
        self.applied = Some(Arc::new(next));
        self.started = true;

        let stale = conntrack::stale_flows(&self.last_states, &states);
        for f in &stale {
            if let Err(e) = conntrack::delete(self.nft.netns.as_deref(), f).await {
                tracing::warn!(error = %format!("{e:#}"), "stale UDP conntrack entries not deleted");
            }
        }
        let stats = SyncStats {
            service_ports: states.len(),
            endpoints: states.iter().map(|s| s.endpoints.len()).sum(),
            full,
            script_bytes: text.len(),
            generate,
            apply,
            conntrack_flushes: stale.len(),
        };
        self.last_states = states;
        Ok(stats)
    }
}
