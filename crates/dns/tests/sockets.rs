//! The server over real sockets, from fixed records (no API server): UDP truncation and TCP,
//! REFUSED without an upstream, forwarding to a fake upstream on loopback, and binding with
//! IP_FREEBIND inside a throwaway network namespace (root only).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{Via, ask, ask_udp, data, external_name, query, service, slice};
use dns::{DnsConfig, Records, Server};
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{RData, Record, RecordType};

/// A headless Service with `n` ready endpoints, plus a ClusterIP one.
fn records(n: usize) -> Records {
    let svcs = [
        Arc::new(service("default", "big", Some("None"), ("web", 80))),
        Arc::new(service("default", "web", Some("10.43.0.20"), ("http", 80))),
        Arc::new(external_name("default", "ext", "www.example.com")),
    ];
    let eps: Vec<_> = (0..n)
        .map(|i| (format!("10.42.{}.{}", i / 250, i % 250 + 1), None, true))
        .collect();
    let slices = [Arc::new(slice(
        "default",
        "big",
        "big-1",
        &eps,
        ("web", 8080),
    ))];
    Records::fixed(&svcs, &slices)
}

async fn start(records: Records, cfg: DnsConfig) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let addr = server.local_addr();
    let task = tokio::spawn(async move {
        server.run(records, &cfg).await.unwrap();
    });
    (addr, task)
}

#[tokio::test]
async fn udp_truncates_what_tcp_answers_whole() {
    let (addr, task) = start(records(100), DnsConfig::new()).await;
    let name = "big.default.svc.cluster.local.";

    let udp = ask(addr, name, RecordType::A, Via::Udp).await;
    assert!(udp.metadata.truncation, "100 A records exceed 512 bytes");
    assert!(udp.answers.len() < 100);

    let edns = ask(addr, name, RecordType::A, Via::UdpEdns(4096)).await;
    assert!(!edns.metadata.truncation);
    assert_eq!(edns.answers.len(), 100);

    let tcp = ask(addr, name, RecordType::A, Via::Tcp).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 100);
    assert!(tcp.metadata.authoritative);
    task.abort();
}

#[tokio::test]
async fn unknown_names_nxdomain_and_outside_names_refused() {
    let (addr, task) = start(records(1), DnsConfig::new()).await;
    let nx = ask(
        addr,
        "nope.default.svc.cluster.local",
        RecordType::A,
        Via::Udp,
    )
    .await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);

    let nodata = ask(
        addr,
        "web.default.svc.cluster.local",
        RecordType::AAAA,
        Via::Udp,
    )
    .await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);

    let out = ask(addr, "example.com", RecordType::A, Via::Udp).await;
    assert_eq!(out.metadata.response_code, ResponseCode::Refused);

    // Without an upstream an ExternalName answers with its CNAME alone.
    let ext = ask(
        addr,
        "ext.default.svc.cluster.local.",
        RecordType::A,
        Via::Udp,
    )
    .await;
    assert_eq!(data(&ext), ["www.example.com."]);

    let v = ask(addr, "dns-version.cluster.local", RecordType::TXT, Via::Tcp).await;
    assert_eq!(data(&v), ["1.1.0"]);
    task.abort();
}

/// A fake upstream on loopback that answers every A question with 192.0.2.7 (no traffic
/// leaves the machine: the address is only data in the reply).
async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_available = true;
            r.queries = q.queries.clone();
            let name = q.queries[0].name().clone();
            r.add_answer(Record::from_rdata(
                name,
                60,
                RData::A(A("192.0.2.7".parse().unwrap())),
            ));
            sock.send_to(&r.to_vec().unwrap(), from).await.unwrap();
        }
    });
    (addr, task)
}

#[tokio::test]
async fn forwards_outside_names_only_to_a_configured_upstream() {
    let (up, up_task) = fake_upstream().await;
    let mut cfg = DnsConfig::new();
    cfg.upstream = vec![up];
    let (addr, task) = start(records(1), cfg).await;

    let fwd = ask(addr, "example.com.", RecordType::A, Via::Udp).await;
    assert_eq!(fwd.metadata.response_code, ResponseCode::NoError);
    assert_eq!(data(&fwd), ["192.0.2.7"]);
    assert!(fwd.metadata.recursion_available);
    assert!(!fwd.metadata.authoritative);
    let fwd_tcp = ask(addr, "example.com.", RecordType::A, Via::Tcp).await;
    assert_eq!(data(&fwd_tcp), ["192.0.2.7"]);

    // An ExternalName's target is completed from the upstream.
    let ext = ask(
        addr,
        "ext.default.svc.cluster.local.",
        RecordType::A,
        Via::Udp,
    )
    .await;
    assert_eq!(ext.metadata.response_code, ResponseCode::NoError);
    assert_eq!(data(&ext), ["192.0.2.7", "www.example.com."]);
    assert_eq!(ext.answers[0].record_type(), RecordType::CNAME);

    // Cluster names never go upstream.
    let local = ask(
        addr,
        "web.default.svc.cluster.local.",
        RecordType::A,
        Via::Udp,
    )
    .await;
    assert_eq!(data(&local), ["10.43.0.20"]);
    let nx = ask(
        addr,
        "nope.default.svc.cluster.local.",
        RecordType::A,
        Via::Udp,
    )
    .await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    task.abort();
    up_task.abort();
}

#[tokio::test]
async fn forward_failure_is_servfail() {
    // An upstream that never answers: a bound loopback socket nobody reads.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cfg = DnsConfig::new();
    cfg.upstream = vec![silent.local_addr().unwrap()];
    let (addr, task) = start(records(1), cfg).await;
    let r = ask(addr, "example.com.", RecordType::A, Via::Udp).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    task.abort();
}

/// Runs `cmd` and panics with its output when it fails.
fn run(cmd: &[&str]) {
    let out = std::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// A network namespace held by a `sleep` in it; killed on drop.
struct Netns(std::process::Child);

impl Netns {
    fn new() -> Netns {
        let child = std::process::Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .spawn()
            .unwrap();
        let ns = Netns(child);
        // unshare execs sleep once the namespace exists.
        for _ in 0..100 {
            if std::fs::read_link(ns.path()).ok() != std::fs::read_link("/proc/self/ns/net").ok() {
                return ns;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the netns holder did not enter its namespace");
    }

    fn path(&self) -> std::path::PathBuf {
        format!("/proc/{}/ns/net", self.0.id()).into()
    }

    fn exec(&self, cmd: &[&str]) {
        let net = format!("--net={}", self.path().display());
        let mut args = vec!["nsenter", net.as_str()];
        args.extend_from_slice(cmd);
        run(&args);
    }

    /// A UDP socket created inside the namespace (the same trick the server uses).
    fn udp_socket(&self) -> tokio::net::UdpSocket {
        use std::os::fd::AsRawFd;
        let path = self.path();
        let sock = std::thread::spawn(move || {
            let f = std::fs::File::open(path).unwrap();
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .join()
        .unwrap();
        tokio::net::UdpSocket::from_std(sock).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binds_with_freebind_inside_a_netns_before_the_address_exists() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let ns = Netns::new();
    // 10.99.0.1 exists nowhere yet: only FREEBIND lets this bind succeed.
    let listen: SocketAddr = "10.99.0.1:53".parse().unwrap();
    let server = Server::bind(listen, Some(&ns.path())).unwrap();
    assert_eq!(server.local_addr(), listen);
    let task = tokio::spawn(async move {
        server.run(records(3), &DnsConfig::new()).await.unwrap();
    });

    // The address appears later, as a CNI bridge gateway does with the first pod.
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    ns.exec(&["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"]);

    let sock = ns.udp_socket();
    let q = query("web.default.svc.cluster.local.", RecordType::A, None);
    let r = ask_udp(&sock, listen, &q).await;
    assert_eq!(data(&r), ["10.43.0.20"]);
    // A real stub resolver in the namespace, as a pod's would be (busybox, when installed).
    if std::path::Path::new("/bin/busybox").exists() {
        let net = format!("--net={}", ns.path().display());
        let out = tokio::process::Command::new("nsenter")
            .args([
                net.as_str(),
                "/bin/busybox",
                "nslookup",
                "web.default.svc.cluster.local",
                "10.99.0.1",
            ])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("10.43.0.20"), "busybox nslookup: {out:?}");
    }
    // The host's own namespace has no such listener (the sockets live in the netns).
    assert!(
        std::net::UdpSocket::bind("10.99.0.1:0").is_err(),
        "10.99.0.1 must not exist on the host"
    );
    task.abort();
}
