//! What the container runtime has for one pod: its sandboxes and containers, found by the
//! `io.kubernetes.pod.uid` label, so a restarted kubelet adopts what is already running.

use std::collections::HashMap;

use crate::cri::{CriError, RuntimeClient, api};
use crate::kuberuntime::{
    ANNOTATION_CGROUP_PARENT, ANNOTATION_CONTAINER_HASH, ANNOTATION_TERMINATION_MESSAGE_PATH,
    ANNOTATION_TERMINATION_MESSAGE_POLICY, LABEL_POD_UID,
};

/// Upstream's limits: the termination-message file's last 4 KiB; with
/// `FallbackToLogsOnError`, the log's last 80 lines and at most 2 KiB of them.
const MAX_TERMINATION_MESSAGE: u64 = 4096;
const MAX_TERMINATION_LOG_LINES: usize = 80;
const MAX_TERMINATION_LOG_BYTES: usize = 2048;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxState {
    pub id: String,
    /// The pod's namespace and name (from the sandbox metadata).
    pub namespace: String,
    pub name: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
    /// Pod IPs (only while the sandbox is ready: a stopped sandbox has no network).
    pub ips: Vec<String>,
    pub cgroup_parent: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerPhase {
    Created,
    Running,
    Exited,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    pub sandbox_id: String,
    pub phase: ContainerPhase,
    /// Nanoseconds since the epoch, 0 when not yet.
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image_ref: String,
    pub hash: String,
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        self.phase == ContainerPhase::Running
    }

    pub fn is_exited(&self) -> bool {
        self.phase == ContainerPhase::Exited
    }

    fn from_status(s: api::ContainerStatus, sandbox_id: String) -> Self {
        let mut message = s.message.clone();
        if s.state == api::ContainerState::ContainerExited as i32 {
            // The runtime's own message, then what the container left (upstream's order).
            let t = termination_message(&s);
            if !t.is_empty() {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&t);
            }
        }
        let meta = s.metadata.unwrap_or_default();
        let phase = match api::ContainerState::try_from(s.state) {
            Ok(api::ContainerState::ContainerCreated) => ContainerPhase::Created,
            Ok(api::ContainerState::ContainerRunning) => ContainerPhase::Running,
            Ok(api::ContainerState::ContainerExited) => ContainerPhase::Exited,
            _ => ContainerPhase::Unknown,
        };
        ContainerState {
            id: s.id,
            name: meta.name,
            attempt: meta.attempt,
            sandbox_id,
            phase,
            created_at: s.created_at,
            started_at: s.started_at,
            finished_at: s.finished_at,
            exit_code: s.exit_code,
            reason: s.reason,
            message,
            image_ref: s.image_ref,
            hash: s
                .annotations
                .get(ANNOTATION_CONTAINER_HASH)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// The last `max` bytes of a file (upstream's `tail.ReadAtMost`).
fn read_at_most(path: &str, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > max {
        f.seek(SeekFrom::Start(len - max))?;
    }
    let mut out = Vec::new();
    f.take(max).read_to_end(&mut out)?;
    Ok(out)
}

/// Upstream's termination message of an exited container: the file mounted at its
/// `terminationMessagePath`, or with `FallbackToLogsOnError` and a failure (and an empty or
/// missing file) the end of its log.
fn termination_message(s: &api::ContainerStatus) -> String {
    let path = s
        .annotations
        .get(ANNOTATION_TERMINATION_MESSAGE_PATH)
        .map_or("", String::as_str);
    let fallback = s
        .annotations
        .get(ANNOTATION_TERMINATION_MESSAGE_POLICY)
        .is_some_and(|p| p == "FallbackToLogsOnError")
        && s.exit_code != 0
        && s.reason != "ContainerCannotRun";
    let mut check_logs = fallback;
    let mut message = String::new();
    if let Some(m) = s
        .mounts
        .iter()
        .find(|m| !path.is_empty() && m.container_path == path)
    {
        match read_at_most(&m.host_path, MAX_TERMINATION_MESSAGE) {
            Ok(data) => {
                check_logs = fallback && data.is_empty();
                message = String::from_utf8_lossy(&data).into_owned();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return format!("Error on reading termination log {}: {e}", m.host_path);
            }
        }
    }
    if check_logs {
        let text = std::fs::read_to_string(&s.log_path).unwrap_or_default();
        let lines = crate::cri::logs::messages(&text);
        let tail = &lines[lines.len().saturating_sub(MAX_TERMINATION_LOG_LINES)..];
        let mut out = String::new();
        for (_, l) in tail {
            out.push_str(l);
            out.push('\n');
        }
        let mut start = out.len().saturating_sub(MAX_TERMINATION_LOG_BYTES);
        while !out.is_char_boundary(start) {
            start += 1;
        }
        message = out[start..].to_owned();
    }
    message
}

/// A pod's sandboxes and containers, newest first.
#[derive(Clone, Debug, Default)]
pub struct PodRuntime {
    pub sandboxes: Vec<SandboxState>,
    pub containers: Vec<ContainerState>,
}

fn uid_selector(uid: &str) -> HashMap<String, String> {
    HashMap::from([(LABEL_POD_UID.to_owned(), uid.to_owned())])
}

impl PodRuntime {
    /// Reads the pod's sandboxes and containers from the runtime.
    pub async fn inspect(cri: &RuntimeClient, uid: &str) -> Result<Self, CriError> {
        let mut list = cri
            .list_pod_sandbox(Some(api::PodSandboxFilter {
                label_selector: uid_selector(uid),
                ..Default::default()
            }))
            .await?;
        list.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let mut sandboxes = Vec::with_capacity(list.len());
        for (i, s) in list.into_iter().enumerate() {
            let ready = s.state == api::PodSandboxState::SandboxReady as i32;
            let mut ips = Vec::new();
            // Only the newest sandbox's network matters (the pod's IP).
            if i == 0 && ready {
                match cri.pod_sandbox_status(&s.id, false).await {
                    Ok(st) => {
                        if let Some(net) = st.status.and_then(|s| s.network)
                            && !net.ip.is_empty()
                        {
                            ips.push(net.ip);
                            ips.extend(net.additional_ips.into_iter().map(|p| p.ip));
                        }
                    }
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                }
            }
            let meta = s.metadata.clone().unwrap_or_default();
            sandboxes.push(SandboxState {
                attempt: meta.attempt,
                namespace: meta.namespace,
                name: meta.name,
                cgroup_parent: s.annotations.get(ANNOTATION_CGROUP_PARENT).cloned(),
                id: s.id,
                ready,
                created_at: s.created_at,
                ips,
            });
        }
        let listed = cri
            .list_containers(Some(api::ContainerFilter {
                label_selector: uid_selector(uid),
                ..Default::default()
            }))
            .await?;
        let mut containers = Vec::with_capacity(listed.len());
        for c in listed {
            match cri.container_status(&c.id, false).await {
                Ok(s) => containers.push(ContainerState::from_status(s, c.pod_sandbox_id)),
                // Removed between the list and the status call.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        containers.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.attempt)));
        Ok(PodRuntime {
            sandboxes,
            containers,
        })
    }

    /// The newest sandbox (the one the pod's containers run in).
    pub fn sandbox(&self) -> Option<&SandboxState> {
        self.sandboxes.first()
    }

    /// Containers of the current sandbox named `name`, newest first.
    pub fn instances<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a ContainerState> + 'a {
        let sandbox = self.sandbox().map(|s| s.id.as_str());
        let name = name.to_owned();
        self.containers
            .iter()
            .filter(move |c| c.name == name && Some(c.sandbox_id.as_str()) == sandbox)
    }

    /// The newest container named `name` in the current sandbox.
    pub fn latest(&self, name: &str) -> Option<&ContainerState> {
        self.instances(name).next()
    }

    /// The one before the newest (for `lastState`).
    pub fn previous(&self, name: &str) -> Option<&ContainerState> {
        self.instances(name).nth(1)
    }

    /// The attempt number of the next container named `name`: one more than any before, in
    /// any sandbox (containerd refuses a reused name/attempt while the old one exists).
    pub fn next_attempt(&self, name: &str) -> u32 {
        self.containers
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.attempt + 1)
            .max()
            .unwrap_or(0)
    }

    /// How many times the container was restarted (its newest instance's attempt).
    pub fn restart_count(&self, name: &str) -> u32 {
        self.containers
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.attempt)
            .max()
            .unwrap_or(0)
    }

    pub fn running(&self) -> impl Iterator<Item = &ContainerState> {
        self.containers.iter().filter(|c| !c.is_exited())
    }
}
