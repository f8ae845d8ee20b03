//! Sockets in another network namespace: the pods' (when the runtime runs in one of its own,
//! as in the node test lab), for the kubelet's probes and stream proxying and the API
//! server's pod and service proxies.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;

use tokio::net::TcpSocket;
use tokio::sync::oneshot;

/// Makes TCP sockets in a network namespace: a thread that entered it creates them (a socket
/// belongs to the namespace it was created in); connecting is then ordinary async I/O.
pub struct NetnsDialer {
    tx: std::sync::mpsc::Sender<(bool, oneshot::Sender<std::io::Result<std::net::TcpStream>>)>,
}

impl NetnsDialer {
    /// Starts the socket-making thread in the network namespace at `netns`
    /// (e.g. `/proc/<pid>/ns/net`).
    pub fn new(netns: &Path) -> std::io::Result<Self> {
        let ns = File::open(netns)?;
        let (tx, rx) = std::sync::mpsc::channel::<(bool, oneshot::Sender<_>)>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("netns-dialer".into())
            .spawn(move || {
                // SAFETY: setns affects this thread only; the fd is open for the call.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let _ = ready_tx.send(Err(std::io::Error::last_os_error()));
                    return;
                }
                drop(ns);
                let _ = ready_tx.send(Ok(()));
                while let Ok((v6, reply)) = rx.recv() {
                    let _ = reply.send(new_socket(v6));
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("netns dialer thread died"))??;
        Ok(NetnsDialer { tx })
    }

    /// Connects to `addr` from the namespace.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<tokio::net::TcpStream> {
        self.socket(addr.is_ipv6()).await?.connect(addr).await
    }

    /// An unconnected socket of the namespace, ready to connect.
    pub async fn socket(&self, v6: bool) -> std::io::Result<TcpSocket> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((v6, reply))
            .map_err(|_| std::io::Error::other("netns dialer thread gone"))?;
        let std = rx
            .await
            .map_err(|_| std::io::Error::other("netns dialer thread gone"))??;
        Ok(TcpSocket::from_std_stream(std))
    }
}

/// An unconnected, non-blocking TCP socket of this thread's network namespace.
fn new_socket(v6: bool) -> std::io::Result<std::net::TcpStream> {
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: socket(2) returns a new fd we own (or -1).
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    Ok(unsafe { std::net::TcpStream::from_raw_fd(fd) })
}
