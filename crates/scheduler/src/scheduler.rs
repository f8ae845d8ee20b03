//! The scheduler: watches nodes and pods, takes pending pods of its `schedulerName` from the
//! queue one at a time, decides, assumes the pod on its node and binds it through
//! `pods/binding` in the background; records `Scheduled` / `FailedScheduling` events and the
//! `PodScheduled` condition; preempts lower-priority pods when that makes a pod fit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use client_go::events::Recorder;
use client_go::informer::{Change, Informer};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::cache::Cache;
use crate::framework::{BindContext, CycleState, Profile};
use crate::nodeinfo::{PodInfo, pod_key};
use crate::preemption;
use crate::queue::SchedulingQueue;
use crate::schedule_one::{Decision, schedule};

pub struct Scheduler {
    client: Client,
    profile: Profile,
    pub cache: Arc<Cache>,
    pub queue: Arc<SchedulingQueue>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    /// PodDisruptionBudgets, which preemption tries not to break.
    pdbs: Informer<PodDisruptionBudget>,
    recorder: Recorder,
}

fn pending(pod: &Pod, scheduler_name: &str) -> bool {
    let spec = pod.spec.as_ref();
    let unbound = spec
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty);
    let ours = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler")
        == scheduler_name;
    let gated = spec
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty());
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    );
    unbound && ours && !gated && !finished && pod.metadata.deletion_timestamp.is_none()
}

impl Scheduler {
    pub fn new(
        client: Client,
        profile: Profile,
        pods: Informer<Pod>,
        nodes: Informer<Node>,
        pdbs: Informer<PodDisruptionBudget>,
    ) -> Arc<Self> {
        let s = Arc::new(Scheduler {
            recorder: Recorder::new(client.clone(), "default-scheduler"),
            client,
            profile,
            cache: Arc::new(Cache::default()),
            queue: SchedulingQueue::new(),
            pods,
            nodes,
            pdbs,
        });
        let me = s.clone();
        s.nodes.on_change(move |ch: &Change<Node>| {
            match &ch.new {
                Some(n) => me.cache.set_node(n.clone()),
                None => {
                    if let Some(old) = &ch.old {
                        me.cache
                            .remove_node(old.metadata.name.as_deref().unwrap_or_default());
                    }
                }
            }
            me.queue.move_all_to_active();
        });
        let me = s.clone();
        s.pods.on_change(move |ch: &Change<Pod>| me.pod_changed(ch));
        for p in &s.profile.filters {
            let queue = s.queue.clone();
            p.register_events(Arc::new(move || queue.move_all_to_active()));
        }
        s
    }

    fn pod_changed(&self, ch: &Change<Pod>) {
        match &ch.new {
            Some(pod) => {
                if pending(pod, &self.profile.scheduler_name) {
                    self.queue.add(pod.clone());
                } else {
                    self.queue.remove(&pod_key(pod));
                    let freed = pod.metadata.deletion_timestamp.is_some()
                        || matches!(
                            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                            Some("Succeeded") | Some("Failed")
                        );
                    self.cache.set_pod(pod.clone());
                    if freed {
                        self.queue.move_all_to_active();
                    }
                }
            }
            None => {
                if let Some(old) = &ch.old {
                    self.queue.remove(&pod_key(old));
                    self.cache.remove_pod(old);
                    self.queue.move_all_to_active();
                }
            }
        }
    }

    /// Schedules until the process ends.
    pub async fn run(self: Arc<Self>) {
        self.nodes.wait_synced().await;
        self.pods.wait_synced().await;
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                me.queue.flush_stale();
            }
        });
        let mut start = 0usize;
        loop {
            let pod = self.queue.pop().await;
            let key = pod_key(&pod);
            // The informer may know better by now (bound or deleted meanwhile).
            let ns = pod.metadata.namespace.as_deref();
            let current = self
                .pods
                .get(ns, pod.metadata.name.as_deref().unwrap_or_default());
            let Some(pod) = current.filter(|p| pending(p, &self.profile.scheduler_name)) else {
                self.queue.remove(&key);
                continue;
            };
            let info = PodInfo::new(pod.clone());
            let outcome = {
                let cache = self.cache.read();
                let snapshot = cache.snapshot();
                let (decision, state) =
                    schedule(&self.profile, &snapshot, info.clone(), &mut start);
                match decision {
                    Decision::Node(n) => Ok((n, state)),
                    Decision::Unfit(fit) => {
                        let pdbs = self.pdbs.list();
                        let pre = preemption::find(&self.profile, &snapshot, &state, &fit, &pdbs);
                        Err((fit.message(), pre))
                    }
                }
            };
            match outcome {
                Ok((node, mut state)) => {
                    if let Err(e) = self.reserve(&mut state, &node) {
                        tracing::info!(pod = %key, %node, error = %e, "reserve failed");
                        self.queue.retry(&key);
                        continue;
                    }
                    self.cache.assume(info, &node);
                    let me = self.clone();
                    tokio::spawn(async move { me.bind(pod, node, state).await });
                }
                Err((message, preempt)) => {
                    self.queue.unschedulable(&key);
                    let me = self.clone();
                    tokio::spawn(async move { me.failed(pod, message, preempt).await });
                }
            }
        }
    }

    /// Runs every plugin's Reserve; on a failure the ones already run are undone.
    fn reserve(&self, state: &mut CycleState, node: &str) -> Result<(), String> {
        for (i, p) in self.profile.filters.iter().enumerate() {
            let s = p.reserve(state, node);
            if !s.is_success() {
                for q in &self.profile.filters[..=i] {
                    q.unreserve(state, node);
                }
                return Err(format!(
                    "running Reserve plugin {:?}: {}",
                    p.name(),
                    s.reasons().join(", ")
                ));
            }
        }
        Ok(())
    }

    fn unreserve(&self, state: &CycleState, node: &str) {
        for p in self.profile.filters.iter().rev() {
            p.unreserve(state, node);
        }
    }

    /// Runs every plugin's PreBind (in the binding task).
    async fn pre_bind(&self, pod: &Pod, node: &str, state: &CycleState) -> Result<(), String> {
        let ns = pod.metadata.namespace.clone();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone();
        let pods = self.pods.clone();
        let pod_exists = move || {
            pods.get(ns.as_deref(), &name)
                .is_some_and(|p| p.metadata.uid == uid)
        };
        let ctx = BindContext {
            state,
            pod,
            node,
            pod_exists: &pod_exists,
        };
        for p in &self.profile.filters {
            p.pre_bind(&ctx)
                .await
                .map_err(|e| format!("running PreBind plugin {:?}: {e}", p.name()))?;
        }
        Ok(())
    }

    async fn bind(self: Arc<Self>, pod: Arc<Pod>, node: String, state: CycleState) {
        let key = pod_key(&pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Err(message) = self.pre_bind(&pod, &node, &state).await {
            tracing::info!(pod = %key, %node, error = %message, "pre-binding failed");
            self.unreserve(&state, &node);
            self.cache.forget(&key);
            self.queue.retry(&key);
            self.scheduler_error(&pod, message).await;
            return;
        }
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let r: Result<serde_json::Value, _> = api
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await;
        match r {
            Ok(_) => {
                self.recorder.record(
                    pod.as_ref(),
                    false,
                    "Scheduled",
                    format!("Successfully assigned {ns}/{name} to {node}"),
                );
            }
            Err(e) => {
                tracing::info!(pod = %key, %node, error = %e, "binding failed");
                self.unreserve(&state, &node);
                self.cache.forget(&key);
                match e {
                    // Deleted, or already bound: nothing left to do.
                    kube::Error::Api(s) if s.code == 404 || s.code == 409 => {
                        self.queue.remove(&key)
                    }
                    _ => self.queue.retry(&key),
                }
            }
        }
    }

    async fn failed(
        self: Arc<Self>,
        pod: Arc<Pod>,
        message: String,
        preempt: Result<preemption::Candidate, String>,
    ) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let message = match preempt {
            Ok(c) => {
                if let Err(e) = self.preempt(&api, &pod, &c).await {
                    tracing::info!(pod = %name, error = %format!("{e:#}"), "preemption failed");
                }
                message
            }
            // With no nodes at all, Kubernetes says only that.
            Err(_) if self.cache.node_count() == 0 => message,
            Err(pre) => format!("{message} {pre}"),
        };
        self.recorder
            .record(pod.as_ref(), true, "FailedScheduling", message.clone());
        self.set_unscheduled(&pod, "Unschedulable", &message).await;
    }

    /// A scheduling attempt that failed for a reason other than fit (upstream's
    /// SchedulerError): a FailedScheduling event and PodScheduled=False.
    async fn scheduler_error(&self, pod: &Pod, message: String) {
        self.recorder
            .record(pod, true, "FailedScheduling", message.clone());
        self.set_unscheduled(pod, "SchedulerError", &message).await;
    }

    async fn set_unscheduled(&self, pod: &Pod, reason: &str, message: &str) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let status = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        }]}});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(status))
            .await
        {
            tracing::debug!(pod = %name, error = %e, "recording PodScheduled=False");
        }
    }

    /// Nominates the pod to the candidate node and deletes the victims gracefully.
    async fn preempt(
        &self,
        api: &Api<Pod>,
        pod: &Pod,
        c: &preemption::Candidate,
    ) -> anyhow::Result<()> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"nominatedNodeName": c.node}})),
        )
        .await
        .context("nominating the node")?;
        for v in &c.victims {
            let vns = v.pod.metadata.namespace.as_deref().unwrap_or_default();
            let vname = v.pod.metadata.name.as_deref().unwrap_or_default();
            let vapi: Api<Pod> = Api::namespaced(self.client.clone(), vns);
            // Upstream tells the victim why it goes before deleting it.
            let condition = json!({"status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": format!("{}: preempting to accommodate a higher priority pod", self.profile.scheduler_name),
                "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
            }]}});
            if let Err(e) = vapi
                .patch_status(vname, &PatchParams::default(), &Patch::Strategic(condition))
                .await
            {
                tracing::debug!(pod = %vname, error = %e, "marking a preemption victim");
            }
            self.recorder.record(
                v.pod.as_ref(),
                false,
                "Preempted",
                format!(
                    "Preempted by pod {} on node {}",
                    pod.metadata.uid.as_deref().unwrap_or_default(),
                    c.node
                ),
            );
            match vapi.delete(vname, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e).context("deleting a preemption victim"),
            }
        }
        Ok(())
    }
}
