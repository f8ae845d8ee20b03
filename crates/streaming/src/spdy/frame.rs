//! SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 §2.2, §2.6): the frames a remotecommand
//! client sends and the ones it must read. Header blocks are zlib-compressed with one context
//! per direction for the whole connection ([`HeaderCompressor`]).

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::dictionary::dictionary;

const VERSION: u16 = 3;
const FLAG_FIN: u8 = 0x01;
/// Frame payloads carry a 24-bit length.
pub const MAX_PAYLOAD: usize = 0x00ff_ffff;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: the stream was cancelled / refused.
pub const RST_CANCEL: u32 = 5;
pub const RST_REFUSED: u32 = 3;

/// A frame as read from the peer (header blocks stay compressed: this client never needs the
/// peer's headers).
#[derive(Debug, PartialEq)]
pub enum Frame {
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        stream_id: u32,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
    },
    Ping(u32),
    GoAway {
        last_stream_id: u32,
        status: u32,
    },
    /// SETTINGS, WINDOW_UPDATE and types this client ignores.
    Other(u16),
}

/// Reads one frame; `Ok(None)` at a clean end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut payload = BytesMut::zeroed(len);
    r.read_exact(&mut payload).await?;
    let mut p = payload.freeze();
    let fin = flags & FLAG_FIN != 0;
    if head[0] & 0x80 == 0 {
        let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        return Ok(Some(Frame::Data {
            stream_id,
            fin,
            data: p,
        }));
    }
    let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
    if version != VERSION {
        return Err(bad(format!("SPDY version {version}, want {VERSION}")));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let need = |p: &Bytes, n: usize| {
        if p.len() < n {
            Err(bad(format!("control frame {kind} of {} bytes", p.len())))
        } else {
            Ok(())
        }
    };
    let id = |v: u32| v & 0x7fff_ffff;
    Ok(Some(match kind {
        SYN_STREAM => {
            need(&p, 10)?;
            Frame::SynStream {
                stream_id: id(p.get_u32()),
            }
        }
        SYN_REPLY => {
            need(&p, 4)?;
            Frame::SynReply {
                stream_id: id(p.get_u32()),
                fin,
            }
        }
        RST_STREAM => {
            need(&p, 8)?;
            Frame::RstStream {
                stream_id: id(p.get_u32()),
                status: p.get_u32(),
            }
        }
        HEADERS => {
            need(&p, 4)?;
            Frame::Headers {
                stream_id: id(p.get_u32()),
                fin,
            }
        }
        PING => {
            need(&p, 4)?;
            Frame::Ping(p.get_u32())
        }
        GOAWAY => {
            need(&p, 8)?;
            Frame::GoAway {
                last_stream_id: id(p.get_u32()),
                status: p.get_u32(),
            }
        }
        SETTINGS | WINDOW_UPDATE => Frame::Other(kind),
        other => Frame::Other(other),
    }))
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn control_head(buf: &mut BytesMut, kind: u16, flags: u8, len: usize) {
    buf.put_u16(0x8000 | VERSION);
    buf.put_u16(kind);
    buf.put_u8(flags);
    buf.put_uint(len as u64, 3);
}

/// SYN_STREAM opening client stream `stream_id` with an already compressed header block.
pub fn put_syn_stream(buf: &mut BytesMut, stream_id: u32, fin: bool, header_block: &[u8]) {
    control_head(
        buf,
        SYN_STREAM,
        if fin { FLAG_FIN } else { 0 },
        10 + header_block.len(),
    );
    buf.put_u32(stream_id & 0x7fff_ffff);
    buf.put_u32(0); // associated-to stream
    buf.put_u16(0); // priority 0 (highest), slot 0
    buf.put_slice(header_block);
}

/// DATA on `stream_id`; `data` must fit one frame ([`MAX_PAYLOAD`]).
pub fn put_data(buf: &mut BytesMut, stream_id: u32, fin: bool, data: &[u8]) {
    buf.put_u32(stream_id & 0x7fff_ffff);
    buf.put_u8(if fin { FLAG_FIN } else { 0 });
    buf.put_uint(data.len() as u64, 3);
    buf.put_slice(data);
}

pub fn put_ping(buf: &mut BytesMut, id: u32) {
    control_head(buf, PING, 0, 4);
    buf.put_u32(id);
}

pub fn put_rst_stream(buf: &mut BytesMut, stream_id: u32, status: u32) {
    control_head(buf, RST_STREAM, 0, 8);
    buf.put_u32(stream_id & 0x7fff_ffff);
    buf.put_u32(status);
}

pub fn put_goaway(buf: &mut BytesMut, last_stream_id: u32) {
    control_head(buf, GOAWAY, 0, 8);
    buf.put_u32(last_stream_id & 0x7fff_ffff);
    buf.put_u32(0); // OK
}

/// The compressing side of a connection's header blocks: one zlib stream, primed with the
/// SPDY dictionary, sync-flushed after each block so the peer can inflate it at once.
pub struct HeaderCompressor {
    z: Compress,
}

impl HeaderCompressor {
    pub fn new() -> io::Result<Self> {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(dictionary())
            .map_err(|e| io::Error::other(format!("zlib dictionary: {e}")))?;
        Ok(HeaderCompressor { z })
    }

    /// The compressed name/value block for `headers` (names lowercased, as SPDY requires).
    pub fn compress(&mut self, headers: &[(&str, &str)]) -> io::Result<Vec<u8>> {
        let mut raw = BytesMut::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            let before = self.z.total_in();
            let status = self
                .z
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| io::Error::other(format!("zlib: {e}")))?;
            input = &input[(self.z.total_in() - before) as usize..];
            // Done once all input is taken and zlib left spare room (the flush is complete).
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if status == Status::StreamEnd {
                return Err(io::Error::other("zlib stream ended"));
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    /// Inflates header blocks as the peer does: the zlib stream asks for the dictionary first.
    struct Inflater(Decompress);

    impl Inflater {
        fn block(&mut self, block: &[u8]) -> Vec<(String, String)> {
            let mut out = Vec::with_capacity(4096);
            let mut input = block;
            loop {
                let before = self.0.total_in();
                match self
                    .0
                    .decompress_vec(input, &mut out, FlushDecompress::Sync)
                {
                    Ok(_) => {}
                    Err(e) if e.needs_dictionary().is_some() => {
                        self.0.set_dictionary(dictionary()).unwrap();
                    }
                    Err(e) => panic!("inflate: {e}"),
                }
                input = &input[(self.0.total_in() - before) as usize..];
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
                out.reserve(4096);
            }
            let mut b = Bytes::from(out);
            let n = b.get_u32();
            (0..n)
                .map(|_| {
                    let l = b.get_u32() as usize;
                    let name = String::from_utf8(b.split_to(l).to_vec()).unwrap();
                    let l = b.get_u32() as usize;
                    let value = String::from_utf8(b.split_to(l).to_vec()).unwrap();
                    (name, value)
                })
                .collect()
        }
    }

    #[test]
    fn header_blocks_inflate_in_sequence_with_the_dictionary() {
        let mut c = HeaderCompressor::new().unwrap();
        let mut d = Inflater(Decompress::new(true));
        let first = c.compress(&[("streamType", "error")]).unwrap();
        // zlib header with FDICT set, then the dictionary's Adler-32.
        assert_eq!(first[1] & 0x20, 0x20, "FDICT flag");
        assert_eq!(d.block(&first), [("streamtype".into(), "error".into())]);
        let second = c
            .compress(&[("streamType", "stdout"), ("port", "8080")])
            .unwrap();
        assert_eq!(
            d.block(&second),
            [
                ("streamtype".into(), "stdout".into()),
                ("port".into(), "8080".into())
            ]
        );
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = BytesMut::new();
        put_syn_stream(&mut buf, 3, false, b"hdr");
        put_data(&mut buf, 3, true, b"hello");
        put_ping(&mut buf, 7);
        put_rst_stream(&mut buf, 5, RST_CANCEL);
        put_goaway(&mut buf, 9);
        // A reply, as the peer sends it: control bit, version 3, type 2, no flags.
        buf.put_slice(&[0x80, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 3]);
        let mut r = &buf[..];
        let mut got = Vec::new();
        while let Some(f) = read_frame(&mut r).await.unwrap() {
            got.push(f);
        }
        assert_eq!(
            got,
            [
                Frame::SynStream { stream_id: 3 },
                Frame::Data {
                    stream_id: 3,
                    fin: true,
                    data: Bytes::from_static(b"hello")
                },
                Frame::Ping(7),
                Frame::RstStream {
                    stream_id: 5,
                    status: RST_CANCEL
                },
                Frame::GoAway {
                    last_stream_id: 9,
                    status: 0
                },
                Frame::SynReply {
                    stream_id: 3,
                    fin: false
                },
            ]
        );
    }
}
