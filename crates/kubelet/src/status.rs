//! Pod status: generated from the pod spec, what the runtime has, and what the pod worker
//! knows (waiting reasons, probe results); and the status manager, which writes it through the
//! `status` subresource only when it changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState as KContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::runtime_state::{ContainerState, PodRuntime};

/// Field manager of the kubelet's writes.
pub const FIELD_MANAGER: &str = "kubelet";

/// What the pod worker adds to the runtime's picture.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    /// Container name → (reason, message) of a container that is not running on purpose or
    /// cannot be: ContainerCreating, CrashLoopBackOff, ErrImagePull, ….
    pub waiting: HashMap<String, (String, String)>,
    /// Container ID → readiness probe result; a container without a readiness probe is ready
    /// once started.
    pub ready: HashMap<String, bool>,
    /// Container ID → startup probe passed; absent = no startup probe.
    pub started: HashMap<String, bool>,
    /// The pod is being terminated (deleted): its phase becomes terminal.
    pub terminating: bool,
}

/// Inputs of [`generate`] that are not the pod or its runtime.
pub struct StatusContext<'a> {
    pub host_ip: &'a str,
    /// `containerd` (CRI Version's runtime name) for `containerd://<id>` container IDs.
    pub runtime_name: &'a str,
    pub now: Timestamp,
}

pub fn time_from_nanos(ns: i64) -> Option<Time> {
    (ns > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(ns)).ok())
        .flatten()
        .map(Time)
}

fn now_seconds(ts: Timestamp) -> Time {
    // The API stores seconds; comparing what we wrote with what we read needs the same.
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

fn waiting(reason: &str, message: &str) -> KContainerState {
    KContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message: (!message.is_empty()).then(|| message.to_owned()),
        }),
        ..Default::default()
    }
}

fn terminated(c: &ContainerState, runtime: &str) -> KContainerState {
    let reason = if !c.reason.is_empty() {
        c.reason.clone()
    } else if c.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    KContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: c.exit_code,
            reason: Some(reason),
            message: (!c.message.is_empty()).then(|| c.message.clone()),
            started_at: time_from_nanos(c.started_at),
            finished_at: time_from_nanos(c.finished_at),
            container_id: Some(format!("{runtime}://{}", c.id)),
            signal: None,
        }),
        ..Default::default()
    }
}

fn container_status(
    spec: &Container,
    rt: &PodRuntime,
    notes: &Notes,
    ctx: &StatusContext<'_>,
    default_waiting: &str,
) -> ContainerStatus {
    let latest = rt.latest(&spec.name);
    let note = notes.waiting.get(&spec.name);
    let (state, last_state) = match (latest, note) {
        (Some(c), _) if c.is_running() => (
            KContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time_from_nanos(c.started_at),
                }),
                ..Default::default()
            },
            rt.previous(&spec.name)
                .filter(|p| p.is_exited())
                .map(|p| terminated(p, ctx.runtime_name)),
        ),
        // Exited and waiting to be restarted: waiting now, the exit is the last state.
        (Some(c), Some((reason, message))) if c.is_exited() => (
            waiting(reason, message),
            Some(terminated(c, ctx.runtime_name)),
        ),
        (Some(c), None) if c.is_exited() => (
            terminated(c, ctx.runtime_name),
            rt.previous(&spec.name)
                .filter(|p| p.is_exited())
                .map(|p| terminated(p, ctx.runtime_name)),
        ),
        (_, Some((reason, message))) => (waiting(reason, message), None),
        (_, None) => (waiting(default_waiting, ""), None),
    };
    let running = latest.filter(|c| c.is_running());
    let started = running.is_some_and(|c| notes.started.get(&c.id).copied().unwrap_or(true));
    let ready = started && running.is_some_and(|c| notes.ready.get(&c.id).copied().unwrap_or(true));
    ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: latest.map(|c| c.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|c| format!("{}://{}", ctx.runtime_name, c.id)),
        restart_count: i32::try_from(rt.restart_count(&spec.name)).unwrap_or(i32::MAX),
        ready,
        started: Some(started),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..Default::default()
    }
}

fn condition(
    old: Option<&PodStatus>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: &Time,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let since = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    PodCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.map(str::to_owned),
        message,
        last_transition_time: since,
        ..Default::default()
    }
}

/// The pod's phase from its container statuses, as upstream's kubelet computes it.
fn phase(
    restart_policy: &str,
    initialized: bool,
    init_failed: bool,
    statuses: &[ContainerStatus],
    terminating: bool,
) -> &'static str {
    if !initialized {
        return if init_failed { "Failed" } else { "Pending" };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.as_ref();
        if state.and_then(|s| s.running.as_ref()).is_some() {
            running += 1;
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some()
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if terminating && running == 0 {
        return if stopped > 0 && stopped == succeeded {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    match restart_policy {
        "Never" if stopped == succeeded => "Succeeded",
        "Never" => "Failed",
        "OnFailure" if stopped == succeeded => "Succeeded",
        _ => "Running",
    }
}

/// The pod's status as the kubelet sees it now. Conditions keep their transition times while
/// their status does not change; fields the kubelet does not own are left out (the status
/// manager merges).
pub fn generate(pod: &Pod, rt: &PodRuntime, notes: &Notes, ctx: &StatusContext<'_>) -> PodStatus {
    let old = pod.status.as_ref();
    let spec = pod.spec.clone().unwrap_or_default();
    let now = now_seconds(ctx.now);
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let inits: &[Container] = spec.init_containers.as_deref().unwrap_or(&[]);

    let mut init_statuses = Vec::with_capacity(inits.len());
    let mut pending_inits = Vec::new();
    let mut init_failed = false;
    for c in inits {
        let s = container_status(c, rt, notes, ctx, "PodInitializing");
        let done = s
            .state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0);
        if !done {
            pending_inits.push(c.name.clone());
            let failed = rt
                .latest(&c.name)
                .is_some_and(|l| l.is_exited() && l.exit_code != 0);
            if failed && restart_policy == "Never" {
                init_failed = true;
            }
        }
        init_statuses.push(s);
    }
    let initialized = pending_inits.is_empty();
    let app_waiting = if initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, rt, notes, ctx, app_waiting))
        .collect();

    let phase = phase(
        restart_policy,
        initialized,
        init_failed,
        &statuses,
        notes.terminating,
    );
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let containers_ready = unready.is_empty() && !terminal;
    let gates_pending: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .filter(|g| {
            !old.and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == g.condition_type && c.status == "True")
            })
        })
        .map(|g| g.condition_type.clone())
        .collect();
    let (ready_reason, ready_message) = if terminal {
        (Some("PodCompleted"), None)
    } else if !unready.is_empty() {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    } else {
        (None, None)
    };
    let sandbox = rt.sandbox();
    let host_net = spec.host_network.unwrap_or(false);
    let sandbox_ready = sandbox.is_some_and(|s| s.ready && (host_net || !s.ips.is_empty()));

    let mut conditions = vec![
        condition(
            old,
            "PodReadyToStartContainers",
            sandbox_ready,
            None,
            None,
            &now,
        ),
        condition(
            old,
            "Initialized",
            initialized,
            (!initialized).then_some("ContainersNotInitialized"),
            (!initialized).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    pending_inits.join(" ")
                )
            }),
            &now,
        ),
        condition(
            old,
            "Ready",
            containers_ready && gates_pending.is_empty(),
            if containers_ready && !gates_pending.is_empty() {
                Some("ReadinessGatesNotReady")
            } else {
                ready_reason
            },
            if containers_ready && !gates_pending.is_empty() {
                Some(format!(
                    "corresponding condition of pod readiness gate \"{}\" does not exist.",
                    gates_pending.join(", ")
                ))
            } else {
                ready_message.clone()
            },
            &now,
        ),
        condition(
            old,
            "ContainersReady",
            containers_ready,
            ready_reason,
            ready_message,
            &now,
        ),
    ];
    // Conditions someone else owns (PodScheduled from the scheduler, readiness gates,
    // DisruptionTarget …) stay as they are.
    let ours = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
    ];
    let mut others: Vec<PodCondition> = old
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !ours.contains(&c.type_.as_str()))
        .collect();
    if !others.iter().any(|c| c.type_ == "PodScheduled") {
        others.push(condition(old, "PodScheduled", true, None, None, &now));
    }
    others.append(&mut conditions);
    let conditions = others;

    let pod_ips: Vec<String> = if host_net {
        vec![ctx.host_ip.to_owned()]
    } else {
        match sandbox.filter(|s| s.ready && !s.ips.is_empty()) {
            Some(s) => s.ips.clone(),
            // A stopped sandbox has no network; the pod keeps the IP it had (upstream too).
            None => old
                .and_then(|s| s.pod_ips.as_ref())
                .map(|ips| ips.iter().map(|p| p.ip.clone()).collect())
                .unwrap_or_default(),
        }
    };

    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(ctx.host_ip.to_owned()),
        host_ips: Some(vec![HostIP {
            ip: ctx.host_ip.to_owned(),
        }]),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: old
            .and_then(|s| s.start_time.clone())
            .or_else(|| Some(now.clone())),
        qos_class: Some(
            old.and_then(|s| s.qos_class.clone())
                .unwrap_or_else(|| crate::resources::qos_class(pod).as_str().to_owned()),
        ),
        container_statuses: Some(statuses),
        init_container_statuses: (!inits.is_empty()).then_some(init_statuses),
        // Ephemeral containers count for neither phase nor readiness.
        ephemeral_container_statuses: spec.ephemeral_containers.as_ref().map(|ecs| {
            ecs.iter()
                .map(|ec| {
                    let c = crate::kuberuntime::ephemeral_as_container(ec);
                    container_status(&c, rt, notes, ctx, "ContainerCreating")
                })
                .collect()
        }),
        ..Default::default()
    }
}

/// True when applying `patch` as a JSON merge patch to `current` would change nothing.
pub fn merge_is_noop(current: &Value, patch: &Value) -> bool {
    match (current, patch) {
        (Value::Object(c), Value::Object(p)) => p.iter().all(|(k, pv)| match c.get(k) {
            Some(cv) => merge_is_noop(cv, pv),
            None => pv.is_null(),
        }),
        (c, p) => c == p,
    }
}

/// Whether the phase is final (the kubelet never leaves it).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

struct Pending {
    namespace: String,
    name: String,
    status: Value,
}

struct Inner {
    client: kube::Client,
    /// Statuses waiting to be written, latest per pod UID.
    pending: Mutex<HashMap<String, Pending>>,
    /// The status this kubelet last asked for per pod UID: written, queued, being written,
    /// or found already in place.
    written: Mutex<HashMap<String, Value>>,
    wake: Notify,
}

/// Writes pod statuses in the background, latest wins, only when they change.
#[derive(Clone)]
pub struct StatusManager {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StatusManager {
    pub fn new(client: kube::Client) -> Self {
        StatusManager {
            inner: Arc::new(Inner {
                client,
                pending: Mutex::new(HashMap::new()),
                written: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            }),
        }
    }

    /// Queues `status` for `pod` unless it is what the API already has; true if queued.
    pub fn set(&self, pod: &Pod, status: &PodStatus) -> bool {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let new = serde_json::to_value(status).unwrap_or(Value::Null);
        let mut written = lock(&self.inner.written);
        match written.get(&uid) {
            Some(last) if *last == new => return false,
            // The API's copy of the pod may be older than a write still queued or in flight,
            // so it only tells what is in place before this kubelet wrote anything.
            Some(_) => {}
            None => {
                let current = serde_json::to_value(&pod.status).unwrap_or(Value::Null);
                if merge_is_noop(&current, &new) {
                    written.insert(uid, new);
                    return false;
                }
            }
        }
        written.insert(uid.clone(), new.clone());
        drop(written);
        lock(&self.inner.pending).insert(
            uid,
            Pending {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                status: new,
            },
        );
        self.inner.wake.notify_one();
        true
    }

    /// Writes `status` now (the final status before the pod object is deleted).
    pub async fn write_now(&self, pod: &Pod, status: &PodStatus) -> Result<(), kube::Error> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        lock(&self.inner.pending).remove(&uid);
        let value = serde_json::to_value(status).unwrap_or(Value::Null);
        let p = Pending {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            status: value.clone(),
        };
        self.patch(&p).await?;
        lock(&self.inner.written).insert(uid, value);
        Ok(())
    }

    /// The newest status generated for pod `uid` (queued or written), as upstream's
    /// `GetPodStatus`: it may be ahead of the API's copy.
    pub fn get(&self, uid: &str) -> Option<PodStatus> {
        let pending = lock(&self.inner.pending).get(uid).map(|p| p.status.clone());
        let value = pending.or_else(|| lock(&self.inner.written).get(uid).cloned())?;
        serde_json::from_value(value).ok()
    }

    /// Forgets a pod that is gone.
    pub fn forget(&self, uid: &str) {
        lock(&self.inner.pending).remove(uid);
        lock(&self.inner.written).remove(uid);
    }

    async fn patch(&self, p: &Pending) -> Result<(), kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.inner.client.clone(), &p.namespace);
        api.patch_status(
            &p.name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"status": p.status})),
        )
        .await
        .map(|_| ())
    }

    /// Writes queued statuses until the process ends.
    pub async fn run(self) {
        loop {
            self.inner.wake.notified().await;
            let batch: Vec<(String, Pending)> = lock(&self.inner.pending).drain().collect();
            let mut failed = false;
            for (uid, p) in batch {
                match self.patch(&p).await {
                    Ok(()) => {
                        debug!(pod = %format!("{}/{}", p.namespace, p.name), "status written");
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => {
                        warn!(pod = %format!("{}/{}", p.namespace, p.name), error = %e, "writing pod status; will retry");
                        // A newer status queued meanwhile wins.
                        lock(&self.inner.pending).entry(uid).or_insert(p);
                        failed = true;
                    }
                }
            }
            if failed {
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.inner.wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_state::{ContainerPhase, SandboxState};

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn container(name: &str, phase: ContainerPhase, exit: i32, attempt: u32) -> ContainerState {
        ContainerState {
            id: format!("{name}-{attempt}"),
            name: name.into(),
            attempt,
            sandbox_id: "s1".into(),
            phase,
            created_at: 1_000_000_000 * i64::from(attempt + 1),
            started_at: 1_700_000_000_000_000_000,
            finished_at: if phase == ContainerPhase::Exited {
                1_700_000_001_000_000_000
            } else {
                0
            },
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            image_ref: "sha256:abc".into(),
            hash: String::new(),
        }
    }

    fn runtime(containers: Vec<ContainerState>) -> PodRuntime {
        PodRuntime {
            sandboxes: vec![SandboxState {
                id: "s1".into(),
                namespace: "default".into(),
                name: "p".into(),
                attempt: 0,
                ready: true,
                created_at: 1,
                ips: vec!["10.42.0.7".into()],
                cgroup_parent: None,
            }],
            containers,
        }
    }

    fn ctx() -> StatusContext<'static> {
        StatusContext {
            host_ip: "192.0.2.1",
            runtime_name: "containerd",
            now: Timestamp::from_second(1_700_000_100).unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a str {
        s.conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == t))
            .map_or("", |c| c.status.as_str())
    }

    #[test]
    fn a_running_pod_is_ready_with_its_ip() {
        let p = pod(json!({"metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "img"}]}}));
        let rt = runtime(vec![container("c", ContainerPhase::Running, 0, 0)]);
        let s = generate(&p, &rt, &Notes::default(), &ctx());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.7"));
        assert_eq!(s.host_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(cond(&s, "Ready"), "True");
        assert_eq!(cond(&s, "ContainersReady"), "True");
        assert_eq!(cond(&s, "Initialized"), "True");
        assert_eq!(cond(&s, "PodReadyToStartContainers"), "True");
        assert_eq!(cond(&s, "PodScheduled"), "True");
        let cs = &s.container_statuses.unwrap_or_default()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("containerd://c-0"));
        assert_eq!(cs.image_id, "sha256:abc");
        assert_eq!(cs.image, "img");
    }

    #[test]
    fn crash_loop_shows_waiting_with_the_last_exit() {
        let p = pod(json!({"metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "img"}]}}));
        let rt = runtime(vec![container("c", ContainerPhase::Exited, 1, 2)]);
        let mut notes = Notes::default();
        notes.waiting.insert(
            "c".into(),
            ("CrashLoopBackOff".into(), "back-off 20s".into()),
        );
        let s = generate(&p, &rt, &notes, &ctx());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready"), "False");
        let cs = &s.container_statuses.unwrap_or_default()[0];
        assert_eq!(cs.restart_count, 2);
        let w = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        assert_eq!(
            w.and_then(|w| w.reason.as_deref()),
            Some("CrashLoopBackOff")
        );
        let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        assert_eq!(last.map(|t| t.exit_code), Some(1));
        assert_eq!(last.and_then(|t| t.reason.as_deref()), Some("Error"));
    }

    #[test]
    fn phases() {
        let never = pod(json!({"metadata": {"name": "p"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}));
        let done = runtime(vec![container("c", ContainerPhase::Exited, 0, 0)]);
        let s = generate(&never, &done, &Notes::default(), &ctx());
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&s, "Ready"), "False");
        let failed = runtime(vec![container("c", ContainerPhase::Exited, 3, 0)]);
        let s = generate(&never, &failed, &Notes::default(), &ctx());
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let none = PodRuntime::default();
        let s = generate(&never, &none, &Notes::default(), &ctx());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cs = &s.container_statuses.unwrap_or_default()[0];
        let w = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        assert_eq!(
            w.and_then(|w| w.reason.as_deref()),
            Some("ContainerCreating")
        );

        let init = pod(json!({"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]}}));
        let rt = runtime(vec![container("i", ContainerPhase::Running, 0, 0)]);
        let s = generate(&init, &rt, &Notes::default(), &ctx());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Initialized"), "False");
        let rt = runtime(vec![
            container("c", ContainerPhase::Running, 0, 0),
            container("i", ContainerPhase::Exited, 0, 0),
        ]);
        let s = generate(&init, &rt, &Notes::default(), &ctx());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Initialized"), "True");

        // A deleted pod whose containers were killed ends Failed.
        let always =
            pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}));
        let killed = runtime(vec![container("c", ContainerPhase::Exited, 137, 0)]);
        let notes = Notes {
            terminating: true,
            ..Default::default()
        };
        let s = generate(&always, &killed, &notes, &ctx());
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn transition_times_are_kept_while_nothing_changes() {
        let mut p =
            pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}));
        let rt = runtime(vec![container("c", ContainerPhase::Running, 0, 0)]);
        let first = generate(&p, &rt, &Notes::default(), &ctx());
        p.status = Some(first.clone());
        let mut later = ctx();
        later.now = Timestamp::from_second(1_700_000_900).unwrap_or(Timestamp::UNIX_EPOCH);
        let second = generate(&p, &rt, &Notes::default(), &later);
        assert_eq!(
            serde_json::to_value(&first).unwrap_or_default(),
            serde_json::to_value(&second).unwrap_or_default()
        );
        let current = serde_json::to_value(&p.status).unwrap_or_default();
        assert!(merge_is_noop(
            &current,
            &serde_json::to_value(&second).unwrap_or_default()
        ));
        assert!(!merge_is_noop(&json!({"a": 1}), &json!({"a": 2})));
        assert!(merge_is_noop(&json!({"a": 1, "b": 2}), &json!({"a": 1})));
    }

    #[tokio::test]
    async fn a_stale_api_copy_does_not_cancel_a_status_change() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap_or_default());
        let Ok(client) = kube::Client::try_from(config) else {
            panic!("client");
        };
        let sm = StatusManager::new(client);
        let ready = |r: bool| PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "Ready".into(),
                status: if r { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        // What a restarted kubelet finds: the API says Ready.
        let mut p = pod(json!({"metadata": {"uid": "u", "name": "p", "namespace": "d"}}));
        p.status = Some(ready(true));
        assert!(!sm.set(&p, &ready(true)), "already in place");
        assert!(sm.set(&p, &ready(false)), "a change is queued");
        // Ready again before the API shows the write of false: the stale copy says True,
        // but the queued False must not be the last word.
        assert!(sm.set(&p, &ready(true)));
        let pending = lock(&sm.inner.pending);
        assert_eq!(
            pending
                .get("u")
                .map(|p| p.status["conditions"][0]["status"].clone()),
            Some(json!("True"))
        );
    }
}
