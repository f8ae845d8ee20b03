//! The client side of remotecommand over SPDY (client-go's `streamProtocolV4`): which streams
//! an exec or attach opens, in which order, and what each is called. The API server speaks it
//! to the kubelet when it terminates a client's WebSocket ([`crate::translator`]).

use std::io;

use crate::spdy::{Connection, StreamReader, StreamWriter};

/// The versions offered to the kubelet, newest first (`X-Stream-Protocol-Version`, one line
/// each). The runtime's stream server picks one; v4 carries the exit code as a `Status`.
pub const SPDY_PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// Which streams a command has (the `stdin`, `stdout`, `stderr` and `tty` options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    /// As upstream's `NewOptions`: a terminal merges stderr into stdout.
    pub fn normalized(mut self) -> Self {
        if self.tty {
            self.stderr = false;
        }
        self
    }
}

/// A command's streams on an open SPDY connection.
pub struct RemoteCommand {
    /// The connection: the streams live as long as it does.
    pub conn: Connection,
    pub error: StreamReader,
    pub stdin: Option<StreamWriter>,
    pub stdout: Option<StreamReader>,
    pub stderr: Option<StreamReader>,
    pub resize: Option<StreamWriter>,
}

impl RemoteCommand {
    /// Opens the streams `opts` asks for, in client-go's order (error, stdin, stdout, stderr,
    /// then resize with a terminal): the server waits for exactly these before it starts.
    pub async fn open(conn: Connection, opts: StreamOptions) -> io::Result<RemoteCommand> {
        let opts = opts.normalized();
        let (_, error) = conn.open(&[("streamType", "error")]).await?;
        let stdin = match opts.stdin {
            true => Some(conn.open(&[("streamType", "stdin")]).await?.0),
            false => None,
        };
        let stdout = match opts.stdout {
            true => Some(conn.open(&[("streamType", "stdout")]).await?.1),
            false => None,
        };
        let stderr = match opts.stderr {
            true => Some(conn.open(&[("streamType", "stderr")]).await?.1),
            false => None,
        };
        let resize = match opts.tty {
            true => Some(conn.open(&[("streamType", "resize")]).await?.0),
            false => None,
        };
        Ok(RemoteCommand {
            conn,
            error,
            stdin,
            stdout,
            stderr,
            resize,
        })
    }
}
