//! The sockets and the hickory request handler: binding UDP and TCP (in another network
//! namespace when asked, with IP_FREEBIND so the address may appear later), and turning each
//! question into an authoritative answer, a forwarded one, or REFUSED.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use socket2::{Domain, Socket, Type};

use crate::DnsConfig;
use crate::forward::forward;
use crate::resolve::{Answer, Outcome, Zone};
use crate::watch::{Records, Watch};

/// A TCP connection idle this long is closed (CoreDNS's default idle timeout).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_QUEUE: usize = 32;
/// Asked of the kernel so bursts of queries are not dropped (it caps at `rmem_max`).
const UDP_RECV_BUFFER: usize = 4 << 20;

/// Bound sockets, ready to serve.
pub struct Server {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    local: SocketAddr,
}

impl Server {
    /// Binds UDP and TCP on `listen` (port 0: one free port for both) inside the network
    /// namespace at `netns` (`None`: this process's own).
    pub fn bind(listen: SocketAddr, netns: Option<&Path>) -> anyhow::Result<Server> {
        let (udp, tcp) = match netns {
            None => bind_pair(listen)?,
            Some(path) => {
                let path: PathBuf = path.to_path_buf();
                // setns() moves only the calling thread, and a socket stays in the namespace
                // it was created in: so a short-lived thread enters, binds, and ends.
                std::thread::Builder::new()
                    .name("dns-bind".into())
                    .spawn(move || {
                        enter_netns(&path)?;
                        bind_pair(listen)
                    })
                    .context("starting the socket-binding thread")?
                    .join()
                    .map_err(|_| anyhow!("the socket-binding thread panicked"))??
            }
        };
        let local = udp.local_addr().context("reading the bound address")?;
        Ok(Server { udp, tcp, local })
    }

    /// The address bound (UDP and TCP share it).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves the cluster's records, watched from the API server, until dropped.
    pub async fn serve(self, client: kube::Client, cfg: DnsConfig) -> anyhow::Result<()> {
        let watch = Watch::start(client);
        let records = Records::default();
        watch.sync(&records).await;
        tokio::select! {
            r = self.run(records.clone(), &cfg) => r,
            () = watch.keep_updated(&records) => Ok(()),
        }
    }

    /// Serves `records` (which the caller keeps current) until dropped.
    pub async fn run(self, records: Records, cfg: &DnsConfig) -> anyhow::Result<()> {
        let handler = Handler {
            zone: Zone::new(&cfg.cluster_domain, cfg.ttl)?,
            records,
            upstream: cfg.upstream.clone(),
        };
        let udp = tokio::net::UdpSocket::from_std(self.udp).context("registering UDP")?;
        let tcp = tokio::net::TcpListener::from_std(self.tcp).context("registering TCP")?;
        tracing::info!(addr = %self.local, zone = %cfg.cluster_domain, "cluster DNS serving");
        let mut server = hickory_server::Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, TCP_QUEUE);
        server
            .block_until_done()
            .await
            .context("the DNS server stopped")
    }
}

fn enter_netns(path: &Path) -> anyhow::Result<()> {
    let ns = File::open(path).with_context(|| format!("opening netns {}", path.display()))?;
    // SAFETY: setns() with a file descriptor that stays open for the call; it changes only
    // this thread's network namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("entering netns {}", path.display()));
    }
    Ok(())
}

/// UDP and TCP on the same address; with port 0, TCP takes the port UDP got (retrying with a
/// new one in the rare case TCP's is taken).
fn bind_pair(listen: SocketAddr) -> anyhow::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut tries = 0;
    loop {
        let udp =
            bind_socket(listen, Type::DGRAM).with_context(|| format!("binding UDP {listen}"))?;
        let addr = udp
            .local_addr()
            .context("reading the UDP address")?
            .as_socket()
            .ok_or_else(|| anyhow!("UDP bound to a non-IP address"))?;
        match bind_socket(addr, Type::STREAM) {
            Ok(tcp) => return Ok((udp.into(), tcp.into())),
            Err(e) if listen.port() == 0 && tries < 10 => {
                tracing::debug!(error = %e, port = addr.port(), "TCP port taken; trying another");
                tries += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("binding TCP {addr}")),
        }
    }
}

fn bind_socket(addr: SocketAddr, ty: Type) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, None)?;
    // FREEBIND: the address (the node's CNI bridge gateway) may only appear with the first pod.
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        socket.set_freebind_v6(true)?;
        socket.set_only_v6(true)?;
    }
    if ty == Type::STREAM {
        socket.set_reuse_address(true)?;
    } else if let Err(e) = socket.set_recv_buffer_size(UDP_RECV_BUFFER) {
        tracing::debug!(error = %e, "could not enlarge the UDP receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    if ty == Type::STREAM {
        socket.listen(1024)?;
    }
    Ok(socket)
}

struct Handler {
    zone: Zone,
    records: Records,
    upstream: Vec<SocketAddr>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e.set_version(0);
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let meta = &request.metadata;
        if meta.message_type != MessageType::Query || meta.op_code != OpCode::Query {
            let msg = builder.error_msg(meta, ResponseCode::NotImp);
            return sent(response.send_response(msg).await, meta);
        }
        let Ok(info) = request.request_info() else {
            let msg = builder.error_msg(meta, ResponseCode::FormErr);
            return sent(response.send_response(msg).await, meta);
        };
        let query = info.query.original();
        let outcome = if query.query_class() == DNSClass::IN {
            let index = self.records.snapshot();
            self.zone.resolve(&index, query.name(), query.query_type())
        } else {
            Outcome::NotOurs
        };
        match outcome {
            Outcome::Answer(mut a) => {
                if !self.upstream.is_empty()
                    && let Some(target) = self.zone.external_target(&a, query.query_type())
                {
                    self.follow_upstream(&mut a, target, query.query_type())
                        .await;
                }
                let mut m = Metadata::response_from_request(meta);
                m.authoritative = true;
                m.response_code = a.rcode;
                let msg = builder.build(
                    m,
                    a.answers.iter(),
                    a.authorities.iter(),
                    std::iter::empty(),
                    a.additionals.iter(),
                );
                sent(response.send_response(msg).await, meta)
            }
            Outcome::NotOurs if self.upstream.is_empty() => {
                let msg = builder.error_msg(meta, ResponseCode::Refused);
                sent(response.send_response(msg).await, meta)
            }
            Outcome::NotOurs => match forward(&self.upstream, request.as_slice(), meta.id).await {
                Ok(up) => {
                    let mut m = Metadata::response_from_request(meta);
                    m.response_code = up.metadata.response_code;
                    m.recursion_available = up.metadata.recursion_available;
                    m.authentic_data = up.metadata.authentic_data;
                    let msg = builder.build(
                        m,
                        up.answers.iter(),
                        up.authorities.iter(),
                        std::iter::empty(),
                        up.additionals.iter(),
                    );
                    sent(response.send_response(msg).await, meta)
                }
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), name = %query.name(), "forwarding failed");
                    let msg = builder.error_msg(meta, ResponseCode::ServFail);
                    sent(response.send_response(msg).await, meta)
                }
            },
        }
    }
}

impl Handler {
    /// Completes an ExternalName's CNAME with the target's records from the upstream (as
    /// CoreDNS does when it can forward), so the client needs no second round trip.
    async fn follow_upstream(&self, answer: &mut Answer, target: Name, qtype: RecordType) {
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(target.clone(), qtype));
        let result = match q.to_vec() {
            Ok(bytes) => forward(&self.upstream, &bytes, q.metadata.id).await,
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(up) => {
                if matches!(
                    up.metadata.response_code,
                    ResponseCode::NoError | ResponseCode::NXDomain
                ) {
                    answer.rcode = up.metadata.response_code;
                    answer.answers.extend(up.answers);
                }
            }
            // The CNAME alone still answers; the client may resolve the target itself.
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), %target, "resolving an ExternalName target upstream failed")
            }
        }
    }
}

/// The handler's report of what went out (a SERVFAIL header when sending failed).
fn sent(
    result: Result<ResponseInfo, hickory_server::net::NetError>,
    request: &Metadata,
) -> ResponseInfo {
    result.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "sending a DNS response failed");
        let mut metadata = Metadata::response_from_request(request);
        metadata.response_code = ResponseCode::ServFail;
        ResponseInfo::from(Header {
            metadata,
            counts: HeaderCounts::default(),
        })
    })
}
