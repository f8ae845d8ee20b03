//! CRI v1 client: the kubelet's only way to run pods and containers.
//!
//! [`RuntimeClient`] wraps CRI's `RuntimeService` and `ImageService` over a unix socket with typed,
//! error-contexted async methods. The request/response types are CRI's own protobuf types,
//! re-exported as [`api`] so callers do not depend on `k8s-cri` themselves.

mod client;
mod error;
pub mod logs;

pub use client::{DEFAULT_REQUEST_TIMEOUT, ExecResult, RuntimeClient, parse_endpoint};
pub use error::CriError;

/// CRI v1 protobuf types (`runtime.v1`): `PodSandboxConfig`, `ContainerConfig`, filters, ….
pub use k8s_cri::v1 as api;
