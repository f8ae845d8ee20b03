//! What the controller is told: where to listen, which class is its own, what to publish.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The IngressClass the controller creates and serves by default.
pub const DEFAULT_CLASS: &str = "rkube";
/// `spec.controller` of the classes the controller serves.
pub const CONTROLLER: &str = "rkube.io/ingress";

#[derive(Clone, Debug)]
pub struct IngressConfig {
    /// Plain HTTP listener (`0.0.0.0:80`); `None` for none.
    pub http_addr: Option<SocketAddr>,
    /// TLS listener (`0.0.0.0:443`); `None` for none.
    pub https_addr: Option<SocketAddr>,
    /// Names the node in events (`source.host`).
    pub node_name: String,
    /// Published in `status.loadBalancer.ingress` of every served Ingress (the node's IPs).
    pub addresses: Vec<IpAddr>,
    /// The class created when missing (`rkube`).
    pub class_name: String,
    /// `spec.controller` of the classes served (`rkube.io/ingress`).
    pub controller: String,
    /// `spec.controllerName` of the GatewayClasses served (`rkube.io/gateway-controller`).
    pub gateway_controller: String,
    /// Create the IngressClass `class_name` when missing (default when no other is).
    pub manage_class: bool,
    /// Dialing one endpoint (nginx ingress' `proxy-connect-timeout`: 5 s).
    pub connect_timeout: Duration,
    /// From the request sent to the response's headers (`proxy-read-timeout`: 60 s).
    pub response_timeout: Duration,
    /// Endpoints tried per request when connecting fails.
    pub max_attempts: usize,
    /// Consecutive connect failures that eject an endpoint...
    pub eject_after: u32,
    /// ...for this long.
    pub eject_for: Duration,
    /// Idle keep-alive connections kept per endpoint.
    pub pool_idle_per_endpoint: usize,
    /// How long an idle backend connection is kept.
    pub pool_idle_timeout: Duration,
}

impl IngressConfig {
    /// Ports 80 and 443 on every address; `addresses` go into the Ingresses' status.
    pub fn new(node_name: &str, addresses: Vec<IpAddr>) -> Self {
        IngressConfig {
            http_addr: Some(SocketAddr::from(([0, 0, 0, 0], 80))),
            https_addr: Some(SocketAddr::from(([0, 0, 0, 0], 443))),
            node_name: node_name.to_string(),
            addresses,
            class_name: DEFAULT_CLASS.to_string(),
            controller: CONTROLLER.to_string(),
            gateway_controller: crate::gateway::CONTROLLER_NAME.to_string(),
            manage_class: true,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            max_attempts: 3,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
            pool_idle_per_endpoint: 64,
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}
