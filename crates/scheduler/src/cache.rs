//! The scheduler's cache: every node with the pods on it, including pods the scheduler has
//! placed but whose binding is still in flight ("assumed"), so a burst of pods is never
//! over-committed onto one node.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::Snapshot;
use crate::nodeinfo::{NodeInfo, PodInfo, pod_key};

#[derive(Default)]
pub struct Inner {
    pub nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// pod key -> node name, for every pod counted on a node.
    placed: HashMap<String, String>,
    assumed: HashSet<String>,
    /// Pods seen on a node the cache does not know yet (their node comes later).
    waiting: HashMap<String, Vec<PodInfo>>,
}

impl Inner {
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot { nodes: &self.nodes }
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        let i = *self.index.get(name)?;
        Some(&mut self.nodes[i])
    }

    fn unplace(&mut self, key: &str) -> Option<PodInfo> {
        let node = self.placed.remove(key)?;
        self.assumed.remove(key);
        match self.node_mut(&node) {
            Some(n) => n.remove_pod(key),
            None => {
                let w = self.waiting.get_mut(&node)?;
                let i = w.iter().position(|p| p.key() == key)?;
                Some(w.swap_remove(i))
            }
        }
    }

    fn place(&mut self, p: PodInfo, node: &str) {
        let key = p.key();
        self.placed.insert(key, node.to_string());
        match self.node_mut(node) {
            Some(n) => n.add_pod(p),
            None => self.waiting.entry(node.to_string()).or_default().push(p),
        }
    }
}

#[derive(Default)]
pub struct Cache {
    inner: RwLock<Inner>,
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

impl Cache {
    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_node(&self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut c = self.write();
        if let Some(n) = c.node_mut(&name) {
            n.set_node(node);
            return;
        }
        let mut info = NodeInfo::new(node);
        for p in c.waiting.remove(&name).unwrap_or_default() {
            info.add_pod(p);
        }
        let i = c.nodes.len();
        c.nodes.push(info);
        c.index.insert(name, i);
    }

    pub fn remove_node(&self, name: &str) {
        let mut c = self.write();
        let Some(i) = c.index.remove(name) else {
            return;
        };
        let removed = c.nodes.swap_remove(i);
        if i < c.nodes.len() {
            let moved = c.nodes[i].name().to_string();
            c.index.insert(moved, i);
        }
        // Its pods wait for the node to come back (or for their own deletion).
        c.waiting.insert(name.to_string(), removed.pods);
    }

    /// A pod as the API reports it: counted on its node while bound and not finished.
    pub fn set_pod(&self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let mut c = self.write();
        match node {
            Some(node) if !terminal(&pod) => {
                c.unplace(&key);
                c.place(PodInfo::new(pod), &node);
            }
            // Unbound: only an assumption of ours may hold a place for it.
            None if c.assumed.contains(&key) => {}
            _ => {
                c.unplace(&key);
            }
        }
    }

    pub fn remove_pod(&self, pod: &Pod) {
        self.write().unplace(&pod_key(pod));
    }

    /// Counts the pod on `node` before its binding is confirmed.
    pub fn assume(&self, pod: PodInfo, node: &str) {
        let key = pod.key();
        let mut c = self.write();
        c.unplace(&key);
        c.place(pod, node);
        c.assumed.insert(key);
    }

    /// A binding failed: the assumed place is released.
    pub fn forget(&self, key: &str) {
        let mut c = self.write();
        if c.assumed.contains(key) {
            c.unplace(key);
        }
    }

    pub fn node_count(&self) -> usize {
        self.read().nodes.len()
    }
}
