//! Storage controllers (upstream's `pkg/controller/volume`, 1.33) and the built-in local-path
//! provisioner (k3s' `rancher.io/local-path`):
//!
//! - `persistentvolume/` — the PersistentVolume controller: binds claims to volumes, asks
//!   provisioners for volumes, reclaims released ones;
//! - `protection/` — the `kubernetes.io/pvc-protection` and `kubernetes.io/pv-protection`
//!   finalizers: a claim in use by a pod, or a bound volume, is not removed;
//! - `ephemeral/` — a claim `<pod>-<volume>` for each generic ephemeral volume, owned by its pod;
//! - `expand/` — a bound claim whose request grew gets its volume's capacity raised and the
//!   node's step asked for (`FileSystemResizePending`), which the kubelet completes;
//! - `localpath/` — provisions claims of `rancher.io/local-path` classes as `local` volumes
//!   under the selected node's storage directory, and deletes them once released.
//!
//! `annotations` (the names the controllers, the scheduler and the kubelet share), `claims`
//! (accessors of claims and volumes) and `pods` (which claims a pod uses) live in
//! `common::storage`, shared with the scheduler; they are re-exported here under their old
//! names.

pub use common::storage::{annotations, claims, pods};
pub mod ephemeral;
pub mod expand;
pub mod localpath;
pub mod persistentvolume;
pub mod protection;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::{Api, Client};

use client_go::informer::{Informer, StopOnDrop};

/// The storage controllers' settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often every claim and volume is looked at again (kube-controller-manager's
    /// `--pvclaimbinder-sync-period`, 15 s).
    pub sync_period: Duration,
    /// Do not run the local-path provisioner (`rkube server --disable local-storage`).
    pub disable_local_path: bool,
    pub local_path: localpath::Options,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync_period: Duration::from_secs(15),
            disable_local_path: false,
            local_path: localpath::Options::default(),
        }
    }
}

/// Runs the storage controllers until dropped; their own informers (volumes, classes) stop
/// with them.
pub async fn run(
    client: Client,
    pods: Informer<Pod>,
    claims: Informer<PersistentVolumeClaim>,
    nodes: Informer<Node>,
    options: Options,
) {
    let volumes = Informer::<PersistentVolume>::start(Api::all(client.clone()));
    let classes = Informer::<StorageClass>::start(Api::all(client.clone()));
    let _stop = StopOnDrop(vec![volumes.stopper(), classes.stopper()]);
    let binder = persistentvolume::PersistentVolumeController::new(
        client.clone(),
        persistentvolume::Sources {
            volumes: volumes.clone(),
            claims: claims.clone(),
            classes: classes.clone(),
            pods: pods.clone(),
        },
        options.sync_period,
    );
    let pvc_protection =
        protection::pvc::PvcProtectionController::new(client.clone(), claims.clone(), pods.clone());
    let pv_protection =
        protection::pv::PvProtectionController::new(client.clone(), volumes.clone());
    let ephemeral = ephemeral::EphemeralController::new(client.clone(), pods, claims.clone());
    let expand = expand::ExpandController::new(
        client.clone(),
        claims.clone(),
        volumes.clone(),
        classes.clone(),
    );
    let mut runs: Vec<futures::future::BoxFuture<'static, ()>> = vec![
        Box::pin(binder.run()),
        Box::pin(pvc_protection.run(1)),
        Box::pin(pv_protection.run(1)),
        Box::pin(ephemeral.run(2)),
        Box::pin(expand.run(1)),
    ];
    if !options.disable_local_path {
        let local = localpath::LocalPathProvisioner::new(
            client,
            localpath::Sources {
                claims,
                volumes,
                classes,
                nodes,
            },
            options.local_path,
        );
        runs.push(Box::pin(local.run(2)));
    }
    futures::future::join_all(runs).await;
}
