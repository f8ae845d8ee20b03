//! A minimal DNS client for the tests: hand-built hickory-proto queries over loopback UDP
//! or TCP (or a UDP socket the test made in its own network namespace).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, Query};
use hickory_server::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Clone, Copy, Debug)]
pub enum Via {
    /// Plain UDP: the server may answer with at most 512 bytes.
    Udp,
    /// UDP advertising this EDNS payload size.
    UdpEdns(u16),
    Tcp,
}

pub fn query(name: &str, t: RecordType, edns: Option<u16>) -> Message {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg
}

pub async fn ask(server: SocketAddr, name: &str, t: RecordType, via: Via) -> Message {
    match via {
        Via::Udp | Via::UdpEdns(_) => {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let edns = if let Via::UdpEdns(n) = via {
                Some(n)
            } else {
                None
            };
            ask_udp(&sock, server, &query(name, t, edns)).await
        }
        Via::Tcp => ask_tcp(server, &query(name, t, None)).await,
    }
}

pub async fn ask_udp(sock: &UdpSocket, server: SocketAddr, q: &Message) -> Message {
    sock.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .expect("no UDP answer within 3s")
        .unwrap();
    let msg = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(msg.metadata.id, q.metadata.id);
    msg
}

pub async fn ask_tcp(server: SocketAddr, q: &Message) -> Message {
    let mut s = TcpStream::connect(server).await.unwrap();
    let bytes = q.to_vec().unwrap();
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&bytes);
    s.write_all(&out).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_u16())
        .await
        .expect("no TCP answer within 3s")
        .unwrap();
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf).await.unwrap();
    let msg = Message::from_vec(&buf).unwrap();
    assert_eq!(msg.metadata.id, q.metadata.id);
    msg
}

/// The answer section's data, sorted, as text (`10.43.0.20`, `0 50 80 web...`).
pub fn data(msg: &Message) -> Vec<String> {
    let mut out: Vec<String> = msg.answers.iter().map(|r| r.data.to_string()).collect();
    out.sort();
    out
}

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::ObjectMeta;

pub fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A Service with one named TCP port; `cluster_ip` "None" makes it headless, `None` lets the
/// API server allocate one.
pub fn service(ns: &str, name: &str, cluster_ip: Option<&str>, port: (&str, i32)) -> Service {
    Service {
        metadata: meta(ns, name),
        spec: Some(ServiceSpec {
            cluster_ip: cluster_ip.map(str::to_string),
            cluster_ips: cluster_ip.map(|ip| vec![ip.to_string()]),
            ports: Some(vec![ServicePort {
                name: Some(port.0.into()),
                port: port.1,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// An ExternalName Service.
pub fn external_name(ns: &str, name: &str, target: &str) -> Service {
    Service {
        metadata: meta(ns, name),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(target.into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// An EndpointSlice of `svc`: (address, hostname, ready) with one named TCP port.
pub fn slice(
    ns: &str,
    svc: &str,
    name: &str,
    eps: &[(String, Option<String>, bool)],
    port: (&str, i32),
) -> EndpointSlice {
    let mut metadata = meta(ns, name);
    metadata.labels = Some([("kubernetes.io/service-name".to_string(), svc.to_string())].into());
    EndpointSlice {
        metadata,
        address_type: "IPv4".into(),
        endpoints: eps
            .iter()
            .map(|(ip, host, ready)| Endpoint {
                addresses: vec![ip.clone()],
                hostname: host.clone(),
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some(port.0.into()),
            port: Some(port.1),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}
