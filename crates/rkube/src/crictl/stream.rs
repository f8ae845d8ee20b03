//! Interactive exec, as crictl does it: CRI `Exec` gives a one-time URL on the runtime's
//! stream server, which speaks remotecommand over SPDY; the streams come from
//! `crates/streaming` (the same client the API server uses towards kubelets). With v4 of the
//! protocol the error stream carries a `Status` naming the command's exit code.

use std::io::Write;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::Empty;
use kubelet::RuntimeClient;
use kubelet::cri::api;
use streaming::remotecommand::{RemoteCommand, SPDY_PROTOCOLS, StreamOptions};
use streaming::spdy::{Connection, StreamReader, StreamWriter};
use streaming::upgrade::{Upgrade, request_upgrade};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::term;

/// Where crictl sends a URL that names no host (a kubelet's stream server).
const DEFAULT_HOST: &str = "127.0.0.1:10250";

/// Runs `cmd` in container `id` with stdin (when `stdin`) and a terminal (when `tty`)
/// attached; returns its exit code.
pub async fn exec(
    cri: &RuntimeClient,
    id: &str,
    cmd: &[String],
    stdin: bool,
    tty: bool,
) -> anyhow::Result<i32> {
    if tty && !term::stdin_is_terminal() {
        anyhow::bail!("input is not a terminal");
    }
    let url = cri
        .exec(api::ExecRequest {
            container_id: id.to_owned(),
            cmd: cmd.to_vec(),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        })
        .await?;
    let uri: http::Uri = url.parse().with_context(|| format!("exec URL {url:?}"))?;
    match uri.scheme_str() {
        None | Some("http") => {}
        Some(s) => anyhow::bail!("exec URL {url}: the {s} scheme is not supported"),
    }
    let authority = uri
        .authority()
        .map_or(DEFAULT_HOST, |a| a.as_str())
        .to_owned();
    let host_port = if uri.port().is_some() || uri.authority().is_none() {
        authority.clone()
    } else {
        format!("{authority}:80")
    };
    let tcp = TcpStream::connect(&host_port)
        .await
        .with_context(|| format!("connecting to the runtime's stream server at {host_port}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = Request::post(path)
        .header(header::HOST, authority.as_str())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1");
    for p in SPDY_PROTOCOLS {
        req = req.header("X-Stream-Protocol-Version", HeaderValue::from_static(p));
    }
    let req = req.body(Empty::<Bytes>::new())?;
    let (head, io) = match request_upgrade(tcp, req).await? {
        Upgrade::Switched { head, io } => (head, io),
        Upgrade::Refused(resp) => anyhow::bail!(
            "unable to upgrade connection: {} {}",
            resp.status(),
            String::from_utf8_lossy(resp.body()).trim()
        ),
    };
    let v4 = head
        .headers
        .get("X-Stream-Protocol-Version")
        .is_some_and(|v| v == SPDY_PROTOCOLS[0]);
    let conn = Connection::new(io)?;
    let opts = StreamOptions {
        stdin,
        stdout: true,
        stderr: !tty,
        tty,
    };
    let RemoteCommand {
        conn: _conn,
        error,
        stdin: input,
        stdout,
        stderr,
        resize,
    } = RemoteCommand::open(conn, opts).await?;
    // Raw mode for the command's terminal; restored when this returns, however it returns.
    let _raw = if tty {
        Some(term::RawMode::enable()?)
    } else {
        None
    };
    let mut tasks = Vec::new();
    if let Some(w) = resize {
        tasks.push(tokio::spawn(send_sizes(w)));
    }
    if let Some(w) = input {
        tasks.push(tokio::spawn(copy_stdin(w)));
    }
    let out = tokio::spawn(copy_out(stdout, std::io::stdout));
    let err = tokio::spawn(copy_out(stderr, std::io::stderr));
    let status = read_all(error).await;
    let _ = out.await;
    let _ = err.await;
    for t in tasks {
        t.abort();
    }
    exit_code(&status, v4)
}

/// The exit code from the error stream: v4 sends a `Status` (`Success`, or `Failure` with
/// reason `NonZeroExitCode` and an `ExitCode` cause); older versions a message or nothing.
fn exit_code(status: &[u8], v4: bool) -> anyhow::Result<i32> {
    if status.is_empty() {
        return Ok(0);
    }
    if !v4 {
        anyhow::bail!("{}", String::from_utf8_lossy(status).trim());
    }
    let s: serde_json::Value =
        serde_json::from_slice(status).context("decoding the exec's status")?;
    if s["status"] == "Success" {
        return Ok(0);
    }
    if s["reason"] == "NonZeroExitCode"
        && let Some(causes) = s["details"]["causes"].as_array()
    {
        for c in causes {
            if c["reason"] == "ExitCode"
                && let Some(code) = c["message"].as_str().and_then(|m| m.parse().ok())
            {
                return Ok(code);
            }
        }
    }
    anyhow::bail!("{}", s["message"].as_str().unwrap_or("the command failed"))
}

async fn read_all(mut r: StreamReader) -> Vec<u8> {
    let mut all = Vec::new();
    while let Some(chunk) = r.read().await {
        all.extend_from_slice(&chunk);
    }
    all
}

/// A command output stream to ours, flushed per chunk (a terminal echoes keystrokes).
async fn copy_out<W: Write>(r: Option<StreamReader>, open: fn() -> W) {
    let Some(mut r) = r else { return };
    let mut w = open();
    while let Some(chunk) = r.read().await {
        if w.write_all(&chunk).and_then(|()| w.flush()).is_err() {
            return;
        }
    }
}

/// Our stdin to the command's; end of input half-closes the stream so the command reads EOF.
async fn copy_stdin(w: StreamWriter) {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = w.close().await;
}

/// The terminal's size now and after every SIGWINCH, as client-go's `TerminalSize` JSON.
async fn send_sizes(w: StreamWriter) {
    let send = |w: &StreamWriter| {
        let size = term::size();
        let w = w.clone();
        async move {
            if let Some((width, height)) = size {
                let msg = serde_json::json!({"Width": width, "Height": height}).to_string();
                let _ = w.write(Bytes::from(msg)).await;
            }
        }
    };
    send(&w).await;
    let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    while winch.recv().await.is_some() {
        send(&w).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_the_status() {
        assert_eq!(exit_code(b"", true).unwrap(), 0);
        assert_eq!(
            exit_code(br#"{"metadata":{},"status":"Success"}"#, true).unwrap(),
            0
        );
        let failed = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_code(failed, true).unwrap(), 3);
        let other =
            br#"{"metadata":{},"status":"Failure","message":"boom","reason":"InternalError"}"#;
        assert!(
            exit_code(other, true)
                .unwrap_err()
                .to_string()
                .contains("boom")
        );
        assert!(exit_code(b"some error", false).is_err());
    }
}
