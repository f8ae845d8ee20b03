//! The ServiceAccounts controller (Kubernetes' `pkg/controller/serviceaccount`): every active
//! namespace has a ServiceAccount named `default`; one deleted is made again. Namespaces
//! being deleted are left alone, so the namespace controller can empty them.

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};

use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

pub const DEFAULT: &str = "default";

pub struct ServiceAccountsController {
    client: Client,
    namespaces: Informer<Namespace>,
    accounts: Informer<ServiceAccount>,
    queue: Arc<WorkQueue>,
}

/// Active: not being deleted (Kubernetes checks the phase, which a deletion sets).
pub fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

impl ServiceAccountsController {
    pub fn new(
        client: Client,
        namespaces: Informer<Namespace>,
        accounts: Informer<ServiceAccount>,
    ) -> Arc<Self> {
        let c = Arc::new(ServiceAccountsController {
            client,
            namespaces,
            accounts,
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.namespaces.on_change(move |ch: &Change<Namespace>| {
            if let Some(ns) = &ch.new {
                me.queue.add(key_of(ns.as_ref()));
            }
        });
        let me = c.clone();
        c.accounts.on_change(move |ch: &Change<ServiceAccount>| {
            if let (Some(sa), None) = (&ch.old, &ch.new)
                && sa.metadata.name.as_deref() == Some(DEFAULT)
            {
                me.queue
                    .add(sa.metadata.namespace.clone().unwrap_or_default());
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(
            &self,
            &self.queue,
            &[&self.namespaces, &self.accounts],
            workers,
        )
        .await;
    }
}

impl Reconciler for ServiceAccountsController {
    const NAME: &'static str = "serviceaccount";

    async fn reconcile(self: &Arc<Self>, ns: &str) -> anyhow::Result<Action> {
        if !self.namespaces.get(None, ns).is_some_and(|n| is_active(&n)) {
            return Ok(Action::Done);
        }
        if self.accounts.get(Some(ns), DEFAULT).is_some() {
            return Ok(Action::Done);
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let sa = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(DEFAULT.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => tracing::info!(namespace = ns, "created the default service account"),
            // Already there (the cache was behind), or the namespace started terminating.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
            Err(e) => return Err(e).context("creating the default service account"),
        }
        Ok(Action::Done)
    }
}
