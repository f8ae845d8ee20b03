//! The generic REST store: one implementation of get, list, create, update, patch, delete
//! and watch for every kind, parameterised by the kind's [`Strategy`] (as Kubernetes'
//! `pkg/registry/generic`). Objects are stored as JSON under
//! `/registry/<group>/<plural>/[<namespace>/]<name>`; `resourceVersion` is never stored, it
//! is the store's `mod_revision`. Create, update and delete are in their own modules, along
//! upstream's `Store` seams; what a write needs from the layers above (the user, admission)
//! comes in with each call as a [`RequestContext`] (see [`admit`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use store::{EventType, ListOptions, Store};

use crate::conversion;
use crate::encryption::{EncryptionConfig, Transformer};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::watch_cache::{self, Start, WatchCache};

pub mod admit;
mod codec;
mod create;
mod delete;
pub mod hooks;
mod update;
mod watch;
pub use admit::{Admit, Attributes, Operation, RequestContext};
use codec::{decode, unseal, with_resource_version};
pub use delete::DeleteOptions;
pub use update::{Patch, PatchKind};

/// How long Events live by default (the API server's `--event-ttl`).
pub const DEFAULT_EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Retries of a read-modify-write that lost a race.
const UPDATE_RETRIES: usize = 16;

pub struct Registry {
    pub store: Arc<dyn Store>,
    /// Serves LIST and WATCH.
    pub cache: Arc<WatchCache>,
    /// Where LISTs and WATCHes were served from.
    pub reads: ReadCounters,
    /// How long Events live; they are stored with this time-to-live.
    pub event_ttl: std::time::Duration,
    /// Encryption at rest (`--encryption-provider-config`); `None`: everything is plain.
    pub encryption: Option<Arc<EncryptionConfig>>,
    /// Objects admission has read from the watch cache, decoded, by key with the revision
    /// decoded (listers hold decoded objects, as upstream's informers do).
    decoded: std::sync::Mutex<HashMap<String, (i64, Arc<Value>)>>,
}

/// How many decoded objects [`Registry::decoded`] keeps before starting over (objects
/// deleted since they were read would otherwise stay).
const DECODED_MAX: usize = 20_000;

/// A list request's query.
#[derive(Default)]
pub struct ListQuery {
    pub label: LabelSelector,
    pub field: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
}

/// One watch event, as sent to clients.
pub struct WatchEvent {
    pub kind: &'static str,
    pub object: Value,
}

/// LISTs and WATCHes by where they were served from (exported on `/metrics`).
#[derive(Default)]
pub struct ReadCounters {
    list_cache: AtomicU64,
    list_store: AtomicU64,
    watch_cache: AtomicU64,
    watch_store: AtomicU64,
}

impl ReadCounters {
    pub fn render(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP apiserver_list_total LIST requests by where they were served from.\n# TYPE apiserver_list_total counter\napiserver_list_total{{source=\"cache\"}} {}\napiserver_list_total{{source=\"store\"}} {}\n# HELP apiserver_watch_total WATCH requests by where they were served from.\n# TYPE apiserver_watch_total counter\napiserver_watch_total{{source=\"cache\"}} {}\napiserver_watch_total{{source=\"store\"}} {}\n",
            n(&self.list_cache),
            n(&self.list_store),
            n(&self.watch_cache),
            n(&self.watch_store)
        )
    }
}

/// A watch: its events, and the revision it has delivered everything up to (0 while the
/// initial objects are still being sent), which is what a bookmark may promise.
pub struct Watch {
    pub events: BoxStream<'static, ApiResult<WatchEvent>>,
    pub progress: Arc<std::sync::atomic::AtomicI64>,
}

/// Per-request options of a write.
#[derive(Clone)]
pub struct WriteOptions<'a> {
    /// Who writes, through which admission, dry run or not.
    pub ctx: RequestContext<'a>,
    /// `fieldValidation`: what unknown fields do.
    pub validation: crate::typed::FieldValidation,
    /// Whose `Update` entry in managedFields this write's changes go to (none for
    /// server-side apply, which records its own `Apply` entry).
    pub field_manager: Option<String>,
}

impl<'a> WriteOptions<'a> {
    /// A write in `ctx` with the default field validation and no field manager.
    pub fn new(ctx: RequestContext<'a>) -> Self {
        WriteOptions {
            ctx,
            validation: Default::default(),
            field_manager: None,
        }
    }
}

/// The continue token: where the next page starts, in which snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn continue_token(rv: i64, start: String) -> ApiResult<String> {
    let token = serde_json::to_vec(&ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start,
    })
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(token))
}

/// Empty metadata lists and maps are absent, as Kubernetes writes them (`omitempty`): a
/// pod whose last owner reference was removed has no `ownerReferences`, not `[]`.
fn drop_empty_metadata(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "ownerReferences",
            "finalizers",
            "labels",
            "annotations",
            "managedFields",
        ] {
            let empty = match m.get(k) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                m.remove(k);
            }
        }
    }
}

fn parse_rv(rv: &str) -> ApiResult<i64> {
    rv.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

impl Registry {
    pub fn new(store: Arc<dyn Store>, event_ttl: std::time::Duration) -> Self {
        Registry {
            cache: WatchCache::start(store.clone()),
            reads: ReadCounters::default(),
            store,
            event_ttl,
            encryption: None,
            decoded: Default::default(),
        }
    }

    /// A watch-cache entry decoded, once per revision.
    fn decoded(&self, info: &ResourceInfo, kv: &store::KeyValue) -> ApiResult<Arc<Value>> {
        let mut known = self.decoded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((rev, obj)) = known.get(&kv.key)
            && *rev == kv.mod_revision
        {
            return Ok(obj.clone());
        }
        let obj = Arc::new(decode(self.transformer(info).as_deref(), info, kv)?);
        if known.len() >= DECODED_MAX {
            known.clear();
        }
        known.insert(kv.key.clone(), (kv.mod_revision, obj.clone()));
        Ok(obj)
    }

    /// How a resource is encrypted at rest, if it is.
    fn transformer(&self, info: &ResourceInfo) -> Option<Arc<Transformer>> {
        self.encryption
            .as_ref()
            .and_then(|e| e.for_resource(info.group, info.plural))
    }

    /// The time-to-live objects of a kind are stored with: `--event-ttl` for kinds whose
    /// hooks say they expire (Events), none for the rest.
    fn ttl_for(&self, info: &ResourceInfo) -> Option<std::time::Duration> {
        crate::kinds::of(info)
            .hooks()
            .expires()
            .then_some(self.event_ttl)
    }

    fn prefix(info: &ResourceInfo, ns: Option<&str>) -> String {
        match ns.filter(|_| info.namespaced) {
            Some(ns) => format!("{}{ns}/", info.storage_prefix()),
            None => info.storage_prefix(),
        }
    }

    fn key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> String {
        format!("{}{name}", Self::prefix(info, ns))
    }

    pub async fn get(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let kv = self
            .store
            .get(&Self::key(info, ns, name))
            .await
            .map_err(|e| ApiError::from_store(info, name, e))?
            .ok_or_else(|| ApiError::not_found(info, name))?;
        decode(self.transformer(info).as_deref(), info, &kv)
    }

    /// An object as the watch cache holds it, without waiting for the cache to catch up (how
    /// upstream's admission plugins read through listers); a miss reads the store, so an
    /// object created a moment ago is still found.
    pub async fn get_cached(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Arc<Value>> {
        match self.cache.get(&Self::key(info, ns, name)) {
            Some(kv) => self.decoded(info, &kv),
            None => self.get(info, ns, name).await.map(Arc::new),
        }
    }

    /// Every object of a kind (in `ns`, or all) as the watch cache holds it now, decoded,
    /// without a list around them: what upstream's admission plugins read from listers.
    /// Before the cache is ready, the store answers.
    pub async fn cached_objects(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
    ) -> ApiResult<Vec<Arc<Value>>> {
        match self.cache.snapshot(&Self::prefix(info, ns), None, None) {
            Some(snap) => snap.kvs.iter().map(|kv| self.decoded(info, kv)).collect(),
            None => {
                let q = ListQuery {
                    resource_version: Some("0".into()),
                    ..Default::default()
                };
                let tf = self.transformer(info);
                let (kvs, _, _) = self.list_matching(info, ns, &q).await?;
                kvs.iter()
                    .map(|kv| decode(tf.as_deref(), info, kv).map(Arc::new))
                    .collect()
            }
        }
    }

    /// The stored objects matching `q` (raw), the list's revision and the continue token.
    async fn list_matching(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &ListQuery,
    ) -> ApiResult<(Vec<store::KeyValue>, i64, Option<String>)> {
        let prefix = Self::prefix(info, ns);
        let (mut start, mut revision) = (None, None);
        if let Some(token) = q.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let t: ContinueToken = base64::engine::general_purpose::STANDARD
                .decode(token)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .filter(|t: &ContinueToken| t.start.starts_with(&prefix))
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            start = Some(t.start);
            revision = Some(t.rv);
        } else if let Some(rv) = q
            .resource_version
            .as_deref()
            .filter(|r| !r.is_empty() && *r != "0")
        {
            // Kubernetes' default match for a list RV is "not older than", which the latest
            // state satisfies.
            parse_rv(rv)?;
        }
        let filtered = !q.label.is_empty() || !q.field.is_empty();
        let limit = q.limit.filter(|l| *l > 0);
        let tf = self.transformer(info);
        if let Some(snap) = self
            .cached_snapshot(&prefix, q, start.as_deref(), revision)
            .await?
        {
            self.reads.list_cache.fetch_add(1, Ordering::Relaxed);
            return Self::page(tf.as_deref(), info, snap, q, limit);
        }
        self.reads.list_store.fetch_add(1, Ordering::Relaxed);
        let mut items = Vec::new();
        let mut list_rev;
        let mut next_start;
        loop {
            let res = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        revision,
                        limit: limit.map(|l| (l - items.len()).max(1)),
                        start_key: start.clone(),
                    },
                )
                .await
                .map_err(|e| match e {
                    store::Error::Compacted { .. } => ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ),
                    e => ApiError::from_store(info, "", e),
                })?;
            list_rev = res.revision;
            revision = Some(res.revision);
            next_start = res.kvs.last().map(|kv| format!("{}\0", kv.key));
            for kv in res.kvs {
                if filtered {
                    let obj = decode(tf.as_deref(), info, &kv)?;
                    if !(q.label.matches(&obj) && q.field.matches(&obj)) {
                        continue;
                    }
                }
                items.push(kv);
            }
            let full = limit.is_some_and(|l| items.len() >= l);
            if !res.more || full || limit.is_none() {
                if !res.more {
                    next_start = None;
                }
                break;
            }
            start = next_start.clone();
        }
        let token = next_start
            .map(|start| continue_token(list_rev, start))
            .transpose()?;
        Ok((items, list_rev, token))
    }

    /// The cache's copy of a list's objects, when it can serve the request: a first page
    /// once the cache is as fresh as the request needs (a consistent read when no
    /// resourceVersion is given), a continuation while the cache is still at the token's
    /// revision. Otherwise the store serves it.
    async fn cached_snapshot(
        &self,
        prefix: &str,
        q: &ListQuery,
        start: Option<&str>,
        token_rev: Option<i64>,
    ) -> ApiResult<Option<watch_cache::Snapshot>> {
        if token_rev.is_some() {
            return Ok(self.cache.snapshot(prefix, start, token_rev));
        }
        let fresh = match q.resource_version.as_deref().filter(|r| !r.is_empty()) {
            Some("0") => true,
            Some(rv) => self.cache.wait_fresh(Some(parse_rv(rv)?)).await,
            None => self.cache.wait_fresh(None).await,
        };
        Ok(fresh
            .then(|| self.cache.snapshot(prefix, None, None))
            .flatten())
    }

    /// One page of a cached snapshot, through the selectors.
    fn page(
        tf: Option<&Transformer>,
        info: &ResourceInfo,
        snap: watch_cache::Snapshot,
        q: &ListQuery,
        limit: Option<usize>,
    ) -> ApiResult<(Vec<store::KeyValue>, i64, Option<String>)> {
        let filtered = !q.label.is_empty() || !q.field.is_empty();
        let mut items = Vec::new();
        let mut kvs = snap.kvs.into_iter().peekable();
        for kv in kvs.by_ref() {
            if filtered {
                let obj = decode(tf, info, &kv)?;
                if !(q.label.matches(&obj) && q.field.matches(&obj)) {
                    continue;
                }
            }
            items.push(kv);
            if limit.is_some_and(|l| items.len() >= l) {
                break;
            }
        }
        let token = match (kvs.peek(), items.last()) {
            (Some(_), Some(last)) => Some(continue_token(snap.rev, format!("{}\0", last.key))?),
            _ => None,
        };
        Ok((items, snap.rev, token))
    }

    fn list_metadata(list_rev: i64, token: Option<String>) -> Value {
        let mut metadata = json!({"resourceVersion": list_rev.to_string()});
        if let Some(t) = token {
            metadata["continue"] = json!(t);
        }
        metadata
    }

    /// A `<Kind>List` of the objects matching `q`, paginated as Kubernetes does.
    pub async fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &ListQuery,
    ) -> ApiResult<Value> {
        let (kvs, list_rev, token) = self.list_matching(info, ns, q).await?;
        let tf = self.transformer(info);
        let items = kvs
            .iter()
            .map(|kv| decode(tf.as_deref(), info, kv))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(json!({
            "kind": format!("{}List", info.kind),
            "apiVersion": info.api_version(),
            "metadata": Self::list_metadata(list_rev, token),
            "items": items,
        }))
    }

    /// The same list as JSON bytes, built from the stored bytes without re-encoding each
    /// object: the hot path of a plain LIST.
    pub async fn list_json(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &ListQuery,
    ) -> ApiResult<Vec<u8>> {
        let (kvs, list_rev, token) = self.list_matching(info, ns, q).await?;
        let head = json!({
            "kind": format!("{}List", info.kind),
            "apiVersion": info.api_version(),
            "metadata": Self::list_metadata(list_rev, token),
        });
        let mut out = serde_json::to_vec(&head).map_err(|e| ApiError::internal(e.to_string()))?;
        out.pop(); // the closing brace: items follow
        out.extend_from_slice(b",\"items\":[");
        let size: usize = kvs.iter().map(|kv| kv.value.len() + 40).sum();
        let tf = self.transformer(info);
        out.reserve(size + 2);
        let convert = conversion::needed(info);
        for (i, kv) in kvs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let spliced = if convert {
                None
            } else {
                with_resource_version(&unseal(tf.as_deref(), kv)?.data, kv.mod_revision)
            };
            match spliced {
                Some(bytes) => out.extend_from_slice(&bytes),
                // Not in the canonical layout: take the slow path for this one.
                None => out.extend_from_slice(
                    &serde_json::to_vec(&decode(tf.as_deref(), info, kv)?)
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                ),
            }
        }
        // Go's encoder ends every body with a newline.
        out.extend_from_slice(b"]}\n");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::codec::encode;
    use super::*;

    #[test]
    fn resource_version_splices_into_stored_bytes() {
        let obj = json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}, "kind": "X", "apiVersion": "v1", "metadata": {"name": "n"}});
        let info = crate::resources::namespace_info();
        let stored = encode(&info, &obj).unwrap();
        let spliced: Value =
            serde_json::from_slice(&with_resource_version(&stored, 42).unwrap()).unwrap();
        let mut want = obj.clone();
        want["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(spliced, want);
        let empty = encode(
            &info,
            &json!({"apiVersion": "v1", "kind": "X", "metadata": {}}),
        )
        .unwrap();
        let spliced: Value =
            serde_json::from_slice(&with_resource_version(&empty, 7).unwrap()).unwrap();
        assert_eq!(spliced["metadata"], json!({"resourceVersion": "7"}));
        // Bytes in another layout are not spliced.
        assert!(with_resource_version(br#"{"spec":{"x":1},"metadata":{}}"#, 1).is_none());
    }
}
