//! rkube's kube-scheduler: binds each pending pod to the best node — filters (the seed's
//! predicates) find the nodes it may run on, scores (its priorities) pick the best.

pub mod cache;
pub mod config;
pub mod framework;
pub mod nodeinfo;
pub mod plugins;
pub mod preemption;
pub use common::quantity;
pub mod queue;
pub mod schedule_one;
pub mod scheduler;
#[cfg(test)]
mod testutil;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Client};

use client_go::informer::Informer;

/// How the scheduler names itself to the API server.
pub const USER_AGENT: &str = "kube-scheduler/v1.33.0 (linux) rkube";

/// A client for the scheduler from a cluster configuration.
pub fn client(config: kube::Config) -> anyhow::Result<Client> {
    client_go::client_as(config, USER_AGENT)
}

/// Schedules with the default profile while holding the `kube-system/kube-scheduler` lease.
pub async fn run(client: Client, identity: String) {
    // The default configuration cannot fail to build.
    let _ = run_with_config(client, identity, config::Configuration::default()).await;
}

/// Schedules with the configuration's profiles (one scheduler per `schedulerName`) while
/// holding the `kube-system/kube-scheduler` lease. Fails at once on a bad configuration.
pub async fn run_with_config(
    client: Client,
    identity: String,
    cfg: config::Configuration,
) -> anyhow::Result<()> {
    let services = Informer::<k8s_openapi::api::core::v1::Service>::start(Api::all(client.clone()));
    let storage = plugins::volume_binding::Sources {
        claims: Informer::start(Api::all(client.clone())),
        volumes: Informer::start(Api::all(client.clone())),
        classes: Informer::start(Api::all(client.clone())),
    };
    let profiles = cfg.profiles(&config::Deps {
        services: Some(services),
        storage: Some((client.clone(), storage)),
    })?;
    let election = client_go::leader::LeaderElection::new(
        Api::<Lease>::namespaced(client.clone(), "kube-system"),
        "kube-scheduler",
        identity,
    );
    election
        .run(|| {
            let client = client.clone();
            let profiles = profiles.clone();
            async move {
                let pods = Informer::<Pod>::start(Api::all(client.clone()));
                let nodes = Informer::<Node>::start(Api::all(client.clone()));
                let pdbs = Informer::start(Api::all(client.clone()));
                // A lost lease drops this future: the watches stop with it.
                let _stop = client_go::informer::StopOnDrop(vec![
                    pods.stopper(),
                    nodes.stopper(),
                    pdbs.stopper(),
                ]);
                let runs = profiles.into_iter().map(|p| {
                    let (pods, nodes, pdbs) = (pods.clone(), nodes.clone(), pdbs.clone());
                    scheduler::Scheduler::new(client.clone(), p, pods, nodes, pdbs).run()
                });
                futures::future::join_all(runs).await;
            }
        })
        .await;
    Ok(())
}

/// The scheduler itself, without leader election.
pub async fn run_scheduler(client: Client, profile: framework::Profile) {
    let pods = Informer::<Pod>::start(Api::all(client.clone()));
    let nodes = Informer::<Node>::start(Api::all(client.clone()));
    let pdbs = Informer::start(Api::all(client.clone()));
    let s = scheduler::Scheduler::new(client, profile, pods, nodes, pdbs);
    s.run().await;
}
