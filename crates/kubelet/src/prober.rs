//! Liveness, readiness and startup probes: exec through CRI ExecSync, httpGet and tcpSocket
//! from the node to the pod's own IP.
//!
//! Network probes only ever connect to the pod's IP (a probe naming another `host` fails
//! without sending anything), from the network namespace the pod network lives in — the
//! node's, or the one the runtime was started in ([`KubeletConfig::pod_netns`]).
//!
//! [`KubeletConfig::pod_netns`]: crate::config::KubeletConfig::pod_netns

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::cri::RuntimeClient;
use crate::events::EventTarget;
use streaming::NetnsDialer;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure(String),
}

/// Runs probes of one pod.
#[derive(Clone)]
pub struct Prober {
    cri: RuntimeClient,
    dialer: Option<Arc<NetnsDialer>>,
}

impl Prober {
    pub fn new(cri: RuntimeClient, dialer: Option<Arc<NetnsDialer>>) -> Self {
        Prober { cri, dialer }
    }

    async fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
        let socket = match &self.dialer {
            Some(d) => d.socket(addr.is_ipv6()).await,
            None if addr.is_ipv6() => TcpSocket::new_v6(),
            None => TcpSocket::new_v4(),
        }
        .map_err(|e| format!("socket: {e}"))?;
        match tokio::time::timeout(timeout, socket.connect(addr)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        }
    }

    /// Runs `probe` once against container `container_id` of a pod at `pod_ip`.
    pub async fn run(
        &self,
        probe: &Probe,
        container: &Container,
        container_id: &str,
        pod_ip: Option<IpAddr>,
    ) -> ProbeResult {
        let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
        if let Some(exec) = &probe.exec {
            let cmd: Vec<&str> = exec.command.iter().flatten().map(String::as_str).collect();
            return match self.cri.exec_sync(container_id, &cmd, timeout).await {
                Ok(r) if r.exit_code == 0 => ProbeResult::Success,
                Ok(r) => ProbeResult::Failure(format!(
                    "command {cmd:?} exited with {}: {}{}",
                    r.exit_code,
                    String::from_utf8_lossy(&r.stdout),
                    String::from_utf8_lossy(&r.stderr)
                )),
                Err(e) => ProbeResult::Failure(e.to_string()),
            };
        }
        let Some(ip) = pod_ip else {
            return ProbeResult::Failure("the pod has no IP yet".into());
        };
        if let Some(tcp) = &probe.tcp_socket {
            if tcp
                .host
                .as_deref()
                .is_some_and(|h| !h.is_empty() && h != ip.to_string())
            {
                return ProbeResult::Failure("probes connect only to the pod's own IP".into());
            }
            let port = match resolve_port(&tcp.port, container) {
                Ok(p) => p,
                Err(e) => return ProbeResult::Failure(e),
            };
            return match self.connect(SocketAddr::new(ip, port), timeout).await {
                Ok(_) => ProbeResult::Success,
                Err(e) => ProbeResult::Failure(e),
            };
        }
        if let Some(http) = &probe.http_get {
            if http
                .host
                .as_deref()
                .is_some_and(|h| !h.is_empty() && h != ip.to_string())
            {
                return ProbeResult::Failure("probes connect only to the pod's own IP".into());
            }
            if http
                .scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
            {
                return ProbeResult::Failure("HTTPS probes are not supported yet".into());
            }
            let port = match resolve_port(&http.port, container) {
                Ok(p) => p,
                Err(e) => return ProbeResult::Failure(e),
            };
            let path = http
                .path
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("/");
            let headers: Vec<(String, String)> = http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            let addr = SocketAddr::new(ip, port);
            let fut = self.http_get(addr, path, &headers, timeout);
            return match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => ProbeResult::Failure(format!("Get http://{addr}{path}: timeout")),
            };
        }
        if let Some(grpc) = &probe.grpc {
            let Ok(port) = u16::try_from(grpc.port) else {
                return ProbeResult::Failure(format!("invalid port {}", grpc.port));
            };
            let addr = SocketAddr::new(ip, port);
            let prober = self.clone();
            let connect = move || {
                let prober = prober.clone();
                async move { prober.connect(addr, timeout).await }
            };
            let service = grpc.service.as_deref().unwrap_or("");
            let target = addr.to_string();
            return match crate::grpc_probe::check(&target, service, timeout, connect).await {
                Ok(()) => ProbeResult::Success,
                Err(why) => ProbeResult::Failure(why),
            };
        }
        ProbeResult::Failure("no probe handler".into())
    }

    async fn http_get(
        &self,
        addr: SocketAddr,
        path: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> ProbeResult {
        let mut s = match self.connect(addr, timeout).await {
            Ok(s) => s,
            Err(e) => return ProbeResult::Failure(e),
        };
        let mut req = format!("GET {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {addr}\r\n"));
        }
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
        {
            req.push_str("User-Agent: kube-probe/1.33\r\n");
        }
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("Accept: */*\r\nConnection: close\r\n\r\n");
        if let Err(e) = s.write_all(req.as_bytes()).await {
            return ProbeResult::Failure(format!("Get http://{addr}{path}: {e}"));
        }
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 256];
        while !head.contains(&b'\n') && head.len() < 4096 {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) => return ProbeResult::Failure(format!("Get http://{addr}{path}: {e}")),
            }
        }
        match parse_status(&head) {
            Some(code) if (200..400).contains(&code) => ProbeResult::Success,
            Some(code) => {
                ProbeResult::Failure(format!("HTTP probe failed with statuscode: {code}"))
            }
            None => {
                ProbeResult::Failure(format!("Get http://{addr}{path}: malformed HTTP response"))
            }
        }
    }
}

/// The status code of an HTTP/1.x status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// A probe's port: a number, or the name of one of the container's ports.
fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("no port named {name:?} in container {}", c.name))?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port {n}"))
}

/// One container's probe results, shared between its probe task and the pod worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeState {
    /// Readiness: `None` without a readiness probe.
    pub ready: Option<bool>,
    /// Startup probe passed: `None` without a startup probe.
    pub started: Option<bool>,
    /// The liveness (or startup) probe failed `failureThreshold` times: restart it.
    pub failed: Option<String>,
}

/// The probe loop of one running container; stops on drop.
pub struct ContainerProbes {
    pub state: Arc<Mutex<ProbeState>>,
    task: JoinHandle<()>,
}

impl Drop for ContainerProbes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(m: &Mutex<ProbeState>) -> std::sync::MutexGuard<'_, ProbeState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Consecutive results of one probe against its thresholds.
struct Counter {
    probe: Probe,
    successes: i32,
    failures: i32,
}

impl Counter {
    fn new(probe: Probe) -> Self {
        Counter {
            probe,
            successes: 0,
            failures: 0,
        }
    }

    /// Records a result; `Some(ok)` when a threshold is reached.
    fn record(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes += 1;
            (self.successes >= self.probe.success_threshold.unwrap_or(1).max(1)).then_some(true)
        } else {
            self.successes = 0;
            self.failures += 1;
            (self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1)).then_some(false)
        }
    }

    fn period(&self) -> Duration {
        Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64)
    }
}

impl ContainerProbes {
    /// Starts probing container `id` if `c` has any probe; `wake` is notified when a result
    /// changes what the pod worker should do.
    pub fn start(
        prober: Prober,
        c: &Container,
        id: &str,
        pod_ip: Option<IpAddr>,
        wake: Arc<Notify>,
        events: EventTarget,
    ) -> Option<Self> {
        if c.liveness_probe.is_none() && c.readiness_probe.is_none() && c.startup_probe.is_none() {
            return None;
        }
        let state = Arc::new(Mutex::new(ProbeState {
            ready: c.readiness_probe.as_ref().map(|_| false),
            started: c.startup_probe.as_ref().map(|_| false),
            failed: None,
        }));
        let task = tokio::spawn(probe_loop(
            prober,
            c.clone(),
            id.to_owned(),
            pod_ip,
            state.clone(),
            wake,
            events,
        ));
        Some(ContainerProbes { state, task })
    }

    pub fn state(&self) -> ProbeState {
        lock(&self.state).clone()
    }
}

async fn probe_loop(
    prober: Prober,
    c: Container,
    id: String,
    pod_ip: Option<IpAddr>,
    state: Arc<Mutex<ProbeState>>,
    wake: Arc<Notify>,
    events: EventTarget,
) {
    // Every failed run is an `Unhealthy` warning, as upstream's prober records it (repeats
    // are counted up by the recorder).
    let unhealthy = |kind: &str, r: &ProbeResult| {
        if let ProbeResult::Failure(why) = r {
            events.warning("Unhealthy", format!("{kind} probe failed: {why}"));
        }
    };
    let mut startup = c.startup_probe.clone().map(Counter::new);
    let mut liveness = c.liveness_probe.clone().map(Counter::new);
    let mut readiness = c.readiness_probe.clone().map(Counter::new);
    let delay = |p: &Option<Counter>| {
        p.as_ref()
            .map(|c| c.probe.initial_delay_seconds.unwrap_or(0).max(0) as u64)
    };
    let initial = [delay(&startup), delay(&liveness), delay(&readiness)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(initial)).await;
    let started_at = tokio::time::Instant::now() - Duration::from_secs(initial);
    // Each probe keeps its own schedule; the loop sleeps until the earliest is due.
    let mut due = [started_at; 3];
    for (i, p) in [&startup, &liveness, &readiness].into_iter().enumerate() {
        if let Some(p) = p {
            due[i] = started_at
                + Duration::from_secs(p.probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        }
    }
    loop {
        let now = tokio::time::Instant::now();
        let started = startup.is_none() || lock(&state).started == Some(true);
        // Startup first; liveness and readiness only once it passed.
        if let Some(p) = startup.as_mut()
            && !started
            && now >= due[0]
        {
            due[0] = now + p.period();
            let r = prober.run(&p.probe, &c, &id, pod_ip).await;
            debug!(container = %c.name, ?r, "startup probe");
            unhealthy("Startup", &r);
            match p.record(r == ProbeResult::Success) {
                Some(true) => {
                    lock(&state).started = Some(true);
                    wake.notify_one();
                }
                Some(false) => {
                    let why = format!("Startup probe failed: {}", failure(&r));
                    info!(container = %c.name, %why, "restarting container");
                    lock(&state).failed = Some(why);
                    wake.notify_one();
                    return;
                }
                None => {}
            }
        }
        if started {
            if let Some(p) = liveness.as_mut()
                && now >= due[1]
            {
                due[1] = now + p.period();
                let r = prober.run(&p.probe, &c, &id, pod_ip).await;
                debug!(container = %c.name, ?r, "liveness probe");
                unhealthy("Liveness", &r);
                if p.record(r == ProbeResult::Success) == Some(false) {
                    let why = format!("Liveness probe failed: {}", failure(&r));
                    info!(container = %c.name, %why, "restarting container");
                    lock(&state).failed = Some(why);
                    wake.notify_one();
                    return;
                }
            }
            if let Some(p) = readiness.as_mut()
                && now >= due[2]
            {
                due[2] = now + p.period();
                let r = prober.run(&p.probe, &c, &id, pod_ip).await;
                debug!(container = %c.name, ?r, "readiness probe");
                unhealthy("Readiness", &r);
                if let Some(ok) = p.record(r == ProbeResult::Success) {
                    let mut s = lock(&state);
                    if s.ready != Some(ok) {
                        s.ready = Some(ok);
                        drop(s);
                        wake.notify_one();
                    }
                }
            }
        }
        let next = [
            startup.as_ref().filter(|_| !started).map(|_| due[0]),
            liveness.as_ref().filter(|_| started).map(|_| due[1]),
            readiness.as_ref().filter(|_| started).map(|_| due[2]),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) => tokio::time::sleep_until(t).await,
            None => return,
        }
    }
}

fn failure(r: &ProbeResult) -> &str {
    match r {
        ProbeResult::Success => "",
        ProbeResult::Failure(why) => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 x\r\n"), Some(503));
        assert_eq!(parse_status(b"garbage\r\n"), None);
    }

    #[test]
    fn named_ports() {
        let c: Container = serde_json::from_value(json!({"name": "c",
            "ports": [{"name": "http", "containerPort": 8080}]}))
        .unwrap_or_default();
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
    }

    #[test]
    fn thresholds() {
        let p: Probe =
            serde_json::from_value(json!({"failureThreshold": 2, "successThreshold": 1}))
                .unwrap_or_default();
        let mut c = Counter::new(p);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), Some(false));
        assert_eq!(c.record(true), Some(true));
    }

    #[tokio::test]
    async fn probes_refuse_other_hosts_and_check_local_servers() {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(_) => return,
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let prober = Prober::new(RuntimeClient::lazy("/nonexistent.sock"), None);
        let c = Container::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let http: Probe =
            serde_json::from_value(json!({"httpGet": {"port": port, "path": "/healthz"}}))
                .unwrap_or_default();
        assert_eq!(
            prober.run(&http, &c, "x", Some(ip)).await,
            ProbeResult::Success
        );
        let tcp: Probe =
            serde_json::from_value(json!({"tcpSocket": {"port": port}})).unwrap_or_default();
        assert_eq!(
            prober.run(&tcp, &c, "x", Some(ip)).await,
            ProbeResult::Success
        );
        let elsewhere: Probe =
            serde_json::from_value(json!({"httpGet": {"port": port, "host": "192.0.2.1"}}))
                .unwrap_or_default();
        assert!(matches!(
            prober.run(&elsewhere, &c, "x", Some(ip)).await,
            ProbeResult::Failure(_)
        ));
    }
}
