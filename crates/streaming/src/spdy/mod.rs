//! SPDY/3.1, as far as Kubernetes' streaming protocols use it: a client connection with
//! streams, data and half-closes. No maintained Rust crate speaks SPDY (it was superseded by
//! HTTP/2 everywhere but here), so the framing is written out.

mod connection;
mod dictionary;
mod frame;

pub use connection::{Connection, StreamReader, StreamWriter};
