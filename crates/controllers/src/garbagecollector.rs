//! The garbage collector (Kubernetes' `pkg/controller/garbagecollector`): a graph of every
//! object's ownerReferences, fed by metadata-only watches of every resource the API serves.
//! - An object whose owners are all gone is deleted (Background cascading deletion).
//! - An object deleted with `propagationPolicy=Foreground` (finalizer `foregroundDeletion`)
//!   has its dependents deleted first, then loses the finalizer and goes.
//! - One deleted with `propagationPolicy=Orphan` (finalizer `orphan`) has its owner
//!   reference removed from every dependent, then loses the finalizer.
//!
//! An owner absent from the graph is looked up through the API before anything is deleted,
//! so a graph that has not yet seen an owner never deletes its dependents.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

use client_go::informer::{Informer, StopOnDrop};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

#[derive(Clone, Debug)]
struct Node {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid -> dependent uids
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    fn upsert(&mut self, uid: &str, node: Node) {
        self.unlink(uid);
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.to_string());
        }
        self.nodes.insert(uid.to_string(), node);
    }

    fn unlink(&mut self, uid: &str) {
        if let Some(old) = self.nodes.get(uid) {
            for o in &old.owners {
                if let Some(d) = self.dependents.get_mut(&o.uid) {
                    d.remove(uid);
                    if d.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
            }
        }
    }

    fn remove(&mut self, uid: &str) -> Option<Node> {
        self.unlink(uid);
        self.nodes.remove(uid)
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// How to reach each kind: (apiVersion, kind) -> resource.
type Resources = HashMap<(String, String), (ApiResource, bool)>;

pub struct GarbageCollector {
    client: Client,
    graph: Mutex<Graph>,
    resources: Mutex<Resources>,
    queue: Arc<WorkQueue>,
}

enum OwnerState {
    Present { foreground: bool },
    Absent,
}

impl GarbageCollector {
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(GarbageCollector {
            client,
            graph: Mutex::new(Graph::default()),
            resources: Mutex::new(HashMap::new()),
            queue: WorkQueue::new(),
        })
    }

    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn resource(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        self.resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
    }

    /// Discovers every deletable resource and watches its metadata; then processes the
    /// queue. Never returns.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let discovery = loop {
            match Discovery::new(self.client.clone()).run().await {
                Ok(d) => break d,
                Err(e) => {
                    tracing::info!(error = %e, "garbage collector: discovery failed; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        // Owned by this future: when the collector stops (a lost lease), its watches stop.
        let mut watches = tokio::task::JoinSet::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                let ops = ["list", "watch", "delete"];
                if !ops.iter().all(|op| caps.supports_operation(op)) {
                    continue;
                }
                let namespaced = matches!(caps.scope, Scope::Namespaced);
                self.resources
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        (ar.api_version.clone(), ar.kind.clone()),
                        (ar.clone(), namespaced),
                    );
                // Events are recorded by the million and own nothing.
                if ar.kind == "Event" {
                    continue;
                }
                let me = self.clone();
                watches.spawn(async move { me.watch(ar).await });
            }
        }
        // Its graph is fed by its own watches, not informers: nothing to wait for.
        reconciler::run(&self, &self.queue, &[], workers).await;
    }

    /// Follows one kind's metadata (client-go's informer) into the graph, until aborted.
    async fn watch(self: Arc<Self>, ar: ApiResource) {
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), &ar);
        let objects = Informer::start_dynamic(api, watcher::Config::default(), &ar.kind);
        let _stop = StopOnDrop(vec![objects.stopper()]);
        let me = self.clone();
        objects.on_change(move |change| match (&change.old, &change.new) {
            (old, Some(new)) => {
                // Deleted and made again under one name while the watch was down.
                if let Some(old_uid) = old
                    .as_ref()
                    .and_then(|o| o.metadata.uid.as_deref())
                    .filter(|u| new.metadata.uid.as_deref() != Some(*u))
                {
                    me.forget(old_uid);
                }
                me.observe(&ar, new);
            }
            (Some(old), None) => {
                if let Some(uid) = old.metadata.uid.as_deref() {
                    me.forget(uid);
                }
            }
            (None, None) => {}
        });
        std::future::pending::<()>().await;
    }

    fn observe(&self, ar: &ApiResource, obj: &PartialObjectMeta<DynamicObject>) {
        let m = &obj.metadata;
        let Some(uid) = m.uid.clone() else { return };
        let node = Node {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
            namespace: m.namespace.clone(),
            name: m.name.clone().unwrap_or_default(),
            owners: m.owner_references.clone().unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
            finalizers: m.finalizers.clone().unwrap_or_default(),
        };
        let check_self = !node.owners.is_empty()
            || (node.deleting
                && node
                    .finalizers
                    .iter()
                    .any(|f| f == ORPHAN || f == FOREGROUND));
        let owners: Vec<String> = node.owners.iter().map(|o| o.uid.clone()).collect();
        let mut g = self.graph();
        g.upsert(&uid, node);
        // An owner waiting for its dependents (foreground) looks again when one changes.
        let waiting: Vec<String> = owners
            .into_iter()
            .filter(|o| g.nodes.get(o).is_some_and(|n| n.deleting))
            .collect();
        drop(g);
        if check_self {
            self.queue.add(uid);
        }
        for o in waiting {
            self.queue.add(o);
        }
    }

    fn forget(&self, uid: &str) {
        let mut g = self.graph();
        let dependents = g.dependents_of(uid);
        let removed = g.remove(uid);
        drop(g);
        for d in dependents {
            self.queue.add(d);
        }
        for o in removed.iter().flat_map(|n| n.owners.iter()) {
            self.queue.add(o.uid.clone());
        }
    }

    fn api_for(&self, node: &Node) -> Option<Api<DynamicObject>> {
        let (ar, namespaced) = self.resource(&node.api_version, &node.kind)?;
        Some(match (&node.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        })
    }
}

impl Reconciler for GarbageCollector {
    const NAME: &'static str = "garbagecollector";

    async fn reconcile(self: &Arc<Self>, uid: &str) -> anyhow::Result<Action> {
        let Some(node) = self.graph().nodes.get(uid).cloned() else {
            return Ok(Action::Done);
        };
        if node.deleting && node.finalizers.iter().any(|f| f == ORPHAN) {
            return self.orphan_dependents(uid, &node).await;
        }
        if node.deleting && node.finalizers.iter().any(|f| f == FOREGROUND) {
            return self.delete_dependents_first(uid, &node).await;
        }
        if node.owners.is_empty() || node.deleting {
            return Ok(Action::Done);
        }
        let mut absent = Vec::new();
        let mut foreground_owner = false;
        let mut present = 0;
        for o in &node.owners {
            match self.owner_state(&node, o).await? {
                OwnerState::Absent => absent.push(o.uid.clone()),
                OwnerState::Present { foreground } => {
                    present += 1;
                    foreground_owner |= foreground && o.block_owner_deletion == Some(true);
                }
            }
        }
        let Some(api) = self.api_for(&node) else {
            return Ok(Action::Done);
        };
        if present == 0 {
            // Every owner is gone: so goes the dependent, and its own dependents after it.
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            tracing::debug!(kind = %node.kind, name = %node.name, "deleting an object whose owners are gone");
            return match api.delete(&node.name, &dp).await {
                Ok(_) => Ok(Action::Done),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(Action::Done),
                Err(e) => Err(e).context("deleting an orphaned dependent"),
            };
        }
        if !absent.is_empty() {
            // Some owners remain: only the dangling references go.
            let refs: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|o| !absent.contains(&o.uid))
                .collect();
            return self.set_owner_refs(&api, &node, json!(refs)).await;
        }
        if foreground_owner {
            // An owner deleted in the foreground waits for this one.
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Foreground),
                ..Default::default()
            };
            return match api.delete(&node.name, &dp).await {
                Ok(_) => Ok(Action::Done),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::Done),
                Err(e) => Err(e).context("deleting a dependent in the foreground"),
            };
        }
        Ok(Action::Done)
    }
}

impl GarbageCollector {
    /// Whether an owner exists: the graph knows it, or the API confirms it (same uid).
    async fn owner_state(&self, node: &Node, o: &OwnerReference) -> anyhow::Result<OwnerState> {
        if let Some(n) = self.graph().nodes.get(&o.uid) {
            return Ok(OwnerState::Present {
                foreground: n.deleting && n.finalizers.iter().any(|f| f == FOREGROUND),
            });
        }
        let owner = Node {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            namespace: node.namespace.clone(),
            name: o.name.clone(),
            owners: vec![],
            deleting: false,
            finalizers: vec![],
        };
        let Some(api) = self.api_for(&owner) else {
            // A kind this server does not serve cannot have an object.
            return Ok(OwnerState::Absent);
        };
        match api.get_metadata_opt(&o.name).await {
            Ok(Some(live)) if live.metadata.uid.as_deref() == Some(o.uid.as_str()) => {
                let m = live.metadata;
                Ok(OwnerState::Present {
                    foreground: m.deletion_timestamp.is_some()
                        && m.finalizers.iter().flatten().any(|f| f == FOREGROUND),
                })
            }
            Ok(_) => Ok(OwnerState::Absent),
            Err(e) => Err(e).context("looking up an owner"),
        }
    }

    async fn set_owner_refs(
        &self,
        api: &Api<DynamicObject>,
        node: &Node,
        refs: serde_json::Value,
    ) -> anyhow::Result<Action> {
        let refs = if refs.as_array().is_some_and(Vec::is_empty) {
            serde_json::Value::Null
        } else {
            refs
        };
        let patch = json!({"metadata": {"ownerReferences": refs}});
        match api
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(Action::Done),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::Done),
            Err(e) => Err(e).context("updating ownerReferences"),
        }
    }

    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> anyhow::Result<()> {
        let Some(api) = self.api_for(node) else {
            return Ok(());
        };
        let rest: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
        let patch = json!({"metadata": {"finalizers": if rest.is_empty() { json!(null) } else { json!(rest) }}});
        match api
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e).context("removing a finalizer"),
        }
    }

    async fn orphan_dependents(&self, uid: &str, node: &Node) -> anyhow::Result<Action> {
        let dependents: Vec<Node> = {
            let g = self.graph();
            g.dependents_of(uid)
                .iter()
                .filter_map(|d| g.nodes.get(d).cloned())
                .collect()
        };
        for d in dependents {
            let Some(api) = self.api_for(&d) else {
                continue;
            };
            let refs: Vec<&OwnerReference> = d.owners.iter().filter(|o| o.uid != uid).collect();
            self.set_owner_refs(&api, &d, json!(refs)).await?;
        }
        self.remove_finalizer(node, ORPHAN).await?;
        Ok(Action::Done)
    }

    async fn delete_dependents_first(&self, uid: &str, node: &Node) -> anyhow::Result<Action> {
        let dependents: Vec<(String, Node)> = {
            let g = self.graph();
            g.dependents_of(uid)
                .into_iter()
                .filter_map(|d| g.nodes.get(&d).cloned().map(|n| (d, n)))
                .collect()
        };
        if dependents.is_empty() {
            self.remove_finalizer(node, FOREGROUND).await?;
            return Ok(Action::Done);
        }
        for (duid, d) in dependents.iter().filter(|(_, d)| !d.deleting) {
            let Some(api) = self.api_for(d) else { continue };
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Foreground),
                preconditions: Some(Preconditions {
                    uid: Some(duid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&d.name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e).context("deleting a dependent"),
            }
        }
        // Dependents leaving the graph bring this owner back to the queue.
        Ok(Action::Done)
    }
}
