//! The CRD controllers of upstream's apiextensions-apiserver, in one follower of the watch
//! cache: naming (`NamesAccepted`, or the conflict), establishing (`Established`: the
//! kind is served — registered here at once, so a CRD is usable as soon as it is
//! written), and finalizing (a deleted CRD's objects are deleted, then its cleanup
//! finalizer removed). Kinds are registered before the server listens for CRDs already
//! stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use super::{registrations, set_condition, str_at};
use crate::error::{ApiError, ApiResult};
use crate::handler::ApiState;
use crate::registry::{DeleteOptions, ListQuery};
use crate::resources::ResourceInfo;
use crate::strategy::apiextensions::CLEANUP_FINALIZER;

/// What this server registered for one CRD.
struct Served {
    group: String,
    plural: String,
    kind: String,
    versions: Vec<String>,
    /// The CRD generation the registrations were built from.
    generation: i64,
    /// Set once the CRD is being deleted: creates are refused.
    terminating: Arc<std::sync::atomic::AtomicBool>,
}

/// CRDs this server serves, by CRD name, and those being finalized.
#[derive(Default)]
struct Registered {
    served: Mutex<HashMap<String, Served>>,
    finalizing: Mutex<std::collections::HashSet<String>>,
}

impl Registered {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Served>> {
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this call starts finalizing `name` (one finalizer task per CRD).
    fn start_finalizing(&self, name: &str) -> bool {
        self.finalizing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string())
    }

    fn done_finalizing(&self, name: &str) {
        self.finalizing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Another CRD (or a built-in kind) already using this CRD's plural or kind in its
    /// group: the condition's reason and message.
    fn conflict(&self, name: &str, crd: &Value) -> Option<(&'static str, String)> {
        let group = str_at(crd, "/spec/group");
        let plural = str_at(crd, "/spec/names/plural");
        let kind = str_at(crd, "/spec/names/kind");
        let served = self.lock();
        for (other, s) in served.iter() {
            if other == name || s.group != group {
                continue;
            }
            if s.plural == plural {
                return Some(("PluralConflict", format!("\"{plural}\" is already in use")));
            }
            if s.kind == kind {
                return Some(("KindConflict", format!("\"{kind}\" is already in use")));
            }
        }
        let ours = |k: &crate::kinds::KindRegistration| {
            served
                .values()
                .any(|s| s.group == k.info.group && s.plural == k.info.plural)
        };
        for k in crate::kinds::all() {
            if k.info.group == group && !ours(k) {
                if k.info.plural == plural {
                    return Some(("PluralConflict", format!("\"{plural}\" is already in use")));
                }
                if k.info.kind == kind {
                    return Some(("KindConflict", format!("\"{kind}\" is already in use")));
                }
            }
        }
        None
    }

    fn unregister(&self, name: &str) {
        if let Some(s) = self.lock().remove(name) {
            for v in &s.versions {
                crate::kinds::unregister(&s.group, v, &s.plural);
            }
        }
    }
}

fn crd_info() -> ResourceInfo {
    crate::resources::by_kind("apiextensions.k8s.io", "CustomResourceDefinition")
        .cloned()
        .unwrap_or_else(|_| {
            ResourceInfo::of::<
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
            >()
        })
}

/// Serves the CRDs already stored, then follows CRD changes for as long as the server runs.
pub async fn start(state: Arc<ApiState>) -> ApiResult<tokio::task::JoinHandle<()>> {
    let registered = Arc::new(Registered::default());
    let info = crd_info();
    let list = state
        .registry
        .list(&info, None, &ListQuery::default())
        .await?;
    for crd in list["items"].as_array().into_iter().flatten() {
        reconcile(&state, &registered, crd).await;
    }
    let rv = list
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(tokio::spawn(follow(state, registered, rv)))
}

async fn follow(state: Arc<ApiState>, registered: Arc<Registered>, mut rv: Option<String>) {
    let info = crd_info();
    loop {
        let watch = state
            .registry
            .watch(
                &info,
                None,
                Default::default(),
                Default::default(),
                rv.as_deref(),
                None,
            )
            .await;
        let mut events = match watch {
            Ok(w) => w.events,
            Err(e) => {
                tracing::warn!(error = %e.message, "watching CustomResourceDefinitions");
                // Resumed from the start: every CRD is reconciled again.
                rv = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            if let Some(r) = event.object.pointer("/metadata/resourceVersion") {
                rv = r.as_str().map(str::to_string);
            }
            match event.kind {
                "DELETED" => registered.unregister(crate::meta::name(&event.object)),
                "ADDED" | "MODIFIED" => reconcile(&state, &registered, &event.object).await,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Brings one CRD's served kinds and status up to date.
async fn reconcile(state: &Arc<ApiState>, registered: &Arc<Registered>, crd: &Value) {
    let name = crate::meta::name(crd).to_string();
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        let finalizing = crd
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f == CLEANUP_FINALIZER));
        if let Some(s) = registered.lock().get(&name) {
            s.terminating
                .store(true, std::sync::atomic::Ordering::Release);
        }
        if finalizing && registered.start_finalizing(&name) {
            tokio::spawn(finalize(state.clone(), registered.clone(), name));
        }
        return;
    }
    let generation = crd
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let conflict = registered.conflict(&name, crd);
    let current = registered
        .lock()
        .get(&name)
        .is_some_and(|s| s.generation == generation);
    let mut established = current;
    if conflict.is_none() && !current {
        match registrations(crd, &state.registry) {
            Ok((kinds, terminating)) => {
                let versions: Vec<String> =
                    kinds.iter().map(|k| k.info.version.to_string()).collect();
                let old = registered.lock().remove(&name);
                for k in kinds {
                    crate::kinds::register(k);
                }
                // Versions no longer served stop being served.
                if let Some(old) = old {
                    for v in old.versions.iter().filter(|v| !versions.contains(v)) {
                        crate::kinds::unregister(&old.group, v, &old.plural);
                    }
                }
                registered.lock().insert(
                    name.clone(),
                    Served {
                        group: str_at(crd, "/spec/group").to_string(),
                        plural: str_at(crd, "/spec/names/plural").to_string(),
                        kind: str_at(crd, "/spec/names/kind").to_string(),
                        versions,
                        generation,
                        terminating,
                    },
                );
                established = true;
            }
            Err(e) => {
                tracing::warn!(crd = %name, error = %e, "cannot serve a CustomResourceDefinition")
            }
        }
    }
    if let Err(e) = update_status(state, &name, conflict, established).await {
        tracing::warn!(crd = %name, error = %e.message, "updating a CustomResourceDefinition's status");
    }
}

/// The status the naming and establishing controllers write.
async fn update_status(
    state: &Arc<ApiState>,
    name: &str,
    conflict: Option<(&'static str, String)>,
    established: bool,
) -> ApiResult<()> {
    let info = crd_info();
    let result = state
        .registry
        .update_with(state.internal(), &info, None, name, Some("status"), |old| {
            let mut new = old.clone();
            match &conflict {
                None => {
                    let names = old.pointer("/spec/names").cloned().unwrap_or_default();
                    new["status"]["acceptedNames"] = names;
                    set_condition(
                        &mut new,
                        "NamesAccepted",
                        "True",
                        "NoConflicts",
                        "no conflicts found",
                    );
                }
                Some((reason, message)) => {
                    set_condition(&mut new, "NamesAccepted", "False", reason, message);
                }
            }
            if established {
                set_condition(
                    &mut new,
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                );
            } else {
                set_condition(
                    &mut new,
                    "Established",
                    "False",
                    "NotAccepted",
                    "not all names are accepted",
                );
            }
            // The storage version is recorded as stored (upstream's strategy does this on
            // every write).
            for v in old
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|v| v.get("storage") == Some(&json!(true)))
            {
                let stored = new["status"]
                    .as_object_mut()
                    .map(|s| s.entry("storedVersions").or_insert_with(|| json!([])));
                if let Some(list) = stored.and_then(Value::as_array_mut)
                    && let Some(n) = v.get("name")
                    && !list.contains(n)
                {
                    list.push(n.clone());
                }
            }
            Ok(new)
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing to say.
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes a deleted CRD's objects, then lets the CRD go (upstream's finalizer controller).
async fn finalize(state: Arc<ApiState>, registered: Arc<Registered>, name: String) {
    let Some((group, plural, version)) = registered.lock().get(&name).and_then(|s| {
        s.versions
            .first()
            .map(|v| (s.group.clone(), s.plural.clone(), v.clone()))
    }) else {
        // Never served here: nothing of it can be stored.
        let _ = remove_finalizer(&state, &name).await;
        registered.done_finalizing(&name);
        return;
    };
    for attempt in 0u32.. {
        match delete_objects(&state, &group, &version, &plural).await {
            Ok(0) => {
                if let Err(e) = remove_finalizer(&state, &name).await {
                    tracing::warn!(crd = %name, error = %e.message, "removing the cleanup finalizer");
                }
                registered.unregister(&name);
                registered.done_finalizing(&name);
                return;
            }
            Ok(left) => tracing::debug!(crd = %name, left, "custom objects still being deleted"),
            Err(e) => tracing::warn!(crd = %name, error = %e.message, "deleting custom objects"),
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(25) + 1))).await;
    }
}

/// Deletes every object of the kind; returns how many are still stored.
async fn delete_objects(
    state: &Arc<ApiState>,
    group: &str,
    version: &str,
    plural: &str,
) -> ApiResult<usize> {
    let Some(kind) = crate::kinds::by_plural(group, version, plural) else {
        return Ok(0);
    };
    let info = kind.info.clone();
    let list = state
        .registry
        .list(&info, None, &ListQuery::default())
        .await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut left = 0;
    for item in &items {
        let ns = crate::meta::namespace(item);
        let ns = (!ns.is_empty()).then_some(ns);
        match state
            .registry
            .delete(
                state.internal(),
                &info,
                ns,
                crate::meta::name(item),
                &DeleteOptions::default(),
            )
            .await
        {
            Ok((_, true)) => {}
            Ok((_, false)) => left += 1,
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(left)
}

async fn remove_finalizer(state: &Arc<ApiState>, name: &str) -> ApiResult<()> {
    let info = crd_info();
    let mut crd = match state.registry.get(&info, None, name).await {
        Ok(crd) => crd,
        Err(e) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    let Some(list) = crd
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    list.retain(|f| f != CLEANUP_FINALIZER);
    state
        .registry
        .update(
            &info,
            None,
            name,
            crd,
            None,
            crate::registry::WriteOptions::new(state.internal()),
        )
        .await
        .map(|_| ())
        .or_else(|e: ApiError| if e.code == 404 { Ok(()) } else { Err(e) })
}
