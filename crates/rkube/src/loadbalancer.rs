//! The agent's client-side load balancer (k3s' `pkg/agent/loadbalancer`): a TCP proxy on
//! `127.0.0.1:<--lb-server-port>` that the kubelet, kube-proxy, cluster DNS and the ingress
//! controller of `rkube agent --server URL` talk to instead of URL. Each accepted connection
//! goes, bytes untouched (TLS passes through: clients still verify the cluster CA, and every
//! API server's certificate names 127.0.0.1), to the current server; a dial that fails moves
//! on to the next server. The servers: `--server`'s first, then every address of the
//! `kubernetes` EndpointSlice (watched through the balancer itself), kept in
//! `<data-dir>/agent/etc/rkube-agent-load-balancer.json` so a restarted agent knows them
//! while `--server` is down. Connections to a server that left the list or stopped answering
//! are closed, so clients reconnect to one that answers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::watcher;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

/// k3s' `--lb-server-port` default (the supervisor's 6443 plus one).
pub const DEFAULT_PORT: u16 = 6444;

/// The known servers, under the data dir (k3s' `agent/etc/k3s-agent-load-balancer.json`).
pub const STATE_FILE: &str = "agent/etc/rkube-agent-load-balancer.json";

/// How long a dial may take before the next server is tried.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a server that failed a dial is passed over (tried only when no other answers).
const RETRY_AFTER: Duration = Duration::from_secs(15);

/// How often the servers in use are dialed, so connections to one that stopped answering
/// without closing them (a machine gone) are closed rather than left hanging.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// The servers the balancer knows, in order of preference, and how their dials went: the
/// decisions alone, without sockets.
#[derive(Debug)]
pub struct ServerList {
    /// `--server`'s address: always first, and kept when the endpoints stop naming it.
    default: String,
    /// The other servers the `kubernetes` endpoints named, sorted.
    learned: Vec<String>,
    /// Where new connections go while it answers (sticky, as k3s').
    current: String,
    /// When each server last failed a dial.
    failed: HashMap<String, Instant>,
}

impl ServerList {
    pub fn new(default: String) -> ServerList {
        ServerList {
            current: default.clone(),
            default,
            learned: Vec::new(),
            failed: HashMap::new(),
        }
    }

    /// Every server: `--server`'s, then the learned ones.
    pub fn addresses(&self) -> Vec<String> {
        std::iter::once(self.default.clone())
            .chain(self.learned.iter().cloned())
            .collect()
    }

    fn knows(&self, server: &str) -> bool {
        self.default == server || self.learned.iter().any(|s| s == server)
    }

    /// Takes the servers the endpoints list. An empty list is ignored, as k3s does (the
    /// last known servers beat none). The servers that left, or None when nothing changed.
    pub fn set_learned(&mut self, servers: Vec<String>) -> Option<Vec<String>> {
        if servers.is_empty() {
            return None;
        }
        let mut learned: Vec<String> = servers.into_iter().filter(|s| *s != self.default).collect();
        learned.sort();
        learned.dedup();
        if learned == self.learned {
            return None;
        }
        let removed: Vec<String> = self
            .learned
            .iter()
            .filter(|s| !learned.contains(s))
            .cloned()
            .collect();
        self.learned = learned;
        for r in &removed {
            self.failed.remove(r);
        }
        if !self.knows(&self.current) {
            self.current = self.default.clone();
        }
        Some(removed)
    }

    fn recently_failed(&self, server: &str, now: Instant) -> bool {
        self.failed
            .get(server)
            .is_some_and(|at| now.saturating_duration_since(*at) < RETRY_AFTER)
    }

    /// The servers to dial at `now`, in order: the current one, then the others in order of
    /// preference; those that failed less than [`RETRY_AFTER`] ago come last (oldest failure
    /// first), a last resort rather than no dial at all.
    pub fn dial_order(&self, now: Instant) -> Vec<String> {
        let others = self.addresses().into_iter().filter(|s| *s != self.current);
        let all = std::iter::once(self.current.clone()).chain(others);
        let (mut order, mut failed): (Vec<String>, Vec<String>) =
            all.partition(|s| !self.recently_failed(s, now));
        failed.sort_by_key(|s| self.failed.get(s).copied());
        order.append(&mut failed);
        order
    }

    /// A dial to `server` succeeded: it is healthy and becomes the current server. Whether
    /// the current server changed.
    pub fn succeeded(&mut self, server: &str) -> bool {
        self.failed.remove(server);
        if self.current == server || !self.knows(server) {
            return false;
        }
        self.current = server.to_string();
        true
    }

    /// A dial to `server` failed at `now`. Whether it was healthy until then.
    pub fn failed(&mut self, server: &str, now: Instant) -> bool {
        if !self.knows(server) {
            return false;
        }
        let was_healthy = !self.recently_failed(server, now);
        self.failed.insert(server.to_string(), now);
        was_healthy
    }

    #[cfg(test)]
    fn current(&self) -> &str {
        &self.current
    }
}

/// `host:port` for a host (IP or name) and port, IPv6 in brackets.
fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// The `host:port` a server URL names (443 when it names no port, as for any https URL).
pub fn server_address(url: &str) -> anyhow::Result<String> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("invalid --server {url:?}"))?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("--server {url:?} names no host"))?;
    let default_port = if uri.scheme_str() == Some("http") {
        80
    } else {
        443
    };
    // http::Uri keeps an IPv6 host's brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(host_port(host, uri.port_u16().unwrap_or(default_port)))
}

/// The API servers an EndpointSlice of the `kubernetes` Service lists: every address of an
/// endpoint not known to be unready, on its `https` port.
pub fn slice_servers(slice: &EndpointSlice) -> Vec<String> {
    let ports = slice.ports.as_deref().unwrap_or_default();
    let port = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("https"))
        .or_else(|| ports.first())
        .and_then(|p| p.port)
        .and_then(|p| u16::try_from(p).ok());
    let Some(port) = port else {
        return Vec::new();
    };
    slice
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .flat_map(|e| e.addresses.iter())
        .map(|a| host_port(a, port))
        .collect()
}

/// The file's content: k3s' keys, `ServerURL` (the `--server` it was written for) and
/// `ServerAddresses`.
fn state_json(server_url: &str, servers: &[String]) -> String {
    let v = serde_json::json!({"ServerURL": server_url, "ServerAddresses": servers});
    format!("{v:#}\n")
}

/// The servers a file lists, if it was written for `server_url` (for another `--server`
/// it is stale: k3s starts over then too).
fn parse_state(server_url: &str, text: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v.get("ServerURL")?.as_str()? != server_url {
        return None;
    }
    let servers = v.get("ServerAddresses")?.as_array()?;
    Some(
        servers
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
    )
}

/// Writes `text` to `path` whole or not at all (a temporary file renamed over it).
fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn dial(server: &str) -> std::io::Result<TcpStream> {
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(server)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer in {DIAL_TIMEOUT:?}"),
        )),
    }
}

struct Inner {
    server_url: String,
    state_file: PathBuf,
    servers: Mutex<ServerList>,
    /// Per server, what its proxied connections wait on: a value sent (a failed dial), or
    /// the sender dropped (the server left the list), closes them.
    connections: Mutex<HashMap<String, watch::Sender<()>>>,
}

impl Inner {
    fn save(&self) {
        let text = state_json(&self.server_url, &lock(&self.servers).addresses());
        if let Err(e) = write_whole(&self.state_file, &text) {
            warn!(error = %format!("{e:#}"), "load balancer: keeping the server list");
        }
    }

    /// Takes the servers the endpoints list; closes the connections to those that left.
    fn update(&self, servers: Vec<String>) {
        let (removed, all) = {
            let mut list = lock(&self.servers);
            match list.set_learned(servers) {
                Some(removed) => (removed, list.addresses()),
                None => return,
            }
        };
        info!(servers = ?all, "load balancer: servers updated");
        {
            let mut conns = lock(&self.connections);
            for r in &removed {
                // Dropping the sender closes every connection to it.
                if let Some(tx) = conns.remove(r) {
                    info!(server = %r, connections = tx.receiver_count(), "load balancer: server removed, closing its connections");
                }
            }
        }
        self.save();
    }

    /// What a new connection to `server` waits on to be closed.
    fn closer(&self, server: &str) -> watch::Receiver<()> {
        lock(&self.connections)
            .entry(server.to_string())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    /// `server` did not answer: passed over for a while, its connections closed.
    fn mark_failed(&self, server: &str, error: &std::io::Error) {
        let newly = lock(&self.servers).failed(server, Instant::now());
        let open = lock(&self.connections).get(server).map(|tx| {
            let n = tx.receiver_count();
            tx.send_replace(());
            n
        });
        if newly {
            warn!(%server, %error, connections = open.unwrap_or(0), "load balancer: server not answering, closing its connections");
        } else {
            debug!(%server, %error, "load balancer: server still not answering");
        }
    }

    /// A connection to the first server that answers, with what closes it.
    async fn connect(&self) -> Option<(String, TcpStream, watch::Receiver<()>)> {
        let order = lock(&self.servers).dial_order(Instant::now());
        for server in order {
            match dial(&server).await {
                Ok(stream) => {
                    let closer = self.closer(&server);
                    if lock(&self.servers).succeeded(&server) {
                        info!(%server, "load balancer: now using server");
                    }
                    return Some((server, stream, closer));
                }
                Err(e) => self.mark_failed(&server, &e),
            }
        }
        None
    }

    async fn proxy(self: Arc<Self>, mut client: TcpStream) {
        let Some((server, mut upstream, mut closer)) = self.connect().await else {
            warn!("load balancer: no server answered; closing the client's connection");
            return;
        };
        // Small TLS records both ways: no Nagle delay on an API request or a watch event.
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = r {
                    debug!(%server, error = %e, "load balancer: connection ended");
                }
            }
            _ = closer.changed() => {
                debug!(%server, "load balancer: closing a connection to a failed or removed server");
            }
        }
    }

    async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(self.clone().proxy(client));
                }
                Err(e) => {
                    // Out of file descriptors and the like: try again shortly.
                    warn!(error = %e, "load balancer: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Dials every server that has connections, every [`HEALTH_INTERVAL`].
    async fn check_health(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let in_use: Vec<String> = lock(&self.connections)
                .iter()
                .filter(|(_, tx)| tx.receiver_count() > 0)
                .map(|(s, _)| s.clone())
                .collect();
            for server in in_use {
                match dial(&server).await {
                    Ok(_) => {
                        lock(&self.servers).failed.remove(&server);
                    }
                    Err(e) => self.mark_failed(&server, &e),
                }
            }
        }
    }
}

/// The running load balancer; stops listening and watching when dropped (connections in
/// flight end with their clients).
pub struct LoadBalancer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    tasks: Vec<AbortHandle>,
    stop_watch: Option<Box<dyn Fn() + Send + Sync>>,
}

impl LoadBalancer {
    /// Listens on `127.0.0.1:port` (0: any free port) and proxies to the server of
    /// `server_url` and those the state file under `data_dir` names (if written for the
    /// same URL).
    pub async fn start(server_url: &str, data_dir: &Path, port: u16) -> anyhow::Result<Self> {
        let mut servers = ServerList::new(server_address(server_url)?);
        let state_file = data_dir.join(STATE_FILE);
        match std::fs::read_to_string(&state_file) {
            Ok(text) => {
                if let Some(known) = parse_state(server_url, &text) {
                    servers.set_learned(known);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(path = %state_file.display(), error = %e, "load balancer: not reading the known servers")
            }
        }
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen} (--lb-server-port)"))?;
        let addr = listener.local_addr().context("the listener's address")?;
        let inner = Arc::new(Inner {
            server_url: server_url.to_string(),
            state_file,
            servers: Mutex::new(servers),
            connections: Mutex::new(HashMap::new()),
        });
        inner.save();
        info!(listen = %addr, servers = ?lock(&inner.servers).addresses(), "load balancer running");
        let tasks = vec![
            tokio::spawn(inner.clone().serve(listener)).abort_handle(),
            tokio::spawn(inner.clone().check_health()).abort_handle(),
        ];
        Ok(LoadBalancer {
            inner,
            addr,
            tasks,
            stop_watch: None,
        })
    }

    /// The URL clients use: `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Every known server, `--server`'s first.
    #[cfg(test)]
    fn servers(&self) -> Vec<String> {
        lock(&self.inner.servers).addresses()
    }

    /// Takes the servers the `kubernetes` endpoints list.
    #[cfg(test)]
    fn update(&self, servers: Vec<String>) {
        self.inner.update(servers);
    }

    /// Learns the servers from the `default/kubernetes` EndpointSlice, watched with `client`
    /// (through this balancer, as k3s' agent watches the endpoints through its own).
    pub fn watch_servers(&mut self, client: kube::Client) {
        let slices = client_go::informer::Informer::<EndpointSlice>::start_with(
            Api::namespaced(client, "default"),
            watcher::Config::default().fields("metadata.name=kubernetes"),
        );
        let inner = self.inner.clone();
        slices.on_change(move |change| {
            if let Some(slice) = &change.new {
                inner.update(slice_servers(slice));
            }
        });
        self.stop_watch = Some(slices.stopper());
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(stop) = &self.stop_watch {
            stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn list(default: &str, learned: &[&str]) -> ServerList {
        let mut l = ServerList::new(default.into());
        l.set_learned(learned.iter().map(|s| s.to_string()).collect());
        l
    }

    #[test]
    fn the_server_flag_comes_first_then_the_endpoints() {
        let mut l = list(
            "10.0.0.1:6443",
            &["10.0.0.3:6443", "10.0.0.1:6443", "10.0.0.2:6443"],
        );
        assert_eq!(
            l.addresses(),
            ["10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.3:6443"]
        );
        assert_eq!(l.dial_order(Instant::now()), l.addresses());
        // The same servers in another order change nothing; none is ignored.
        assert_eq!(
            l.set_learned(vec!["10.0.0.2:6443".into(), "10.0.0.3:6443".into()]),
            None
        );
        assert_eq!(l.set_learned(Vec::new()), None);
        assert_eq!(l.addresses().len(), 3);
        // A server that leaves is reported (its connections are closed); `--server`'s stays.
        assert_eq!(
            l.set_learned(vec!["10.0.0.2:6443".into()]),
            Some(vec!["10.0.0.3:6443".to_string()])
        );
        assert_eq!(l.addresses(), ["10.0.0.1:6443", "10.0.0.2:6443"]);
    }

    #[test]
    fn a_failed_server_is_passed_over_then_tried_again() {
        let t0 = Instant::now();
        let mut l = list("a:1", &["b:1", "c:1"]);
        assert_eq!(l.current(), "a:1");
        assert!(l.failed("a:1", t0));
        // Failing again while it is passed over is no news.
        assert!(!l.failed("a:1", t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.dial_order(t1), ["b:1", "c:1", "a:1"]);
        assert!(l.succeeded("b:1"));
        assert_eq!(l.current(), "b:1");
        // Sticky: the current server first while it answers, the failed one still last.
        assert_eq!(l.dial_order(t1), ["b:1", "c:1", "a:1"]);
        // Later the failed server is tried again, in its place after the current one.
        let later = t1 + RETRY_AFTER;
        assert_eq!(l.dial_order(later), ["b:1", "a:1", "c:1"]);
        // Every server failed: all are still tried, the longest-failed first.
        assert!(l.failed("b:1", later));
        assert!(l.failed("c:1", later + Duration::from_secs(1)));
        assert!(l.failed("a:1", later + Duration::from_secs(2)));
        assert_eq!(
            l.dial_order(later + Duration::from_secs(3)),
            ["b:1", "c:1", "a:1"]
        );
        // A success clears the failure.
        assert!(!l.succeeded("b:1"));
        assert_eq!(
            l.dial_order(later + Duration::from_secs(3)),
            ["b:1", "c:1", "a:1"]
        );
        assert!(!l.recently_failed("b:1", later + Duration::from_secs(3)));
    }

    #[test]
    fn a_removed_current_server_gives_way_to_the_server_flag() {
        let mut l = list("a:1", &["b:1"]);
        assert!(l.succeeded("b:1"));
        assert_eq!(l.set_learned(vec!["c:1".into()]), Some(vec!["b:1".into()]));
        assert_eq!(l.current(), "a:1");
        // A dial that ends after its server left does not bring it back.
        assert!(!l.succeeded("b:1"));
        assert!(!l.failed("b:1", Instant::now()));
        assert_eq!(l.addresses(), ["a:1", "c:1"]);
    }

    #[test]
    fn server_urls_and_endpoint_slices_give_host_ports() {
        assert_eq!(
            server_address("https://10.0.0.1:6443").unwrap(),
            "10.0.0.1:6443"
        );
        assert_eq!(
            server_address("https://server.example").unwrap(),
            "server.example:443"
        );
        assert_eq!(
            server_address("https://[fd00::1]:6443").unwrap(),
            "[fd00::1]:6443"
        );
        assert!(server_address("not a url").is_err());
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.99.0.1"], "conditions": {"ready": true}},
                {"addresses": ["10.99.0.2"]},
                {"addresses": ["10.99.0.3"], "conditions": {"ready": false}},
            ],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        }))
        .unwrap();
        assert_eq!(slice_servers(&slice), ["10.99.0.1:6443", "10.99.0.2:6443"]);
    }

    #[test]
    fn the_state_file_round_trips_for_the_same_server_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let servers = vec!["10.0.0.1:6443".to_string(), "10.0.0.2:6443".to_string()];
        write_whole(&path, &state_json("https://10.0.0.1:6443", &servers)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"ServerAddresses\""), "{text}");
        assert_eq!(
            parse_state("https://10.0.0.1:6443", &text),
            Some(servers.clone())
        );
        // Written for another --server: not used.
        assert_eq!(parse_state("https://10.0.0.9:6443", &text), None);
        assert_eq!(parse_state("https://10.0.0.1:6443", "{not json"), None);
    }

    /// A listener on loopback, for [`serve_named`].
    async fn listener() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        (l, addr)
    }

    /// A server that writes `name` to each connection, then echoes.
    fn serve_named(l: TcpListener, name: &'static str) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let _ = s.write_all(name.as_bytes()).await;
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        })
    }

    /// Which server a new connection through the balancer reaches.
    async fn reached(lb: &LoadBalancer) -> (String, TcpStream) {
        let mut c = TcpStream::connect(lb.addr).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), c)
    }

    #[tokio::test]
    async fn connections_fail_over_and_the_servers_persist() {
        let dir = tempfile::tempdir().unwrap();
        let (listen_a, a) = listener().await;
        let (listen_b, b) = listener().await;
        let a_task = serve_named(listen_a, "a");
        let _b_task = serve_named(listen_b, "b");
        let url = format!("https://{a}");
        let lb = LoadBalancer::start(&url, dir.path(), 0).await.unwrap();
        lb.update(vec![a.clone(), b.clone()]);
        let (first, mut held) = reached(&lb).await;
        assert_eq!(first, "a");
        // Bytes pass through untouched.
        held.write_all(b"xyz").await.unwrap();
        let mut echo = [0u8; 3];
        held.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"xyz");
        // `a` stops: new connections go to `b`.
        a_task.abort();
        let _ = a_task.await;
        let (second, mut to_b) = reached(&lb).await;
        assert_eq!(second, "b");
        // `b` leaves the endpoints: its connection is closed, the client sees EOF.
        lb.update(vec![a.clone()]);
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), to_b.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "a connection to a removed server stayed open");
        // A new balancer for the same --server starts with the servers it knew.
        lb.update(vec![a.clone(), b.clone()]);
        drop(lb);
        let again = LoadBalancer::start(&url, dir.path(), 0).await.unwrap();
        assert_eq!(again.servers(), [a.clone(), b.clone()]);
        let (third, _) = reached(&again).await;
        assert_eq!(third, "b");
    }
}
