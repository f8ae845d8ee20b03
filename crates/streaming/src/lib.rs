//! Streaming between clients, the API server, the kubelet and the runtime: `kubectl exec`,
//! `attach`, `port-forward` and `cp` switch the HTTP connection to another protocol (SPDY/3.1
//! or WebSocket). The hops in between pass the switched connection through
//! ([`upgrade::proxy`], as Kubernetes' `UpgradeAwareHandler`), except where the API server
//! terminates a protocol the runtime does not speak: remotecommand over WebSocket v5
//! ([`translator`]) and port-forward tunnelled in WebSocket ([`tunnel`]).

pub mod netns;
pub mod remotecommand;
pub mod spdy;
pub mod translator;
pub mod tunnel;
pub mod upgrade;
pub mod websocket;

pub use netns::NetnsDialer;
pub use upgrade::{ProxyError, is_upgrade_request, proxy};
