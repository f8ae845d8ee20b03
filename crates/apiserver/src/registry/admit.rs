//! What the registry asks of the layers above it, as Kubernetes' generic store takes
//! `rest.ValidateObjectFunc`/`ValidateObjectUpdateFunc` and an update transformer chain from
//! its handler: the admission hooks and the user come in with each call ([`RequestContext`])
//! and the registry only sees the [`Admit`] trait. The admission chain implements it; the
//! registry never imports admission, authentication or authorization.

use serde_json::Value;

use crate::error::ApiResult;
use crate::resources::ResourceInfo;
use crate::user::UserInfo;

/// What a write does (admission's `Operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// As AdmissionReview and audit spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// What admission knows of the write (Kubernetes' `admission.Attributes`).
pub struct Attributes<'a> {
    pub operation: Operation,
    pub info: &'a ResourceInfo,
    /// Empty for cluster-scoped objects.
    pub namespace: &'a str,
    pub name: &'a str,
    pub subresource: Option<&'a str>,
    /// The stored object, on update and delete.
    pub old: Option<&'a Value>,
    /// Who writes; `None` for the API server's own writes.
    pub user: Option<&'a UserInfo>,
    pub dry_run: bool,
}

impl Attributes<'_> {
    /// Whether the write is to a core/v1 object of `kind` itself (not a subresource).
    pub fn is_core(&self, kind: &str) -> bool {
        self.info.group.is_empty() && self.info.kind == kind && self.subresource.is_none()
    }
}

/// The admission hooks a write runs through (upstream's `admission.Interface` as the store
/// sees it): mutating before the kind's validation, validating after it, and validating on
/// delete.
#[async_trait::async_trait]
pub trait Admit: Send + Sync {
    /// May change `obj` or refuse the write.
    async fn mutate(&self, a: &Attributes<'_>, obj: &mut Value) -> ApiResult<()>;
    /// May refuse the write of `obj`.
    async fn validate(&self, a: &Attributes<'_>, obj: &Value) -> ApiResult<()>;
    /// May refuse the deletion of `a.old`.
    async fn validate_delete(&self, a: &Attributes<'_>) -> ApiResult<()>;
}

/// The request as the registry sees it: who writes, which admission the write passes, and
/// whether anything is stored (what upstream's handlers put in the request context, the
/// store's validation callbacks and `dryRun`), given explicitly with each write.
#[derive(Clone, Copy)]
pub struct RequestContext<'a> {
    /// The requester after impersonation; `None`: the API server's own write (admission
    /// webhooks see upstream's loopback identity).
    pub user: Option<&'a UserInfo>,
    pub admission: &'a dyn Admit,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
}

impl<'a> RequestContext<'a> {
    /// A write made as `user` (none: the server's own), through `admission`, stored.
    pub fn new(user: Option<&'a UserInfo>, admission: &'a dyn Admit) -> Self {
        RequestContext {
            user,
            admission,
            dry_run: false,
        }
    }

    /// The API server's own write (bootstrap, reconcilers), through `admission`.
    pub fn internal(admission: &'a dyn Admit) -> Self {
        RequestContext::new(None, admission)
    }

    /// The same request, stored or not as `dry_run` says.
    pub fn with_dry_run(self, dry_run: bool) -> Self {
        RequestContext { dry_run, ..self }
    }
}
