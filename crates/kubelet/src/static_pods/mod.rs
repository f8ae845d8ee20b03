//! Static pods: pods the kubelet runs from manifest files (`--pod-manifest-path`, default
//! `<data-dir>/agent/pod-manifests`), without the API server. The directory is read at start
//! (before the API server is asked anything) and again every `file_check_frequency` (20 s,
//! upstream's `fileCheckFrequency`): a new file starts a pod, a removed one stops it, a
//! changed one replaces it. Once the API server answers, each static pod gets a mirror pod
//! ([`mirror`]) that the pod's status is written to; a mirror deleted through the API is
//! made again (the static pod keeps running), one whose static pod is gone is deleted.

pub mod file;
pub mod mirror;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::pod_workers::PodWorkers;
use crate::status::StatusManager;

pub use file::{is_mirror, read_manifests};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[derive(Default)]
struct State {
    /// The static pods read from the manifests, by UID (the config hash).
    pods: BTreeMap<String, Arc<Pod>>,
    /// Mirror pods bound to this node, as the API watch has them, by namespace/name.
    mirrors: HashMap<String, Arc<Pod>>,
    /// The watch has listed every pod once: mirrors missing from it are really missing.
    mirrors_synced: bool,
}

/// The static pod source and the mirror pods' keeper.
pub struct StaticPods {
    path: PathBuf,
    node_name: String,
    check_every: Duration,
    client: kube::Client,
    workers: Arc<PodWorkers>,
    status: StatusManager,
    state: Mutex<State>,
    wake: Notify,
}

impl StaticPods {
    pub fn new(
        path: PathBuf,
        node_name: String,
        check_every: Duration,
        client: kube::Client,
        workers: Arc<PodWorkers>,
        status: StatusManager,
    ) -> Arc<Self> {
        Arc::new(StaticPods {
            path,
            node_name,
            check_every,
            client,
            workers,
            status,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        })
    }

    /// Reads the manifests and hands new pods to the workers, and removes those whose file
    /// is gone or changed. Keeps each pod's `config.seen` from when it was first read.
    pub fn load(&self) {
        let read = read_manifests(&self.path, &self.node_name);
        let mut st = lock(&self.state);
        let gone: Vec<String> = st
            .pods
            .keys()
            .filter(|uid| !read.contains_key(*uid))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(pod) = st.pods.remove(&uid) {
                info!(pod = %key(&pod), %uid, "static pod removed from the manifests; stopping it");
            }
            self.workers.remove(&uid);
        }
        for (uid, mut pod) in read {
            if st.pods.contains_key(&uid) {
                continue;
            }
            let seen = k8s_openapi::jiff::Timestamp::now().to_string();
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(file::SEEN_ANNOTATION.into(), seen);
            info!(pod = %key(&pod), %uid, "static pod read from the manifests");
            let pod = Arc::new(pod);
            st.pods.insert(uid, pod.clone());
            self.workers.update(pod);
        }
    }

    /// A mirror pod bound to this node changed in the API (`None`: deleted).
    pub fn mirror_changed(&self, old: Option<&Arc<Pod>>, new: Option<&Arc<Pod>>) {
        let mut st = lock(&self.state);
        if let Some(old) = old {
            st.mirrors.remove(&key(old));
        }
        if let Some(new) = new {
            st.mirrors.insert(key(new), new.clone());
        }
        drop(st);
        self.wake.notify_one();
    }

    /// The API watch has listed every pod bound to this node.
    pub fn mirrors_synced(&self) {
        lock(&self.state).mirrors_synced = true;
        self.wake.notify_one();
    }

    /// Re-reads the manifests every `check_every` and keeps the mirror pods in line, until
    /// aborted.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.load();
            let retry = match self.sync_mirrors().await {
                Ok(()) => self.check_every,
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "keeping mirror pods; retrying");
                    self.check_every.min(Duration::from_secs(2))
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(retry) => {}
            }
        }
    }

    /// One pass of upstream's mirror handling: a mirror being deleted or of another version
    /// is deleted and made again, a missing one is made, an orphan is deleted.
    async fn sync_mirrors(&self) -> anyhow::Result<()> {
        let (pods, mirrors) = {
            let st = lock(&self.state);
            if !st.mirrors_synced {
                return Ok(());
            }
            (st.pods.clone(), st.mirrors.clone())
        };
        let mut result = Ok(());
        let wanted: HashMap<String, &Arc<Pod>> = pods.values().map(|p| (key(p), p)).collect();
        for (k, pod) in &wanted {
            let mut missing = true;
            if let Some(m) = mirrors.get(k) {
                if m.metadata.deletion_timestamp.is_some() || !mirror::is_mirror_of(m, pod) {
                    info!(pod = %k, "mirror pod deleted or outdated; making it again");
                    if let Err(e) = mirror::delete(&self.client, m).await {
                        result = Err(e);
                        continue;
                    }
                } else {
                    missing = false;
                }
            }
            if missing {
                match mirror::create(&self.client, pod, &self.node_name).await {
                    Ok(()) => {
                        // The status goes to the new mirror: write it again from scratch.
                        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
                        self.status.forget(uid);
                        self.workers.wake(uid);
                    }
                    Err(e) => result = Err(e),
                }
            }
        }
        for (k, m) in &mirrors {
            if !wanted.contains_key(k) {
                info!(pod = %k, "deleting the mirror pod of a static pod that is gone");
                if let Err(e) = mirror::delete(&self.client, m).await {
                    result = Err(e);
                }
            }
        }
        result
    }
}
