//! The ClusterRole aggregation controller (Kubernetes' `pkg/controller/clusterroleaggregation`):
//! a ClusterRole with an `aggregationRule` gets the rules of every ClusterRole its selectors
//! match, kept in step as those change. So a ClusterRole labelled
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"` extends `view` (and `edit`, `admin`).

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::Client;
use kube::api::{Api, PostParams};

use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

pub struct ClusterRoleAggregationController {
    client: Client,
    roles: Informer<ClusterRole>,
    queue: Arc<WorkQueue>,
}

impl ClusterRoleAggregationController {
    pub fn new(client: Client, roles: Informer<ClusterRole>) -> Arc<Self> {
        let c = Arc::new(ClusterRoleAggregationController {
            client,
            roles,
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        // Any role's change may change what an aggregated role should hold: queue them all.
        c.roles.on_change(move |_ch: &Change<ClusterRole>| {
            for r in me.roles.list() {
                if r.aggregation_rule.is_some() {
                    me.queue.add(key_of(r.as_ref()));
                }
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.roles], workers).await;
    }
}

impl Reconciler for ClusterRoleAggregationController {
    const NAME: &'static str = "clusterrole-aggregation";

    async fn reconcile(self: &Arc<Self>, name: &str) -> anyhow::Result<Action> {
        let Some(role) = self.roles.get(None, name) else {
            return Ok(Action::Done);
        };
        let Some(rule) = &role.aggregation_rule else {
            return Ok(Action::Done);
        };
        let selectors = rule.cluster_role_selectors.clone().unwrap_or_default();
        let mut sources: Vec<Arc<ClusterRole>> = self
            .roles
            .list()
            .into_iter()
            .filter(|r| r.metadata.name.as_deref() != Some(name))
            .filter(|r| {
                let labels = r.metadata.labels.clone().unwrap_or_default();
                selectors.iter().any(|s| crate::pods::selects(s, &labels))
            })
            .collect();
        // Upstream's order: by name, rules deduplicated in that order.
        sources.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut rules: Vec<PolicyRule> = Vec::new();
        for r in sources {
            for rule in r.rules.iter().flatten() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
        if role.rules.as_ref().unwrap_or(&Vec::new()) == &rules {
            return Ok(Action::Done);
        }
        let mut updated = (*role).clone();
        updated.rules = Some(rules);
        Api::<ClusterRole>::all(self.client.clone())
            .replace(name, &PostParams::default(), &updated)
            .await
            .context("writing the aggregated rules")?;
        tracing::info!(clusterrole = name, "aggregated rules updated");
        Ok(Action::Done)
    }
}
