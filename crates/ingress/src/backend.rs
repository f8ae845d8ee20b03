//! A resolved backend (one Service port): its ready endpoints, round-robin over them, and
//! passive ejection of endpoints that keep refusing connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Authority;

/// The protocol spoken to the endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (Service port `appProtocol` `kubernetes.io/h2c`, `h2c`
    /// or `grpc`): what gRPC needs end to end.
    H2c,
}

/// The connect-failure record of one endpoint, shared by every backend listing it and kept
/// across routing-table swaps.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    failures: AtomicU32,
    /// Milliseconds since the registry's epoch until which it is skipped (0: not ejected).
    ejected_until: AtomicU64,
}

/// Every endpoint's health, by address.
#[derive(Debug)]
pub struct HealthRegistry {
    epoch: Instant,
    eject_after: u32,
    eject_for: Duration,
    entries: Mutex<HashMap<SocketAddr, Arc<EndpointHealth>>>,
}

impl HealthRegistry {
    pub fn new(eject_after: u32, eject_for: Duration) -> Self {
        HealthRegistry {
            epoch: Instant::now(),
            eject_after: eject_after.max(1),
            eject_for,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The record of `addr`, made when new.
    pub fn get(&self, addr: SocketAddr) -> Arc<EndpointHealth> {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.entry(addr).or_default().clone()
    }

    /// Forgets endpoints no routing table lists any more (after a swap).
    pub fn prune(&self) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.retain(|_, h| Arc::strong_count(h) > 1);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_ejected(&self, h: &EndpointHealth) -> bool {
        h.ejected_until.load(Ordering::Relaxed) > self.now_ms()
    }

    /// A connection to the endpoint failed; the `eject_after`th in a row ejects it.
    pub fn failed(&self, h: &EndpointHealth) -> bool {
        let n = h.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.eject_after {
            let until = self.now_ms() + u64::try_from(self.eject_for.as_millis()).unwrap_or(0);
            h.ejected_until.store(until.max(1), Ordering::Relaxed);
            h.failures.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A connection succeeded (or a request got a response): the count starts over.
    pub fn succeeded(&self, h: &EndpointHealth) {
        if h.failures.load(Ordering::Relaxed) != 0 {
            h.failures.store(0, Ordering::Relaxed);
        }
        if h.ejected_until.load(Ordering::Relaxed) != 0 {
            h.ejected_until.store(0, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `addr` as a URI authority, made once (requests name the endpoint in their URI).
    pub authority: Authority,
    pub health: Arc<EndpointHealth>,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, health: Arc<EndpointHealth>) -> Self {
        // A socket address always makes a valid authority; the fallback is never used.
        let authority = Authority::try_from(addr.to_string())
            .unwrap_or_else(|_| Authority::from_static("invalid"));
        Endpoint {
            addr,
            authority,
            health,
        }
    }
}

/// One Service port of one namespace, resolved to its ready endpoints.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port`, for logs.
    pub name: String,
    pub protocol: Protocol,
    pub endpoints: Vec<Endpoint>,
    next: AtomicUsize,
}

impl Backend {
    pub fn new(name: String, protocol: Protocol, endpoints: Vec<Endpoint>) -> Self {
        Backend {
            name,
            protocol,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The next endpoint in round-robin order that is neither ejected nor in `tried`; when
    /// every untried one is ejected, one of those anyway (a backend is never emptied by
    /// ejection: better a likely failure than a certain 503, as Envoy's panic threshold).
    pub fn pick(&self, health: &HealthRegistry, tried: &[usize]) -> Option<usize> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut fallback = None;
        for i in 0..n {
            let idx = (start + i) % n;
            if tried.contains(&idx) {
                continue;
            }
            if !health.is_ejected(&self.endpoints[idx].health) {
                return Some(idx);
            }
            fallback.get_or_insert(idx);
        }
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(reg: &HealthRegistry, ports: &[u16]) -> Backend {
        let endpoints = ports
            .iter()
            .map(|p| {
                let addr = SocketAddr::from(([127, 0, 0, 1], *p));
                Endpoint::new(addr, reg.get(addr))
            })
            .collect();
        Backend::new("ns/svc:80".into(), Protocol::Http1, endpoints)
    }

    #[test]
    fn round_robin_skips_tried_and_ejected_endpoints() {
        let reg = HealthRegistry::new(2, Duration::from_secs(60));
        let b = backend(&reg, &[1, 2, 3]);
        let picks: Vec<_> = (0..6).filter_map(|_| b.pick(&reg, &[])).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert!(!reg.failed(&b.endpoints[1].health));
        assert!(reg.failed(&b.endpoints[1].health), "second failure ejects");
        let picks: Vec<_> = (0..4).filter_map(|_| b.pick(&reg, &[])).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_eq!(
            b.pick(&reg, &[0, 2]),
            Some(1),
            "ejected, but the only one left"
        );
        assert_eq!(b.pick(&reg, &[0, 1, 2]), None);
        reg.succeeded(&b.endpoints[1].health);
        let picks: Vec<_> = (0..3).filter_map(|_| b.pick(&reg, &[])).collect();
        assert!(picks.contains(&1));
    }

    #[test]
    fn health_outlives_a_table_and_is_pruned_after() {
        let reg = HealthRegistry::new(1, Duration::from_secs(60));
        let old = backend(&reg, &[1]);
        reg.failed(&old.endpoints[0].health);
        let new = backend(&reg, &[1]);
        drop(old);
        assert!(reg.is_ejected(&new.endpoints[0].health), "same record");
        drop(new);
        reg.prune();
        assert!(reg.entries.lock().map(|e| e.is_empty()).unwrap_or(false));
    }
}
