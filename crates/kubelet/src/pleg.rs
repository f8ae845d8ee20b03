//! The pod lifecycle event generator: containerd 1.6 has no CRI event stream, so the runtime
//! is relisted every `relist_period` and the worker of every pod whose sandboxes or containers
//! changed state is woken. Sandboxes and containers of pods the kubelet does not know (their
//! objects are gone) are handed over for removal.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

use crate::cri::RuntimeClient;
use crate::kuberuntime::LABEL_POD_UID;
use crate::pod_workers::PodWorkers;

/// Orphaned pod directories are looked for every this many relists (and at the first).
const ORPHAN_DIR_SWEEP: u32 = 10;

/// Per pod UID: (id, state) of each sandbox and container, sorted.
type Snapshot = BTreeMap<String, Vec<(String, i32)>>;

async fn relist(cri: &RuntimeClient) -> Result<Snapshot, crate::CriError> {
    let mut snap = Snapshot::new();
    for s in cri.list_pod_sandbox(None).await? {
        if let Some(uid) = s.labels.get(LABEL_POD_UID) {
            snap.entry(uid.clone()).or_default().push((s.id, s.state));
        }
    }
    for c in cri.list_containers(None).await? {
        if let Some(uid) = c.labels.get(LABEL_POD_UID) {
            snap.entry(uid.clone()).or_default().push((c.id, c.state));
        }
    }
    for v in snap.values_mut() {
        v.sort();
    }
    Ok(snap)
}

/// Relists until the process ends. `synced` turns true once the kubelet knows every pod bound
/// to it: only then is a pod without a worker an orphan.
pub async fn run(
    cri: RuntimeClient,
    period: Duration,
    workers: Arc<PodWorkers>,
    synced: watch::Receiver<bool>,
) {
    let mut last = Snapshot::new();
    let mut failing = false;
    let mut sweeps: u32 = 0;
    loop {
        tokio::time::sleep(period).await;
        let snap = match relist(&cri).await {
            Ok(s) => {
                if failing {
                    debug!("relist works again");
                    failing = false;
                }
                s
            }
            Err(e) => {
                if !failing {
                    warn!(error = %e, "relisting the container runtime failed");
                    failing = true;
                }
                continue;
            }
        };
        let uids: HashSet<&String> = snap.keys().chain(last.keys()).collect();
        for uid in uids {
            if snap.get(uid) != last.get(uid) {
                workers.wake(uid);
            }
        }
        if *synced.borrow() {
            for uid in snap.keys() {
                if !workers.has(uid) {
                    workers.remove_orphan(uid);
                }
            }
            // Pod directories without pod or runtime objects (a pod removed while the kubelet
            // was down), now and then.
            sweeps += 1;
            if sweeps % ORPHAN_DIR_SWEEP == 1 {
                workers.remove_orphan_pod_dirs(|uid| snap.contains_key(uid));
            }
        }
        last = snap;
    }
}
