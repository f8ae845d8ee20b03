//! rkube's ingress controller: a reverse proxy on every node serving the
//! `networking.k8s.io/v1` Ingresses of its class (`rkube`) and the Gateway API HTTPRoutes of
//! its GatewayClasses, straight to the ready endpoints of their Services.
//!
//! ```ignore
//! let cfg = ingress::IngressConfig::new("node-1", vec![node_ip]); // :80 and :443
//! ingress::run(client, cfg).await?;                                // until dropped
//! ```
//!
//! - [`table`]: the routing table (hosts → paths → backends), swapped whole on changes.
//! - [`build`]: Ingresses, Services, EndpointSlices and Secrets → tables and problems.
//! - [`proxy`], [`upgrade`], [`server`]: the request path; [`reply`]: the proxy's own
//!   answers (plain text, or gRPC statuses to gRPC clients).
//! - [`gateway`]: GatewayClasses, Gateways, HTTPRoutes: their table and statuses.
//! - [`controller`]: informers, rebuilds, events, status.

pub mod backend;
pub mod build;
pub mod certs;
pub mod class;
pub mod config;
pub mod controller;
pub mod forward;
pub mod gateway;
pub mod host;
pub mod path;
pub mod proxy;
pub mod reply;
pub mod retry_body;
pub mod server;
pub mod status;
pub mod table;
pub mod tls;
pub mod upgrade;

pub use config::{CONTROLLER, DEFAULT_CLASS, IngressConfig};
pub use controller::{Running, run, start};
