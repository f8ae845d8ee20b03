//! Events a component records about the objects it acts on (`kubectl describe` shows
//! them): fire-and-forget, as client-go's recorder (a write the API server did not answer is
//! tried again, up to 12 times 10 s apart); a lost event never fails a sync.
//!
//! Like client-go's correlator, an event repeating one already sent (same object, field path,
//! type, reason and message) within ten minutes is not created again: the existing one gets its
//! `count` raised and `lastTimestamp` moved, so a crash-looping container shows one
//! `BackOff` line with `x12` rather than twelve.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};

/// How long a sent event may be counted up instead of created anew (client-go's
/// `defaultAggregateIntervalInSeconds`-style window).
const REPEAT_WINDOW: Duration = Duration::from_secs(600);
/// Sent events remembered for counting; the cache starts over beyond this (client-go's LRU).
const MAX_REMEMBERED: usize = 4096;
/// Events written at once by one recorder. client-go's broadcaster writes them one at a
/// time; a burst (a controller's first pass over 1,000 nodes) would otherwise open a
/// connection per event.
const MAX_IN_FLIGHT: usize = 4;

/// What makes two events the same one, counted up.
type Key = (String, String, String, String, String, String);

struct Sent {
    /// The Event object's name, once created.
    name: Option<String>,
    count: i32,
    at: Instant,
}

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
    host: Option<String>,
    sent: Arc<Mutex<HashMap<Key, Sent>>>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// A reference to `obj` for `involvedObject`.
pub fn object_reference<K>(obj: &K) -> ObjectReference
where
    K: Resource<DynamicType = ()>,
{
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(client: Client, component: &'static str) -> Self {
        Recorder {
            client,
            component,
            host: None,
            sent: Arc::new(Mutex::new(HashMap::new())),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Events from a node's component name the node as `source.host` (the kubelet's).
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Records a `Normal` (or, with `warning`, `Warning`) event about `obj`.
    pub fn record<K>(&self, obj: &K, warning: bool, reason: &str, message: String)
    where
        K: Resource<DynamicType = ()>,
    {
        self.record_ref(object_reference(obj), warning, reason, message);
    }

    /// Records an event about `involved` (which may name a part of its object through
    /// `fieldPath`, e.g. `spec.containers{web}`).
    pub fn record_ref(
        &self,
        involved: ObjectReference,
        warning: bool,
        reason: &str,
        message: String,
    ) {
        let ns = involved
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let type_ = if warning { "Warning" } else { "Normal" };
        let key: Key = (
            involved.uid.clone().unwrap_or_default(),
            involved.field_path.clone().unwrap_or_default(),
            ns.clone(),
            type_.to_string(),
            reason.to_string(),
            message.clone(),
        );
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        // Counting up needs the earlier event's name; without it (still being created, or
        // never created) a new event is made.
        let repeat = {
            let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            if sent.len() >= MAX_REMEMBERED {
                sent.clear();
            }
            match sent.get_mut(&key) {
                Some(s) if s.at.elapsed() < REPEAT_WINDOW && s.name.is_some() => {
                    s.count += 1;
                    s.at = Instant::now();
                    s.name.clone().map(|n| (n, s.count))
                }
                _ => {
                    sent.insert(
                        key.clone(),
                        Sent {
                            name: None,
                            count: 1,
                            at: Instant::now(),
                        },
                    );
                    None
                }
            }
        };
        let name = involved.name.clone().unwrap_or_default();
        let mut event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}.")),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.to_string()),
            source: Some(EventSource {
                component: Some(self.component.to_string()),
                host: self.host.clone(),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now.clone()),
            count: Some(1),
            reporting_component: Some(self.component.to_string()),
            reporting_instance: self.host.clone(),
            ..Default::default()
        };
        if let Some((existing, count)) = &repeat {
            event.count = Some(*count);
            let patch = serde_json::json!({"count": count, "lastTimestamp": now});
            let (api, existing) = (api.clone(), existing.clone());
            let sent = self.sent.clone();
            let in_flight = self.in_flight.clone();
            tokio::spawn(async move {
                let _permit = in_flight.acquire().await;
                match api
                    .patch(&existing, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {}
                    // Expired (the API server's event TTL): create it again, still counted,
                    // as client-go does.
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        create(api, event, key, sent).await
                    }
                    Err(e) => tracing::debug!(error = %e, "counting up an event"),
                }
            });
            return;
        }
        let sent = self.sent.clone();
        let in_flight = self.in_flight.clone();
        tokio::spawn(async move {
            let _permit = in_flight.acquire().await;
            create(api, event, key, sent).await
        });
    }
}

/// Tries per event when the API server cannot be reached (client-go's `maxTriesPerEvent`).
const MAX_TRIES: u32 = 12;
/// The pause between tries (client-go's `defaultSleepDuration`); the first is a random part
/// of it, so that components do not all come back at once.
const RETRY_PAUSE: Duration = Duration::from_secs(10);

/// Creates `event` and remembers its name for counting up its repeats. As client-go's
/// `recordToSink`: an answer of the API server (even a refusal) is final, a failure to get
/// one is tried again, up to [`MAX_TRIES`] times.
async fn create(api: Api<Event>, event: Event, key: Key, sent: Arc<Mutex<HashMap<Key, Sent>>>) {
    for attempt in 1..=MAX_TRIES {
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                let mut sent = sent.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(s) = sent.get_mut(&key) {
                    s.name = created.metadata.name;
                }
                return;
            }
            Err(kube::Error::Api(e)) => {
                tracing::debug!(error = %e, "the API server refused an event");
                return;
            }
            Err(e) if attempt == MAX_TRIES => {
                tracing::warn!(error = %e, reason = ?event.reason, "cannot write an event; giving up");
            }
            Err(e) => {
                tracing::debug!(error = %e, attempt, "cannot write an event; retrying");
                let pause = if attempt == 1 {
                    RETRY_PAUSE.mul_f64(first_pause_fraction())
                } else {
                    RETRY_PAUSE
                };
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// A fraction in [0, 1) from the clock's nanoseconds: enough to spread retries out.
fn first_pause_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos) / 1e9
}
