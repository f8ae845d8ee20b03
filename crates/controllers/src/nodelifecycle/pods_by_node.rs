//! Pods by the node they are bound to (upstream's `spec.nodeName` pod index): both the node
//! lifecycle controller and taint eviction look at one node's pods at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;

use client_go::informer::{Change, Informer, key_of};

#[derive(Default)]
struct Index {
    by_node: HashMap<String, BTreeMap<String, Arc<Pod>>>,
    node_of: HashMap<String, String>,
}

#[derive(Default)]
pub struct PodsByNode {
    index: Mutex<Index>,
}

fn node_name(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl PodsByNode {
    /// An index kept in step with `pods`.
    pub fn new(pods: &Informer<Pod>) -> Arc<Self> {
        let me = Arc::new(PodsByNode::default());
        let index = me.clone();
        pods.on_change(move |ch: &Change<Pod>| index.apply(ch));
        me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, ch: &Change<Pod>) {
        let Some(obj) = ch.object() else {
            return;
        };
        let key = key_of(obj.as_ref());
        let mut ix = self.lock();
        if let Some(old_node) = ix.node_of.remove(&key)
            && let Some(pods) = ix.by_node.get_mut(&old_node)
        {
            pods.remove(&key);
            if pods.is_empty() {
                ix.by_node.remove(&old_node);
            }
        }
        if let Some(p) = &ch.new
            && let Some(node) = node_name(p)
        {
            ix.node_of.insert(key.clone(), node.to_string());
            ix.by_node
                .entry(node.to_string())
                .or_default()
                .insert(key, p.clone());
        }
    }

    /// The pods bound to `node`.
    pub fn pods(&self, node: &str) -> Vec<Arc<Pod>> {
        self.lock()
            .by_node
            .get(node)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: Option<&str>) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"},
                "spec": {"containers": [], "nodeName": node}}))
            .unwrap(),
        )
    }

    #[test]
    fn follows_binding_and_deletion() {
        let ix = PodsByNode::default();
        let names = |n: &str| -> Vec<String> {
            ix.pods(n)
                .iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect()
        };
        ix.apply(&Change {
            old: None,
            new: Some(pod("a", None)),
        });
        assert!(names("n1").is_empty());
        ix.apply(&Change {
            old: Some(pod("a", None)),
            new: Some(pod("a", Some("n1"))),
        });
        ix.apply(&Change {
            old: None,
            new: Some(pod("b", Some("n1"))),
        });
        assert_eq!(names("n1"), ["a", "b"]);
        ix.apply(&Change {
            old: Some(pod("a", Some("n1"))),
            new: None,
        });
        assert_eq!(names("n1"), ["b"]);
    }
}
