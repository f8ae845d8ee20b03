//! The kubelet's events about pods and their containers (`kubectl describe pod`), with the
//! reasons and messages upstream's kubelet uses (pkg/kubelet/events).

use client_go::events::{Recorder, object_reference};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};

/// Where events about one pod or one of its containers go.
#[derive(Clone)]
pub struct EventTarget {
    recorder: Recorder,
    reference: ObjectReference,
}

impl EventTarget {
    /// The pod itself.
    pub fn pod(recorder: &Recorder, pod: &Pod) -> Self {
        EventTarget {
            recorder: recorder.clone(),
            reference: object_reference(pod),
        }
    }

    /// Container `name` of `pod`: `fieldPath` `spec.containers{name}` or
    /// `spec.initContainers{name}`, as upstream's container references.
    pub fn container(recorder: &Recorder, pod: &Pod, name: &str) -> Self {
        let init = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.name == name));
        let mut reference = object_reference(pod);
        let field = if init { "initContainers" } else { "containers" };
        reference.field_path = Some(format!("spec.{field}{{{name}}}"));
        EventTarget {
            recorder: recorder.clone(),
            reference,
        }
    }

    pub fn normal(&self, reason: &str, message: String) {
        self.recorder
            .record_ref(self.reference.clone(), false, reason, message);
    }

    pub fn warning(&self, reason: &str, message: String) {
        self.recorder
            .record_ref(self.reference.clone(), true, reason, message);
    }
}

/// Go's `time.Duration` string for the pull times in `Pulled` messages ("1.234s", "512ms").
pub fn go_duration_precise(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{}ms", (ms * 1000.0).round() / 1000.0)
    } else {
        format!("{}s", (d.as_secs_f64() * 1e9).round() / 1e9)
    }
}

/// Paces a recurring event (say `FailedMount` at every sync): due at once, then after an
/// interval doubling from 2 s to 128 s, as upstream's mount retries back off. The recorder
/// counts each occurrence up on the one Event.
#[derive(Debug)]
pub struct Pace {
    next: tokio::time::Instant,
    interval: std::time::Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            next: tokio::time::Instant::now(),
            interval: std::time::Duration::from_secs(2),
        }
    }
}

impl Pace {
    /// Whether the event should be recorded now; if so, the next one waits longer.
    pub fn due(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if now < self.next {
            return false;
        }
        self.next = now + self.interval;
        self.interval = (self.interval * 2).min(std::time::Duration::from_secs(128));
        true
    }
}
