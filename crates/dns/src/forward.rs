//! Forwarding names outside the cluster zone to the configured upstream resolvers (CoreDNS's
//! `forward` plugin, reduced): the client's query goes out as it came in, over UDP, retried
//! over TCP when the upstream truncates, each upstream tried in turn.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_server::proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Per upstream and attempt (CoreDNS's `forward` gives up on an upstream after 2 s too).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `query` (a DNS message as received) to the upstreams in order; the first answer wins.
pub async fn forward(upstreams: &[SocketAddr], query: &[u8], id: u16) -> anyhow::Result<Message> {
    let mut last = None;
    for upstream in upstreams {
        match tokio::time::timeout(TIMEOUT, exchange(*upstream, query, id)).await {
            Ok(Ok(msg)) => return Ok(msg),
            Ok(Err(e)) => last = Some(e.context(format!("upstream {upstream}"))),
            Err(_) => last = Some(anyhow::anyhow!("upstream {upstream} timed out")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no upstream configured")))
}

async fn exchange(upstream: SocketAddr, query: &[u8], id: u16) -> anyhow::Result<Message> {
    let msg = over_udp(upstream, query, id).await?;
    if msg.metadata.truncation {
        return over_tcp(upstream, query, id).await;
    }
    Ok(msg)
}

async fn over_udp(upstream: SocketAddr, query: &[u8], id: u16) -> anyhow::Result<Message> {
    let local: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local)
        .await
        .context("binding a UDP socket")?;
    sock.connect(upstream).await.context("connecting")?;
    sock.send(query).await.context("sending")?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await.context("receiving")?;
        // A stray or spoofed datagram with another id is ignored, not taken as the answer.
        if let Ok(msg) = Message::from_vec(&buf[..n])
            && msg.metadata.id == id
        {
            return Ok(msg);
        }
    }
}

async fn over_tcp(upstream: SocketAddr, query: &[u8], id: u16) -> anyhow::Result<Message> {
    let mut stream = TcpStream::connect(upstream).await.context("connecting")?;
    let len = u16::try_from(query.len()).context("query too long")?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    stream.write_all(&out).await.context("sending")?;
    let n = stream.read_u16().await.context("reading the length")?;
    let mut buf = vec![0u8; usize::from(n)];
    stream
        .read_exact(&mut buf)
        .await
        .context("reading the answer")?;
    let msg = Message::from_vec(&buf).context("decoding the answer")?;
    if msg.metadata.id != id {
        bail!("answer id {} does not match {id}", msg.metadata.id);
    }
    Ok(msg)
}
