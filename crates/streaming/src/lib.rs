//! Streaming between clients, the API server, the kubelet and the runtime: `kubectl exec`,
//! `attach`, `port-forward` and `cp` switch the HTTP connection to another protocol (SPDY/3.1
//! or WebSocket) and the hops in between pass the switched connection through
//! ([`upgrade::proxy`]), as Kubernetes' `UpgradeAwareHandler` does.

pub mod netns;
pub mod upgrade;

pub use netns::NetnsDialer;
pub use upgrade::{ProxyError, is_upgrade_request, proxy};
