//! The client side of a SPDY/3.1 connection (what moby/spdystream is to client-go): streams
//! opened by this side (odd ids), their data in both directions, FIN half-closes, and the
//! connection-level frames a Go peer sends (PING echoed, SETTINGS and WINDOW_UPDATE ignored:
//! Go's spdystream does no flow control). One task writes, one reads.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use super::frame::{self, Frame, HeaderCompressor, MAX_PAYLOAD};

/// Frames queued for the writer before senders wait.
const OUT_QUEUE: usize = 64;
/// Data chunks buffered per stream before the reader waits for its consumer.
const STREAM_QUEUE: usize = 32;

enum Out {
    Syn {
        id: u32,
        headers: Vec<(String, String)>,
    },
    Data {
        id: u32,
        data: Bytes,
        fin: bool,
    },
    Ping(u32),
    Rst(u32, u32),
}

type Inboxes = Arc<Mutex<HashMap<u32, mpsc::Sender<Bytes>>>>;

/// A SPDY/3.1 client connection over an upgraded byte stream.
pub struct Connection {
    out: mpsc::Sender<Out>,
    next_id: AtomicU32,
    inboxes: Inboxes,
    reader: JoinHandle<()>,
}

impl Connection {
    /// Starts speaking SPDY on `io` (the connection after a `101 Switching Protocols`).
    pub fn new<IO>(io: IO) -> io::Result<Connection>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let compressor = HeaderCompressor::new()?;
        let (rd, wr) = tokio::io::split(io);
        let (out, queue) = mpsc::channel(OUT_QUEUE);
        let inboxes: Inboxes = Arc::default();
        tokio::spawn(write_loop(wr, queue, compressor));
        let reader = tokio::spawn(read_loop(rd, inboxes.clone(), out.clone()));
        Ok(Connection {
            out,
            next_id: AtomicU32::new(1),
            inboxes,
            reader,
        })
    }

    /// Opens a stream with `headers` (SYN_STREAM). Its replies and data arrive on the
    /// returned reader; the peer's SYN_REPLY is not waited for.
    pub async fn open(&self, headers: &[(&str, &str)]) -> io::Result<(StreamWriter, StreamReader)> {
        let id = self.next_id.fetch_add(2, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        if let Ok(mut m) = self.inboxes.lock() {
            m.insert(id, tx);
        }
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.out
            .send(Out::Syn { id, headers })
            .await
            .map_err(|_| closed())?;
        Ok((
            StreamWriter {
                id,
                out: self.out.clone(),
            },
            StreamReader { rx },
        ))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "SPDY connection closed")
}

/// Writes to one stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Out>,
}

impl StreamWriter {
    pub async fn write(&self, mut data: Bytes) -> io::Result<()> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_PAYLOAD));
            self.out
                .send(Out::Data {
                    id: self.id,
                    data: chunk,
                    fin: false,
                })
                .await
                .map_err(|_| closed())?;
        }
        Ok(())
    }

    /// Half-closes the stream (an empty DATA frame with FIN): the peer reads end of input.
    pub async fn close(&self) -> io::Result<()> {
        self.out
            .send(Out::Data {
                id: self.id,
                data: Bytes::new(),
                fin: true,
            })
            .await
            .map_err(|_| closed())
    }

    /// Abandons the stream (RST_STREAM CANCEL).
    pub async fn reset(&self) {
        let _ = self.out.send(Out::Rst(self.id, frame::RST_CANCEL)).await;
    }
}

/// Reads one stream's data.
pub struct StreamReader {
    rx: mpsc::Receiver<Bytes>,
}

impl StreamReader {
    /// The next chunk; `None` once the peer half-closed or reset the stream or the connection
    /// ended.
    pub async fn read(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }
}

async fn write_loop<W: AsyncWrite>(
    wr: WriteHalf<W>,
    mut queue: mpsc::Receiver<Out>,
    mut compressor: HeaderCompressor,
) {
    let mut wr = wr;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut last_id = 0;
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        // Coalesce what is already queued into one write.
        while let Some(item) = next {
            match item {
                Out::Syn { id, headers } => {
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    match compressor.compress(&h) {
                        Ok(block) => frame::put_syn_stream(&mut buf, id, false, &block),
                        Err(e) => {
                            debug!(error = %e, "SPDY: compressing headers failed");
                            return;
                        }
                    }
                    last_id = id;
                }
                Out::Data { id, data, fin } => frame::put_data(&mut buf, id, fin, &data),
                Out::Ping(id) => frame::put_ping(&mut buf, id),
                Out::Rst(id, status) => frame::put_rst_stream(&mut buf, id, status),
            }
            next = if buf.len() < 64 * 1024 {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(e) = wr.write_all(&buf).await {
            debug!(error = %e, "SPDY: write failed");
            return;
        }
        buf.clear();
    }
    // Every sender is gone: say goodbye and end our direction.
    frame::put_goaway(&mut buf, last_id);
    let _ = wr.write_all(&buf).await;
    let _ = wr.shutdown().await;
}

async fn read_loop<R: AsyncRead>(rd: ReadHalf<R>, inboxes: Inboxes, out: mpsc::Sender<Out>) {
    let mut rd = rd;
    loop {
        let f = match frame::read_frame(&mut rd).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                debug!(error = %e, "SPDY: read failed");
                break;
            }
        };
        match f {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let tx = inboxes.lock().ok().and_then(|m| m.get(&stream_id).cloned());
                if let Some(tx) = tx
                    && !data.is_empty()
                {
                    // A consumer that went away just loses its data.
                    let _ = tx.send(data).await;
                }
                if fin {
                    remove(&inboxes, stream_id);
                }
            }
            Frame::SynReply { stream_id, fin } | Frame::Headers { stream_id, fin } => {
                if fin {
                    remove(&inboxes, stream_id);
                }
            }
            Frame::RstStream { stream_id, .. } => remove(&inboxes, stream_id),
            Frame::Ping(id) => {
                let _ = out.send(Out::Ping(id)).await;
            }
            // Streams the server opens are not part of these protocols.
            Frame::SynStream { stream_id } => {
                let _ = out.send(Out::Rst(stream_id, frame::RST_REFUSED)).await;
            }
            Frame::GoAway { .. } | Frame::Other(_) => {}
        }
    }
    // The connection is over: every reader sees its end.
    if let Ok(mut m) = inboxes.lock() {
        m.clear();
    }
}

fn remove(inboxes: &Inboxes, id: u32) {
    if let Ok(mut m) = inboxes.lock() {
        m.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn streams_get_odd_ids_and_data_flows_both_ways() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let conn = Connection::new(client).unwrap();
        let (w1, mut r1) = conn.open(&[("streamType", "error")]).await.unwrap();
        let (w3, _r3) = conn.open(&[("streamType", "stdin")]).await.unwrap();
        w3.write(Bytes::from_static(b"abc")).await.unwrap();
        w3.close().await.unwrap();
        // The server side, frame by frame.
        let mut seen = Vec::new();
        while seen.len() < 4 {
            seen.push(frame::read_frame(&mut server).await.unwrap().unwrap());
        }
        assert_eq!(seen[0], Frame::SynStream { stream_id: 1 });
        assert_eq!(seen[1], Frame::SynStream { stream_id: 3 });
        assert_eq!(
            seen[2],
            Frame::Data {
                stream_id: 3,
                fin: false,
                data: Bytes::from_static(b"abc")
            }
        );
        assert_eq!(
            seen[3],
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::new()
            }
        );
        // The server answers on stream 1, pings, and closes stream 1.
        let mut b = BytesMut::new();
        frame::put_data(&mut b, 1, false, b"status");
        frame::put_ping(&mut b, 2);
        frame::put_data(&mut b, 1, true, b"");
        server.write_all(&b).await.unwrap();
        assert_eq!(r1.read().await.unwrap(), Bytes::from_static(b"status"));
        assert_eq!(r1.read().await, None, "FIN ends the reader");
        assert_eq!(
            frame::read_frame(&mut server).await.unwrap().unwrap(),
            Frame::Ping(2),
            "pings are echoed"
        );
        drop(w1);
        drop(w3);
        drop(conn);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        let mut r = &rest[..];
        assert!(matches!(
            frame::read_frame(&mut r).await.unwrap(),
            Some(Frame::GoAway {
                last_stream_id: 3,
                ..
            })
        ));
    }
}
