//! rkube's kube-controller-manager: the controllers that drive actual state toward desired
//! state, on one informer / work-queue framework, behind leader election.

pub mod clusterroleaggregation;
pub mod cronjob;
pub mod csrapproving;
pub mod csrsigning;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod endpointutil;
pub mod garbagecollector;
pub mod history;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podautoscaler;
pub mod pods;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod serviceaccounts;
pub mod servicelb;
pub mod statefulset;
pub mod tainteviction;
pub mod ttlafterfinished;
pub mod volume;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, PersistentVolumeClaim, Pod, ReplicationController,
    ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::{Api, Client};

use client_go::informer::Informer;

/// Workers per controller (Kubernetes' --concurrent-*-syncs defaults are 5; two cores here).
const WORKERS: usize = 4;

/// How the controllers name themselves to the API server (their field manager too).
pub const USER_AGENT: &str = "kube-controller-manager/v1.33.0 (linux) rkube";

/// A client for the controllers from a cluster configuration.
pub fn client(config: kube::Config) -> anyhow::Result<Client> {
    client_as(config, USER_AGENT)
}

use client_go::client_as;

/// What some controllers need beyond the API.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The cluster CA (PEM) the root CA publisher puts in every namespace's
    /// `kube-root-ca.crt`; without it that controller does not run.
    pub root_ca_pem: Option<String>,
    /// The CA certificate and key (PEM) the CSR signer issues client certificates with
    /// (`--cluster-signing-cert-file`, `--cluster-signing-key-file`); without them it does
    /// not run.
    pub cluster_signing: Option<(String, String)>,
    /// Do not run the service load balancer (`rkube server --disable servicelb`).
    pub disable_servicelb: bool,
    /// The node lifecycle controller's settings (`--node-monitor-grace-period`,
    /// `--node-monitor-period`, `--node-eviction-rate`, ...).
    pub node_lifecycle: nodelifecycle::Options,
    /// The storage controllers' settings (claim binder resync, local-path provisioner).
    pub volume: volume::Options,
}

impl Options {
    /// Options from the configuration the controllers reach the API server with.
    pub fn from_config(config: &kube::Config) -> Self {
        Options {
            root_ca_pem: config
                .root_cert
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(rootcacertpublisher::pem_of),
            cluster_signing: None,
            disable_servicelb: false,
            node_lifecycle: Default::default(),
            volume: Default::default(),
        }
    }
}

/// Runs every controller until the process ends; only while holding the
/// `kube-system/kube-controller-manager` lease.
pub async fn run(client: Client, identity: String) {
    run_with(client, identity, Options::default()).await;
}

/// [`run`] with options.
pub async fn run_with(client: Client, identity: String, options: Options) {
    let election = client_go::leader::LeaderElection::new(
        Api::<Lease>::namespaced(client.clone(), "kube-system"),
        "kube-controller-manager",
        identity,
    );
    election
        .run(|| run_controllers(client.clone(), options.clone()))
        .await;
}

/// The controllers themselves, without leader election.
pub async fn run_controllers(client: Client, options: Options) {
    let pods = Informer::<Pod>::start(Api::all(client.clone()));
    let replicasets = Informer::<ReplicaSet>::start(Api::all(client.clone()));
    let rcs = Informer::<ReplicationController>::start(Api::all(client.clone()));
    let deployments = Informer::<Deployment>::start(Api::all(client.clone()));
    let jobs = Informer::<Job>::start(Api::all(client.clone()));
    let cronjobs = Informer::<CronJob>::start(Api::all(client.clone()));
    let daemonsets = Informer::<DaemonSet>::start(Api::all(client.clone()));
    let nodes = Informer::<Node>::start(Api::all(client.clone()));
    let revisions = Informer::<ControllerRevision>::start(Api::all(client.clone()));
    let statefulsets = Informer::<StatefulSet>::start(Api::all(client.clone()));
    let claims = Informer::<PersistentVolumeClaim>::start(Api::all(client.clone()));
    let namespaces = Informer::<Namespace>::start(Api::all(client.clone()));
    let services = Informer::<Service>::start(Api::all(client.clone()));
    let endpoints = Informer::<Endpoints>::start(Api::all(client.clone()));
    let slices = Informer::<EndpointSlice>::start(Api::all(client.clone()));
    let accounts = Informer::<ServiceAccount>::start(Api::all(client.clone()));
    let quotas = Informer::<ResourceQuota>::start(Api::all(client.clone()));
    let config_maps = Informer::<ConfigMap>::start(Api::all(client.clone()));
    let secrets = Informer::<Secret>::start(Api::all(client.clone()));
    // Stopped with the controllers: their watches and subscribers would otherwise outlive a
    // lost lease.
    let mut informers = vec![
        pods.stopper(),
        replicasets.stopper(),
        rcs.stopper(),
        deployments.stopper(),
        jobs.stopper(),
        cronjobs.stopper(),
        daemonsets.stopper(),
        nodes.stopper(),
        revisions.stopper(),
        statefulsets.stopper(),
        claims.stopper(),
        namespaces.stopper(),
        services.stopper(),
        endpoints.stopper(),
        slices.stopper(),
        accounts.stopper(),
        quotas.stopper(),
        config_maps.stopper(),
        secrets.stopper(),
    ];
    // PodDisruptionBudgets' status, which the API server's eviction subresource spends.
    let pdbs = Informer::<PodDisruptionBudget>::start(Api::all(client.clone()));
    informers.push(pdbs.stopper());
    let disruption = disruption::DisruptionController::new(
        client.clone(),
        pdbs,
        pods.clone(),
        disruption::Workloads {
            rcs: rcs.clone(),
            replicasets: replicasets.clone(),
            deployments: deployments.clone(),
            statefulsets: statefulsets.clone(),
        },
    );

    let rs =
        replicaset::ReplicaSetController::new(client.clone(), replicasets.clone(), pods.clone());
    let rqc = resourcequota::ResourceQuotaController::new(
        client.clone(),
        resourcequota::Sources {
            quotas,
            pods: pods.clone(),
            services: services.clone(),
            claims: claims.clone(),
            config_maps: config_maps.clone(),
            secrets,
            rcs: rcs.clone(),
        },
    );
    let rc = replicaset::ReplicaSetController::new(client.clone(), rcs, pods.clone());
    let dc = deployment::DeploymentController::new(
        client.clone(),
        deployments,
        replicasets,
        pods.clone(),
    );
    let jc = job::JobController::new(client.clone(), jobs.clone(), pods.clone());
    let cjc = cronjob::CronJobController::new(client.clone(), cronjobs, jobs.clone());
    let ttl = ttlafterfinished::TtlAfterFinishedController::new(client.clone(), jobs);
    let ipam = nodeipam::NodeIpamController::new(client.clone(), nodes.clone());
    let nodes_for_lb = nodes.clone();
    let nodes_for_lifecycle = nodes.clone();
    let (nodes_for_volume, claims_for_volume) = (nodes.clone(), claims.clone());
    let ds = daemonset::DaemonSetController::new(
        client.clone(),
        daemonsets,
        nodes,
        pods.clone(),
        revisions.clone(),
    );
    let ss = statefulset::StatefulSetController::new(
        client.clone(),
        statefulsets,
        pods.clone(),
        claims,
        revisions,
    );
    let sac = serviceaccounts::ServiceAccountsController::new(
        client.clone(),
        namespaces.clone(),
        accounts,
    );
    // The CA publisher only runs when it has a CA to publish.
    let publisher = options.root_ca_pem.map(|ca| {
        rootcacertpublisher::RootCaCertPublisher::new(
            client.clone(),
            namespaces.clone(),
            config_maps,
            ca,
        )
    });
    let nc = namespace::NamespaceController::new(client.clone(), namespaces);
    let ep = endpoints::EndpointsController::new(
        client.clone(),
        services.clone(),
        pods.clone(),
        endpoints.clone(),
    );
    let eps = endpointslice::EndpointSliceController::new(
        client.clone(),
        services.clone(),
        pods.clone(),
        slices.clone(),
    );
    let mirror = endpointslicemirroring::MirroringController::new(
        client.clone(),
        services.clone(),
        endpoints,
        slices,
    );
    let lb = servicelb::ServiceLbController::new(client.clone(), services, nodes_for_lb);
    let gc = garbagecollector::GarbageCollector::new(client.clone());
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = vec![
        tokio::spawn(rs.run(WORKERS)),
        tokio::spawn(rc.run(WORKERS)),
        tokio::spawn(dc.run(WORKERS)),
        tokio::spawn(jc.run(WORKERS)),
        tokio::spawn(cjc.run(WORKERS)),
        tokio::spawn(ttl.run(WORKERS)),
        tokio::spawn(ds.run(WORKERS)),
        tokio::spawn(ss.run(WORKERS)),
        tokio::spawn(nc.run(WORKERS)),
        tokio::spawn(ep.run(WORKERS)),
        tokio::spawn(eps.run(WORKERS)),
        tokio::spawn(mirror.run(WORKERS)),
        tokio::spawn(Arc::clone(&gc).run(WORKERS)),
        tokio::spawn(ipam.run(1)),
        tokio::spawn(sac.run(WORKERS)),
        tokio::spawn(rqc.run(WORKERS)),
    ];
    tasks.push(tokio::spawn(disruption.run(WORKERS)));
    // Claims and volumes: binding, provisioning (local-path), protection, ephemeral claims.
    tasks.push(tokio::spawn(volume::run(
        client.clone(),
        pods.clone(),
        claims_for_volume,
        nodes_for_volume,
        options.volume.clone(),
    )));
    if let Some(p) = publisher {
        tasks.push(tokio::spawn(p.run(WORKERS)));
    }
    if !options.disable_servicelb {
        tasks.push(tokio::spawn(lb.run(1)));
    }
    // Node health (conditions, taints, pods' readiness) from heartbeats and Leases, and the
    // deletion of pods that do not tolerate a node's NoExecute taints.
    let leases = Informer::<Lease>::start(Api::namespaced(
        client.clone(),
        nodelifecycle::NODE_LEASE_NAMESPACE,
    ));
    informers.push(leases.stopper());
    tasks.push(tokio::spawn(
        nodelifecycle::NodeLifecycleController::new(
            client.clone(),
            nodes_for_lifecycle.clone(),
            leases,
            pods.clone(),
            options.node_lifecycle.clone(),
        )
        .run(WORKERS),
    ));
    tasks.push(tokio::spawn(
        tainteviction::TaintEvictionController::new(
            client.clone(),
            nodes_for_lifecycle,
            pods.clone(),
        )
        .run(),
    ));
    // Horizontal pod autoscaling, on the metrics APIs the API server serves.
    let hpas = Informer::<HorizontalPodAutoscaler>::start(Api::all(client.clone()));
    informers.push(hpas.stopper());
    tasks.push(tokio::spawn(
        podautoscaler::HorizontalController::new(
            client.clone(),
            hpas,
            pods.clone(),
            podautoscaler::Options::default(),
        )
        .run(WORKERS),
    ));
    // Aggregated ClusterRoles (admin, edit, view, and any a user makes) follow their parts.
    let cluster_roles = Informer::<ClusterRole>::start(Api::all(client.clone()));
    informers.push(cluster_roles.stopper());
    tasks.push(tokio::spawn(
        clusterroleaggregation::ClusterRoleAggregationController::new(
            client.clone(),
            cluster_roles,
        )
        .run(1),
    ));
    // Node client certificates: approved for bootstrap-token users, signed with the CA.
    let csrs = Informer::<CertificateSigningRequest>::start(Api::all(client.clone()));
    informers.push(csrs.stopper());
    tasks.push(tokio::spawn(
        csrapproving::CsrApprovingController::new(client.clone(), csrs.clone()).run(1),
    ));
    if let Some((cert, key)) = options.cluster_signing {
        tasks.push(tokio::spawn(
            csrsigning::CsrSigningController::new(client.clone(), csrs, cert, key).run(1),
        ));
    }
    // Dropping this future (a lost lease) stops every controller and informer.
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for t in &self.0 {
                t.abort();
            }
        }
    }
    let _guard = (
        AbortOnDrop(tasks),
        client_go::informer::StopOnDrop(informers),
    );
    futures::future::pending::<()>().await;
}
