//! What a kind adds to the generic store's create, update and delete (upstream's
//! `genericregistry.Store` hooks: `BeginCreate`/`BeginUpdate` with their finish functions,
//! `AfterDelete`, `TTLFunc`, `ReturnDeletedObject`, and the delete strategy's graceful
//! period and default garbage-collection policy). Each kind's registration
//! ([`crate::kinds`]) holds its hooks; kinds without any use [`NoHooks`].

use std::sync::Arc;

use serde_json::Value;
use store::Store;

use crate::error::ApiResult;

#[async_trait::async_trait]
pub trait StoreHooks: Send + Sync {
    /// Just before a new object is written (after admission and validation): a Service
    /// takes its cluster IPs and node ports here.
    async fn begin_create(&self, _store: &Arc<dyn Store>, _obj: &mut Value) -> ApiResult<()> {
        Ok(())
    }

    /// After the write [`StoreHooks::begin_create`] prepared: `success` false gives back
    /// what it took.
    async fn finish_create(&self, _store: &Arc<dyn Store>, _obj: &Value, _success: bool) {}

    /// Just before an update is written (after admission and validation).
    async fn begin_update(
        &self,
        _store: &Arc<dyn Store>,
        _new: &mut Value,
        _old: &Value,
    ) -> ApiResult<()> {
        Ok(())
    }

    /// After the write [`StoreHooks::begin_update`] prepared (`success` false: not written,
    /// perhaps to be retried).
    async fn finish_update(
        &self,
        _store: &Arc<dyn Store>,
        _new: &Value,
        _old: &Value,
        _success: bool,
    ) {
    }

    /// After an object was removed from the store: by a DELETE, or by the update that took
    /// its last finalizer away.
    async fn after_delete(&self, _store: &Arc<dyn Store>, _obj: &Value) {}

    /// Refuses a DELETE before anything is read (a system namespace).
    fn check_delete(&self, _name: &str) -> ApiResult<()> {
        Ok(())
    }

    /// The propagation policy of a delete that names none (`DefaultGarbageCollectionPolicy`;
    /// `None`: Background, the garbage collector's own default).
    fn default_gc_policy(&self) -> Option<&'static str> {
        None
    }

    /// Seconds a deletion waits before the object goes (`CheckGracefulDelete`); 0: now,
    /// unless finalizers hold it. `requested` is the delete's `gracePeriodSeconds`.
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// Whether the kind's own finalizers (besides `metadata.finalizers`) still hold the
    /// object's deletion.
    fn holds_deletion(&self, _obj: &Value) -> bool {
        false
    }

    /// What a graceful deletion marks besides `deletionTimestamp`.
    fn mark_deleting(&self, _obj: &mut Value) {}

    /// Whether objects expire after the server's `--event-ttl` (`TTLFunc`).
    fn expires(&self) -> bool {
        false
    }

    /// Whether a DELETE that removed the object answers with it rather than a Status
    /// (`ReturnDeletedObject`).
    fn return_deleted_object(&self) -> bool {
        false
    }
}

/// The hooks of a kind with none.
pub struct NoHooks;

impl StoreHooks for NoHooks {}
