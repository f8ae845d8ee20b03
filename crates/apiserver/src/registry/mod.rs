//! The generic REST store: one implementation of get, list, create, update, patch, delete
//! and watch for every kind, parameterised by the kind's [`Strategy`] (as Kubernetes'
//! `pkg/registry/generic`). Objects are stored as JSON under
//! `/registry/<group>/<plural>/[<namespace>/]<name>`; `resourceVersion` is never stored, it
//! is the store's `mod_revision`.

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
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::service_alloc;
use crate::strategy;
use crate::watch_cache::{self, Start, WatchCache};

mod codec;
mod watch;
use codec::{decode, decode_stale, encode, seal, unseal, with_resource_version};

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
    /// The authorizer, for admission's RBAC escalation checks; unset: authorization is off.
    pub authorizer: std::sync::OnceLock<Arc<crate::authz::Authorizer>>,
    /// Admission plugins turned off (`--disable-admission-plugins`).
    pub disabled_admission: std::collections::HashSet<String>,
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

/// How a patch body is to be applied.
#[derive(Clone, Copy, Debug)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
}

/// A patch request's body and type.
#[derive(Clone, Debug)]
pub struct Patch {
    pub kind: PatchKind,
    pub body: Value,
}

impl Patch {
    /// Applies the patch to `doc`.
    pub fn apply_to(&self, doc: &mut Value) -> ApiResult<()> {
        match self.kind {
            PatchKind::Json => {
                let p: json_patch::Patch = serde_json::from_value(self.body.clone())
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(doc, &p).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the JSON patch could not be applied: {e}"),
                    )
                })
            }
            PatchKind::Merge => {
                json_patch::merge(doc, &self.body);
                Ok(())
            }
            PatchKind::Strategic => crate::patch::strategic_merge(doc, &self.body),
        }
    }
}

/// Per-request options of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// `fieldValidation`: what unknown fields do.
    pub validation: crate::typed::FieldValidation,
    /// Whose `Update` entry in managedFields this write's changes go to (none for
    /// server-side apply, which records its own `Apply` entry).
    pub field_manager: Option<String>,
}

#[derive(Default, Debug)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`: Orphan, Background or Foreground (the garbage collector acts on
    /// the finalizers this sets).
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
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

/// Whether something still holds the object's deletion: `metadata.finalizers`, or for a
/// namespace `spec.finalizers` (emptied by namespace finalization).
fn has_finalizers(obj: &Value) -> bool {
    let non_empty = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
    };
    non_empty("/metadata/finalizers")
        || (obj.get("kind").and_then(Value::as_str) == Some("Namespace")
            && non_empty("/spec/finalizers"))
}

/// The garbage collector's finalizers for a delete's propagation policy: `orphan` (its
/// dependents lose their owner reference), `foregroundDeletion` (dependents go first), or
/// neither (Background: the object goes now, dependents after). A core/v1
/// ReplicationController deleted without a policy orphans its pods, as Kubernetes keeps for
/// compatibility; everything else defaults to Background.
fn with_propagation_finalizers(
    info: &ResourceInfo,
    mut obj: Value,
    policy: Option<&str>,
) -> ApiResult<Value> {
    const ORPHAN: &str = "orphan";
    const FOREGROUND: &str = "foregroundDeletion";
    let policy = match policy {
        Some(p) => p,
        None if info.group.is_empty() && info.kind == "ReplicationController" => "Orphan",
        None => return Ok(obj),
    };
    let (add, remove): (&[&str], &[&str]) = match policy {
        "Orphan" => (&[ORPHAN], &[FOREGROUND]),
        "Foreground" => (&[FOREGROUND], &[ORPHAN]),
        "Background" => (&[], &[ORPHAN, FOREGROUND]),
        other => {
            return Err(ApiError::invalid(
                info,
                meta::name(&obj),
                vec![Cause {
                    reason: "FieldValueNotSupported",
                    field: "propagationPolicy".into(),
                    message: format!(
                        "Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                }],
            ));
        }
    };
    let m = meta::metadata_mut(&mut obj);
    let mut finalizers: Vec<Value> = m
        .get("finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    finalizers.retain(|f| !f.as_str().is_some_and(|f| remove.contains(&f)));
    for f in add {
        if !finalizers.iter().any(|x| x.as_str() == Some(f)) {
            finalizers.push(json!(f));
        }
    }
    if finalizers.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(obj)
}

/// Whether anything but metadata and status differs: what bumps `metadata.generation`.
fn spec_changed(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(new) != strip(old)
}

impl Registry {
    pub fn new(store: Arc<dyn Store>, event_ttl: std::time::Duration) -> Self {
        Registry {
            cache: WatchCache::start(store.clone()),
            reads: ReadCounters::default(),
            store,
            event_ttl,
            authorizer: Default::default(),
            disabled_admission: Default::default(),
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

    /// The time-to-live objects of a kind are stored with: Events expire, nothing else does.
    fn ttl_for(&self, info: &ResourceInfo) -> Option<std::time::Duration> {
        (info.kind == "Event" && matches!(info.group, "" | "events.k8s.io"))
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
        for (i, kv) in kvs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let spliced = if conversion::needed(info) {
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

    /// Checks a body's apiVersion/kind and fills them in when absent.
    fn check_type(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let api_version = info.api_version();
        match obj.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => obj["apiVersion"] = json!(api_version),
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        match obj.get("kind").and_then(Value::as_str) {
            None | Some("") => obj["kind"] = json!(info.kind),
            Some(k) if k == info.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    info.kind
                )));
            }
        }
        Ok(())
    }

    /// Sets or checks the object's namespace against the request's.
    fn check_object_namespace(
        info: &ResourceInfo,
        ns: Option<&str>,
        obj: &mut Value,
    ) -> ApiResult<()> {
        let m = meta::metadata_mut(obj);
        if !info.namespaced {
            m.remove("namespace");
            return Ok(());
        }
        let ns = ns.unwrap_or("default");
        match m.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("namespace".into(), json!(ns));
            }
            Some(n) if n == ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        Ok(())
    }

    pub async fn create(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        opts: WriteOptions,
    ) -> ApiResult<Value> {
        let strategy = strategy::for_resource(info);
        Self::check_type(info, &mut obj)?;
        Self::check_object_namespace(info, ns, &mut obj)?;
        let mut obj = crate::typed::decode(info, obj, opts.validation)?;
        let m = meta::metadata_mut(&mut obj);
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = match (
            name.is_empty(),
            m.get("generateName").and_then(Value::as_str),
        ) {
            (true, Some(prefix)) if !prefix.is_empty() => {
                format!("{prefix}{}", meta::random_suffix())
            }
            _ => name,
        };
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(meta::new_uid().to_string()));
        m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        for k in [
            "resourceVersion",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            m.remove(k);
        }
        if strategy.tracks_generation() {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        strategy.defaults(&mut obj);
        strategy.prepare_for_create(&mut obj);
        let user = crate::authn::current_user();
        let ns_owned = meta::namespace(&obj).to_string();
        let attrs = crate::admission::Attributes {
            operation: crate::admission::Operation::Create,
            info,
            namespace: &ns_owned,
            name: &name,
            subresource: None,
            old: None,
            user,
            dry_run: opts.dry_run,
        };
        crate::admission::mutate(self, &attrs, &mut obj).await?;
        if let Some(manager) = &opts.field_manager {
            crate::apply::record_update(None, &mut obj, manager, &info.api_version(), None);
        }
        let mut causes: Vec<Cause> = strategy::validate_name(strategy.as_ref(), &name)
            .into_iter()
            .collect();
        causes.extend(strategy.validate(&obj));
        if !causes.is_empty() {
            return Err(ApiError::invalid(info, &name, causes));
        }
        crate::admission::validate(self, &attrs, &obj).await?;
        crate::zero_fields::fill(info, &mut obj);
        if opts.dry_run {
            return Ok(obj);
        }
        let service = service_alloc::is_service(info);
        if service {
            service_alloc::allocate(&self.store, &mut obj).await?;
        }
        drop_empty_metadata(&mut obj);
        let key = Self::key(info, Some(meta::namespace(&obj)), &name);
        let rev = match self
            .store
            .create(
                &key,
                seal(self.transformer(info).as_deref(), &key, encode(info, &obj)?)?,
                self.ttl_for(info),
            )
            .await
        {
            Ok(rev) => rev,
            Err(e) => {
                if service {
                    service_alloc::release_all(&self.store, &obj).await;
                }
                return Err(ApiError::from_store(info, &name, e));
            }
        };
        meta::set_resource_version(&mut obj, rev);
        Ok(obj)
    }

    /// Read-modify-write of one object, retried while other writers win the race.
    /// `f` gets the current object and returns the new one (or an error to stop).
    pub async fn update_with<F>(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        dry_run: bool,
        mut f: F,
    ) -> ApiResult<Value>
    where
        F: FnMut(&Value) -> ApiResult<Value> + Send,
    {
        let user = crate::authn::current_user();
        let key = Self::key(info, ns, name);
        let tf = self.transformer(info);
        let mut current = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(info, name, e))?
            .ok_or_else(|| ApiError::not_found(info, name))?;
        for _ in 0..UPDATE_RETRIES {
            let (old, stale) = decode_stale(tf.as_deref(), info, &current)?;
            let mut new = f(&old)?;
            drop_empty_metadata(&mut new);
            crate::zero_fields::fill(info, &mut new);
            meta::set_resource_version(&mut new, current.mod_revision);
            // Unchanged is a no-op, unless it was stored with an older key: rewriting every
            // object after a key rotation re-encrypts it, as upstream.
            if new == old && !stale {
                return Ok(new);
            }
            let attrs = crate::admission::Attributes {
                operation: crate::admission::Operation::Update,
                info,
                namespace: ns.unwrap_or(""),
                name,
                subresource,
                old: Some(&old),
                user: user.clone(),
                dry_run,
            };
            crate::admission::mutate(self, &attrs, &mut new).await?;
            crate::admission::validate(self, &attrs, &new).await?;
            if dry_run {
                return Ok(new);
            }
            let service = service_alloc::is_service(info);
            if service {
                service_alloc::reallocate(&self.store, &mut new, &old).await?;
            }
            // An object whose deletion waits only on finalizers goes once they are gone.
            let finalizers_done = new.pointer("/metadata/deletionTimestamp").is_some()
                && !has_finalizers(&new)
                && new
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    == Some(0);
            let result = if finalizers_done {
                self.store
                    .delete(&key, Some(current.mod_revision))
                    .await
                    .map(|(rev, _)| rev)
            } else {
                self.store
                    .update(
                        &key,
                        seal(tf.as_deref(), &key, encode(info, &new)?)?,
                        current.mod_revision,
                        self.ttl_for(info),
                    )
                    .await
            };
            match result {
                Ok(rev) => {
                    meta::set_resource_version(&mut new, rev);
                    return Ok(new);
                }
                Err(e) => {
                    // Give back node ports this attempt claimed.
                    if service {
                        service_alloc::release_added(&self.store, &new, &old).await;
                    }
                    match e {
                        store::Error::Conflict { current: c, .. } => current = *c,
                        e => return Err(ApiError::from_store(info, name, e)),
                    }
                }
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// PUT: replaces the object (or, for `subresource = status`, only its status).
    pub async fn update(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        opts: WriteOptions,
    ) -> ApiResult<Value> {
        Self::check_type(info, &mut obj)?;
        Self::check_object_namespace(info, ns, &mut obj)?;
        match meta::name(&obj) {
            "" => {
                meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
            }
            n if n == name => {}
            _ => {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
        }
        let wanted_rv = meta::str_at(&obj, "/metadata/resourceVersion")
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let info2 = info.clone();
        let sub = subresource.map(str::to_string);
        self.update_with(info, ns, name, subresource, opts.dry_run, move |old| {
            if let Some(rv) = &wanted_rv
                && meta::str_at(old, "/metadata/resourceVersion") != Some(rv.as_str())
            {
                return Err(ApiError::conflict(&info2, name));
            }
            Self::merge_update(&info2, old, obj.clone(), sub.as_deref(), &opts)
        })
        .await
    }

    /// Builds the stored object for an update: what the client may change given the
    /// subresource, the metadata the server owns, generation, and validation.
    fn merge_update(
        info: &ResourceInfo,
        old: &Value,
        new: Value,
        sub: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let strategy = strategy::for_resource(info);
        // Stored objects hold no unknown fields, so any here came with this request.
        let mut new = crate::typed::decode(info, new, opts.validation)?;
        let name = meta::name(old).to_string();
        let record = |new: &mut Value| {
            if let Some(manager) = &opts.field_manager {
                crate::apply::record_update(Some(old), new, manager, &info.api_version(), sub);
            }
        };
        if sub == Some("status") {
            // Only status changes through /status.
            let status = new.get("status").cloned().unwrap_or(Value::Null);
            new = old.clone();
            new["status"] = status;
            record(&mut new);
            return Ok(new);
        }
        if sub == Some("approval") {
            // A CSR's approval changes its Approved/Denied conditions and nothing else.
            let conditions = new
                .pointer("/status/conditions")
                .cloned()
                .unwrap_or(Value::Null);
            new = old.clone();
            if !new.get("status").is_some_and(Value::is_object) {
                new["status"] = json!({});
            }
            new["status"]["conditions"] = conditions;
            record(&mut new);
            return Ok(new);
        }
        if sub == Some("ephemeralcontainers") {
            // `kubectl debug`: only the pod's ephemeral containers change.
            new = strategy::update_pod_ephemeral_containers(old, &new)
                .map_err(|causes| ApiError::invalid(info, &name, causes))?;
            record(&mut new);
            return Ok(new);
        }
        if sub == Some("finalize") {
            // A namespace's `finalize` changes `spec.finalizers` and nothing else.
            let finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(Value::Null);
            let causes = strategy::validate_namespace_finalizers(&finalizers);
            if !causes.is_empty() {
                return Err(ApiError::invalid(info, &name, causes));
            }
            new = old.clone();
            if !new.get("spec").is_some_and(Value::is_object) {
                new["spec"] = json!({});
            }
            match &finalizers {
                Value::Array(a) if !a.is_empty() => new["spec"]["finalizers"] = finalizers,
                _ => {
                    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove("finalizers");
                    }
                }
            }
            record(&mut new);
            return Ok(new);
        }
        // Fields the server owns are kept from the stored object.
        let old_meta = old.get("metadata").cloned().unwrap_or_default();
        let m = meta::metadata_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => {
                    m.insert(k.into(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
        if let Some(ns) = old_meta.get("namespace") {
            m.insert("namespace".into(), ns.clone());
        }
        if info.has_subresource("status") {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        strategy.prepare_for_update(&mut new, old);
        strategy.defaults(&mut new);
        if strategy.tracks_generation() && spec_changed(&new, old) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta::metadata_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        let mut causes = strategy.validate(&new);
        causes.extend(strategy.validate_update(&new, old));
        if !causes.is_empty() {
            return Err(ApiError::invalid(info, &name, causes));
        }
        record(&mut new);
        Ok(new)
    }

    pub async fn patch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        patch: Patch,
        subresource: Option<&str>,
        opts: WriteOptions,
    ) -> ApiResult<Value> {
        let info2 = info.clone();
        let sub = subresource.map(str::to_string);
        self.update_with(info, ns, name, subresource, opts.dry_run, move |old| {
            let mut doc = old.clone();
            patch.apply_to(&mut doc)?;
            // A patch may carry a resourceVersion precondition.
            if let Some(rv) = patch
                .body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                && meta::str_at(old, "/metadata/resourceVersion") != Some(rv)
            {
                return Err(ApiError::conflict(&info2, meta::name(old)));
            }
            if meta::name(&doc) != meta::name(old) {
                return Err(ApiError::bad_request(
                    "the name of a patched object cannot change",
                ));
            }
            Self::merge_update(&info2, old, doc, sub.as_deref(), &opts)
        })
        .await
    }

    /// A strategic patch of the main resource, then `finish` on the result before it is
    /// written (server-side apply records its field manager there).
    pub async fn patch_then<F>(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        patch: Patch,
        opts: WriteOptions,
        finish: F,
    ) -> ApiResult<Value>
    where
        F: Fn(&mut Value) + Send,
    {
        let info2 = info.clone();
        self.update_with(info, ns, name, None, opts.dry_run, move |old| {
            let mut doc = old.clone();
            patch.apply_to(&mut doc)?;
            finish(&mut doc);
            Self::merge_update(&info2, old, doc, None, &opts)
        })
        .await
    }

    /// DELETE. Objects with finalizers, and pods bound to a node, are marked for deletion
    /// (`deletionTimestamp`) instead of removed; returns the object as it now is and whether it is gone.
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
        dry_run: bool,
    ) -> ApiResult<(Value, bool)> {
        let key = Self::key(info, ns, name);
        let tf = self.transformer(info);
        for _ in 0..UPDATE_RETRIES {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(info, name, e))?
                .ok_or_else(|| ApiError::not_found(info, name))?;
            let obj = decode(tf.as_deref(), info, &kv)?;
            if let Some(uid) = &opts.precondition_uid
                && meta::str_at(&obj, "/metadata/uid") != Some(uid.as_str())
            {
                return Err(ApiError::conflict(info, name));
            }
            if let Some(rv) = &opts.precondition_rv
                && meta::str_at(&obj, "/metadata/resourceVersion") != Some(rv.as_str())
            {
                return Err(ApiError::conflict(info, name));
            }
            // Upstream's delete validation: validating webhooks see the object deleted.
            let attrs = crate::admission::Attributes {
                operation: crate::admission::Operation::Delete,
                info,
                namespace: ns.unwrap_or(""),
                name,
                subresource: None,
                old: Some(&obj),
                user: crate::authn::current_user(),
                dry_run,
            };
            crate::admission::validate_delete(self, &attrs).await?;
            let grace = self.grace_period(info, &obj, opts);
            let obj = with_propagation_finalizers(info, obj, opts.propagation.as_deref())?;
            if has_finalizers(&obj) || grace > 0 {
                // Graceful: mark, and let the finalizer owners (or the kubelet) finish.
                let mut marked = obj.clone();
                let m = meta::metadata_mut(&mut marked);
                let already = m.get("deletionTimestamp").is_some();
                let when = time::OffsetDateTime::now_utc() + time::Duration::seconds(grace);
                if !already
                    || m.get("deletionGracePeriodSeconds")
                        .and_then(Value::as_i64)
                        .is_some_and(|g| grace < g)
                {
                    m.insert(
                        "deletionTimestamp".into(),
                        json!(crate::meta::format_time(when)),
                    );
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                if info.group.is_empty() && info.kind == "Namespace" {
                    marked["status"]["phase"] = json!("Terminating");
                }
                if marked == obj || dry_run {
                    return Ok((marked, false));
                }
                match self
                    .store
                    .update(
                        &key,
                        seal(tf.as_deref(), &key, encode(info, &marked)?)?,
                        kv.mod_revision,
                        self.ttl_for(info),
                    )
                    .await
                {
                    Ok(rev) => {
                        meta::set_resource_version(&mut marked, rev);
                        return Ok((marked, false));
                    }
                    Err(store::Error::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(info, name, e)),
                }
            }
            if dry_run {
                return Ok((obj, true));
            }
            match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok((rev, _)) => {
                    if service_alloc::is_service(info) {
                        service_alloc::release_all(&self.store, &obj).await;
                    }
                    let mut gone = obj;
                    meta::set_resource_version(&mut gone, rev);
                    return Ok((gone, true));
                }
                Err(store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(info, name, e)),
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// Seconds a deletion waits: only pods bound to a node wait (for their kubelet).
    fn grace_period(&self, info: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> i64 {
        if !(info.group.is_empty() && info.kind == "Pod") {
            return 0;
        }
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            meta::str_at(obj, "/status/phase"),
            Some("Succeeded" | "Failed")
        );
        if !bound || finished {
            return 0;
        }
        opts.grace_period_seconds
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0)
    }
}

#[cfg(test)]
mod tests {
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
