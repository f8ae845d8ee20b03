//! Gateway API (standard channel): GatewayClasses whose `spec.controllerName` is ours,
//! their Gateways' HTTP and HTTPS listeners on the proxy's two ports, and the HTTPRoutes and
//! GRPCRoutes attached to them, served by the same proxy as the Ingresses (Gateway routes
//! first).
//!
//! - [`types`]: the kinds, as serde types of the fields used.
//! - [`hostname`], [`matching`], [`filters`], [`selector`]: the spec's semantics, pure.
//! - [`build`]: objects → [`table::GatewayTable`], certificates and [`status::Desired`]
//!   (listeners decided in `listener`, routes compiled in `compile`).
//! - [`status`]: conditions merged and written; [`watch`]: informers once the CRDs exist.

pub mod build;
mod compile;
pub mod filters;
pub mod hostname;
mod listener;
pub mod matching;
pub mod selector;
pub mod status;
pub mod table;
pub mod types;
pub mod watch;

/// `spec.controllerName` of the GatewayClasses served by default.
pub const CONTROLLER_NAME: &str = "rkube.io/gateway-controller";
