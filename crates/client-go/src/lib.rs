//! What client-go is to Kubernetes' components: the machinery every watcher of the API
//! shares, so the scheduler, kubelet, kube-proxy, DNS and node networking depend on it and
//! not on the controller manager.
//!
//! - [`informer`]: a watch-backed cache of one kind with change handlers (client-go's shared
//!   informer and lister).
//! - [`queue`]: the rate-limited work queue.
//! - [`reconciler`]: the controller pattern written once: a [`reconciler::Reconciler`]
//!   reconciles one key, [`reconciler::run`] waits for the caches and runs the workers.
//! - [`leader`]: Lease-based leader election.
//! - [`events`]: the event recorder, with client-go's counting of repeats.
//! - [`expectations`]: controller expectations (creations and deletions not yet seen).
//! - [`metrics`]: the metrics APIs' types (`metrics.k8s.io`, `custom.metrics.k8s.io`).
//! - [`controller_ref`]: adoption and release of the objects an owner's selector matches.

pub mod controller_ref;
pub mod events;
pub mod expectations;
pub mod informer;
pub mod leader;
pub mod metrics;
pub mod queue;
pub mod reconciler;

/// A client that names itself `user_agent` (which is also its default field manager).
pub fn client_as(
    mut config: kube::Config,
    user_agent: &'static str,
) -> anyhow::Result<kube::Client> {
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(user_agent),
    ));
    Ok(kube::Client::try_from(config)?)
}
