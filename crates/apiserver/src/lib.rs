//! rkube's kube-apiserver: "the only entrance to resource operations". The Kubernetes REST
//! API over the state store, so the real `kubectl` and client libraries work unchanged.
//!
//! Layers: [`server`] (TLS, client-certificate authentication) → [`handler`] (routing as
//! Kubernetes parses paths, content negotiation, verbs) → [`registry`] (one generic REST store
//! for every kind) with a per-kind [`strategy`] → the [`store`]. Each layer only looks down:
//! the handler hands the registry the [`user`] and the [`admission`] chain with every write.

pub mod admission;
pub mod aggregator;
mod apply;
pub mod audit;
pub mod authn;
pub mod authz;
mod binding;
mod bootstrap;
mod conversion;
mod customresource;
pub mod discovery;
pub mod encryption;
pub mod error;
mod eviction;
mod go_types;
mod handler;
mod impersonation;
pub mod kinds;
pub mod kubelet_client;
pub mod meta;
mod metrics;
mod openapi;
mod openapi_extensions;
mod openapi_proto;
pub mod patch;
pub mod pki;
mod pod_connect;
mod pod_log;
mod protobuf;
mod proxy;
mod proxy_links;
pub mod registry;
pub mod request_info;
pub mod resources;
mod scale;
pub mod schemas;
pub mod selector;
pub mod server;
mod service_alloc;
pub mod settings;
pub mod strategy;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
mod token_request;
mod typed;
pub mod user;
pub mod watch_cache;
mod webhook_client;
mod zero_fields;

pub use bootstrap::remove_master_lease;
pub use server::{AuthorizationMode, Config, Server};
/// The cluster DNS Service's address (reserved: never handed out to other Services).
pub use service_alloc::DNS_SERVICE_IP;
